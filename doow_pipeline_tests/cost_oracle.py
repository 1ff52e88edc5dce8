"""The cost oracle of the demo, written once: which price-list meters a person reading the list picks for each
demo deployment under the demo's settings, and the list price in force on a day. Tests compare the
pipeline's cost with these, computed without the pipeline's matching code."""

from __future__ import annotations

from datetime import date
from typing import Any

from doow_pipeline.usage.pricing import AMBIGUOUS, BILLED_AS_CAPACITY, NO_METER, DeploymentTypes
from doow_pipeline_tests.demo import DEMO_COST_SETTINGS

UNIT = {"1K": 1_000, "1M": 1_000_000}
DEMO_TYPES = DeploymentTypes(
    default=DEMO_COST_SETTINGS["deployment_types"]["default"],
    overrides=DEMO_COST_SETTINGS["deployment_types"]["overrides"],
    provisioned=frozenset(DEMO_COST_SETTINGS["deployment_types"]["provisioned"]),
)

G4O = ("gpt 4o 1120 Inp glbl Tokens", "gpt 4o 1120 Outp glbl Tokens")
MINI = ("gpt-4o-mini-0718-Inp-glbl Tokens", "gpt-4o-mini-0718-Outp-glbl Tokens")
G41 = ("gpt 4.1 Inp glbl Tokens", "gpt 4.1 Outp glbl Tokens")
G41MINI = ("gpt 4.1 mini Inp glbl Tokens", "gpt 4.1 mini Outp glbl Tokens")
G5 = ("GPT 5 Rsng Inpt Glbl 1M Tokens", "GPT 5 Rsng outpt Glbl 1M Tokens")
O3 = ("o3 mini 0131 input glbl Tokens", "o3 mini 0131 output glbl Tokens")
R1 = ("R1 Inp glbl Tokens", "R1 Outp glbl Tokens")

# (account, deployment) -> (input meter, output meter or None), or the status when no meter applies.
# aoai-dev-legacy's deployments are named by their request metric (AzureOpenAIRequests carries ModelName), so they
# are priced like any other; aoai-prod-eus emits no model name and is priced through settings.deployment_models.
DEMO_METERS: dict[tuple[str, str], tuple[str, str | None] | str] = {
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


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def prices_in_force(records: list[dict[str, Any]], meter_name: str, region: str, day: date) -> list[dict[str, Any]]:
    """The price records of a meter and region whose effective period contains `day`."""
    return [
        r
        for r in records
        if r["meterName"] == meter_name
        and r["armRegionName"] == region
        and (_day(r["effectiveStartDate"]) or day) <= day
        and (_day(r.get("effectiveEndDate")) or day) >= day
    ]


def unit_price(record: dict[str, Any]) -> tuple[float, int]:
    """(price, tokens the price is for)."""
    return record["retailPrice"], UNIT[record["unitOfMeasure"]]
