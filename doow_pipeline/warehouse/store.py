"""Idempotent partition writes into DuckDB from the landing zone.

A write covers a set of UTC days and replaces, in one transaction, everything those days hold: raw
points and accounts of each connection that landed them, and the usage rows rebuilt from the raw points
of every configured connection. Rerunning leaves identical tables; a crash before COMMIT leaves the old
data. DuckDB takes one writer process at a time: Dagster's `duckdb` pool (limit 1) serialises writers,
and `connect` also waits out a lock held by someone else (an analyst's session, say) for a bounded time.
"""

from __future__ import annotations

import time as _time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from ..azure.extract import POINT_SCHEMA
from ..usage.transform import GRAIN, model_names, roll_up_daily
from .landing import Landing
from .schema import DDL, SCHEMA, USAGE_DAILY_COLUMNS, metric_points_view_sql

LOCK_WAIT_SECONDS = 300


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


@contextmanager
def connect(path: Path, *, read_only: bool = False, wait_seconds: float = LOCK_WAIT_SECONDS):
    """Opens the warehouse, waiting (with backoff) while another process holds its lock."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = _time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or _time.monotonic() > deadline:
                raise
            _time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            con.execute(DDL)
        yield con
    finally:
        con.close()


@dataclass
class WriteSummary:
    days: list[date]
    usage_rows: int = 0
    raw_points: int = 0
    accounts: int = 0
    totals_per_day: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> rows and token sums
    check_results: dict[str, tuple[bool, str]] = field(default_factory=dict)
    preview: pl.DataFrame | None = None  # the largest rows written, for a glance in the Dagster UI


def _landed_days(landing: Landing, connections: list[str], days: list[date]):
    for connection in connections:
        for day in days:
            manifest = landing.manifest(connection, day)
            if manifest is not None:
                yield connection, day, manifest


_ACCOUNT_SCHEMA = {"tenant_id": pl.String, "subscription_id": pl.String, "resource_group": pl.String,
                   "resource_name": pl.String, "resource_id": pl.String, "resource_kind": pl.String,
                   "resource_region": pl.String, "readable": pl.Boolean, "metrics_api": pl.String,
                   "metric_families": pl.String}


def _accounts_frame(landed) -> pl.DataFrame:
    """The account inventory of every landed (connection, day), one frame per manifest."""
    frames = [
        pl.DataFrame(manifest.accounts, schema=_ACCOUNT_SCHEMA).with_columns(
            pl.lit(day).alias("usage_date"), pl.lit(connection).alias("connection"),
            pl.lit(datetime.fromisoformat(manifest.synced_at).replace(tzinfo=None)).cast(pl.Datetime("us"))
            .alias("synced_at"))
        for connection, day, manifest in landed if manifest.accounts
    ]
    schema = {"usage_date": pl.Date, "connection": pl.String, **_ACCOUNT_SCHEMA, "synced_at": pl.Datetime("us")}
    return pl.concat(frames).select(list(schema)) if frames else pl.DataFrame(schema=schema)


def _sync_state_frame(landed) -> pl.DataFrame:
    rows = [{"connection": c, "usage_date": d, "is_final": m.is_final,
             "synced_at": datetime.fromisoformat(m.synced_at).replace(tzinfo=None),
             "accounts_in_scope": len(m.accounts), "raw_points": m.rows} for c, d, m in landed]
    schema = {"connection": pl.String, "usage_date": pl.Date, "is_final": pl.Boolean, "synced_at": pl.Datetime("us"),
              "accounts_in_scope": pl.Int64, "raw_points": pl.Int64}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def _events_frame(landing: Landing, connections: list[str]) -> pl.DataFrame:
    frames = [pl.read_json(f) for c in connections for f in landing.event_files(c)]
    schema = {"time": pl.Datetime("us"), "connection": pl.String, "partition": pl.String, "level": pl.String,
              "code": pl.String, "message": pl.String, "resource": pl.String}
    if not frames:
        return pl.DataFrame(schema=schema)
    events = pl.concat([f.with_columns(pl.col("resource").cast(pl.String)) for f in frames], how="diagonal_relaxed")
    return events.with_columns(pl.col("time").str.to_datetime(time_zone="UTC").dt.replace_time_zone(None)
                               .cast(pl.Datetime("us"))).select(list(schema))


def _landed_points(landed, landing: Landing) -> pl.LazyFrame:
    """The raw points of the landed (connection, day) files, read straight from Parquet with polars."""
    by_connection: dict[str, list[str]] = {}
    for connection, day, _manifest in landed:
        by_connection.setdefault(connection, []).append(str(landing.points_path(connection, day)))
    frames = [pl.scan_parquet(files).with_columns(pl.lit(connection).alias("connection"))
              for connection, files in by_connection.items()]
    return pl.concat(frames) if frames else pl.LazyFrame(schema={"connection": pl.String, **POINT_SCHEMA})


def build_usage(con, points: pl.LazyFrame, connections: list[str], accounts: pl.DataFrame,
                sync_state: pl.DataFrame) -> pl.DataFrame:
    """Usage rows from raw points, enriched with account metadata; model names known from every models-family
    point in DuckDB, so a day's rows do not depend on which range was rebuilt with it."""
    known_names = con.execute(
        f"SELECT DISTINCT resource_id, family, deployment, model_name, model_version FROM {SCHEMA}.metric_points "
        "WHERE family = 'models' AND connection IN (SELECT unnest($connections))",
        {"connections": connections}).pl()
    usage = roll_up_daily(points, model_names(known_names))
    meta = accounts.select("usage_date", "connection", "resource_id", "tenant_id", "subscription_id",
                           "resource_group", "resource_name", "resource_kind", "resource_region").unique(
        ["usage_date", "connection", "resource_id"])
    usage = (usage.join(meta, on=["usage_date", "connection", "resource_id"], how="left")
             .join(sync_state.select("usage_date", "connection", "is_final", "synced_at"),
                   on=["usage_date", "connection"], how="left"))
    # Day order keeps DuckDB's per-block min/max useful for date filters.
    return usage.select([name for name, _ in USAGE_DAILY_COLUMNS]).sort("usage_date")


def _create_metric_points_view(con, landing: Landing) -> None:
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = $schema AND "
                       "table_name = 'metric_points'", {"schema": SCHEMA}).fetchone()
    if kind and kind[0] == "BASE TABLE":  # warehouses from before metric_points became a view
        con.execute(f"DROP TABLE {SCHEMA}.metric_points")
    has_files = any((landing.root / "points").glob("connection=*/day=*/points.parquet"))
    con.execute(metric_points_view_sql(str(landing.root.resolve()), has_files))


def _replace_landed_rows(con, table: str) -> None:
    con.execute(f"DELETE FROM {SCHEMA}.{table} USING landed_days "
                f"WHERE {table}.connection = landed_days.connection AND {table}.usage_date = landed_days.usage_date")


def write_partitions(warehouse: Path, landing_root: Path, connections: list[dict], days: list[date]) -> WriteSummary:
    """Loads the landed `days` of every configured connection and rebuilds their usage, in one transaction.

    `days` is a contiguous range (a partition range). `connections` are the configured connections
    (name, tenant_id, client_id, scope, cloud): no secrets.
    """
    first, last = min(days), max(days)
    if len(days) != (last - first).days + 1:
        raise ValueError(f"days must be a contiguous range, got {len(days)} days from {first} to {last}")
    landing = Landing(landing_root)
    names = [c["name"] for c in connections]
    landed = list(_landed_days(landing, names, days))
    accounts = _accounts_frame(landed)
    sync_state = _sync_state_frame(landed)
    events = _events_frame(landing, names)
    summary = WriteSummary(days=days)
    in_range = {"first": first, "last": last}
    with connect(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("landed_days", sync_state)
            _create_metric_points_view(con, landing)
            _replace_landed_rows(con, "syncs")
            con.execute(f"INSERT INTO {SCHEMA}.syncs BY NAME SELECT * FROM landed_days")
            _replace_landed_rows(con, "accounts")
            con.register("new_accounts", accounts)
            con.execute(f"INSERT INTO {SCHEMA}.accounts BY NAME SELECT * FROM new_accounts")
            # Usage is built from the landed (connection, day) files only, so the accounts and sync state
            # just loaded from the same manifests are all the metadata it needs.
            usage = build_usage(con, _landed_points(landed, landing), names, accounts, sync_state)
            con.execute(f"DELETE FROM {SCHEMA}.usage_daily WHERE usage_date BETWEEN $first AND $last", in_range)
            con.register("new_usage", usage)
            con.execute(f"INSERT INTO {SCHEMA}.usage_daily BY NAME SELECT * FROM new_usage")
            con.register("new_events", events)
            con.execute(f"INSERT INTO {SCHEMA}.sync_events SELECT * FROM new_events EXCEPT "
                        f"SELECT * FROM {SCHEMA}.sync_events")
            con.register("configured", pl.DataFrame(connections, schema={
                "name": pl.String, "tenant_id": pl.String, "client_id": pl.String, "scope": pl.String,
                "cloud": pl.String}))
            con.execute(f"DELETE FROM {SCHEMA}.connections")
            con.execute(f"INSERT INTO {SCHEMA}.connections SELECT name, tenant_id, client_id, scope, cloud "
                        "FROM configured")
            summary.check_results = usage_checks(con, usage, days)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    summary.usage_rows = usage.height
    summary.preview = usage.sort("total_tokens", descending=True).head(10).select(
        "usage_date", "resource_name", "deployment", "model_name", "model_version", "metric_region", "input_tokens",
        "output_tokens", "requests", "metric_family")
    summary.raw_points = sum(m.rows for _, _, m in landed)
    summary.accounts = accounts.height
    per_day = usage.group_by("usage_date").agg(
        pl.len().alias("usage_rows"), pl.col("input_tokens").sum(), pl.col("output_tokens").sum(),
        pl.col("total_tokens").sum()).sort("usage_date")
    summary.totals_per_day = {str(row.pop("usage_date")): row for row in per_day.iter_rows(named=True)}
    return summary


def usage_checks(con, usage: pl.DataFrame, days: list[date]) -> dict[str, tuple[bool, str]]:
    """Checks on the rebuilt days, inside the write transaction: name -> (passed, description).

    `usage` is exactly what the transaction wrote for `days`, so the row checks run on it directly
    instead of reading a million rows back; the overlap check reads the accounts table."""
    duplicates = usage.select(GRAIN).filter(pl.struct(GRAIN).is_duplicated()).unique().height
    inconsistent = usage.filter(pl.col("input_tokens") + pl.col("output_tokens") != pl.col("total_tokens")).height
    double_family = (usage.group_by("usage_date", "resource_id", "deployment")
                     .agg(pl.col("metric_family").n_unique().alias("families"))
                     .filter(pl.col("families") > 1).height)
    overlaps = con.execute(
        f"SELECT resource_id, list(DISTINCT connection ORDER BY connection) AS connections FROM {SCHEMA}.accounts "
        "WHERE usage_date BETWEEN $first AND $last GROUP BY resource_id HAVING count(DISTINCT connection) > 1 "
        "ORDER BY resource_id", {"first": min(days), "last": max(days)}).fetchall()
    overlap_text = "; ".join(f"{rid} via {', '.join(conns)}" for rid, conns in overlaps[:10])
    return {
        "unique_grain": (duplicates == 0, f"{duplicates} duplicate grain key(s)"),
        "tokens_consistent": (inconsistent == 0,
                              f"{inconsistent} row(s) where input_tokens + output_tokens <> total_tokens"),
        "single_metric_family": (double_family == 0,
                                 f"{double_family} (day, resource, deployment) with both metric families"),
        "no_overlapping_scopes": (not overlaps,
                                  f"{len(overlaps)} account(s) reached through several connections, counted once "
                                  f"(from the first connection by name): {overlap_text}" if overlaps else
                                  "no account is reached through two connections"),
    }


def delete_connection(warehouse: Path, connection: str) -> dict[str, int]:
    """Deletes one connection's rows from every table (for `doow-azure disconnect --purge-data`); its raw
    points live in the landing files (the metric_points view), which `Landing.purge` deletes."""
    counts = {}
    with connect(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        for table in ("usage_daily", "accounts", "syncs", "sync_events", "connections"):
            counts[table] = con.execute(f"DELETE FROM {SCHEMA}.{table} WHERE connection = ?", [connection]).fetchone()[0]
        con.execute("COMMIT")
    return counts


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
