"""What the benchmarks' estates and bounds promise (benchmarks/README.md): the scale block's sizes, the lower
bounds computed from the scenario."""

from __future__ import annotations

from collections import Counter
from datetime import date

from benchmarks import daily_bench, sync10k_bench, sync_bench


def _estate(size: dict) -> sync_bench.Estate:
    return sync_bench.build_estate(sync_bench.scenario_document(False, size), "scale.yaml")


def test_the_10k_estate_is_the_1k_estate_ten_times_over():
    small, large = (_estate(size) for size in sync10k_bench.SIZES[False])
    assert (small.accounts, small.deployments, len(small.specs)) == (1_000, 10_000, 4)
    assert (large.accounts, large.deployments, len(large.specs)) == (10_000, 100_000, 40)
    per_subscription = Counter(a.subscription_id for a in large.scenario.accounts)
    assert set(per_subscription.values()) == {250}
    assert large.first == small.first == date(2026, 8, 22) and large.last == small.last == date(2026, 11, 19)
    # every connection of the large estate costs what one of the small estate costs
    assert sync_bench.lower_bound(large.scenario, large.scopes) == {
        k: 10 * v for k, v in sync_bench.lower_bound(small.scenario, small.scopes).items()
    }


def test_the_daily_bound_is_the_backfill_bound_without_definitions():
    estate = _estate(sync_bench.SIZES[False])
    backfill = sync_bench.lower_bound(estate.scenario, estate.scopes)
    daily = daily_bench.daily_bound(estate)
    assert backfill["definitions"] == 1_000
    assert "definitions" not in daily
    # 4 connections: 2 tokens + 1 OpenID read, 3 list pages, and per region (3) and family (2) 2 chunks of
    # <= 50 accounts, each read once for tokens and once for the request splits
    assert daily == {"token": 8, "openid": 4, "accounts": 12, "batch": 4 * 3 * 2 * 2 * 2}
    assert sum(daily.values()) == sum(backfill.values()) - 1_000
