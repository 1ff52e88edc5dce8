"""Cost assets: `retail_prices` (the Retail Prices API into DuckDB, every answer kept) and `usage_cost_daily`
+ `focus_cost_daily` (usage priced at public list price, per day). Thin: the work is in services/prices.py
and warehouse/cost.py. Both write DuckDB, so both are in the `duckdb` pool."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ..config import ProjectConfig, Settings
from ..core.checks import COST_CHECKS, PRICES_CHECKS
from ..services.prices import refresh_prices
from ..usage.pricing import DeploymentTypes
from ..warehouse.cost import CostOptions, CostSummary, write_cost
from .common import (
    DUCKDB_POOL,
    GROUP,
    OWNERS,
    check_result,
    check_spec,
    log_publication,
    markdown_table,
    partition_days,
)
from .resources import SyncSettingsResource, WarehouseResource
from .usage import ACCOUNTS_KEY, USAGE_DAILY_KEY

RETAIL_PRICES_KEY = dg.AssetKey([GROUP, "retail_prices"])
USAGE_COST_KEY = dg.AssetKey([GROUP, "usage_cost_daily"])
FOCUS_COST_KEY = dg.AssetKey([GROUP, "focus_cost_daily"])
ESTIMATE = "an ESTIMATE at public list price (Azure Retail Prices), not the invoice"


class CostSettingsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The cost settings of connections.yaml: currency, owner tags, deployment types, prices endpoints.
    (The Retail Prices API is anonymous: no secret here.)"""

    currency: str = "USD"
    owner_tag: str = "owner"
    cost_centre_tag: str = "cost-center"
    deployment_type_default: str = "GlobalStandard"
    deployment_type_overrides: dict[str, str] = {}
    provisioned_deployments: list[str] = []
    deployment_models: dict[str, str] = {}
    prices_urls: dict[str, str] = {}
    prices_endpoint: str | None = None  # settings.endpoints.prices (the emulator's)
    prices_ca_cert: str | None = None
    prices_max_age_days: int = 7
    prices_retries: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> "CostSettingsResource":
        types = settings.deployment_types
        endpoints = settings.endpoints
        return cls(
            currency=settings.currency,
            owner_tag=settings.owner_tag,
            cost_centre_tag=settings.cost_centre_tag,
            deployment_type_default=types.default,
            deployment_type_overrides=dict(types.overrides),
            provisioned_deployments=list(types.provisioned),
            deployment_models=dict(settings.deployment_models),
            prices_urls={str(cloud): url for cloud, url in settings.prices_urls.items()},
            prices_endpoint=endpoints.prices if endpoints else None,
            prices_ca_cert=endpoints.ca_cert if endpoints else None,
            prices_max_age_days=settings.prices_max_age_days,
            prices_retries=settings.prices_retries,
        )

    def settings(self) -> Settings:
        """The settings the prices service reads (the metrics endpoints play no part in it)."""
        endpoints = None
        if self.prices_endpoint:
            # placeholders for the metrics endpoints: only `prices` and `ca_cert` are read from here
            endpoints = {
                "authority": self.prices_endpoint,
                "arm": self.prices_endpoint,
                "metrics": self.prices_endpoint + "/{region}",
                "prices": self.prices_endpoint,
                "ca_cert": self.prices_ca_cert,
            }
        return Settings.model_validate(
            {
                "currency": self.currency,
                "owner_tag": self.owner_tag,
                "cost_centre_tag": self.cost_centre_tag,
                "deployment_types": {
                    "default": self.deployment_type_default,
                    "overrides": self.deployment_type_overrides,
                    "provisioned": self.provisioned_deployments,
                },
                "deployment_models": self.deployment_models,
                "prices_urls": self.prices_urls,
                "prices_max_age_days": self.prices_max_age_days,
                "prices_retries": self.prices_retries,
                "endpoints": endpoints,
            }
        )

    def options(self) -> CostOptions:
        types = DeploymentTypes(
            self.deployment_type_default, dict(self.deployment_type_overrides), frozenset(self.provisioned_deployments)
        )
        return CostOptions(types, dict(self.deployment_models), self.currency, self.owner_tag, self.cost_centre_tag)


@dg.asset(
    key=RETAIL_PRICES_KEY,
    deps=[ACCOUNTS_KEY],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"duckdb", "azure"},
    pool=DUCKDB_POOL,
    check_specs=[check_spec(check, RETAIL_PRICES_KEY) for check in PRICES_CHECKS],
    description="Public list prices of the Azure OpenAI / Foundry Models meters in the accounts' regions, from the "
    "anonymous Azure Retail Prices API, stored with their effective dates (every answer kept: the API "
    "answers today's prices only). An unreachable API is a WARN: stored prices stay in use.",
)
def retail_prices(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    cost_settings: CostSettingsResource,
    sync_settings: SyncSettingsResource,
) -> Iterator[object]:
    outcome = refresh_prices(
        warehouse.warehouse_path,
        cost_settings.settings(),
        sync_settings.clock.now(),
        log=context.log,
        analyst_copy=warehouse.analyst_copy_path,
    )
    log_publication(context, outcome.publication)
    state = outcome.state
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": state.records if state else 0,
            "items_read": outcome.items,
            "new_records": outcome.new_records,
            "regions": dg.MetadataValue.json({c.cloud: c.regions for c in outcome.clouds}),
            "endpoints": dg.MetadataValue.json({c.cloud: c.endpoint for c in outcome.clouds}),
            "errors": dg.MetadataValue.json(outcome.errors),
            **(outcome.publication.metadata() if outcome.publication else {}),
        }
    )
    for check in outcome.checks():
        yield check_result(check, RETAIL_PRICES_KEY)


def _cost_metadata(summary: CostSummary) -> dict[str, Any]:
    known = [d["estimated_cost"] for d in summary.per_day.values() if d["estimated_cost"] is not None]
    return {
        "dagster/row_count": summary.rows,
        "basis": ESTIMATE,
        "currency": summary.currency,
        "range_estimated_cost": float(sum(known)) if known else None,  # None, never 0, when nothing is costed
        "rows_by_status": dg.MetadataValue.json(summary.statuses),
        "stored_price_records": summary.stored_prices,
        "cost_per_day": dg.MetadataValue.md(
            markdown_table(
                ["usage_date", f"estimated cost ({summary.currency})", "costed rows", "rows"],
                [
                    [
                        day,
                        "n/a" if d["estimated_cost"] is None else f"{d['estimated_cost']:,.2f}",
                        d["costed_rows"],
                        d["rows"],
                    ]
                    for day, d in summary.per_day.items()
                ],
            )
        ),
        **(summary.publication.metadata() if summary.publication else {}),
    }


def usage_cost_daily_asset(config: ProjectConfig, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                USAGE_COST_KEY,
                deps=[USAGE_DAILY_KEY, RETAIL_PRICES_KEY],
                group_name=GROUP,
                owners=OWNERS,
                kinds={"duckdb", "polars"},
                partitions_def=partitions,
                description=f"usage_daily rows with their meters, unit prices, currency, estimated list "
                f"cost of input and output tokens and a match status: {ESTIMATE} (no "
                "discounts, reservations, taxes or credits). Unknown cost is NULL, never 0.",
            ),
            dg.AssetSpec(
                FOCUS_COST_KEY,
                deps=[USAGE_DAILY_KEY, RETAIL_PRICES_KEY],
                group_name=GROUP,
                owners=OWNERS,
                kinds={"duckdb"},
                partitions_def=partitions,
                description="FOCUS-aligned (not conformant) rows of the estimate: one per day, resource, "
                "deployment, model and token type; BilledCost and EffectiveCost stay empty.",
            ),
        ],
        check_specs=[check_spec(check, USAGE_COST_KEY) for check in COST_CHECKS],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        name="write_usage_cost_daily",
    )
    def write_usage_cost_daily(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        cost_settings: CostSettingsResource,
        sync_settings: SyncSettingsResource,
    ) -> Iterator[object]:
        days = partition_days(context)
        summary = write_cost(
            warehouse.warehouse_path,
            days,
            cost_settings.options(),
            sync_settings.clock.now(),
            analyst_copy=warehouse.analyst_copy_path,
        )
        log_publication(context, summary.publication)
        context.log.info(f"cost: {summary.rows:,} row(s) priced for {days[0]}..{days[-1]}: {summary.statuses}")
        # One observation per day, so the Dagster UI plots estimated cost per day (the asset's Plots tab);
        # a day with nothing costed carries no estimated_cost rather than a misleading 0.
        for day, totals in summary.per_day.items():
            metadata = {k: v for k, v in totals.items() if v is not None}
            context.log_event(dg.AssetObservation(asset_key=USAGE_COST_KEY, partition=day, metadata=metadata))
        yield dg.MaterializeResult(asset_key=USAGE_COST_KEY, metadata=_cost_metadata(summary))
        yield dg.MaterializeResult(asset_key=FOCUS_COST_KEY, metadata={"dagster/row_count": summary.focus_rows})
        for outcome in summary.check_results:
            yield check_result(outcome, USAGE_COST_KEY)

    return write_usage_cost_daily
