"""Answers checked against the request (metrics_api.cover_window): a trimmed window, another grain or buckets
left out are asked again; what Azure never answers comes back as gaps. `ask` stands for Azure here: a pure
function of the asked window, so each case is deterministic."""

from datetime import UTC, datetime, timedelta

from doow_pipeline.azure.metrics_api import Answered, MetricResult, Series, TimeWindow, cover_window, duration
from doow_pipeline.core.clock import format_utc

START = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)
RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"


def value(day: datetime) -> float:
    return float((day - START).days + 1)


def answer(start: datetime, end: datetime, interval: str = "P1D", skip: frozenset = frozenset()) -> list[MetricResult]:
    """What Azure answers for [start, end): one series, a bucket per `interval`, values = day number."""
    step, stamps, totals, moment = duration(interval), [], [], start
    while moment < end:
        if moment not in skip:
            stamps.append(format_utc(moment))
            totals.append(value(moment))
        moment += step
    return [
        MetricResult(
            RID,
            "TotalTokens",
            "Success",
            None,
            [Series({"modeldeploymentname": "d"}, stamps, totals)],
            Answered(start, end, interval),
        )
    ]


def points(results: list[MetricResult]) -> dict[str, float]:
    (result,) = results
    return {t: v for s in result.series for t, v in zip(s.timestamps, s.totals, strict=True)}


def test_an_answer_as_asked_is_one_call():
    calls = []
    window = TimeWindow(START, START + 10 * DAY)
    results = cover_window(lambda w: calls.append(w) or answer(w.start, w.end), window)
    assert len(calls) == 1 and not results[0].gaps
    assert len(points(results)) == 10


def test_a_trimmed_window_is_asked_again_until_every_day_is_answered():
    calls = []

    def trimmed(w: TimeWindow) -> list[MetricResult]:  # Azure keeps the end and at most 3 buckets
        calls.append(w)
        return answer(max(w.start, w.end - 3 * DAY), w.end)

    window = TimeWindow(START, START + 10 * DAY)
    results = cover_window(trimmed, window)
    got = points(results)
    assert got == {format_utc(START + i * DAY): value(START + i * DAY) for i in range(10)}
    assert not results[0].gaps
    assert len(calls) == 4  # 3 + 3 + 3 + 1 days


def test_another_grain_is_not_taken_for_daily_totals():
    def hourly_for_long_windows(w: TimeWindow) -> list[MetricResult]:
        return answer(w.start, w.end, "PT12H") if w.end - w.start > 2 * DAY else answer(w.start, w.end)

    window = TimeWindow(START, START + 8 * DAY)
    results = cover_window(hourly_for_long_windows, window)
    assert len(points(results)) == 8 and not results[0].gaps
    assert set(points(results).values()) == {float(i) for i in range(1, 9)}


def test_buckets_left_out_are_asked_again():
    hole = START + 4 * DAY
    calls = []

    def with_hole(w: TimeWindow) -> list[MetricResult]:
        calls.append(w)
        return answer(w.start, w.end, skip=frozenset({hole}) if len(calls) == 1 else frozenset())

    results = cover_window(with_hole, TimeWindow(START, START + 7 * DAY))
    assert len(points(results)) == 7 and not results[0].gaps
    assert calls[1] == TimeWindow(hole, hole + DAY)


def test_days_never_answered_are_returned_as_gaps():
    def only_the_last_two_days(w: TimeWindow) -> list[MetricResult]:
        return answer(START + 5 * DAY, START + 7 * DAY)  # whatever is asked

    results = cover_window(only_the_last_two_days, TimeWindow(START, START + 7 * DAY))
    (result,) = results
    assert result.gaps == (TimeWindow(START, START + 5 * DAY),)
    assert sorted(points(results)) == [format_utc(START + 5 * DAY), format_utc(START + 6 * DAY)]


def test_a_partial_last_day_counts_as_answered():
    now = START + 3 * DAY + timedelta(hours=6)
    results = cover_window(lambda w: answer(w.start, w.end), TimeWindow(START, now))
    assert len(points(results)) == 4 and not results[0].gaps


def test_one_bucket_per_answer_still_completes_a_long_window():
    calls = []

    def one_day(w: TimeWindow) -> list[MetricResult]:
        calls.append(w)
        return answer(max(w.start, w.end - DAY), w.end)

    results = cover_window(one_day, TimeWindow(START, START + 90 * DAY))
    assert len(points(results)) == 90 and not results[0].gaps
    assert len(calls) == 90
