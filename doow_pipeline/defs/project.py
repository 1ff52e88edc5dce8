"""The project's Definitions: per-connection Definitions merged with the shared ones."""

from __future__ import annotations

import os

import dagster as dg

from ..config import ProjectConfig
from ..core import secrets
from .common import GROUP, daily_partitions
from .connection import connection_defs
from .jobs import sync_job, write_job
from .resources import shared_resources
from .schedules import build_schedule
from .usage import connection_status, usage_daily_asset


def build_definitions(config: ProjectConfig) -> dg.Definitions:
    # Every process that loads the definitions (code server, run worker, the CLI) masks the configured secrets
    # in every log record it creates: Dagster's compute logs and event log, and the SDKs' warnings.
    secrets.register(os.environ.get(c.client_secret_env) for c in config.connections)
    secrets.install_log_scrubber()
    partitions = daily_partitions(config)
    writer = usage_daily_asset(config, partitions)
    everything = sync_job(dg.AssetSelection.groups(GROUP))
    writer_only = write_job(dg.AssetSelection.assets(writer, connection_status))
    shared = dg.Definitions(
        assets=[writer, connection_status],
        jobs=[everything, writer_only],
        schedules=[build_schedule(everything, config.settings.resync_days)],
        resources=shared_resources(config),
    )
    return dg.Definitions.merge(shared, *(connection_defs(c, config, partitions) for c in config.connections))
