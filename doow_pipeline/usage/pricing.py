"""Estimated list cost of token usage: usage rows matched to Azure Retail Prices meters (pure polars).

An estimate at public list price (retailPrice of the Retail Prices API), never the invoice: no
discounts, reservations, savings plans, taxes or credits. Unknown cost is NULL, never 0.

## The mapping: (model, version, deployment type, direction, batch, region, day) -> one meter

Meter names are free text ("gpt-4o-0806-Inp-glbl Tokens", "gpt 4o 0806 cached Inp glbl Tokens",
"GPT 5 Rsng outpt DZone 1M Tokens", "R1 Outp regnl Tokens"). Each price item is parsed once into a key:

1. Token meters only: meterName ends in "Tokens", unitOfMeasure "1K" (price per 1,000 tokens) or "1M"
   (per 1,000,000), type "Consumption", tierMinimumUnits 0, serviceName "Cognitive Services" or
   "Foundry Models". Hourly (PTU, hosting) and Reservation items are never token prices.
2. The name is lower-cased, "data zone" joined to "datazone", split on spaces, "-", "_" and "/"; the unit
   suffix ("Tokens", "1M Tokens") is dropped. Tokens are then classified:
   - scope: glbl/global/gl/glb -> global; datazone/dzone/dz/dzn -> data zone; regnl/regional/regn/rgnl/reg
     -> regional; none -> regional (the oldest meters);
   - direction: inp/inpt/input/in -> input; outp/outpt/output/opt/out -> output; cached/cchd/cd/cache ->
     cached input; none -> input (embeddings meters name no direction);
   - batch: "batch"; version: an MMDD token (0806 = 2024-08-06); context size: "16k", "4k";
   - variants we never use for a base deployment: fine-tuning (ft, trng, training, hstng, hosting, rft),
     grader, realtime/audio/image (rt, rtime, realtime*, aud, audio, img, image, txt, tts), cache write
     (wr), Flex, priority (pp), long/short context tiers (longco, shortco, loco, shco): such meters match
     nothing;
   - neutral: std/standard; everything else is the model part ("gpt 4o mini", "gpt 4.1", "r1").
3. A usage row's model name is split the same way ("gpt-4o-mini" -> "gpt 4o mini"); its version becomes
   MMDD when it is a date ("2024-08-06" -> "0806"; "1", "7" stay without a version).
4. A meter matches a row and direction when all hold:
   - the model parts are equal; or the meter omits the model's first token (the vendor) and the product
     name contains it ("DeepSeek-R1" -> "R1 Inp glbl" in "Deepseek model family"); or an alias says so
     (MODEL_ALIASES: "gpt-5" is metered as "GPT 5 Rsng", the reasoning model; "text-embedding-ada-002"
     as "embedding-ada");
   - same region: the meter's armRegionName is the account's region (resource_region; Global and Data
     Zone deployments are billed in the account's region too), compared lower-case;
   - same scope and batch as the deployment type (GlobalStandard: global; DataZoneStandard: data zone;
     Standard: regional; GlobalBatch / DataZoneBatch: global / data zone + batch);
   - version: the meter's MMDD equals the row's, or the meter names no version; when any versioned
     meter matches, unversioned ones are dropped (a version with no meter never borrows another
     version's price: gpt-4o 0513 costs twice 1120);
   - context size: when the model name carries one ("gpt-35-turbo-16k") the meter's must be equal;
   - the usage day is within [effectiveStartDate, effectiveEndDate] (dates, UTC); when one meter has
     several records in force (stored history), the latest effectiveStartDate wins.
5. Status of every row (cost columns are non-NULL exactly for the first two):
   - `priced`: one meter per needed direction, deployment type from a setting (override);
   - `assumed_deployment_type`: priced, but the deployment type is the settings' default (Azure Monitor
     does not say it and deployment configuration is never read);
   - `billed_as_capacity`: a provisioned (PTU) deployment: billed per PTU-hour, not per token;
   - `no_meter`: no model name, or no meter for input (or for output when output tokens > 0);
   - `ambiguous`: two or more distinct meters (meterId) match a needed direction: never guessed.
   Precedence: billed_as_capacity, no_meter, ambiguous, then priced / assumed_deployment_type. A direction
   that is not needed (output of embeddings: 0 tokens) costs 0.0.
6. Cost = tokens / tokens_per_unit x retailPrice, per direction, in the prices' currency.

This module imports only polars, the standard library and core/deployments.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, TypedDict, cast

import polars as pl

from ..core.deployments import DEPLOYMENT_TYPES

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

PRICED = "priced"
ASSUMED_DEPLOYMENT_TYPE = "assumed_deployment_type"
NO_METER = "no_meter"
AMBIGUOUS = "ambiguous"
BILLED_AS_CAPACITY = "billed_as_capacity"
COST_STATUSES = (PRICED, ASSUMED_DEPLOYMENT_TYPE, NO_METER, AMBIGUOUS, BILLED_AS_CAPACITY)
COSTED_STATUSES = (PRICED, ASSUMED_DEPLOYMENT_TYPE)
MODEL_SERVICE_NAMES = ("Cognitive Services", "Foundry Models")

# Azure deployment SKU names -> (scope, batch, provisioned): core/deployments.py (settings validate against it)
_TYPE_BY_LOWER = {k.lower(): k for k in DEPLOYMENT_TYPES}

SCOPE_TOKENS = {
    "glbl": "global",
    "global": "global",
    "gl": "global",
    "glb": "global",
    "datazone": "datazone",
    "dzone": "datazone",
    "dz": "datazone",
    "dzn": "datazone",
    "regnl": "regional",
    "regional": "regional",
    "regn": "regional",
    "rgnl": "regional",
    "reg": "regional",
}
DIRECTION_TOKENS = {
    "inp": "input",
    "inpt": "input",
    "input": "input",
    "in": "input",
    "outp": "output",
    "outpt": "output",
    "output": "output",
    "opt": "output",
    "out": "output",
}
CACHED_TOKENS = {"cached", "cchd", "cd", "cache"}
NEUTRAL_TOKENS = {"std", "standard"}
VARIANT_TOKENS = {
    "ft",
    "finetune",
    "finetuned",
    "trng",
    "training",
    "hstng",
    "hosting",
    "rft",
    "grader",
    "rt",
    "rtime",
    "aud",
    "audio",
    "img",
    "image",
    "txt",
    "tts",
    "wr",
    "flex",
    "pp",
    "priority",
    "longco",
    "shortco",
    "loco",
    "shco",
}
# model part of a usage row -> further model parts its meters use
MODEL_ALIASES: dict[str, tuple[str, ...]] = {
    "gpt 5": ("gpt 5 rsng",),  # "GPT 5 Rsng ..." is gpt-5 (the reasoning model)
    "text embedding ada 002": ("embedding ada",),  # "embedding-ada-glbl Tokens"
}
_MMDD = re.compile(r"(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
_CONTEXT = re.compile(r"\d+k")
_DATE_VERSION = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
UNITS = {"1k": 1_000, "1m": 1_000_000}

PRICE_COLUMNS: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "meter_name": pl.String(),
    "product_name": pl.String(),
    "sku_name": pl.String(),
    "service_name": pl.String(),
    "arm_region_name": pl.String(),
    "unit_of_measure": pl.String(),
    "retail_price": pl.Float64(),
    "currency_code": pl.String(),
    "type": pl.String(),
    "tier_minimum_units": pl.Float64(),
    "effective_start_date": pl.Datetime("us", "UTC"),
    "effective_end_date": pl.Datetime("us", "UTC"),
}


# ---- settings -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentTypes:
    """Deployment types from settings (Azure Monitor does not report them; deployment config is never read).

    Keys of `overrides` and `provisioned` are "account/deployment" or a bare "deployment" (any account),
    compared case-insensitively; "account/deployment" wins over "deployment", which wins over `default`.
    A deployment listed in `provisioned` (or overridden with a *ProvisionedManaged type) is billed per
    PTU-hour.
    """

    default: str = "GlobalStandard"
    overrides: Mapping[str, str] = field(default_factory=dict)
    provisioned: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        problems = [t for t in [self.default, *self.overrides.values()] if t.lower() not in _TYPE_BY_LOWER]
        if problems:
            raise ValueError(f"unknown deployment types {sorted(set(problems))}; use {sorted(DEPLOYMENT_TYPES)}")
        object.__setattr__(self, "default", _TYPE_BY_LOWER[self.default.lower()])
        object.__setattr__(self, "overrides", {k.lower(): _TYPE_BY_LOWER[v.lower()] for k, v in self.overrides.items()})
        object.__setattr__(self, "provisioned", frozenset(k.lower() for k in self.provisioned))

    def resolve(self, account: str | None, deployment: str | None) -> tuple[str, str]:
        """(deployment type, source) with source "override", "provisioned" or "default"."""
        keys = [f"{(account or '').lower()}/{(deployment or '').lower()}", (deployment or "").lower()]
        chosen = next((self.overrides[k] for k in keys if k in self.overrides), None)
        if any(k in self.provisioned for k in keys):
            if chosen is None or not DEPLOYMENT_TYPES[chosen][2]:
                chosen = "ProvisionedManaged"
            return chosen, "provisioned"
        if chosen is not None:
            return chosen, "override"
        return self.default, "default"


# ---- names ---------------------------------------------------------------------------------------------------
def _split(text: str) -> list[str]:
    lowered = re.sub(r"data\s*zone", " datazone ", text.lower())
    return re.sub(r"[-_/]+", " ", lowered).split()


@dataclass(frozen=True)
class MeterKey:
    model: str  # model tokens joined by one space
    version: str | None  # MMDD
    context: str | None  # "16k"
    scope: str  # global | datazone | regional
    direction: str  # input | output | cached_input
    batch: bool


def parse_meter_name(meter_name: str) -> MeterKey | None:
    """The key of a token meter's name, or None when it is no base-deployment token price."""
    tokens = _split(meter_name)
    if not tokens or tokens[-1] != "tokens":
        return None
    tokens = tokens[:-1]
    if tokens and tokens[-1] in UNITS:
        tokens = tokens[:-1]
    model: list[str] = []
    version: str | None = None
    context: str | None = None
    scope: str | None = None
    direction: str | None = None
    cached = batch = False
    for tok in tokens:
        if tok in VARIANT_TOKENS or tok.startswith("realtime"):
            return None
        if tok in SCOPE_TOKENS:
            scope = SCOPE_TOKENS[tok]
        elif tok in DIRECTION_TOKENS:
            if direction is not None and direction != DIRECTION_TOKENS[tok]:
                return None
            direction = DIRECTION_TOKENS[tok]
        elif tok in CACHED_TOKENS:
            cached = True
        elif tok == "batch":
            batch = True
        elif tok in NEUTRAL_TOKENS:
            continue
        elif _MMDD.fullmatch(tok) and version is None and model:
            version = tok
        elif _CONTEXT.fullmatch(tok):
            context = tok
        else:
            model.append(tok)
    if not model or direction == "output" and cached:
        return None
    direction = "cached_input" if cached else (direction or "input")
    return MeterKey(" ".join(model), version, context, scope or "regional", direction, batch)


def model_variants(model_name: str | None) -> list[tuple[str, str | None, str | None]]:
    """(meter model part, vendor the product name must contain or None, context size or None) a model
    name may be metered as."""
    if not model_name:
        return []
    tokens = _split(model_name)
    context = next((t for t in tokens if _CONTEXT.fullmatch(t)), None)
    tokens = [t for t in tokens if not _CONTEXT.fullmatch(t)]
    if not tokens:
        return []
    key = " ".join(tokens)
    variants: list[tuple[str, str | None, str | None]] = [
        (model, None, context) for model in (key, *MODEL_ALIASES.get(key, ()))
    ]
    if len(tokens) > 1:
        variants.append((" ".join(tokens[1:]), tokens[0], context))
    return variants


def version_mmdd(model_version: str | None) -> str | None:
    """ "2024-08-06" -> "0806"; an MMDD stays; anything else ("1", "7") has no MMDD."""
    if not model_version:
        return None
    text = str(model_version).strip()
    m = _DATE_VERSION.fullmatch(text)
    if m:
        return m.group(2) + m.group(3)
    return text if _MMDD.fullmatch(text) else None


# ---- prices --------------------------------------------------------------------------------------------------
def prices_frame(prices: Iterable[DataclassInstance | Mapping[str, object]]) -> pl.DataFrame:
    """A frame of price records from RetailPrice dataclasses or dicts in its snake_case field names."""
    rows = []
    for p in prices:
        rec = asdict(p) if is_dataclass(p) else dict(p)
        rows.append({k: rec.get(k) for k in PRICE_COLUMNS})
    return pl.DataFrame(rows, schema=PRICE_COLUMNS, orient="row")


def token_meters(prices: pl.DataFrame, currency: str = "USD") -> pl.DataFrame:
    """Token meters of the prices frame with their parsed keys (rule 1 and 2)."""
    base = prices.filter(
        (pl.col("type") == "Consumption")
        & (pl.col("tier_minimum_units").fill_null(0.0) == 0.0)
        & pl.col("service_name").is_in(MODEL_SERVICE_NAMES)
        & (pl.col("currency_code") == currency)
        & pl.col("unit_of_measure").str.to_lowercase().is_in(list(UNITS))
    )
    names = base.select("meter_name").unique()
    parsed = [(n, parse_meter_name(n)) for n in names["meter_name"].to_list()]
    keys = pl.DataFrame(
        [
            {
                "meter_name": n,
                "m_model": k.model,
                "m_version": k.version,
                "m_context": k.context,
                "m_scope": k.scope,
                "m_direction": k.direction,
                "m_batch": k.batch,
            }
            for n, k in parsed
            if k is not None
        ],
        schema={
            "meter_name": pl.String,
            "m_model": pl.String,
            "m_version": pl.String,
            "m_context": pl.String,
            "m_scope": pl.String,
            "m_direction": pl.String,
            "m_batch": pl.Boolean,
        },
    )
    return base.join(keys, on="meter_name", how="inner").with_columns(
        m_region=pl.col("arm_region_name").str.to_lowercase(),
        product_lower=pl.col("product_name").str.to_lowercase(),
        tokens_per_unit=pl.col("unit_of_measure").str.to_lowercase().replace_strict(UNITS, return_dtype=pl.Int64),
        m_start=pl.col("effective_start_date").dt.date(),
        m_end=pl.col("effective_end_date").dt.date(),
    )


# ---- matching ------------------------------------------------------------------------------------------------
_KEY_SCHEMA = {
    "_row": pl.UInt32,
    "usage_date": pl.Date,
    "u_region": pl.String,
    "u_scope": pl.String,
    "u_batch": pl.Boolean,
    "u_version": pl.String,
    "u_model": pl.String,
    "u_vendor": pl.String,
    "u_context": pl.String,
}


def _candidates(keys: pl.DataFrame, meters: pl.DataFrame, directions: tuple[str, ...]) -> pl.DataFrame:
    """One row per (_row, direction, meter) that matches under rule 4, newest record per meter."""
    joined = keys.join(
        meters.filter(pl.col("m_direction").is_in(directions)),
        left_on=["u_region", "u_model", "u_scope", "u_batch"],
        right_on=["m_region", "m_model", "m_scope", "m_batch"],
        how="inner",
    ).filter(
        (pl.col("u_vendor").is_null() | pl.col("product_lower").str.contains(pl.col("u_vendor"), literal=True))
        & (pl.col("u_context").is_null() | (pl.col("m_context") == pl.col("u_context")))
        & (pl.col("m_version").is_null() | (pl.col("m_version") == pl.col("u_version")))
        & (pl.col("m_start") <= pl.col("usage_date"))
        & (pl.col("m_end").is_null() | (pl.col("usage_date") <= pl.col("m_end")))
    )
    return (
        joined.with_columns(_versioned=pl.col("m_version").is_not_null().any().over(["_row", "m_direction"]))
        .filter(pl.col("m_version").is_not_null() | ~pl.col("_versioned"))
        .sort("m_start", descending=True)
        .unique(subset=["_row", "m_direction", "meter_id"], keep="first", maintain_order=True)
        .select(
            "_row",
            "m_direction",
            "meter_id",
            "meter_name",
            "product_name",
            "retail_price",
            "unit_of_measure",
            "tokens_per_unit",
            "currency_code",
            "m_start",
        )
    )


def _usage_keys(usage: pl.DataFrame, types: DeploymentTypes) -> pl.DataFrame:
    """Usage rows with _row, account name, deployment type (and its source), scope, batch, provisioned."""
    frame = usage.with_row_index("_row")
    if "resource_name" in frame.columns:
        frame = frame.with_columns(_account=pl.col("resource_name"))
    else:
        frame = frame.with_columns(_account=pl.col("resource_id").str.split("/").list.last())
    pairs = frame.select("_account", "deployment").unique()
    resolved = [(a, d, *types.resolve(a, d)) for a, d in pairs.iter_rows()]
    settings = pl.DataFrame(
        [
            {
                "_account": a,
                "deployment": d,
                "deployment_type": t,
                "deployment_type_source": s,
                "u_scope": DEPLOYMENT_TYPES[t][0],
                "u_batch": DEPLOYMENT_TYPES[t][1],
                "_provisioned": DEPLOYMENT_TYPES[t][2],
            }
            for a, d, t, s in resolved
        ],
        schema={
            "_account": pl.String,
            "deployment": pl.String,
            "deployment_type": pl.String,
            "deployment_type_source": pl.String,
            "u_scope": pl.String,
            "u_batch": pl.Boolean,
            "_provisioned": pl.Boolean,
        },
    )
    versions = frame.select("model_version").unique()
    versions = versions.with_columns(
        u_version=pl.Series([version_mmdd(v) for v in versions["model_version"].to_list()], dtype=pl.String)
    )
    return (
        frame.join(settings, on=["_account", "deployment"], how="left", nulls_equal=True)
        .join(versions, on="model_version", how="left", nulls_equal=True)
        .with_columns(u_region=pl.col("resource_region").str.to_lowercase())
    )


def _explode_models(frame: pl.DataFrame) -> pl.DataFrame:
    names = frame.select("model_name").unique()["model_name"].to_list()
    variants = pl.DataFrame(
        [
            {"model_name": n, "u_model": k, "u_vendor": v, "u_context": c}
            for n in names
            for k, v, c in model_variants(n)
        ],
        schema={"model_name": pl.String, "u_model": pl.String, "u_vendor": pl.String, "u_context": pl.String},
    )
    return frame.filter(~pl.col("_provisioned")).join(variants, on="model_name", how="inner").select(list(_KEY_SCHEMA))


def price_usage(
    usage: pl.DataFrame, prices: pl.DataFrame, types: DeploymentTypes | None = None, currency: str = "USD"
) -> pl.DataFrame:
    """Usage rows (usage_daily columns: usage_date, resource_id, resource_region, deployment, model_name,
    model_version, input_tokens, output_tokens, ...) with their meters, list prices, estimated cost and
    cost_status. `prices` is a prices_frame (any history of stored prices)."""
    types = types or DeploymentTypes()
    keyed = _usage_keys(usage, types)
    meters = token_meters(prices, currency)
    cand = _candidates(_explode_models(keyed), meters, ("input", "output"))
    summary = cand.group_by("_row", "m_direction").agg(
        n=pl.col("meter_id").n_unique(),
        names=pl.col("meter_name").sort().str.join(" | "),
        meter_id=pl.col("meter_id").first(),
        meter_name=pl.col("meter_name").first(),
        unit_price=pl.col("retail_price").first(),
        unit_of_measure=pl.col("unit_of_measure").first(),
        tokens_per_unit=pl.col("tokens_per_unit").first(),
        currency=pl.col("currency_code").first(),
    )
    out = keyed
    for direction in ("input", "output"):
        part = summary.filter(pl.col("m_direction") == direction).drop("m_direction")
        part = part.rename({c: f"{direction}_{c}" for c in part.columns if c != "_row"})
        out = out.join(part, on="_row", how="left")
    n_in = pl.col("input_n").fill_null(0)
    n_out = pl.col("output_n").fill_null(0)
    needs_out = pl.col("output_tokens").fill_null(0) > 0
    missing = pl.col("model_name").is_null() | (n_in == 0) | (needs_out & (n_out == 0))
    ambiguous = (n_in > 1) | (needs_out & (n_out > 1))
    status = (
        pl.when(pl.col("_provisioned"))
        .then(pl.lit(BILLED_AS_CAPACITY))
        .when(missing)
        .then(pl.lit(NO_METER))
        .when(ambiguous)
        .then(pl.lit(AMBIGUOUS))
        .when(pl.col("deployment_type_source") == "default")
        .then(pl.lit(ASSUMED_DEPLOYMENT_TYPE))
        .otherwise(pl.lit(PRICED))
    )
    out = out.with_columns(cost_status=status)
    costed = pl.col("cost_status").is_in(COSTED_STATUSES)
    out_known = costed & (n_out == 1)

    def cost(direction: str, known: pl.Expr) -> pl.Expr:
        tokens = pl.col(f"{direction}_tokens").cast(pl.Float64)
        return pl.when(known).then(tokens / pl.col(f"{direction}_tokens_per_unit") * pl.col(f"{direction}_unit_price"))

    detail = (
        pl.when(pl.col("cost_status") == BILLED_AS_CAPACITY)
        .then(pl.format("{} is provisioned (settings): billed per PTU-hour, not per token", pl.col("deployment")))
        .when(pl.col("model_name").is_null())
        .then(pl.lit("the metrics name no model for this deployment"))
        .when(pl.col("cost_status") == NO_METER)
        .then(
            pl.format(
                "no {} meter for {} version {} ({}) in {} on {}",
                pl.when(n_in == 0).then(pl.lit("input")).otherwise(pl.lit("output")),
                pl.col("model_name"),
                pl.col("model_version").fill_null("?"),
                pl.col("deployment_type"),
                pl.col("resource_region"),
                pl.col("usage_date"),
            )
        )
        .when(pl.col("cost_status") == AMBIGUOUS)
        .then(
            pl.format(
                "several meters match: {}",
                pl.when(n_in > 1).then(pl.col("input_names")).otherwise(pl.col("output_names")),
            )
        )
        .when(pl.col("cost_status") == ASSUMED_DEPLOYMENT_TYPE)
        .then(pl.format("deployment type {} assumed (settings default)", pl.col("deployment_type")))
    )
    out = out.with_columns(
        input_cost=cost("input", costed),
        output_cost=pl.when(costed & ~needs_out & (n_out == 0)).then(pl.lit(0.0)).otherwise(cost("output", out_known)),
        cost_detail=detail,
    )
    keep_in = n_in == 1
    keep_out = n_out == 1
    out = out.with_columns(
        *[
            pl.when(keep_in).then(pl.col(f"input_{c}")).alias(f"input_{c}")
            for c in ("meter_id", "meter_name", "unit_price", "unit_of_measure")
        ],
        *[
            pl.when(keep_out).then(pl.col(f"output_{c}")).alias(f"output_{c}")
            for c in ("meter_id", "meter_name", "unit_price", "unit_of_measure")
        ],
        currency=pl.when(costed)
        .then(pl.coalesce("input_currency", "output_currency", pl.lit(currency)))
        .otherwise(pl.lit(currency)),
    ).with_columns(estimated_cost=pl.col("input_cost") + pl.col("output_cost"))
    added = [
        "deployment_type",
        "deployment_type_source",
        "input_meter_id",
        "input_meter_name",
        "input_unit_price",
        "input_unit_of_measure",
        "output_meter_id",
        "output_meter_name",
        "output_unit_price",
        "output_unit_of_measure",
        "currency",
        "input_cost",
        "output_cost",
        "estimated_cost",
        "cost_status",
        "cost_detail",
    ]
    return out.sort("_row").select(*usage.columns, *added)


class MeterMatch(TypedDict):
    """One meter find_meters returns: the newest record in force on the day."""

    meter_id: str | None
    meter_name: str
    product_name: str | None
    retail_price: float | None
    unit_of_measure: str
    tokens_per_unit: int
    currency_code: str
    m_start: date  # effectiveStartDate (UTC day)


def find_meters(
    prices: pl.DataFrame,
    *,
    model_name: str,
    model_version: str | None,
    deployment_type: str,
    direction: str,
    region: str,
    day: date | datetime,
    currency: str = "USD",
) -> list[MeterMatch]:
    """The meters rule 4 matches for one lookup (direction: input, output or cached_input), newest record of
    each: [] = no meter, one = priced, several = ambiguous. A provisioned type has no token meter."""
    kind = _TYPE_BY_LOWER.get(deployment_type.lower())
    if kind is None:
        raise ValueError(f"unknown deployment type {deployment_type!r}")
    scope, batch, provisioned = DEPLOYMENT_TYPES[kind]
    if provisioned:
        return []
    day = day.date() if isinstance(day, datetime) else day
    keys = pl.DataFrame(
        [
            {
                "_row": 0,
                "usage_date": day,
                "u_region": region.lower(),
                "u_scope": scope,
                "u_batch": batch,
                "u_version": version_mmdd(model_version),
                "u_model": m,
                "u_vendor": v,
                "u_context": c,
            }
            for m, v, c in model_variants(model_name)
        ],
        schema=_KEY_SCHEMA,
    )
    found = _candidates(keys, token_meters(prices, currency), (direction,))
    # polars types to_dicts() as dict[str, Any]; the columns are those _candidates selects
    return cast(list[MeterMatch], found.sort("meter_name").drop("_row", "m_direction").to_dicts())
