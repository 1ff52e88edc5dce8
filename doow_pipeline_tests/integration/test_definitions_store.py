"""Definitions are read once per account, not once per run (issue 11, item 5).

Calls are counted from the emulator's request log; usage is compared with the usage computed independently
from the scenario (`expected_usage`). A changed estate is a second emulator started with the changed scenario,
on the same landing zone.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from doow_pipeline.config import Connection, Endpoints, Settings
from doow_pipeline.services.definitions import refresh_age
from doow_pipeline.services.fetch import fetch_connection
from doow_pipeline.services.sessions import open_session
from doow_pipeline.warehouse.landing import Landing
from doow_pipeline.warehouse.store import ConnectionRecord, write_partitions
from doow_pipeline_tests.azure_emulator import samples
from doow_pipeline_tests.azure_emulator.scenario import scenario_from_dict
from doow_pipeline_tests.project import ConnectionSpec, expected_usage

pytestmark = pytest.mark.slow

SCOPE = f"/subscriptions/{samples.SUB_A}"
CONNECTION = Connection(
    name="prod",
    tenant_id=samples.TENANT,
    client_id=samples.MAIN_CLIENT,
    client_secret_env="DOOW_SECRET_PROD",
    scope=SCOPE,
)
SPEC = ConnectionSpec("prod", samples.MAIN_CLIENT, SCOPE)
SEC = (samples.SUB_A, "rg-ai", "aoai-sec")
WEU = (samples.SUB_A, "rg-ai", "aoai-weu")
ACCOUNTS = {  # the Azure OpenAI accounts of SUB_A (speech-1 is not one)
    samples.account_id(samples.SUB_A, "rg-ai", name) for name in ("aoai-weu", "foundry-weu", "aoai-sec")
} | {samples.account_id(samples.SUB_A, "rg-us", "aoai-eus")}


def fetch(emu, landing: Landing, first, last, **settings):
    now = emu.scenario.current_time()
    endpoints = Endpoints(**{k: emu.endpoints[k] for k in ("authority", "arm", "metrics", "ca_cert")})
    session = open_session(CONNECTION, samples.MAIN_SECRET, endpoints)
    with session:
        outcome = fetch_connection(session, CONNECTION, Settings(**settings), landing, first, last, now)
    assert outcome.ok, outcome.problem
    return outcome


def definition_reads(emu, since: int) -> list[str]:
    """The resource ids whose metricDefinitions were asked for since request `since`."""
    return sorted(
        r["path"].lower().split("/providers/microsoft.insights/")[0]
        for r in emu.requests(kind="definitions")
        if r["seq"] > since
    )


def last_seq(emu) -> int:
    return max((r["seq"] for r in emu.requests()), default=0)


def lower(ids) -> list[str]:
    return sorted(i.lower() for i in ids)


def warehouse_matches(tmp_path: Path, landing: Landing, raw: dict, first, last) -> None:
    scenario = scenario_from_dict(raw)
    warehouse = tmp_path / f"check-{last_seq_counter()}.duckdb"
    write_partitions(
        warehouse,
        landing.root,
        [ConnectionRecord("prod", samples.TENANT, samples.MAIN_CLIENT, SCOPE, "AzureCloud")],
        [first + timedelta(days=i) for i in range((last - first).days + 1)],
    )
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        actual = con.execute("SELECT * FROM azure_openai.usage_daily").pl()
    expected = expected_usage(scenario, first, last, [SPEC], synced_at=scenario.current_time())
    keys = ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"]
    assert actual.height == expected.height > 0
    assert_frame_equal(
        actual.sort(keys, nulls_last=True),
        expected.select(actual.columns).sort(keys, nulls_last=True),
        check_dtypes=False,
    )


_COUNTER = [0]


def last_seq_counter() -> int:
    _COUNTER[0] += 1
    return _COUNTER[0]


@pytest.fixture
def days():
    now = scenario_from_dict(samples.small_scenario()).current_time()
    last = now.date() - timedelta(days=1)
    return last - timedelta(days=2), last


def test_a_second_sync_of_the_same_range_reads_no_definitions(emulator_factory, tmp_path, days):
    emu = emulator_factory(samples.small_scenario())
    landing = Landing(tmp_path / "landing")
    first, last = days
    start = last_seq(emu)
    fetch(emu, landing, first, last)
    assert lower(definition_reads(emu, start)) == lower(ACCOUNTS)  # a cold sync reads each account once
    stored = json.loads(landing.definitions_path("prod").read_text())
    assert lower(stored["accounts"]) == lower(ACCOUNTS)
    assert "secret" not in landing.definitions_path("prod").read_text().lower()
    start = last_seq(emu)
    fetch(emu, landing, first, last)
    assert definition_reads(emu, start) == []
    warehouse_matches(tmp_path, landing, samples.small_scenario(), first, last)


def test_a_new_account_is_read_once_when_first_seen(emulator_factory, tmp_path, days):
    landing = Landing(tmp_path / "landing")
    first, last = days
    fetch(emulator_factory(samples.small_scenario()), landing, first, last)
    grown = samples.small_scenario()
    rg_us = grown["tenants"][0]["subscriptions"][0]["resource_groups"][1]
    new = {**json.loads(json.dumps(rg_us["accounts"][0])), "name": "aoai-eus-2"}
    rg_us["accounts"].append(new)
    emu = emulator_factory(grown)
    start = last_seq(emu)
    fetch(emu, landing, first, last)
    assert lower(definition_reads(emu, start)) == lower([samples.account_id(samples.SUB_A, "rg-us", "aoai-eus-2")])
    start = last_seq(emu)
    fetch(emu, landing, first, last)
    assert definition_reads(emu, start) == []
    warehouse_matches(tmp_path, landing, grown, first, last)


def test_refresh_ages_are_spread_per_account():
    week = timedelta(days=7)
    ages = [refresh_age(f"/subscriptions/s/resourceGroups/rg/providers/x/accounts/a{i}", week) for i in range(1000)]
    assert all(week / 2 <= age <= week for age in ages)
    per_day = [sum(1 for a in ages if timedelta(days=d) <= a < timedelta(days=d + 1)) for d in range(3, 7)]
    # uniform over the last 3.5 days of the week: about 1,000 / 3.5 = 286 accounts expire on each full day
    assert all(250 <= n <= 320 for n in per_day[1:]) and sum(per_day) == 1000, per_day
    assert refresh_age("/A/B", week) == refresh_age("/a/b", week)  # fixed by the (case-insensitive) id


def test_expired_entries_are_read_again_and_only_those(emulator_factory, tmp_path, days):
    emu = emulator_factory(samples.small_scenario())
    landing = Landing(tmp_path / "landing")
    first, last = days
    fetch(emu, landing, first, last)
    week = timedelta(days=7)
    ages = {rid: refresh_age(rid, week) for rid in ACCOUNTS}
    assert len(set(ages.values())) == len(ages)  # spread: no two accounts share a refresh age
    # Age every entry to halfway between the shortest and the longest refresh age: some are due, some not.
    age = (min(ages.values()) + max(ages.values())) / 2
    path = landing.definitions_path("prod")
    stored = json.loads(path.read_text())
    now = scenario_from_dict(samples.small_scenario()).current_time()
    for entry in stored["accounts"].values():
        entry["read_at"] = (now - age).isoformat()
    path.write_text(json.dumps(stored))
    start = last_seq(emu)
    fetch(emu, landing, first, last)
    due = [rid for rid, refresh in ages.items() if refresh <= age]
    assert 0 < len(due) < len(ACCOUNTS)
    assert lower(definition_reads(emu, start)) == lower(due)
    start = last_seq(emu)
    fetch(emu, landing, first, last, definitions_max_age_days=0)  # 0: read on every sync
    assert lower(definition_reads(emu, start)) == lower(ACCOUNTS)


def test_changed_definitions_are_read_again_and_the_usage_is_right(emulator_factory, tmp_path, days):
    """aoai-eus (alone in its region) and aoai-sec (in a batch chunk with aoai-weu) stop defining the Azure
    OpenAI family and emit the models family instead: the stored plans ask for metrics Azure no longer defines
    (a 400 for each refused chunk), so the accounts of each refused chunk are read again, chunk after chunk,
    and the sync succeeds with the right usage."""
    landing = Landing(tmp_path / "landing")
    first, last = days
    fetch(emulator_factory(samples.small_scenario()), landing, first, last)
    changed = samples.small_scenario()
    groups = changed["tenants"][0]["subscriptions"][0]["resource_groups"]
    for account in groups[0]["accounts"] + groups[1]["accounts"]:
        if account["name"] in ("aoai-eus", "aoai-sec"):
            account["families"] = ["models"]
    emu = emulator_factory(changed)
    start = last_seq(emu)
    outcome = fetch(emu, landing, first, last)
    refused = [r for r in emu.requests(kind="batch") if r["seq"] > start and r["status"] == 400]
    assert len(refused) >= 2  # one per refused chunk (aoai-sec's request-metric query is a chunk of its own)
    changed_ids = {samples.account_id(samples.SUB_A, "rg-us", "aoai-eus"), samples.account_id(*SEC)}
    reads = set(lower(definition_reads(emu, start)))
    # the changed accounts, and at most the unchanged account sharing their refused chunk (whether that chunk is
    # refused depends on which of aoai-sec's two chunks Azure refused first)
    assert set(lower(changed_ids)) <= reads <= set(lower(changed_ids | {samples.account_id(*WEU)}))
    assert not outcome.metric_errors
    stored = json.loads(landing.definitions_path("prod").read_text())
    for name, group in (("aoai-eus", "rg-us"), ("aoai-sec", "rg-ai")):
        entry = stored["accounts"][samples.account_id(samples.SUB_A, group, name).lower()]
        assert "InputTokens" in entry["metrics"] and "ProcessedPromptTokens" not in entry["metrics"]
    warehouse_matches(tmp_path, landing, changed, first, last)


def test_a_corrupt_definitions_file_is_ignored_with_a_warning_and_rebuilt(emulator_factory, tmp_path, days):
    emu = emulator_factory(samples.small_scenario())
    landing = Landing(tmp_path / "landing")
    first, last = days
    path = landing.definitions_path("prod")
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "accounts": {"x": {"resource_id"')  # truncated
    start = last_seq(emu)
    outcome = fetch(emu, landing, first, last)
    warnings = [e for e in outcome.events if "corrupt definitions file" in e.message]
    assert len(warnings) == 1 and str(path) in warnings[0].message
    assert lower(definition_reads(emu, start)) == lower(ACCOUNTS)
    assert lower(json.loads(path.read_text())["accounts"]) == lower(ACCOUNTS)
    warehouse_matches(tmp_path, landing, samples.small_scenario(), first, last)


def test_purge_deletes_the_stored_definitions(tmp_path):
    landing = Landing(tmp_path / "landing")
    landing.write_definitions("prod", {"version": 1, "accounts": {}})
    landing.write_definitions("dev", {"version": 1, "accounts": {}})
    landing.purge("prod")
    assert not landing.definitions_path("prod").exists() and landing.definitions_path("dev").exists()
