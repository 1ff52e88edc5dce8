"""Public list prices of Azure OpenAI / Foundry Models meters from the Azure Retail Prices API.

`GET {endpoint}/api/retail/prices` is anonymous and read-only: no credential, no permission, nothing about
the customer is sent. The client pages through `NextPageLink`, retries 429 and 5xx with azure-core's
RetryPolicy (which honours `Retry-After`), and returns one frozen `RetailPrice` per price item.

Facts it relies on (Learn "Azure Retail Prices overview"; recorded responses in guygregory/modelmeters.com):
- envelope `BillingCurrency`, `CustomerEntityId`, `CustomerEntityType`, `Items`, `NextPageLink` (absolute,
  `https://prices.azure.com:443/...&$skip=N`, null on the last page), `Count` (items in this page);
- pages of 100 items as documented (1000 observed);
- `$filter` with `eq` / `and` / `contains()`; from 2023-01-01-preview the values are case-sensitive;
- Azure OpenAI and the other Foundry models are meters of serviceId `DZH31600VF1F`, whose serviceName was
  "Cognitive Services" and later "Foundry Models": both spellings are kept;
- the API answers today's prices only (effectiveStartDate tells since when): keep what it returned to price
  past days.

This module imports only the standard library and azure-core (it must stay movable on its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, cast
from urllib.parse import quote, urlsplit

from azure.core import PipelineClient
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline.policies import HeadersPolicy, RetryPolicy, UserAgentPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse

PRICES_PATH = "/api/retail/prices"
API_VERSION = "2023-01-01-preview"
# The Retail Prices API is published for the commercial cloud; Azure Government regions are listed in it
# (armRegionName usgov*). No endpoint is published for Azure China (21Vianet): configure one explicitly.
RETAIL_PRICES_ENDPOINTS: dict[str, str | None] = {
    "AzureCloud": "https://prices.azure.com",
    "AzureUSGovernment": "https://prices.azure.com",
    "AzureChinaCloud": None,
}
MODELS_SERVICE_ID = "DZH31600VF1F"
MODELS_SERVICE_NAMES = ("Cognitive Services", "Foundry Models")
USER_AGENT = "doow-pipeline-retail-prices"
MAX_PAGES = 10_000


class RetailPriceItem(TypedDict, total=False):
    """One raw item of `Items`, as the API sends it (camelCase JSON); RetailPrice.from_item validates it."""

    currencyCode: str
    tierMinimumUnits: float
    retailPrice: float
    unitPrice: float
    armRegionName: str
    location: str
    effectiveStartDate: str
    effectiveEndDate: str | None
    meterId: str
    meterName: str
    productId: str
    skuId: str
    productName: str
    skuName: str
    serviceName: str
    serviceId: str
    serviceFamily: str
    unitOfMeasure: str
    type: str
    isPrimaryMeterRegion: bool
    armSkuName: str
    reservationTerm: str | None


class RetailPricesPage(TypedDict, total=False):
    """One page of the API: the envelope around `Items` (`NextPageLink` null on the last page)."""

    BillingCurrency: str
    CustomerEntityId: str
    CustomerEntityType: str
    Items: list[RetailPriceItem]
    NextPageLink: str | None
    Count: int


# what model_prices keeps one price per: meter, region, effective start, tier, type, reservation term
_PriceKey = tuple[str, str, datetime, float, str, str | None]


class RetailPricesError(Exception):
    """The Retail Prices API could not be read (after retries); `status` is the last HTTP status or None."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetailPrice:
    """One item of the Retail Prices API, field for field (snake_case)."""

    currency_code: str
    tier_minimum_units: float
    retail_price: float
    unit_price: float
    arm_region_name: str
    location: str
    effective_start_date: datetime
    effective_end_date: datetime | None
    meter_id: str
    meter_name: str
    product_id: str
    sku_id: str
    product_name: str
    sku_name: str
    service_name: str
    service_id: str
    service_family: str
    unit_of_measure: str
    type: str
    is_primary_meter_region: bool
    arm_sku_name: str
    reservation_term: str | None = None

    @classmethod
    def from_item(cls, item: RetailPriceItem) -> RetailPrice:
        try:
            return cls(
                currency_code=str(item["currencyCode"]),
                tier_minimum_units=float(item.get("tierMinimumUnits") or 0.0),
                retail_price=float(item["retailPrice"]),
                unit_price=float(item.get("unitPrice", item["retailPrice"])),
                arm_region_name=str(item.get("armRegionName") or ""),
                location=str(item.get("location") or ""),
                effective_start_date=_timestamp(item["effectiveStartDate"]),
                effective_end_date=_timestamp(end) if (end := item.get("effectiveEndDate")) else None,
                meter_id=str(item["meterId"]),
                meter_name=str(item["meterName"]),
                product_id=str(item.get("productId") or ""),
                sku_id=str(item.get("skuId") or ""),
                product_name=str(item.get("productName") or ""),
                sku_name=str(item.get("skuName") or ""),
                service_name=str(item.get("serviceName") or ""),
                service_id=str(item.get("serviceId") or ""),
                service_family=str(item.get("serviceFamily") or ""),
                unit_of_measure=str(item.get("unitOfMeasure") or ""),
                type=str(item.get("type") or ""),
                is_primary_meter_region=bool(item.get("isPrimaryMeterRegion", True)),
                arm_sku_name=str(item.get("armSkuName") or ""),
                reservation_term=item.get("reservationTerm"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RetailPricesError(f"unexpected price item {item!r:.300}: {exc}") from exc


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def quote_value(value: str) -> str:
    """An OData string literal: single quotes, embedded quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def models_filter(region: str | None = None, price_type: str = "Consumption") -> str:
    """The $filter for Azure OpenAI / Foundry Models meters (by serviceId, stable across the rename)."""
    parts = [f"serviceId eq {quote_value(MODELS_SERVICE_ID)}"]
    if region:
        parts.append(f"armRegionName eq {quote_value(region.lower())}")
    if price_type:
        parts.append(f"priceType eq {quote_value(price_type)}")
    return " and ".join(parts)


class RetailPricesClient:
    """Reads the Retail Prices API of one endpoint (a cloud's default or a custom URL, e.g. the emulator).

    connection_verify: True, False or a CA bundle path (the emulator's). Retries: `retry_total` attempts on
    408/429/5xx and connection errors, waiting `Retry-After` when the answer carries it, else exponential
    backoff from `retry_backoff_factor` seconds up to `retry_backoff_max`.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        cloud: str = "AzureCloud",
        connection_verify: bool | str = True,
        api_version: str | None = API_VERSION,
        currency: str = "USD",
        retry_total: int = 6,
        retry_backoff_factor: float = 0.8,
        retry_backoff_max: float = 60.0,
        timeout: float = 60.0,
        max_pages: int = MAX_PAGES,
    ):
        if endpoint is None:
            if cloud not in RETAIL_PRICES_ENDPOINTS:
                raise ValueError(f"unknown cloud {cloud!r}; use one of {sorted(RETAIL_PRICES_ENDPOINTS)}")
            endpoint = RETAIL_PRICES_ENDPOINTS[cloud]
            if endpoint is None:
                raise ValueError(f"no public Retail Prices endpoint is known for {cloud}: configure its URL")
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"the Retail Prices endpoint must be an absolute URL, not {endpoint!r}")
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.api_version = api_version
        self.currency = currency.upper()
        self.max_pages = max_pages
        self.pages_read = 0
        policies = [
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(base_user_agent=USER_AGENT),
            RetryPolicy(
                retry_total=retry_total, retry_backoff_factor=retry_backoff_factor, retry_backoff_max=retry_backoff_max
            ),
        ]
        transport = RequestsTransport(
            connection_verify=connection_verify, connection_timeout=timeout, read_timeout=timeout
        )
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            base_url=self.endpoint, policies=policies, transport=transport
        )

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RetailPricesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------------------------
    def first_page_url(self, odata_filter: str | None = None) -> str:
        params = []
        if self.api_version:
            params.append(f"api-version={quote(self.api_version, safe='')}")
        params.append(f"currencyCode={quote(quote_value(self.currency), safe=chr(39))}")
        if odata_filter:
            params.append(f"$filter={quote(odata_filter, safe=chr(39) + '(),')}")
        return f"{self.endpoint}{PRICES_PATH}?{'&'.join(params)}"

    def _rebase(self, link: str) -> str:
        """NextPageLink on this client's endpoint: the service writes `https://prices.azure.com:443/...`; a
        custom endpoint (proxy, emulator) keeps its own scheme, host and port and its CA."""
        parts = urlsplit(link)
        if not parts.path.lower().endswith(PRICES_PATH):
            raise RetailPricesError(f"unexpected NextPageLink {link!r}")
        return f"{self.endpoint}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def _get(self, url: str) -> RetailPricesPage:
        try:
            response = self._client.send_request(HttpRequest("GET", url))
            response.raise_for_status()
            body = response.json()
        except HttpResponseError as exc:
            status = getattr(exc, "status_code", None)
            raise RetailPricesError(f"Retail Prices API answered {status} for {url}: {exc.message}", status) from exc
        except AzureError as exc:
            raise RetailPricesError(f"Retail Prices API unreachable at {url}: {exc}") from exc
        except ValueError as exc:
            raise RetailPricesError(f"Retail Prices API sent a body that is not JSON for {url}: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("Items"), list):
            raise RetailPricesError(f"Retail Prices API sent an unexpected body for {url}: {str(body)[:300]}")
        # JSON is untyped: the checks above make it a page (a mapping with an Items list)
        return cast(RetailPricesPage, body)

    def iter_items(self, odata_filter: str | None = None) -> Iterator[RetailPriceItem]:
        """Every raw item of a query, page after page."""
        url: str | None = self.first_page_url(odata_filter)
        seen: set[str] = set()
        pages = 0
        while url:
            if url in seen:
                raise RetailPricesError(f"NextPageLink loops back to {url}")
            if pages >= self.max_pages:
                raise RetailPricesError(f"more than {self.max_pages} pages for filter {odata_filter!r}")
            seen.add(url)
            body = self._get(url)
            pages += 1
            self.pages_read += 1
            billing = body.get("BillingCurrency")
            if billing and str(billing).upper() != self.currency:
                raise RetailPricesError(f"asked for {self.currency} prices, the API answered in {billing}")
            yield from body["Items"]
            link = body.get("NextPageLink")
            url = self._rebase(link) if link else None

    def iter_prices(self, odata_filter: str | None = None) -> Iterator[RetailPrice]:
        for item in self.iter_items(odata_filter):
            yield RetailPrice.from_item(item)

    def model_prices(
        self, regions: Iterable[str] | None = None, *, price_type: str = "Consumption"
    ) -> list[RetailPrice]:
        """Azure OpenAI / Foundry Models prices (token and provisioned meters) in the given regions (all
        regions when None), one query per region, kept when serviceName is either spelling."""
        wanted = sorted({r.lower() for r in regions}) if regions is not None else [None]
        out: dict[_PriceKey, RetailPrice] = {}
        for region in wanted:
            for price in self.iter_prices(models_filter(region, price_type)):
                if price.service_id != MODELS_SERVICE_ID or price.service_name not in MODELS_SERVICE_NAMES:
                    continue
                key = (
                    price.meter_id,
                    price.arm_region_name,
                    price.effective_start_date,
                    price.tier_minimum_units,
                    price.type,
                    price.reservation_term,
                )
                out.setdefault(key, price)
        return sorted(out.values(), key=lambda p: (p.arm_region_name, p.meter_name, p.effective_start_date))
