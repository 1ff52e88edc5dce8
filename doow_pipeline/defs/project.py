"""The project's Definitions: per-connection Definitions merged with the shared ones."""

from __future__ import annotations

import dagster as dg

from ..config import ProjectConfig
from .common import GROUP, daily_partitions
from .connection import connection_defs
from .cost import CostSettingsResource, retail_prices, usage_cost_daily_asset
from .jobs import cost_job, sync_job, write_job
from .resources import shared_resources
from .schedules import build_schedule
from .usage import connection_status, usage_daily_asset


def build_definitions(config: ProjectConfig) -> dg.Definitions:
    partitions = daily_partitions(config)
    writer = usage_daily_asset(config, partitions)
    cost = usage_cost_daily_asset(config, partitions)
    everything = sync_job(dg.AssetSelection.groups(GROUP))
    writer_only = write_job(dg.AssetSelection.assets(writer, connection_status))
    cost_only = cost_job(dg.AssetSelection.assets(retail_prices, cost))
    shared = dg.Definitions(
        assets=[writer, connection_status, retail_prices, cost],
        jobs=[everything, writer_only, cost_only],
        schedules=[build_schedule(everything, config.settings.resync_days)],
        resources={**shared_resources(config), "cost_settings": CostSettingsResource.from_settings(config.settings)},
    )
    return dg.Definitions.merge(shared, *(connection_defs(c, config, partitions) for c in config.connections))
