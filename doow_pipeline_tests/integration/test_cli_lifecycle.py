"""`doow-azure status`, `doctor` and `disconnect` on synced projects against the emulator.

One estate holds a connection per demo case (healthy batch, healthy per-resource, one unreadable account,
role on one account only, empty scope, no usage, expired secret) and is synced once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta

import pytest
import yaml
from dotenv import dotenv_values

from doow_pipeline_tests.cli_support import (
    DEV,
    EMPTY_SCOPE,
    EXPIRED,
    LEGACY_ACCOUNT,
    MAIN,
    NO_USAGE,
    NOW,
    ONE_ACCOUNT,
    PROD,
    PROD_WEU_RG,
    RESEARCH,
    RG_READER,
    SANDBOX_RG,
    SCENARIO,
    SHARED,
    CliProject,
    assert_files_hold_no_secret,
    restore_environ,
    secret_of,
)
from doow_pipeline_tests.project import ConnectionSpec, write_project

pytestmark = pytest.mark.slow

LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=6)  # the 7 complete days doctor and status look at
ESTATE = [
    ConnectionSpec("prod", MAIN, PROD),
    ConnectionSpec("weu", RG_READER, PROD_WEU_RG),  # overlaps prod: its usage is counted under prod
    ConnectionSpec("legacy", ONE_ACCOUNT, LEGACY_ACCOUNT),
    ConnectionSpec("research", MAIN, RESEARCH),
    ConnectionSpec("dev_one", ONE_ACCOUNT, DEV),
    ConnectionSpec("shared", EMPTY_SCOPE, SHARED),
    ConnectionSpec("sandbox", NO_USAGE, SANDBOX_RG),
    ConnectionSpec("expired", EXPIRED, PROD),
]


@pytest.fixture(autouse=True)
def clean_environ():
    snapshot = dict(os.environ)
    yield
    restore_environ(snapshot)


def synced_project(workdir, emulator, specs, first=FIRST, last=LAST) -> CliProject:
    project = CliProject(workdir)
    write_project(workdir, emulator.endpoints, SCENARIO, specs, warehouse="data/doow.duckdb")
    snapshot = dict(os.environ)
    result = project.run("sync", "--from", str(first), "--to", str(last))
    restore_environ(snapshot)
    assert result.exit_code in (0, 1), result.output  # 1: a connection of the estate is meant to fail
    return project


@pytest.fixture(scope="module")
def estate(tmp_path_factory, emulator) -> CliProject:
    return synced_project(tmp_path_factory.mktemp("estate") / "project", emulator, ESTATE)


# ---- status -----------------------------------------------------------------------------------------------------


def test_status_json_totals_equal_the_warehouse(estate):
    result = estate.run("status", "--json", expect=1)  # the expired connection is failing
    payload = json.loads(result.stdout)
    assert (payload["from"], payload["to"]) == (str(FIRST), str(LAST))
    by_name = {c["connection"]: c for c in payload["connections"]}
    assert list(by_name) == [s.name for s in ESTATE]
    expected = {
        name: (rows, inp, out, total, req)
        for name, rows, inp, out, total, req in estate.sql(
            "SELECT connection, count(*), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(requests) "
            "FROM azure_openai.usage_daily WHERE usage_date BETWEEN ? AND ? GROUP BY connection",
            [FIRST, LAST],
        )
    }
    # Overlaps count once, under the first connection by name: aoai-dev-legacy under dev_one, not legacy.
    assert set(expected) == {"prod", "dev_one", "research"}
    for name, item in by_name.items():
        totals = item["totals"]
        rows, inp, out, total, req = expected.get(name, (0, 0, 0, 0, 0))
        assert (
            totals["rows"],
            totals["input_tokens"],
            totals["output_tokens"],
            totals["total_tokens"],
            totals["requests"],
        ) == (rows, inp, out, total, req), name
        assert sum(u["total_tokens"] for u in item["usage"]) == total
        assert sum(d["total_tokens"] or 0 for d in item["trend"]) == total
        assert len(item["trend"]) == 7
    per_day = dict(
        estate.sql(
            "SELECT usage_date::VARCHAR, sum(total_tokens) FROM azure_openai.usage_daily "
            "WHERE connection = 'prod' GROUP BY ALL"
        )
    )
    assert {d["day"]: d["total_tokens"] for d in by_name["prod"]["trend"]} == per_day
    groups = estate.sql(
        "SELECT count(*) FROM (SELECT DISTINCT subscription_id, resource_name, resource_region, "
        "metric_region, deployment, model_name FROM azure_openai.usage_daily "
        "WHERE connection = 'prod' AND usage_date BETWEEN ? AND ?)",
        [FIRST, LAST],
    )[0][0]
    assert len(by_name["prod"]["usage"]) == groups
    assert by_name["prod"]["state"] == "healthy" and by_name["prod"]["last_error"] is None
    assert by_name["research"]["accounts_covered"] == 1 and by_name["research"]["accounts_in_scope"] == 2
    assert by_name["expired"]["state"] == "failing"
    assert "expired" in by_name["expired"]["cause"] and "new client secret" in by_name["expired"]["next_action"]
    # One of research's two accounts refuses its metrics: degraded, naming the account and the role to assign.
    assert by_name["research"]["state"] == "degraded"
    assert "ais-research-restricted" in by_name["research"]["cause"]
    assert "Monitoring Reader" in by_name["research"]["next_action"]
    assert "expired" in by_name["expired"]["last_error"]
    assert by_name["weu"]["totals"]["rows"] == 0  # its only account is counted under prod
    assert by_name["legacy"]["totals"]["rows"] == 0 and by_name["legacy"]["state"] == "healthy"


def test_status_text_shows_state_totals_trend_and_usage(estate):
    result = estate.run("status", "prod", expect=0)
    total = estate.sql(
        "SELECT sum(total_tokens) FROM azure_openai.usage_daily WHERE connection = 'prod' "
        "AND usage_date BETWEEN ? AND ?",
        [FIRST, LAST],
    )[0][0]
    text = result.stdout
    assert "prod  healthy" in text
    assert f"{total:,} tokens" in text
    assert "tokens per day" in text and any(c in text for c in "▁▂▃▄▅▆▇█")
    for column in ("subscription", "resource", "region", "deployment", "model"):
        assert column in text
    for name in ("aoai-prod-weu", "gpt-4o-chat", "gpt-4o-mini", "westeurope", "ais-prod-eus2"):
        assert name in text
    failing = estate.run("status", "expired", expect=1)
    assert "failing" in failing.stdout and "last error" in failing.stdout


def test_status_without_a_warehouse_says_never_synced(tmp_path, emulator):
    project = CliProject(tmp_path / "fresh")
    write_project(
        project.workdir,
        emulator.endpoints,
        SCENARIO,
        [ConnectionSpec("prod", MAIN, PROD)],
        warehouse="data/doow.duckdb",
    )
    payload = json.loads(project.run("status", "--json", expect=0).stdout)
    assert payload["connections"][0]["state"] == "never synced"
    assert payload["connections"][0]["totals"]["rows"] == 0
    assert not project.warehouse.exists()  # status never creates the warehouse
    assert "never synced" in project.run("status", expect=0).stdout


# ---- doctor -----------------------------------------------------------------------------------------------------

DOCTOR_CASES = {
    # connection: the table rows its findings must be (row numbers), or finding codes for the extra checks
    "prod": [],
    "weu": [],
    "legacy": [],
    "research": [1],
    "dev_one": [2],
    "shared": [3],
    "sandbox": [3],
}


@pytest.mark.parametrize("name", list(DOCTOR_CASES))
def test_doctor_rows_where_the_scenario_makes_them_true_and_none_on_healthy(estate, name):
    rows = DOCTOR_CASES[name]
    result = estate.run("doctor", name, "--json", expect=1 if rows else 0)
    report = json.loads(result.stdout)
    assert [f["row"] for f in report["findings"]] == rows, report["findings"]
    assert report["ok"] is (not rows)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["credentials"]["status"] == "ok"
    assert checks["tenant_and_subscription"]["status"] == "ok"
    if not rows:
        assert checks["usage_in_warehouse"]["status"] == "ok", checks["usage_in_warehouse"]
        assert checks["provider_delay"]["status"] == "ok"
        assert checks["sync_errors"]["status"] == "ok"
        assert report["facts"]["latest_data_point_age_hours"] == 6.0


def test_doctor_findings_name_symptom_cause_and_action(estate):
    research = json.loads(estate.run("doctor", "research", "--json").stdout)["findings"][0]
    assert research["symptom"] == "No deployment usage appears"
    assert "cannot read the account or Azure Monitor data" in research["cause"]
    assert "ais-research-restricted" in research["cause"]
    assert research["action"] == "Confirm the role assignment on the resource, subscription and monitoring scope"
    one = json.loads(estate.run("doctor", "dev_one", "--json").stdout)["findings"][0]
    assert one["symptom"] == "Only one resource appears"
    assert one["cause"] == "The role assignment covers only one account"
    assert "aoai-dev-legacy" in one["detail"]
    assert one["action"].startswith("Add each resource, or assign Monitoring Reader at resource-group or subscription")
    for name in ("shared", "sandbox"):
        finding = json.loads(estate.run("doctor", name, "--json").stdout)["findings"][0]
        assert finding["symptom"] == "Credentials validate but sync is empty"
        assert "another subscription, resource or region" in finding["cause"]
        assert finding["action"] == "Confirm the scope, subscription and region before reconnecting"
    text = estate.run("doctor", "research", expect=1).stdout
    assert "No deployment usage appears" in text and "Confirm the role assignment" in text
    assert "✗ accounts_readable" in text and "✓ credentials" in text
    assert "No findings." in estate.run("doctor", "prod", expect=0).stdout


def test_doctor_on_an_expired_secret_reports_the_credential_and_the_logged_errors(estate):
    report = json.loads(estate.run("doctor", "expired", "--json", expect=1).stdout)
    codes = [f["code"] for f in report["findings"]]
    assert codes == ["credentials_expired_secret", "sync_error_expired_secret"]
    credential = report["findings"][0]
    assert "expired" in credential["cause"] and "new client secret" in credential["action"]
    assert report["facts"]["state"] == "failing"


def test_doctor_compares_recent_usage_and_reports_the_delay(tmp_path, emulator):
    """Stale data, then complete data (no finding), then a deployment's rows missing from the warehouse."""
    specs = [ConnectionSpec("dev", MAIN, DEV)]
    project = synced_project(
        tmp_path / "dev", emulator, specs, first=FIRST - timedelta(days=8), last=FIRST - timedelta(days=1)
    )
    report = json.loads(project.run("doctor", "dev", "--json", expect=1).stdout)
    assert [f["code"] for f in report["findings"]] == ["stale_data"]
    assert f"Usage stops at {FIRST - timedelta(days=1)}" == report["findings"][0]["symptom"]
    assert f"--from {FIRST} --to {LAST}" in report["findings"][0]["action"]

    assert project.run("sync", "--from", str(FIRST), "--to", str(LAST)).exit_code == 0
    report = json.loads(project.run("doctor", "dev", "--json", expect=0).stdout)
    assert report["findings"] == []
    assert len(report["facts"]["compared_days"]) == 7

    import duckdb

    with duckdb.connect(str(project.warehouse)) as con:
        con.execute(
            "DELETE FROM azure_openai.usage_daily WHERE deployment = 'gpt-41-mini-dev' AND usage_date = ?", [LAST]
        )
    report = json.loads(project.run("doctor", "dev", "--json", expect=1).stdout)
    finding = report["findings"][0]
    assert finding["code"] == "usage_missing"
    assert f"ais-dev-swc/gpt-41-mini-dev on {LAST}" in finding["detail"]
    assert f"doow-azure sync --from {LAST} --to {LAST} --connection dev" in finding["action"]


def test_doctor_without_a_stored_secret(tmp_path, emulator):
    project = CliProject(tmp_path / "nosecret")
    write_project(project.workdir, emulator.endpoints, SCENARIO, [ConnectionSpec("prod", MAIN, PROD)])
    project.env_file.write_text("", encoding="utf-8")
    os.environ.pop("DOOW_SECRET_PROD", None)
    report = json.loads(project.run("doctor", "prod", "--json", expect=1).stdout)
    assert [f["code"] for f in report["findings"]] == ["secret_missing"]


# ---- disconnect -------------------------------------------------------------------------------------------------


def test_disconnect_removes_exactly_that_connection_and_purge_removes_only_its_rows(tmp_path, emulator):
    project = CliProject(tmp_path / "three")
    project.workdir.mkdir(parents=True)
    project.env_file.write_text("UNRELATED=1\n", encoding="utf-8")
    os.chmod(project.env_file, 0o600)
    project.connect("prod", MAIN, PROD, endpoints=emulator.endpoints, expect=0)
    project.connect("legacy", ONE_ACCOUNT, LEGACY_ACCOUNT, expect=0)
    project.connect("research", MAIN, RESEARCH, expect=0)
    assert project.run("sync", "--from", str(LAST - timedelta(days=2)), "--to", str(LAST)).exit_code == 0
    tables = ("usage_daily", "metric_points", "accounts", "sync_events", "connections")

    def counts():
        return {t: dict(project.sql(f"SELECT connection, count(*) FROM azure_openai.{t} GROUP BY ALL")) for t in tables}

    before = counts()
    assert all(before["usage_daily"].get(n) for n in ("prod", "legacy", "research"))
    landing = project.workdir / "data" / "landing"
    assert (landing / "points" / "connection=legacy").exists()
    yaml_before = project.config.read_text()

    result = project.run("disconnect", "legacy", "--purge-data", expect=0)
    document = yaml.safe_load(project.config.read_text())
    assert [c["name"] for c in document["connections"]] == ["prod", "research"]
    assert project.config.read_text() == yaml_before.replace(
        yaml_before[yaml_before.index("  - name: legacy") : yaml_before.index("  - name: research")], ""
    )
    assert dotenv_values(project.env_file) == {
        "UNRELATED": "1",
        "DOOW_SECRET_PROD": secret_of(MAIN),
        "DOOW_SECRET_RESEARCH": secret_of(MAIN),
    }
    assert oct(project.env_file.stat().st_mode & 0o777) == "0o600"
    after = counts()
    for table in tables:
        assert "legacy" not in after[table], table
        assert {k: v for k, v in before[table].items() if k != "legacy"} == after[table], table
    assert not any(landing.glob("*/connection=legacy"))
    assert (landing / "points" / "connection=prod").exists()
    out = result.stdout
    assert "Deleted its secret DOOW_SECRET_LEGACY" in out
    assert "role assignment" in out and "Monitoring Reader" in out and LEGACY_ACCOUNT in out
    assert "delete the client secret" in out.lower() and "app registration" in out

    # Without --purge-data the rows stay; the app registration is still used by prod, so it is kept.
    result = project.run("disconnect", "research", expect=0)
    assert "DOOW_SECRET_RESEARCH" not in dotenv_values(project.env_file)
    assert counts()["usage_daily"].get("research") == before["usage_daily"]["research"]
    assert "still use application" in result.stdout and "prod" in result.stdout
    assert [c["connection"] for c in json.loads(project.run("status", "--json").stdout)["connections"]] == ["prod"]
    assert_files_hold_no_secret(project)


def test_disconnect_keeps_a_secret_another_connection_still_uses(tmp_path, emulator):
    project = CliProject(tmp_path / "shared_secret")
    write_project(
        project.workdir,
        emulator.endpoints,
        SCENARIO,
        [ConnectionSpec("prod", MAIN, PROD), ConnectionSpec("dev", MAIN, DEV)],
    )
    text = project.config.read_text().replace("DOOW_SECRET_DEV", "DOOW_SECRET_PROD")
    project.config.write_text(text)
    env_before = project.env_file.read_bytes()
    result = project.run("disconnect", "dev", expect=0)
    assert "still used by prod" in result.stdout
    assert project.env_file.read_bytes() == env_before
    assert [c["name"] for c in yaml.safe_load(project.config.read_text())["connections"]] == ["prod"]


def test_every_command_output_is_free_of_secrets(estate, tmp_path):
    """Each run above already asserted it; this one also runs the remaining commands on a copy of the estate."""
    copy = CliProject(tmp_path / "copy")
    shutil.copytree(estate.workdir, copy.workdir)
    for args in (
        ["status"],
        ["status", "--json"],
        ["doctor", "prod"],
        ["doctor", "expired"],
        ["disconnect", "prod", "--purge-data"],
        ["status", "--json"],
    ):
        copy.run(*args)
    assert len(copy.outputs) == 6
    assert_files_hold_no_secret(copy)
