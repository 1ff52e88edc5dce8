"""Matching usage to Retail Prices meters (doow_pipeline.usage.pricing), one test per rule.

Expected prices are read from the emulator's price fixture (fixture_prices, the oracle) by exact meter
name, region and date, and the expected cost is computed here: tokens / unit x retailPrice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from doow_pipeline.azure.prices import RetailPrice
from doow_pipeline.usage.pricing import (
    AMBIGUOUS,
    ASSUMED_DEPLOYMENT_TYPE,
    BILLED_AS_CAPACITY,
    NO_METER,
    PRICED,
    DeploymentTypes,
    find_meters,
    parse_meter_name,
    price_usage,
    prices_frame,
    version_mmdd,
)
from doow_pipeline_tests.azure_emulator.prices import fixture_prices

UNIT = {"1K": 1_000, "1M": 1_000_000}
SUB = "3b6e1c2a-5d4f-4a8b-9c7e-0f1a2b3c4d01"
DAY = date(2026, 11, 5)


def oracle_item(meter_name: str, region: str, day: date = DAY, currency: str = "USD") -> dict:
    """The one fixture item with that meter name and region in force on `day`."""
    found = [
        i
        for i in fixture_prices(currency=currency)
        if i["meterName"] == meter_name
        and i["armRegionName"] == region
        and date.fromisoformat(i["effectiveStartDate"][:10]) <= day
        and (i.get("effectiveEndDate") is None or day <= date.fromisoformat(i["effectiveEndDate"][:10]))
    ]
    assert len(found) == 1, (meter_name, region, day, found)
    return found[0]


def cost(tokens: int, meter_name: str, region: str, day: date = DAY, currency: str = "USD") -> float:
    item = oracle_item(meter_name, region, day, currency)
    return tokens / UNIT[item["unitOfMeasure"]] * item["retailPrice"]


@pytest.fixture(scope="module")
def prices() -> pl.DataFrame:
    """Every fixture record: the history a prices asset accumulates."""
    return prices_frame(RetailPrice.from_item(i) for i in fixture_prices())


def usage(*rows) -> pl.DataFrame:
    """Rows: (account, region, deployment, model, version, input, output[, day])."""
    out = []
    for r in rows:
        account, region, deployment, model, version, inp, outp = r[:7]
        day = r[7] if len(r) > 7 else DAY
        out.append(
            {
                "usage_date": day,
                "resource_id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/"
                f"accounts/{account}",
                "resource_region": region,
                "deployment": deployment,
                "model_name": model,
                "model_version": version,
                "metric_region": region,
                "input_tokens": inp,
                "output_tokens": outp,
            }
        )
    return pl.DataFrame(
        out,
        schema={
            "usage_date": pl.Date,
            "resource_id": pl.String,
            "resource_region": pl.String,
            "deployment": pl.String,
            "model_name": pl.String,
            "model_version": pl.String,
            "metric_region": pl.String,
            "input_tokens": pl.Int64,
            "output_tokens": pl.Int64,
        },
    )


def one(prices, row, types=None) -> dict:
    out = price_usage(usage(row), prices, types)
    assert out.height == 1
    return out.row(0, named=True)


def assert_priced(
    got: dict, region: str, input_meter: str, output_meter: str | None, status: str = PRICED, day: date = DAY
):
    assert got["cost_status"] == status, got["cost_detail"]
    assert got["input_meter_name"] == input_meter
    assert got["output_meter_name"] == output_meter
    assert got["input_cost"] == pytest.approx(cost(got["input_tokens"], input_meter, region, day), rel=1e-12)
    expected_out = 0.0 if output_meter is None else cost(got["output_tokens"], output_meter, region, day)
    assert got["output_cost"] == pytest.approx(expected_out, rel=1e-12)
    assert got["estimated_cost"] == pytest.approx(got["input_cost"] + got["output_cost"], rel=1e-12)
    assert got["input_unit_price"] == oracle_item(input_meter, region, day)["retailPrice"]
    assert got["currency"] == "USD"


def assert_unpriced(got: dict, status: str):
    assert got["cost_status"] == status
    assert got["input_cost"] is None and got["output_cost"] is None and got["estimated_cost"] is None
    assert got["cost_detail"]


TYPES = DeploymentTypes(
    overrides={
        "regional": "Standard",
        "dz": "DataZoneStandard",
        "batch": "GlobalBatch",
        "dzbatch": "DataZoneBatch",
        "global": "GlobalStandard",
    }
)


# ---- the name parser on real spellings ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, key",
    [
        ("gpt-4o-0806-Inp-glbl Tokens", ("gpt 4o", "0806", None, "global", "input", False)),
        ("gpt 4o 0806 cached Inp glbl Tokens", ("gpt 4o", "0806", None, "global", "cached_input", False)),
        ("gpt 4o mini 0718 Outp Data Zone Tokens", ("gpt 4o mini", "0718", None, "datazone", "output", False)),
        ("gpt-4o-mini-0718-Batch-Outp-glbl Tokens", ("gpt 4o mini", "0718", None, "global", "output", True)),
        ("gpt 4.1 mini Batch Inp DZone Tokens", ("gpt 4.1 mini", None, None, "datazone", "input", True)),
        ("o3 mini 0131 cached input glbl Tokens", ("o3 mini", "0131", None, "global", "cached_input", False)),
        ("o4-mini 0416 cached Inp DataZone Tokens", ("o4 mini", "0416", None, "datazone", "cached_input", False)),
        ("GPT 5 Rsng outpt DZone 1M Tokens", ("gpt 5 rsng", None, None, "datazone", "output", False)),
        ("GPT 5 Nano Batch Inpt cchd Dzone 1M Tokens", ("gpt 5 nano", None, None, "datazone", "cached_input", True)),
        ("gpt-35-turbo-16K-0125 Input-regional Tokens", ("gpt 35 turbo", "0125", "16k", "regional", "input", False)),
        ("text-embedding-3-large-glbl Tokens", ("text embedding 3 large", None, None, "global", "input", False)),
        ("R1 Outp regnl Tokens", ("r1", None, None, "regional", "output", False)),
        ("6.1-sol LongCo Opt Std DZ 1M Tokens", None),  # long-context tier
        ("gpt-4.1-ft input global Tokens", None),  # fine-tuning
        ("text-embedding-3-large-grader Tokens", None),  # grader
        ("gpt4o realtimePrvwTxtInp DataZone Tokens", None),  # realtime
        ("6-astra LongCo Cd Wr Flex Gl 1M Tokens", None),  # cache write, Flex
        ("Provisioned Managed Global Unit", None),  # hourly
    ],
)
def test_meter_names_parse_into_keys(name, key):
    parsed = parse_meter_name(name)
    got = (
        None
        if parsed is None
        else (parsed.model, parsed.version, parsed.context, parsed.scope, parsed.direction, parsed.batch)
    )
    assert got == key


def test_versions_become_mmdd():
    assert [version_mmdd(v) for v in ("2024-08-06", "0125", "1", "7", None, "2025-04-14")] == [
        "0806",
        "0125",
        None,
        None,
        None,
        "0414",
    ]


# ---- statuses ----------------------------------------------------------------------------------------------------
def test_priced_with_a_deployment_type_from_the_settings(prices):
    got = one(prices, ("aoai-prod-eus", "eastus", "regional", "gpt-4o", "2024-11-20", 15_000_000, 3_500_000), TYPES)
    assert got["deployment_type"] == "Standard" and got["deployment_type_source"] == "override"
    assert_priced(got, "eastus", "gpt 4o 1120 Inp regnl Tokens", "gpt 4o 1120 Outp regnl Tokens")


def test_assumed_deployment_type_when_the_default_applies(prices):
    got = one(prices, ("aoai-prod-weu", "westeurope", "support", "gpt-4o-mini", "2024-07-18", 18_000_000, 4_000_000))
    assert got["deployment_type"] == "GlobalStandard" and got["deployment_type_source"] == "default"
    assert_priced(
        got,
        "westeurope",
        "gpt-4o-mini-0718-Inp-glbl Tokens",
        "gpt-4o-mini-0718-Outp-glbl Tokens",
        ASSUMED_DEPLOYMENT_TYPE,
    )


def test_billed_as_capacity_for_provisioned_deployments(prices):
    types = DeploymentTypes(provisioned={"ais-prod-eus2/ptu"}, overrides={"ptu2": "GlobalProvisionedManaged"})
    for deployment in ("ptu", "ptu2"):
        got = one(
            prices, ("ais-prod-eus2", "eastus2", deployment, "gpt-4o-mini", "2024-07-18", 3_000_000, 700_000), types
        )
        assert_unpriced(got, BILLED_AS_CAPACITY)
        assert got["input_meter_name"] is None
    other = one(prices, ("other-account", "eastus2", "ptu", "gpt-4o-mini", "2024-07-18", 10, 10), types)
    assert other["cost_status"] == ASSUMED_DEPLOYMENT_TYPE  # the key names the account


def test_no_meter_for_a_model_azure_does_not_price(prices):
    for model, version in (("Phi-4", "7"), ("Mistral-Large-2411", "2"), ("Phi-4-mini-instruct", "1")):
        got = one(prices, ("ais-prod-eus2", "eastus2", "d", model, version, 1_200_000, 300_000))
        assert_unpriced(got, NO_METER)
        assert model in got["cost_detail"]


def test_no_meter_without_a_model_name(prices):
    assert_unpriced(one(prices, ("aoai-prod-eus", "eastus", "legacy", None, "2024-11-20", 100, 100)), NO_METER)


def test_ambiguous_when_two_meters_match(prices):
    got = one(prices, ("aoai-prod-weu", "westeurope", "o3", "o3-mini", "2025-01-31", 2_000_000, 3_000_000))
    assert_unpriced(got, AMBIGUOUS)
    assert "o3 mini 0131 input glbl Tokens" in got["cost_detail"]
    assert "o3-mini 0131 Inp glbl Tokens" in got["cost_detail"]
    elsewhere = one(prices, ("aoai-research-eus2", "eastus2", "o3", "o3-mini", "2025-01-31", 2_000_000, 3_000_000))
    assert_priced(
        elsewhere,
        "eastus2",
        "o3 mini 0131 input glbl Tokens",
        "o3 mini 0131 output glbl Tokens",
        ASSUMED_DEPLOYMENT_TYPE,
    )


# ---- matching rules -----------------------------------------------------------------------------------------------
def test_the_version_selects_the_meter_and_never_borrows_another(prices):
    old = one(prices, ("aoai-prod-eus", "eastus", "global", "gpt-4o", "2024-05-13", 1_000_000, 1_000_000), TYPES)
    new = one(prices, ("aoai-prod-eus", "eastus", "global", "gpt-4o", "2024-11-20", 1_000_000, 1_000_000), TYPES)
    assert_priced(old, "eastus", "gpt 4o 0513 Input global Tokens", "gpt 4o 0513 Output global Tokens")
    assert_priced(new, "eastus", "gpt 4o 1120 Inp glbl Tokens", "gpt 4o 1120 Outp glbl Tokens")
    assert old["input_cost"] == pytest.approx(2 * new["input_cost"])
    # swedencentral lists 0806 and 1120 but no 0513: no meter, not the price of another version
    assert_unpriced(
        one(prices, ("aoai-dev", "swedencentral", "global", "gpt-4o", "2024-05-13", 10, 10), TYPES), NO_METER
    )


def test_both_spellings_of_one_model_version(prices):
    hyphen = one(prices, ("a", "westeurope", "global", "gpt-4o", "2024-08-06", 5_000, 7_000), TYPES)
    spaced = one(prices, ("a", "westeurope", "dz", "gpt-4o", "2024-08-06", 5_000, 7_000), TYPES)
    assert_priced(hyphen, "westeurope", "gpt-4o-0806-Inp-glbl Tokens", "gpt-4o-0806-Outp-glbl Tokens")
    assert_priced(spaced, "westeurope", "gpt 4o 0806 Inp Data Zone Tokens", "gpt 4o 0806 Outp Data Zone Tokens")


def test_meters_without_a_version_match_any_version(prices):
    got = one(prices, ("a", "eastus2", "dz", "gpt-4.1", "2025-04-14", 2_600_000, 650_000), TYPES)
    assert_priced(got, "eastus2", "gpt 4.1 Inp Data Zone Tokens", "gpt 4.1 Outp Data Zone Tokens")


def test_mini_and_nano_are_other_models(prices):
    base = one(prices, ("a", "westeurope", "global", "gpt-4.1", "2025-04-14", 1_000, 1_000), TYPES)
    mini = one(prices, ("a", "westeurope", "global", "gpt-4.1-mini", "2025-04-14", 1_000, 1_000), TYPES)
    nano = one(prices, ("a", "westeurope", "global", "gpt-4.1-nano", "2025-04-14", 1_000, 1_000), TYPES)
    assert_priced(base, "westeurope", "gpt 4.1 Inp glbl Tokens", "gpt 4.1 Outp glbl Tokens")
    assert_priced(mini, "westeurope", "gpt 4.1 mini Inp glbl Tokens", "gpt 4.1 mini Outp glbl Tokens")
    assert_priced(nano, "westeurope", "gpt 4.1 nano Inp glbl Tokens", "gpt 4.1 nano Outp glbl Tokens")


def test_batch_deployments_use_batch_meters(prices):
    got = one(prices, ("aoai-prod-weu", "westeurope", "batch", "gpt-4o", "2024-11-20", 12_000_000, 2_500_000), TYPES)
    assert_priced(got, "westeurope", "gpt 4o 1120 Batch Inp glbl Tokens", "gpt 4o 1120 Batch Outp glbl Tokens")
    # "gpt 4.1 mini Batch Inp DZone" exists, its output meter does not: no meter (never the non-batch price)
    dz = one(prices, ("a", "westeurope", "dzbatch", "gpt-4.1-mini", "2025-04-14", 1_000, 1_000), TYPES)
    assert_unpriced(dz, NO_METER)
    assert dz["input_meter_name"] == "gpt 4.1 mini Batch Inp DZone Tokens" and "output" in dz["cost_detail"]


def test_1m_units(prices):
    got = one(prices, ("aoai-prod-weu", "westeurope", "global", "gpt-5", "2025-08-07", 4_000_000, 2_000_000), TYPES)
    assert_priced(got, "westeurope", "GPT 5 Rsng Inpt Glbl 1M Tokens", "GPT 5 Rsng outpt Glbl 1M Tokens")
    assert got["input_unit_of_measure"] == "1M"
    assert got["input_cost"] == pytest.approx(4 * 1.25) and got["output_cost"] == pytest.approx(2 * 10.0)


def test_the_vendor_may_be_in_the_product_name_only(prices):
    got = one(prices, ("ais-prod-eus2", "eastus2", "regional", "DeepSeek-R1", "1", 900_000, 1_600_000), TYPES)
    assert_priced(got, "eastus2", "R1 Inp regnl Tokens", "R1 Outp regnl Tokens")  # not MAI-DS-R1


def test_context_size_and_version_pick_the_16k_0125_meter(prices):
    got = one(
        prices, ("aoai-dev-legacy", "swedencentral", "regional", "gpt-35-turbo", "0125", 1_800_000, 400_000), TYPES
    )
    assert_priced(
        got,
        "swedencentral",
        "gpt-35-turbo-16K-0125 Input-regional Tokens",
        "gpt-35-turbo-16K-0125 Output-regional Tokens",
    )
    # a version without its meter falls back to the unversioned meters: 4k only (Instruct is another model)
    old = one(prices, ("aoai-dev-legacy", "swedencentral", "regional", "gpt-35-turbo", "0613", 1_000, 1_000), TYPES)
    assert_priced(
        old, "swedencentral", "gpt-35-turbo-4k-Input-regional Tokens", "gpt-35-turbo-4k-Output-regional Tokens"
    )


def test_embeddings_price_input_only(prices):
    got = one(prices, ("aoai-prod-weu", "westeurope", "global", "text-embedding-3-large", "1", 30_000_000, 0), TYPES)
    assert_priced(got, "westeurope", "text-embedding-3-large-glbl Tokens", None)
    assert got["output_cost"] == 0.0


def test_the_account_region_selects_the_meter(prices):
    assert_unpriced(one(prices, ("a", "eastus", "global", "gpt-4.1-nano", "2025-04-14", 10, 10), TYPES), NO_METER)
    upper = one(prices, ("a", "WestEurope", "global", "gpt-4.1-nano", "2025-04-14", 10, 10), TYPES)
    assert upper["input_meter_name"] == "gpt 4.1 nano Inp glbl Tokens"


def test_cached_input_meters(prices):
    for model, version, region, name in (
        ("gpt-4o", "2024-11-20", "westeurope", "gpt 4o 1120 cached Inp glbl Tokens"),
        ("gpt-5", "2025-08-07", "eastus2", "GPT 5 Rsng cchd Inpt Glbl 1M Tokens"),
        ("o3-mini", "2025-01-31", "swedencentral", "o3 mini 0131 cached input glbl Tokens"),
    ):
        found = find_meters(
            prices,
            model_name=model,
            model_version=version,
            deployment_type="GlobalStandard",
            direction="cached_input",
            region=region,
            day=DAY,
        )
        assert [m["meter_name"] for m in found] == [name]
        assert found[0]["retail_price"] == oracle_item(name, region)["retailPrice"]
    assert (
        find_meters(
            prices,
            model_name="gpt-4o",
            model_version="2024-11-20",
            deployment_type="ProvisionedManaged",
            direction="input",
            region="westeurope",
            day=DAY,
        )
        == []
    )


# ---- effective dates ------------------------------------------------------------------------------------------------
def test_the_price_in_force_on_the_usage_day(prices):
    before = date(2026, 10, 31)
    after = date(2026, 11, 1)
    rows = price_usage(
        usage(
            ("a", "westeurope", "global", "gpt-4.1", "2025-04-14", 9_000_000, 1_800_000, before),
            ("a", "westeurope", "global", "gpt-4.1", "2025-04-14", 9_000_000, 1_800_000, after),
        ),
        prices,
        TYPES,
    ).to_dicts()
    assert_priced(rows[0], "westeurope", "gpt 4.1 Inp glbl Tokens", "gpt 4.1 Outp glbl Tokens", day=before)
    assert_priced(rows[1], "westeurope", "gpt 4.1 Inp glbl Tokens", "gpt 4.1 Outp glbl Tokens", day=after)
    assert rows[0]["input_unit_price"] == 0.002 and rows[1]["input_unit_price"] == 0.0018
    assert rows[0]["input_meter_id"] == rows[1]["input_meter_id"]


def test_stored_history_without_end_dates_gives_the_same_past_costs(prices):
    """The API answers today's price only: a prices store holds the old record as it was first seen (no end
    date) and the new one. The newest record in force wins, so past days keep their price on a re-run."""
    seen_in_october = prices.filter(pl.col("effective_end_date").is_not_null()).with_columns(
        effective_end_date=pl.lit(None, pl.Datetime("us", "UTC"))
    )
    history = pl.concat([prices.filter(pl.col("effective_end_date").is_null()), seen_in_october])
    rows = usage(
        ("a", "westeurope", "global", "gpt-4.1", "2025-04-14", 9_000_000, 1_800_000, date(2026, 10, 25)),
        ("a", "westeurope", "global", "gpt-4.1", "2025-04-14", 9_000_000, 1_800_000, date(2026, 11, 15)),
    )
    first = price_usage(rows, history, TYPES)
    assert first["input_unit_price"].to_list() == [0.002, 0.0018]
    assert price_usage(rows, history, TYPES).equals(first)  # re-running: identical
    assert (
        price_usage(rows, prices, TYPES)
        .select("input_cost", "output_cost")
        .equals(first.select("input_cost", "output_cost"))
    )


def test_no_price_before_the_meter_exists(prices):
    got = one(prices, ("a", "westeurope", "global", "gpt-4o", "2024-11-20", 10, 10, date(2024, 11, 30)), TYPES)
    assert_unpriced(got, NO_METER)


# ---- currency and settings -------------------------------------------------------------------------------------------
def test_prices_in_another_currency():
    eur = prices_frame(RetailPrice.from_item(i) for i in fixture_prices(currency="EUR"))
    got = price_usage(
        usage(("a", "westeurope", "global", "gpt-4.1-mini", "2025-04-14", 5_000_000, 900_000)),
        eur,
        TYPES,
        currency="EUR",
    ).row(0, named=True)
    assert got["currency"] == "EUR" and got["cost_status"] == PRICED
    assert got["input_cost"] == pytest.approx(
        cost(5_000_000, "gpt 4.1 mini Inp glbl Tokens", "westeurope", currency="EUR")
    )
    usd_only = price_usage(usage(("a", "westeurope", "global", "gpt-4.1-mini", "2025-04-14", 5, 9)), eur, TYPES)
    assert usd_only["cost_status"].to_list() == [NO_METER]  # no USD prices in that frame: unknown, not 0


def test_deployment_type_settings_precedence_and_validation():
    types = DeploymentTypes(
        default="DataZoneStandard", overrides={"Acct/Dep": "GlobalBatch", "dep": "Standard"}, provisioned={"ptu"}
    )
    assert types.resolve("acct", "DEP") == ("GlobalBatch", "override")
    assert types.resolve("other", "dep") == ("Standard", "override")
    assert types.resolve("other", "x") == ("DataZoneStandard", "default")
    assert types.resolve("any", "ptu") == ("ProvisionedManaged", "provisioned")
    with pytest.raises(ValueError):
        DeploymentTypes(default="Global Standard")


def test_every_row_keeps_its_columns_and_order(prices):
    rows = usage(
        ("a", "westeurope", "global", "gpt-4.1", "2025-04-14", 1, 1),
        ("b", "eastus2", "x", "Phi-4", "7", 1, 1),
        ("c", "westeurope", "o3", "o3-mini", "2025-01-31", 1, 1),
    )
    out = price_usage(rows, prices, TYPES)
    assert out.select(rows.columns).equals(rows)
    assert out["cost_status"].to_list() == [PRICED, NO_METER, AMBIGUOUS]


def test_aliases_for_names_azure_meters_differently():
    """A hand-made price list in Azure's record shape: ada-002 is metered as "embedding-ada-glbl"."""
    record = {
        "meter_id": "00000000-0000-0000-0000-0000000000ad",
        "meter_name": "embedding-ada-glbl Tokens",
        "product_name": "Azure OpenAI",
        "sku_name": "embedding-ada-glbl",
        "service_name": "Foundry Models",
        "arm_region_name": "swedencentral",
        "unit_of_measure": "1K",
        "retail_price": 0.0001,
        "currency_code": "USD",
        "type": "Consumption",
        "tier_minimum_units": 0.0,
        "effective_start_date": datetime(2024, 6, 1, tzinfo=UTC),
        "effective_end_date": None,
    }
    got = one(
        prices_frame([record]), ("a", "swedencentral", "global", "text-embedding-ada-002", "2", 400_000, 0), TYPES
    )
    assert got["cost_status"] == PRICED and got["input_meter_name"] == "embedding-ada-glbl Tokens"
    assert got["input_cost"] == pytest.approx(400_000 / 1_000 * 0.0001)
