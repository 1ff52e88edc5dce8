"""Anomaly checks on usage_daily end to end: deployments whose daily means jump, collapse, stop and start
(samples.activity_anomalies_scenario), synced through the emulator in successive ranges so each check first
passes, then fails naming the numbers computed here from the scenario's generator, then clears."""

from __future__ import annotations

import statistics
from datetime import date, timedelta

import duckdb
import pytest
from polars.testing import assert_frame_equal

from doow_pipeline.config import load_config
from doow_pipeline.defs.runs import sync_range
from doow_pipeline_tests.azure_emulator.samples import (
    MAIN_CLIENT,
    SUB_A,
    account_id,
    activity_anomalies_scenario,
)
from doow_pipeline_tests.azure_emulator.scenario import scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import day_usage
from doow_pipeline_tests.project import ConnectionSpec, expected_usage, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = scenario_from_dict(activity_anomalies_scenario())
ACCOUNT = SCENARIO.account(account_id(SUB_A, "rg-ai", "aoai-activity"))
CONNECTIONS = [ConnectionSpec("activity", MAIN_CLIENT, ACCOUNT.id)]
ANOMALY_CHECKS = ("usage_spike", "usage_drop", "deployment_silent", "new_deployment")
CHANGE = date(2026, 10, 25)
WINDOW = 14


def total_tokens(name: str, day: date) -> int:
    deployment = next(d for d in ACCOUNT.deployments if d.name == name)
    usage = day_usage(SCENARIO.seed, ACCOUNT, deployment, day)
    return usage[0] + usage[1]


def trailing_median(name: str, day: date) -> float:
    return statistics.median(total_tokens(name, day - timedelta(days=i)) for i in range(1, WINDOW + 1))


def anomaly_results(reports) -> dict[str, tuple[bool, str]]:
    write = next(r for r in reports if r.job == "azure_openai_write_usage")
    assert write.success, write.failure
    results = {c.name.split(":")[-1]: (c.passed, c.description) for c in write.checks}
    return {name: results[name] for name in ANOMALY_CHECKS}


@pytest.fixture
def project(tmp_path, emulator_factory, monkeypatch):
    emulator = emulator_factory(activity_anomalies_scenario())
    monkeypatch.setenv(secret_env_name("activity"), SCENARIO.principals[MAIN_CLIENT].secret)

    def sync(first: date, last: date, **settings):
        path = write_project(tmp_path, emulator.endpoints, SCENARIO, CONNECTIONS, **settings)
        return anomaly_results(sync_range(load_config(path), first, last))

    return sync


def test_each_anomaly_passes_triggers_with_its_numbers_and_clears(project, tmp_path):
    # Before the change: steady deployments, nothing to report.
    before = project(date(2026, 10, 1), CHANGE - timedelta(days=1))
    assert all(passed for passed, _ in before.values()), before

    # The change: the trailing window is read back from the warehouse the first sync wrote.
    during = project(CHANGE, date(2026, 11, 7))
    assert not any(passed for passed, _ in during.values()), during
    spike, drop, silent, new = (during[name][1] for name in ANOMALY_CHECKS)
    assert (
        f"aoai-activity/jumpy on {CHANGE}: {total_tokens('jumpy', CHANGE):,} total tokens vs median "
        f"{trailing_median('jumpy', CHANGE):,.0f}"
    ) in spike
    assert (
        f"aoai-activity/dipper on {CHANGE}: {total_tokens('dipper', CHANGE):,} total tokens vs median "
        f"{trailing_median('dipper', CHANGE):,.0f}"
    ) in drop
    assert (
        f"aoai-activity/stopper on {CHANGE}: no usage after total tokens on 14 of the 14 day(s) before "
        f"(median {trailing_median('stopper', CHANGE):,.0f})"
    ) in silent
    assert f"aoai-activity/fresh on {CHANGE}: {total_tokens('fresh', CHANGE):,} total tokens after none" in new
    assert "1 new deployment(s)" in new
    for text, only in ((spike, "jumpy"), (drop, "dipper"), (silent, "stopper")):
        others = {d.name for d in ACCOUNT.deployments} - {only}
        assert not any(f"aoai-activity/{name} on" in text for name in others), text
    # `stopper` is reported while its trailing 14 days still show steady use (>= 7 days of use), then not.
    assert "8 deployment-day(s) silent" in silent and f"stopper on {CHANGE + timedelta(days=8)}" not in silent

    # Two weeks on, the new levels are the baseline; the stopped deployment is no longer in steady use.
    # late-stop (silent from 2026-11-18) and late-jump (20x on 2026-11-18) change on days not final yet.
    after = project(date(2026, 11, 8), date(2026, 11, 19))
    assert all(passed for passed, _ in after.values()), after
    assert "10 final day(s) judged" in after["usage_spike"][1]

    # The same days once final (settle_hours 0): the late changes are reported, so only finality held them.
    final = project(date(2026, 11, 8), date(2026, 11, 19), settle_hours=0)
    assert "aoai-activity/late-jump on 2026-11-18" in final["usage_spike"][1]
    assert "aoai-activity/late-stop on 2026-11-18" in final["deployment_silent"][1]
    assert "12 final day(s) judged" in final["usage_spike"][1]

    # And the warehouse still holds exactly the generator's usage.
    config = load_config(tmp_path / "connections.yaml")
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        actual = con.execute("SELECT * FROM azure_openai.usage_daily WHERE usage_date < '2026-11-08' ORDER BY ALL").pl()
    expected = expected_usage(
        SCENARIO, date(2026, 10, 1), date(2026, 11, 7), CONNECTIONS, synced_at=SCENARIO.current_time()
    )
    assert actual.height == expected.height > 0
    actual_keys = actual.select("usage_date", "deployment", "total_tokens").sort("usage_date", "deployment")
    assert_frame_equal(
        actual_keys, expected.select(actual_keys.columns).sort("usage_date", "deployment"), check_dtypes=False
    )
