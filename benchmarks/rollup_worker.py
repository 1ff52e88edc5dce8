"""Worker: roll the landed points up into a fresh DuckDB file, the pipeline's way or the floor's way.

- mode "pipeline": `doow_pipeline.warehouse.store.write_partitions` for every landed day of every
  connection, in one call (what the Dagster writer does after a 90-day backfill). Its steps are timed by
  the product's phase hook (`on_phase`).
- mode "floor": one DuckDB SQL `CREATE TABLE ... AS SELECT ... GROUP BY` over the same Parquet files: the
  daily sums per (connection, day, resource, family, dimensions), the least work any roll-up must do.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from benchmarks.common import worker_main

FLOOR_SQL = """
CREATE TABLE usage_floor AS
SELECT regexp_extract(filename, 'connection=([^/]+)', 1) AS connection,
       CAST("timestamp" AS DATE) AS usage_date, resource_id, family, deployment, model_name, model_version,
       metric_region,
       CAST(round(sum(total) FILTER (WHERE metric IN ('InputTokens', 'ProcessedPromptTokens'))) AS BIGINT)
           AS input_tokens,
       CAST(round(sum(total) FILTER (WHERE metric IN ('OutputTokens', 'GeneratedTokens'))) AS BIGINT) AS output_tokens,
       CAST(round(sum(total) FILTER (WHERE metric IN ('TotalTokens', 'TokenTransaction'))) AS BIGINT) AS total_tokens,
       CAST(round(sum(total) FILTER (WHERE metric IN ('ModelRequests', 'AzureOpenAIRequests'))) AS BIGINT) AS requests
FROM read_parquet($files, filename = true)
GROUP BY ALL
"""


def _pipeline(spec: dict) -> dict:
    import duckdb

    from doow_pipeline.warehouse.store import ConnectionRecord, write_partitions

    phases: dict[str, float] = {}

    def on_phase(name: str, seconds: float) -> None:
        phases[name] = phases.get(name, 0.0) + seconds

    days = [date.fromisoformat(d) for d in spec["days"]]
    connections = [ConnectionRecord(**c) for c in spec["connections"]]
    started = time.perf_counter()
    summary = write_partitions(Path(spec["warehouse"]), Path(spec["landing"]), connections, days, on_phase=on_phase)
    wall = time.perf_counter() - started
    with duckdb.connect(spec["warehouse"], read_only=True) as con:
        rows, tokens, families = con.execute(
            "SELECT count(*), sum(total_tokens), count(DISTINCT metric_family) FROM azure_openai.usage_daily"
        ).fetchone()
        raw = con.execute("SELECT count(*) FROM azure_openai.metric_points").fetchone()[0]
    return {
        "wall_s": wall,
        "usage_rows": rows,
        "total_tokens": int(tokens or 0),
        "families": families,
        "raw_points_in_db": raw,
        "summary_raw_points": summary.raw_points,
        "summary_usage_rows": summary.usage_rows,
        "check_results": {c.name: [c.passed, c.description] for c in summary.check_results},
        "phases_s": phases,
    }


def _floor(spec: dict) -> dict:
    import duckdb

    files = sorted(str(p) for p in Path(spec["landing"]).glob("points/connection=*/day=*/points.parquet"))
    started = time.perf_counter()
    with duckdb.connect(spec["warehouse"]) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(FLOOR_SQL, {"files": files})
        con.execute("CHECKPOINT")
    wall = time.perf_counter() - started
    with duckdb.connect(spec["warehouse"], read_only=True) as con:
        rows, models_rows, tokens = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE family = 'models'), "
            "sum(total_tokens) FILTER (WHERE family = 'models') FROM usage_floor"
        ).fetchone()
    return {
        "wall_s": wall,
        "rows": rows,
        "models_rows": models_rows,
        "models_total_tokens": int(tokens or 0),
        "files": len(files),
    }


def run(spec: dict) -> dict:
    return _pipeline(spec) if spec["mode"] == "pipeline" else _floor(spec)


if __name__ == "__main__":
    worker_main(run)
