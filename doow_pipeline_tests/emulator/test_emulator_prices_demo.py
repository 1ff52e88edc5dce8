"""The demo estate priced end to end, without the pipeline's wiring: prices read from the emulator (demo
scenario) with the product's client on two days (the API answers today's prices, so a store keeps both),
the demo's true daily usage from the generator, the settings a demo user would write. Every row gets a
status; every costed row equals tokens x unit price of the meter named here, priced from the fixture oracle
on that day; PTU and unmatched rows are NULL; the FOCUS-aligned frame validates."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from doow_pipeline.azure.prices import RetailPricesClient
from doow_pipeline.usage.focus import focus_frame, validate_focus
from doow_pipeline.usage.pricing import (
    AMBIGUOUS,
    ASSUMED_DEPLOYMENT_TYPE,
    BILLED_AS_CAPACITY,
    COST_STATUSES,
    NO_METER,
    PRICED,
    DeploymentTypes,
    price_usage,
    prices_frame,
)
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.prices import fixture_prices
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.azure_emulator.usage import expected_daily_usage

FIRST, LAST = date(2026, 10, 21), date(2026, 11, 19)  # the demo's 30 complete days before 2026-11-20
UNIT = {"1K": 1_000, "1M": 1_000_000}
DEMO_TYPES = DeploymentTypes(
    default="GlobalStandard",
    overrides={
        "aoai-prod-weu/gpt-4o-batch": "GlobalBatch",
        "aoai-prod-eus/gpt-4o-eus": "Standard",
        "aoai-prod-eus/gpt-41-eus": "DataZoneStandard",
        "aoai-dev-legacy/gpt-35-turbo-legacy": "Standard",
        "aoai-research-eus2/gpt-4o-research": "DataZoneStandard",
    },
    provisioned={"ais-prod-eus2/gpt-4o-mini-foundry"},
)
G4O = ("gpt 4o 1120 Inp glbl Tokens", "gpt 4o 1120 Outp glbl Tokens")
MINI = ("gpt-4o-mini-0718-Inp-glbl Tokens", "gpt-4o-mini-0718-Outp-glbl Tokens")
G41 = ("gpt 4.1 Inp glbl Tokens", "gpt 4.1 Outp glbl Tokens")
G41MINI = ("gpt 4.1 mini Inp glbl Tokens", "gpt 4.1 mini Outp glbl Tokens")
G5 = ("GPT 5 Rsng Inpt Glbl 1M Tokens", "GPT 5 Rsng outpt Glbl 1M Tokens")
O3 = ("o3 mini 0131 input glbl Tokens", "o3 mini 0131 output glbl Tokens")
R1 = ("R1 Inp glbl Tokens", "R1 Outp glbl Tokens")
# (account, deployment) -> the meters a person reading the price list picks, or the status when none applies
EXPECTED = {
    ("aoai-prod-weu", "gpt-4o-chat"): G4O,
    ("aoai-prod-weu", "gpt-4o-batch"): ("gpt 4o 1120 Batch Inp glbl Tokens", "gpt 4o 1120 Batch Outp glbl Tokens"),
    ("aoai-prod-weu", "gpt-4o-mini-support"): MINI,
    ("aoai-prod-weu", "gpt-4o-mini-routing"): MINI,
    ("aoai-prod-weu", "gpt-41-agents"): G41,
    ("aoai-prod-weu", "gpt-41-mini-summaries"): G41MINI,
    ("aoai-prod-weu", "gpt-41-nano-classify"): ("gpt 4.1 nano Inp glbl Tokens", "gpt 4.1 nano Outp glbl Tokens"),
    ("aoai-prod-weu", "o3-mini-reasoning"): AMBIGUOUS,
    ("aoai-prod-weu", "o4-mini-eval"): ("o4-mini 0416 Inp glbl Tokens", "o4-mini 0416 Outp glbl Tokens"),
    ("aoai-prod-weu", "embed-large-search"): ("text-embedding-3-large-glbl Tokens", None),
    ("aoai-prod-weu", "embed-small-rag"): ("text-embedding-3-small-glbl Tokens", None),
    ("aoai-prod-weu", "gpt-5-pilot"): G5,
    ("aoai-prod-eus", "gpt-4o-eus"): ("gpt 4o 1120 Inp regnl Tokens", "gpt 4o 1120 Outp regnl Tokens"),
    ("aoai-prod-eus", "gpt-4o-mini-eus"): MINI,
    ("aoai-prod-eus", "gpt-41-eus"): ("gpt 4.1 Inp Data Zone Tokens", "gpt 4.1 Outp Data Zone Tokens"),
    ("aoai-prod-eus", "gpt-4o-global"): G4O,
    ("ais-prod-eus2", "phi-4-internal"): NO_METER,
    ("ais-prod-eus2", "deepseek-r1-research"): R1,
    ("ais-prod-eus2", "mistral-large-docs"): NO_METER,
    ("ais-prod-eus2", "gpt-4o-mini-foundry"): BILLED_AS_CAPACITY,
    ("ais-prod-eus2", "gpt-41-foundry"): G41,
    ("aoai-dev-legacy", "gpt-35-turbo-legacy"): (
        "gpt-35-turbo-16K-0125 Input-regional Tokens",
        "gpt-35-turbo-16K-0125 Output-regional Tokens",
    ),
    ("aoai-dev-legacy", "gpt-4o-mini-dev"): MINI,
    ("aoai-dev-legacy", "embed-large-dev"): ("text-embedding-3-large-glbl Tokens", None),
    ("ais-dev-swc", "gpt-41-mini-dev"): G41MINI,
    ("ais-dev-swc", "phi-4-mini-dev"): NO_METER,
    ("ais-dev-swc", "o3-mini-dev"): O3,
    ("aoai-research-eus2", "gpt-5-research"): G5,
    ("aoai-research-eus2", "o3-mini-research"): O3,
    ("aoai-research-eus2", "gpt-4o-research"): (
        "gpt 4o 1120 Inp Data Zone Tokens",
        "gpt 4o 1120 Outp Data Zone Tokens",
    ),
    ("ais-research-restricted", "deepseek-r1-restricted"): R1,
    ("ais-research-restricted", "gpt-41-restricted"): G41,
}


def oracle_price(meter_name: str, region: str, day: date) -> tuple[float, int]:
    found = [
        i
        for i in fixture_prices()
        if i["meterName"] == meter_name
        and i["armRegionName"] == region
        and date.fromisoformat(i["effectiveStartDate"][:10]) <= day
        and (i.get("effectiveEndDate") is None or day <= date.fromisoformat(i["effectiveEndDate"][:10]))
    ]
    assert len(found) == 1, (meter_name, region, day)
    return found[0]["retailPrice"], UNIT[found[0]["unitOfMeasure"]]


@pytest.fixture(scope="module")
def priced(emulator) -> pl.DataFrame:
    scenario = load_scenario(DEMO_SCENARIO)
    regions = sorted({a.location for a in scenario.accounts})
    stored = []
    with RetailPricesClient(emulator.arm, connection_verify=emulator.ca_cert) as client:
        for clock in (f"{FIRST}T00:00:00Z", "2026-11-20T06:00:00Z"):  # two daily price syncs of a prices store
            emulator.set_clock(clock)
            stored.extend(client.model_prices(regions))
    emulator.reset()
    prices = prices_frame(stored).unique()
    accounts = {a.id: a for a in scenario.accounts}
    truth = {}
    for row in expected_daily_usage(scenario, FIRST, LAST):  # one row per family: the same tokens
        truth[(row["day"], row["resource_id"], row["deployment"])] = row
    usage = pl.DataFrame(
        [
            {
                "usage_date": r["day"],
                "resource_id": r["resource_id"],
                "resource_name": accounts[r["resource_id"]].name,
                "resource_region": accounts[r["resource_id"]].location,
                "deployment": r["deployment"],
                "model_name": r["model"],
                "model_version": r["version"],
                "metric_region": r["region"],
                "input_tokens": r["input_tokens"],
                "output_tokens": r["output_tokens"],
            }
            for r in truth.values()
        ]
    )
    return price_usage(usage, prices, DEMO_TYPES)


def test_every_demo_row_has_a_status_and_the_expected_meters(priced):
    assert priced.height > 500 and set(priced["cost_status"].unique()) <= set(COST_STATUSES)
    assert priced["cost_status"].null_count() == 0
    seen = set()
    for row in priced.iter_rows(named=True):
        key = (row["resource_name"], row["deployment"])
        seen.add(key)
        expected = EXPECTED[key]
        if isinstance(expected, str):
            assert row["cost_status"] == expected, (key, row["cost_detail"])
            assert row["input_cost"] is None and row["output_cost"] is None and row["estimated_cost"] is None
            continue
        override = key[0] + "/" + key[1] in {k.lower() for k in DEMO_TYPES.overrides}
        assert row["cost_status"] == (PRICED if override else ASSUMED_DEPLOYMENT_TYPE), (key, row["cost_detail"])
        assert (row["input_meter_name"], row["output_meter_name"]) == expected, key
    assert seen == set(EXPECTED)


def test_cost_per_day_and_deployment_is_tokens_times_the_unit_price_of_that_day(priced):
    checked = 0
    for row in priced.filter(pl.col("estimated_cost").is_not_null()).iter_rows(named=True):
        input_meter, output_meter = EXPECTED[(row["resource_name"], row["deployment"])]
        price, unit = oracle_price(input_meter, row["resource_region"], row["usage_date"])
        expected = row["input_tokens"] / unit * price
        if output_meter is not None:
            price, unit = oracle_price(output_meter, row["resource_region"], row["usage_date"])
            expected += row["output_tokens"] / unit * price
        assert row["estimated_cost"] == pytest.approx(expected, rel=1e-12), (row["deployment"], row["usage_date"])
        checked += 1
    assert checked == priced.filter(pl.col("cost_status").is_in([PRICED, ASSUMED_DEPLOYMENT_TYPE])).height > 400


def test_the_price_change_inside_the_history(priced):
    agents = priced.filter(pl.col("deployment") == "gpt-41-agents").sort("usage_date")
    before = agents.filter(pl.col("usage_date") < date(2026, 11, 1))["input_unit_price"].unique().to_list()
    after = agents.filter(pl.col("usage_date") >= date(2026, 11, 1))["input_unit_price"].unique().to_list()
    assert before == [0.002] and after == [0.0018]
    assert agents["usage_date"].min() == FIRST and agents["usage_date"].max() == LAST


def test_the_demo_focus_export_validates(priced):
    focus = focus_frame(priced, tags={})
    assert validate_focus(focus) == []
    tokens = priced.select((pl.col("input_tokens") > 0).sum() + (pl.col("output_tokens") > 0).sum()).item()
    assert focus.height == tokens
    costed = focus.filter(pl.col("ListCost").is_not_null())
    assert costed["ListCost"].sum() == pytest.approx(priced["estimated_cost"].sum(), rel=1e-9)
