"""Dagster assets and their checks. Thin: the work happens in `sync`, `warehouse` and `usage`.

Per connection, `azure_openai/<connection>/metric_points` fetches a range of UTC days from Azure into the
landing zone (a range backfill is one run: `BackfillPolicy.single_run`). `azure_openai/usage_daily` and
`azure_openai/accounts` are written together by the only DuckDB writer step, in the `duckdb` pool.
"""


from datetime import date

import dagster as dg
import polars as pl

from ..clock import utc_now
from ..config import ProjectConfig, Settings
from ..sync import SyncOutcome, sync_connection
from ..warehouse.landing import Landing
from ..warehouse.schema import USAGE_DAILY_COLUMNS
from ..warehouse.store import WriteSummary, connect, days_between, write_partitions
from .resources import AzureConnectionResource, WarehouseResource, resource_key

GROUP = "azure_openai"
OWNERS = ["team:data-platform"]
DUCKDB_POOL = "duckdb"

CREDENTIALS = "credentials_and_monitoring_reader"
READABLE = "accounts_readable"
NOT_EMPTY = "sync_not_empty"
NOT_TRUNCATED = "no_series_truncated"

USAGE_CHECKS = {
    "unique_grain": ("One row per (usage_date, resource_id, deployment, model_name, model_version, metric_region).",
                     dg.AssetCheckSeverity.ERROR),
    "tokens_consistent": ("input_tokens + output_tokens equals total_tokens on every row.",
                          dg.AssetCheckSeverity.ERROR),
    "single_metric_family": ("No (day, resource, deployment) mixes the models and azure_openai families.",
                             dg.AssetCheckSeverity.ERROR),
    "no_overlapping_scopes": ("Warns when an account is reached through several connections (it is counted once).",
                              dg.AssetCheckSeverity.WARN),
}


def fetch_retry_policy(config: ProjectConfig) -> dg.RetryPolicy:
    """Step retries for fetches whose SDK retries ran out (Azure outages, long throttling)."""
    settings = config.settings
    return dg.RetryPolicy(max_retries=settings.step_retries, delay=settings.step_retry_delay_seconds,
                          backoff=dg.Backoff.EXPONENTIAL)


def daily_partitions(config: ProjectConfig) -> dg.DailyPartitionsDefinition:
    # end_offset=1 adds today's (partial) partition, so the schedule can refresh the current day.
    return dg.DailyPartitionsDefinition(start_date=config.settings.start_date.isoformat(), end_offset=1,
                                        timezone="UTC")


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    key_range = context.partition_key_range
    return days_between(date.fromisoformat(key_range.start), date.fromisoformat(key_range.end))


def metric_points_key(connection_name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, connection_name, "metric_points"])


# ---- per-connection raw asset ----------------------------------------------------------------------------------

def _markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _empty_sync_description(outcome: SyncOutcome) -> tuple[bool, str]:
    if not outcome.accounts:
        return False, ("No Azure OpenAI accounts (kind OpenAI or AIServices) in scope "
                       f"{outcome.connection!r}. Likely cause: usage is in another subscription, resource group or "
                       "region. Next action: confirm the scope, subscription and region before reconnecting.")
    if not outcome.readable_accounts:
        return False, "No account in scope is readable; see the credentials check."
    if outcome.points == 0 and outcome.extraction and outcome.extraction.synced_days:
        names = ", ".join(a.name for a in outcome.readable_accounts[:10])
        return False, (f"{len(outcome.readable_accounts)} readable account(s) ({names}) returned no token usage for "
                       f"{outcome.first_day}..{outcome.last_day}. Likely causes: no traffic in this range; usage is "
                       "in another subscription, resource or region; or Azure Monitor's provider delay for the "
                       "latest hours. Next action: confirm the scope, subscription and region, and re-sync "
                       "recent days later.")
    return True, f"{outcome.points} metric points from {len(outcome.readable_accounts)} readable account(s)."


def _readable_description(outcome: SyncOutcome) -> str:
    unreadable = outcome.unreadable
    metric_errors = outcome.extraction.metric_errors if outcome.extraction else {}
    parts = []
    if unreadable:
        parts.append(f"{len(unreadable)} of {len(outcome.accounts)} account(s) refused their metrics: "
                     + ", ".join(sorted(r.rsplit('/', 1)[-1] for r in unreadable))
                     + ". Likely cause: the principal cannot read these accounts' Azure Monitor data. Next action: "
                     "assign Monitoring Reader on each account, or on its resource group or subscription.")
    if metric_errors:
        parts.append(f"{len(metric_errors)} account(s) kept answering per-metric errors, so some usage is missing: "
                     + "; ".join(f"{r.rsplit('/', 1)[-1]} ({m})" for r, m in sorted(metric_errors.items())[:5])
                     + ". Next action: re-sync these days later; if it persists, check the Azure status page.")
    return " ".join(parts) or "All accounts in scope are readable."


def _connection_checks(outcome: SyncOutcome, key: dg.AssetKey):
    unreadable = outcome.unreadable
    metric_errors = outcome.extraction.metric_errors if outcome.extraction else {}
    yield dg.AssetCheckResult(
        asset_key=key, check_name=READABLE, passed=not unreadable and not metric_errors,
        severity=dg.AssetCheckSeverity.WARN, description=_readable_description(outcome),
        metadata={"unreadable_accounts": dg.MetadataValue.json(sorted(unreadable)),
                  "metric_errors": dg.MetadataValue.json(metric_errors),
                  "accounts_in_scope": len(outcome.accounts), "accounts_readable": len(outcome.readable_accounts)})
    passed, description = _empty_sync_description(outcome)
    yield dg.AssetCheckResult(asset_key=key, check_name=NOT_EMPTY, passed=passed,
                              severity=dg.AssetCheckSeverity.WARN, description=description,
                              metadata={"metric_points": outcome.points})
    truncated = outcome.extraction.truncated if outcome.extraction else []
    yield dg.AssetCheckResult(
        asset_key=key, check_name=NOT_TRUNCATED, passed=not truncated, severity=dg.AssetCheckSeverity.ERROR,
        description=("No split result reached `top`, or narrowing resolved it." if not truncated else
                     f"{len(truncated)} result(s) still reach top after narrowing: {', '.join(truncated[:5])}. "
                     "Raise settings.top."),
        metadata={"truncated": dg.MetadataValue.json(truncated)})


def build_metric_points_asset(connection_name: str, partitions: dg.PartitionsDefinition,
                              retry_policy: dg.RetryPolicy | None = None) -> dg.AssetsDefinition:
    key = metric_points_key(connection_name)
    azure_key = resource_key(connection_name)

    @dg.asset(
        key=key,
        description=f"Raw daily Azure OpenAI token and request metric points of connection '{connection_name}', "
                    "landed as Parquet (one file per day). A range backfill fetches the whole range in one run.",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"azure", "parquet"},
        required_resource_keys={azure_key, "warehouse"},
        check_specs=[
            dg.AssetCheckSpec(CREDENTIALS, asset=key, blocking=True,
                              description="The credential works and holds Monitoring Reader in scope."),
            dg.AssetCheckSpec(READABLE, asset=key, description="Every discovered account's metrics are readable."),
            dg.AssetCheckSpec(NOT_EMPTY, asset=key, description="The sync found usage where accounts exist."),
            dg.AssetCheckSpec(NOT_TRUNCATED, asset=key, description="No dimension split was silently truncated."),
        ],
        retry_policy=retry_policy,
    )
    def metric_points(context: dg.AssetExecutionContext):
        azure: AzureConnectionResource = getattr(context.resources, azure_key)
        warehouse: WarehouseResource = context.resources.warehouse
        days = partition_days(context)
        settings = _settings_from(warehouse)
        with azure.session() as session:
            outcome = sync_connection(session, azure.connection(), settings, Landing(warehouse.landing_path),
                                      days[0], days[-1], utc_now())
        if not outcome.ok or outcome.role_missing_everywhere:
            problem = outcome.scope_problem or str(outcome.credential_problem)
            yield dg.AssetCheckResult(asset_key=key, check_name=CREDENTIALS, passed=False,
                                      severity=dg.AssetCheckSeverity.ERROR, description=problem)
            raise dg.Failure(description=f"connection {connection_name!r}: {problem}",
                             metadata={"code": (outcome.credential_problem.code if outcome.credential_problem
                                                else "scope_unresolved")}, allow_retries=False)
        extraction = outcome.extraction
        tokens = (extraction.points.filter(pl.col("metric").is_in(["TotalTokens", "TokenTransaction"]))
                  ["total"].sum())
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": outcome.points,
                "days_synced": len(extraction.synced_days),
                "days_skipped_retention": len(extraction.skipped_days),
                "accounts_in_scope": len(outcome.accounts),
                "accounts_readable": len(outcome.readable_accounts),
                "api_calls": dg.MetadataValue.json(dict(extraction.calls)),
                "metrics_api_by_subscription": dg.MetadataValue.json(extraction.paths),
                "total_token_points_sum": int(tokens or 0),
                "events": dg.MetadataValue.md(_markdown_table(
                    ["level", "code", "resource", "message"],
                    [[e.level, e.code, (e.resource_id or "").rsplit("/", 1)[-1], e.message[:160]]
                     for e in outcome.events[:20]])) if outcome.events else "none",
            })
        yield dg.AssetCheckResult(asset_key=key, check_name=CREDENTIALS, passed=True,
                                  severity=dg.AssetCheckSeverity.ERROR,
                                  description=f"Token acquired; {len(outcome.readable_accounts)} of "
                                              f"{len(outcome.accounts)} account(s) readable.")
        yield from _connection_checks(outcome, key)

    return metric_points


def _settings_from(warehouse: WarehouseResource) -> Settings:
    return Settings(top=warehouse.top, concurrency=warehouse.concurrency, settle_hours=warehouse.settle_hours)


# ---- the DuckDB writer -----------------------------------------------------------------------------------------

USAGE_DAILY_KEY = dg.AssetKey([GROUP, "usage_daily"])
ACCOUNTS_KEY = dg.AssetKey([GROUP, "accounts"])
CONNECTION_STATUS_KEY = dg.AssetKey([GROUP, "connection_status"])

USAGE_SCHEMA = dg.TableSchema(columns=[dg.TableColumn(name, kind.replace(" NOT NULL", ""),
                                                      constraints=dg.TableColumnConstraints(
                                                          nullable="NOT NULL" not in kind))
                                       for name, kind in USAGE_DAILY_COLUMNS])


def _usage_metadata(summary: WriteSummary, preview: pl.DataFrame) -> dict:
    return {
        "dagster/row_count": summary.usage_rows,
        "dagster/column_schema": USAGE_SCHEMA,
        "range_total_tokens": sum(t["total_tokens"] for t in summary.totals_per_day.values()),
        "tokens_per_day": dg.MetadataValue.table(
            records=[dg.TableRecord({"usage_date": d, **t}) for d, t in summary.totals_per_day.items()],
            schema=dg.TableSchema(columns=[dg.TableColumn("usage_date", "date")] + [
                dg.TableColumn(name, "int") for name in ("usage_rows", "input_tokens", "output_tokens",
                                                         "total_tokens")])),
        "preview": dg.MetadataValue.md(_markdown_table(preview.columns, preview.rows())),
    }


def build_usage_daily_asset(config: ProjectConfig, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    connections = [{"name": c.name, "tenant_id": c.tenant_id, "client_id": c.client_id, "scope": c.scope,
                    "cloud": c.cloud} for c in config.connections]
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
        check_specs=[dg.AssetCheckSpec(name, asset=USAGE_DAILY_KEY, description=text)
                     for name, (text, _) in USAGE_CHECKS.items()],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        name="write_usage_daily",
    )
    def write_usage_daily(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        days = partition_days(context)
        summary = write_partitions(warehouse.warehouse_path, warehouse.landing_path, connections, days)
        # One observation per day with that day's totals, so Dagster plots tokens per partition even when a
        # backfill writes a whole range in one run.
        for day, totals in summary.totals_per_day.items():
            context.log_event(dg.AssetObservation(asset_key=USAGE_DAILY_KEY, partition=day, metadata=totals))
        yield dg.MaterializeResult(asset_key=USAGE_DAILY_KEY, metadata=_usage_metadata(summary, summary.preview))
        yield dg.MaterializeResult(asset_key=ACCOUNTS_KEY, metadata={"dagster/row_count": summary.accounts})
        for name, (passed, description) in summary.check_results.items():
            yield dg.AssetCheckResult(asset_key=USAGE_DAILY_KEY, check_name=name, passed=passed,
                                      severity=USAGE_CHECKS[name][1], description=description)

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
def connection_status(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with connect(warehouse.warehouse_path) as con:
        status = con.execute("SELECT connection, state, last_successful_sync, last_error, usage_rows, total_tokens, "
                             "accounts_covered, accounts_in_scope FROM azure_openai.connection_status").pl()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": status.height,
        "failing": int((status["state"] == "failing").sum()) if status.height else 0,
        "status": dg.MetadataValue.md(_markdown_table(status.columns, status.rows())),
    })
