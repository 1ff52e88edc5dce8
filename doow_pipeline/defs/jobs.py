"""The jobs: the scheduled sync (every connection, then usage), and the writer alone (for `doow-azure sync`)."""

from __future__ import annotations

import dagster as dg

SYNC_JOB = "azure_openai_sync"
WRITE_JOB = "azure_openai_write_usage"


def sync_job(selection: dg.AssetSelection) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(SYNC_JOB, selection=selection, description=(
        "Fetch every connection's metrics for a range of days, then rebuild usage in DuckDB."))


def write_job(selection: dg.AssetSelection) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(WRITE_JOB, selection=selection, description=(
        "Rebuild usage_daily and accounts in DuckDB from the landing zone (no Azure calls)."))
