"""The daily sync: re-syncs the trailing days, because Azure Monitor metrics arrive late."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg


def trailing_range(resync_days: int, now: datetime) -> tuple[str, str]:
    """The partition range a scheduled run re-syncs: the last `resync_days` full days plus today so far."""
    today = now.date()
    return (today - timedelta(days=resync_days)).isoformat(), today.isoformat()


def build_schedule(job: dg.UnresolvedAssetJobDefinition, resync_days: int) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_azure_openai_sync",
        job=job,
        cron_schedule="30 3 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Daily at 03:30 UTC: re-syncs the trailing {resync_days} days and today, in one run.",
    )
    def daily_sync(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        start, end = trailing_range(resync_days, context.scheduled_execution_time)
        return dg.RunRequest(
            run_key=f"{start}..{end}",
            tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        )

    return daily_sync
