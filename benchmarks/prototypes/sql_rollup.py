"""Prototype (not run by benchmarks.run): the roll-up rules of doow_pipeline/usage/transform.py as one DuckDB
SQL statement, timed against the current path (pull every raw point into polars, roll_up_daily) and
checked for identical output.

    python -m benchmarks.run --only rollup --workdir /tmp/bench --keep
    python -m benchmarks.prototypes.sql_rollup /tmp/bench/rollup/rollup-landing [--compare]

It is evidence for a proposed change to doow_pipeline/warehouse/store.py (owned elsewhere): keep the
roll-up inside DuckDB, next to the raw points, instead of materialising them in Python. Rules kept:
`__Empty` -> NULL; one connection (the smallest name) per (resource, day); per (resource, deployment, day)
"models" where it has token data, else "azure_openai"; legacy rows named from "models" rows of the same
(resource, deployment, version) when exactly one name is known; requests NULL when no request metric.
The day is computed with epoch arithmetic: CAST(timestamptz AS DATE) goes through ICU and costs seconds
per 10 million rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

LOAD = """
CREATE TABLE metric_points AS
SELECT regexp_extract(filename, 'connection=([^/]+)', 1) AS connection,
       DATE '1970-01-01' + CAST(epoch_us("timestamp") // 86400000000 AS INTEGER) AS usage_date,
       * EXCLUDE (filename)
FROM read_parquet($files, filename = true)
"""

ROLL_UP = """
WITH pts AS (
  SELECT connection, resource_id, family,
    NULLIF(deployment, '__Empty') AS deployment, NULLIF(model_name, '__Empty') AS model_name,
    NULLIF(model_version, '__Empty') AS model_version, NULLIF(metric_region, '__Empty') AS metric_region,
    usage_date, lower(metric) AS m, CAST(round(total) AS BIGINT) AS value
  FROM metric_points
),
chosen AS (SELECT resource_id, usage_date, min(connection) AS connection FROM pts GROUP BY ALL),
pivoted AS (
  SELECT p.connection, p.resource_id, p.family, p.deployment, p.model_name, p.model_version, p.metric_region,
    p.usage_date,
    coalesce(sum(value) FILTER (WHERE m IN ('inputtokens', 'processedprompttokens')), 0) AS input_tokens,
    coalesce(sum(value) FILTER (WHERE m IN ('outputtokens', 'generatedtokens')), 0) AS output_tokens,
    coalesce(sum(value) FILTER (WHERE m IN ('totaltokens', 'tokentransaction')), 0) AS total_tokens,
    coalesce(sum(value) FILTER (WHERE m IN ('modelrequests', 'azureopenairequests')), 0) AS requests,
    bool_or(m IN ('modelrequests', 'azureopenairequests')) AS has_requests
  FROM pts p SEMI JOIN chosen c USING (resource_id, usage_date, connection)
  WHERE m IN ('inputtokens', 'processedprompttokens', 'outputtokens', 'generatedtokens', 'totaltokens',
              'tokentransaction', 'modelrequests', 'azureopenairequests')
  GROUP BY ALL
),
models_days AS (
  SELECT DISTINCT resource_id, deployment, usage_date FROM pivoted
  WHERE family = 'models' AND (input_tokens <> 0 OR output_tokens <> 0 OR total_tokens <> 0)
),
picked AS (
  SELECT p.* FROM pivoted p
  LEFT JOIN models_days d ON p.resource_id = d.resource_id AND p.deployment IS NOT DISTINCT FROM d.deployment
                         AND p.usage_date = d.usage_date
  WHERE CASE WHEN d.resource_id IS NOT NULL THEN p.family = 'models' ELSE p.family = 'azure_openai' END
),
names AS (
  SELECT resource_id, NULLIF(deployment, '__Empty') AS deployment, NULLIF(model_version, '__Empty') AS model_version,
         any_value(model_name) AS known_model_name
  FROM metric_points
  WHERE family = 'models' AND model_name IS NOT NULL AND model_name <> '__Empty'
  GROUP BY ALL HAVING count(DISTINCT model_name) = 1
)
SELECT usage_date, connection, p.resource_id, p.deployment, coalesce(model_name, known_model_name) AS model_name,
       p.model_version, metric_region,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(total_tokens) AS total_tokens,
       CASE WHEN bool_or(has_requests) THEN sum(requests) END AS requests, family AS metric_family
FROM picked p
LEFT JOIN names n ON p.resource_id = n.resource_id AND p.deployment IS NOT DISTINCT FROM n.deployment
                 AND p.model_version IS NOT DISTINCT FROM n.model_version
GROUP BY ALL
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("landing", type=Path, help="a landing root (points/connection=*/day=*.parquet)")
    parser.add_argument("--compare", action="store_true", help="also run the polars path and compare the rows")
    args = parser.parse_args()
    files = sorted(str(p) for p in args.landing.glob("points/connection=*/day=*.parquet"))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    con.execute(LOAD, {"files": files})
    points = con.execute("SELECT count(*) FROM metric_points").fetchone()[0]
    print(f"load {points:,} raw points into DuckDB: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    con.execute("CREATE TABLE usage_sql AS " + ROLL_UP)
    rows = con.execute("SELECT count(*) FROM usage_sql").fetchone()[0]
    print(f"SQL roll-up: {time.perf_counter() - started:.2f} s, {rows:,} usage rows")
    if not args.compare:
        return
    from polars.testing import assert_frame_equal

    from doow_pipeline.usage.transform import GRAIN, USAGE_COLUMNS, model_names, roll_up_daily

    started = time.perf_counter()
    raw = con.execute("SELECT * EXCLUDE (usage_date) FROM metric_points").pl()
    known = con.execute(
        "SELECT DISTINCT resource_id, family, deployment, model_name, model_version "
        "FROM metric_points WHERE family = 'models'"
    ).pl()
    pulled = time.perf_counter() - started
    started = time.perf_counter()
    usage = roll_up_daily(raw, model_names(known))
    print(f"current path: pull into polars {pulled:.2f} s + roll_up_daily {time.perf_counter() - started:.2f} s")
    sql = con.execute("SELECT * FROM usage_sql").pl().select(USAGE_COLUMNS).sort(GRAIN, nulls_last=True)
    assert_frame_equal(usage, sql, check_dtypes=False)
    print(f"identical: {usage.height:,} rows, every column")


if __name__ == "__main__":
    main()
