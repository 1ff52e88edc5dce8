"""Pure transforms from raw metric points to daily usage rows: one DuckDB SQL statement, no I/O of its own.

Rules (design.md §3):
- dimension values `__Empty` mean "not reported" and become NULL;
- buckets are P1D aligned to 00:00Z, so a point's timestamp date is its usage day;
- one connection per (resource, day): overlapping scopes never count a resource twice;
- per (resource, deployment, day) the "models" family wins where it has token data, else "azure_openai";
  the two are never added together;
- legacy token rows (no ModelName dimension) take the model name of the same (resource, deployment,
  version) where a metric reports one unambiguously: "models" rows, or the legacy request metric
  `AzureOpenAIRequests` split by ModelName; else NULL. Named legacy rows are summed again, so a day's
  legacy tokens and requests of one deployment stay one row;
- tokens are integers (each point's total rounded half to even, then summed).

The rules are SQL so the writer runs them inside DuckDB, next to the landed Parquet files: millions of raw
points are read, grouped and written without ever becoming Python or polars objects (`roll_up_daily` runs the
same statement over polars frames, for callers that hold points in memory).
"""

from __future__ import annotations

import duckdb
import polars as pl

from ..core.metrics import EMPTY_DIMENSION, FAMILY_METRICS, Family, Quantity

DIMENSIONS = ["deployment", "model_name", "model_version", "metric_region"]
GRAIN = ["usage_date", "resource_id", *DIMENSIONS]
QUANTITIES = ["input_tokens", "output_tokens", "total_tokens", "requests"]
TOKEN_QUANTITIES = ["input_tokens", "output_tokens", "total_tokens"]
USAGE_COLUMNS = ["usage_date", "connection", "resource_id", *DIMENSIONS, *QUANTITIES, "metric_family"]
MODEL_NAME_KEY = ["resource_id", "deployment", "model_version"]
SERIES_KEYS = ["connection", "resource_id", "family", *DIMENSIONS, "usage_date"]
LEGACY_REQUEST_METRIC = FAMILY_METRICS[Family.AZURE_OPENAI][Quantity.REQUESTS].lower()
# Columns a points relation must have (the landed POINT_SCHEMA plus `connection`).
POINT_COLUMNS = ["connection", "resource_id", "family", "metric", *DIMENSIONS, "timestamp", "total"]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# A small code per quantity metric; the legacy request metric has its own (its ModelName names legacy rows).
_CODES = {Quantity.INPUT_TOKENS: 0, Quantity.OUTPUT_TOKENS: 1, Quantity.TOTAL_TOKENS: 2, Quantity.REQUESTS: 3}
_LEGACY_REQUEST_CODE = 4


def _code_of(metric: str) -> str:
    """The metric's code as an SQL expression. Names as Azure spells them are matched as they are first (cheap
    on millions of points); any other casing through lower()."""
    pairs = [
        (name, _LEGACY_REQUEST_CODE if name.lower() == LEGACY_REQUEST_METRIC else _CODES[quantity])
        for metrics in FAMILY_METRICS.values()
        for quantity, name in metrics.items()
    ]
    exact = " ".join(f"WHEN {_literal(name)} THEN {code}" for name, code in pairs)
    folded = " ".join(f"WHEN {_literal(name.lower())} THEN {code}" for name, code in pairs)
    return f"coalesce(CASE {metric} {exact} END, CASE lower({metric}) {folded} END)::TINYINT"


def _reported(column: str) -> str:
    """The `reported()` rule of core.metrics in SQL: `__Empty` and "" mean "not reported"."""
    return f"CASE WHEN {column} IN ({_literal(EMPTY_DIMENSION)}, '') THEN NULL ELSE {column} END AS {column}"


def _name_points(relation: str) -> str:
    """(resource, deployment, version, model name) reported by points of `relation`: "models" points and the
    legacy request metric, dimensions not reported as NULL."""
    return (
        f"SELECT DISTINCT resource_id, {_reported('deployment')}, {_reported('model_version')}, model_name "
        f"FROM {relation} WHERE (family = {_literal(Family.MODELS)} OR lower(metric) = "
        f"{_literal(LEGACY_REQUEST_METRIC)}) AND model_name IS NOT NULL AND model_name NOT IN "
        f"({_literal(EMPTY_DIMENSION)}, '')"
    )


def usage_sql(points: str, name_points: str | None = None) -> str:
    """A SELECT of the daily usage rows (USAGE_COLUMNS, in no particular order) from `points`, an SQL relation
    with POINT_COLUMNS (a table, a view or `read_parquet(...)`). `name_points`, a relation of the same columns,
    adds model names reported outside `points` (other days), so a day's rows do not depend on which range was
    rebuilt with it.

    `points` is scanned once, into one row per (connection, resource, family, dimensions as reported, day) with
    a column per quantity (the least any roll-up must do); every other rule, `__Empty` included, runs on those
    rows, far fewer than the points. Model names of its own points come from the same rows."""
    models, legacy = _literal(Family.MODELS), _LEGACY_REQUEST_CODE
    sums = [
        f"sum(value) FILTER (WHERE code = {code})"
        if q is not Quantity.REQUESTS
        else f"sum(value) FILTER (WHERE code IN ({code}, {legacy}))"
        for q, code in _CODES.items()
    ]
    quantity_sums = ",\n    ".join(
        f"coalesce({expr}, 0)::BIGINT AS {q}" for q, expr in zip(Quantity, sums, strict=True)
    )
    has_tokens = " OR ".join(f"{q} <> 0" for q in TOKEN_QUANTITIES)
    extra_names = f"UNION ALL {_name_points(name_points)}" if name_points else ""
    raw_keys = ["connection", "resource_id", "family", *DIMENSIONS]
    return f"""
WITH pts AS (
  SELECT {", ".join(raw_keys)},
    DATE '1970-01-01' + CAST(epoch_us("timestamp") // 86400000000 AS INTEGER) AS usage_date,
    {_code_of("metric")} AS code, CAST(round_even(total, 0) AS BIGINT) AS value
  FROM {points}
),
grouped AS (
  SELECT {", ".join(raw_keys)}, usage_date,
    {quantity_sums},
    bool_or(code IN ({_CODES[Quantity.REQUESTS]}, {legacy})) AS has_requests,
    bool_or(code IS NOT NULL) AS has_quantity,
    bool_or(family = {models} OR code = {legacy}) AS names_model
  FROM pts
  -- "models" points of another metric still name legacy rows (the family comes from the metric, so none lands)
  WHERE code IS NOT NULL OR family = {models}
  GROUP BY ALL
),
series AS (
  SELECT connection, resource_id, family, {", ".join(_reported(d) for d in DIMENSIONS)}, usage_date,
    {", ".join(QUANTITIES)}, has_requests, has_quantity, names_model
  FROM grouped
),
names AS (
  SELECT resource_id, deployment, model_version, any_value(model_name) AS known_model_name
  FROM (
    SELECT DISTINCT resource_id, deployment, model_version, model_name FROM series
    WHERE names_model AND model_name IS NOT NULL
    {extra_names}
  )
  GROUP BY ALL
  HAVING count(DISTINCT model_name) = 1
),
-- Overlapping scopes: per (resource, day), the rows of the first connection by name. (Joins on a few key
-- columns, not windows: a window would sort every row with all its columns.)
quantities AS (SELECT * FROM series WHERE has_quantity),
first_connection AS (
  SELECT resource_id, usage_date, min(connection) AS connection FROM quantities GROUP BY ALL
),
one_connection AS (
  SELECT q.* FROM quantities q SEMI JOIN first_connection f
  ON q.resource_id = f.resource_id AND q.usage_date = f.usage_date AND q.connection = f.connection
),
models_days AS (
  SELECT DISTINCT resource_id, deployment, usage_date FROM one_connection
  WHERE family = {models} AND ({has_tokens})
),
picked AS (
  SELECT o.* FROM one_connection o
  LEFT JOIN models_days d ON o.resource_id = d.resource_id AND o.deployment IS NOT DISTINCT FROM d.deployment
    AND o.usage_date = d.usage_date
  WHERE CASE WHEN d.resource_id IS NOT NULL THEN o.family = {models} ELSE o.family = {_literal(Family.AZURE_OPENAI)} END
)
-- A legacy token row, once named, meets the request row of its deployment (split by ModelName): summed again
-- into one row; so do rows whose dimensions differed only as `__Empty` and "". Names are unique per
-- (resource, deployment, version), so no two models merge.
SELECT p.usage_date, p.connection, p.resource_id, p.deployment,
  coalesce(p.model_name, n.known_model_name) AS model_name, p.model_version, p.metric_region,
  {", ".join(f"sum(p.{q})::BIGINT AS {q}" for q in TOKEN_QUANTITIES)},
  CASE WHEN bool_or(p.has_requests) THEN sum(p.requests)::BIGINT END AS requests,
  p.family AS metric_family
FROM picked p
LEFT JOIN names n ON p.resource_id = n.resource_id AND p.deployment IS NOT DISTINCT FROM n.deployment
  AND p.model_version IS NOT DISTINCT FROM n.model_version
GROUP BY p.connection, p.resource_id, p.family, p.deployment, coalesce(p.model_name, n.known_model_name),
  p.model_version, p.metric_region, p.usage_date
"""


def roll_up_daily(
    points: pl.DataFrame | pl.LazyFrame, name_points: pl.DataFrame | pl.LazyFrame | None = None
) -> pl.DataFrame:
    """Daily usage rows at the warehouse grain (in no particular order) from raw points of one or more
    connections (POINT_COLUMNS), by `usage_sql` in an in-memory DuckDB. `name_points`: more points whose model
    names count (see `usage_sql`)."""
    with duckdb.connect() as con:
        con.register("points", points.lazy().select(POINT_COLUMNS).collect())
        if name_points is not None:
            con.register("name_points", name_points.lazy().select(POINT_COLUMNS).collect())
        usage = con.sql(usage_sql("points", "name_points" if name_points is not None else None)).pl()
    return usage.select(USAGE_COLUMNS)
