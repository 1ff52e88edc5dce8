"""Reliability: every fault in the emulator's matrix ends, after at most one plain rerun, with exactly the
tables of a fault-free run (no duplicate, no lost row), and a failed sync never half-writes anything."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import dagster as dg
import duckdb
import pytest

from doow_pipeline.config import load_config
from doow_pipeline.defs.runs import sync_range
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.harness import wait_until
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.cli_support import dagster_home, run_statuses, run_step_started
from doow_pipeline_tests.demo import MAIN_PRINCIPAL, PROD, RESEARCH
from doow_pipeline_tests.project import ConnectionSpec, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=6)
# A subscription on the batch path and one on the per-resource path (with an unreadable account).
CONNECTIONS = [ConnectionSpec("prod", MAIN_PRINCIPAL, PROD), ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH)]
TABLES = ("usage_daily", "metric_points", "accounts")

PROD_WEU = f"{PROD}/resourceGroups/rg-ai-prod-weu/providers/Microsoft.CognitiveServices/accounts/aoai-prod-weu"
PARTIAL_BATCH_BODY = {
    "values": [
        {
            "starttime": f"{FIRST}T00:00:00Z",
            "endtime": f"{LAST}T00:00:00Z",
            "interval": "P1D",
            "namespace": "microsoft.cognitiveservices/accounts",
            "resourceregion": "westeurope",
            "resourceid": PROD_WEU,
            "value": [
                {
                    "id": f"{PROD_WEU}/providers/Microsoft.Insights/metrics/InputTokens",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": "InputTokens", "localizedValue": "Input Tokens"},
                    "unit": "Count",
                    "timeseries": [],
                    "errorCode": "InternalServerError",
                    "errorMessage": "Transient failure reading the metric store.",
                }
            ],
        }
    ]
}

FAULTS = {
    "arm_429_retry_after": [{"match": "metrics", "action": {"status": 429}, "retry_after": 1, "nth": [1, 2]}],
    "batch_529": [{"match": "batch", "action": {"status": 529}, "retry_after": 1, "nth": [1, 2]}],
    "batch_500": [{"match": "batch", "action": {"status": 500}, "nth": [1]}],
    "arm_503_definitions": [{"match": "definitions", "action": {"status": 503}, "nth": [1, 3]}],
    "accounts_502": [{"match": "accounts", "action": {"status": 502}, "nth": [1]}],
    "batch_connection_reset": [{"match": "batch", "action": "reset", "nth": [1, 2]}],
    "batch_answer_cut_off": [{"match": "batch", "action": "truncate", "nth": [1, 2]}],
    "arm_connection_reset": [{"match": "metrics", "action": "reset", "nth": [1]}],
    "arm_answer_cut_off": [{"match": "metrics", "action": "truncate", "nth": [1]}],
    "token_endpoint_reset": [{"match": "token", "action": "reset", "nth": [1]}],
    "stall": [{"match": "batch", "action": {"delay": 2}, "nth": [1]}],
    "expired_token_on_batch": [
        {
            "match": "batch",
            "action": {"status": 401},
            "nth": [1],
            "body": {"error": {"code": "ExpiredAuthenticationToken", "message": "The access token has expired."}},
        }
    ],
    "partial_batch_answer": [{"match": "batch", "action": {"status": 200}, "nth": [1], "body": PARTIAL_BATCH_BODY}],
    "persistent_batch_500": [{"match": "batch", "action": {"status": 500}}],
    "persistent_token_failure": [{"match": "token", "action": {"status": 500}}],
}


def table_hashes(warehouse) -> dict[str, str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t: hashlib.sha256(
                repr(con.execute(f"SELECT * FROM azure_openai.{t} ORDER BY ALL").fetchall()).encode()
            ).hexdigest()
            for t in TABLES
        }


def row_counts(warehouse) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM azure_openai.{t}").fetchone()[0] for t in TABLES}


@pytest.fixture(scope="module")
def environment():
    saved = dict(os.environ)
    for spec in CONNECTIONS:
        os.environ[secret_env_name(spec.name)] = SCENARIO.principals[spec.client_id.lower()].secret
    yield
    os.environ.clear()
    os.environ.update(saved)


def project(workdir, emulator):
    # One quick step retry: the production default waits 30 s and more between step retries.
    return load_config(
        write_project(workdir, emulator.endpoints, SCENARIO, CONNECTIONS, step_retries=1, step_retry_delay_seconds=1)
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, emulator, environment):
    config = project(tmp_path_factory.mktemp("baseline"), emulator)
    reports = sync_range(config, FIRST, LAST)
    assert all(r.success for r in reports)
    counts = row_counts(config.warehouse_path)
    assert counts["usage_daily"] > 0
    return table_hashes(config.warehouse_path)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_ends_with_the_fault_free_tables(name, tmp_path, emulator, environment, baseline):
    config = project(tmp_path, emulator)
    emulator.clear_faults()
    emulator.add_faults(FAULTS[name])
    try:
        reports = sync_range(config, FIRST, LAST)
        fired = {f["index"]: f["fired"] for f in emulator.faults()}
    finally:
        emulator.clear_faults()
    assert all(fired.values()), f"a fault never fired, so the run proves nothing (fault -> times fired): {fired}"
    failed = [r for r in reports if not r.success]
    if name.startswith("persistent"):
        assert failed, "a persistent fault must fail the run"
        reason = " ".join(r.failure or "" for r in failed)
        assert reason.strip(), "the failure has a readable reason"
        reports = sync_range(config, FIRST, LAST)  # the fault is gone: a plain rerun heals
        failed = [r for r in reports if not r.success]
    assert not failed, [(r.job, r.failure) for r in failed]
    assert table_hashes(config.warehouse_path) == baseline


def test_kill_9_during_syncs_then_rerun_gives_the_fault_free_tables(tmp_path, emulator, environment, baseline):
    config = project(tmp_path, emulator)
    env = {**os.environ, "DOOW_CONNECTIONS": str(config.path)}
    command = [sys.executable, "-m", "doow_pipeline.cli", "sync", "--from", str(FIRST), "--to", str(LAST)]
    for delay in (1.0, 2.5, 4.0, 6.0):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert table_hashes(config.warehouse_path) == baseline


@pytest.mark.parametrize(
    ("stop", "during"), [(signal.SIGTERM, "fetch_prod"), (signal.SIGINT, "azure_openai_write_usage")]
)
def test_a_stop_ends_the_sync_at_once_and_a_rerun_heals(stop, during, tmp_path, emulator, environment, baseline):
    """Ctrl-C or SIGTERM (a scheduler's timeout) ends `doow-azure sync` in the run it reached: the fetch step is not
    retried (Dagster retries an interrupted step under a retry policy), no later run starts, nothing is left behind
    in TMPDIR or the staging area, and a plain rerun gives the fault-free tables."""
    config = project(tmp_path, emulator)
    scratch, home = tmp_path / "tmpdir", dagster_home(tmp_path / "dagster-home")
    scratch.mkdir()
    env = {**os.environ, "DOOW_CONNECTIONS": str(config.path), "TMPDIR": str(scratch)}
    if during != "fetch_prod":
        env["DAGSTER_HOME"] = str(home)  # the runs are recorded: the writer's must end as failed
    command = [sys.executable, "-m", "doow_pipeline.cli", "sync", "--from", str(FIRST), "--to", str(LAST)]
    emulator.clear_faults()
    held = None
    if during == "fetch_prod":
        # The first getBatch call is held 3 s: the signal comes while it is in flight (the fault fires on arrival).
        emulator.add_faults([{"match": "batch", "action": {"delay": 3}, "nth": [1]}])
    else:
        config.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        held = duckdb.connect(str(config.warehouse_path))  # the writer waits for this lock
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if during == "fetch_prod":
            reached = wait_until(lambda: emulator.faults()[0]["fired"] == 1, timeout=120)
        else:
            reached = wait_until(lambda: run_step_started(home, during), timeout=120, interval=0.2)
        assert reached, f"the sync never reached {during}"
        process.send_signal(stop)
        _out, err = process.communicate(timeout=120)
    finally:
        emulator.clear_faults()
        if held is not None:
            held.close()
    assert process.returncode == 130, err[-2000:]
    assert f"interrupted during {during}" in err and "Traceback" not in err, err[-2000:]
    later = ["fetch_research", "azure_openai_cost"] if during == "fetch_prod" else ["azure_openai_cost"]
    assert not any(f"{job}: running" in err for job in later), err[-2000:]
    assert list(scratch.iterdir()) == [], "a stopped sync left temporary files behind"
    staging = config.landing_dir / "staging"
    assert not list(staging.glob("connection=*/run=*")), "a stopped sync left its staging behind"
    if during != "fetch_prod":
        statuses = run_statuses(home)
        assert statuses[during] == dg.DagsterRunStatus.FAILURE and "azure_openai_cost" not in statuses, statuses
    result = subprocess.run(command, env={**env, "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert table_hashes(config.warehouse_path) == baseline
