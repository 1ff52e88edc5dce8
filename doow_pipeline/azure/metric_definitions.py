"""Which metric families and dimensions each account has, read from its metricDefinitions (never assumed).

An account is queried for each family it defines, splitting on the dimensions every queried metric of that
family supports, so the filter never asks a metric for a dimension it lacks (which Azure answers with 400).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..core.metrics import FAMILY_METRICS, METRIC_FAMILY, NAMESPACE, SPLIT_DIMENSIONS, Family, Quantity
from ..core.scope import Account
from .errors import azure_errors
from .metrics_api import MetricQuery
from .session import AzureSession

DEFINITIONS_TTL_SECONDS = 6 * 3600


@dataclass(frozen=True)
class FamilyQuery:
    """One family's metrics of one account, and the dimensions to split them by."""

    family: Family
    metric_names: tuple[str, ...]
    split_dimensions: tuple[str, ...]

    def metric_query(self, top: int, *, deployment: str | None = None,
                     split: tuple[str, ...] | None = None) -> MetricQuery:
        return MetricQuery(self.metric_names, self.split_dimensions if split is None else split, deployment, top)

    @property
    def total_metric(self) -> str:
        """The family's total-tokens metric (the cheapest probe of whether usage is readable)."""
        wanted = FAMILY_METRICS[self.family][Quantity.TOTAL_TOKENS].lower()
        return next((m for m in self.metric_names if m.lower() == wanted), self.metric_names[0])


@dataclass(frozen=True)
class AccountPlan:
    account: Account
    queries: tuple[FamilyQuery, ...]  # empty: the account defines no token metrics


def plan_from_definitions(definitions: dict[str, set[str]]) -> tuple[FamilyQuery, ...]:
    """Builds family queries from {metric name: {dimension names}} as metricDefinitions lists them."""
    defined = {name.lower(): (name, {d.lower() for d in dims}) for name, dims in definitions.items()}
    queries = []
    for family, metrics in FAMILY_METRICS.items():
        present = [defined[m.lower()] for m in metrics.values() if m.lower() in defined]
        if not any(name.lower() != metrics[Quantity.REQUESTS].lower() for name, _ in present):
            continue  # a family without token metrics is of no use
        common = set.intersection(*(dims for _, dims in present))
        split = tuple(d for d in SPLIT_DIMENSIONS if d.lower() in common)
        queries.append(FamilyQuery(family, tuple(name for name, _ in present), split))
    return tuple(queries)


def read_definitions(session: AzureSession, account: Account) -> dict[str, set[str]]:
    """{metric name: {dimension names}} of the account's token and request metrics."""
    with azure_errors():
        client = session.monitor(account.subscription_id)
        return {
            d.name.value: {dim.value for dim in (d.dimensions or ()) if dim.value}
            for d in client.metric_definitions.list(account.resource_id, metricnamespace=NAMESPACE)
            if d.name and d.name.value and d.name.value.lower() in METRIC_FAMILY
        }


class DefinitionsCache:
    """Per-process cache of account plans: metricDefinitions change rarely and are throttled (400/5 min)."""

    def __init__(self, ttl_seconds: float = DEFINITIONS_TTL_SECONDS):
        self.ttl = ttl_seconds
        self._plans: dict[str, tuple[float, tuple[FamilyQuery, ...]]] = {}
        self._lock = threading.Lock()

    def plan(self, session: AzureSession, account: Account) -> AccountPlan:
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
