"""Builds the Dagster Definitions from connections.yaml: per connection a resource and a raw asset, plus
the shared DuckDB writer, the connection status and the daily schedule."""

from __future__ import annotations

import dagster as dg

from .config import ProjectConfig, load_config
from .defs.assets import (
    CONNECTION_STATUS_KEY,
    build_metric_points_asset,
    build_usage_daily_asset,
    connection_status,
    daily_partitions,
)
from .defs.resources import build_resources
from .defs.schedules import SYNC_JOB, build_schedule


def build_definitions(config: ProjectConfig) -> dg.Definitions:
    partitions = daily_partitions(config)
    raw_assets = [build_metric_points_asset(c.name, partitions) for c in config.connections]
    writer = build_usage_daily_asset(config, partitions)
    sync_job = dg.define_asset_job(
        SYNC_JOB, selection=dg.AssetSelection.assets(*raw_assets, writer) | dg.AssetSelection.keys(
            CONNECTION_STATUS_KEY),
        description="Fetch every connection's metrics for a range of days, then rebuild usage in DuckDB.")
    return dg.Definitions(
        assets=[*raw_assets, writer, connection_status],
        jobs=[sync_job],
        schedules=[build_schedule(sync_job, config.settings.resync_days)],
        resources=build_resources(config),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dagster dev` / the code server: connections.yaml from DOOW_CONNECTIONS (or ./)."""
    return build_definitions(load_config())
