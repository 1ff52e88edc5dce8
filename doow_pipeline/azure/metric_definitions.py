"""Which metric families and dimensions each account has, read from its metricDefinitions (never assumed).

An account is queried for each family it defines, splitting on the dimensions every queried metric of that
family supports, so the filter never asks a metric for a dimension it lacks (Azure answers 400 unless every
filtered dimension exists on every metric of the call).

Model names of the legacy family: its token metrics have no ModelName, its request metric
`AzureOpenAIRequests` has (ModelDeploymentName, ModelName, ModelVersion, Region). So the request metric
leaves the legacy token query and is split by ModelName where that costs nothing or the least:
- the account also defines the "models" family, whose split dimensions the request metric all has: it
  joins that query (no extra call);
- otherwise it is a query of its own (one extra call per batch chunk, or per account on the per-resource
  API). The roll-up names the legacy token rows from it by (resource, deployment, version).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.metrics import (
    ACTIVITY_DIMENSIONS,
    FAMILY_METRICS,
    METRIC_FAMILY,
    NAMESPACE,
    SPLIT_DIMENSIONS,
    UTILIZATION_FAMILY,
    UTILIZATION_METRICS,
    Family,
    Quantity,
)
from ..core.problems import Problem, ProblemCode
from ..core.scope import Account
from .errors import azure_errors
from .metrics_api import MetricQuery
from .session import AzureSession

MODEL_NAME = "modelname"


@dataclass(frozen=True)
class FamilyQuery:
    """One family's metrics of one account, and the dimensions to split them by."""

    family: Family
    metric_names: tuple[str, ...]
    split_dimensions: tuple[str, ...]
    model_names_only: bool = False  # the legacy request metric alone, read for its ModelName (no tokens)

    def metric_query(
        self, top: int, *, deployment: str | None = None, split: tuple[str, ...] | None = None
    ) -> MetricQuery:
        return MetricQuery(self.metric_names, self.split_dimensions if split is None else split, deployment, top)

    @property
    def total_metric(self) -> str:
        """The family's total-tokens metric (the cheapest probe of whether usage is readable)."""
        wanted = FAMILY_METRICS[self.family][Quantity.TOTAL_TOKENS].lower()
        return next((m for m in self.metric_names if m.lower() == wanted), self.metric_names[0])


class ActivityKind:
    REQUESTS = "requests"  # the family's request metric split by status code, spillover and tiers (P1D, Total)
    UTILIZATION = "utilization"  # the family's PTU utilisation metric (PT1H, Average and Maximum)


@dataclass(frozen=True)
class ActivityQuery:
    """One metric group beyond tokens, for one family of one account (issue 13)."""

    kind: str
    family: Family
    metric: str
    split_dimensions: tuple[str, ...]

    @property
    def aggregation(self) -> str:
        return "Average,Maximum" if self.kind == ActivityKind.UTILIZATION else "Total"

    @property
    def interval(self) -> str:
        return "PT1H" if self.kind == ActivityKind.UTILIZATION else "P1D"

    def metric_query(self, top: int, *, deployment: str | None = None) -> MetricQuery:
        return MetricQuery((self.metric,), self.split_dimensions, deployment, top, self.aggregation)


@dataclass(frozen=True)
class AccountPlan:
    account: Account
    queries: tuple[FamilyQuery, ...]  # empty: the account defines no token metrics
    activity: tuple[ActivityQuery, ...] = ()


def activity_from_definitions(definitions: dict[str, set[str]]) -> tuple[ActivityQuery, ...]:
    """Request splits for each family whose request metric is defined with the activity dimensions, and the
    utilisation metric of each family that defines one (only accounts with provisioned deployments do)."""
    defined = {name.lower(): (name, {d.lower() for d in dims}) for name, dims in definitions.items()}
    queries = []
    for family, metrics in FAMILY_METRICS.items():
        request = defined.get(metrics[Quantity.REQUESTS].lower())
        if request and any(d.lower() in request[1] for d in ACTIVITY_DIMENSIONS):
            split = tuple(d for d in SPLIT_DIMENSIONS + ACTIVITY_DIMENSIONS if d.lower() in request[1])
            queries.append(ActivityQuery(ActivityKind.REQUESTS, family, request[0], split))
    for family, metric in UTILIZATION_METRICS.items():
        utilization = defined.get(metric.lower())
        if utilization:
            split = tuple(d for d in SPLIT_DIMENSIONS if d.lower() in utilization[1])
            queries.append(ActivityQuery(ActivityKind.UTILIZATION, family, utilization[0], split))
    return tuple(queries)


def _split_of(metrics: list[tuple[str, set[str]]]) -> tuple[str, ...]:
    """The usage dimensions every one of `metrics` has, in filter order."""
    common = set.intersection(*(dims for _, dims in metrics))
    return tuple(d for d in SPLIT_DIMENSIONS if d.lower() in common)


def plan_from_definitions(definitions: dict[str, set[str]]) -> tuple[FamilyQuery, ...]:
    """Builds family queries from {metric name: {dimension names}} as metricDefinitions lists them."""
    defined = {name.lower(): (name, {d.lower() for d in dims}) for name, dims in definitions.items()}
    present: dict[Family, list[tuple[str, set[str]]]] = {}
    for family, metrics in FAMILY_METRICS.items():
        found = [defined[m.lower()] for m in metrics.values() if m.lower() in defined]
        if any(name.lower() != metrics[Quantity.REQUESTS].lower() for name, _ in found):
            present[family] = found  # a family without token metrics is of no use
    names_only = _legacy_request_metric_for_names(present)
    queries = [
        FamilyQuery(family, tuple(name for name, _ in metrics), _split_of(metrics))
        for family, metrics in present.items()
    ]
    if names_only is not None:
        queries.append(
            FamilyQuery(Family.AZURE_OPENAI, (names_only[0],), _split_of([names_only]), model_names_only=True)
        )
    return tuple(queries)


def _legacy_request_metric_for_names(present: dict[Family, list[tuple[str, set[str]]]]) -> tuple[str, set[str]] | None:
    """Moves the legacy request metric out of the legacy token query when it reports ModelName and the token
    metrics do not: into the models query when its split allows (returns None), else returned to be queried
    alone. `present` is edited in place."""
    legacy = present.get(Family.AZURE_OPENAI)
    wanted = FAMILY_METRICS[Family.AZURE_OPENAI][Quantity.REQUESTS].lower()
    request = next((m for m in legacy or () if m[0].lower() == wanted), None)
    if legacy is None or request is None or MODEL_NAME not in request[1]:
        return None
    tokens = [m for m in legacy if m is not request]
    if MODEL_NAME in set.intersection(*(dims for _, dims in tokens)):
        return None  # the token metrics report the model themselves
    present[Family.AZURE_OPENAI] = tokens
    models = present.get(Family.MODELS)
    if models is not None and {d.lower() for d in _split_of(models)} <= request[1]:
        models.append(request)
        return None
    return request


def read_definitions(session: AzureSession, account: Account) -> dict[str, set[str]]:
    """{metric name: {dimension names}} of the account's token and request metrics."""
    with azure_errors(endpoint=session.endpoints.arm):
        client = session.monitor(account.subscription_id)
        return {
            d.name.value: {dim.value for dim in (d.dimensions or ()) if dim.value}
            for d in client.metric_definitions.list(account.resource_id, metricnamespace=NAMESPACE)
            if d.name
            and d.name.value
            and (d.name.value.lower() in METRIC_FAMILY or d.name.value.lower() in UTILIZATION_FAMILY)
        }


def plan_from(account: Account, definitions: dict[str, set[str]]) -> AccountPlan:
    """The account's plan from its metricDefinitions ({metric name: {dimension names}})."""
    return AccountPlan(account, plan_from_definitions(definitions), activity_from_definitions(definitions))


# What Azure answers when a query asks for a metric or a dimension the account no longer defines: the plan was
# made from definitions that changed (a stored plan past its change, before its refresh age).
_STALE_PLAN_ANSWERS = ("failed to find metric configuration", "does not support requested dimension combination")


def stale_plan(problem: Problem) -> bool:
    """Whether Azure's answer says the query's metrics or dimensions are not (or no longer) defined."""
    text = f"{problem.cause} {problem.detail}".lower()
    return problem.code is ProblemCode.AZURE_ERROR and any(answer in text for answer in _STALE_PLAN_ANSWERS)
