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
    ASSUMED_DEPLOYMENT_TYPE,
    COST_STATUSES,
    PRICED,
    price_usage,
    prices_frame,
)
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.prices import fixture_prices
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.azure_emulator.usage import expected_daily_usage
from doow_pipeline_tests.cost_oracle import DEMO_METERS, DEMO_TYPES, prices_in_force, unit_price

FIRST, LAST = date(2026, 10, 21), date(2026, 11, 19)  # the demo's 30 complete days before 2026-11-20


def oracle_price(meter_name: str, region: str, day: date) -> tuple[float, int]:
    found = prices_in_force(fixture_prices(), meter_name, region, day)
    assert len(found) == 1, (meter_name, region, day)
    return unit_price(found[0])


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
        expected = DEMO_METERS[key]
        if isinstance(expected, str):
            assert row["cost_status"] == expected, (key, row["cost_detail"])
            assert row["input_cost"] is None and row["output_cost"] is None and row["estimated_cost"] is None
            continue
        override = key[0] + "/" + key[1] in {k.lower() for k in DEMO_TYPES.overrides}
        assert row["cost_status"] == (PRICED if override else ASSUMED_DEPLOYMENT_TYPE), (key, row["cost_detail"])
        assert (row["input_meter_name"], row["output_meter_name"]) == expected, key
    assert seen == set(DEMO_METERS)


def test_cost_per_day_and_deployment_is_tokens_times_the_unit_price_of_that_day(priced):
    checked = 0
    for row in priced.filter(pl.col("estimated_cost").is_not_null()).iter_rows(named=True):
        input_meter, output_meter = DEMO_METERS[(row["resource_name"], row["deployment"])]
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
