"""Which metrics and dimensions to query per account, read from its metricDefinitions (never assumed).

Two families carry token usage: "models" (InputTokens…, with ModelName) and "azure_openai"
(ProcessedPromptTokens…, without ModelName on the token metrics). An account is queried for each
family it defines, splitting on the dimensions every queried metric of that family supports, so the
filter never asks a metric for a dimension it lacks (which Azure answers with a 400).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .discovery import AccountInfo
from .session import AzureSession

NAMESPACE = "Microsoft.CognitiveServices/accounts"
FAMILY_METRICS = {
    "models": {"input_tokens": "InputTokens", "output_tokens": "OutputTokens", "total_tokens": "TotalTokens",
               "requests": "ModelRequests"},
    "azure_openai": {"input_tokens": "ProcessedPromptTokens", "output_tokens": "GeneratedTokens",
                     "total_tokens": "TokenTransaction", "requests": "AzureOpenAIRequests"},
}
METRIC_FAMILY = {metric.lower(): family for family, metrics in FAMILY_METRICS.items() for metric in metrics.values()}
METRIC_QUANTITY = {metric.lower(): quantity for metrics in FAMILY_METRICS.values()
                   for quantity, metric in metrics.items()}
# Dimensions the usage grain needs, in the order they appear in filters.
SPLIT_DIMENSIONS = ("ModelDeploymentName", "ModelName", "ModelVersion", "Region")
DEFINITIONS_TTL_SECONDS = 6 * 3600


def quote_filter_value(value: str) -> str:
    """OData string literal: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class FamilyQuery:
    family: str
    metric_names: tuple[str, ...]
    split_dimensions: tuple[str, ...]

    def filter(self, deployment: str | None = None) -> str:
        """`Dim eq '*'` for every split dimension; pinned to one deployment when narrowing."""
        clauses = []
        for dim in self.split_dimensions:
            if dim == "ModelDeploymentName" and deployment is not None:
                clauses.append(f"{dim} eq {quote_filter_value(deployment)}")
            else:
                clauses.append(f"{dim} eq '*'")
        return " and ".join(clauses)


@dataclass(frozen=True)
class AccountPlan:
    account: AccountInfo
    queries: tuple[FamilyQuery, ...]  # empty: the account defines no token metrics


def plan_from_definitions(definitions: dict[str, set[str]]) -> tuple[FamilyQuery, ...]:
    """Builds family queries from {metric name: {dimension names}} as metricDefinitions lists them."""
    defined = {name.lower(): (name, {d.lower() for d in dims}) for name, dims in definitions.items()}
    queries = []
    for family, metrics in FAMILY_METRICS.items():
        present = [defined[m.lower()] for m in metrics.values() if m.lower() in defined]
        if not any(name.lower() != metrics["requests"].lower() for name, _ in present):
            continue  # a family without token metrics is of no use
        common = set.intersection(*(dims for _, dims in present))
        split = tuple(d for d in SPLIT_DIMENSIONS if d.lower() in common)
        queries.append(FamilyQuery(family, tuple(name for name, _ in present), split))
    return tuple(queries)


def read_definitions(session: AzureSession, account: AccountInfo) -> dict[str, set[str]]:
    client = session.monitor(account.subscription_id)
    return {
        d.name.value: {dim.value for dim in (d.dimensions or ())}
        for d in client.metric_definitions.list(account.resource_id, metricnamespace=NAMESPACE)
        if d.name and d.name.value and d.name.value.lower() in METRIC_FAMILY
    }


class DefinitionsCache:
    """Per-process cache of account plans: metricDefinitions change rarely and are throttled (400/5 min)."""

    def __init__(self, ttl_seconds: float = DEFINITIONS_TTL_SECONDS):
        self.ttl = ttl_seconds
        self._plans: dict[str, tuple[float, tuple[FamilyQuery, ...]]] = {}
        self._lock = threading.Lock()

    def plan(self, session: AzureSession, account: AccountInfo) -> AccountPlan:
        key = f"{session.client_id}|{account.resource_id.lower()}"
        with self._lock:
            cached = self._plans.get(key)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return AccountPlan(account, cached[1])
        queries = plan_from_definitions(read_definitions(session, account))
        with self._lock:
            self._plans[key] = (time.monotonic(), queries)
        return AccountPlan(account, queries)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()


DEFINITIONS = DefinitionsCache()
