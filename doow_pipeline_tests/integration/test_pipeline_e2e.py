"""End to end: the demo estate through the real Azure SDKs and the emulator into DuckDB.

The warehouse is compared, row by row and column by column, with usage computed independently from the
emulator's scenario generator (`expected_usage`), never with numbers the pipeline produced.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from doow_pipeline.config import load_config
from doow_pipeline.defs.project import build_definitions
from doow_pipeline.defs.runs import sync_range
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.demo import (
    DEMO_CONNECTIONS,
    DEV,
    EMPTY_SCOPE,
    MAIN_PRINCIPAL,
    NO_USAGE,
    ONE_ACCOUNT,
    PROD,
    PROD_WEU_RG,
    RESEARCH,
    RG_READER,
    SHARED,
)
from doow_pipeline_tests.project import ConnectionSpec, expected_usage, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST_DAY = NOW.date() - timedelta(days=1)
FIRST_DAY = LAST_DAY - timedelta(days=29)


@pytest.fixture
def project(tmp_path, emulator, monkeypatch):
    """Returns a function that writes a project for some connections and syncs a range in-process."""

    def run(connections: list[ConnectionSpec], first=FIRST_DAY, last=LAST_DAY, workdir=None, **settings):
        path = write_project(workdir or tmp_path, emulator.endpoints, SCENARIO, connections, **settings)
        for spec in connections:
            monkeypatch.setenv(secret_env_name(spec.name), SCENARIO.principals[spec.client_id.lower()].secret)
        config = load_config(path)
        reports = sync_range(config, first, last)
        return config, {r.job: r for r in reports}

    return run


def warehouse_usage(config) -> pl.DataFrame:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        frame = con.execute("SELECT * FROM azure_openai.usage_daily").pl()
    return frame.sort(
        ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"], nulls_last=True
    )


def table_hash(config, table: str) -> str:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        rows = con.execute(f"SELECT * FROM azure_openai.{table} ORDER BY ALL").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def assert_matches_expected(config, connections, first=FIRST_DAY, last=LAST_DAY):
    actual = warehouse_usage(config)
    expected = expected_usage(SCENARIO, first, last, connections, synced_at=NOW)
    assert actual.height == expected.height > 0
    assert_frame_equal(actual, expected.select(actual.columns), check_dtypes=False)


def failed_checks(report) -> dict[str, str]:
    return {check.name.split(":")[-1]: check.description for check in report.failed_checks}


def test_demo_connections_match_the_scenario_exactly_and_reruns_are_identical(project):
    config, reports = project(DEMO_CONNECTIONS)
    assert reports["fetch_prod"].success and reports["fetch_dev"].success
    assert reports["azure_openai_write_usage"].success
    assert_matches_expected(config, DEMO_CONNECTIONS)
    # An account with 12 deployments (more than the default top of 10) is complete.
    usage = warehouse_usage(config)
    assert usage.filter(pl.col("resource_name") == "aoai-prod-weu")["deployment"].n_unique() == 12
    before = {t: table_hash(config, t) for t in ("usage_daily", "accounts", "metric_points")}
    sync_range(config, FIRST_DAY, LAST_DAY)
    assert {t: table_hash(config, t) for t in before} == before


def test_unreadable_account_fails_its_check_and_the_rest_still_match(project):
    connections = [ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH)]
    config, reports = project(connections)
    report = reports["fetch_research"]
    assert report.success
    checks = failed_checks(report)
    assert "ais-research-restricted" in checks["accounts_readable"]
    assert "assign Monitoring Reader" in checks["accounts_readable"]
    assert_matches_expected(config, connections)
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        api = con.execute("SELECT DISTINCT metrics_api FROM azure_openai.accounts").fetchall()
    assert api == [("per_resource",)]  # Monitoring Reader only at resource-group scope: no batch API


def test_resource_group_principal_takes_the_per_resource_path_and_matches(project, emulator):
    connections = [ConnectionSpec("weu", RG_READER, PROD_WEU_RG)]
    emulator.clear_requests()
    config, reports = project(connections)
    assert reports["fetch_weu"].success
    assert_matches_expected(config, connections)
    kinds = [r["kind"] for r in emulator.requests()]
    assert "metrics" in kinds


def test_overlapping_connections_count_each_account_once_and_warn(project):
    connections = [ConnectionSpec("prod", MAIN_PRINCIPAL, PROD), ConnectionSpec("weu", RG_READER, PROD_WEU_RG)]
    config, reports = project(connections)
    assert_matches_expected(config, connections)
    checks = failed_checks(reports["azure_openai_write_usage"])
    assert "aoai-prod-weu" in checks["no_overlapping_scopes"]


def test_small_top_is_narrowed_per_deployment_and_still_matches(project):
    connections = [ConnectionSpec("prod", MAIN_PRINCIPAL, PROD)]
    config, reports = project(connections, top=5)
    assert "no_series_truncated" not in failed_checks(reports["fetch_prod"])
    assert_matches_expected(config, connections)


def test_empty_scope_and_scope_without_usage_say_which(project, tmp_path):
    config, reports = project([ConnectionSpec("shared", EMPTY_SCOPE, SHARED)], workdir=tmp_path / "a")
    assert "No Azure OpenAI accounts" in failed_checks(reports["fetch_shared"])["sync_not_empty"]
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        status = con.execute(
            "SELECT state, last_successful_sync, accounts_in_scope, usage_rows FROM azure_openai.connection_status"
        ).fetchall()
    # Synced successfully (nothing to read is not a failure), with no accounts and no rows.
    assert status == [("healthy", NOW.replace(tzinfo=None), 0, 0)]
    config, reports = project(
        [ConnectionSpec("sandbox", NO_USAGE, f"{DEV}/resourceGroups/rg-dev-sandbox")], workdir=tmp_path / "b"
    )
    assert "returned no token usage" in failed_checks(reports["fetch_sandbox"])["sync_not_empty"]


def test_range_past_retention_syncs_newer_days_with_one_clear_message(project):
    first = NOW.date() - timedelta(days=100)
    connections = [ConnectionSpec("dev", MAIN_PRINCIPAL, DEV)]
    config, reports = project(connections, first=first, last=LAST_DAY)
    assert reports["fetch_dev"].success
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        events = con.execute(
            "SELECT message FROM azure_openai.sync_events WHERE code = 'retention_exceeded'"
        ).fetchall()
        oldest = con.execute("SELECT min(usage_date) FROM azure_openai.usage_daily").fetchone()[0]
    assert len(events) == 1 and "93-day" in events[0][0]
    assert oldest == (NOW - timedelta(days=93)).date() + timedelta(days=1)
    assert_matches_expected(config, connections, first=oldest)


def test_one_account_principal_reads_only_its_account(project):
    scope = f"{DEV}/resourceGroups/rg-ai-dev/providers/Microsoft.CognitiveServices/accounts/aoai-dev-legacy"
    connections = [ConnectionSpec("legacy", ONE_ACCOUNT, scope)]
    config, reports = project(connections)
    assert_matches_expected(config, connections)


def test_bare_account_name_scope_is_resolved_by_discovery(project):
    connections = [ConnectionSpec("weu", MAIN_PRINCIPAL, "aoai-prod-weu")]
    config, reports = project(connections)
    assert reports["fetch_weu"].success
    usage = warehouse_usage(config)
    assert set(usage["resource_name"]) == {"aoai-prod-weu"}
    expected = expected_usage(SCENARIO, FIRST_DAY, LAST_DAY, connections, synced_at=NOW)
    assert_frame_equal(usage, expected.select(usage.columns), check_dtypes=False)


def test_unknown_account_name_fails_the_credentials_check_listing_candidates(project):
    config, reports = project([ConnectionSpec("typo", MAIN_PRINCIPAL, "aoai-prod-wue")])
    report = reports["fetch_typo"]
    assert not report.success
    assert "no Azure OpenAI account named 'aoai-prod-wue'" in report.failure
    assert "aoai-prod-weu" in report.failure  # the candidates are listed


def test_usage_is_rebuilt_from_raw_points_without_calling_azure(project, emulator):
    connections = [ConnectionSpec("dev", MAIN_PRINCIPAL, DEV)]
    config, _ = project(connections)
    before = table_hash(config, "usage_daily")
    with duckdb.connect(str(config.warehouse_path)) as con:
        con.execute("DELETE FROM azure_openai.usage_daily")
    emulator.clear_requests()
    job = build_definitions(config).resolve_job_def("azure_openai_write_usage")
    tags = {"dagster/asset_partition_range_start": str(FIRST_DAY), "dagster/asset_partition_range_end": str(LAST_DAY)}
    result = job.execute_in_process(tags=tags)
    assert result.success
    assert emulator.requests() == []
    assert table_hash(config, "usage_daily") == before
    # Each day's materialization carries that day's totals, so Dagster plots tokens per partition.
    observed = {
        e.partition: e.materialization.metadata["total_tokens"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "azure_openai/usage_daily"
    }
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        per_day = dict(
            con.execute(
                "SELECT strftime(usage_date, '%Y-%m-%d'), sum(total_tokens)::BIGINT "
                "FROM azure_openai.usage_daily GROUP BY ALL"
            ).fetchall()
        )
    assert observed == per_day and len(per_day) == 30


def test_truncation_that_narrowing_cannot_resolve_fails_its_check(project):
    # top=1: a deployment whose model version changed inside the range (gpt-4o, 2026-10-15) has two
    # series on its own, so even the per-deployment query reaches top and the result cannot be trusted.
    connections = [ConnectionSpec("weu", RG_READER, PROD_WEU_RG)]
    config, reports = project(connections, first=NOW.date() - timedelta(days=40), top=1)
    text = failed_checks(reports["fetch_weu"])["no_series_truncated"]
    assert "aoai-prod-weu" in text and "Raise settings.top" in text
