"""Azure answers checked before they are trusted, and secrets that stay put, through the real SDKs against the
emulator: mangled values refused per account and day, malformed JSON named (which call, which status, what the
body looked like) and retried, and a token endpoint that echoes the request never leaks the secret."""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import urllib.parse
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
import requests
from typer.testing import CliRunner

from doow_pipeline.cli.app import app
from doow_pipeline.config import load_config
from doow_pipeline.defs.runs import sync_range
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.demo import MAIN_PRINCIPAL, PROD, RESEARCH, TENANT
from doow_pipeline_tests.project import ConnectionSpec, expected_usage, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=6)
SECRET = SCENARIO.principals[MAIN_PRINCIPAL.lower()].secret
CONNECTIONS = [ConnectionSpec("prod", MAIN_PRINCIPAL, PROD), ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH)]
# On the per-resource path (the principal has no role at the Research subscription's scope).
TARGET = (
    f"{RESEARCH}/resourceGroups/rg-research-shared/providers/Microsoft.CognitiveServices/accounts/aoai-research-eus2"
)
GRAIN = ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"]


@pytest.fixture(autouse=True)
def environment():
    saved = dict(os.environ)
    for spec in CONNECTIONS:
        os.environ[secret_env_name(spec.name)] = SECRET
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def emu(emulator):
    emulator.clear_faults()
    emulator.clear_requests()
    yield emulator
    emulator.clear_faults()


def project(workdir: Path, emulator):
    return load_config(write_project(workdir, emulator.endpoints, SCENARIO, CONNECTIONS, step_retries=0))


def usage(config) -> pl.DataFrame:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        frame = con.execute(
            "SELECT usage_date, connection, resource_id, deployment, model_name, model_version, "
            "metric_region, input_tokens, output_tokens, total_tokens FROM azure_openai.usage_daily"
        ).pl()
    return frame.sort(GRAIN, nulls_last=True)


def events(config, code: str) -> list[tuple[str, str]]:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.execute(
            "SELECT connection, message FROM azure_openai.sync_events WHERE code = ? ORDER BY ALL", [code]
        ).fetchall()


def oracle(config, drop: set[tuple[str, object]] = frozenset()) -> pl.DataFrame:
    truth = expected_usage(SCENARIO, FIRST, LAST, CONNECTIONS, NOW, config.settings.settle_hours)
    truth = truth.select(usage(config).columns)
    kept = truth.filter(
        ~pl.struct("resource_id", "usage_date").map_elements(
            lambda key: (key["resource_id"], key["usage_date"]) in drop, return_dtype=pl.Boolean
        )
    )
    return kept.sort(GRAIN, nulls_last=True)


def models_call(emulator) -> dict:
    """The pipeline's per-resource models-family call for TARGET, as the request log recorded it."""
    for entry in emulator.requests("metrics"):
        if entry["path"].lower() == f"{TARGET}/providers/Microsoft.Insights/metrics".lower() and "InputTokens" in entry[
            "query"
        ].get("metricnames", ""):
            return entry
    raise AssertionError("no per-resource models call for the target account was made")


def real_answer(emulator, entry: dict) -> dict:
    """Asks the emulator the very same question, for the answer body the fault will then mangle."""
    token = emulator.credential(TENANT, MAIN_PRINCIPAL, SECRET).get_token("https://management.azure.com/.default")
    response = requests.get(
        f"{emulator.arm}{entry['path']}",
        params=entry["query"],
        verify=emulator.ca_cert,
        headers={"Authorization": f"Bearer {token.token}"},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()


def path_regex(entry: dict) -> str:
    return re.escape(entry["path"]) + r"\?.*metricnames=InputTokens"


def test_duplicate_negative_nan_and_huge_values_are_refused_per_account_and_day(tmp_path, emu):
    clean = project(tmp_path / "clean", emu)
    assert all(r.success for r in sync_range(clean, FIRST, LAST))
    entry = models_call(emu)
    answer = real_answer(emu, entry)
    metric = next(m for m in answer["value"] if m["name"]["value"] == "InputTokens")
    series = next(s for s in metric["timeseries"] if any(p.get("total") for p in s["data"]))
    days = [p["timeStamp"][:10] for p in series["data"]]
    bad = {days[1]: -5.0, days[2]: math.nan, days[3]: 1e30}
    for point in series["data"]:
        if point["timeStamp"][:10] in bad:
            point["total"] = bad[point["timeStamp"][:10]]
    duplicated = json.loads(json.dumps(next(s for s in metric["timeseries"] if s is not series)))
    metric["timeseries"].append(duplicated)  # an identical duplicate series: counted once, never twice
    conflicting = json.loads(json.dumps(duplicated))
    for point in conflicting["data"]:
        if point["timeStamp"][:10] == days[5] and point.get("total"):
            point["total"] += 1000
    metric["timeseries"].append(conflicting)  # ... and one that differs on one day: that day is refused
    emu.add_faults([{"match": path_regex(entry), "action": {"status": 200}, "body_text": json.dumps(answer)}])

    config = project(tmp_path / "mangled", emu)
    reports = sync_range(config, FIRST, LAST)
    assert all(r.success for r in reports), [(r.job, r.failure) for r in reports]
    refused_days = {days[1], days[2], days[3]} | ({days[5]} if conflicting["data"] != duplicated["data"] else set())
    from datetime import date

    drop = {(TARGET, date.fromisoformat(d)) for d in refused_days}
    got, want = usage(config), oracle(config, drop)
    assert got.equals(want), (got.height, want.height)
    # Other accounts, days and the other connection are untouched: exactly the fault-free rows elsewhere.
    assert got.height > 0 and got.filter(pl.col("connection") == "prod").height > 0
    messages = [m for _, m in events(config, "bad_value")]
    for day, words in ((days[1], "negative"), (days[2], "not a number"), (days[3], "above")):
        assert any(f"aoai-research-eus2 on {day}" in m and "InputTokens" in m and words in m for m in messages), (
            day,
            messages,
        )
    assert any("duplicate series" in m and days[5] in m for m in messages), messages
    assert events(config, "duplicate_series")
    failed_checks = [c for r in reports for c in r.failed_checks if c.name.endswith("accounts_readable")]
    assert any("refused values" in c.description for c in failed_checks)


def test_a_malformed_token_answer_is_retried(tmp_path, emu):
    emu.add_faults([{"match": "token", "action": {"status": 200}, "body_text": '{"access_tok', "nth": [1]}])
    config = project(tmp_path, emu)
    reports = sync_range(config, FIRST, LAST)
    assert all(r.success for r in reports), [(r.job, r.failure) for r in reports]
    assert usage(config).equals(oracle(config))


MALFORMED = {
    # what is mangled: (fault, words the failure must contain)
    "token": (
        {"match": "token", "action": {"status": 200}, "body_text": '{"access_tok'},
        ["Entra ID token endpoint", "not a token response", "access_tok"],
    ),
    "token_500": ({"match": "token", "action": {"status": 500}}, ["Entra ID token endpoint answered HTTP 500"]),
    "batch": (
        {"match": "batch", "action": {"status": 200}, "body_text": '{"values": [{"resourceid": '},
        ["batch metrics query for subscription", "metrics:getBatch call answered HTTP 200", '{"values"'],
    ),
    "arm_accounts": (
        {"match": "accounts", "action": {"status": 200}, "body_text": '{"value": [{"id": "/subscr'},
        ["answered HTTP 200", "could not be read", '{"value"'],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_answers_are_named_with_call_status_and_body(tmp_path, emu, case):
    fault, words = MALFORMED[case]
    emu.add_faults([fault])
    config = project(tmp_path, emu)
    reports = sync_range(config, FIRST, LAST, ["prod"])
    failures = " ".join(f"{r.failure} " + " ".join(c.description for c in r.failed_checks) for r in reports)
    for word in words:
        assert word in failures, (word, failures)
    for opaque in ("HTTP None", "no code)", "JSONDecodeError", "DeserializationError. Fix"):
        assert opaque not in failures, failures


# A secret whose form-encoded spelling (as the token request carries it) differs from the raw one.
SPECIAL_SECRET = "Zq8~x+Y/w=v&u%t s!" + "k3" * 8
SPELLINGS = [SPECIAL_SECRET, urllib.parse.quote_plus(SPECIAL_SECRET), urllib.parse.quote(SPECIAL_SECRET, safe="")]
ECHO = (
    f"client_id={MAIN_PRINCIPAL}&client_secret={urllib.parse.quote_plus(SPECIAL_SECRET)}"
    f"&grant_type=client_credentials (raw: {SPECIAL_SECRET})"
)
ECHOES = {
    "json_error": {
        "action": {"status": 401},
        "body": {
            "error": "invalid_client",
            "error_codes": [7000215],
            "error_description": f"AADSTS7000215: Invalid client secret provided. Request body: {ECHO}",
        },
    },
    "not_json": {"action": {"status": 400}, "body_text": f"<html>Bad Request. You sent: {ECHO}</html>"},
}


@pytest.mark.parametrize("case", sorted(ECHOES))
def test_a_token_endpoint_echoing_the_secret_leaks_it_nowhere(tmp_path, emu, case):
    """The echo reaches azure-identity's warning, the failure and the check: none may carry the secret, in any
    spelling, in `doow-azure sync` output, Dagster's event log or its compute logs."""
    emu.add_faults([{"match": "token", **ECHOES[case]}])
    config = project(tmp_path / "project", emu)
    os.environ["DOOW_SECRET_PROD"] = os.environ["DOOW_SECRET_RESEARCH"] = SPECIAL_SECRET
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {"DOOW_CONNECTIONS": str(config.path), "DAGSTER_HOME": str(home)}
    result = CliRunner().invoke(app, ["sync", "--from", str(FIRST), "--to", str(LAST)], env=env, catch_exceptions=False)
    output = result.stdout + result.stderr
    assert result.exit_code == 1, output
    assert len(emu.requests("token")) >= 1
    for spelling in SPELLINGS:
        assert spelling not in output, f"the secret ({spelling!r}) is in the sync output"
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files, "the runs were recorded in DAGSTER_HOME"
    for path in files:
        data = path.read_bytes()
        for spelling in SPELLINGS:
            assert spelling.encode() not in data, f"the secret ({spelling!r}) is in {path}"
    # The event log, read back through its database (compute logs are the other files, checked above).
    texts = []
    for database in [p for p in files if p.suffix == ".db"]:
        with sqlite3.connect(database) as con:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if "event_logs" in tables:
                texts += [r[0] for r in con.execute("SELECT event FROM event_logs")]
    assert any("STEP_SUCCESS" in t or "STEP_FAILURE" in t for t in texts), "the event log was read"
    assert not any(spelling in t for t in texts for spelling in SPELLINGS)
