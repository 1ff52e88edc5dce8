"""Idempotent partition writes into DuckDB from the landing zone.

A write covers a set of UTC days and replaces, in one transaction, everything those days hold: raw
points and accounts of each connection that landed them, and the usage rows rebuilt from the raw points
of every configured connection. Rerunning leaves identical tables; a crash before COMMIT leaves the old
data. DuckDB takes one writer process at a time: Dagster's `duckdb` pool (limit 1) serialises writers,
and `connect` also waits out a lock held by someone else (an analyst's session, say) for a bounded time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import polars as pl

from ..core.checks import LANDING_FILES_READABLE, CheckOutcome
from ..core.metrics import POINT_SCHEMA, REQUEST_POINT_SCHEMA, UTILIZATION_POINT_SCHEMA
from ..core.phases import PhaseHook, phase
from ..usage.activity import roll_up_requests, roll_up_utilization
from ..usage.anomalies import AnomalyThresholds
from ..usage.transform import LEGACY_REQUEST_METRIC, model_names, roll_up_daily
from .analyst import Publication, publish_analyst_copy
from .checks import accounts_checks, activity_anomalies, usage_checks
from .cost import delete_connection_cost
from .database import commit, connect, rollback
from .landing import LEGACY_POINTS, CorruptLandingFile, DayManifest, Landing
from .landing_cache import LandingCache, cache_root
from .landing_store import LandingLocation
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
class DayUsage:
    """What one written day holds: its own totals (a range write reports each day separately)."""

    usage_rows: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0
    by_model: list[dict[str, object]] = field(default_factory=list)  # model_name, model_version, tokens, requests
    by_connection: list[dict[str, object]] = field(default_factory=list)  # connection, rows, tokens, requests
    connections_landed: list[str] = field(default_factory=list)
    connections_missing: list[str] = field(default_factory=list)  # configured, nothing landed for the day


@dataclass
class DayAccounts:
    rows: int = 0
    readable: int = 0
    unreadable: list[str] = field(default_factory=list)  # "<connection>: <account name>"


@dataclass
class WriteSummary:
    days: list[date]
    usage_rows: int = 0
    raw_points: int = 0
    accounts: int = 0
    per_day: dict[date, DayUsage] = field(default_factory=dict)  # every day of the range, empty days included
    accounts_per_day: dict[date, DayAccounts] = field(default_factory=dict)
    check_results: list[CheckOutcome] = field(default_factory=list)
    accounts_check_results: list[CheckOutcome] = field(default_factory=list)
    preview: pl.DataFrame | None = None  # the largest rows written, for a glance in the Dagster UI
    corrupt: list[CorruptFile] = field(default_factory=list)  # landing files skipped (named, with the fix)
    # day -> requests, throttled requests and share, downgraded priority requests, PTU peak and hours >= 90%
    activity_per_day: dict[str, dict[str, float]] = field(default_factory=dict)
    publication: Publication | None = None  # the analyst copy published after the COMMIT (None: not configured)

    @property
    def totals_per_day(self) -> dict[str, dict[str, int]]:
        """Day -> rows and token sums, for days with usage."""
        return {
            str(d): {
                "usage_rows": u.usage_rows,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "total_tokens": u.total_tokens,
            }
            for d, u in self.per_day.items()
            if u.usage_rows
        }


def _activity_per_day(requests: pl.DataFrame, utilization: pl.DataFrame) -> dict[str, dict[str, float]]:
    per_day: dict[str, dict[str, float]] = {}
    daily = requests.group_by("usage_date").agg(
        pl.col("requests").sum().alias("requests"),
        pl.col("requests").filter(pl.col("status_code") == "429").sum().alias("throttled_requests"),
        pl.col("requests")
        .filter(
            (pl.col("tier_request").str.to_lowercase() == "priority")
            & (pl.col("tier_response").fill_null("").str.to_lowercase() != "priority")
        )
        .sum()
        .alias("downgraded_priority_requests"),
    )
    for row in daily.iter_rows(named=True):
        per_day[str(row["usage_date"])] = {
            "requests": row["requests"],
            "throttled_requests": row["throttled_requests"],
            "throttled_share": round(row["throttled_requests"] / row["requests"], 6) if row["requests"] else 0.0,
            "downgraded_priority_requests": row["downgraded_priority_requests"],
        }
    peaks = utilization.group_by("usage_date").agg(
        pl.col("max_utilization").max().alias("ptu_max_utilization"),
        pl.col("hour").filter(pl.col("max_utilization") >= 90).n_unique().alias("ptu_hours_at_or_above_90"),
    )
    for row in peaks.iter_rows(named=True):
        per_day.setdefault(str(row["usage_date"]), {}).update(
            {
                "ptu_max_utilization": row["ptu_max_utilization"],
                "ptu_hours_at_or_above_90": row["ptu_hours_at_or_above_90"],
            }
        )
    return dict(sorted(per_day.items()))


@dataclass(frozen=True)
class CorruptFile:
    """A landing file that cannot be read: named, with the fix, and skipped so it blocks nothing else."""

    connection: str
    day: date | None  # None: a run's events file
    path: Path | str  # where it is in the landing zone (a blob landing zone's: its az:// URL)
    reason: str
    local: Path | None = None  # the file the writer read (a blob's: its cached copy)

    @property
    def message(self) -> str:
        what = f"connection {self.connection}, day {self.day}" if self.day else f"connection {self.connection}"
        fix = (
            f"re-sync that day (doow-azure sync --from {self.day} --to {self.day} -c {self.connection}), which "
            "rewrites it; the day keeps its previous rows until then"
            if self.day
            else "delete this file (it only holds that run's events)"
        )
        return f"corrupt landing file {self.path} ({what}): {self.reason}. Fix: {fix}."


def _readable_points(path: Path) -> str | None:
    """Why a day's points file cannot be read (its Parquet footer and schema), or None when it is fine."""
    try:
        with path.open("rb") as fh:  # a file object: a folder named `wh[1]` is not a glob pattern
            schema = pl.read_parquet_schema(fh)
    except FileNotFoundError:
        return "the points file is missing (its manifest says the day was synced)"
    except Exception as exc:  # noqa: BLE001 - polars raises several error types for a broken file
        return " ".join(str(exc).split())[:200] or type(exc).__name__
    missing = [name for name in POINT_SCHEMA if name not in schema]
    return f"columns {', '.join(missing)} are missing" if missing else None


def _set_aside(path: Path) -> Path | None:
    """Renames a corrupt points file out of the metric_points view's pattern (one broken file would fail
    every read of the view), and drops the day's `points.parquet` name when it is the same file; the re-sync
    that rewrites the day replaces it."""
    aside = path.with_name(path.name + ".corrupt")
    alias = path.with_name(LEGACY_POINTS)
    try:
        if alias != path and alias.exists() and os.path.samefile(alias, path):
            alias.unlink()
        os.replace(path, aside)
    except OSError:
        return None
    return aside


Display = Callable[[Path | str], Path | str]  # a file the writer read -> where it is in the landing zone


def _landed_days(
    landing: Landing, connections: list[str], days: list[date], corrupt: list[CorruptFile], display: Display
) -> Iterator[tuple[str, date, DayManifest]]:
    for connection in connections:
        for day in days:
            try:
                manifest = landing.manifest(connection, day)
            except CorruptLandingFile as exc:
                corrupt.append(CorruptFile(connection, day, display(exc.path), exc.reason, Path(exc.path)))
                continue
            if manifest is None:
                continue
            # Exactly the points file this manifest names: never another sync's file of the same day.
            points = landing.points_file(manifest)
            reason = _readable_points(points)
            if reason is not None:
                local = points
                if points.exists():
                    aside = _set_aside(points)
                    if aside is not None:
                        local = aside
                        # A blob's cached copy is set aside; the blob itself stays for the re-sync to replace.
                        reason += f"; moved aside to {aside}" if display(points) == points else ""
                corrupt.append(CorruptFile(connection, day, display(points), reason, local))
                continue
            landing.keep_stable_name(manifest)
            yield connection, day, manifest


TAG_ENTRIES = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))  # DuckDB: map_from_entries
_ACCOUNT_SCHEMA: dict[str, Any] = {
    "tenant_id": pl.String,
    "subscription_id": pl.String,
    "resource_group": pl.String,
    "resource_name": pl.String,
    "resource_id": pl.String,
    "resource_kind": pl.String,
    "resource_region": pl.String,
    "readable": pl.Boolean,
    "metrics_api": pl.String,
    "metric_families": pl.String,
    "tags": TAG_ENTRIES,
}


def _account_record(account: dict[str, Any]) -> dict[str, Any]:
    """A manifest's account with its tags as map entries (manifests from before tags were kept have none)."""
    tags = account.get("tags") or {}
    return {**account, "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]}


def _accounts_frame(landed: list[tuple[str, date, DayManifest]]) -> pl.DataFrame:
    """The account inventory of every landed (connection, day), one frame per manifest."""
    frames = [
        pl.DataFrame([_account_record(a) for a in manifest.accounts], schema=_ACCOUNT_SCHEMA).with_columns(
            pl.lit(day).alias("usage_date"),
            pl.lit(connection).alias("connection"),
            pl.lit(datetime.fromisoformat(manifest.synced_at).replace(tzinfo=None))
            .cast(pl.Datetime("us"))
            .alias("synced_at"),
        )
        for connection, day, manifest in landed
        if manifest.accounts
    ]
    schema = {"usage_date": pl.Date, "connection": pl.String, **_ACCOUNT_SCHEMA, "synced_at": pl.Datetime("us")}
    return pl.concat(frames).select(list(schema)) if frames else pl.DataFrame(schema=schema)


def _sync_state_frame(landed: list[tuple[str, date, DayManifest]]) -> pl.DataFrame:
    rows = [
        {
            "connection": c,
            "usage_date": d,
            "is_final": m.is_final,
            "synced_at": datetime.fromisoformat(m.synced_at).replace(tzinfo=None),
            "accounts_in_scope": len(m.accounts),
            "raw_points": m.rows,
        }
        for c, d, m in landed
    ]
    schema: dict[str, pl.DataType] = {
        "connection": pl.String(),
        "usage_date": pl.Date(),
        "is_final": pl.Boolean(),
        "synced_at": pl.Datetime("us"),
        "accounts_in_scope": pl.Int64(),
        "raw_points": pl.Int64(),
    }
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


_EVENT_SCHEMA: dict[str, pl.DataType] = {
    "time": pl.Datetime("us"),
    "connection": pl.String(),
    "partition": pl.String(),
    "level": pl.String(),
    "code": pl.String(),
    "message": pl.String(),
    "resource": pl.String(),
}
CORRUPT_LANDING_FILE = "corrupt_landing_file"


def _read_events(path: Path) -> pl.DataFrame:
    frame = pl.read_json(path)
    missing = [name for name in _EVENT_SCHEMA if name not in frame.columns]
    if missing:
        raise ValueError(f"columns {', '.join(missing)} are missing")
    frame = frame.with_columns(pl.col("resource").cast(pl.String))
    return frame.with_columns(
        pl.col("time").str.to_datetime(time_zone="UTC").dt.replace_time_zone(None).cast(pl.Datetime("us"))
    ).select(list(_EVENT_SCHEMA))


def _events_frame(
    landing: Landing, connections: list[str], corrupt: list[CorruptFile], display: Display
) -> pl.DataFrame:
    frames = []
    for connection in connections:
        for path in landing.event_files(connection):
            try:
                frames.append(_read_events(path))
            except Exception as exc:  # noqa: BLE001 - any unreadable events file is named and skipped
                corrupt.append(CorruptFile(connection, None, display(path), " ".join(str(exc).split())[:200], path))
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=_EVENT_SCHEMA)


def _corrupt_events(corrupt: list[CorruptFile]) -> pl.DataFrame:
    """One ERROR event per corrupt file, stamped with the file's modification time, so rewriting the same
    warehouse range records it once."""
    rows = []
    for item in corrupt:
        try:
            stamp = datetime.fromtimestamp((item.local or Path(item.path)).stat().st_mtime, UTC).replace(tzinfo=None)
        except OSError:
            stamp = datetime(1970, 1, 1)
        rows.append(
            {
                "time": stamp,
                "connection": item.connection,
                "partition": str(item.day) if item.day else PurePosixPath(str(item.path)).stem,
                "level": "ERROR",
                "code": CORRUPT_LANDING_FILE,
                "message": item.message,
                "resource": None,
            }
        )
    return pl.DataFrame(rows, schema=_EVENT_SCHEMA)


def _landed_points(landed: list[tuple[str, date, DayManifest]], landing: Landing) -> pl.LazyFrame:
    """The raw points of the landed (connection, day) files, read straight from Parquet with polars."""
    by_connection: dict[str, list[str]] = {}
    for connection, _day, manifest in landed:
        by_connection.setdefault(connection, []).append(str(landing.points_file(manifest)))
    # glob=False: a warehouse folder named like `wh[1]` is a path, not a pattern.
    frames = [
        pl.scan_parquet(files, glob=False).with_columns(pl.lit(connection).alias("connection"))
        for connection, files in by_connection.items()
    ]
    return pl.concat(frames) if frames else pl.LazyFrame(schema={"connection": pl.String, **POINT_SCHEMA})


def build_usage(
    con: duckdb.DuckDBPyConnection,
    points: pl.LazyFrame,
    connections: list[str],
    accounts: pl.DataFrame,
    sync_state: pl.DataFrame,
) -> pl.DataFrame:
    """Usage rows from raw points, enriched with account metadata; model names known from every models-family
    point and legacy request-metric point in DuckDB, so a day's rows do not depend on which range was rebuilt
    with it."""
    known_names = con.execute(
        f"SELECT DISTINCT resource_id, family, metric, deployment, model_name, model_version "
        f"FROM {SCHEMA}.metric_points WHERE (family = 'models' OR lower(metric) = '{LEGACY_REQUEST_METRIC}') "
        "AND model_name IS NOT NULL AND connection IN (SELECT unnest($connections))",
        {"connections": connections},
    ).pl()
    usage = roll_up_daily(points, model_names(known_names))
    meta = accounts.select(
        "usage_date",
        "connection",
        "resource_id",
        "tenant_id",
        "subscription_id",
        "resource_group",
        "resource_name",
        "resource_kind",
        "resource_region",
    ).unique(["usage_date", "connection", "resource_id"])
    usage = usage.join(meta, on=["usage_date", "connection", "resource_id"], how="left").join(
        sync_state.select("usage_date", "connection", "is_final", "synced_at"),
        on=["usage_date", "connection"],
        how="left",
    )
    # Day order keeps DuckDB's per-block min/max useful for date filters.
    return usage.select([name for name, _ in USAGE_DAILY_COLUMNS]).sort("usage_date")


def _landed_activity(
    landed: list[tuple[str, date, DayManifest]], landing: Landing, kind: str, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """The landed activity files of one kind (days synced before activity existed have none)."""
    frames = []
    for connection, _day, manifest in landed:
        path = landing.activity_file(manifest, kind)
        if path is not None and path.exists():
            frames.append(pl.read_parquet(path, glob=False).with_columns(pl.lit(connection).alias("connection")))
    empty = pl.DataFrame(schema={"connection": pl.String, **schema})
    return pl.concat([empty, *[f.select(empty.columns) for f in frames]], how="vertical_relaxed")


def build_activity(
    landed: list[tuple[str, date, DayManifest]],
    landing: Landing,
    usage: pl.DataFrame,
    accounts: pl.DataFrame,
    sync_state: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """requests_daily and ptu_utilization_hourly rows for the landed days, enriched like usage."""
    names = accounts.select("usage_date", "connection", "resource_id", "resource_name").unique(
        ["usage_date", "connection", "resource_id"]
    )
    state = sync_state.select("usage_date", "connection", "is_final", "synced_at")
    requests = roll_up_requests(_landed_activity(landed, landing, "requests", REQUEST_POINT_SCHEMA), usage)
    utilization = roll_up_utilization(_landed_activity(landed, landing, "utilization", UTILIZATION_POINT_SCHEMA), usage)
    requests = (
        requests.join(names, on=["usage_date", "connection", "resource_id"], how="left")
        .join(state, on=["usage_date", "connection"], how="left")
        .select([name for name, _ in REQUESTS_DAILY_COLUMNS])
        .sort("usage_date")
    )
    utilization = (
        utilization.join(names, on=["usage_date", "connection", "resource_id"], how="left")
        .join(state, on=["usage_date", "connection"], how="left")
        .select([name for name, _ in PTU_UTILIZATION_HOURLY_COLUMNS])
        .sort("hour")
    )
    return requests, utilization


def _create_metric_points_view(con: duckdb.DuckDBPyConnection, landing: Landing) -> None:
    kind = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = $schema AND "
        "table_name = 'metric_points'",
        {"schema": SCHEMA},
    ).fetchone()
    if kind and kind[0] == "BASE TABLE":  # warehouses from before metric_points became a view
        con.execute(f"DROP TABLE {SCHEMA}.metric_points")
    has_files = any((landing.root / "points").glob("connection=*/day=*/points.parquet"))
    con.execute(metric_points_view_sql(str(landing.root.resolve()), has_files))


def _landing_check(corrupt: list[CorruptFile]) -> CheckOutcome:
    if not corrupt:
        return CheckOutcome(LANDING_FILES_READABLE, True, "Every landing file of the range could be read.")
    return CheckOutcome(
        LANDING_FILES_READABLE,
        False,
        f"{len(corrupt)} corrupt landing file(s) skipped: "
        + " ".join(c.message for c in corrupt[:3])
        + (" ..." if len(corrupt) > 3 else ""),
        {"files": [str(c.path) for c in corrupt]},
    )


def _kept_days_frame(corrupt: list[CorruptFile]) -> pl.DataFrame:
    """(connection, day) pairs whose landing files are corrupt: their rows stay as they were."""
    pairs = sorted({(c.connection, c.day) for c in corrupt if c.day is not None})
    return pl.DataFrame(
        [{"connection": c, "usage_date": d} for c, d in pairs], schema={"connection": pl.String, "usage_date": pl.Date}
    )


def _replace_landed_rows(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute(
        f"DELETE FROM {SCHEMA}.{table} USING landed_days "
        f"WHERE {table}.connection = landed_days.connection AND {table}.usage_date = landed_days.usage_date"
    )


def readable_landing(source: Landing, warehouse: Path, connections: list[str]) -> tuple[Landing, Display]:
    """The landing zone as local files for this writer: a local folder as it is, a blob container through the
    writer's cache beside the warehouse, refreshed now (the caller holds the warehouse)."""
    if source.is_local:
        return source, lambda path: path
    cache = LandingCache(source, cache_root(warehouse))
    return cache.refresh(connections), cache.display


def write_partitions(
    warehouse: Path,
    landing_root: Path | str | LandingLocation | Landing,
    connections: list[ConnectionRecord],
    days: list[date],
    on_phase: PhaseHook | None = None,
    anomalies: AnomalyThresholds | None = None,
    analyst_copy: Path | None = None,
) -> WriteSummary:
    """Loads the landed `days` of every configured connection and rebuilds their usage, in one transaction.

    `days` is a contiguous range (a partition range); `connections` are the configured connections;
    `anomalies` the thresholds of the activity anomaly checks (defaults when None); `analyst_copy` where the
    read-only analyst copy is published after the COMMIT (None: not published).
    """
    first, last = min(days), max(days)
    if len(days) != (last - first).days + 1:
        raise ValueError(f"days must be a contiguous range, got {len(days)} days from {first} to {last}")
    source = landing_root if isinstance(landing_root, Landing) else Landing(landing_root)
    names = [c.name for c in connections]
    summary = WriteSummary(days=days)
    in_range = {"first": first, "last": last}
    with connect(warehouse) as con:
        # What to replace is decided only now that this process holds the warehouse: manifests read before
        # the lock (which another writer may hold for minutes) would be a stale view, and replacing the
        # range from it would drop the usage another sync landed and wrote meanwhile.
        with phase(on_phase, "load_manifests"):
            landing, display = readable_landing(source, warehouse, names)
            corrupt: list[CorruptFile] = []
            landed = list(_landed_days(landing, names, days, corrupt, display))
            accounts = _accounts_frame(landed)
            sync_state = _sync_state_frame(landed)
            events = _events_frame(landing, names, corrupt, display)
            events = pl.concat([events, _corrupt_events(corrupt)])
        summary.corrupt = corrupt
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("landed_days", sync_state)
            con.register("kept_days", _kept_days_frame(corrupt))
            _create_metric_points_view(con, landing)
            _replace_landed_rows(con, "syncs")
            con.execute(f"INSERT INTO {SCHEMA}.syncs BY NAME SELECT * FROM landed_days")
            _replace_landed_rows(con, "accounts")
            con.register("new_accounts", accounts)
            con.execute(
                f"INSERT INTO {SCHEMA}.accounts BY NAME SELECT * REPLACE (map_from_entries(tags) AS tags) "
                "FROM new_accounts"
            )
            # Usage is built from the landed (connection, day) files only, so the accounts and sync state
            # just loaded from the same manifests are all the metadata it needs.
            with phase(on_phase, "build_usage"):
                usage = build_usage(con, _landed_points(landed, landing), names, accounts, sync_state)
            with phase(on_phase, "insert_usage"):
                # The days of a corrupt landing file keep their previous rows until that day is re-synced.
                con.execute(
                    f"DELETE FROM {SCHEMA}.usage_daily WHERE usage_date BETWEEN $first AND $last AND NOT "
                    "EXISTS (SELECT 1 FROM kept_days k WHERE k.connection = usage_daily.connection AND "
                    "k.usage_date = usage_daily.usage_date)",
                    in_range,
                )
                con.register("new_usage", usage)
                con.execute(f"INSERT INTO {SCHEMA}.usage_daily BY NAME SELECT * FROM new_usage")
            with phase(on_phase, "insert_activity"):
                requests, utilization = build_activity(landed, landing, usage, accounts, sync_state)
                for table, frame in (("requests_daily", requests), ("ptu_utilization_hourly", utilization)):
                    con.execute(
                        f"DELETE FROM {SCHEMA}.{table} WHERE usage_date BETWEEN $first AND $last AND NOT "
                        f"EXISTS (SELECT 1 FROM kept_days k WHERE k.connection = {table}.connection AND "
                        f"k.usage_date = {table}.usage_date)",
                        in_range,
                    )
                    con.register(f"new_{table}", frame)
                    con.execute(f"INSERT INTO {SCHEMA}.{table} BY NAME SELECT * FROM new_{table}")
            con.register("new_events", events)
            con.execute(
                f"INSERT INTO {SCHEMA}.sync_events SELECT * FROM new_events EXCEPT SELECT * FROM {SCHEMA}.sync_events"
            )
            con.register(
                "configured",
                pl.DataFrame(
                    [c.__dict__ for c in connections],
                    schema={
                        "name": pl.String,
                        "tenant_id": pl.String,
                        "client_id": pl.String,
                        "scope": pl.String,
                        "cloud": pl.String,
                    },
                ),
            )
            con.execute(f"DELETE FROM {SCHEMA}.connections")
            con.execute(
                f"INSERT INTO {SCHEMA}.connections SELECT name, tenant_id, client_id, scope, cloud FROM configured"
            )
            landed_by_day = _connections_by_day(landed)
            missing = {d: [n for n in names if n not in landed_by_day.get(d, set())] for d in days}
            with phase(on_phase, "usage_checks"):
                summary.check_results = [*usage_checks(con, usage, days, missing), _landing_check(corrupt)]
                summary.check_results += activity_anomalies(con, days, anomalies or AnomalyThresholds())
                summary.accounts_check_results = accounts_checks(accounts)
            with phase(on_phase, "commit"):
                commit(con, warehouse)
        except BaseException:
            rollback(con)
            raise
        if analyst_copy is not None:
            with phase(on_phase, "publish_analyst_copy"):
                summary.publication = publish_analyst_copy(con, warehouse, analyst_copy)
    summary.usage_rows = usage.height
    summary.activity_per_day = _activity_per_day(requests, utilization)
    summary.preview = (
        usage.sort("total_tokens", descending=True)
        .head(10)
        .select(
            "usage_date",
            "resource_name",
            "deployment",
            "model_name",
            "model_version",
            "metric_region",
            "input_tokens",
            "output_tokens",
            "requests",
            "metric_family",
        )
    )
    summary.raw_points = sum(m.rows for _, _, m in landed)
    summary.accounts = accounts.height
    summary.per_day = _per_day_usage(usage, days, landed_by_day, missing)
    summary.accounts_per_day = _per_day_accounts(accounts, days)
    return summary


def _connections_by_day(landed: list[tuple[str, date, DayManifest]]) -> dict[date, set[str]]:
    by_day: dict[date, set[str]] = {}
    for connection, day, _manifest in landed:
        by_day.setdefault(day, set()).add(connection)
    return by_day


_SUMS = [
    pl.len().alias("usage_rows"),
    pl.col("input_tokens").sum(),
    pl.col("output_tokens").sum(),
    pl.col("total_tokens").sum(),
    pl.col("requests").sum(),
]


def _per_day_usage(
    usage: pl.DataFrame, days: list[date], landed_by_day: dict[date, set[str]], missing: dict[date, list[str]]
) -> dict[date, DayUsage]:
    """Each day's own totals, and its tokens by model and by connection (largest first)."""
    totals = {row.pop("usage_date"): row for row in usage.group_by("usage_date").agg(_SUMS).iter_rows(named=True)}
    by_model: dict[date, list[dict[str, object]]] = {}
    for row in (
        usage.group_by("usage_date", "model_name", "model_version")
        .agg(_SUMS[1:])
        .sort(["usage_date", "total_tokens"], descending=[False, True])
        .iter_rows(named=True)
    ):
        by_model.setdefault(row.pop("usage_date"), []).append(row)
    by_connection: dict[date, list[dict[str, object]]] = {}
    for row in (
        usage.group_by("usage_date", "connection")
        .agg(_SUMS)
        .sort(["usage_date", "total_tokens"], descending=[False, True])
        .iter_rows(named=True)
    ):
        by_connection.setdefault(row.pop("usage_date"), []).append(row)
    result = {}
    for day in days:
        t = totals.get(day, {})
        result[day] = DayUsage(
            usage_rows=int(t.get("usage_rows") or 0),
            input_tokens=int(t.get("input_tokens") or 0),
            output_tokens=int(t.get("output_tokens") or 0),
            total_tokens=int(t.get("total_tokens") or 0),
            requests=int(t.get("requests") or 0),
            by_model=by_model.get(day, []),
            by_connection=by_connection.get(day, []),
            connections_landed=sorted(landed_by_day.get(day, set())),
            connections_missing=missing.get(day, []),
        )
    return result


def _per_day_accounts(accounts: pl.DataFrame, days: list[date]) -> dict[date, DayAccounts]:
    result = {day: DayAccounts() for day in days}
    readable = pl.col("readable").fill_null(False)
    for counts in accounts.group_by("usage_date").agg(pl.len(), readable.sum()).iter_rows(named=True):
        result[counts["usage_date"]].rows = counts["len"]
        result[counts["usage_date"]].readable = counts["readable"]
    # Only the unreadable accounts are walked in Python (a few; the inventory holds every account every day).
    unreadable = accounts.filter(~readable).select("usage_date", "connection", "resource_name")
    for day, connection, name in unreadable.iter_rows():
        result[day].unreadable.append(f"{connection}: {name}")
    return result


@dataclass
class PurgeSummary:
    counts: dict[str, int]  # table -> rows deleted
    publication: Publication | None = None


def delete_connection(warehouse: Path, connection: str, analyst_copy: Path | None = None) -> PurgeSummary:
    """Deletes one connection's rows from every table (for `doow-azure disconnect --purge-data`); its raw
    points live in the landing files (the metric_points view), which `Landing.purge` deletes. The analyst
    copy, when configured, is published again without them."""
    counts = {}
    with connect(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            counts.update(delete_connection_cost(con, connection))
            for table in (
                "usage_daily",
                "requests_daily",
                "ptu_utilization_hourly",
                "accounts",
                "syncs",
                "sync_events",
                "connections",
            ):
                deleted = con.execute(f"DELETE FROM {SCHEMA}.{table} WHERE connection = ?", [connection]).fetchone()
                assert deleted is not None  # a DELETE answers one row: its count
                counts[table] = deleted[0]
            commit(con, warehouse)
        except BaseException:
            rollback(con)
            raise
        publication = publish_analyst_copy(con, warehouse, analyst_copy) if analyst_copy is not None else None
    return PurgeSummary(counts, publication)
