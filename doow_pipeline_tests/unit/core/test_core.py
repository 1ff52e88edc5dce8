"""The shared vocabulary: the clock, scopes, the __Empty rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from doow_pipeline.core.clock import Clock, day_start, days_between, format_utc, parse_utc
from doow_pipeline.core.metrics import oldest_syncable_day, reported
from doow_pipeline.core.scope import ScopeKind, parse_scope

SUB = "3b6e1c2a-5d4f-4a8b-9c7e-0f1a2b3c4d01"


def test_a_frozen_clock_is_frozen_and_the_real_one_moves():
    frozen = Clock(parse_utc("2026-11-20T06:00:00Z"))
    assert frozen.now() == datetime(2026, 11, 20, 6, tzinfo=UTC) and frozen.today() == date(2026, 11, 20)
    assert abs(Clock().now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_utc_formatting_is_one_rule():
    assert format_utc(datetime(2026, 11, 20, 7, 30, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-20T06:30:00Z"
    assert format_utc(datetime(2026, 11, 20, 6, 30)) == "2026-11-20T06:30:00Z"  # naive means UTC
    assert parse_utc("2026-11-20T06:00:00+02:00") == datetime(2026, 11, 20, 4, tzinfo=UTC)
    assert day_start(date(2026, 11, 20)).isoformat() == "2026-11-20T00:00:00+00:00"
    assert days_between(date(2026, 11, 29), date(2026, 12, 1)) == [
        date(2026, 11, 29),
        date(2026, 11, 30),
        date(2026, 12, 1),
    ]
    with pytest.raises(ValueError):
        parse_utc("yesterday")


def test_not_reported_dimension_values_are_none():
    assert [reported(v) for v in ("__Empty", "", None, "gpt-4o")] == [None, None, None, "gpt-4o"]


def test_retention_keeps_93_days():
    assert oldest_syncable_day(datetime(2026, 11, 20, 6, tzinfo=UTC)) == date(2026, 8, 20)


@pytest.mark.parametrize(
    "text, kind",
    [
        (f"/subscriptions/{SUB}", ScopeKind.SUBSCRIPTION),
        (f"/subscriptions/{SUB.upper()}/resourceGroups/rg-ai/", ScopeKind.RESOURCE_GROUP),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai-1",
            ScopeKind.ACCOUNT_ID,
        ),
        ("aoai-prod-weu", ScopeKind.ACCOUNT_NAME),
    ],
)
def test_scopes_parse(text, kind):
    scope = parse_scope(text)
    assert scope.kind is kind
    if scope.subscription_id:
        assert scope.subscription_id == SUB


@pytest.mark.parametrize(
    "text",
    [
        f"/subscriptions/{SUB}/resourceGroups/..",  # URL normalisation would widen it to the subscription
        f"/subscriptions/{SUB}/resourceGroups/./x",
        f"/subscriptions/{SUB}//resourceGroups/rg",
        "/subscriptions/not-a-guid",
        "a",
    ],
)
def test_bad_scopes_are_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="scope|GUID|subscription id"):
        parse_scope(text)
