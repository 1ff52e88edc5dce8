"""Refreshing the stored Retail Prices: the regions the estate needs, one read of the API per cloud, the
answers merged into the warehouse (no Dagster, no printing).

The API answers today's prices only: every answer is kept, so past days keep the price in force then.
When the API cannot be read, nothing stored changes and cost stays available from the stored prices: the
outcome says so (a WARN check), it is not a failure. The warehouse is never open while the API is called.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..azure.prices import RETAIL_PRICES_ENDPOINTS, RetailPrice, RetailPricesClient, RetailPricesError
from ..config import Settings
from ..core.checks import PRICES_FETCHED, PRICES_FRESH, CheckOutcome
from ..warehouse.analyst import Publication, publish_analyst_copy
from ..warehouse.cost import (
    PriceFetchRecord,
    PricesState,
    account_regions,
    merge_prices,
    price_records,
    prices_state,
    record_fetches,
)
from ..warehouse.database import connect

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PricesEndpoint:
    url: str | None  # None: no endpoint to read (why: `missing`)
    connection_verify: bool | str = True
    missing: str | None = None


def prices_endpoint(settings: Settings, cloud: str) -> PricesEndpoint:
    """settings.prices_urls[cloud], else the explicit endpoints' (the emulator's), else the cloud's public one.

    Explicit endpoints without `prices` (a private or emulated Azure) never fall back to the public API: the
    project asked for its own endpoints, so prices.azure.com is not called behind its back."""
    if cloud in settings.prices_urls:
        ca = settings.endpoints.ca_cert if settings.endpoints and settings.endpoints.ca_cert else True
        return PricesEndpoint(settings.prices_urls[cloud], ca)
    if settings.endpoints is not None:
        if settings.endpoints.prices:
            return PricesEndpoint(settings.endpoints.prices, settings.endpoints.ca_cert or True)
        return PricesEndpoint(
            None,
            missing=f"settings.endpoints names no `prices` URL; add it (the emulator's "
            f"ready line has it) or set settings.prices_urls.{cloud}",
        )
    public = RETAIL_PRICES_ENDPOINTS.get(cloud)
    return PricesEndpoint(
        public,
        missing=None
        if public
        else (f"no public Retail Prices endpoint is known for {cloud}: set settings.prices_urls.{cloud} to one"),
    )


@dataclass
class CloudPrices:
    cloud: str
    endpoint: str | None
    regions: list[str]
    prices: list[RetailPrice] = field(default_factory=list)
    error: str | None = None


def read_prices(settings: Settings, cloud: str, regions: list[str]) -> CloudPrices:
    """One cloud's Azure OpenAI / Foundry Models prices in `regions`; an unreachable API is an `error`."""
    endpoint = prices_endpoint(settings, cloud)
    result = CloudPrices(cloud, endpoint.url, regions)
    if endpoint.url is None:
        result.error = endpoint.missing
        return result
    try:
        with RetailPricesClient(
            endpoint.url,
            connection_verify=endpoint.connection_verify,
            currency=settings.currency,
            retry_total=settings.prices_retries,
        ) as client:
            result.prices = client.model_prices(regions)
    except RetailPricesError as exc:
        result.error = str(exc)
    return result


@dataclass
class PricesOutcome:
    fetched_at: datetime
    clouds: list[CloudPrices] = field(default_factory=list)
    new_records: int = 0
    state: PricesState | None = None
    max_age_days: int = 7
    publication: Publication | None = None  # the analyst copy published after the COMMIT (None: not configured)

    @property
    def errors(self) -> list[str]:
        return [f"{c.cloud}: {c.error}" for c in self.clouds if c.error]

    @property
    def items(self) -> int:
        return sum(len(c.prices) for c in self.clouds)

    def checks(self) -> list[CheckOutcome]:
        state = self.state
        stored = state.records if state else 0
        if self.errors:
            fetched = CheckOutcome(
                PRICES_FETCHED,
                False,
                (
                    "The Retail Prices API could not be read (" + "; ".join(self.errors)[:600] + "). "
                    f"Cost uses the {stored:,} price record(s) stored"
                    + (
                        f", last read {state.last_ok_fetch:%Y-%m-%d %H:%M} UTC"
                        if state and state.last_ok_fetch
                        else " (none yet: cost stays NULL until the API answers)"
                    )
                    + ". Next action: check that prices.azure.com (or settings.prices_urls) is reachable from this "
                    "host; the next run reads it again."
                ),
                {"errors": self.errors, "stored_records": stored},
            )
        elif not self.clouds:
            fetched = CheckOutcome(
                PRICES_FETCHED, True, "No account synced yet: no region to read prices for.", {"stored_records": stored}
            )
        else:
            fetched = CheckOutcome(
                PRICES_FETCHED,
                True,
                f"{self.items:,} price item(s) read, {self.new_records:,} new record(s); {stored:,} stored.",
                {"items": self.items, "new_records": self.new_records, "stored_records": stored},
            )
        last_ok = state.last_ok_fetch if state else None
        age = (self.fetched_at.replace(tzinfo=None) - last_ok) if last_ok else None
        if not self.clouds and stored == 0:
            fresh = CheckOutcome(PRICES_FRESH, True, "No prices needed yet.")
        elif age is None:
            fresh = CheckOutcome(
                PRICES_FRESH,
                False,
                "No prices were ever read: cost stays NULL. Next action: make "
                "the Retail Prices API reachable and re-run.",
                {"age_days": None},
            )
        elif age > timedelta(days=self.max_age_days):
            fresh = CheckOutcome(
                PRICES_FRESH,
                False,
                (
                    f"The stored prices were last read {age.days} day(s) ago ({last_ok:%Y-%m-%d}), more than "
                    f"settings.prices_max_age_days ({self.max_age_days}): price changes since then are not in the "
                    "estimate. Next action: make the Retail Prices API reachable."
                ),
                {"age_days": age.days},
            )
        else:
            fresh = CheckOutcome(
                PRICES_FRESH, True, f"Prices last read {last_ok:%Y-%m-%d %H:%M} UTC.", {"age_days": age.days}
            )
        return [fetched, fresh]


def _regions(warehouse: Path) -> dict[str, list[str]]:
    if not Path(warehouse).exists():
        return {}
    with connect(warehouse) as con:  # the writer's pool: a short read, closed before the API is called
        return account_regions(con)


def refresh_prices(
    warehouse: Path,
    settings: Settings,
    now: datetime,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = LOG,
    analyst_copy: Path | None = None,
) -> PricesOutcome:
    """Reads the prices of the estate's regions from each cloud's Retail Prices API and stores the new ones;
    then publishes the analyst copy (when `analyst_copy` is set)."""
    outcome = PricesOutcome(fetched_at=now, max_age_days=settings.prices_max_age_days)
    for cloud, regions in sorted(_regions(warehouse).items()):
        result = read_prices(settings, cloud, regions)
        if result.error:
            log.warning(f"retail prices ({cloud}): {result.error}; the stored prices stay in use")
        else:
            log.info(f"retail prices ({cloud}): {len(result.prices)} item(s) for {', '.join(regions)}")
        outcome.clouds.append(result)
    with connect(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            records = []
            for result in outcome.clouds:
                new = 0
                if not result.error:
                    new = merge_prices(con, price_records([asdict(p) for p in result.prices], now))
                    outcome.new_records += new
                records.append(
                    PriceFetchRecord(
                        now,
                        result.cloud,
                        result.endpoint,
                        settings.currency,
                        tuple(result.regions),
                        len(result.prices),
                        new,
                        result.error is None,
                        result.error,
                    )
                )
            record_fetches(con, records)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        outcome.state = prices_state(con, settings.currency)
        if analyst_copy is not None:
            outcome.publication = publish_analyst_copy(con, warehouse, analyst_copy)
    return outcome
