"""Builds the Dagster Definitions from connections.yaml: per connection a resource and a raw asset, plus
the shared DuckDB writer, the connection status and the daily schedule."""

from __future__ import annotations

import dagster as dg

from .config import ProjectConfig, export_env_file, load_config
from .defs.assets import (
    CONNECTION_STATUS_KEY,
    build_metric_points_asset,
    build_usage_daily_asset,
    connection_status,
    daily_partitions,
    fetch_retry_policy,
)
from .defs.resources import build_resources
from .defs.schedules import SYNC_JOB, WRITE_JOB, build_schedule


def fetch_job_name(connection_name: str) -> str:
    return f"fetch_{connection_name}"


def build_definitions(config: ProjectConfig) -> dg.Definitions:
    partitions = daily_partitions(config)
    raw_assets = [build_metric_points_asset(c.name, partitions, fetch_retry_policy(config)) for c in config.connections]
    writer = build_usage_daily_asset(config, partitions)
    sync_job = dg.define_asset_job(
        SYNC_JOB, selection=dg.AssetSelection.assets(*raw_assets, writer) | dg.AssetSelection.assets(
            CONNECTION_STATUS_KEY),
        description="Fetch every connection's metrics for a range of days, then rebuild usage in DuckDB.")
    # Per-connection fetch jobs and the writer job let `doow-azure sync` run connections independently.
    fetch_jobs = [dg.define_asset_job(fetch_job_name(c.name), selection=dg.AssetSelection.assets(asset),
                                      description=f"Fetch connection '{c.name}' into the landing zone.")
                  for c, asset in zip(config.connections, raw_assets)]
    write_job = dg.define_asset_job(
        WRITE_JOB, selection=dg.AssetSelection.assets(writer) | dg.AssetSelection.assets(CONNECTION_STATUS_KEY),
        description="Rebuild usage_daily and accounts in DuckDB from the landing zone (no Azure calls).")
    return dg.Definitions(
        assets=[*raw_assets, writer, connection_status],
        jobs=[sync_job, write_job, *fetch_jobs],
        schedules=[build_schedule(sync_job, config.settings.resync_days)],
        resources=build_resources(config),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dagster dev` / the code server: connections.yaml from DOOW_CONNECTIONS (or ./)."""
    config = load_config()
    export_env_file(config)
    return build_definitions(config)
