"""The daily schedule's run request, and concurrent syncs sharing one DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from doow_pipeline.config import load_config
from doow_pipeline.defs.project import build_definitions
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.demo import DEMO_CONNECTIONS, MAIN_PRINCIPAL, PROD
from doow_pipeline_tests.project import ConnectionSpec, expected_usage, secret_env_name, write_project

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()


def test_schedule_resyncs_the_trailing_days_in_one_run(tmp_path, monkeypatch):
    endpoints = {
        "authority": "https://127.0.0.1:1",
        "arm": "https://127.0.0.1:1",
        "metrics": "https://127.0.0.1:1/{region}",
        "ca_cert": None,
    }
    path = write_project(tmp_path, endpoints, SCENARIO, DEMO_CONNECTIONS, resync_days=3)
    for spec in DEMO_CONNECTIONS:
        monkeypatch.setenv(secret_env_name(spec.name), "unused")
    definitions = build_definitions(load_config(path))
    schedule = definitions.get_schedule_def("daily_azure_openai_sync")
    tick = datetime(2026, 11, 20, 3, 30, tzinfo=UTC)
    requests = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert len(requests) == 1
    assert requests[0].tags["dagster/asset_partition_range_start"] == "2026-11-17"
    assert requests[0].tags["dagster/asset_partition_range_end"] == "2026-11-20"
    assert schedule.job_name == "azure_openai_sync" and schedule.execution_timezone == "UTC"


@pytest.mark.slow
def test_concurrent_syncs_share_the_warehouse_without_lock_failures(tmp_path, emulator):
    connections = [ConnectionSpec("prod", MAIN_PRINCIPAL, PROD)]
    config = write_project(tmp_path, emulator.endpoints, SCENARIO, connections)
    env = {**os.environ, "DOOW_CONNECTIONS": str(config)}
    last = NOW.date() - timedelta(days=1)
    ranges = [
        (last - timedelta(days=13), last - timedelta(days=7)),
        (last - timedelta(days=6), last),
        (last - timedelta(days=9), last - timedelta(days=3)),
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "doow_pipeline.cli", "sync", "--from", str(a), "--to", str(b)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in ranges
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
    warehouse = load_config(config).warehouse_path
    with duckdb.connect(str(warehouse), read_only=True) as con:
        actual = con.execute("SELECT * FROM azure_openai.usage_daily").pl()
    expected = expected_usage(SCENARIO, ranges[0][0], last, connections, synced_at=NOW)
    grain = ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"]
    assert_frame_equal(actual.sort(grain, nulls_last=True), expected.select(actual.columns), check_dtypes=False)
    assert actual.filter(pl.struct(grain).is_duplicated()).height == 0
