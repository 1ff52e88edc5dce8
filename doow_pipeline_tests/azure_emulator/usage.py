"""Deterministic usage generator: how many tokens and requests each deployment used in any time window.

Every (account, deployment, UTC day) gets daily totals drawn from a hash of the scenario seed, averaging
the declared means. Within the day, usage follows a fixed daily rhythm, expressed as a cumulative
allocation C(m) = floor(T * W(m)) for minute m in 0..1440 with W(1440) = 1. Any window is then a
difference of two cumulative values, so:
  - every bucket is an exact integer and buckets add up (ΣPT1M = ΣPT1H = P1D = FULL);
  - the cost of a bucket is O(days it covers), never O(minutes): a 90-day P1D sync is cheap;
  - total tokens are input + output in every bucket, because both use the same C.
Nothing here knows about HTTP; the server and `expected_daily_usage` share it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from .catalogue import CONSTANT_DIMENSION_VALUES, METRICS, MetricSpec
from .scenario import Account, Deployment, Scenario

MINUTES_PER_DAY = 1440
EMPTY = "__Empty"


def _rhythm_cumulative() -> tuple[float, ...]:
    # Quiet at night (UTC), busiest at noon: weight 0.2 .. 1.8 per minute.
    weights = [1.0 + 0.8 * math.sin(2 * math.pi * (m - 360) / MINUTES_PER_DAY) for m in range(MINUTES_PER_DAY)]
    total = sum(weights)
    cumulative, running = [0.0], 0.0
    for w in weights:
        running += w
        cumulative.append(running / total)
    cumulative[-1] = 1.0
    return tuple(cumulative)


_CUMULATIVE = _rhythm_cumulative()


@lru_cache(maxsize=2_000_000)
def daily_totals(seed: int, account_id: str, deployment: str, day: date) -> tuple[int, int, int]:
    """(input_tokens, output_tokens, requests) for one deployment-day, before active/means are applied.

    Returned as factors in thousandths of the mean, so the cache is independent of the means.
    """
    digest = hashlib.blake2b(
        f"{seed}|{account_id.lower()}|{deployment}|{day.isoformat()}".encode(), digest_size=12
    ).digest()
    # Three independent factors in [0.4, 1.6): their mean is 1, so daily totals average the declared means.
    return tuple(400 + int.from_bytes(digest[i : i + 4], "big") % 1200 for i in (0, 4, 8))  # type: ignore[return-value]


def day_usage(seed: int, account: Account, deployment: Deployment, day: date) -> tuple[int, int, int]:
    """True (input_tokens, output_tokens, requests) for a deployment on a UTC day."""
    if not deployment.active_on(day):
        return (0, 0, 0)
    f_in, f_out, f_req = daily_totals(seed, account.id, deployment.name, day)
    means = deployment.means_on(day)
    return (means.input_tokens * f_in // 1000, means.output_tokens * f_out // 1000, means.requests * f_req // 1000)


def _cumulative(total: int, minute: int) -> int:
    if minute >= MINUTES_PER_DAY:
        return total
    if minute <= 0:
        return 0
    return int(total * _CUMULATIVE[minute])


def quantity_of(usage: tuple[int, int, int], quantity: str) -> int:
    input_tokens, output_tokens, requests = usage
    if quantity == "input_tokens":
        return input_tokens
    if quantity == "output_tokens":
        return output_tokens
    if quantity == "total_tokens":
        return input_tokens + output_tokens
    if quantity == "requests":
        return requests
    raise ValueError(f"unknown quantity {quantity!r}")


def _windowed(total: int, m0: int, m1: int) -> int:
    return _cumulative(total, m1) - _cumulative(total, m0)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass(frozen=True)
class Atom:
    """The finest series the generator produces: one deployment at one model version."""

    deployment: Deployment
    version: str
    dimensions: tuple[tuple[str, str], ...]  # (canonical dimension name, value) for every dimension of the metric
    # Requests of one class (status code, spillover, tiers) for deployments with a requests mix; None: all requests.
    request_class: RequestClass | None = None

    def value_of(self, dimension_lower: str) -> str:
        for name, value in self.dimensions:
            if name.lower() == dimension_lower:
                return value
        raise KeyError(dimension_lower)


def _dimension_values(
    metric: MetricSpec, deployment: Deployment, version: str, request_class: RequestClass | None = None
) -> tuple[tuple[str, str], ...]:
    values = []
    for dim in metric.dimensions:
        if request_class is not None and dim in REQUEST_CLASS_DIMENSIONS:
            values.append((dim, request_class.value_of(dim)))
        elif dim == "ModelDeploymentName":
            values.append((dim, deployment.name if deployment.reports_deployment_name else EMPTY))
        elif dim == "ModelName":
            values.append((dim, deployment.model))
        elif dim == "ModelVersion":
            values.append((dim, version))
        elif dim == "Region":
            values.append((dim, deployment.region if deployment.region is not None else EMPTY))
        else:
            values.append((dim, CONSTANT_DIMENSION_VALUES.get(dim, EMPTY)))
    return tuple(values)


def _days(first: date, last: date):
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def metric_atoms(account: Account, metric: MetricSpec, start: datetime, end: datetime) -> list[Atom]:
    """Atoms of `metric` on `account` that may have usage in [start, end)."""
    if end <= start:
        return []
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    atoms = []
    for deployment in account.deployments:
        if metric.family not in account.families_for(deployment):
            continue
        versions = []
        for day in _days(first, last):
            if deployment.active_on(day):
                version = deployment.version_on(day)
                if version not in versions:
                    versions.append(version)
        if metric.quantity == "requests" and deployment.requests_mix is not None:
            atoms.extend(
                Atom(deployment, v, _dimension_values(metric, deployment, v, c), c)
                for v in versions
                for c in MIX_CLASSES
            )
        elif metric.quantity == "utilization":
            if deployment.provisioned is not None:
                atoms.extend(Atom(deployment, v, _dimension_values(metric, deployment, v)) for v in versions)
        else:
            atoms.extend(Atom(deployment, v, _dimension_values(metric, deployment, v)) for v in versions)
    return atoms


def atom_amount(seed: int, account: Account, atom: Atom, quantity: str, t0: datetime, t1: datetime) -> int:
    """Usage of one atom in the window [t0, t1) (UTC, minute precision)."""
    if t1 <= t0:
        return 0
    amount = 0
    day = t0.date()
    while True:
        day_start = _day_start(day)
        if day_start >= t1:
            break
        deployment = atom.deployment
        if deployment.active_on(day) and deployment.version_on(day) == atom.version:
            usage = day_usage(seed, account, deployment, day)
            if atom.request_class is not None and quantity == "requests":
                usage = (0, 0, dict(request_classes(seed, account, deployment, day)).get(atom.request_class, 0))
            # Total tokens are windowed as input + output separately: floor(T*W) is not additive in T,
            # so windowing the daily sum would drift by one token from input + output in some buckets.
            totals = usage[:2] if quantity == "total_tokens" else (quantity_of(usage, quantity),)
            m0 = max(0, int((t0 - day_start).total_seconds() // 60))
            m1 = min(MINUTES_PER_DAY, int((t1 - day_start).total_seconds() // 60))
            for total in totals:
                if total:
                    amount += total if (m0 == 0 and m1 == MINUTES_PER_DAY) else _windowed(total, m0, m1)
        day += timedelta(days=1)
    return amount


def expected_daily_usage(scenario: Scenario, start: date, end: date) -> list[dict]:
    """The true daily totals, computed from the generator without the HTTP layer.

    One row per (day, resource_id, deployment, model, version, region, family) with usage, for days
    from `start` to `end`, both inclusive. `region` is the Region dimension value (None when the
    scenario leaves it unreported). Rows with zero usage in every quantity are omitted.
    """
    rows = []
    for account in scenario.accounts:
        for deployment in account.deployments:
            families = account.families_for(deployment)
            if not families:
                continue
            for day in _days(start, end):
                usage = day_usage(scenario.seed, account, deployment, day)
                if not any(usage):
                    continue
                for family in families:
                    rows.append(
                        {
                            "day": day,
                            "resource_id": account.id,
                            "deployment": deployment.name,
                            "model": deployment.model,
                            "version": deployment.version_on(day),
                            "region": deployment.region,
                            "family": family,
                            "input_tokens": usage[0],
                            "output_tokens": usage[1],
                            "total_tokens": usage[0] + usage[1],
                            "requests": usage[2],
                        }
                    )
    rows.sort(key=lambda r: (r["day"], r["resource_id"], r["deployment"], r["version"], r["family"]))
    return rows


def metric_spec(name: str) -> MetricSpec | None:
    lowered = name.strip().lower()
    return next((m for m in METRICS if m.name.lower() == lowered), None)


# ---- requests by status code, spillover and service tier (opt-in: Deployment.requests_mix) ----------------------
# Dimension values: StatusCode as the HTTP status, IsSpillover "true"/"false", service tiers with ARM's
# ServiceTier spelling ("Default", "Priority"). Azure's exact spellings in metric values are unconfirmed;
# deployments without a mix keep catalogue.CONSTANT_DIMENSION_VALUES (one class, byte-identical answers).
REQUEST_CLASS_DIMENSIONS = ("StatusCode", "IsSpillover", "ServiceTierRequest", "ServiceTierResponse")
DEFAULT_TIER, PRIORITY_TIER = "Default", "Priority"


@dataclass(frozen=True)
class RequestClass:
    status_code: str
    is_spillover: str
    tier_request: str
    tier_response: str

    def value_of(self, dimension: str) -> str:
        index = REQUEST_CLASS_DIMENSIONS.index(dimension)
        return (self.status_code, self.is_spillover, self.tier_request, self.tier_response)[index]


CONSTANT_CLASS = RequestClass(*(CONSTANT_DIMENSION_VALUES[d] for d in REQUEST_CLASS_DIMENSIONS))
# Every class a deployment with a requests mix can report, in a fixed order.
MIX_CLASSES = tuple(
    RequestClass("200", spill, tier, served)
    for spill in ("false", "true")
    for tier, served in ((DEFAULT_TIER, DEFAULT_TIER), (PRIORITY_TIER, PRIORITY_TIER), (PRIORITY_TIER, DEFAULT_TIER))
) + (RequestClass("429", "false", DEFAULT_TIER, DEFAULT_TIER), RequestClass("500", "false", DEFAULT_TIER, DEFAULT_TIER))


@lru_cache(maxsize=200_000)
def _mix_factors(seed: int, account_id: str, deployment: str, day: date) -> tuple[int, ...]:
    """Five factors in thousandths, [500, 1500): the day's shares vary around the declared ones."""
    digest = hashlib.blake2b(
        f"{seed}|{account_id.lower()}|{deployment}|{day.isoformat()}|mix".encode(), digest_size=20
    ).digest()
    return tuple(500 + int.from_bytes(digest[i : i + 4], "big") % 1000 for i in range(0, 20, 4))


def _part(total: int, share: float, factor: int) -> int:
    return min(total, int(total * min(1.0, share * factor / 1000)))


def request_classes(
    seed: int, account: Account, deployment: Deployment, day: date
) -> tuple[tuple[RequestClass, int], ...]:
    """The day's requests of a deployment by class; the counts add up to day_usage's requests exactly."""
    requests = day_usage(seed, account, deployment, day)[2]
    mix = deployment.requests_mix
    if mix is None:
        return ((CONSTANT_CLASS, requests),) if requests else ()
    f_throttle, f_error, f_spill, f_priority, f_downgrade = _mix_factors(seed, account.id, deployment.name, day)
    throttled = _part(requests, mix.throttled_on(day), f_throttle)
    errors = _part(requests - throttled, mix.server_errors, f_error)
    ok = requests - throttled - errors
    spilled = _part(ok, mix.spillover, f_spill)
    classes: list[tuple[RequestClass, int]] = []
    for spill, count in (("false", ok - spilled), ("true", spilled)):
        priority = _part(count, mix.priority, f_priority)
        downgraded = _part(priority, mix.downgraded, f_downgrade)
        classes += [
            (RequestClass("200", spill, DEFAULT_TIER, DEFAULT_TIER), count - priority),
            (RequestClass("200", spill, PRIORITY_TIER, PRIORITY_TIER), priority - downgraded),
            (RequestClass("200", spill, PRIORITY_TIER, DEFAULT_TIER), downgraded),
        ]
    classes += [
        (RequestClass("429", "false", DEFAULT_TIER, DEFAULT_TIER), throttled),
        (RequestClass("500", "false", DEFAULT_TIER, DEFAULT_TIER), errors),
    ]
    return tuple((c, n) for c, n in classes if n)


def expected_daily_requests(scenario: Scenario, start: date, end: date) -> list[dict]:
    """Requests per (day, resource_id, deployment, model, version, region, family, status code, spillover,
    tier requested, tier served), from the generator without the HTTP layer (P1D buckets: exact)."""
    rows = []
    for account in scenario.accounts:
        for deployment in account.deployments:
            for family in account.families_for(deployment):
                for day in _days(start, end):
                    for request_class, count in request_classes(scenario.seed, account, deployment, day):
                        rows.append(
                            {
                                "day": day,
                                "resource_id": account.id,
                                "deployment": deployment.name,
                                "model": deployment.model,
                                "version": deployment.version_on(day),
                                "region": deployment.region,
                                "family": family,
                                "status_code": request_class.status_code,
                                "is_spillover": request_class.is_spillover,
                                "tier_request": request_class.tier_request,
                                "tier_response": request_class.tier_response,
                                "requests": count,
                            }
                        )
    return rows


# ---- provisioned (PTU) utilisation (opt-in: Deployment.provisioned) ----------------------------------------------
# Every minute of an hour reports that hour's average and maximum, so any window's Average is the minute-weighted
# mean of hourly averages and its Maximum the largest hourly maximum: every grain agrees with PT1H.
_HOUR_WEIGHTS = tuple(
    sum(1.0 + 0.8 * math.sin(2 * math.pi * (m - 360) / MINUTES_PER_DAY) for m in range(h * 60, h * 60 + 60)) / 60 / 1.8
    for h in range(24)
)


@lru_cache(maxsize=200_000)
def _hour_factors(seed: int, account_id: str, deployment: str, day: date) -> tuple[tuple[int, int], ...]:
    digest = hashlib.shake_256(f"{seed}|{account_id.lower()}|{deployment}|{day.isoformat()}|ptu".encode()).digest(96)
    return tuple(
        (
            900 + int.from_bytes(digest[4 * h : 4 * h + 2], "big") % 200,  # jitter 0.9 .. 1.1
            100 + int.from_bytes(digest[4 * h + 2 : 4 * h + 4], "big") % 500,
        )  # max above average 10 .. 60 %
        for h in range(24)
    )


def hourly_utilization(
    seed: int, account: Account, deployment: Deployment, day: date
) -> tuple[tuple[float, float], ...]:
    """(average, maximum) percent for each UTC hour of the day, in tenths of a percent (exact decimals);
    () when the deployment is not provisioned or not active that day. Busy days (more requests) run fuller."""
    if deployment.provisioned is None or not deployment.active_on(day):
        return ()
    day_factor = daily_totals(seed, account.id, deployment.name, day)[2] / 1000
    level = deployment.provisioned.utilization * 10
    hours = []
    for weight, (jitter, above) in zip(
        _HOUR_WEIGHTS, _hour_factors(seed, account.id, deployment.name, day), strict=True
    ):
        average = min(1000, round(level * weight * day_factor * jitter / 1000))
        maximum = min(1000, average + average * above // 1000)
        hours.append((average / 10, maximum / 10))
    return tuple(hours)


def expected_ptu_hourly(scenario: Scenario, start: date, end: date) -> list[dict]:
    """Hourly Average and Maximum utilisation per provisioned deployment and family (the metric
    ProvisionedUtilization for models, AzureOpenAIProvisionedManagedUtilizationV2 for azure_openai)."""
    rows = []
    for account in scenario.accounts:
        for deployment in account.deployments:
            for family in account.families_for(deployment):
                for day in _days(start, end):
                    for hour, (average, maximum) in enumerate(
                        hourly_utilization(scenario.seed, account, deployment, day)
                    ):
                        rows.append(
                            {
                                "hour": _day_start(day) + timedelta(hours=hour),
                                "resource_id": account.id,
                                "deployment": deployment.name,
                                "model": deployment.model,
                                "version": deployment.version_on(day),
                                "region": deployment.region,
                                "family": family,
                                "average": average,
                                "maximum": maximum,
                            }
                        )
    return rows
