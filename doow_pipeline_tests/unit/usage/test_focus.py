"""The FOCUS-aligned frame (doow_pipeline.usage.focus): its column rules, and a validator that catches each
broken rule."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from doow_pipeline.azure.prices import RetailPrice
from doow_pipeline.usage.focus import COST_BASIS, focus_frame, validate_focus
from doow_pipeline.usage.pricing import DeploymentTypes, price_usage, prices_frame
from doow_pipeline_tests.azure_emulator.prices import fixture_prices

SUB = "3b6e1c2a-5d4f-4a8b-9c7e-0f1a2b3c4d01"
ACCOUNTS = f"/subscriptions/{SUB}/resourceGroups/{{}}/providers/Microsoft.CognitiveServices/accounts/{{}}"
WEU = ACCOUNTS.format("rg-ai-prod-weu", "aoai-prod-weu")
EUS2 = ACCOUNTS.format("rg-ai-prod-eus2", "ais-prod-eus2")
UTC = UTC


def _usage() -> pl.DataFrame:
    rows = [
        (date(2026, 11, 5), WEU, "westeurope", "gpt-4o-chat", "gpt-4o", "2024-11-20", 24_000_000, 6_000_000),
        (date(2026, 11, 5), WEU, "westeurope", "embed-large-search", "text-embedding-3-large", "1", 30_000_000, 0),
        (date(2026, 11, 5), WEU, "westeurope", "gpt-5-pilot", "gpt-5", "2025-08-07", 4_000_000, 2_000_000),
        (date(2026, 11, 6), WEU, "westeurope", "gpt-4o-chat", "gpt-4o", "2024-11-20", 20_000_000, 5_000_000),
        (date(2026, 11, 5), EUS2, "eastus2", "phi-4-internal", "Phi-4", "7", 1_200_000, 300_000),
        (date(2026, 11, 5), EUS2, "eastus2", "gpt-4o-mini-foundry", "gpt-4o-mini", "2024-07-18", 3_000_000, 700_000),
    ]
    cols = [
        "usage_date",
        "resource_id",
        "resource_region",
        "deployment",
        "model_name",
        "model_version",
        "input_tokens",
        "output_tokens",
    ]
    return pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows]).with_columns(
        metric_region=pl.col("resource_region")
    )


@pytest.fixture(scope="module")
def priced() -> pl.DataFrame:
    prices = prices_frame(RetailPrice.from_item(i) for i in fixture_prices())
    types = DeploymentTypes(overrides={"gpt-4o-chat": "GlobalStandard"}, provisioned={"gpt-4o-mini-foundry"})
    return price_usage(_usage(), prices, types)


@pytest.fixture(scope="module")
def focus(priced) -> pl.DataFrame:
    return focus_frame(priced, tags={WEU.upper(): {"owner": "search-team", "costCenter": "CC-4711"}})


def test_the_frame_satisfies_its_rules(focus):
    assert validate_focus(focus) == []


def test_one_row_per_day_resource_deployment_model_version_and_token_type(focus):
    # 6 usage rows x 2 token types, minus the embedding's 0 output tokens
    assert focus.height == 11
    keys = focus.select(
        "ChargePeriodStart", "ResourceId", "x_DeploymentName", "x_ModelName", "x_ModelVersion", "x_TokenType"
    )
    assert keys.unique().height == focus.height
    assert not focus.filter(
        (pl.col("x_DeploymentName") == "embed-large-search") & (pl.col("x_TokenType") == "Output")
    ).height


def test_columns_of_a_priced_row(focus):
    row = focus.filter((pl.col("x_DeploymentName") == "gpt-5-pilot") & (pl.col("x_TokenType") == "Output")).row(
        0, named=True
    )
    assert row["ChargePeriodStart"] == datetime(2026, 11, 5, tzinfo=UTC)
    assert row["ChargePeriodEnd"] == datetime(2026, 11, 6, tzinfo=UTC)
    assert (row["ChargeCategory"], row["ServiceCategory"], row["ServiceSubcategory"]) == (
        "Usage",
        "AI and Machine Learning",
        "Generative AI",
    )
    assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == (2_000_000, "Tokens")
    assert (row["PricingQuantity"], row["PricingUnit"], row["ListUnitPrice"]) == (2.0, "1000000 Tokens", 10.0)
    assert row["ListCost"] == pytest.approx(20.0)
    assert row["BilledCost"] is None and row["EffectiveCost"] is None
    assert row["x_CostBasis"] == COST_BASIS == "RetailListPriceEstimate"
    assert row["ServiceName"] == "Azure OpenAI"
    assert focus.filter(pl.col("x_ModelName") == "Phi-4")["ServiceName"].unique().to_list() == ["Foundry Models"]
    assert row["SkuMeter"] == "GPT 5 Rsng outpt Glbl 1M Tokens" and row["SkuPriceId"]
    assert json.loads(row["SkuPriceDetails"]) == {
        "ModelName": "gpt-5",
        "ModelVersion": "2025-08-07",
        "TokenType": "Output",
        "DeploymentType": "GlobalStandard",
    }
    assert (row["ResourceId"], row["ResourceName"], row["RegionId"], row["SubAccountId"]) == (
        WEU,
        "aoai-prod-weu",
        "westeurope",
        SUB,
    )
    assert json.loads(row["Tags"]) == {"costCenter": "CC-4711", "owner": "search-team"}
    thousand = focus.filter((pl.col("x_DeploymentName") == "gpt-4o-chat") & (pl.col("x_TokenType") == "Input")).row(
        0, named=True
    )
    assert (thousand["PricingQuantity"], thousand["PricingUnit"]) == (24_000.0, "1000 Tokens")


def test_rows_without_a_price_keep_their_quantity_and_status(focus):
    for deployment, status in (("phi-4-internal", "no_meter"), ("gpt-4o-mini-foundry", "billed_as_capacity")):
        rows = focus.filter(pl.col("x_DeploymentName") == deployment)
        assert rows.height == 2 and rows["x_CostStatus"].unique().to_list() == [status]
        assert rows.select("ListCost", "ListUnitPrice", "PricingQuantity", "PricingUnit", "SkuMeter").null_count().row(
            0
        ) == (2, 2, 2, 2, 2)
        assert rows["ConsumedQuantity"].min() > 0 and rows["Tags"].to_list() == ["{}", "{}"]


def _broken(focus: pl.DataFrame, **columns) -> list[str]:
    return validate_focus(focus.with_columns(**columns))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"BilledCost": pl.lit(1.0)}, "BilledCost is not empty"),
        ({"EffectiveCost": pl.col("ListCost")}, "EffectiveCost is not empty"),
        ({"ServiceCategory": pl.lit("AI + Machine Learning")}, "ServiceCategory is not"),
        ({"ChargeCategory": pl.lit("Purchase")}, "ChargeCategory is not"),
        ({"ConsumedUnit": pl.lit("1K")}, "ConsumedUnit is not"),
        ({"x_CostBasis": pl.lit("Invoice")}, "x_CostBasis is not"),
        ({"ListCost": pl.col("ListCost") * 1.01}, "ListCost != ListUnitPrice x PricingQuantity"),
        ({"PricingQuantity": pl.col("ConsumedQuantity")}, "PricingQuantity != ConsumedQuantity / PricingUnit"),
        ({"ChargePeriodEnd": pl.col("ChargePeriodStart")}, "ChargePeriodEnd is not ChargePeriodStart + 1 day"),
        (
            {
                "ChargePeriodStart": pl.col("ChargePeriodStart").dt.offset_by("1h"),
                "ChargePeriodEnd": pl.col("ChargePeriodEnd").dt.offset_by("1h"),
            },
            "ChargePeriodStart is not 00:00 UTC",
        ),
        ({"SkuPriceDetails": pl.lit('{"ModelName": "gpt-4o"}')}, "SkuPriceDetails is not a JSON object"),
        ({"Tags": pl.lit("owner=me")}, "Tags is not a JSON object"),
        ({"SubAccountId": pl.lit("00000000-0000-0000-0000-000000000000")}, "SubAccountId is not the subscription"),
        ({"x_CostStatus": pl.lit("priced")}, "no price on a row whose x_CostStatus has a cost"),
        ({"SkuMeter": pl.lit(None, pl.String)}, "not all set or all empty"),
        ({"ConsumedQuantity": pl.lit(0.0)}, "ConsumedQuantity is not a positive token count"),
    ],
)
def test_the_validator_catches_each_broken_rule(focus, change, message):
    problems = _broken(focus, **change)
    assert any(message in p for p in problems), problems


def test_the_validator_catches_structure(focus):
    assert validate_focus(focus.drop("ListCost")) == ["missing columns: ['ListCost']"]
    assert any("without the x_ prefix" in p for p in validate_focus(focus.with_columns(Owner=pl.lit("me"))))
    assert any("not unique" in p for p in validate_focus(pl.concat([focus, focus.head(1)])))
    assert any(
        "type" in p
        for p in validate_focus(focus.with_columns(ConsumedQuantity=pl.col("ConsumedQuantity").cast(pl.Int64)))
    )
