"""The demo follows the real clock: its scenario's dates move to today by whole days, the emulator's clock
is the real one (now: null), and the relative shape of the estate is kept."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml

from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import follow_real_clock, load_scenario, scenario_from_dict

FROZEN = load_scenario(DEMO_SCENARIO)
RAW = yaml.safe_load(Path(DEMO_SCENARIO).read_text(encoding="utf-8"))


def deployments(scenario):
    return {(a.name, d.name): d for a in scenario.accounts for d in a.deployments}


def test_dates_move_by_whole_days_to_today_and_the_clock_is_real():
    now = datetime(2027, 2, 3, 17, 45, tzinfo=UTC)
    shift = now.date() - FROZEN.current_time().date()
    moved = scenario_from_dict(follow_real_clock(RAW, now))
    assert moved.now is None  # the emulator serves the real time
    before, after = deployments(FROZEN), deployments(moved)
    assert before.keys() == after.keys()
    for key, deployment in before.items():
        assert after[key].active_from == deployment.active_from + shift
        assert after[key].active_to == (deployment.active_to + shift if deployment.active_to else None)
        assert after[key].upgrades == tuple((day + shift, version) for day, version in deployment.upgrades)
    # "gpt-5-pilot started 10 days before now" stays true; the expired secret stays expired.
    assert after[("aoai-prod-weu", "gpt-5-pilot")].active_from == now.date() - timedelta(days=10)
    for key, principal in moved.principals.items():
        was = FROZEN.principals[key].secret_expires
        assert principal.secret_expires == (was + shift if was else None)
        assert (was is not None and principal.secret_expires < now) == (was is not None and was < FROZEN.now)


def test_the_frozen_document_is_left_as_it_was():
    follow_real_clock(RAW, datetime(2030, 1, 1, tzinfo=UTC))
    assert scenario_from_dict(RAW).now == FROZEN.now
    assert deployments(scenario_from_dict(RAW))[("aoai-prod-weu", "gpt-5-pilot")].active_from == date(2026, 11, 10)
