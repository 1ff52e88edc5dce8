"""`doow-azure connect` against the emulator: every failure leaves the files byte for byte unchanged and
names the cause and the fix; success stores the secret only in a 0600 .env; nothing ever prints a secret."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import uuid

import duckdb
import pytest
import yaml
from dotenv import dotenv_values

from doow_pipeline_tests.azure_emulator.harness import wait_until
from doow_pipeline_tests.cli_support import (
    ALL_SECRETS,
    DEV,
    EMPTY_SCOPE,
    EXPIRED,
    LEGACY_ACCOUNT,
    MAIN,
    NOW,
    ONE_ACCOUNT,
    PROD,
    RESEARCH,
    RESTRICTED_ACCOUNT,
    SHARED,
    TENANT,
    WRONG_SECRET,
    CliProject,
    assert_files_hold_no_secret,
    assert_no_secret,
    dagster_home,
    restore_environ,
    run_step_started,
    secret_of,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def clean_environ():
    snapshot = dict(os.environ)
    yield
    restore_environ(snapshot)


@pytest.fixture
def project(tmp_path, emulator) -> CliProject:
    return CliProject(tmp_path / "project")


@pytest.fixture(scope="module")
def connected_once(tmp_path_factory, emulator) -> CliProject:
    """A project holding one healthy connection (prod) and an unrelated .env entry, connected once."""
    project = CliProject(tmp_path_factory.mktemp("connected") / "project")
    project.workdir.mkdir(parents=True)
    project.env_file.write_text("# kept verbatim\nOTHER_TOOL_TOKEN='keep me'\n", encoding="utf-8")
    os.chmod(project.env_file, 0o600)
    snapshot = dict(os.environ)
    project.connect("prod", MAIN, PROD, endpoints=emulator.endpoints, expect=0)
    restore_environ(snapshot)
    return project


@pytest.fixture
def connected(connected_once, project) -> CliProject:
    """A fresh copy of `connected_once` (files copied with their modes) for one test."""
    shutil.copytree(connected_once.workdir, project.workdir)
    project.outputs.extend(connected_once.outputs)
    return project


FAILURES = {
    # case: (client id, scope, secret, tenant, words the one message must contain)
    "wrong_secret": (MAIN, PROD, WRONG_SECRET, TENANT, ["client secret is wrong", "AADSTS7000215", "Value"]),
    "expired_secret": (EXPIRED, PROD, None, TENANT, ["expired", "AADSTS7000222", "new client secret"]),
    "unknown_app": (
        str(uuid.UUID(int=7)),
        PROD,
        "any-secret-value",
        TENANT,
        ["client (application) id is not registered", "AADSTS700016"],
    ),
    "unknown_tenant": (MAIN, PROD, None, str(uuid.UUID(int=9)), ["tenant does not exist", "Directory (tenant) ID"]),
    "no_role": (ONE_ACCOUNT, PROD, None, TENANT, ["holds no role", "Monitoring Reader"]),
    "no_role_on_the_account": (
        MAIN,
        RESTRICTED_ACCOUNT,
        None,
        TENANT,
        ["cannot read the Azure Monitor data of any", "Monitoring Reader"],
    ),
    "role_on_one_account_only": (
        ONE_ACCOUNT,
        DEV,
        None,
        TENANT,
        ["Only one account (aoai-dev-legacy)", "Add each resource", "subscription scope"],
    ),
    "empty_scope": (EMPTY_SCOPE, SHARED, None, TENANT, ["No Azure OpenAI accounts", "Confirm the scope"]),
    "unknown_subscription": (
        MAIN,
        f"/subscriptions/{uuid.UUID(int=11)}",
        None,
        TENANT,
        ["does not exist", "subscription id"],
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_connect_failure_names_cause_and_fix_and_changes_nothing(connected, case):
    client_id, scope, secret, tenant, words = FAILURES[case]
    before = connected.snapshot()
    result = connected.connect(
        "broken", client_id, scope, secret=secret or secret_of(client_id), tenant=tenant, expect=1
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word.lower() in errors[0].lower(), errors[0]
    assert "Fix:" in errors[0]
    assert "Nothing was saved" in result.stderr
    assert connected.snapshot() == before


def test_connect_failure_without_any_file_creates_none(project, emulator):
    project.workdir.mkdir(parents=True)
    project.connect("prod", MAIN, PROD, secret=WRONG_SECRET, endpoints=emulator.endpoints, expect=1)
    assert not project.config.exists() and not project.env_file.exists()
    assert list(project.workdir.iterdir()) == []


def test_connect_success_stores_the_secret_only_in_a_0600_env(connected, emulator):
    result_text = connected.outputs[-1]
    for step in ("Token:", "Scope:", "Accounts:", "Metrics: aoai-prod-weu", "Batch API:", "Coverage:"):
        assert step in result_text
    for account in ("aoai-prod-weu", "aoai-prod-eus", "ais-prod-eus2"):
        assert account in result_text
    assert "text-analytics-weu" not in result_text  # not an Azure OpenAI kind
    assert "batch API allowed" in result_text
    document = yaml.safe_load(connected.config.read_text())
    assert document["connections"] == [
        {
            "name": "prod",
            "tenant_id": TENANT,
            "client_id": MAIN,
            "client_secret_env": "DOOW_SECRET_PROD",
            "scope": PROD,
            "cloud": "AzureCloud",
        }
    ]
    assert document["settings"]["endpoints"] == emulator.endpoints
    assert document["settings"]["warehouse"] == "data/doow.duckdb"
    assert_files_hold_no_secret(connected)
    assert stat.S_IMODE(connected.env_file.stat().st_mode) == 0o600
    env_text = connected.env_file.read_text()
    assert env_text.startswith("# kept verbatim\nOTHER_TOOL_TOKEN='keep me'\n")
    assert dotenv_values(connected.env_file) == {"OTHER_TOOL_TOKEN": "keep me", "DOOW_SECRET_PROD": secret_of(MAIN)}
    # The saved project loads and validates as the pipeline reads it.
    from doow_pipeline.config import load_config

    assert load_config(connected.config, environ={}).connection("prod").scope == PROD


def test_second_connection_keeps_the_first_and_the_settings(connected, emulator):
    text_before = connected.config.read_text()
    # A comment added by hand survives, and the endpoints already in the file are honoured (not replaced).
    connected.config.write_text(text_before.replace("settings:\n", "settings:  # edited by hand\n"))
    other = dict(emulator.endpoints, arm="https://127.0.0.1:1")
    connected.connect("legacy", ONE_ACCOUNT, LEGACY_ACCOUNT, endpoints=other, expect=0)
    document = yaml.safe_load(connected.config.read_text())
    assert [c["name"] for c in document["connections"]] == ["prod", "legacy"]
    assert document["connections"][1]["client_secret_env"] == "DOOW_SECRET_LEGACY"
    assert document["settings"]["endpoints"] == emulator.endpoints
    assert "# edited by hand" in connected.config.read_text()
    assert "already has settings.endpoints" in connected.outputs[-1]
    assert dotenv_values(connected.env_file) == {
        "OTHER_TOOL_TOKEN": "keep me",
        "DOOW_SECRET_PROD": secret_of(MAIN),
        "DOOW_SECRET_LEGACY": secret_of(ONE_ACCOUNT),
    }
    assert stat.S_IMODE(connected.env_file.stat().st_mode) == 0o600
    assert_files_hold_no_secret(connected)


def test_connect_by_account_name_and_resource_group_scope_with_partial_coverage(connected):
    result = connected.connect("legacy", MAIN, "aoai-dev-legacy", expect=0)
    assert "aoai-dev-legacy" in result.stdout
    # Research: one account refuses its metrics and the role is below subscription scope: saved, with warnings.
    result = connected.connect("research", MAIN, RESEARCH, expect=0)
    assert "ais-research-restricted: metrics not readable" in result.stdout
    assert "per-resource API will be used" in result.stdout
    assert "warning(s)" in result.stdout
    names = [c["name"] for c in yaml.safe_load(connected.config.read_text())["connections"]]
    assert names == ["prod", "legacy", "research"]


def test_secret_from_the_hidden_prompt(project, emulator):
    args = [
        "connect",
        "prod",
        "--tenant-id",
        TENANT,
        "--client-id",
        MAIN,
        "--scope",
        PROD,
        "--endpoints-json",
        json.dumps(emulator.endpoints),
    ]
    result = project.run(*args, input=secret_of(MAIN) + "\n", expect=0)
    assert "Client secret" in result.output
    assert dotenv_values(project.env_file)["DOOW_SECRET_PROD"] == secret_of(MAIN)


def test_endpoints_json_accepts_the_emulators_endpoints_file(project, emulator):
    result = project.run(
        "connect",
        "dev",
        "--tenant-id",
        TENANT,
        "--client-id",
        MAIN,
        "--scope",
        DEV,
        "--client-secret-stdin",
        "--endpoints-json",
        str(emulator.state_dir / "endpoints.json"),
        input=secret_of(MAIN),
        expect=0,
    )
    assert "Saved connection dev" in result.stdout


CONNECT = ["--tenant-id", TENANT, "--client-id", MAIN, "--client-secret-stdin"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["connect", "Bad Name", *CONNECT, "--scope", PROD], "lower-case"),
        (["connect", "prod2", "--tenant-id", "not-a-guid", "--client-id", MAIN, "--scope", PROD], "not a GUID"),
        (["connect", "prod2", *CONNECT, "--scope", "/foo/bar"], "not recognised"),
        (["connect", "prod2", *CONNECT, "--scope", PROD, "--cloud", "Mars"], "cloud"),
        (["connect", "prod", *CONNECT, "--scope", PROD], "already exists"),
        (["connect", "prod2", *CONNECT], "--scope"),
        (["connect", "prod2", *CONNECT, "--scope", PROD, "--initial-sync-days", "0"], "initial-sync-days"),
        (["status", "nope", "--json"], "no connection named"),
        (["doctor", "nope", "--json"], "no connection named"),
        (["disconnect", "nope", "--purge-data"], "no connection named"),
    ],
)
def test_usage_errors_exit_2_and_change_nothing(connected, args, words):
    before = connected.snapshot()
    result = connected.run(*args, input=secret_of(MAIN), expect=2)
    assert words.lower() in result.output.lower()
    assert connected.snapshot() == before


def test_invalid_connections_yaml_is_a_usage_error(project, emulator):
    project.workdir.mkdir(parents=True)
    project.config.write_text("connections:\n  - name: prod\n    tenant_id: nope\n", encoding="utf-8")
    before = project.snapshot()
    result = project.connect("dev", MAIN, DEV, endpoints=emulator.endpoints, expect=2)
    assert "tenant_id" in result.stderr and "Fix the file" in result.stderr
    assert project.snapshot() == before


def test_help_has_examples_and_the_entry_point_registers_every_command(project):
    for command in ("connect", "status", "doctor", "disconnect"):
        result = project.run(command, "--help", expect=0)
        assert "Examples" in result.stdout
    assert "--client-secret-stdin" in project.run("connect", "--help").stdout
    # The console script's path: `python -m doow_pipeline.cli` must know the lifecycle commands too.
    completed = subprocess.run(
        [sys.executable, "-m", "doow_pipeline.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0
    for command in ("connect", "status", "doctor", "disconnect", "sync"):
        assert command in completed.stdout


CLI = [sys.executable, "-m", "doow_pipeline.cli", "--frozen-clock", NOW.isoformat()]  # the real entry point


def connect_legacy(emulator) -> list[str]:
    """`connect` of the single-account legacy scope with a 3-day initial sync, the secret read from stdin."""
    return [
        "connect",
        "legacy",
        "--tenant-id",
        TENANT,
        "--client-id",
        ONE_ACCOUNT,
        "--scope",
        LEGACY_ACCOUNT,
        "--client-secret-stdin",
        "--initial-sync-days",
        "3",
        "--endpoints-json",
        json.dumps(emulator.endpoints),
    ]


def test_connect_as_a_subprocess_with_initial_sync(project, emulator):
    """The real entry point, stdin piping and the initial sync with its progress, exactly as a user runs it."""
    project.workdir.mkdir(parents=True)
    env = {**os.environ, "DOOW_CONNECTIONS": str(project.config)}
    env.pop("DOOW_SECRET_LEGACY", None)
    completed = subprocess.run(
        [*CLI, *connect_legacy(emulator)],
        input=secret_of(ONE_ACCOUNT),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=project.workdir,
    )
    output = completed.stdout + completed.stderr
    assert_no_secret(output, "connect subprocess output")
    assert completed.returncode == 0, output
    assert "Initial sync of legacy: 2026-11-17 .. 2026-11-19" in completed.stdout
    assert "azure_openai_write_usage: ok" in completed.stdout
    rows = project.sql("SELECT count(*), count(DISTINCT usage_date), min(connection) FROM azure_openai.usage_daily")
    assert rows[0][0] > 0 and rows[0][1] == 3 and rows[0][2] == "legacy"
    assert_files_hold_no_secret(project)
    for secret in ALL_SECRETS:
        assert secret not in output


def test_a_stop_during_the_initial_sync_keeps_the_connection(project, emulator):
    """SIGTERM while the initial sync's writer waits for the warehouse (held here, as an analyst's session would):
    the connection stays saved, the command says how to finish, exits 130, and `sync` then finishes the days."""
    project.workdir.mkdir(parents=True)
    home = dagster_home(project.workdir / "dagster-home")  # runs recorded: the signal waits for the writer's step
    env = {**os.environ, "DOOW_CONNECTIONS": str(project.config), "DAGSTER_HOME": str(home)}
    env.pop("DOOW_SECRET_LEGACY", None)
    project.warehouse.parent.mkdir(parents=True)
    held = duckdb.connect(str(project.warehouse))
    lines: list[str] = []
    try:
        process = subprocess.Popen(
            [*CLI, *connect_legacy(emulator)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=project.workdir,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(secret_of(ONE_ACCOUNT))
        process.stdin.close()
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        assert wait_until(lambda: run_step_started(home, "azure_openai_write_usage"), timeout=240, interval=0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        held.close()
    output = "".join(lines)
    assert_no_secret(output, "connect subprocess output")
    assert process.returncode == 130, output
    assert "interrupted during azure_openai_write_usage" in output and "Traceback" not in output, output
    assert "The connection is saved; run `doow-azure sync -c legacy` to finish." in output, output
    assert [c["name"] for c in yaml.safe_load(project.config.read_text())["connections"]] == ["legacy"]
    finished = subprocess.run(
        [*CLI, "sync", "--from", "2026-11-17", "--to", "2026-11-19", "-c", "legacy"],
        capture_output=True,
        text=True,
        env={**env, **dotenv_values(project.env_file)},
        timeout=300,
        cwd=project.workdir,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = project.sql("SELECT count(DISTINCT usage_date), min(connection) FROM azure_openai.usage_daily")
    assert rows == [(3, "legacy")]
