"""Azure as it really is (issue 8): batch refusals judged by behaviour, answers checked against the request.

Each case ends with the tables of a fault-free run (usage_daily and metric_points value for value) on the
API the rule says (accounts.metrics_api), or, for days Azure never answers, with ERROR events and those days
not landed. Faults and quirks are the emulator's (faults.py: custom status and body; quirks.py: trimming).
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from doow_pipeline.config import load_config
from doow_pipeline.defs.runs import sync_range
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.demo import MAIN_PRINCIPAL, PROD, RESEARCH
from doow_pipeline_tests.project import ConnectionSpec, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=5)
PROD_SPEC = ConnectionSpec("prod", MAIN_PRINCIPAL, PROD)
RESEARCH_SPEC = ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH)
DATA_TABLES = ("usage_daily", "metric_points")
PROD_BATCH = PROD.lstrip("/") + "/metrics:getBatch"  # a path regex: Prod's getBatch calls only

# Every refusal Azure may send for getBatch: the documented token codes, the emulator's guess for "no role at
# subscription scope", Azure's codes for a missing role and an unregistered provider, and codes nobody knows.
REFUSALS = [
    (401, "Unauthorized"),
    (401, "ExpiredAuthenticationToken"),
    (401, "InvalidAuthenticationToken"),
    (401, "AuthenticationFailed"),
    (401, "InvalidAuthenticationTokenAudience"),
    (401, "SomeFutureCode"),
    (403, "AuthorizationFailed"),
    (403, "MissingSubscriptionRegistration"),
    (403, "SomeFutureCode"),
]


def refusal(status: int, code: str, **when) -> list[dict]:
    return [
        {
            "match": PROD_BATCH,
            "action": {"status": status},
            **when,
            "body": {"error": {"code": code, "message": f"Refused for the test ({code})."}},
        }
    ]


def data_hashes(warehouse) -> dict[str, str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t: hashlib.sha256(
                repr(con.execute(f"SELECT * FROM azure_openai.{t} ORDER BY ALL").fetchall()).encode()
            ).hexdigest()
            for t in DATA_TABLES
        }


def query(warehouse, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def environment():
    saved = dict(os.environ)
    for spec in (PROD_SPEC, RESEARCH_SPEC):
        os.environ[secret_env_name(spec.name)] = SCENARIO.principals[spec.client_id.lower()].secret
    yield
    os.environ.clear()
    os.environ.update(saved)


def sync(workdir: Path, emulator, specs: list[ConnectionSpec]):
    config = load_config(write_project(workdir, emulator.endpoints, SCENARIO, specs, step_retries=0))
    reports = sync_range(config, FIRST, LAST)
    assert all(r.success for r in reports), [(r.job, r.failure) for r in reports if not r.success]
    return config


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, emulator, environment) -> dict[str, str]:
    emulator.clear_faults()
    config = sync(tmp_path_factory.mktemp("baseline"), emulator, [PROD_SPEC])
    assert query(config.warehouse_path, "SELECT DISTINCT metrics_api FROM azure_openai.accounts") == [("batch",)]
    return data_hashes(config.warehouse_path)


def metrics_api(config) -> set[str]:
    return {r[0] for r in query(config.warehouse_path, "SELECT DISTINCT metrics_api FROM azure_openai.accounts")}


@pytest.mark.parametrize(("status", "code"), REFUSALS)
def test_a_refusal_once_is_healed_by_a_fresh_token_and_stays_on_the_batch_api(
    status, code, tmp_path, emulator, environment, baseline
):
    emulator.clear_faults()
    emulator.add_faults(refusal(status, code, nth=[1]))
    emulator.clear_requests()
    try:
        config = sync(tmp_path, emulator, [PROD_SPEC])
    finally:
        emulator.clear_faults()
    assert metrics_api(config) == {"batch"}
    assert data_hashes(config.warehouse_path) == baseline
    log = emulator.requests()
    refused = next(e for e in log if e["kind"] == "batch" and e["status"] == status)
    after = [e for e in log if e["seq"] > refused["seq"]]
    # The next thing asked of Entra ID is a new token, then getBatch answers.
    assert [e["kind"] for e in after if e["kind"] in ("token", "batch")][:2] == ["token", "batch"]
    assert query(
        config.warehouse_path, "SELECT count(*) FROM azure_openai.sync_events WHERE code = 'batch_not_allowed'"
    ) == [(0,)]


@pytest.mark.parametrize(("status", "code"), REFUSALS)
def test_a_refusal_also_with_a_fresh_token_moves_the_subscription_to_the_per_resource_api(
    status, code, tmp_path, emulator, environment, baseline
):
    emulator.clear_faults()
    emulator.add_faults(refusal(status, code))
    emulator.clear_requests()
    try:
        config = sync(tmp_path, emulator, [PROD_SPEC])
    finally:
        emulator.clear_faults()
    assert metrics_api(config) == {"per_resource"}
    assert data_hashes(config.warehouse_path) == baseline
    assert sum(1 for e in emulator.requests("batch")) == 2  # the first call and its fresh-token retry, no more
    (message,) = [
        r[0]
        for r in query(
            config.warehouse_path, "SELECT message FROM azure_openai.sync_events WHERE code = 'batch_not_allowed'"
        )
    ]
    assert f"HTTP {status}" in message and code in message and f"Refused for the test ({code})." in message


def demo_with_quirks(**quirks) -> dict:
    raw = yaml.safe_load(Path(DEMO_SCENARIO).read_text(encoding="utf-8"))
    raw["quirks"] = quirks
    return raw


@pytest.mark.parametrize(
    "quirks",
    [{"trim_max_buckets": 2}, {"trim_max_span": "P3D"}, {"trim_max_buckets": 4, "trim_batch": False}],
    ids=["two-buckets", "three-days", "per-resource-only"],
)
def test_a_trimmed_window_ends_with_the_fault_free_tables(quirks, tmp_path, emulator_factory, environment, baseline):
    trimming = emulator_factory(demo_with_quirks(**quirks))
    config = sync(tmp_path, trimming, [PROD_SPEC, RESEARCH_SPEC])
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        prod_only = {
            t: hashlib.sha256(
                repr(
                    con.execute(f"SELECT * FROM azure_openai.{t} WHERE connection = 'prod' ORDER BY ALL").fetchall()
                ).encode()
            ).hexdigest()
            for t in DATA_TABLES
        }
        unanswered = con.execute("SELECT count(*) FROM azure_openai.sync_events WHERE level = 'ERROR'").fetchone()[0]
    assert unanswered == 0
    assert prod_only == baseline
    # Azure did trim (it keeps the end, moves the start): the pipeline asked again for the earlier days, in
    # windows ending before the first asked end.
    trimmed_kind = "metrics" if quirks.get("trim_batch") is False else "batch"
    first_end = f"{LAST + timedelta(days=1)}T00:00:00Z"
    re_asked = [e for e in trimming.requests(trimmed_kind) if first_end not in str(e["query"])]
    assert re_asked, "no window was asked again: the quirk did not trim"


def test_days_azure_never_answers_are_error_events_and_are_not_landed(tmp_path, emulator, environment):
    account = "aoai-research-eus2"
    metrics = (
        "InputTokens",
        "OutputTokens",
        "TotalTokens",
        "ModelRequests",
        "AzureOpenAIRequests",
        "ProcessedPromptTokens",
        "GeneratedTokens",
        "TokenTransaction",
    )
    rid = next(a.id for a in SCENARIO.accounts if a.name == account)
    # Whatever is asked, Azure answers only the last day (a 200 with a shorter timespan).
    body = {
        "timespan": f"{LAST}T00:00:00Z/{NOW.date()}T00:00:00Z",
        "interval": "P1D",
        "cost": 0,
        "namespace": "microsoft.cognitiveservices/accounts",
        "resourceregion": "eastus2",
        "value": [
            {
                "id": f"{rid}/providers/Microsoft.Insights/metrics/{m}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": m, "localizedValue": m},
                "unit": "Count",
                "timeseries": [],
                "errorCode": "Success",
            }
            for m in metrics
        ],
    }
    emulator.clear_faults()
    emulator.add_faults(
        [
            {
                "match": f"accounts/{account}/providers/Microsoft.Insights/metrics$",
                "action": {"status": 200},
                "body": body,
            }
        ]
    )
    try:
        config = sync(tmp_path, emulator, [RESEARCH_SPEC])
    finally:
        emulator.clear_faults()
    events = query(
        config.warehouse_path,
        "SELECT level, message, resource FROM azure_openai.sync_events WHERE code = 'days_unanswered'",
    )
    assert events and all(level == "ERROR" and account in str(resource) for level, _, resource in events)
    assert all(f"{FIRST} to {LAST - timedelta(days=1)}" in message for _, message, _ in events)
    landed = {
        r[0]
        for r in query(config.warehouse_path, "SELECT usage_date FROM azure_openai.syncs WHERE connection = 'research'")
    }
    assert landed == {LAST}  # the unanswered days are not landed, for any account of the connection
    days = {r[0] for r in query(config.warehouse_path, "SELECT DISTINCT usage_date FROM azure_openai.usage_daily")}
    assert days <= {LAST}


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (refusal(401, "InvalidAuthenticationToken", nth=[1]), "batch API allowed"),
        (refusal(403, "SomeFutureCode"), "per-resource API will be used by the sync"),
        (refusal(401, "ExpiredAuthenticationToken"), "per-resource API will be used by the sync"),
    ],
    ids=["401-once", "403-unknown-code", "401-token-code-persistent"],
)
def test_connect_reports_the_api_the_sync_will_use(fault, expected, tmp_path, emulator):
    from doow_pipeline_tests.cli_support import CliProject, restore_environ

    snapshot = dict(os.environ)
    emulator.clear_faults()
    emulator.add_faults(fault)
    try:
        result = CliProject(tmp_path / "project").connect(
            "prod", MAIN_PRINCIPAL, PROD, endpoints=emulator.endpoints, expect=0
        )
    finally:
        emulator.clear_faults()
        restore_environ(snapshot)
    text = result.stdout + result.stderr
    assert expected in text, text
    if "per-resource" in expected:
        code = fault[0]["body"]["error"]["code"]
        assert f"HTTP {fault[0]['action']['status']}" in text and code in text, text
