"""Dagster: definitions load, `dagster dev` serves the assets and checks, and secrets stay out of every
log, run record, event log and warehouse file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from doow_pipeline.config import load_config
from doow_pipeline.defs.project import build_definitions
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.dagster_ui import dagster_ui
from doow_pipeline_tests.demo import DEMO_CONNECTIONS, dagster_home
from doow_pipeline_tests.project import secret_env_name, write_project

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
ROOT = Path(__file__).resolve().parents[2]
EXPECTED_CHECKS = {
    "credentials_and_monitoring_reader",
    "accounts_readable",
    "sync_not_empty",
    "no_series_truncated",
    "unique_grain",
    "tokens_consistent",
    "single_metric_family",
    "no_overlapping_scopes",
    "usage_spike",
    "usage_drop",
    "deployment_silent",
    "new_deployment",
    "landing_files_readable",
    "all_connections_landed",
    "one_row_per_account_and_day",
    "every_account_readable",
    "prod_healthy",
    "dev_healthy",
    "research_healthy",
    "prices_fetched",
    "prices_fresh",
    "tokens_have_meters",
}


@pytest.fixture
def demo_project(tmp_path, emulator, monkeypatch):
    path = write_project(tmp_path / "project", emulator.endpoints, SCENARIO, DEMO_CONNECTIONS)
    for spec in DEMO_CONNECTIONS:
        monkeypatch.setenv(secret_env_name(spec.name), SCENARIO.principals[spec.client_id.lower()].secret)
    return path


def test_definitions_load_with_secrets_as_env_vars(demo_project):
    definitions = build_definitions(load_config(demo_project))
    dg.Definitions.validate_loadable(definitions)
    keys = {k.to_user_string() for k in definitions.resolve_all_asset_keys()}
    assert keys == {
        "azure_openai/prod_metric_points",
        "azure_openai/dev_metric_points",
        "azure_openai/research_metric_points",
        "azure_openai/usage_daily",
        "azure_openai/accounts",
        "azure_openai/connection_status",
        "azure_openai/retail_prices",
        "azure_openai/usage_cost_daily",
        "azure_openai/focus_cost_daily",
    }
    checks = {k.name for k in definitions.resolve_asset_graph().asset_check_keys}
    assert checks == EXPECTED_CHECKS
    resource = definitions.resources["azure_prod"]
    # The secret is configured as an environment variable (resolved only at run time), never as a value.
    assert isinstance(resource.client_secret, dg.EnvVar)
    assert resource.client_secret.env_var_name == "DOOW_SECRET_PROD"
    assert definitions.get_schedule_def("daily_azure_openai_sync") is not None


def test_assets_carry_names_tags_columns_and_code_references(demo_project):
    from doow_pipeline.warehouse.schema import ACCOUNTS_COLUMNS, USAGE_DAILY_COLUMNS

    graph = build_definitions(load_config(demo_project)).resolve_asset_graph()
    specs = {node.key.to_user_string(): node for node in graph.asset_nodes}
    for spec in DEMO_CONNECTIONS:
        node = specs[f"azure_openai/{spec.name}_metric_points"]
        # The label Dagster shows (the key's last component) names the connection; the tag filters on it.
        assert node.key.path[-1] == f"{spec.name}_metric_points"
        assert node.tags["connection"] == spec.name
        assert "dagster/code_references" in node.metadata
    for key, table, columns in (
        ("azure_openai/usage_daily", "azure_openai.usage_daily", USAGE_DAILY_COLUMNS),
        ("azure_openai/accounts", "azure_openai.accounts", ACCOUNTS_COLUMNS),
    ):
        metadata = specs[key].metadata
        assert metadata["dagster/table_name"] == table
        schema = metadata["dagster/column_schema"]
        schema = getattr(schema, "schema", schema)  # a TableSchemaMetadataValue or the TableSchema itself
        assert [c.name for c in schema.columns] == [name for name, _ in columns]
        assert all(c.description for c in schema.columns), key
        assert "dagster/code_references" in metadata
    status = specs["azure_openai/connection_status"].metadata["dagster/column_schema"]
    status = getattr(status, "schema", status)
    # The types of the azure_openai.connection_status view (an untyped column would read "string" in the UI).
    assert {c.name: c.type for c in status.columns} == {
        "connection": "varchar",
        "state": "varchar",
        "cause": "varchar",
        "next_action": "varchar",
        "last_successful_sync": "timestamp",
        "usage_rows": "bigint",
        "total_tokens": "hugeint",
        "accounts_covered": "bigint",
        "accounts_in_scope": "bigint",
    }
    assert specs["azure_openai/usage_daily"].freshness_policy is not None
    checks_by_asset = {}
    for check_key in graph.asset_check_keys:
        checks_by_asset.setdefault(check_key.asset_key.to_user_string(), set()).add(check_key.name)
    assert checks_by_asset["azure_openai/accounts"] == {"one_row_per_account_and_day", "every_account_readable"}
    assert checks_by_asset["azure_openai/connection_status"] == {"prod_healthy", "dev_healthy", "research_healthy"}


@pytest.mark.slow
def test_dagster_dev_serves_assets_and_checks(demo_project, tmp_path):
    with dagster_ui(demo_project, dagster_home(tmp_path), tmp_path / "dagster-dev.log") as ui:
        nodes = ui.graphql(
            "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"
        )["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert "azure_openai/usage_daily" in keys and "azure_openai/prod_metric_points" in keys
    checks = {c["name"] for n in nodes for c in (n["assetChecksOrError"] or {}).get("checks", [])}
    assert checks == EXPECTED_CHECKS


@pytest.mark.slow
def test_secrets_appear_nowhere_after_a_sync(tmp_path, emulator):
    workdir = tmp_path / "project"
    config = write_project(workdir, emulator.endpoints, SCENARIO, DEMO_CONNECTIONS)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOOW_SECRET_")}
    env.update({"DAGSTER_HOME": str(home), "DOOW_CONNECTIONS": str(config)})
    last = NOW.date() - timedelta(days=1)
    result = subprocess.run(
        [sys.executable, "-m", "doow_pipeline.cli", "sync", "--from", str(last - timedelta(days=6)), "--to", str(last)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fetch_prod: ok" in result.stderr  # the runs really happened, and were recorded in DAGSTER_HOME
    for noise in ("BetaWarning", "SupersessionWarning", "PreviewWarning"):  # a quiet CLI
        assert noise not in result.stderr
    secrets = [p.secret for p in SCENARIO.principals.values()]
    output = result.stdout + result.stderr
    for secret in secrets:
        assert secret not in output
    scanned = 0
    for root in (workdir, home, Path(emulator.state_dir)):
        for file in root.rglob("*"):
            if not file.is_file() or file == workdir / ".env":
                continue
            data = file.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"secret found in {file}"
    assert (workdir / "doow.duckdb").exists() and any(home.rglob("*.db"))
    assert scanned > 10
    assert oct((workdir / ".env").stat().st_mode & 0o777) == "0o600"
    log = json.dumps(emulator.requests())
    for secret in secrets:
        assert secret not in log
