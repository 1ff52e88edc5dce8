"""Anomaly checks on purpose-built usage: each rule triggers on its pattern and clears on steady data."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from doow_pipeline.core.checks import DEPLOYMENT_NEW, DEPLOYMENT_SILENT, USAGE_DROP, USAGE_SPIKE, Severity
from doow_pipeline.usage.anomalies import ACTIVITY_SCHEMA, COVERAGE_SCHEMA, AnomalyThresholds, anomaly_checks

RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai"
OTHER = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/other"
JUDGED = date(2026, 11, 15)
THRESHOLDS = AnomalyThresholds(factor=3.0, window_days=14, min_days=7)
# Alternating 900 / 1100 tokens: median 1000 over any 14-day window.
STEADY = [900, 1100] * 7


def history(
    values: list[int], deployment: str | None = "chat", rid: str = RID, last: date = JUDGED, requests: int = 10
) -> list[dict]:
    """Usage rows for `values` on consecutive days ending at `last` (0 = no row: a covered day without usage)."""
    first = last - timedelta(days=len(values) - 1)
    return [
        {
            "usage_date": first + timedelta(days=i),
            "resource_id": rid,
            "resource_name": rid.rsplit("/", 1)[1],
            "deployment": deployment,
            "total_tokens": v,
            "requests": requests if v else 0,
        }
        for i, v in enumerate(values)
        if v
    ]


def covered(rid: str = RID, days: int = 30, last: date = JUDGED, not_final: tuple[date, ...] = ()) -> list[dict]:
    return [
        {
            "resource_id": rid,
            "usage_date": last - timedelta(days=i),
            "is_final": last - timedelta(days=i) not in not_final,
        }
        for i in range(days)
    ]


def run(rows: list[dict], coverage: list[dict], days: list[date] | None = None, thresholds=THRESHOLDS):
    outcomes = anomaly_checks(
        pl.DataFrame(rows, schema=ACTIVITY_SCHEMA),
        pl.DataFrame(coverage, schema=COVERAGE_SCHEMA),
        days or [JUDGED],
        thresholds,
    )
    return {o.check: o for o in outcomes}


def failing(outcomes) -> set:
    return {check for check, outcome in outcomes.items() if not outcome.passed}


def test_steady_usage_passes_every_check():
    outcomes = run(history(STEADY + [1000]), covered())
    assert failing(outcomes) == set()
    assert all(o.severity is Severity.WARN for o in outcomes.values())
    assert "1 final day(s) judged" in outcomes[USAGE_SPIKE].description


def test_a_day_above_k_times_the_trailing_median_is_a_spike_with_its_numbers():
    outcomes = run(history(STEADY + [3001]), covered())
    assert failing(outcomes) == {USAGE_SPIKE}
    text = outcomes[USAGE_SPIKE].description
    assert "aoai/chat on 2026-11-15: 3,001 total tokens vs median 1,000 (3.0x)" in text
    assert outcomes[USAGE_SPIKE].metadata["findings"] == 1
    assert outcomes[USAGE_SPIKE].metadata["listed"][0]["value"] == 3001
    # exactly k x the median is not above it
    assert failing(run(history(STEADY + [3000]), covered())) == set()


def test_a_drop_below_one_kth_of_the_median_warns_and_a_milder_dip_does_not():
    outcomes = run(history(STEADY + [333]), covered())
    assert failing(outcomes) == {USAGE_DROP}
    assert "333 total tokens vs median 1,000 (0.3x)" in outcomes[USAGE_DROP].description
    assert failing(run(history(STEADY + [334]), covered())) == set()


def test_silence_after_steady_use_warns_but_not_after_sporadic_use():
    outcomes = run(history(STEADY + [0]), covered())
    assert failing(outcomes) == {DEPLOYMENT_SILENT}
    assert "no usage after total tokens on 14 of the 14 day(s) before" in outcomes[DEPLOYMENT_SILENT].description
    sporadic = [1000 if i % 3 == 0 else 0 for i in range(14)]  # 5 days of use: not steady
    assert failing(run(history(sporadic + [0]), covered())) == set()


def test_a_new_deployment_warns_once_its_account_has_a_baseline():
    rows = history(STEADY + [1000]) + history([0] * 14 + [500], deployment="fresh")
    outcomes = run(rows, covered())
    assert failing(outcomes) == {DEPLOYMENT_NEW}
    assert (
        "aoai/fresh on 2026-11-15: 500 total tokens after none in the 14 day(s) before"
        in outcomes[DEPLOYMENT_NEW].description
    )
    # The day after, it has a one-day history: no longer new, not yet steady.
    day_after = history(STEADY + [1000, 1000], last=JUDGED + timedelta(days=1)) + history(
        [0] * 14 + [500, 500], deployment="fresh", last=JUDGED + timedelta(days=1)
    )
    assert failing(run(day_after, covered(last=JUDGED + timedelta(days=1)), [JUDGED + timedelta(days=1)])) == set()


def test_an_account_read_for_fewer_than_min_days_judges_nothing_as_new():
    # The warehouse's history starts three days ago: absence before that is unknown, not zero.
    outcomes = run(history([0, 0, 500], deployment="fresh"), covered(days=3))
    assert failing(outcomes) == set()


def test_days_not_read_are_gaps_not_zeros():
    # Steady use, then the account was not read for ten days (no coverage), then normal usage.
    values = STEADY + [1000]
    rows = history(values)
    coverage = [c for c in covered() if not (JUDGED - timedelta(days=10) <= c["usage_date"] < JUDGED)]
    assert failing(run(rows, coverage)) == set()


def test_days_not_final_are_never_judged_nor_part_of_a_baseline():
    rows = history(STEADY + [0])
    assert failing(run(rows, covered(not_final=(JUDGED,)))) == set()
    # A spike after partial (not final) days of 100 tokens: while the spike day is not final either, nothing;
    # once it is, the baseline holds the final days only (median 1,000, so the partial days raise no drop).
    spike_day = JUDGED + timedelta(days=2)
    partial = history(STEADY + [100, 100, 5000], last=spike_day)
    days = [JUDGED, JUDGED + timedelta(days=1), spike_day]
    assert failing(run(partial, covered(last=spike_day, not_final=tuple(days)), days)) == set()
    outcomes = run(partial, covered(last=spike_day, not_final=tuple(days[:2])), days)
    assert failing(outcomes) == {USAGE_SPIKE}
    assert "1 final day(s) judged" in outcomes[USAGE_SPIKE].description
    assert "5,000 total tokens vs median 1,000" in outcomes[USAGE_SPIKE].description


def test_deployments_without_tokens_are_judged_on_requests():
    rows = [dict(r, total_tokens=0, requests=r["total_tokens"]) for r in history(STEADY + [4000], deployment=None)]
    outcomes = run(rows, covered())
    assert failing(outcomes) == {USAGE_SPIKE}
    assert (
        "aoai/(unnamed deployment) on 2026-11-15: 4,000 requests vs median 1,000" in outcomes[USAGE_SPIKE].description
    )


def test_deployments_are_judged_separately_per_account_and_versions_add_up():
    # Two model versions on one day add up to the deployment's day; another account's same name is separate.
    rows = history(STEADY + [600]) + history([400], last=JUDGED) + history(STEADY + [5000], rid=OTHER)
    outcomes = run(rows, covered() + covered(OTHER))
    assert failing(outcomes) == {USAGE_SPIKE}
    assert outcomes[USAGE_SPIKE].metadata["findings"] == 1
    assert "other/chat" in outcomes[USAGE_SPIKE].description


def test_thresholds_come_from_the_settings_values():
    rows = history(STEADY + [2100])
    assert failing(run(rows, covered())) == set()
    assert failing(run(rows, covered(), thresholds=AnomalyThresholds(factor=2.0))) == {USAGE_SPIKE}
    # A longer minimum of days of use makes 14 days of history too short to call the silence.
    assert (
        failing(run(history(STEADY + [0]), covered(), thresholds=AnomalyThresholds(min_days=15, window_days=20)))
        == set()
    )


def test_a_range_reports_each_day_and_lists_at_most_ten():
    values = STEADY * 2 + [0] * 12
    days = [JUDGED - timedelta(days=i) for i in range(12)]
    outcome = run(history(values), covered(days=60), days)[DEPLOYMENT_SILENT]
    # Silent days are reported while the trailing window still shows steady use (>= 7 days of use in 14).
    assert outcome.metadata["findings"] == 8
    assert len(outcome.metadata["listed"]) == 8
    many = run(
        history(values, deployment=None) + history(values) + history(values, rid=OTHER),
        covered(days=60) + covered(OTHER, days=60),
        days,
    )[DEPLOYMENT_SILENT]
    assert many.metadata["findings"] == 24 and len(many.metadata["listed"]) == 10
    assert many.description.count(" on 2026-") == 10 and "and 14 more" in many.description


@pytest.mark.parametrize("values", [[0] * 30])
def test_nothing_to_judge_passes(values):
    assert failing(run(history(values), covered())) == set()


def test_a_ramp_up_is_compared_with_the_days_since_first_use_not_with_the_zeros_before():
    # Seven days of 1,000 after seven without the deployment, then 1,600: 1.6x its own median, no spike
    # (against a median over all fourteen days, half of them zeros (500), it would be a 3.2x jump).
    rows = history([0] * 7 + [1000] * 7 + [1600], deployment="fresh") + history(STEADY + [1000])
    assert failing(run(rows, covered())) == set()
