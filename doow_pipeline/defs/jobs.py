"""The jobs: the scheduled sync (every connection, then usage and cost), the writer alone and the cost alone
(for `doow-azure sync`)."""

from __future__ import annotations

import dagster as dg

SYNC_JOB = "azure_openai_sync"
WRITE_JOB = "azure_openai_write_usage"
COST_JOB = "azure_openai_cost"


def sync_job(selection: dg.AssetSelection) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        SYNC_JOB,
        selection=selection,
        description=(
            "Fetch every connection's metrics for a range of days, then rebuild usage, prices and estimated cost in "
            "DuckDB."
        ),
    )


def write_job(selection: dg.AssetSelection) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        WRITE_JOB,
        selection=selection,
        description=("Rebuild usage_daily and accounts in DuckDB from the landing zone (no Azure calls)."),
    )


def cost_job(selection: dg.AssetSelection) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        COST_JOB,
        selection=selection,
        description=(
            "Read the public Retail Prices API (anonymous) into DuckDB, then rebuild the estimated list cost of usage "
            "and its FOCUS-aligned rows."
        ),
    )
