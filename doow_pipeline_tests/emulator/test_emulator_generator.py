"""The emulator's deterministic usage generator and its scenarios, without the HTTP layer.

Properties (hypothesis): windows add up (hours = days = whole range, any split minute), total = input +
output in every window, expected_daily_usage agrees with the per-window generator. Facts: determinism,
daily means, version upgrades, active dates, metric families, and what the demo and scale scenarios
promise to the tests and benchmarks that use them.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO, SCALE_SCENARIO
from doow_pipeline_tests.azure_emulator.catalogue import AZURE_OPENAI, METRICS, MODELS, metrics_for_families
from doow_pipeline_tests.azure_emulator.scenario import Principal, load_scenario, scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import (
    EMPTY,
    atom_amount,
    daily_totals,
    day_usage,
    expected_daily_usage,
    metric_atoms,
)
from doow_pipeline_tests.demo import EMPTY_SCOPE, EXPIRED, NO_USAGE, ONE_ACCOUNT, RG_READER
from doow_pipeline_tests.demo import MAIN_PRINCIPAL as MAIN

DEMO = load_scenario(DEMO_SCENARIO)
UTC = UTC
QUANTITIES = ("input_tokens", "output_tokens", "total_tokens", "requests")
AI_KINDS = ("OpenAI", "AIServices")


GENERATOR_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _start(day: date) -> datetime:
    return datetime.combine(day, dtime(0), tzinfo=UTC)


def _covers(scope: str, target: str) -> bool:
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return target == scope or target.startswith(scope + "/")


def _account(name: str):
    return next(a for a in DEMO.accounts if a.name == name)


def _deployment(account_name: str, deployment_name: str):
    account = _account(account_name)
    return account, next(d for d in account.deployments if d.name == deployment_name)


def _metric(name: str):
    return next(m for m in METRICS if m.name == name)


# Every (account, deployment, metric) of the demo whose metric carries the deployment's usage.
SERIES = [
    (account, deployment, metric)
    for account in DEMO.accounts
    for deployment in account.deployments
    for metric in metrics_for_families(account.families_for(deployment))
]
DEMO_FIRST_DAY = date(2026, 5, 1)
DEMO_LAST_DAY = date(2026, 11, 19)


def _atoms_of(account, deployment, metric, t0: datetime, t1: datetime):
    return [a for a in metric_atoms(account, metric, t0, t1) if a.deployment.name == deployment.name]


def _amount(account, deployment, metric, quantity: str, t0: datetime, t1: datetime, window: tuple | None = None) -> int:
    """Usage of one deployment in [t0, t1), summed over its version atoms found in `window`."""
    w0, w1 = window or (t0, t1)
    return sum(
        atom_amount(DEMO.seed, account, atom, quantity, t0, t1)
        for atom in _atoms_of(account, deployment, metric, w0, w1)
    )


series_strategy = st.sampled_from(SERIES)


def _series(account_name: str, deployment_name: str, metric_name: str):
    return next(s for s in SERIES if (s[0].name, s[1].name, s[2].name) == (account_name, deployment_name, metric_name))


# Always-tried examples: across the gpt-4o upgrade, the end of gpt-35-turbo-legacy, the start of gpt-5-pilot.
UPGRADE = _series("aoai-prod-weu", "gpt-4o-chat", "TotalTokens")
ENDED = _series("aoai-dev-legacy", "gpt-35-turbo-legacy", "TokenTransaction")
STARTED = _series("aoai-prod-weu", "gpt-5-pilot", "ModelRequests")
day_strategy = st.integers(0, (DEMO_LAST_DAY - DEMO_FIRST_DAY).days - 5).map(
    lambda n: DEMO_FIRST_DAY + timedelta(days=n)
)


# ---------------------------------------------------------------------------------------- window algebra


@GENERATOR_SETTINGS
@given(series=series_strategy, first=day_strategy, days=st.integers(1, 4), start_hour=st.integers(0, 23))
@example(series=UPGRADE, first=date(2026, 10, 13), days=3, start_hour=12)
@example(series=ENDED, first=date(2026, 10, 30), days=3, start_hour=0)
@example(series=STARTED, first=date(2026, 11, 8), days=4, start_hour=7)
def test_hourly_windows_sum_to_daily_windows_and_the_whole_range(series, first, days, start_hour):
    """Over a range aligned to the query start (any whole hour), ΣPT1H = ΣP1D = FULL, per quantity."""
    account, deployment, metric = series
    t0 = _start(first) + timedelta(hours=start_hour)
    t1 = t0 + timedelta(days=days)
    window = (t0, t1)
    for quantity in QUANTITIES:
        whole = _amount(account, deployment, metric, quantity, t0, t1)
        daily = sum(
            _amount(account, deployment, metric, quantity, t0 + timedelta(days=i), t0 + timedelta(days=i + 1), window)
            for i in range(days)
        )
        hourly = sum(
            _amount(account, deployment, metric, quantity, t0 + timedelta(hours=h), t0 + timedelta(hours=h + 1), window)
            for h in range(24 * days)
        )
        assert hourly == daily == whole, (quantity, hourly, daily, whole)


@GENERATOR_SETTINGS
@given(
    series=series_strategy,
    first=day_strategy,
    start=st.integers(0, 3 * 1440),
    length=st.integers(1, 3 * 1440),
    split=st.floats(0, 1),
)
@example(series=UPGRADE, first=date(2026, 10, 14), start=600, length=1440, split=0.5)
@example(series=ENDED, first=date(2026, 10, 31), start=1439, length=3, split=0.34)
def test_windows_are_additive_at_any_split_minute(series, first, start, length, split):
    account, deployment, metric = series
    t0 = _start(first) + timedelta(minutes=start)
    t1 = t0 + timedelta(minutes=length)
    tm = t0 + timedelta(minutes=int(length * split))
    window = (t0, t1)
    for quantity in QUANTITIES:
        left = _amount(account, deployment, metric, quantity, t0, tm, window)
        right = _amount(account, deployment, metric, quantity, tm, t1, window)
        assert left + right == _amount(account, deployment, metric, quantity, t0, t1), quantity


@GENERATOR_SETTINGS
@given(series=series_strategy, first=day_strategy, start=st.integers(0, 2 * 1440), length=st.integers(0, 2 * 1440))
@example(series=UPGRADE, first=date(2026, 10, 14), start=1000, length=700)
def test_total_tokens_equal_input_plus_output_in_any_window(series, first, start, length):
    account, deployment, metric = series
    t0 = _start(first) + timedelta(minutes=start)
    t1 = t0 + timedelta(minutes=length)
    for atom in _atoms_of(account, deployment, metric, t0, t1):
        total = atom_amount(DEMO.seed, account, atom, "total_tokens", t0, t1)
        parts = atom_amount(DEMO.seed, account, atom, "input_tokens", t0, t1) + atom_amount(
            DEMO.seed, account, atom, "output_tokens", t0, t1
        )
        assert total == parts


def test_every_minute_bucket_of_a_day_adds_up_to_the_day():
    """The finest grain (PT1M) over one full day equals the P1D bucket, for every quantity."""
    account, deployment = _deployment("aoai-prod-weu", "gpt-4o-chat")
    metric = _metric("TokenTransaction")
    t0 = _start(date(2026, 11, 1))
    (atom,) = _atoms_of(account, deployment, metric, t0, t0 + timedelta(days=1))
    for quantity in QUANTITIES:
        minutes = [
            atom_amount(DEMO.seed, account, atom, quantity, t0 + timedelta(minutes=m), t0 + timedelta(minutes=m + 1))
            for m in range(1440)
        ]
        assert all(v >= 0 for v in minutes)
        assert sum(minutes) == atom_amount(DEMO.seed, account, atom, quantity, t0, t0 + timedelta(days=1))

    # The daily rhythm: busier at noon than at 03:00 UTC.
    def hour(h: int) -> int:
        return atom_amount(
            DEMO.seed, account, atom, "input_tokens", t0 + timedelta(hours=h), t0 + timedelta(hours=h + 1)
        )

    assert hour(12) > 3 * hour(0)


# ---------------------------------------------------------------------------------------- expected_daily_usage

CHECK_FIRST, CHECK_LAST = date(2026, 10, 1), date(2026, 11, 19)  # spans the upgrade, the end and the new start


@pytest.fixture(scope="module")
def demo_rows():
    return expected_daily_usage(DEMO, CHECK_FIRST, CHECK_LAST)


def test_expected_daily_usage_equals_the_generator_per_day(demo_rows):
    assert demo_rows
    by_account = {a.id: a for a in DEMO.accounts}
    for row in demo_rows:
        account = by_account[row["resource_id"]]
        t0 = _start(row["day"])
        for metric in (m for m in METRICS if m.family == row["family"]):
            atoms = [
                a
                for a in metric_atoms(account, metric, t0, t0 + timedelta(days=1))
                if a.deployment.name == row["deployment"] and a.version == row["version"]
            ]
            assert len(atoms) == 1, (row, metric.name)
            atom = atoms[0]
            assert (
                atom_amount(DEMO.seed, account, atom, metric.quantity, t0, t0 + timedelta(days=1))
                == row[metric.quantity]
            )
            assert atom.value_of("region") == (row["region"] if row["region"] is not None else EMPTY)
            assert atom.value_of("modelversion") == row["version"]
            if "ModelName" in metric.dimensions:
                assert atom.value_of("modelname") == row["model"]
        assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]


def test_expected_daily_usage_is_complete(demo_rows):
    """Every (day, account, deployment, version, family) with usage in the generator has its row."""
    keys = {(r["day"], r["resource_id"], r["deployment"], r["version"], r["family"]) for r in demo_rows}
    assert len(keys) == len(demo_rows), "one row per grain"
    day = CHECK_FIRST
    found = 0
    while day <= CHECK_LAST:
        t0 = _start(day)
        for account in DEMO.accounts:
            for metric in metrics_for_families(account.families):
                for atom in metric_atoms(account, metric, t0, t0 + timedelta(days=1)):
                    if atom_amount(DEMO.seed, account, atom, metric.quantity, t0, t0 + timedelta(days=1)):
                        assert (day, account.id, atom.deployment.name, atom.version, metric.family) in keys
                        found += 1
        day += timedelta(days=1)
    assert found


def test_expected_daily_usage_totals_per_grain_match_sums_of_hours():
    """Rolled up per (account, deployment, version, family), the daily rows equal Σ of hourly windows."""
    first, last = date(2026, 10, 13), date(2026, 10, 17)
    rows = expected_daily_usage(DEMO, first, last)
    totals = defaultdict(int)
    for r in rows:
        totals[(r["resource_id"], r["deployment"], r["version"], r["family"])] += r["input_tokens"]
    t0, t1 = _start(first), _start(last + timedelta(days=1))
    for account in DEMO.accounts:
        for family in account.families:
            metric = next(m for m in METRICS if m.family == family and m.quantity == "input_tokens")
            for atom in metric_atoms(account, metric, t0, t1):
                hours = sum(
                    atom_amount(
                        DEMO.seed, account, atom, "input_tokens", t0 + timedelta(hours=h), t0 + timedelta(hours=h + 1)
                    )
                    for h in range(24 * 5)
                )
                assert hours == totals.get((account.id, atom.deployment.name, atom.version, family), 0)


# ---------------------------------------------------------------------------------------- determinism, means


def test_same_seed_same_values_other_seed_different_values():
    again = load_scenario(DEMO_SCENARIO)
    first = expected_daily_usage(DEMO, date(2026, 11, 1), date(2026, 11, 7))
    assert expected_daily_usage(again, date(2026, 11, 1), date(2026, 11, 7)) == first
    with open(DEMO_SCENARIO, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    raw["seed"] = 8
    other = expected_daily_usage(scenario_from_dict(raw), date(2026, 11, 1), date(2026, 11, 7))
    assert [(r["day"], r["resource_id"], r["deployment"], r["family"]) for r in other] == [
        (r["day"], r["resource_id"], r["deployment"], r["family"]) for r in first
    ]
    differing = sum(a["input_tokens"] != b["input_tokens"] for a, b in zip(first, other, strict=True))
    assert differing > 0.9 * len(first)


def test_generator_is_pinned():
    """Golden values: a change to the hash, the factors or the rhythm shows up here first."""
    account, deployment = _deployment("aoai-prod-weu", "gpt-4o-chat")
    assert daily_totals(7, account.id, deployment.name, date(2026, 11, 1)) == PINNED_FACTORS
    assert day_usage(7, account, deployment, date(2026, 11, 1)) == PINNED_DAY


PINNED_FACTORS = (1060, 1488, 1078)  # thousandths of the mean: (input, output, requests)
PINNED_DAY = (25_440_000, 8_928_000, 17_248)  # gpt-4o-chat means 24M / 6M / 16k times the factors


def _synthetic(deployments: list[dict], seed: int = 7, families=("azure_openai", "models"), kind="AIServices"):
    return scenario_from_dict(
        {
            "seed": seed,
            "tenants": [
                {
                    "id": "00000000-0000-0000-0000-0000000000aa",
                    "subscriptions": [
                        {
                            "id": "00000000-0000-0000-0000-0000000000bb",
                            "resource_groups": [
                                {
                                    "name": "rg",
                                    "accounts": [
                                        {
                                            "name": "acct",
                                            "kind": kind,
                                            "location": "eastus",
                                            "families": list(families),
                                            "deployments": deployments,
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )


def test_daily_means_average_the_declared_means():
    means = [(1_000_000, 250_000, 4_000), (30_000_000, 0, 25_000), (120_000, 90_000, 150)]
    scenario = _synthetic(
        [
            {
                "name": f"d{i}",
                "model": "gpt-4o",
                "version": "1",
                "region": "eastus",
                "daily": {"input_tokens": m[0], "output_tokens": m[1], "requests": m[2]},
                "active": {"from": "2015-01-01"},
            }
            for i, m in enumerate(means)
        ]
    )
    account = scenario.accounts[0]
    days = [date(2015, 1, 1) + timedelta(days=i) for i in range(3000)]
    for deployment, declared in zip(account.deployments, means, strict=True):
        sums = [0, 0, 0]
        for day in days:
            for i, v in enumerate(day_usage(scenario.seed, account, deployment, day)):
                sums[i] += v
        for total, mean in zip(sums, declared, strict=True):
            if mean == 0:
                assert total == 0
            else:
                assert abs(total / len(days) / mean - 1) < 0.03, (deployment.name, total / len(days), mean)
    # Each day stays within 0.4x .. 1.6x of the mean.
    factors = [daily_totals(scenario.seed, account.id, "d0", day) for day in days[:500]]
    assert all(400 <= f < 1600 for triple in factors for f in triple)


# ---------------------------------------------------------------------------------------- versions, activity


def test_version_upgrade_switches_on_the_upgrade_day():
    account, deployment = _deployment("aoai-prod-weu", "gpt-4o-chat")
    assert deployment.version_on(date(2026, 10, 14)) == "2024-08-06"
    assert deployment.version_on(date(2026, 10, 15)) == "2024-11-20"
    metric = _metric("InputTokens")
    t0, t1 = _start(date(2026, 10, 14)), _start(date(2026, 10, 16))
    atoms = {a.version: a for a in _atoms_of(account, deployment, metric, t0, t1)}
    assert set(atoms) == {"2024-08-06", "2024-11-20"}
    day1, day2 = (t0, t0 + timedelta(days=1)), (t0 + timedelta(days=1), t1)
    assert atom_amount(DEMO.seed, account, atoms["2024-08-06"], "input_tokens", *day1) > 0
    assert atom_amount(DEMO.seed, account, atoms["2024-08-06"], "input_tokens", *day2) == 0
    assert atom_amount(DEMO.seed, account, atoms["2024-11-20"], "input_tokens", *day1) == 0
    assert atom_amount(DEMO.seed, account, atoms["2024-11-20"], "input_tokens", *day2) > 0
    # Only the new version after the upgrade, only the old one before.
    assert [
        a.version for a in _atoms_of(account, deployment, metric, _start(date(2026, 11, 1)), _start(date(2026, 11, 2)))
    ] == ["2024-11-20"]
    assert [
        a.version for a in _atoms_of(account, deployment, metric, _start(date(2026, 9, 1)), _start(date(2026, 9, 2)))
    ] == ["2024-08-06"]
    rows = expected_daily_usage(DEMO, date(2026, 10, 14), date(2026, 10, 15))
    versions = {(r["day"], r["version"]) for r in rows if r["deployment"] == "gpt-4o-chat"}
    assert versions == {(date(2026, 10, 14), "2024-08-06"), (date(2026, 10, 15), "2024-11-20")}


def test_several_upgrades_apply_in_date_order():
    scenario = _synthetic(
        [
            {
                "name": "d",
                "model": "gpt-4o",
                "version": "v1",
                "region": "eastus",
                "daily": {"input_tokens": 100000, "output_tokens": 1000, "requests": 10},
                "upgrades": [{"on": "2026-03-01", "version": "v3"}, {"on": "2026-02-01", "version": "v2"}],
            }
        ]
    )
    deployment = scenario.accounts[0].deployments[0]
    assert [deployment.version_on(date(2026, m, 15)) for m in (1, 2, 3)] == ["v1", "v2", "v3"]


def test_inactive_days_give_zero():
    legacy_account, legacy = _deployment("aoai-dev-legacy", "gpt-35-turbo-legacy")
    pilot_account, pilot = _deployment("aoai-prod-weu", "gpt-5-pilot")
    assert legacy.active_to == date(2026, 10, 31) and pilot.active_from == date(2026, 11, 10)
    assert any(day_usage(DEMO.seed, legacy_account, legacy, date(2026, 10, 31)))
    assert day_usage(DEMO.seed, legacy_account, legacy, date(2026, 11, 1)) == (0, 0, 0)
    assert day_usage(DEMO.seed, pilot_account, pilot, date(2026, 11, 9)) == (0, 0, 0)
    assert any(day_usage(DEMO.seed, pilot_account, pilot, date(2026, 11, 10)))
    metric = _metric("ProcessedPromptTokens")
    # A window over inactive days only: no atoms; an atom of a wider window reads zero there.
    assert _atoms_of(legacy_account, legacy, metric, _start(date(2026, 11, 1)), _start(date(2026, 11, 10))) == []
    (atom,) = _atoms_of(legacy_account, legacy, metric, _start(date(2026, 10, 30)), _start(date(2026, 11, 3)))
    assert (
        atom_amount(
            DEMO.seed, legacy_account, atom, "input_tokens", _start(date(2026, 11, 1)), _start(date(2026, 11, 3))
        )
        == 0
    )
    (atom,) = _atoms_of(pilot_account, pilot, metric, _start(date(2026, 11, 8)), _start(date(2026, 11, 12)))
    assert (
        atom_amount(DEMO.seed, pilot_account, atom, "requests", _start(date(2026, 11, 8)), _start(date(2026, 11, 10)))
        == 0
    )
    rows = expected_daily_usage(DEMO, date(2026, 10, 25), date(2026, 11, 15))
    legacy_days = {r["day"] for r in rows if r["deployment"] == legacy.name}
    pilot_days = {r["day"] for r in rows if r["deployment"] == pilot.name}
    assert max(legacy_days) == date(2026, 10, 31)
    assert min(pilot_days) == date(2026, 11, 10)
    # Nothing at all for the account without deployments.
    assert not [r for r in rows if r["resource_id"] == _account("aoai-dev-sandbox").id]


def test_non_openai_models_appear_only_in_the_models_family(demo_rows):
    non_openai = [(a, d) for a in DEMO.accounts for d in a.deployments if not d.is_openai]
    assert {d.model for _, d in non_openai} >= {"Phi-4", "DeepSeek-R1", "Mistral-Large-2411"}
    for account, deployment in non_openai:
        assert account.kind == "AIServices"
        assert account.families_for(deployment) == (MODELS,)
        t0 = _start(date(2026, 11, 1))
        for metric in METRICS:
            atoms = _atoms_of(account, deployment, metric, t0, t0 + timedelta(days=1))
            assert bool(atoms) == (metric.family == MODELS), (deployment.name, metric.name)
    non_openai_names = {(a.id, d.name) for a, d in non_openai}
    assert {r["family"] for r in demo_rows if (r["resource_id"], r["deployment"]) in non_openai_names} == {MODELS}

    # OpenAI models appear in every family the account emits, with equal values in both.
    grouped = defaultdict(dict)
    for r in demo_rows:
        grouped[(r["day"], r["resource_id"], r["deployment"], r["version"])][r["family"]] = r
    both = [g for g in grouped.values() if len(g) == 2]
    assert both
    for g in both:
        assert {q: g[AZURE_OPENAI][q] for q in QUANTITIES} == {q: g[MODELS][q] for q in QUANTITIES}
    for r in demo_rows:
        account = next(a for a in DEMO.accounts if a.id == r["resource_id"])
        assert r["family"] in account.families


def test_legacy_token_metrics_have_no_model_name_dimension():
    account, deployment = _deployment("aoai-prod-eus", "gpt-4o-global")
    t0 = _start(date(2026, 11, 1))
    (atom,) = _atoms_of(account, deployment, _metric("TokenTransaction"), t0, t0 + timedelta(days=1))
    with pytest.raises(KeyError):
        atom.value_of("modelname")
    assert atom.value_of("region") == EMPTY  # region: null in the scenario -> "__Empty"
    assert atom.value_of("modeldeploymentname") == "gpt-4o-global"


# ---------------------------------------------------------------------------------------- the demo scenario


def _principal(client_id: str) -> Principal:
    return DEMO.principals[client_id]


def _ai_accounts(accounts):
    return [a for a in accounts if a.kind in AI_KINDS]


def test_demo_scenario_settings():
    assert DEMO_SCENARIO.is_file()
    assert DEMO.seed == 7
    assert DEMO.now == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    assert DEMO.ingestion_delay_minutes == 5
    assert DEMO.retention_days == 93
    assert len(DEMO.tenants) == 1
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", DEMO.tenants[0].id)


def test_demo_estate_shape():
    subscriptions = DEMO.tenants[0].subscriptions
    with_ai = [s for s in subscriptions if _ai_accounts(a for rg in s.resource_groups for a in rg.accounts)]
    without_ai = [s for s in subscriptions if s not in with_ai]
    assert len(with_ai) == 3 and len(without_ai) == 1
    ai_accounts = _ai_accounts(DEMO.accounts)
    assert {a.location for a in ai_accounts} == {"westeurope", "swedencentral", "eastus", "eastus2"}
    assert {a.kind for a in ai_accounts} == set(AI_KINDS)
    assert [a.kind for a in DEMO.accounts if a.kind not in AI_KINDS] == ["TextAnalytics"]
    deployments = [d for a in DEMO.accounts for d in a.deployments]
    assert len(deployments) >= 30
    assert max(len(a.deployments) for a in DEMO.accounts) > 10
    # Families: some accounts only azure_openai, some only models, most both.
    family_sets = [frozenset(a.families) for a in ai_accounts]
    assert family_sets.count(frozenset({AZURE_OPENAI})) >= 2
    assert family_sets.count(frozenset({MODELS})) >= 1
    assert family_sets.count(frozenset({AZURE_OPENAI, MODELS})) > len(family_sets) / 2
    # Models, upgrades, odd cases.
    models = {d.model for d in deployments}
    assert models >= {
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3-mini",
        "text-embedding-3-large",
        "gpt-5",
        "Phi-4",
        "DeepSeek-R1",
        "Mistral-Large-2411",
    }
    gpt4o = [d for d in deployments if d.model == "gpt-4o" and d.upgrades]
    assert gpt4o and all(
        d.version == "2024-08-06" and d.upgrades == ((date(2026, 10, 15), "2024-11-20"),) for d in gpt4o
    )
    assert [d.name for d in deployments if d.region is None] == ["gpt-4o-global"]
    today = DEMO.now.date()
    assert [d.name for d in deployments if d.active_to is not None and d.active_to < today] == ["gpt-35-turbo-legacy"]
    assert [d.name for d in deployments if d.active_from == today - timedelta(days=10)] == ["gpt-5-pilot"]
    with_history = [
        d for d in deployments if d.active_from is not None and d.active_from <= today - timedelta(days=100)
    ]
    assert len(with_history) >= 0.8 * len(deployments)
    # Means are realistic: 1e5 .. 5e7 tokens a day.
    for d in deployments:
        assert 1e5 <= d.daily.input_tokens + d.daily.output_tokens <= 5e7, d.name
        assert d.daily.requests > 0
    # One resource group holding an OpenAI account without deployments.
    empty_groups = [
        rg
        for s in subscriptions
        for rg in s.resource_groups
        if rg.accounts and all(a.kind == "OpenAI" and not a.deployments for a in rg.accounts)
    ]
    assert len(empty_groups) == 1


def test_demo_has_100_days_of_usage_every_day():
    today = DEMO.now.date()
    rows = expected_daily_usage(DEMO, today - timedelta(days=100), today - timedelta(days=1))
    days = {r["day"] for r in rows}
    assert len(days) == 100
    per_day = defaultdict(int)
    for r in rows:
        per_day[r["day"]] += r["total_tokens"]
    assert min(per_day.values()) > 0


def test_demo_principals():
    tenant = DEMO.tenants[0]
    assert {p.client_id for p in tenant.principals} == {MAIN, RG_READER, EXPIRED, ONE_ACCOUNT, EMPTY_SCOPE, NO_USAGE}
    for p in tenant.principals:
        assert p.secret.startswith("demo-secret-") and "not-a-real-secret" in p.secret
    subscriptions = {s.id: s for s in tenant.subscriptions}
    now = DEMO.now

    def accounts_covered(principal):
        return [a for a in DEMO.accounts if any(_covers(s, a.id) for s in principal.monitoring_reader)]

    # main: subscription scope on exactly two subscriptions (batch API) and one RG of a third one.
    main = _principal(MAIN)
    sub_scopes = [s for s in main.monitoring_reader if re.fullmatch(r"/subscriptions/[^/]+", s)]
    rg_scopes = [s for s in main.monitoring_reader if re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+", s)]
    assert len(sub_scopes) == 2 and len(rg_scopes) == 1 and len(main.monitoring_reader) == 3
    third = rg_scopes[0].split("/")[2]
    assert third not in {s.split("/")[2] for s in sub_scopes}
    unreadable = [
        a for a in _ai_accounts(DEMO.accounts) if a.subscription_id == third and a not in accounts_covered(main)
    ]
    assert [a.name for a in unreadable] == ["ais-research-restricted"]
    assert any(a.subscription_id == third for a in accounts_covered(main))
    # ... yet listed (list_only: accounts/read without Monitoring Reader), so its metrics answer 403.
    assert len(main.list_only) == 1 and _covers(main.list_only[0], unreadable[0].id)
    assert not any(_covers(s, unreadable[0].id) for s in main.monitoring_reader)
    assert main.secret_expires > now

    # rg_reader: Monitoring Reader on one resource group only, holding the >10-deployment account.
    rg_reader = _principal(RG_READER)
    assert len(rg_reader.monitoring_reader) == 1
    assert re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+", rg_reader.monitoring_reader[0])
    assert max(len(a.deployments) for a in accounts_covered(rg_reader)) > 10
    assert all(_covers(sub_scopes[0], a.id) or _covers(sub_scopes[1], a.id) for a in accounts_covered(rg_reader))

    # expired: the secret expired on 2026-09-30, before now.
    expired = _principal(EXPIRED)
    assert expired.secret_expires == datetime(2026, 9, 30, tzinfo=UTC) < now
    assert accounts_covered(expired)

    # one_account: exactly one account id.
    one = _principal(ONE_ACCOUNT)
    assert len(one.monitoring_reader) == 1 and DEMO.account(one.monitoring_reader[0]) is not None
    assert [a.id for a in accounts_covered(one)] == [one.monitoring_reader[0]]

    # empty_scope: one subscription, without any Azure OpenAI account.
    empty = _principal(EMPTY_SCOPE)
    assert len(empty.monitoring_reader) == 1
    assert empty.monitoring_reader[0].split("/")[2] in subscriptions
    assert _ai_accounts(accounts_covered(empty)) == []

    # no_usage: one resource group whose OpenAI account has no deployments, hence no usage.
    no_usage = _principal(NO_USAGE)
    assert len(no_usage.monitoring_reader) == 1
    covered = accounts_covered(no_usage)
    assert covered and all(a.kind == "OpenAI" and not a.deployments for a in covered)
    rows = expected_daily_usage(DEMO, now.date() - timedelta(days=93), now.date())
    assert rows and not [r for r in rows if _covers(no_usage.monitoring_reader[0], r["resource_id"])]


# ---------------------------------------------------------------------------------------- the scale scenario

SCALE = load_scenario(SCALE_SCENARIO)
SCALE_PRINCIPAL = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5b0"


def test_scale_scenario_expands_to_1000_accounts_and_10000_deployments():
    assert SCALE.now == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    assert SCALE.retention_days == 93 and SCALE.latency_ms == 50
    # Azure's documented defaults: the benchmark pays for the pipeline's real call pattern.
    assert SCALE.throttle.arm_reads_bucket == 250 and SCALE.throttle.definitions_per_5min == 400
    assert SCALE.accounts_page_size == 100
    assert len(SCALE.subscriptions) == 4
    assert len(SCALE.accounts) == 1000
    assert sum(len(a.deployments) for a in SCALE.accounts) == 10_000
    assert {a.location for a in SCALE.accounts} == {"eastus", "westeurope", "swedencentral"}
    assert {a.kind for a in SCALE.accounts} == set(AI_KINDS)
    per_subscription = defaultdict(int)
    for a in SCALE.accounts:
        per_subscription[a.subscription_id] += 1
    assert sorted(per_subscription.values()) == [250] * 4
    bench = SCALE.principals[SCALE_PRINCIPAL]
    assert sorted(s.lower() for s in bench.monitoring_reader) == sorted(
        f"/subscriptions/{s}" for s in SCALE.subscriptions
    )
    assert SCALE.tenants[0].id == DEMO.tenants[0].id


def test_scale_expected_daily_usage_over_90_days(capsys):
    last = SCALE.now.date() - timedelta(days=1)
    first = last - timedelta(days=89)
    daily_totals.cache_clear()
    started = time.perf_counter()
    rows = expected_daily_usage(SCALE, first, last)
    elapsed = time.perf_counter() - started
    try:
        assert len({r["day"] for r in rows}) == 90
        assert len({r["resource_id"] for r in rows}) == 1000
        openai_deployments = sum(1 for a in SCALE.accounts for d in a.deployments if d.is_openai)
        other_deployments = 10_000 - openai_deployments
        assert len(rows) == 90 * (2 * openai_deployments + other_deployments)
    finally:
        count = len(rows)
        del rows
        daily_totals.cache_clear()  # do not keep 900k cached deployment-days for the rest of the session
    with capsys.disabled():
        print(f"\nexpected_daily_usage(scale, 90 days): {count} rows in {elapsed:.2f} s")
