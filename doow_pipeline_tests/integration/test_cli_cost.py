"""`doow-azure cost`, `doow-azure export focus` and the cost line of `status` on the demo project synced
through the CLI (prices from the emulator's Retail Prices API)."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import timedelta

import polars as pl
import pytest

from doow_pipeline.usage.focus import SCHEMA as FOCUS_SCHEMA
from doow_pipeline.usage.focus import validate_focus
from doow_pipeline_tests.cli_support import NOW, SCENARIO, CliProject, assert_files_hold_no_secret, restore_environ
from doow_pipeline_tests.demo import DEMO_CONNECTIONS, DEMO_COST_SETTINGS
from doow_pipeline_tests.project import write_project

pytestmark = pytest.mark.slow

LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=6)
RANGE = ("--from", str(FIRST), "--to", str(LAST))


@pytest.fixture(scope="module")
def demo(tmp_path_factory, emulator) -> CliProject:
    workdir = tmp_path_factory.mktemp("cli-cost") / "project"
    project = CliProject(workdir)
    write_project(
        workdir, emulator.endpoints, SCENARIO, DEMO_CONNECTIONS, warehouse="data/doow.duckdb", **DEMO_COST_SETTINGS
    )
    snapshot = dict(os.environ)
    result = project.run("sync", *RANGE)
    restore_environ(snapshot)
    assert result.exit_code == 0, result.output
    return project


def sql_cost(project: CliProject, key: str) -> dict:
    """Per group: (estimated cost or None, costed rows, rows), straight from usage_cost_daily."""
    return {
        k: (c, costed, n)
        for k, c, costed, n in project.sql(
            f"SELECT {key}, sum(estimated_cost), count(estimated_cost), count(*) FROM azure_openai.usage_cost_daily "
            "WHERE usage_date BETWEEN ? AND ? GROUP BY ALL",
            [FIRST, LAST],
        )
    }


def test_cost_json_by_deployment_equals_the_table_and_unknown_is_null(demo):
    payload = json.loads(demo.run("cost", *RANGE, "--json", expect=0).stdout)
    assert payload["by"] == "deployment" and "not the invoice" in payload["basis"]
    expected = sql_cost(demo, "resource_name || '/' || deployment")
    got = {
        f"{g['resource_name']}/{g['deployment']}": (g["estimated_cost"], g["costed_rows"], g["rows"])
        for g in payload["groups"]
    }
    assert got.keys() == expected.keys()
    for key, (cost, costed, rows) in expected.items():
        assert got[key][1:] == (costed, rows), key
        assert got[key][0] == (None if cost is None else pytest.approx(cost, rel=1e-12)), key
    assert got["ais-prod-eus2/phi-4-internal"][0] is None  # no meter: unknown, never 0
    assert got["ais-prod-eus2/gpt-4o-mini-foundry"][0] is None  # PTU
    assert payload["groups"][0]["statuses"]
    known = [c for c, _, _ in expected.values() if c is not None]
    assert payload["total"]["estimated_cost"] == pytest.approx(sum(known), rel=1e-12)
    assert payload["prices"]["records"] > 100


def test_cost_text_shows_n_a_never_zero_for_unpriced_groups(demo):
    text = demo.run("cost", *RANGE, expect=0).stdout
    assert "Estimated cost at list price" in text and "not the invoice" in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.strip().startswith(("ais-", "aoai-"))}
    for deployment, label in (
        ("phi-4-internal", "no meter"),
        ("gpt-4o-mini-foundry", "PTU"),
        ("o3-mini-reasoning", "ambiguous"),
    ):
        assert " n/a " in lines[deployment] and label in lines[deployment], lines[deployment]
        assert "0.00" not in lines[deployment]
    cost = sql_cost(demo, "deployment")["gpt-4o-chat"][0]
    assert f"{cost:,.2f}" in lines["gpt-4o-chat"]


def test_cost_by_tag_is_case_insensitive_and_names_untagged_accounts(demo):
    payload = json.loads(demo.run("cost", *RANGE, "--by", "tag:OWNER", "--json", expect=0).stdout)
    owners = {g["tag_value"]: g["estimated_cost"] for g in payload["groups"]}
    assert set(owners) == {"search-team", "support-team", "platform-ai", "research"}
    expected = dict(
        demo.sql(
            "SELECT o.owner, sum(c.estimated_cost) FROM azure_openai.usage_cost_daily c "
            "JOIN azure_openai.account_owners o USING (usage_date, connection, resource_id) "
            "WHERE usage_date BETWEEN ? AND ? GROUP BY ALL",
            [FIRST, LAST],
        )
    )
    assert owners == {k: pytest.approx(v, rel=1e-12) for k, v in expected.items()}
    centres = {
        g["tag_value"]
        for g in json.loads(demo.run("cost", *RANGE, "--by", "tag:costcenter", "--json", expect=0).stdout)["groups"]
    }
    assert centres == {"CC-1001", "CC-2002", "CC-3003", None}  # ais-dev-swc has no cost centre tag
    text = demo.run("cost", *RANGE, "--by", "tag:costcenter", expect=0).stdout
    assert "(no costcenter tag)" in text


def test_cost_csv_by_model_and_by_connection(demo):
    rows = list(csv.DictReader(io.StringIO(demo.run("cost", *RANGE, "--by", "model", "--csv", expect=0).stdout)))
    by_model = {(r["model_name"], r["model_version"]): r for r in rows}
    assert by_model[("Phi-4", "7")]["estimated_cost"] == ""  # unknown: empty, never 0
    expected = sql_cost(demo, "coalesce(model_name, '') || '@' || model_version")
    assert float(by_model[("gpt-4o", "2024-11-20")]["estimated_cost"]) == pytest.approx(
        expected["gpt-4o@2024-11-20"][0], rel=1e-9
    )
    connections = json.loads(demo.run("cost", *RANGE, "--by", "connection", "--json", expect=0).stdout)["groups"]
    assert {g["connection"]: g["estimated_cost"] for g in connections} == {
        k: pytest.approx(v[0], rel=1e-12) for k, v in sql_cost(demo, "connection").items()
    }


def test_cost_usage_errors(demo, tmp_path):
    assert "tag:<name>" in demo.run("cost", "--by", "region", expect=2).stderr
    assert "exclude" in demo.run("cost", "--json", "--csv", expect=2).stderr
    assert "after --to" in demo.run("cost", "--from", str(LAST), "--to", str(FIRST), expect=2).stderr
    empty = CliProject(tmp_path / "empty")
    write_project(
        empty.workdir,
        {
            "authority": "https://127.0.0.1:1",
            "arm": "https://127.0.0.1:1",
            "metrics": "https://127.0.0.1:1/{region}",
            "ca_cert": None,
        },
        SCENARIO,
        [],
        warehouse="data/doow.duckdb",
    )
    assert "doow-azure sync" in empty.run("cost", expect=1).stderr


def test_a_range_without_cost_rows_totals_n_a(demo):
    early = ("--from", "2026-01-01", "--to", "2026-01-02")
    text = demo.run("cost", *early, expect=0).stdout
    assert "n/a" in text and "No usage with cost" in text
    assert json.loads(demo.run("cost", *early, "--json", expect=0).stdout)["total"]["estimated_cost"] is None


def test_export_focus_parquet_and_csv_validate(demo):
    out = demo.workdir / "exports" / "focus.parquet"
    result = demo.run("export", "focus", *RANGE, "--format", "parquet", "--output", str(out), expect=0)
    assert "FOCUS-aligned, not conformant" in result.stdout
    frame = pl.read_parquet(out)
    assert validate_focus(frame) == []
    count, listcost = demo.sql(
        'SELECT count(*), sum("ListCost") FROM azure_openai.focus_cost_daily '
        'WHERE CAST("ChargePeriodStart" AS DATE) BETWEEN ? AND ?',
        [FIRST, LAST],
    )[0]
    assert frame.height == count > 0 and frame["ListCost"].sum() == pytest.approx(listcost, rel=1e-12)
    assert frame["BilledCost"].null_count() == frame.height
    assert set(frame["x_CostBasis"]) == {"RetailListPriceEstimate"}
    assert frame["ChargePeriodStart"].dt.date().min() == FIRST and frame["ChargePeriodStart"].dt.date().max() == LAST
    csv_out = demo.workdir / "exports" / "focus.csv"
    demo.run("export", "focus", *RANGE, "--format", "csv", "--output", str(csv_out), expect=0)
    read = pl.read_csv(
        csv_out, schema_overrides={k: v for k, v in FOCUS_SCHEMA.items() if not isinstance(v, pl.Datetime)}
    )
    assert read.height == frame.height and list(read.columns) == list(frame.columns)
    stdout = demo.run("export", "focus", *RANGE, "--format", "csv", "--output", "-", expect=0).stdout
    assert stdout.splitlines()[0].split(",")[:3] == ["BilledCost", "BillingCurrency", "ChargeCategory"]
    assert "needs --format csv" in demo.run("export", "focus", *RANGE, "--output", "-", expect=2).stderr
    assert_files_hold_no_secret(demo)


def test_status_shows_each_connections_estimated_cost(demo):
    payload = json.loads(demo.run("status", "--json", expect=0).stdout)
    expected = sql_cost(demo, "connection")
    for item in payload["connections"]:
        cost, costed, rows = expected[item["connection"]]
        assert item["cost"]["estimated_cost"] == pytest.approx(cost, rel=1e-12)
        assert (item["cost"]["costed_rows"], item["cost"]["rows"]) == (costed, rows)
    text = demo.run("status", "prod", expect=0).stdout
    assert f"estimated list cost: {expected['prod'][0]:,.2f} USD" in text and "not the invoice" in text
