"""End to end: the demo estate's estimated list cost, prices served by the emulator's Retail Prices API.

The pipeline syncs as a daily schedule would have: once as of 2026-10-22 (the prices then in force are
stored) and once as of the frozen now, 2026-11-20. Every (day, deployment) cost is then compared with
tokens x unit price computed here from the emulator's price fixture (`fixture_prices`, the records the API
served at either clock) and the usage the scenario generates (`expected_usage`), with the meters a person
reading the price list picks for each deployment: never with numbers the pipeline produced.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from doow_pipeline.config import load_config
from doow_pipeline.defs.project import build_definitions
from doow_pipeline.defs.runs import sync_range
from doow_pipeline.usage.focus import validate_focus
from doow_pipeline.usage.pricing import (
    AMBIGUOUS,
    ASSUMED_DEPLOYMENT_TYPE,
    BILLED_AS_CAPACITY,
    COST_STATUSES,
    NO_METER,
    PRICED,
)
from doow_pipeline.warehouse import queries
from doow_pipeline.warehouse.database import connect
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.prices import fixture_prices
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.cost_oracle import DEMO_METERS, prices_in_force, unit_price
from doow_pipeline_tests.demo import DEMO_CONNECTIONS, DEMO_COST_SETTINGS
from doow_pipeline_tests.project import expected_usage, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
FIRST, LAST = date(2026, 10, 21), date(2026, 11, 19)
EARLY_CLOCK = datetime(2026, 10, 22, 6, tzinfo=UTC)  # the first scheduled run of the history
OVERRIDDEN = {k.lower() for k in DEMO_COST_SETTINGS["deployment_types"]["overrides"]}


def _served(item: dict, clock: datetime) -> bool:
    start, end = item["effectiveStartDate"], item.get("effectiveEndDate")
    return start <= clock.strftime("%Y-%m-%dT%H:%M:%SZ") and (
        end is None or clock.strftime("%Y-%m-%dT%H:%M:%SZ") <= end
    )


SERVED = [i for i in fixture_prices() if _served(i, EARLY_CLOCK) or _served(i, NOW)]


def oracle_price(meter_name: str, region: str, day: date) -> tuple[float, int] | None:
    """The list price in force on `day` among the records the API served at one of the two clocks."""
    found = prices_in_force(SERVED, meter_name, region, day)
    return unit_price(max(found, key=lambda r: r["effectiveStartDate"])) if found else None


@pytest.fixture(scope="module")
def demo(tmp_path_factory, emulator):
    """The demo project synced as of 2026-10-22 (one day), then as of now (30 days)."""
    workdir = tmp_path_factory.mktemp("cost")
    env = {secret_env_name(c.name): SCENARIO.principals[c.client_id.lower()].secret for c in DEMO_CONNECTIONS}
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    try:
        emulator.set_clock(EARLY_CLOCK.isoformat())
        path = write_project(
            workdir,
            emulator.endpoints,
            SCENARIO,
            DEMO_CONNECTIONS,
            frozen_clock=EARLY_CLOCK.isoformat(),
            **DEMO_COST_SETTINGS,
        )
        early = {r.job: r for r in sync_range(load_config(path), FIRST, FIRST)}
        emulator.set_clock(NOW.isoformat())
        path = write_project(workdir, emulator.endpoints, SCENARIO, DEMO_CONNECTIONS, **DEMO_COST_SETTINGS)
        config = load_config(path)
        reports = {r.job: r for r in sync_range(config, FIRST, LAST)}
        yield config, early, reports
    finally:
        emulator.reset()
        mp.undo()


def cost_rows(config) -> pl.DataFrame:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        return con.execute("SELECT * FROM azure_openai.usage_cost_daily ORDER BY ALL").pl()


def table_hash(config, table: str) -> str:
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        # priced_at says when a row was priced: a rerun at another clock may change it, never the cost
        columns = "* EXCLUDE (priced_at)" if table == "usage_cost_daily" else "*"
        rows = con.execute(f"SELECT {columns} FROM azure_openai.{table} ORDER BY ALL").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_every_usage_row_is_priced_once_with_a_status(demo):
    config, early, reports = demo
    assert early["azure_openai_cost"].success and reports["azure_openai_cost"].success
    cost = cost_rows(config)
    usage = expected_usage(SCENARIO, FIRST, LAST, DEMO_CONNECTIONS, synced_at=NOW)
    assert cost.height == usage.height > 500
    assert cost["cost_status"].null_count() == 0 and set(cost["cost_status"]) <= set(COST_STATUSES)
    assert set(cost["cost_status"]) == set(COST_STATUSES)  # the demo shows every status
    grain = ["usage_date", "resource_id", "deployment", "model_version", "metric_region"]
    assert cost.select(grain).sort(grain).equals(usage.select(grain).sort(grain))
    assert (cost["currency"] == "USD").all()


def test_cost_per_day_and_deployment_is_tokens_times_the_fixture_price_of_that_day(demo):
    config, _, _ = demo
    cost = cost_rows(config)
    per_key = cost.group_by("usage_date", "resource_name", "resource_region", "deployment").agg(
        pl.col("input_tokens").sum(),
        pl.col("output_tokens").sum(),
        pl.col("cost_status").unique(),
        pl.col("input_meter_name").unique(),
        pl.col("output_meter_name").unique(),
        estimated_cost=pl.when(pl.col("estimated_cost").is_not_null().all()).then(pl.col("estimated_cost").sum()),
    )
    checked = nulls = 0
    for row in per_key.iter_rows(named=True):
        expected = DEMO_METERS[(row["resource_name"], row["deployment"])]
        if isinstance(expected, str):
            assert row["cost_status"] == [expected], (row["deployment"], row["cost_status"])
            assert row["estimated_cost"] is None
            nulls += 1
            continue
        status = PRICED if f"{row['resource_name']}/{row['deployment']}" in OVERRIDDEN else ASSUMED_DEPLOYMENT_TYPE
        assert row["cost_status"] == [status], (row["deployment"], row["usage_date"], row["cost_status"])
        assert row["input_meter_name"] == [expected[0]] and row["output_meter_name"] == [expected[1]]
        price_in = oracle_price(expected[0], row["resource_region"], row["usage_date"])
        assert price_in is not None
        total = row["input_tokens"] / price_in[1] * price_in[0]
        if expected[1] is not None:
            price_out = oracle_price(expected[1], row["resource_region"], row["usage_date"])
            assert price_out is not None
            total += row["output_tokens"] / price_out[1] * price_out[0]
        else:
            assert row["output_tokens"] == 0
        assert row["estimated_cost"] == pytest.approx(total, rel=1e-12), (row["deployment"], row["usage_date"])
        checked += 1
    assert checked > 600 and nulls > 100


def test_the_price_before_the_change_is_kept_from_the_early_run(demo):
    config, _, _ = demo
    agents = cost_rows(config).filter(pl.col("deployment") == "gpt-41-agents")
    before = agents.filter(pl.col("usage_date") < date(2026, 11, 1))["input_unit_price"].unique().to_list()
    after = agents.filter(pl.col("usage_date") >= date(2026, 11, 1))["input_unit_price"].unique().to_list()
    assert before == [0.002] and after == [0.0018]
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        records = con.execute(
            "SELECT count(*) FROM azure_openai.retail_prices WHERE meter_name = 'gpt 4.1 Inp glbl "
            "Tokens' AND arm_region_name = 'westeurope'"
        ).fetchone()[0]
    assert records == 2  # both answers kept, keyed by meterId and effectiveStartDate


def test_ptu_and_unmatched_rows_are_null_with_their_status_and_the_check_names_them(demo):
    config, _, reports = demo
    cost = cost_rows(config)
    for status in (BILLED_AS_CAPACITY, NO_METER, AMBIGUOUS):
        rows = cost.filter(pl.col("cost_status") == status)
        assert rows.height > 0
        assert (
            rows.select(pl.col("input_cost", "output_cost", "estimated_cost").null_count()).row(0) == (rows.height,) * 3
        )
        assert rows["cost_detail"].null_count() == 0
    checks = {c.name.split(":")[-1]: c for c in reports["azure_openai_cost"].checks}
    unmatched = checks["tokens_have_meters"]
    assert not unmatched.passed and unmatched.severity == "WARN"
    assert "Phi-4 version 7" in unmatched.description and "Mistral-Large-2411 version 2" in unmatched.description
    assert "settings.deployment_models" in unmatched.description
    assert "settings.deployment_types" in unmatched.description
    assert checks["prices_fetched"].passed and checks["prices_fresh"].passed


def test_owners_view_and_tags_join_usage(demo):
    config, _, _ = demo
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        owners = dict(
            con.execute(
                "SELECT DISTINCT u.resource_name, o.owner || '/' || coalesce(o.cost_centre, '-') "
                "FROM azure_openai.usage_daily u JOIN azure_openai.account_owners o "
                "USING (usage_date, connection, resource_id)"
            ).fetchall()
        )
        tags = con.execute(
            "SELECT tags FROM azure_openai.accounts WHERE resource_name = 'aoai-prod-eus' LIMIT 1"
        ).fetchone()[0]
    truth = {a.name: dict(a.tags) for a in SCENARIO.accounts}
    assert tags == truth["aoai-prod-eus"]
    assert owners == {
        "aoai-prod-weu": "search-team/CC-1001",
        "aoai-prod-eus": "support-team/CC-2002",  # `Owner` spelled so
        "ais-prod-eus2": "platform-ai/CC-1001",
        "aoai-dev-legacy": "support-team/CC-2002",  # `costcenter`
        "ais-dev-swc": "platform-ai/-",
        "aoai-research-eus2": "research/CC-3003",
    }


def test_the_focus_table_validates_and_carries_the_estimate(demo):
    config, _, _ = demo
    with connect(config.warehouse_path, read_only=True) as con:
        focus = queries.focus_rows(con, FIRST, LAST)
        total = con.execute("SELECT sum(estimated_cost) FROM azure_openai.usage_cost_daily").fetchone()[0]
    assert validate_focus(focus) == []
    assert focus["ListCost"].sum() == pytest.approx(total, rel=1e-9)
    assert focus["BilledCost"].null_count() == focus.height == focus["EffectiveCost"].null_count()
    weu = focus.filter(pl.col("ResourceName") == "aoai-prod-weu")
    assert json.loads(weu["Tags"][0]) == dict(next(a for a in SCENARIO.accounts if a.name == "aoai-prod-weu").tags)


def test_unreachable_prices_api_keeps_stored_prices_and_past_costs(demo, emulator):
    config, _, _ = demo
    before = {t: table_hash(config, t) for t in ("usage_cost_daily", "focus_cost_daily", "retail_prices")}
    emulator.add_faults([{"match": "prices", "action": "reset"}])
    config = config.model_copy(deep=True)
    config.settings.prices_retries = 1  # the retry meets the same reset
    try:
        job = build_definitions(config).resolve_job_def("azure_openai_cost")
        tags = {"dagster/asset_partition_range_start": str(FIRST), "dagster/asset_partition_range_end": str(LAST)}
        result = job.execute_in_process(tags=tags, raise_on_error=False)
    finally:
        emulator.clear_faults()
    assert result.success  # a WARN, not a failure
    evaluations = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    fetched = evaluations["prices_fetched"]
    assert not fetched.passed and fetched.severity.value == "WARN"
    assert "stored" in fetched.description and "last read" in fetched.description
    assert evaluations["prices_fresh"].passed
    assert {t: table_hash(config, t) for t in before} == before
    # Days observed one by one for the Dagster plot; a day's estimated cost equals the table's
    observed = {
        e.event_specific_data.asset_observation.partition: e.event_specific_data.asset_observation.metadata[
            "estimated_cost"
        ].value
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        per_day = dict(
            con.execute(
                "SELECT strftime(usage_date, '%Y-%m-%d'), sum(estimated_cost) "
                "FROM azure_openai.usage_cost_daily GROUP BY ALL"
            ).fetchall()
        )
    assert observed.keys() == per_day.keys() and len(per_day) == 30
    assert all(observed[d] == pytest.approx(per_day[d], rel=1e-12) for d in per_day)


def test_stale_prices_warn(demo):
    config = demo[0].model_copy(deep=True)
    config.settings.frozen_clock = NOW + timedelta(days=30)
    config.settings.prices_urls = {"AzureCloud": "https://127.0.0.1:1"}  # nothing listens there
    config.settings.prices_retries = 0
    job = build_definitions(config).resolve_job_def("azure_openai_cost")
    result = job.execute_in_process(
        tags={"dagster/asset_partition_range_start": str(LAST), "dagster/asset_partition_range_end": str(LAST)},
        raise_on_error=False,
    )
    assert result.success
    evaluations = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert not evaluations["prices_fresh"].passed
    assert "30 day(s) ago" in evaluations["prices_fresh"].description


def test_the_scheduled_job_runs_prices_and_cost_after_usage(demo):
    config, _, _ = demo
    before = table_hash(config, "usage_cost_daily")
    job = build_definitions(config).resolve_job_def("azure_openai_sync")
    result = job.execute_in_process(
        tags={"dagster/asset_partition_range_start": str(LAST), "dagster/asset_partition_range_end": str(LAST)},
        raise_on_error=False,
    )
    assert result.success
    done = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert done.index("azure_openai__retail_prices") < done.index("write_usage_cost_daily")
    assert done.index("write_usage_daily") < done.index("azure_openai__retail_prices")
    assert table_hash(config, "usage_cost_daily") == before  # the same day priced again: the same rows
