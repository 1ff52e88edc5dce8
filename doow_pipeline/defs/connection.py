"""Per connection: its resource, its raw `<connection>_metric_points` asset with the connection's checks, its
fetch job.

`azure_openai/<connection>_metric_points` fetches a range of UTC days from Azure into the landing zone (a
range backfill is one run: `BackfillPolicy.single_run`). No DuckDB here: Azure is never called while the
warehouse is held. The connection's name is the key's last component, because that is the label Dagster
shows in the lineage graph, the catalog and the backfill dialog.

A connection-level problem (credentials, role, scope, an endpoint still unreachable after the step
retries) does not fail the step: Dagster would then skip usage_daily for every connection in the run. The
step lands nothing (the connection's previous days stay), records the problem as an event for
connection_status, fails the connection's ERROR check, and says so in each partition's metadata.

Known shortfall: the step still yields its output, so Dagster records a materialization for every partition of
the range and the partition bar shows them "Materialized" although nothing new landed. Not yielding the output
would be truthful, but then Dagster skips usage_daily in the same run: a step whose input's upstream output is
missing is skipped unless that input is a fan-in (dagster/_core/execution/plan/active.py,
`_should_skip_step`), and asset deps become one input per upstream key (assets/job/asset_job.py,
`build_node_deps`). Failed checks do not colour partitions in OSS Dagster 1.13 (checks carry no partition;
asset health is a Dagster+ feature), and a partition shows "Failed" only when its run failed. The way out is a
writer whose op fans in over the connections' outputs (a graph-backed usage_daily), see issue 9.
"""

from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg

from ..config import Connection, ProjectConfig
from ..core.checks import CONNECTION_CHECKS
from ..services.fetch import SyncOutcome, connection_checks, fetch_connection
from .common import GROUP, INTERRUPTED, OWNERS, check_result, check_spec, markdown_table, partition_days
from .resources import AzureConnectionResource, SyncSettingsResource, WarehouseResource


def metric_points_key(connection_name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, f"{connection_name}_metric_points"])


def fetch_job_name(connection_name: str) -> str:
    return f"fetch_{connection_name}"


def fetch_retry_policy(config: ProjectConfig) -> dg.RetryPolicy:
    """Step retries for fetches whose SDK retries ran out (Azure outages, long throttling)."""
    settings = config.settings
    return dg.RetryPolicy(
        max_retries=settings.step_retries, delay=settings.step_retry_delay_seconds, backoff=dg.Backoff.EXPONENTIAL
    )


def _events_table(outcome: SyncOutcome) -> str:
    events = outcome.events
    if not events:
        return "none"
    return markdown_table(
        ["level", "code", "resource", "message"],
        [[e.level, e.code, (e.resource_id or "").rsplit("/", 1)[-1], e.message[:160]] for e in events[:20]],
    )


def _run_metadata(outcome: SyncOutcome) -> dict[str, Any]:
    """What holds for the whole run (every partition of the range shows it)."""
    extraction = outcome.extraction
    metadata: dict[str, Any] = {
        "connection_state": "failing"
        if not outcome.ok
        else ("degraded" if outcome.unreadable or outcome.metric_errors else "healthy"),
        "accounts_in_scope": len(outcome.accounts),
        "accounts_readable": len(outcome.readable_accounts),
        "events": dg.MetadataValue.md(_events_table(outcome)),
    }
    if extraction is not None:
        metadata["api_calls"] = dg.MetadataValue.json(dict(extraction.calls))
        metadata["metrics_api_by_subscription"] = dg.MetadataValue.json(extraction.paths)
    if outcome.problem is not None:
        metadata["problem"] = str(outcome.problem.code)
        metadata["cause"] = outcome.problem.cause
        metadata["next_action"] = outcome.problem.fix
    return metadata


def _day_metadata(outcome: SyncOutcome, day: date, tokens: dict[date, int]) -> dict[str, Any]:
    """One partition's own numbers: the points landed for that day and their TotalTokens sum."""
    key = day.isoformat()
    if key in outcome.rows_per_day:
        return {
            "landed": True,
            "dagster/row_count": outcome.rows_per_day[key],
            "total_token_points_sum": tokens.get(day, 0),
        }
    if outcome.extraction is not None and day in outcome.extraction.skipped_days:
        why = "beyond Azure Monitor's retention; nothing landed"
    elif outcome.problem is not None:
        why = f"{outcome.problem.code}: nothing landed, the previous data of this day is kept"
    else:
        why = "nothing landed"
    return {"landed": False, "not_landed_because": why}


def connection_defs(
    connection: Connection, config: ProjectConfig, partitions: dg.PartitionsDefinition
) -> dg.Definitions:
    """The connection's resource, raw asset (with its checks) and fetch job, as one Definitions."""
    key = metric_points_key(connection.name)
    resource_key = f"azure_{connection.name}"  # made and used only here
    max_retries = config.settings.step_retries

    # A multi_asset only for `can_subset`: it makes the check outputs optional, so a failing connection emits its
    # failed credentials check without inventing results for the checks that could not run.
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                key,
                description=f"Raw daily Azure OpenAI token and request metric points of connection '{connection.name}' "
                f"({connection.scope}), landed as Parquet (one file per day; the view "
                "azure_openai.metric_points reads them). A range backfill fetches the whole range in one "
                "run.",
                partitions_def=partitions,
                group_name=GROUP,
                owners=OWNERS,
                kinds={"azure", "parquet"},
                tags={"connection": connection.name},
                metadata={"connection": connection.name, "scope": connection.scope, "cloud": connection.cloud},
            )
        ],
        name=f"{connection.name}_metric_points",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        required_resource_keys={resource_key, "warehouse", "sync_settings"},
        check_specs=[check_spec(check, key) for check in CONNECTION_CHECKS],
        can_subset=True,
        retry_policy=fetch_retry_policy(config),
    )
    def metric_points(context: dg.AssetExecutionContext) -> Iterator[object]:
        # The connection's resource key is per connection, so it cannot be a parameter name.
        azure: AzureConnectionResource = getattr(context.resources, resource_key)
        warehouse: WarehouseResource = context.resources.warehouse
        sync_settings: SyncSettingsResource = context.resources.sync_settings
        days = partition_days(context)
        last_attempt = context.retry_number >= max_retries
        context.log.info(f"fetching connection {connection.name} for {days[0]}..{days[-1]} ({len(days)} day(s))")
        try:
            with azure.session() as session:
                outcome = fetch_connection(
                    session,
                    azure.connection(),
                    sync_settings.settings(),
                    warehouse.landing_zone(),
                    days[0],
                    days[-1],
                    sync_settings.clock.now(),
                    log=context.log,
                    record_extraction_failure=last_attempt,
                )
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as exc:
            # Dagster retries a step interrupted under a retry policy (dagster/_core/execution/plan/utils.py,
            # op_execution_error_boundary), so Ctrl-C or a stop would restart the fetch after the retry delay: a
            # stop asked for is not a transient failure, the step ends now.
            raise dg.Failure(
                f"{INTERRUPTED}: the days landed before the stop are whole, the others keep their previous data; "
                "sync the same range again to finish",
                allow_retries=False,
            ) from exc
        tokens = outcome.total_tokens_per_day()
        for day in days:
            context.add_asset_metadata(_day_metadata(outcome, day, tokens), partition_key=day.isoformat())
        yield dg.MaterializeResult(asset_key=key, metadata=_run_metadata(outcome))
        selected = context.selected_asset_check_keys
        yield from (
            check_result(c, key) for c in connection_checks(outcome) if dg.AssetCheckKey(key, c.name) in selected
        )

    job = dg.define_asset_job(
        fetch_job_name(connection.name),
        selection=dg.AssetSelection.assets(metric_points),
        description=f"Fetch connection '{connection.name}' into the landing zone.",
    )
    return dg.Definitions(
        assets=dg.with_source_code_references([metric_points]),
        jobs=[job],
        resources={resource_key: AzureConnectionResource.for_connection(connection, config.settings.endpoints)},
    )
