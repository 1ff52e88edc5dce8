"""Analysts never block a sync: an analyst's read-only session on the analyst copy stays open through a whole
`doow-azure sync` (fetch runs, the writer, the cost run), the sync succeeds, and after reconnecting the session
sees the new data, equal to the warehouse and to the usage computed from the emulator's scenario.

The analyst is another process (doow_pipeline_tests/readers.py): DuckDB's lock is per process, so a session
inside the test process would prove nothing. The sync runs in the test process, as the CLI runs it.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import duckdb
import pytest
from polars.testing import assert_frame_equal

from doow_pipeline_tests.cli_support import MAIN, NOW, PROD, SCENARIO, CliProject, restore_environ
from doow_pipeline_tests.project import ConnectionSpec, expected_usage, write_project
from doow_pipeline_tests.readers import Reader, database_rows

pytestmark = pytest.mark.slow

LAST = NOW.date() - timedelta(days=1)
CONNECTIONS = [ConnectionSpec("prod", MAIN, PROD)]
USAGE = "SELECT count(*), min(usage_date), max(usage_date) FROM azure_openai.usage_daily"


@pytest.fixture(autouse=True)
def clean_environ():
    snapshot = dict(os.environ)
    yield
    restore_environ(snapshot)


def test_a_session_open_on_the_analyst_copy_through_a_whole_sync(tmp_path, emulator):
    write_project(tmp_path, emulator.endpoints, SCENARIO, CONNECTIONS)
    project = CliProject(tmp_path)
    warehouse, copy = tmp_path / "doow.duckdb", tmp_path / "doow.analyst.duckdb"
    project.run("sync", "--from", str(LAST), "--to", str(LAST), expect=0)
    assert database_rows(copy) == database_rows(warehouse)

    first = LAST - timedelta(days=6)
    with Reader(copy) as analyst:
        before = analyst.query(USAGE)
        assert before[0][0] > 0 and before[0][1] == before[0][2] == str(LAST)
        result = project.run("sync", "--from", str(first), "--to", str(LAST), "--json", expect=0)
        runs = json.loads(result.stdout)["runs"]
        assert all(r["success"] and not r["warnings"] for r in runs), runs
        assert analyst.query(USAGE) == before  # the open session keeps the copy it opened
        held = analyst.open_files()
        assert not [f for f in held if f.startswith(str(warehouse))], held  # never the writer's file
        assert [f for f in held if f.startswith(str(copy))], held
        analyst.reconnect()
        after = analyst.query(USAGE)
    assert after[0][1:] == [str(first), str(LAST)]
    assert database_rows(copy) == database_rows(warehouse)
    with duckdb.connect(str(copy), read_only=True) as con:
        with_copy = con.execute("SELECT * FROM azure_openai.usage_daily").pl()
    wanted = expected_usage(SCENARIO, first, LAST, CONNECTIONS, synced_at=NOW)
    keys = ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"]
    assert with_copy.height == wanted.height == after[0][0] > 0
    assert_frame_equal(
        with_copy.sort(keys, nulls_last=True),
        wanted.select(with_copy.columns).sort(keys, nulls_last=True),
        check_dtypes=False,
    )

    status = json.loads(project.run("status", "--json", expect=0).stdout)
    assert status["analyst_copy"]["path"] == str(copy)
    assert status["analyst_copy"]["published_at"] is not None
