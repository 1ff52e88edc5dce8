"""requests_daily and ptu_utilization_hourly end to end (samples.activity_signals_scenario), through the real
SDKs and the emulator, compared with values computed independently from the scenario's generator
(expected_daily_requests, expected_ptu_hourly), on the batch and the per-resource path."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from doow_pipeline.cli.app import app
from doow_pipeline.config import load_config
from doow_pipeline.defs.project import build_definitions
from doow_pipeline.defs.runs import sync_range
from doow_pipeline_tests.azure_emulator.samples import (
    MAIN_CLIENT,
    RG_CLIENT,
    SUB_A,
    THROTTLE_BURST_DAY,
    account_id,
    activity_signals_scenario,
)
from doow_pipeline_tests.azure_emulator.scenario import scenario_from_dict
from doow_pipeline_tests.azure_emulator.usage import expected_daily_requests, expected_ptu_hourly
from doow_pipeline_tests.project import ConnectionSpec, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = scenario_from_dict(activity_signals_scenario())
PTU_ACCOUNT = account_id(SUB_A, "rg-ai", "aoai-ptu")
FIRST, LAST = date(2026, 11, 8), date(2026, 11, 19)
REQUEST_KEY = [
    "usage_date",
    "resource_id",
    "deployment",
    "model_version",
    "metric_region",
    "status_code",
    "is_spillover",
    "tier_request",
    "tier_response",
]


def usage_family(resource_id: str, deployment: str) -> str:
    """usage_daily's family for a deployment: models where the account emits it for the deployment."""
    account = SCENARIO.account(resource_id)
    dep = next(d for d in account.deployments if d.name == deployment)
    return "models" if "models" in account.families_for(dep) else "azure_openai"


def expected_requests(resource_ids: set[str]) -> pl.DataFrame:
    rows = [
        {
            "usage_date": r["day"],
            "resource_id": r["resource_id"],
            "deployment": r["deployment"],
            "model_version": r["version"],
            "metric_region": r["region"],
            "status_code": r["status_code"],
            "is_spillover": r["is_spillover"],
            "tier_request": r["tier_request"],
            "tier_response": r["tier_response"],
            "requests": r["requests"],
            "metric_family": r["family"],
        }
        for r in expected_daily_requests(SCENARIO, FIRST, LAST)
        if r["resource_id"].lower() in resource_ids and r["family"] == usage_family(r["resource_id"], r["deployment"])
    ]
    return pl.DataFrame(rows).sort(REQUEST_KEY)


def expected_utilization() -> pl.DataFrame:
    rows = [
        {
            "hour": r["hour"].replace(tzinfo=None),
            "resource_id": r["resource_id"],
            "deployment": r["deployment"],
            "model_name": r["model"],
            "model_version": r["version"],
            "avg_utilization": r["average"],
            "max_utilization": r["maximum"],
            "metric_family": r["family"],
        }
        for r in expected_ptu_hourly(SCENARIO, FIRST, LAST)
        if r["family"] == "models" and r["resource_id"].lower() == PTU_ACCOUNT.lower()
    ]
    return pl.DataFrame(rows).sort("hour", "deployment")


def sql(config, query: str) -> pl.DataFrame:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.execute(query).pl()


@pytest.fixture
def project(tmp_path, emulator_factory, monkeypatch):
    emulator = emulator_factory(activity_signals_scenario())

    def sync(connection: ConnectionSpec):
        monkeypatch.setenv(secret_env_name(connection.name), SCENARIO.principals[connection.client_id].secret)
        emulator.clear_requests()
        config = load_config(write_project(tmp_path / connection.name, emulator.endpoints, SCENARIO, [connection]))
        reports = sync_range(config, FIRST, LAST)
        assert all(r.success for r in reports), [r.failure for r in reports]
        return config, reports, emulator.requests()

    return sync


def test_requests_and_utilisation_match_the_generator_on_the_batch_path(project):
    config, reports, requests = project(ConnectionSpec("ptu", MAIN_CLIENT, PTU_ACCOUNT))
    actual = sql(config, "SELECT * FROM azure_openai.requests_daily").sort(REQUEST_KEY)
    expected = expected_requests({PTU_ACCOUNT.lower()})
    assert actual.height == expected.height > 0
    assert_frame_equal(actual.select(expected.columns), expected, check_dtypes=False)
    assert set(actual["resource_name"]) == {"aoai-ptu"} and actual["is_final"].any() and not actual["is_final"].all()
    # requests_daily adds up to usage_daily's requests per deployment and day (the same family, never both).
    per_day = sql(
        config,
        "SELECT usage_date, deployment, sum(requests) AS requests FROM azure_openai.requests_daily "
        "GROUP BY ALL ORDER BY ALL",
    )
    usage = sql(
        config,
        "SELECT usage_date, deployment, sum(requests) AS requests FROM azure_openai.usage_daily "
        "GROUP BY ALL ORDER BY ALL",
    )
    assert_frame_equal(per_day, usage, check_dtypes=False)

    hourly = sql(config, "SELECT * FROM azure_openai.ptu_utilization_hourly").sort("hour", "deployment")
    wanted = expected_utilization()
    assert hourly.height == wanted.height == 2 * 24 * 12
    assert_frame_equal(hourly.select(wanted.columns), wanted, check_dtypes=False)

    # The views: throttled share on the burst day, downgraded priority requests, PTU saturation per day.
    burst = date.fromisoformat(THROTTLE_BURST_DAY)
    day = expected.filter(pl.col("usage_date") == burst, pl.col("deployment") == "ptu-main")
    share = day.filter(pl.col("status_code") == "429")["requests"].sum() / day["requests"].sum()
    view = sql(config, f"SELECT * FROM azure_openai.deployment_requests_daily WHERE usage_date = '{burst}'")
    assert view.filter(pl.col("deployment") == "ptu-main")["throttled_share"][0] == pytest.approx(share)
    assert share > 0.2
    downgraded = expected.filter(
        pl.col("usage_date") == burst,
        pl.col("deployment") == "paygo-spill",
        pl.col("tier_request") == "Priority",
        pl.col("tier_response") == "Default",
    )
    assert (
        view.filter(pl.col("deployment") == "paygo-spill")["downgraded_priority_requests"][0]
        == downgraded["requests"].sum()
        > 0
    )
    ptu_day = sql(config, "SELECT * FROM azure_openai.ptu_utilization_daily ORDER BY usage_date, deployment")
    main = ptu_day.filter(pl.col("deployment") == "ptu-main")
    hours = wanted.filter(pl.col("deployment") == "ptu-main")
    by_day = (
        hours.group_by(pl.col("hour").dt.date().alias("usage_date"))
        .agg(
            pl.col("max_utilization").max().alias("max"),
            (pl.col("max_utilization") >= 90).sum().alias("h90"),
            (pl.col("max_utilization") >= 100).sum().alias("h100"),
            pl.col("avg_utilization").mean().alias("avg"),
        )
        .sort("usage_date")
    )
    assert main["max_utilization"].to_list() == by_day["max"].to_list()
    assert main["hours_at_or_above_90"].to_list() == by_day["h90"].to_list()
    assert main["hours_at_100"].to_list() == by_day["h100"].to_list()
    assert main["avg_utilization"].to_list() == pytest.approx(by_day["avg"].to_list())
    assert max(by_day["h100"]) > 0
    quiet = ptu_day.filter(pl.col("deployment") == "ptu-quiet")
    assert quiet["hours_at_or_above_90"].sum() == 0 and quiet.height == 12

    # Extra calls: one batch call per chunk and family for the request splits and for utilisation (1 chunk).
    batch_bodies = [r for r in requests if r["kind"] == "batch"]
    assert len(batch_bodies) == 2 + 4  # the two token families, then 2 request splits + 2 utilisation

    # Dagster: the per-day observation of usage_daily carries the day's throttled share and PTU peak.
    job = build_definitions(config).resolve_job_def("azure_openai_write_usage")
    result = job.execute_in_process(
        tags={"dagster/asset_partition_range_start": str(FIRST), "dagster/asset_partition_range_end": str(LAST)}
    )
    assert result.success
    observed = {
        e.event_specific_data.asset_observation.partition: e.event_specific_data.asset_observation.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    all_burst = expected.filter(pl.col("usage_date") == burst)
    assert observed[str(burst)]["throttled_share"].value == pytest.approx(
        all_burst.filter(pl.col("status_code") == "429")["requests"].sum() / all_burst["requests"].sum(), abs=1e-6
    )
    assert observed[str(burst)]["ptu_max_utilization"].value == by_day.filter(pl.col("usage_date") == burst)["max"][0]

    # doow-azure status: throttled share and PTU peaks per deployment.
    cli = CliRunner().invoke(
        app,
        ["--frozen-clock", SCENARIO.current_time().isoformat(), "status", "ptu", "--days", "12", "--json"],
        env={"DOOW_CONNECTIONS": str(config.path), "COLUMNS": "200"},
    )
    assert cli.exit_code == 0, cli.stdout + cli.stderr
    activity = {a["deployment"]: a for a in json.loads(cli.stdout)["connections"][0]["activity"]}
    assert set(activity) == {"ptu-main", "paygo-spill", "ptu-quiet"}  # `plain` has nothing to report
    main_rows = expected.filter(pl.col("deployment") == "ptu-main")
    assert activity["ptu-main"]["throttled_share"] == pytest.approx(
        main_rows.filter(pl.col("status_code") == "429")["requests"].sum() / main_rows["requests"].sum()
    )
    assert activity["ptu-main"]["worst_day_throttled_share"] == pytest.approx(share)
    assert activity["ptu-main"]["ptu_max_utilization"] == 100.0
    assert activity["ptu-main"]["ptu_hours_at_100"] == by_day["h100"].sum()
    text = (
        CliRunner()
        .invoke(
            app,
            ["--frozen-clock", SCENARIO.current_time().isoformat(), "status", "ptu", "--days", "12"],
            env={"DOOW_CONNECTIONS": str(config.path), "COLUMNS": "200"},
        )
        .stdout
    )
    assert "PTU peak" in text and "ptu-main" in text and "100%" in text


def test_the_per_resource_path_gives_the_same_answers(project):
    scope = f"/subscriptions/{SUB_A}/resourceGroups/rg-ai"
    config, _reports, _requests = project(ConnectionSpec("rg", RG_CLIENT, scope))
    readable = {
        a.id.lower()
        for a in SCENARIO.accounts
        if a.resource_group == "rg-ai" and a.subscription_id == SUB_A and a.kind.lower() in ("openai", "aiservices")
    }
    actual = sql(config, "SELECT * FROM azure_openai.requests_daily").sort(REQUEST_KEY)
    expected = expected_requests(readable)
    assert set(sql(config, "SELECT DISTINCT metrics_api FROM azure_openai.accounts")["metrics_api"]) == {"per_resource"}
    assert_frame_equal(actual.select(expected.columns), expected, check_dtypes=False)
    hourly = sql(config, "SELECT * FROM azure_openai.ptu_utilization_hourly").sort("hour", "deployment")
    assert_frame_equal(hourly.select(expected_utilization().columns), expected_utilization(), check_dtypes=False)
