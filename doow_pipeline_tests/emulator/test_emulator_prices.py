"""The emulated Azure Retail Prices API, read through the product's client (doow_pipeline.azure.prices) and,
where the wire shape itself is the point, with plain HTTPS: envelope, paging, filters, currency, the clock,
429 + Retry-After. Expected items come from the fixture oracle (azure_emulator.prices.fixture_prices)."""

from __future__ import annotations

import json
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest

from doow_pipeline.azure.prices import (
    MODELS_SERVICE_ID,
    RetailPrice,
    RetailPricesClient,
    RetailPricesError,
    models_filter,
)
from doow_pipeline_tests.azure_emulator import samples as S
from doow_pipeline_tests.azure_emulator.harness import run_emulator
from doow_pipeline_tests.azure_emulator.prices import fixture_prices

UTC = UTC
NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)  # samples.NOW
PAGE = 25
ENVELOPE = ["BillingCurrency", "CustomerEntityId", "CustomerEntityType", "Items", "NextPageLink", "Count"]
ITEM_FIELDS = [
    "currencyCode",
    "tierMinimumUnits",
    "retailPrice",
    "unitPrice",
    "armRegionName",
    "location",
    "effectiveStartDate",
    "meterId",
    "meterName",
    "productId",
    "skuId",
    "productName",
    "skuName",
    "serviceName",
    "serviceId",
    "serviceFamily",
    "unitOfMeasure",
    "type",
    "isPrimaryMeterRegion",
    "armSkuName",
]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def in_force(item: dict, at: datetime) -> bool:
    end = item.get("effectiveEndDate")
    return _ts(item["effectiveStartDate"]) <= at and (end is None or _ts(end) >= at)


def oracle(at: datetime = NOW, currency: str = "USD", **equal) -> list[dict]:
    """Fixture items in force at `at` whose fields equal the given values, in meterId order."""
    return [
        i for i in fixture_prices(currency=currency) if in_force(i, at) and all(i.get(k) == v for k, v in equal.items())
    ]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    scenario = S.small_scenario(prices={"page_size": PAGE})
    with run_emulator(scenario, state_dir=tmp_path_factory.mktemp("emu-prices")) as e:
        yield e


@pytest.fixture
def fresh(emu):
    emu.reset()
    yield emu
    emu.reset()


def client(emu, **kwargs) -> RetailPricesClient:
    kwargs.setdefault("retry_backoff_factor", 0.01)
    return RetailPricesClient(emu.arm, connection_verify=emu.ca_cert, **kwargs)


def raw_get(emu, query: str) -> tuple[int, dict, dict]:
    ctx = ssl.create_default_context(cafile=emu.ca_cert)
    url = f"{emu.arm}/api/retail/prices" + (f"?{query}" if query else "")
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def q(**params) -> str:
    return "&".join(f"{k}={urllib.parse.quote(v, safe=chr(39))}" for k, v in params.items())


# ---- wire shape ------------------------------------------------------------------------------------------------
def test_envelope_and_item_fields_are_azures(fresh):
    status, body, headers = raw_get(fresh, q(**{"$filter": "armRegionName eq 'eastus2' and skuName eq 'R1 Inp glbl'"}))
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert list(body) == ENVELOPE
    assert (body["BillingCurrency"], body["CustomerEntityId"], body["CustomerEntityType"]) == (
        "USD",
        "Default",
        "Retail",
    )
    assert body["NextPageLink"] is None and body["Count"] == len(body["Items"]) == 1
    item = body["Items"][0]
    assert list(item) == ITEM_FIELDS  # no effectiveEndDate when the price has none
    assert item == oracle(armRegionName="eastus2", skuName="R1 Inp glbl")[0]
    assert (
        item["meterName"],
        item["productName"],
        item["serviceName"],
        item["unitOfMeasure"],
        item["retailPrice"],
    ) == ("R1 Inp glbl Tokens", "Deepseek model family", "Cognitive Services", "1K", 0.00135)
    assert item["skuId"].startswith(item["productId"] + "/") and item["location"] == "US East 2"


def test_no_match_is_an_empty_page_not_an_error(fresh):
    status, body, _ = raw_get(fresh, q(**{"$filter": "meterName eq 'no such meter'"}))
    assert status == 200 and body["Items"] == [] and body["Count"] == 0 and body["NextPageLink"] is None


def test_paging_follows_next_page_link_with_skip(fresh):
    expected = oracle(serviceId=MODELS_SERVICE_ID)
    with client(fresh) as c:
        got = list(c.iter_items(f"serviceId eq '{MODELS_SERVICE_ID}'"))
        assert c.pages_read == math.ceil(len(expected) / PAGE) > 3
    assert got == expected
    log = fresh.requests("prices")
    assert [e["query"].get("$skip") for e in log] == [None] + [str(PAGE * i) for i in range(1, len(log))]
    assert all(e["status"] == 200 and e["principal"] is None for e in log)  # anonymous
    _, first, _ = raw_get(fresh, q(**{"$filter": f"serviceId eq '{MODELS_SERVICE_ID}'"}))
    link = urllib.parse.urlsplit(first["NextPageLink"])
    assert f"{link.scheme}://{link.netloc}" == fresh.arm and link.path == "/api/retail/prices"
    assert urllib.parse.parse_qs(link.query) == {
        "$filter": [f"serviceId eq '{MODELS_SERVICE_ID}'"],
        "$skip": [str(PAGE)],
    }


def test_default_page_size_is_100(tmp_path):
    with run_emulator(S.small_scenario(), state_dir=tmp_path) as e:
        status, body, _ = raw_get(e, "")
        assert status == 200 and body["Count"] == 100 and body["NextPageLink"].endswith("$skip=100")


# ---- filters -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "odata, expected",
    [
        ("serviceName eq 'Foundry Models'", lambda i: i["serviceName"] == "Foundry Models"),
        (
            "armRegionName eq 'westeurope' and contains(meterName, 'Batch')",
            lambda i: i["armRegionName"] == "westeurope" and "Batch" in i["meterName"],
        ),
        (
            "productName eq 'Azure OpenAI GPT5' and armRegionName eq 'eastus2' and unitOfMeasure eq '1M'",
            lambda i: i["productName"] == "Azure OpenAI GPT5" and i["armRegionName"] == "eastus2",
        ),
        ("priceType eq 'Reservation'", lambda i: i["type"] == "Reservation"),
        (
            "(skuName eq 'gpt 4o 1120 Inp glbl' or skuName eq 'gpt 4o 1120 Outp glbl') and armRegionName eq 'eastus'",
            lambda i: (
                i["skuName"] in ("gpt 4o 1120 Inp glbl", "gpt 4o 1120 Outp glbl") and i["armRegionName"] == "eastus"
            ),
        ),
        ("serviceId eq 'DZH313Z7MMC8'", lambda i: i["serviceName"] == "Virtual Machines"),
    ],
)
def test_filters(fresh, odata, expected):
    with client(fresh) as c:
        got = list(c.iter_items(odata))
    want = [i for i in oracle() if expected(i)]
    assert got == want and want


def test_filter_values_are_case_sensitive_from_2023_01_01_preview_only(fresh):
    lower = "serviceName eq 'foundry models'"
    with client(fresh) as c:
        assert list(c.iter_items(lower)) == []
    with client(fresh, api_version=None) as c:
        assert len(list(c.iter_items(lower))) == len(oracle(serviceName="Foundry Models")) > 0
    with client(fresh, api_version="2021-10-01-preview") as c:
        assert list(c.iter_items("contains(meterName, 'R1 INP')"))  # case-insensitive before 2023-01-01-preview


def test_bad_filter_and_api_version_are_400(fresh):
    for query in (
        q(**{"$filter": "meterName ne 'x'"}),
        q(**{"$filter": "colour eq 'red'"}),
        q(**{"$filter": "meterName eq 'unterminated"}),
        "api-version=2020-01-01",
    ):
        status, body, _ = raw_get(fresh, query)
        assert status == 400 and set(body["error"]) == {"code", "message"}, query
    with client(fresh) as c, pytest.raises(RetailPricesError) as err:
        list(c.iter_items("meterName ne 'x'"))
    assert err.value.status == 400


# ---- currency -----------------------------------------------------------------------------------------------------
def test_currency_code_converts_prices(fresh):
    odata = "armRegionName eq 'westeurope' and productName eq 'Azure OpenAI GPT5'"
    with client(fresh, currency="EUR") as c:
        got = list(c.iter_prices(odata))
    want = [
        i
        for i in oracle(currency="EUR")
        if i["armRegionName"] == "westeurope" and i["productName"] == "Azure OpenAI GPT5"
    ]
    assert [(p.meter_id, p.retail_price, p.currency_code) for p in got] == [
        (i["meterId"], i["retailPrice"], "EUR") for i in want
    ]
    usd = {i["meterId"]: i["retailPrice"] for i in oracle()}
    assert all(p.retail_price != usd[p.meter_id] for p in got)
    _, body, _ = raw_get(fresh, q(currencyCode="'EUR'", **{"$filter": odata}))
    assert body["BillingCurrency"] == "EUR"
    status, body, _ = raw_get(fresh, q(currencyCode="'XYZ'"))
    assert status == 400


# ---- 429 -------------------------------------------------------------------------------------------------------------
def test_429_retry_after_from_a_fault_is_waited_and_retried(fresh):
    fresh.add_faults([{"match": "prices", "action": {"status": 429}, "nth": [1], "retry_after": 1}])
    started = time.monotonic()
    with client(fresh) as c:
        got = c.model_prices(["eastus2"])
    assert time.monotonic() - started >= 1.0
    want = oracle(serviceId=MODELS_SERVICE_ID, armRegionName="eastus2", type="Consumption")
    assert [e["status"] for e in fresh.requests("prices")] == [429] + [200] * math.ceil(len(want) / PAGE)
    assert fresh.requests("prices")[0]["query"] == fresh.requests("prices")[1]["query"]  # the same page, retried
    assert sorted(p.meter_id for p in got) == sorted(i["meterId"] for i in want)


def test_429_that_never_ends_is_an_error_after_the_retries(fresh):
    fresh.add_faults([{"match": "prices", "action": {"status": 429}, "retry_after": 0}])
    with client(fresh, retry_total=2) as c, pytest.raises(RetailPricesError) as err:
        c.model_prices(["eastus2"])
    assert err.value.status == 429
    assert [e["status"] for e in fresh.requests("prices")] == [429, 429, 429]


def test_throttle_budget_answers_429_with_retry_after(tmp_path):
    with run_emulator(S.small_scenario(prices={"requests_per_minute": 2}), state_dir=tmp_path) as e:
        assert [raw_get(e, "")[0] for _ in range(2)] == [200, 200]
        status, body, headers = raw_get(e, "")
        assert status == 429 and body["error"]["code"] == "TooManyRequests"
        assert 1 <= int(headers["Retry-After"]) <= 60
        e.reset()  # clears the throttling windows
        assert raw_get(e, "")[0] == 200


# ---- what the API tells: today's prices ----------------------------------------------------------------------------
def test_prices_in_force_at_the_emulator_clock(fresh):
    odata = "armRegionName eq 'westeurope' and skuName eq 'gpt 4.1 Inp glbl'"
    with client(fresh) as c:
        now = list(c.iter_prices(odata))
        fresh.set_clock("2026-10-20T00:00:00Z")
        before = list(c.iter_prices(odata))
    assert [(p.retail_price, p.service_name, p.effective_end_date) for p in before] == [
        (0.002, "Cognitive Services", datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    ]
    assert [(p.retail_price, p.service_name, p.effective_start_date) for p in now] == [
        (0.0018, "Foundry Models", datetime(2026, 11, 1, tzinfo=UTC))
    ]
    assert before[0].meter_id == now[0].meter_id


def test_model_prices_keep_both_service_names_and_only_the_models_service(fresh):
    with client(fresh) as c:
        got = c.model_prices(["westeurope", "eastus2"])
    assert {p.service_name for p in got} == {"Cognitive Services", "Foundry Models"}
    assert {p.service_id for p in got} == {MODELS_SERVICE_ID} and {p.type for p in got} == {"Consumption"}
    assert all(isinstance(p, RetailPrice) for p in got)
    want = {
        i["meterId"]
        for i in oracle()
        if i["serviceId"] == MODELS_SERVICE_ID
        and i["type"] == "Consumption"
        and i["armRegionName"] in ("westeurope", "eastus2")
    }
    assert {p.meter_id for p in got} == want
    log = fresh.requests("prices")
    assert sorted({e["query"]["$filter"] for e in log}) == [models_filter("eastus2"), models_filter("westeurope")]
    assert all(e["query"]["api-version"] == "2023-01-01-preview" and e["query"]["currencyCode"] == "'USD'" for e in log)


def test_client_refuses_a_cloud_without_a_known_endpoint():
    with pytest.raises(ValueError):
        RetailPricesClient(cloud="AzureChinaCloud")
    assert RetailPricesClient(cloud="AzureUSGovernment").endpoint == "https://prices.azure.com"
