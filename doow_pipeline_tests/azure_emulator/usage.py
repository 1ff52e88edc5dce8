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
from datetime import date, datetime, time, timedelta, timezone
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
    digest = hashlib.blake2b(f"{seed}|{account_id.lower()}|{deployment}|{day.isoformat()}".encode(),
                             digest_size=12).digest()
    # Three independent factors in [0.4, 1.6): their mean is 1, so daily totals average the declared means.
    return tuple(400 + int.from_bytes(digest[i:i + 4], "big") % 1200 for i in (0, 4, 8))  # type: ignore[return-value]


def day_usage(seed: int, account: Account, deployment: Deployment, day: date) -> tuple[int, int, int]:
    """True (input_tokens, output_tokens, requests) for a deployment on a UTC day."""
    if not deployment.active_on(day):
        return (0, 0, 0)
    f_in, f_out, f_req = daily_totals(seed, account.id, deployment.name, day)
    means = deployment.daily
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
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


@dataclass(frozen=True)
class Atom:
    """The finest series the generator produces: one deployment at one model version."""
    deployment: Deployment
    version: str
    dimensions: tuple[tuple[str, str], ...]  # (canonical dimension name, value) for every dimension of the metric

    def value_of(self, dimension_lower: str) -> str:
        for name, value in self.dimensions:
            if name.lower() == dimension_lower:
                return value
        raise KeyError(dimension_lower)


def _dimension_values(metric: MetricSpec, deployment: Deployment, version: str) -> tuple[tuple[str, str], ...]:
    values = []
    for dim in metric.dimensions:
        if dim == "ModelDeploymentName":
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
                    rows.append({
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
                    })
    rows.sort(key=lambda r: (r["day"], r["resource_id"], r["deployment"], r["version"], r["family"]))
    return rows


def metric_spec(name: str) -> MetricSpec | None:
    lowered = name.strip().lower()
    return next((m for m in METRICS if m.name.lower() == lowered), None)
