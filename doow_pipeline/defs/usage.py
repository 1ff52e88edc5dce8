"""The shared DuckDB assets: `usage_daily` + `accounts` (the only writer, in the `duckdb` pool) and
`connection_status`. Thin: the work happens in warehouse/ and usage/.

Per-partition truth: a single-run backfill materialises every partition of its range from one step. Dagster
records one materialization per partition, each carrying the step's metadata merged with what
`context.add_asset_metadata(..., partition_key=day)` attached to that day (dagster/_core/execution/plan/
execute_step.py, `_get_output_asset_events`). So the run-wide metadata here holds only what is true of every
day (schema, table name), and each day's numbers are attached to its own partition.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg
import polars as pl

from ..config import ProjectConfig
from ..core.checks import (
    ACCOUNTS_CHECKS,
    ANOMALY_CHECKS,
    USAGE_CHECKS,
    CheckOutcome,
    Severity,
    connection_health_check,
)
from ..usage.anomalies import AnomalyThresholds
from ..warehouse import queries
from ..warehouse.database import connect
from ..warehouse.schema import (
    ACCOUNTS_COLUMNS,
    ACCOUNTS_DESCRIPTIONS,
    CONNECTION_STATUS_DESCRIPTIONS,
    SCHEMA,
    USAGE_DAILY_COLUMNS,
    USAGE_DAILY_DESCRIPTIONS,
)
from ..warehouse.store import ConnectionRecord, DayAccounts, DayUsage, WriteSummary, write_partitions
from .common import (
    DUCKDB_POOL,
    GROUP,
    OWNERS,
    check_result,
    check_spec,
    log_publication,
    markdown_table,
    partition_days,
)
from .connection import metric_points_key
from .resources import WarehouseResource

USAGE_DAILY_KEY = dg.AssetKey([GROUP, "usage_daily"])
ACCOUNTS_KEY = dg.AssetKey([GROUP, "accounts"])
CONNECTION_STATUS_KEY = dg.AssetKey([GROUP, "connection_status"])

# The daily schedule runs at 03:30 UTC; a day and a half without a write means a missed run.
USAGE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=36), warn_window=timedelta(hours=27))


def table_schema(columns: tuple[tuple[str, str], ...], descriptions: dict[str, str]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                kind.replace(" NOT NULL", "").lower(),
                description=descriptions[name],
                constraints=dg.TableColumnConstraints(nullable="NOT NULL" not in kind),
            )
            for name, kind in columns
        ]
    )


USAGE_SCHEMA = table_schema(USAGE_DAILY_COLUMNS, USAGE_DAILY_DESCRIPTIONS)
ACCOUNTS_SCHEMA = table_schema(ACCOUNTS_COLUMNS, ACCOUNTS_DESCRIPTIONS)
STATUS_COLUMNS = (
    "connection",
    "state",
    "cause",
    "next_action",
    "last_successful_sync",
    "usage_rows",
    "total_tokens",
    "accounts_covered",
    "accounts_in_scope",
)
# The view's column types (DuckDB's names) for the catalog: an untyped TableColumn reads "string".
STATUS_TYPES = {
    "last_successful_sync": "timestamp",
    "usage_rows": "bigint",
    "total_tokens": "hugeint",
    "accounts_covered": "bigint",
    "accounts_in_scope": "bigint",
}
STATUS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn(c, STATUS_TYPES.get(c, "varchar"), description=CONNECTION_STATUS_DESCRIPTIONS[c])
        for c in STATUS_COLUMNS
    ]
)
_TOKENS = ("input_tokens", "output_tokens", "total_tokens", "requests")
BY_MODEL_SCHEMA = dg.TableSchema(
    columns=[dg.TableColumn("model_name"), dg.TableColumn("model_version")]
    + [dg.TableColumn(c, "int") for c in _TOKENS]
)
BY_CONNECTION_SCHEMA = dg.TableSchema(
    columns=[dg.TableColumn("connection"), dg.TableColumn("usage_rows", "int")]
    + [dg.TableColumn(c, "int") for c in _TOKENS]
)


def _table(rows: list[dict[str, Any]], schema: dg.TableSchema) -> dg.TableMetadataValue:
    names = [c.name for c in schema.columns]
    # NULL model names (legacy azure_openai rows) would show as blank cells.
    return dg.MetadataValue.table(
        records=[dg.TableRecord({n: "(not reported)" if row[n] is None else row[n] for n in names}) for row in rows],
        schema=schema,
    )


def usage_day_metadata(day: DayUsage) -> dict[str, Any]:
    """One usage_daily partition: that day's rows and tokens, by model and by connection."""
    return {
        "dagster/row_count": day.usage_rows,
        "input_tokens": day.input_tokens,
        "output_tokens": day.output_tokens,
        "total_tokens": day.total_tokens,
        "requests": day.requests,
        "tokens_by_model": _table(day.by_model, BY_MODEL_SCHEMA),
        "tokens_by_connection": _table(day.by_connection, BY_CONNECTION_SCHEMA),
        "connections_landed": ", ".join(day.connections_landed) or "none",
        "connections_missing": ", ".join(day.connections_missing) or "none",
    }


def accounts_day_metadata(day: DayAccounts) -> dict[str, Any]:
    return {
        "dagster/row_count": day.rows,
        "accounts_readable": day.readable,
        "accounts_unreadable": ", ".join(day.unreadable) or "none",
    }


def _write_metadata(summary: WriteSummary) -> dict[str, Any]:
    """True of every partition the write covered: the table, its columns and the run's range."""
    preview = summary.preview if summary.preview is not None else pl.DataFrame()
    first, last = min(summary.days), max(summary.days)
    return {
        "dagster/table_name": f"{SCHEMA}.usage_daily",
        "dagster/column_schema": USAGE_SCHEMA,
        "written_in_range": f"{first}..{last} ({len(summary.days)} day(s), one transaction)",
        "largest_rows_of_range": dg.MetadataValue.md(markdown_table(preview.columns, preview.rows())),
        **(summary.publication.metadata() if summary.publication else {}),
    }


def connection_records(config: ProjectConfig) -> list[ConnectionRecord]:
    return [ConnectionRecord(c.name, c.tenant_id, c.client_id, c.scope, c.cloud) for c in config.connections]


def usage_daily_asset(config: ProjectConfig, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    connections = connection_records(config)
    settings = config.settings
    thresholds = AnomalyThresholds(settings.anomaly_factor, settings.anomaly_window_days, settings.anomaly_min_days)
    upstream = [metric_points_key(c.name) for c in config.connections]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                USAGE_DAILY_KEY,
                deps=upstream,
                group_name=GROUP,
                owners=OWNERS,
                kinds={"duckdb", "polars"},
                partitions_def=partitions,
                freshness_policy=USAGE_FRESHNESS,
                metadata={"dagster/table_name": f"{SCHEMA}.usage_daily", "dagster/column_schema": USAGE_SCHEMA},
                description="Daily Azure OpenAI usage per subscription, resource, deployment, model and "
                "region; overlapping connections counted once; one metric family per "
                "(resource, deployment, day). Each partition shows that day's rows and "
                "tokens, by model and by connection.",
            ),
            dg.AssetSpec(
                ACCOUNTS_KEY,
                deps=upstream,
                group_name=GROUP,
                owners=OWNERS,
                kinds={"duckdb"},
                partitions_def=partitions,
                metadata={"dagster/table_name": f"{SCHEMA}.accounts", "dagster/column_schema": ACCOUNTS_SCHEMA},
                description="Azure OpenAI accounts in scope per connection and day, with readability "
                "and the metrics API used.",
            ),
        ],
        check_specs=[check_spec(check, USAGE_DAILY_KEY) for check in USAGE_CHECKS + ANOMALY_CHECKS]
        + [check_spec(check, ACCOUNTS_KEY) for check in ACCOUNTS_CHECKS],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        name="write_usage_daily",
    )
    def write_usage_daily(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[object]:
        days = partition_days(context)
        context.log.info(f"write: rebuilding usage for {days[0]}..{days[-1]} from {warehouse.landing_location}")
        summary = write_partitions(
            warehouse.warehouse_path,
            warehouse.landing_zone(),
            connections,
            days,
            anomalies=thresholds,
            analyst_copy=warehouse.analyst_copy_path,
        )
        context.log.info(
            f"write: {summary.usage_rows:,} usage row(s), {summary.raw_points:,} raw point(s), "
            f"{summary.accounts:,} account-day(s) into {warehouse.warehouse_path}"
        )
        log_publication(context, summary.publication)
        for day in days:
            partition = day.isoformat()
            context.add_asset_metadata(
                usage_day_metadata(summary.per_day[day]), asset_key=USAGE_DAILY_KEY, partition_key=partition
            )
            context.add_asset_metadata(
                accounts_day_metadata(summary.accounts_per_day[day]), asset_key=ACCOUNTS_KEY, partition_key=partition
            )
        # Activity beyond tokens (throttled share, downgraded priority requests, the PTU peak and its hours at or
        # above 90%) is also observed per day, with the day's totals.
        for day_key in sorted(set(summary.totals_per_day) | set(summary.activity_per_day)):
            observed = {**summary.totals_per_day.get(day_key, {}), **summary.activity_per_day.get(day_key, {})}
            context.log_event(dg.AssetObservation(asset_key=USAGE_DAILY_KEY, partition=day_key, metadata=observed))
        yield dg.MaterializeResult(asset_key=USAGE_DAILY_KEY, metadata=_write_metadata(summary))
        yield dg.MaterializeResult(
            asset_key=ACCOUNTS_KEY,
            metadata={"dagster/table_name": f"{SCHEMA}.accounts", "dagster/column_schema": ACCOUNTS_SCHEMA},
        )
        for outcome in summary.check_results:
            yield check_result(outcome, USAGE_DAILY_KEY)
        for outcome in summary.accounts_check_results:
            yield check_result(outcome, ACCOUNTS_KEY)

    return write_usage_daily


def health_outcome(connection: str, row: dict[str, object] | None) -> CheckOutcome:
    """A connection's row of connection_status as its check: passes when healthy; WARN when degraded or
    never synced, ERROR when failing; the description is the cause and the next action."""
    check = connection_health_check(connection)
    if row is None:
        return CheckOutcome(check, False, f"'{connection}' is not in connection_status yet.")
    state = str(row["state"])
    metadata = {"state": state, "last_successful_sync": str(row["last_successful_sync"] or "never")}
    if state == "healthy":
        return CheckOutcome(
            check,
            True,
            f"healthy: {row['accounts_covered']} of {row['accounts_in_scope']} account(s) readable.",
            metadata,
        )
    return CheckOutcome(
        check,
        False,
        f"{state}: {row['cause']} Next action: {row['next_action']}",
        {**metadata, "cause": str(row["cause"]), "next_action": str(row["next_action"])},
        raised_to=Severity.ERROR if state == "failing" else None,
    )


def connection_status_asset(config: ProjectConfig) -> dg.AssetsDefinition:
    names = [c.name for c in config.connections]
    checks = [connection_health_check(n) for n in names]

    @dg.asset(
        key=CONNECTION_STATUS_KEY,
        deps=[USAGE_DAILY_KEY],
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb"},
        pool=DUCKDB_POOL,
        metadata={"dagster/table_name": f"{SCHEMA}.connection_status", "dagster/column_schema": STATUS_SCHEMA},
        check_specs=[check_spec(check, CONNECTION_STATUS_KEY) for check in checks],
        description="Health of each connection (view azure_openai.connection_status): healthy, degraded, failing "
        "or never synced, with the cause and the next action; one check per connection.",
    )
    def connection_status(warehouse: WarehouseResource) -> Iterator[object]:
        with connect(warehouse.warehouse_path) as con:
            status = queries.connection_status(con)
        rows = [[name] + [status[name][c] for c in STATUS_COLUMNS[1:]] for name in sorted(status)]
        states = [str(row["state"]) for row in status.values()]
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(rows),
                **{
                    state.replace(" ", "_"): states.count(state)
                    for state in ("healthy", "degraded", "failing", "never synced")
                },
                "status": dg.MetadataValue.md(markdown_table(list(STATUS_COLUMNS), rows)),
            }
        )
        for name in names:
            yield check_result(health_outcome(name, status.get(name)), CONNECTION_STATUS_KEY)

    return connection_status
