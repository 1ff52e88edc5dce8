"""Worker: roll the landed points up into a fresh DuckDB file, the pipeline's way or the floor's way.

- mode "pipeline": `doow_pipeline.warehouse.store.write_partitions` for every landed day of every
  connection, in one call (what the Dagster writer does after a 90-day backfill). Its steps are timed by
  wrapping the module's functions and the DuckDB connection's `execute` (instrumentation only).
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


class _TimedConnection:
    """Wraps a DuckDB connection: times each `execute` by the statement's first words."""

    def __init__(self, con, timings: dict):
        self._con = con
        self._timings = timings

    def execute(self, sql, *args, **kwargs):
        key = " ".join(sql.split()[:3])[:48]
        started = time.perf_counter()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            self._timings[key] = self._timings.get(key, 0.0) + time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self._con, name)


def _pipeline(spec: dict) -> dict:
    import contextlib

    import duckdb

    import doow_pipeline.warehouse.store as store

    phases: dict[str, float] = {}
    statements: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
        return wrapper

    for name in ("_accounts_frame", "_sync_state_frame", "_events_frame", "build_usage", "roll_up_daily",
                 "model_names", "usage_checks"):
        if callable(getattr(store, name, None)):  # instrumentation only; a renamed step is simply not timed
            setattr(store, name, timed(name, getattr(store, name)))
    original_connect = store.connect

    @contextlib.contextmanager
    def connect(*args, **kwargs):
        with original_connect(*args, **kwargs) as con:
            yield _TimedConnection(con, statements)

    store.connect = connect
    days = [date.fromisoformat(d) for d in spec["days"]]
    started = time.perf_counter()
    summary = store.write_partitions(Path(spec["warehouse"]), Path(spec["landing"]), spec["connections"], days)
    wall = time.perf_counter() - started
    with duckdb.connect(spec["warehouse"], read_only=True) as con:
        rows, tokens, families = con.execute(
            "SELECT count(*), sum(total_tokens), count(DISTINCT metric_family) FROM azure_openai.usage_daily"
        ).fetchone()
        raw = con.execute("SELECT count(*) FROM azure_openai.metric_points").fetchone()[0]
    return {"wall_s": wall, "usage_rows": rows, "total_tokens": int(tokens or 0), "families": families,
            "raw_points_in_db": raw, "summary_raw_points": summary.raw_points, "summary_usage_rows": summary.usage_rows,
            "check_results": {k: list(v) for k, v in summary.check_results.items()},
            "phases_s": phases, "statements_s": statements}


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
            "sum(total_tokens) FILTER (WHERE family = 'models') FROM usage_floor").fetchone()
    return {"wall_s": wall, "rows": rows, "models_rows": models_rows, "models_total_tokens": int(tokens or 0),
            "files": len(files)}


def run(spec: dict) -> dict:
    return _pipeline(spec) if spec["mode"] == "pipeline" else _floor(spec)


if __name__ == "__main__":
    worker_main(run)
