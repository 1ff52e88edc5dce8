"""The shared DuckDB assets: `usage_daily` + `accounts` (the only writer, in the `duckdb` pool) and
`connection_status`. Thin: the work happens in warehouse/ and usage/."""


from collections.abc import Iterator

import dagster as dg
import polars as pl

from ..config import ProjectConfig
from ..core.checks import USAGE_CHECKS
from ..warehouse import queries
from ..warehouse.database import connect
from ..warehouse.schema import USAGE_DAILY_COLUMNS
from ..warehouse.store import ConnectionRecord, WriteSummary, write_partitions
from .common import DUCKDB_POOL, GROUP, OWNERS, check_result, check_spec, markdown_table, partition_days
from .connection import metric_points_key
from .resources import WarehouseResource

USAGE_DAILY_KEY = dg.AssetKey([GROUP, "usage_daily"])
ACCOUNTS_KEY = dg.AssetKey([GROUP, "accounts"])
CONNECTION_STATUS_KEY = dg.AssetKey([GROUP, "connection_status"])

USAGE_SCHEMA = dg.TableSchema(columns=[dg.TableColumn(name, kind.replace(" NOT NULL", ""),
                                                      constraints=dg.TableColumnConstraints(
                                                          nullable="NOT NULL" not in kind))
                                       for name, kind in USAGE_DAILY_COLUMNS])


def _usage_metadata(summary: WriteSummary) -> dict[str, object]:
    preview = summary.preview if summary.preview is not None else pl.DataFrame()
    return {
        "dagster/row_count": summary.usage_rows,
        "dagster/column_schema": USAGE_SCHEMA,
        "range_total_tokens": sum(t["total_tokens"] for t in summary.totals_per_day.values()),
        "tokens_per_day": dg.MetadataValue.table(
            records=[dg.TableRecord({"usage_date": d, **t}) for d, t in summary.totals_per_day.items()],
            schema=dg.TableSchema(columns=[dg.TableColumn("usage_date", "date")] + [
                dg.TableColumn(name, "int") for name in ("usage_rows", "input_tokens", "output_tokens",
                                                         "total_tokens")])),
        "preview": dg.MetadataValue.md(markdown_table(preview.columns, preview.rows())),
    }


def connection_records(config: ProjectConfig) -> list[ConnectionRecord]:
    return [ConnectionRecord(c.name, c.tenant_id, c.client_id, c.scope, c.cloud) for c in config.connections]


def usage_daily_asset(config: ProjectConfig, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    connections = connection_records(config)
    upstream = [metric_points_key(c.name) for c in config.connections]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(USAGE_DAILY_KEY, deps=upstream, group_name=GROUP, owners=OWNERS, kinds={"duckdb", "polars"},
                         partitions_def=partitions,
                         description="Daily Azure OpenAI usage per subscription, resource, deployment, model and "
                                     "region; overlapping connections counted once; one metric family per "
                                     "(resource, deployment, day)."),
            dg.AssetSpec(ACCOUNTS_KEY, deps=upstream, group_name=GROUP, owners=OWNERS, kinds={"duckdb"},
                         partitions_def=partitions,
                         description="Azure OpenAI accounts in scope per connection and day, with readability "
                                     "and the metrics API used."),
        ],
        check_specs=[check_spec(check, USAGE_DAILY_KEY) for check in USAGE_CHECKS],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        name="write_usage_daily",
    )
    def write_usage_daily(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[object]:
        days = partition_days(context)
        context.log.info(f"write: rebuilding usage for {days[0]}..{days[-1]} from {warehouse.landing_path}")
        summary = write_partitions(warehouse.warehouse_path, warehouse.landing_path, connections, days)
        context.log.info(f"write: {summary.usage_rows:,} usage row(s), {summary.raw_points:,} raw point(s), "
                         f"{summary.accounts:,} account-day(s) into {warehouse.warehouse_path}")
        # One observation per day with that day's totals, so Dagster plots tokens per partition even when a
        # backfill writes a whole range in one run.
        for day, totals in summary.totals_per_day.items():
            context.log_event(dg.AssetObservation(asset_key=USAGE_DAILY_KEY, partition=day, metadata=totals))
        yield dg.MaterializeResult(asset_key=USAGE_DAILY_KEY, metadata=_usage_metadata(summary))
        yield dg.MaterializeResult(asset_key=ACCOUNTS_KEY, metadata={"dagster/row_count": summary.accounts})
        for outcome in summary.check_results:
            yield check_result(outcome, USAGE_DAILY_KEY)

    return write_usage_daily


@dg.asset(
    key=CONNECTION_STATUS_KEY,
    deps=[USAGE_DAILY_KEY],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    description="Health of each connection (view azure_openai.connection_status): state, last successful sync, "
                "last error, rows and accounts covered.",
)
def connection_status(warehouse: WarehouseResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
    with connect(warehouse.warehouse_path) as con:
        status = queries.connection_status(con)
    columns = ["connection", "state", "last_successful_sync", "last_error", "usage_rows", "total_tokens",
               "accounts_covered", "accounts_in_scope"]
    rows = [[name] + [row[c] for c in columns[1:]] for name, row in sorted(status.items())]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        "failing": sum(1 for row in status.values() if row["state"] == "failing"),
        "status": dg.MetadataValue.md(markdown_table(columns, rows)),
    })
