"""A FOCUS-aligned frame of estimated list cost (pure polars), and a validator of its column rules.

FOCUS-aligned, not conformant: FOCUS makes BilledCost (the basis of the invoice) and EffectiveCost
mandatory, and those come only from Cost Management, which this product never reads. They stay NULL;
ListUnitPrice and ListCost are the public Retail Prices estimate, and `x_CostBasis` says so
("RetailListPriceEstimate"). Custom columns carry the `x_` prefix, as FOCUS requires.

One row per (UTC day, resource, deployment, model, version, token type) with tokens > 0, built from the
output of pricing.price_usage. Token types: "Input", "Output".

This module imports only polars, the standard library and pricing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import polars as pl

from .pricing import COST_STATUSES, COSTED_STATUSES

SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"
CHARGE_CATEGORY = "Usage"
CONSUMED_UNIT = "Tokens"
COST_BASIS = "RetailListPriceEstimate"
PROVIDER = "Microsoft"
RESOURCE_TYPE = "Microsoft.CognitiveServices/accounts"
PRICING_UNITS = {"1K": (1_000, "1000 Tokens"), "1M": (1_000_000, "1000000 Tokens")}
TOKEN_TYPES = ("Input", "Output")
# ServiceName: "Azure OpenAI" for OpenAI models (by model-name prefix), "Foundry Models" for the others
OPENAI_MODEL_PREFIXES = (
    "gpt-",
    "gpt4",
    "o1",
    "o3",
    "o4",
    "text-embedding",
    "dall-e",
    "whisper",
    "tts",
    "davinci",
    "babbage",
    "codex",
    "computer-use",
    "sora",
)

FOCUS_SCHEMA: dict[str, pl.DataType] = {
    "BilledCost": pl.Float64(),
    "BillingCurrency": pl.String(),
    "ChargeCategory": pl.String(),
    "ChargeDescription": pl.String(),
    "ChargePeriodStart": pl.Datetime("us", "UTC"),
    "ChargePeriodEnd": pl.Datetime("us", "UTC"),
    "ConsumedQuantity": pl.Float64(),
    "ConsumedUnit": pl.String(),
    "EffectiveCost": pl.Float64(),
    "ListCost": pl.Float64(),
    "ListUnitPrice": pl.Float64(),
    "PricingQuantity": pl.Float64(),
    "PricingUnit": pl.String(),
    "ProviderName": pl.String(),
    "RegionId": pl.String(),
    "ResourceId": pl.String(),
    "ResourceName": pl.String(),
    "ResourceType": pl.String(),
    "ServiceCategory": pl.String(),
    "ServiceName": pl.String(),
    "ServiceSubcategory": pl.String(),
    "SkuMeter": pl.String(),
    "SkuPriceDetails": pl.String(),
    "SkuPriceId": pl.String(),
    "SubAccountId": pl.String(),
    "Tags": pl.String(),
}
CUSTOM_SCHEMA: dict[str, pl.DataType] = {
    "x_CostBasis": pl.String(),
    "x_CostStatus": pl.String(),
    "x_DeploymentName": pl.String(),
    "x_DeploymentType": pl.String(),
    "x_ModelName": pl.String(),
    "x_ModelVersion": pl.String(),
    "x_TokenType": pl.String(),
}
SCHEMA = pl.Schema({**FOCUS_SCHEMA, **CUSTOM_SCHEMA})
GRAIN = ("ChargePeriodStart", "ResourceId", "x_DeploymentName", "x_ModelName", "x_ModelVersion", "x_TokenType")


def focus_frame(priced: pl.DataFrame, tags: Mapping[str, Mapping[str, str]] | None = None) -> pl.DataFrame:
    """FOCUS-aligned rows from price_usage output. `tags`: ARM tags per resource id (case-insensitive)."""
    tag_json = {k.lower(): json.dumps(dict(sorted(v.items())), ensure_ascii=False) for k, v in (tags or {}).items()}
    base = priced.with_columns(
        _rid_lower=pl.col("resource_id").str.to_lowercase(),
        _resource_name=(
            pl.col("resource_name")
            if "resource_name" in priced.columns
            else pl.col("resource_id").str.split("/").list.last()
        ),
        _sub=pl.col("resource_id").str.extract(r"(?i)^/subscriptions/([^/]+)", 1),
        _start=pl.col("usage_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        _costed=pl.col("cost_status").is_in(COSTED_STATUSES),
        _openai=pl.any_horizontal(
            *(pl.col("model_name").str.to_lowercase().str.starts_with(p) for p in OPENAI_MODEL_PREFIXES)
        ).fill_null(False),
    )
    parts = []
    for token_type in TOKEN_TYPES:
        d = token_type.lower()
        unit = pl.col(f"{d}_unit_of_measure")
        size = unit.replace_strict({k: v[0] for k, v in PRICING_UNITS.items()}, default=None, return_dtype=pl.Float64)
        pricing_unit = unit.replace_strict(
            {k: v[1] for k, v in PRICING_UNITS.items()}, default=None, return_dtype=pl.String
        )
        has_price = pl.col("_costed") & pl.col(f"{d}_unit_price").is_not_null()
        quantity = pl.col(f"{d}_tokens").cast(pl.Float64)
        pricing_qty = pl.when(has_price).then(quantity / size)
        parts.append(
            base.filter(pl.col(f"{d}_tokens").fill_null(0) > 0).select(
                BilledCost=pl.lit(None, pl.Float64),
                BillingCurrency=pl.col("currency"),
                ChargeCategory=pl.lit(CHARGE_CATEGORY),
                ChargeDescription=pl.format(
                    "{} {} {} tokens, deployment {} (estimate at list price)",
                    pl.col("model_name").fill_null("unknown model"),
                    pl.col("model_version").fill_null("?"),
                    pl.lit(d),
                    pl.col("deployment").fill_null("?"),
                ),
                ChargePeriodStart=pl.col("_start"),
                ChargePeriodEnd=pl.col("_start").dt.offset_by("1d"),
                ConsumedQuantity=quantity,
                ConsumedUnit=pl.lit(CONSUMED_UNIT),
                EffectiveCost=pl.lit(None, pl.Float64),
                ListCost=pl.when(has_price).then(pricing_qty * pl.col(f"{d}_unit_price")),
                ListUnitPrice=pl.when(has_price).then(pl.col(f"{d}_unit_price")),
                PricingQuantity=pricing_qty,
                PricingUnit=pl.when(has_price).then(pricing_unit),
                ProviderName=pl.lit(PROVIDER),
                RegionId=pl.col("resource_region").str.to_lowercase(),
                ResourceId=pl.col("resource_id"),
                ResourceName=pl.col("_resource_name"),
                ResourceType=pl.lit(RESOURCE_TYPE),
                ServiceCategory=pl.lit(SERVICE_CATEGORY),
                ServiceName=pl.when(pl.col("_openai")).then(pl.lit("Azure OpenAI")).otherwise(pl.lit("Foundry Models")),
                ServiceSubcategory=pl.lit(SERVICE_SUBCATEGORY),
                SkuMeter=pl.when(has_price).then(pl.col(f"{d}_meter_name")),
                SkuPriceDetails=pl.struct(
                    ModelName=pl.col("model_name"),
                    ModelVersion=pl.col("model_version"),
                    TokenType=pl.lit(token_type),
                    DeploymentType=pl.col("deployment_type"),
                ).struct.json_encode(),
                SkuPriceId=pl.when(has_price).then(pl.col(f"{d}_meter_id")),
                SubAccountId=pl.col("_sub"),
                Tags=pl.col("_rid_lower").replace_strict(tag_json, default="{}", return_dtype=pl.String),
                x_CostBasis=pl.lit(COST_BASIS),
                x_CostStatus=pl.col("cost_status"),
                x_DeploymentName=pl.col("deployment"),
                x_DeploymentType=pl.col("deployment_type"),
                x_ModelName=pl.col("model_name"),
                x_ModelVersion=pl.col("model_version"),
                x_TokenType=pl.lit(token_type),
            )
        )
    out = pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=SCHEMA)
    return out.cast(SCHEMA).sort("ChargePeriodStart", "ResourceId", "x_DeploymentName", "x_TokenType", nulls_last=True)


def validate_focus(frame: pl.DataFrame, tolerance: float = 1e-9) -> list[str]:
    """Problems with the column rules of the FOCUS-aligned frame; [] when it satisfies all of them."""
    problems: list[str] = []
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        return [f"missing columns: {missing}"]
    for name, dtype in SCHEMA.items():
        if frame.schema[name] != dtype:
            problems.append(f"{name}: type {frame.schema[name]}, expected {dtype}")
    extra = [c for c in frame.columns if c not in FOCUS_SCHEMA and not c.startswith("x_")]
    if extra:
        problems.append(f"custom columns without the x_ prefix: {extra}")
    if problems or frame.is_empty():
        return problems

    def rule(name: str, bad: pl.Expr) -> None:
        n = frame.select(bad.fill_null(True).sum()).item()
        if n:
            problems.append(f"{name}: {n} row(s)")

    c = pl.col
    constants = {
        "ChargeCategory": CHARGE_CATEGORY,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceSubcategory": SERVICE_SUBCATEGORY,
        "ConsumedUnit": CONSUMED_UNIT,
        "x_CostBasis": COST_BASIS,
        "ProviderName": PROVIDER,
    }
    for column, value in constants.items():
        rule(f"{column} is not {value!r}", c(column) != value)
    rule("BilledCost is not empty (it comes from Cost Management only)", c("BilledCost").is_not_null())
    rule("EffectiveCost is not empty (it comes from Cost Management only)", c("EffectiveCost").is_not_null())
    rule("ChargePeriodStart is not 00:00 UTC", c("ChargePeriodStart") != c("ChargePeriodStart").dt.truncate("1d"))
    rule(
        "ChargePeriodEnd is not ChargePeriodStart + 1 day",
        c("ChargePeriodEnd") != c("ChargePeriodStart").dt.offset_by("1d"),
    )
    rule(
        "ConsumedQuantity is not a positive token count",
        ~(c("ConsumedQuantity") > 0) | (c("ConsumedQuantity") != c("ConsumedQuantity").floor()),
    )
    rule(
        "ResourceId, ResourceName, RegionId or SubAccountId empty",
        c("ResourceId").is_null() | c("ResourceName").is_null() | c("RegionId").is_null() | c("SubAccountId").is_null(),
    )
    rule(
        "SubAccountId is not the subscription of ResourceId",
        c("ResourceId")
        .str.to_lowercase()
        .str.starts_with(pl.format("/subscriptions/{}/", c("SubAccountId").str.to_lowercase()))
        .not_(),
    )
    rule("RegionId is not a lower-case ARM region", c("RegionId") != c("RegionId").str.to_lowercase())
    rule("x_CostStatus is not a known status", ~c("x_CostStatus").is_in(COST_STATUSES))
    priced = c("ListUnitPrice").is_not_null()
    rule(
        "ListUnitPrice, ListCost, PricingQuantity, PricingUnit, SkuMeter and SkuPriceId not all set or all empty",
        (priced != c("ListCost").is_not_null())
        | (priced != c("PricingQuantity").is_not_null())
        | (priced != c("PricingUnit").is_not_null())
        | (priced != c("SkuMeter").is_not_null())
        | (priced != c("SkuPriceId").is_not_null()),
    )
    rule("a price on a row whose x_CostStatus has no cost", priced & ~c("x_CostStatus").is_in(COSTED_STATUSES))
    rule("no price on a row whose x_CostStatus has a cost", ~priced & c("x_CostStatus").is_in(COSTED_STATUSES))
    size = c("PricingUnit").replace_strict(
        {v[1]: float(v[0]) for v in PRICING_UNITS.values()}, default=None, return_dtype=pl.Float64
    )
    rule("PricingUnit is not '1000 Tokens' or '1000000 Tokens'", priced & size.is_null())
    rule(
        "PricingQuantity != ConsumedQuantity / PricingUnit",
        priced & ((c("PricingQuantity") - c("ConsumedQuantity") / size).abs() > tolerance * c("ConsumedQuantity")),
    )
    rule(
        "ListCost != ListUnitPrice x PricingQuantity",
        priced
        & (
            (c("ListCost") - c("ListUnitPrice") * c("PricingQuantity")).abs()
            > tolerance * (c("ListCost").abs() + 1e-12)
        ),
    )
    rule(
        "ListCost or ListUnitPrice negative",
        (c("ListCost").fill_null(0.0) < 0) | (c("ListUnitPrice").fill_null(0.0) < 0),
    )
    rule("BillingCurrency empty", c("BillingCurrency").is_null())
    for column, keys in (("SkuPriceDetails", ("ModelName", "ModelVersion", "TokenType")), ("Tags", ())):
        bad = 0
        for text in frame[column].to_list():
            parsed: object
            try:
                parsed = json.loads(text) if text is not None else None
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict) or any(k not in parsed for k in keys):
                bad += 1
        if bad:
            problems.append(f"{column} is not a JSON object{' with ' + ', '.join(keys) if keys else ''}: {bad} row(s)")
    rule(
        "x_TokenType does not match SkuPriceDetails.TokenType",
        c("x_TokenType") != c("SkuPriceDetails").str.json_path_match("$.TokenType"),
    )
    dupes = frame.group_by(list(GRAIN)).len().filter(pl.col("len") > 1).height
    if dupes:
        problems.append(f"grain {GRAIN} not unique: {dupes} duplicate key(s)")
    return problems
