"""What the Dagster UI shows, read from the instance it serves (run records, materialization events, check
evaluations) and through its GraphQL API: each partition's own numbers after a range run, a failing
connection that stops nobody else, runs of `doow-azure sync` filed under their jobs, and a quiet start.

Every number is compared with totals computed independently from the emulator's scenario
(`expected_usage`, the generator's true daily usage), never with numbers the pipeline produced.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from doow_pipeline.config import load_config
from doow_pipeline.defs.project import build_definitions
from doow_pipeline.defs.runs import sync_range
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.azure_emulator.usage import expected_daily_usage
from doow_pipeline_tests.dagster_ui import dagster_ui
from doow_pipeline_tests.demo import DEMO_CONNECTIONS, EXPIRED, PROD, dagster_home
from doow_pipeline_tests.project import (
    AZURE_OPENAI_KINDS,
    ConnectionSpec,
    expected_usage,
    readable_by,
    secret_env_name,
    write_project,
)

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=6)
DAYS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
USAGE = dg.AssetKey(["azure_openai", "usage_daily"])
ACCOUNTS = dg.AssetKey(["azure_openai", "accounts"])
STATUS = dg.AssetKey(["azure_openai", "connection_status"])


def _in_scope(spec: ConnectionSpec, resource_id: str) -> bool:
    scope, rid = spec.scope.rstrip("/").lower(), resource_id.lower()
    return rid == scope or rid.startswith(scope + "/")


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dg.AssetMaterialization]:
    """The latest materialization of each partition of `key`."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1000).records
    latest: dict[str, dg.AssetMaterialization] = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        materialization = record.asset_materialization
        assert materialization is not None and materialization.partition is not None
        latest[materialization.partition] = materialization
    return latest


def _value(materialization: dg.AssetMaterialization, name: str) -> object:
    return materialization.metadata[name].value


@pytest.fixture
def synced(tmp_path, emulator, monkeypatch):
    """The demo estate synced for 7 days with `doow-azure sync`'s runs, recorded in a DAGSTER_HOME instance."""
    path = write_project(tmp_path / "project", emulator.endpoints, SCENARIO, DEMO_CONNECTIONS)
    for spec in DEMO_CONNECTIONS:
        monkeypatch.setenv(secret_env_name(spec.name), SCENARIO.principals[spec.client_id.lower()].secret)
    home = dagster_home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = load_config(path)
    reports = sync_range(config, FIRST, LAST)
    assert all(r.success for r in reports), [(r.job, r.failure) for r in reports]
    with dg.DagsterInstance.get() as instance:
        yield config, instance


@pytest.mark.slow
def test_each_partition_of_a_range_run_shows_that_days_own_numbers(synced):
    config, instance = synced
    expected = expected_usage(SCENARIO, FIRST, LAST, DEMO_CONNECTIONS, synced_at=NOW)
    usage = _materializations(instance, USAGE)
    assert sorted(usage) == [d.isoformat() for d in DAYS]
    for day in DAYS:
        rows = expected.filter(pl.col("usage_date") == day)
        materialization = usage[day.isoformat()]
        assert rows.height > 0
        assert _value(materialization, "dagster/row_count") == rows.height
        for column in ("input_tokens", "output_tokens", "total_tokens", "requests"):
            assert _value(materialization, column) == rows[column].sum(), (day, column)
        by_connection = {
            r.data["connection"]: r.data["total_tokens"]
            for r in _value(materialization, "tokens_by_connection").records
        }
        truth = dict(rows.group_by("connection").agg(pl.col("total_tokens").sum()).iter_rows())
        assert by_connection == truth
        by_model = {
            (r.data["model_name"], r.data["model_version"]): r.data["total_tokens"]
            for r in _value(materialization, "tokens_by_model").records
        }
        truth = {
            (m or "(not reported)", v or "(not reported)"): t
            for m, v, t in rows.group_by("model_name", "model_version").agg(pl.col("total_tokens").sum()).iter_rows()
        }
        assert by_model == truth
        assert _value(materialization, "connections_missing") == "none"
    # The days differ, so a range total copied onto every partition could not pass the loop above.
    assert len({_value(m, "total_tokens") for m in usage.values()}) > 1

    accounts_in_scope = sum(
        1
        for spec in DEMO_CONNECTIONS
        for a in SCENARIO.accounts
        if _in_scope(spec, a.id) and a.kind.lower() in AZURE_OPENAI_KINDS
    )
    for day, materialization in _materializations(instance, ACCOUNTS).items():
        assert _value(materialization, "dagster/row_count") == accounts_in_scope, day

    truth = expected_daily_usage(SCENARIO, FIRST, LAST)
    for spec in DEMO_CONNECTIONS:
        points = _materializations(instance, dg.AssetKey(["azure_openai", f"{spec.name}_metric_points"]))
        assert sorted(points) == [d.isoformat() for d in DAYS]
        for day in DAYS:
            # The raw TotalTokens-type points of every family the readable accounts emit, summed for the day.
            raw = sum(
                r["total_tokens"]
                for r in truth
                if r["day"] == day
                and _in_scope(spec, r["resource_id"])
                and readable_by(SCENARIO, spec.client_id, r["resource_id"])
            )
            materialization = points[day.isoformat()]
            assert _value(materialization, "landed") is True
            assert _value(materialization, "total_token_points_sum") == raw, (spec.name, day)


@pytest.mark.slow
def test_sync_runs_are_attached_to_the_code_location(synced):
    _config, instance = synced
    runs = instance.get_runs()
    assert sorted(r.job_name for r in runs) == [
        "azure_openai_cost",
        "azure_openai_write_usage",
        "fetch_dev",
        "fetch_prod",
        "fetch_research",
    ]
    for run in runs:
        origin = run.remote_job_origin
        assert origin is not None, run.job_name
        assert origin.job_name == run.job_name
        assert origin.repository_origin.code_location_origin.location_name == "doow_pipeline"
        assert origin.repository_origin.repository_name == "__repository__"
    for job in {r.job_name for r in runs}:
        # How the UI lists a job's runs: by job name and the "<repository>@<location>" tag the origin gives.
        under_job = instance.get_run_ids(
            dg.RunsFilter(job_name=job, tags={".dagster/repository": "__repository__@doow_pipeline"})
        )
        assert len(under_job) == 1, job


def _usage_table(config) -> pl.DataFrame:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.execute("SELECT * FROM azure_openai.usage_daily ORDER BY ALL").pl()


def _status(config) -> dict[str, dict[str, object]]:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        cursor = con.execute("SELECT * FROM azure_openai.connection_status")
        columns = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}


@pytest.mark.slow
def test_a_failing_connection_in_the_scheduled_run_stops_nobody(tmp_path, emulator, monkeypatch):
    """dev syncs, then its secret goes wrong; an expired connection is configured too. The scheduled run writes
    everyone else's usage, keeps dev's days, and connection_status names both failures with their fix."""
    specs = [*DEMO_CONNECTIONS, ConnectionSpec("expired", EXPIRED, PROD)]
    path = write_project(tmp_path / "project", emulator.endpoints, SCENARIO, specs, resync_days=3)
    for spec in specs:
        monkeypatch.setenv(secret_env_name(spec.name), SCENARIO.principals[spec.client_id.lower()].secret)
    config = load_config(path)
    definitions = build_definitions(config)
    schedule = definitions.get_schedule_def("daily_azure_openai_sync")
    tick = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=UTC) + timedelta(hours=3, minutes=30)
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    first, today = (date.fromisoformat(request.tags[f"dagster/asset_partition_range_{e}"]) for e in ("start", "end"))
    assert (first, today) == (NOW.date() - timedelta(days=3), NOW.date())
    job = definitions.resolve_job_def("azure_openai_sync")
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(tags=request.tags, instance=instance, raise_on_error=False).success
        before = _usage_table(config)
        monkeypatch.setenv("DOOW_SECRET_DEV", "not-the-secret")
        result = job.execute_in_process(tags=request.tags, instance=instance, raise_on_error=False)
    assert result.success  # the writer and connection_status ran
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"azure_openai/usage_daily", "azure_openai/accounts", "azure_openai/connection_status"} <= materialized
    # dev's days keep their previous rows; everyone else's are rewritten with the same (frozen) data.
    after = _usage_table(config)
    assert after.equals(before)
    healthy = [s for s in specs if s.name != "expired"]
    expected = expected_usage(SCENARIO, first, today - timedelta(days=1), healthy, synced_at=NOW)
    complete = after.filter(pl.col("usage_date") < today)
    assert complete.height == expected.height > 0
    assert set(complete["connection"]) == {"prod", "dev", "research"}

    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    for name in ("dev", "expired"):
        credentials = evaluations[(f"azure_openai/{name}_metric_points", "credentials_and_monitoring_reader")]
        assert not credentials.passed and credentials.severity == dg.AssetCheckSeverity.ERROR
        health = evaluations[("azure_openai/connection_status", f"{name}_healthy")]
        assert not health.passed and health.severity == dg.AssetCheckSeverity.ERROR
    assert evaluations[("azure_openai/connection_status", "prod_healthy")].passed
    landed = evaluations[("azure_openai/usage_daily", "all_connections_landed")]
    assert not landed.passed and landed.severity == dg.AssetCheckSeverity.WARN
    assert "expired" in landed.description and "dev" not in landed.description.split("from:")[1]

    status = _status(config)
    assert status["prod"]["state"] == "healthy" and status["prod"]["cause"] is None
    assert status["research"]["state"] == "degraded" and "ais-research-restricted" in status["research"]["cause"]
    assert status["dev"]["state"] == "failing" and "secret" in status["dev"]["cause"].lower()
    assert status["dev"]["next_action"] and "Fix:" not in status["dev"]["next_action"]
    assert status["expired"]["state"] == "failing" and "expired" in status["expired"]["cause"]
    assert "new client secret" in status["expired"]["next_action"]
    # Each failing connection's partitions say why nothing landed.
    for partition in (first, today):
        events = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() == "azure_openai/dev_metric_points" and e.partition == partition.isoformat()
        ]
        metadata = events[0].step_materialization_data.materialization.metadata
        assert metadata["landed"].value is False and "wrong_secret" in metadata["not_landed_because"].value


NOISE = ("BetaWarning", "SupersessionWarning", "PreviewWarning", "Found a dagster instance configuration value")


@pytest.mark.slow
def test_the_ui_shows_runs_under_jobs_every_check_evaluated_and_starts_quietly(synced, tmp_path):
    config, _instance = synced
    log = tmp_path / "dagster-dev.log"
    with dagster_ui(config.path, dagster_home(tmp_path), log) as ui:
        nodes = ui.graphql(
            "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks "
            "{ checks { name executionForLatestMaterialization { status } } } } } }"
        )["assetNodes"]
        checks = {
            (("/".join(n["assetKey"]["path"])), c["name"]): c["executionForLatestMaterialization"]
            for n in nodes
            for c in n["assetChecksOrError"]["checks"]
        }
        # usage_daily 10 (with landing_files_readable), accounts 2, one per connection, cost 3
        assert len(checks) == 4 * len(DEMO_CONNECTIONS) + 10 + 2 + len(DEMO_CONNECTIONS) + 3
        unevaluated = [k for k, execution in checks.items() if execution is None]
        assert not unevaluated  # the UI opens with every check evaluated

        runs = ui.graphql(
            '{ pipelineOrError(params: {repositoryLocationName: "doow_pipeline", repositoryName: '
            '"__repository__", pipelineName: "fetch_prod"}) { ... on Pipeline { runs { runId '
            "repositoryOrigin { repositoryLocationName } } } } }",
        )
        (run,) = runs["pipelineOrError"]["runs"]
        assert run["repositoryOrigin"]["repositoryLocationName"] == "doow_pipeline"

        day = LAST.isoformat()
        events = ui.graphql(
            '{ assetOrError(assetKey: {path: ["azure_openai", "usage_daily"]}) { ... on Asset '
            f'{{ assetMaterializations(partitions: ["{day}"]) {{ partition metadataEntries {{ label '
            "... on IntMetadataEntry { intValue } } } } } }",
        )
        (materialization,) = events["assetOrError"]["assetMaterializations"]
        entries = {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}
        expected = expected_usage(SCENARIO, LAST, LAST, DEMO_CONNECTIONS, synced_at=NOW)
        assert entries["dagster/row_count"] == expected.height
        assert entries["total_tokens"] == expected["total_tokens"].sum()
    text = log.read_text()
    assert not [line for line in text.splitlines() if any(n in line for n in NOISE)], text[-3000:]
