"""Per connection: its resource, its raw `metric_points` asset with the connection's checks, its fetch job.

`azure_openai/<connection>/metric_points` fetches a range of UTC days from Azure into the landing zone (a
range backfill is one run: `BackfillPolicy.single_run`). No DuckDB here: Azure is never called while the
warehouse is held.
"""


from collections.abc import Iterator

import dagster as dg

from ..config import Connection, ProjectConfig
from ..core.checks import CONNECTION_CHECKS
from ..services.fetch import SyncOutcome, connection_checks, fetch_connection
from ..warehouse.landing import Landing
from .common import GROUP, OWNERS, check_result, check_spec, markdown_table, partition_days
from .resources import AzureConnectionResource, SyncSettingsResource, WarehouseResource


def metric_points_key(connection_name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, connection_name, "metric_points"])


def fetch_job_name(connection_name: str) -> str:
    return f"fetch_{connection_name}"


def fetch_retry_policy(config: ProjectConfig) -> dg.RetryPolicy:
    """Step retries for fetches whose SDK retries ran out (Azure outages, long throttling)."""
    settings = config.settings
    return dg.RetryPolicy(max_retries=settings.step_retries, delay=settings.step_retry_delay_seconds,
                          backoff=dg.Backoff.EXPONENTIAL)


def _materialization(key: dg.AssetKey, outcome: SyncOutcome) -> dg.MaterializeResult:  # type: ignore[type-arg]
    extraction = outcome.extraction
    assert extraction is not None
    events = outcome.events
    return dg.MaterializeResult(asset_key=key, metadata={
        "dagster/row_count": outcome.points,
        "days_synced": len(extraction.synced_days),
        "days_skipped_retention": len(extraction.skipped_days),
        "accounts_in_scope": len(outcome.accounts),
        "accounts_readable": len(outcome.readable_accounts),
        "api_calls": dg.MetadataValue.json(dict(extraction.calls)),
        "metrics_api_by_subscription": dg.MetadataValue.json(extraction.paths),
        "total_token_points_sum": outcome.total_tokens,
        "events": dg.MetadataValue.md(markdown_table(
            ["level", "code", "resource", "message"],
            [[e.level, e.code, (e.resource_id or "").rsplit("/", 1)[-1], e.message[:160]] for e in events[:20]]))
        if events else "none",
    })


def connection_defs(connection: Connection, config: ProjectConfig,
                    partitions: dg.PartitionsDefinition) -> dg.Definitions:
    """The connection's resource, raw asset (with its checks) and fetch job, as one Definitions."""
    key = metric_points_key(connection.name)
    resource_key = f"azure_{connection.name}"  # made and used only here

    @dg.asset(
        key=key,
        description=f"Raw daily Azure OpenAI token and request metric points of connection '{connection.name}', "
                    "landed as Parquet (one file per day). A range backfill fetches the whole range in one run.",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"azure", "parquet"},
        tags={"connection": connection.name},
        required_resource_keys={resource_key, "warehouse", "sync_settings"},
        check_specs=[check_spec(check, key) for check in CONNECTION_CHECKS],
        retry_policy=fetch_retry_policy(config),
    )
    def metric_points(context: dg.AssetExecutionContext) -> Iterator[object]:
        # The connection's resource key is per connection, so it cannot be a parameter name.
        azure: AzureConnectionResource = getattr(context.resources, resource_key)
        warehouse: WarehouseResource = context.resources.warehouse
        sync_settings: SyncSettingsResource = context.resources.sync_settings
        days = partition_days(context)
        context.log.info(f"fetching connection {connection.name} for {days[0]}..{days[-1]} ({len(days)} day(s))")
        with azure.session() as session:
            outcome = fetch_connection(session, azure.connection(), sync_settings.settings(),
                                       Landing(warehouse.landing_path), days[0], days[-1], sync_settings.clock.now(),
                                       log=context.log)
        checks = connection_checks(outcome)
        if not outcome.ok:
            yield from (check_result(c, key) for c in checks)
            problem = outcome.problem
            assert problem is not None
            raise dg.Failure(description=f"connection {connection.name!r}: {problem}",
                             metadata={"code": str(problem.code)}, allow_retries=False)
        yield _materialization(key, outcome)
        yield from (check_result(c, key) for c in checks)

    job = dg.define_asset_job(fetch_job_name(connection.name), selection=dg.AssetSelection.assets(metric_points),
                              description=f"Fetch connection '{connection.name}' into the landing zone.")
    return dg.Definitions(
        assets=[metric_points], jobs=[job],
        resources={resource_key: AzureConnectionResource.for_connection(connection, config.settings.endpoints)})

