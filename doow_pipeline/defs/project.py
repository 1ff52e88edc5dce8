"""The project's Definitions: per-connection Definitions merged with the shared ones."""

from __future__ import annotations

import os
import warnings

import dagster as dg

from ..config import ProjectConfig
from ..core import secrets
from .common import GROUP, daily_partitions
from .connection import connection_defs
from .cost import CostSettingsResource, retail_prices, usage_cost_daily_asset
from .jobs import cost_job, sync_job, write_job
from .resources import shared_resources
from .schedules import build_schedule
from .usage import connection_status_asset, usage_daily_asset


def build_definitions(config: ProjectConfig) -> dg.Definitions:
    # Every process that loads the definitions (code server, run worker, the CLI) masks the configured secrets
    # in every log record it creates: Dagster's compute logs and event log, and the SDKs' warnings.
    secrets.register(os.environ.get(c.client_secret_env) for c in config.connections)
    secrets.install_log_scrubber()
    # Dagster marks `backfill_policy` and the code-reference helpers as beta and warns once per use, i.e. for
    # every connection on every load (code server, CLI, tests). We depend on both on purpose (single-run
    # range backfills are the design; code references link the UI to the source) and pin Dagster in
    # uv.lock, so a change in them shows in our tests rather than in these warnings. Other warnings pass.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return _build_definitions(config)


def _build_definitions(config: ProjectConfig) -> dg.Definitions:
    partitions = daily_partitions(config)
    writer = usage_daily_asset(config, partitions)
    connection_status = connection_status_asset(config)
    cost = usage_cost_daily_asset(config, partitions)
    everything = sync_job(dg.AssetSelection.groups(GROUP))
    writer_only = write_job(dg.AssetSelection.assets(writer, connection_status))
    cost_only = cost_job(dg.AssetSelection.assets(retail_prices, cost))
    shared = dg.Definitions(
        # Code references: the UI links each asset to the file and line that defines it.
        assets=dg.with_source_code_references([writer, connection_status, retail_prices, cost]),
        jobs=[everything, writer_only, cost_only],
        schedules=[build_schedule(everything, config.settings.resync_days)],
        resources={**shared_resources(config), "cost_settings": CostSettingsResource.from_settings(config.settings)},
    )
    return dg.Definitions.merge(shared, *(connection_defs(c, config, partitions) for c in config.connections))
