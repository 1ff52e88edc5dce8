"""Idempotent partition writes into DuckDB from the landing zone.

A write covers a set of UTC days and replaces, in one transaction, everything those days hold: raw
points and accounts of each connection that landed them, and the usage rows rebuilt from the raw points
of every configured connection. Rerunning leaves identical tables; a crash before COMMIT leaves the old
data. DuckDB takes one writer process at a time: Dagster's `duckdb` pool (limit 1) serialises writers,
and `connect` also waits out a lock held by someone else (an analyst's session, say) for a bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from ..core.checks import CheckOutcome
from ..core.metrics import POINT_SCHEMA
from ..core.phases import PhaseHook, phase
from ..core.metrics import REQUEST_POINT_SCHEMA, UTILIZATION_POINT_SCHEMA
from ..usage.activity import roll_up_requests, roll_up_utilization
from ..usage.anomalies import AnomalyThresholds
from ..usage.transform import LEGACY_REQUEST_METRIC, model_names, roll_up_daily
from .checks import activity_anomalies, usage_checks
from .database import connect
from .landing import Landing
from .schema import (
    PTU_UTILIZATION_HOURLY_COLUMNS,
    REQUESTS_DAILY_COLUMNS,
    SCHEMA,
    USAGE_DAILY_COLUMNS,
    metric_points_view_sql,
)

@dataclass(frozen=True)
class ConnectionRecord:
    """A configured connection as the warehouse records it (no secret)."""

    name: str
    tenant_id: str
    client_id: str
    scope: str
    cloud: str


@dataclass
class WriteSummary:
    days: list[date]
    usage_rows: int = 0
    raw_points: int = 0
    accounts: int = 0
    totals_per_day: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> rows and token sums
    check_results: list[CheckOutcome] = field(default_factory=list)
    preview: pl.DataFrame | None = None  # the largest rows written, for a glance in the Dagster UI
    # day -> requests, throttled requests and share, downgraded priority requests, PTU peak and hours >= 90%
    activity_per_day: dict[str, dict[str, float]] = field(default_factory=dict)


def _activity_per_day(requests: pl.DataFrame, utilization: pl.DataFrame) -> dict[str, dict[str, float]]:
    per_day: dict[str, dict[str, float]] = {}
    daily = requests.group_by("usage_date").agg(
        pl.col("requests").sum().alias("requests"),
        pl.col("requests").filter(pl.col("status_code") == "429").sum().alias("throttled_requests"),
        pl.col("requests").filter((pl.col("tier_request").str.to_lowercase() == "priority")
                                  & (pl.col("tier_response").fill_null("").str.to_lowercase() != "priority"))
        .sum().alias("downgraded_priority_requests"))
    for row in daily.iter_rows(named=True):
        per_day[str(row["usage_date"])] = {
            "requests": row["requests"], "throttled_requests": row["throttled_requests"],
            "throttled_share": round(row["throttled_requests"] / row["requests"], 6) if row["requests"] else 0.0,
            "downgraded_priority_requests": row["downgraded_priority_requests"]}
    peaks = utilization.group_by("usage_date").agg(
        pl.col("max_utilization").max().alias("ptu_max_utilization"),
        pl.col("hour").filter(pl.col("max_utilization") >= 90).n_unique().alias("ptu_hours_at_or_above_90"))
    for row in peaks.iter_rows(named=True):
        per_day.setdefault(str(row["usage_date"]), {}).update(
            {"ptu_max_utilization": row["ptu_max_utilization"],
             "ptu_hours_at_or_above_90": row["ptu_hours_at_or_above_90"]})
    return dict(sorted(per_day.items()))


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
    point and legacy request-metric point in DuckDB, so a day's rows do not depend on which range was rebuilt
    with it."""
    known_names = con.execute(
        f"SELECT DISTINCT resource_id, family, metric, deployment, model_name, model_version "
        f"FROM {SCHEMA}.metric_points WHERE (family = 'models' OR lower(metric) = '{LEGACY_REQUEST_METRIC}') "
        "AND model_name IS NOT NULL AND connection IN (SELECT unnest($connections))",
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


def _landed_activity(landed, landing: Landing, kind: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The landed activity files of one kind (days synced before activity existed have none)."""
    frames = []
    for connection, day, _manifest in landed:
        path = landing.activity_path(kind, connection, day)
        if path.exists():
            frames.append(pl.read_parquet(path).with_columns(pl.lit(connection).alias("connection")))
    empty = pl.DataFrame(schema={"connection": pl.String, **schema})
    return pl.concat([empty, *[f.select(empty.columns) for f in frames]], how="vertical_relaxed")


def build_activity(landed, landing: Landing, usage: pl.DataFrame, accounts: pl.DataFrame,
                   sync_state: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """requests_daily and ptu_utilization_hourly rows for the landed days, enriched like usage."""
    names = accounts.select("usage_date", "connection", "resource_id", "resource_name").unique(
        ["usage_date", "connection", "resource_id"])
    state = sync_state.select("usage_date", "connection", "is_final", "synced_at")
    requests = roll_up_requests(_landed_activity(landed, landing, "requests", REQUEST_POINT_SCHEMA), usage)
    utilization = roll_up_utilization(_landed_activity(landed, landing, "utilization", UTILIZATION_POINT_SCHEMA),
                                      usage)
    requests = (requests.join(names, on=["usage_date", "connection", "resource_id"], how="left")
                .join(state, on=["usage_date", "connection"], how="left")
                .select([name for name, _ in REQUESTS_DAILY_COLUMNS]).sort("usage_date"))
    utilization = (utilization.join(names, on=["usage_date", "connection", "resource_id"], how="left")
                   .join(state, on=["usage_date", "connection"], how="left")
                   .select([name for name, _ in PTU_UTILIZATION_HOURLY_COLUMNS]).sort("hour"))
    return requests, utilization


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


def write_partitions(warehouse: Path, landing_root: Path, connections: list[ConnectionRecord],
                     days: list[date], on_phase: PhaseHook | None = None,
                     anomalies: AnomalyThresholds | None = None) -> WriteSummary:
    """Loads the landed `days` of every configured connection and rebuilds their usage, in one transaction.

    `days` is a contiguous range (a partition range); `connections` are the configured connections;
    `anomalies` the thresholds of the activity anomaly checks (defaults when None).
    """
    first, last = min(days), max(days)
    if len(days) != (last - first).days + 1:
        raise ValueError(f"days must be a contiguous range, got {len(days)} days from {first} to {last}")
    landing = Landing(landing_root)
    names = [c.name for c in connections]
    with phase(on_phase, "load_manifests"):
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
            with phase(on_phase, "build_usage"):
                usage = build_usage(con, _landed_points(landed, landing), names, accounts, sync_state)
            with phase(on_phase, "insert_usage"):
                con.execute(f"DELETE FROM {SCHEMA}.usage_daily WHERE usage_date BETWEEN $first AND $last", in_range)
                con.register("new_usage", usage)
                con.execute(f"INSERT INTO {SCHEMA}.usage_daily BY NAME SELECT * FROM new_usage")
            with phase(on_phase, "insert_activity"):
                requests, utilization = build_activity(landed, landing, usage, accounts, sync_state)
                for table, frame in (("requests_daily", requests), ("ptu_utilization_hourly", utilization)):
                    con.execute(f"DELETE FROM {SCHEMA}.{table} WHERE usage_date BETWEEN $first AND $last", in_range)
                    con.register(f"new_{table}", frame)
                    con.execute(f"INSERT INTO {SCHEMA}.{table} BY NAME SELECT * FROM new_{table}")
            con.register("new_events", events)
            con.execute(f"INSERT INTO {SCHEMA}.sync_events SELECT * FROM new_events EXCEPT "
                        f"SELECT * FROM {SCHEMA}.sync_events")
            con.register("configured", pl.DataFrame([c.__dict__ for c in connections], schema={
                "name": pl.String, "tenant_id": pl.String, "client_id": pl.String, "scope": pl.String,
                "cloud": pl.String}))
            con.execute(f"DELETE FROM {SCHEMA}.connections")
            con.execute(f"INSERT INTO {SCHEMA}.connections SELECT name, tenant_id, client_id, scope, cloud "
                        "FROM configured")
            with phase(on_phase, "usage_checks"):
                summary.check_results = usage_checks(con, usage, days)
                summary.check_results += activity_anomalies(con, days, anomalies or AnomalyThresholds())
            with phase(on_phase, "commit"):
                con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    summary.usage_rows = usage.height
    summary.activity_per_day = _activity_per_day(requests, utilization)
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


def delete_connection(warehouse: Path, connection: str) -> dict[str, int]:
    """Deletes one connection's rows from every table (for `doow-azure disconnect --purge-data`); its raw
    points live in the landing files (the metric_points view), which `Landing.purge` deletes."""
    counts = {}
    with connect(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        for table in ("usage_daily", "requests_daily", "ptu_utilization_hourly", "accounts", "syncs", "sync_events",
                      "connections"):
            counts[table] = con.execute(f"DELETE FROM {SCHEMA}.{table} WHERE connection = ?", [connection]).fetchone()[0]
        con.execute("COMMIT")
    return counts

