"""The landing zone on Azure Blob Storage (Azurite on 127.0.0.1, the real obstore client), and the atomicity
rules on blob and local landing zones alike.

- Two `doow-azure sync` processes in separate project folders, each with its own connection, share nothing
  but the container; a writer in a third folder reads it and its warehouse equals the totals computed
  independently from the emulator's scenario.
- kill -9 of a fetch between a day's points upload and its manifest upload (forced exactly by the
  DOOW_TEST_KILL_BEFORE_MANIFEST hook, never by timing) leaves the previous complete day: the writer then
  holds the previous sync's rows for that day, the new sync's for the days before it, never a mix.
- A wrong account key and a missing container are named with the fix; the key appears nowhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from azure.storage.blob import BlobServiceClient
from polars.testing import assert_frame_equal

from doow_pipeline.config import load_config
from doow_pipeline.core.landing_location import ACCOUNT_KEY_ENV
from doow_pipeline.core.problems import WarehouseError
from doow_pipeline.warehouse.landing import KILL_BEFORE_MANIFEST_ENV, Landing
from doow_pipeline.warehouse.store import ConnectionRecord, write_partitions
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.demo import MAIN_PRINCIPAL, PROD, PROD_WEU_RG, RESEARCH, RG_READER
from doow_pipeline_tests.project import ConnectionSpec, expected_usage, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=2)
GRAIN = ["usage_date", "resource_id", "deployment", "model_name", "model_version", "metric_region"]


@pytest.fixture
def container(azurite_server) -> str:
    name = f"landing-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite_server.connection_string).create_container(name)
    return name


def blob_settings(azurite_server, container: str, prefix: str = "estate") -> dict[str, str]:
    return {
        "landing": f"az://{container}/{prefix}",
        "landing_account": azurite_server.account_name,
        "landing_endpoint": azurite_server.blob_endpoint,
    }


def cli_sync(config_path: Path, env: dict[str, str], first: date = FIRST, last: date = LAST):
    command = [sys.executable, "-m", "doow_pipeline.cli", "sync", "--from", str(first), "--to", str(last)]
    return subprocess.run(
        command,
        env={**os.environ, **env, "DOOW_CONNECTIONS": str(config_path), "DAGSTER_HOME": str(config_path.parent)},
        cwd=config_path.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


def warehouse_usage(warehouse: Path) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        frame = con.execute("SELECT * FROM azure_openai.usage_daily").pl()
    return frame.sort(GRAIN, nulls_last=True)


def assert_usage(warehouse: Path, expected: pl.DataFrame) -> None:
    actual = warehouse_usage(warehouse)
    assert actual.height == expected.height > 0
    assert_frame_equal(actual, expected.sort(GRAIN, nulls_last=True).select(actual.columns), check_dtypes=False)


def records(config) -> list[ConnectionRecord]:
    return [ConnectionRecord(c.name, c.tenant_id, c.client_id, c.scope, c.cloud) for c in config.connections]


def files_holding(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_two_fetchers_in_separate_folders_share_only_the_container_and_the_writer_reads_it(
    tmp_path, emulator, azurite_server, container, monkeypatch
):
    landing = blob_settings(azurite_server, container)
    env = {ACCOUNT_KEY_ENV: azurite_server.account_key}
    specs = [ConnectionSpec("prod", MAIN_PRINCIPAL, PROD), ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH)]
    for spec in specs:  # each fetcher: its own project folder, connection, warehouse and Dagster instance
        path = write_project(tmp_path / spec.name, emulator.endpoints, SCENARIO, [spec], **landing)
        result = cli_sync(path, env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert azurite_server.account_key not in result.stdout + result.stderr
        # `doow-azure sync` end to end on blob: fetch into the container, write the project's own warehouse.
        assert_usage(load_config(path).warehouse_path, expected_usage(SCENARIO, FIRST, LAST, [spec], synced_at=NOW))
        assert not (tmp_path / spec.name / "landing").exists()
    blobs = BlobServiceClient.from_connection_string(azurite_server.connection_string).get_container_client(container)
    manifests = sorted(b.name for b in blobs.list_blobs(name_starts_with="estate/manifests/"))
    assert len(manifests) == 2 * 3 and {m.split("/")[2] for m in manifests} == {
        "connection=prod",
        "connection=research",
    }

    writer = load_config(write_project(tmp_path / "writer", emulator.endpoints, SCENARIO, specs, **landing))
    monkeypatch.setenv(ACCOUNT_KEY_ENV, azurite_server.account_key)
    days = [FIRST + timedelta(days=i) for i in range(3)]
    summary = write_partitions(writer.warehouse_path, Landing(writer.landing_location), records(writer), days)
    assert not summary.corrupt
    assert_usage(writer.warehouse_path, expected_usage(SCENARIO, FIRST, LAST, specs, synced_at=NOW))
    with duckdb.connect(str(writer.warehouse_path), read_only=True) as con:
        view_points = con.execute("SELECT count(*) FROM azure_openai.metric_points").fetchone()[0]
    assert view_points == summary.raw_points > 0  # the metric_points view reads the writer's local copy
    # A second write reads the cache: nothing changed in the container, the tables are the same.
    again = write_partitions(writer.warehouse_path, Landing(writer.landing_location), records(writer), days)
    assert again.raw_points == summary.raw_points and again.usage_rows == summary.usage_rows
    # A connection purged from the container (disconnect --purge-data) leaves the writer's copy too.
    Landing(writer.landing_location).purge("research")
    assert not list(blobs.list_blobs(name_starts_with="estate/manifests/connection=research/"))
    summary = write_partitions(writer.warehouse_path, Landing(writer.landing_location), records(writer), days)
    assert_usage(writer.warehouse_path, expected_usage(SCENARIO, FIRST, LAST, specs[:1], synced_at=NOW))
    with duckdb.connect(str(writer.warehouse_path), read_only=True) as con:
        left = con.execute("SELECT DISTINCT connection FROM azure_openai.metric_points").fetchall()
    assert left == [("prod",)]
    # The account key is in no file of any project folder, warehouse, cache or Dagster instance.
    assert files_holding(tmp_path, azurite_server.account_key.encode()) == []


@pytest.mark.parametrize("backend", ["local", "blob"])
def test_kill_9_between_points_and_manifest_leaves_the_previous_complete_day(
    backend, tmp_path, emulator, azurite_server, container, monkeypatch
):
    landing = blob_settings(azurite_server, container) if backend == "blob" else {}
    env = {ACCOUNT_KEY_ENV: azurite_server.account_key} if backend == "blob" else {}
    workdir = tmp_path / "project"
    # First sync: the whole subscription. Second sync, same connection name: one resource group only, so its
    # points differ from the first sync's and a manifest paired with the other sync's points would show.
    whole, one_group = ConnectionSpec("prod", MAIN_PRINCIPAL, PROD), ConnectionSpec("prod", RG_READER, PROD_WEU_RG)
    path = write_project(workdir, emulator.endpoints, SCENARIO, [whole], **landing)
    result = cli_sync(path, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = load_config(path)
    if backend == "blob":
        monkeypatch.setenv(ACCOUNT_KEY_ENV, azurite_server.account_key)
    store = Landing(config.landing_location)
    middle = FIRST + timedelta(days=1)
    before = store.manifest("prod", middle)

    path = write_project(workdir, emulator.endpoints, SCENARIO, [one_group], **landing)
    killed = cli_sync(path, {**env, KILL_BEFORE_MANIFEST_ENV: f"prod:{middle}"})
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]

    # The kill came after the middle day's new points were stored and before its manifest was.
    after = store.manifest("prod", middle)
    assert after == before
    points = [o.key for o in store.store.list_prefix(store.day_folder("prod", middle)) if o.key.endswith(".parquet")]
    assert store.points_key(before) in points
    assert any(k not in (store.points_key(before), store.day_folder("prod", middle) + "points.parquet") for k in points)
    assert store.manifest("prod", FIRST).sync_id != before.sync_id  # the day before was landed by the new sync

    days = [FIRST + timedelta(days=i) for i in range(3)]
    summary = write_partitions(config.warehouse_path, store, records(load_config(path)), days)
    assert not summary.corrupt
    expected = pl.concat(
        [
            expected_usage(SCENARIO, FIRST, FIRST, [one_group], synced_at=NOW),
            expected_usage(SCENARIO, middle, LAST, [whole], synced_at=NOW),
        ]
    )
    assert_usage(config.warehouse_path, expected)
    with duckdb.connect(str(config.warehouse_path), read_only=True) as con:
        pairs = con.execute(
            "SELECT s.usage_date, s.raw_points, (SELECT count(*) FROM azure_openai.metric_points p "
            "WHERE p.connection = s.connection AND p.usage_date = s.usage_date) FROM azure_openai.syncs s ORDER BY 1"
        ).fetchall()
    assert [d for d, _, _ in pairs] == days
    assert all(manifest_rows == view_rows for _, manifest_rows, view_rows in pairs), pairs
    # A plain rerun lands the middle day again and heals it.
    result = cli_sync(path, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_usage(config.warehouse_path, expected_usage(SCENARIO, FIRST, LAST, [one_group], synced_at=NOW))


def test_a_wrong_key_and_a_missing_container_are_named_with_the_fix(tmp_path, emulator, azurite_server, container):
    spec = ConnectionSpec("prod", MAIN_PRINCIPAL, PROD)
    config = load_config(
        write_project(tmp_path, emulator.endpoints, SCENARIO, [spec], **blob_settings(azurite_server, container))
    )
    wrong_key = "d3Jvbmcta2V5LW5vdC10aGUtYWNjb3VudHM="
    with pytest.raises(WarehouseError) as raised:
        Landing(config.landing_location, environ={ACCOUNT_KEY_ENV: wrong_key}).manifest("prod", FIRST)
    message = str(raised.value)
    assert f"az://{container}/estate" in message and "Storage Blob Data Contributor" in message
    assert wrong_key not in message and azurite_server.account_key not in message

    missing = load_config(
        write_project(tmp_path / "m", emulator.endpoints, SCENARIO, [spec], **blob_settings(azurite_server, "nothere"))
    )
    with pytest.raises(WarehouseError, match=r"az://nothere/estate .*the container exists"):
        write_partitions(
            missing.warehouse_path,
            Landing(missing.landing_location, environ={ACCOUNT_KEY_ENV: azurite_server.account_key}),
            records(missing),
            [FIRST],
        )
