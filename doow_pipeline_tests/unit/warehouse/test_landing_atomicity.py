"""A local landing zone's atomicity rules: a day's manifest names the files of its own sync, so a crash between
the data files and the manifest leaves the previous complete day; superseded files go once they are old,
the previous sync's stay. (The same rules on blob storage, with a real kill -9: integration/test_landing_blob.)"""

from __future__ import annotations

import json
import os
from datetime import date

import duckdb
import pytest

from doow_pipeline.warehouse import landing as landing_module
from doow_pipeline.warehouse.landing import Landing
from doow_pipeline.warehouse.store import write_partitions
from doow_pipeline_tests.unit.warehouse.test_writer_robustness import CONNECTIONS, FIRST, land, tokens

HOUR = 3600


class Crash(Exception):
    pass


def crash_before_manifest(monkeypatch) -> None:
    def crash(connection: str, day: str) -> None:
        raise Crash(f"{connection} {day}")

    monkeypatch.setattr(landing_module, "_kill_point", crash)


def points_files(landing: Landing, day: date) -> list[str]:
    return sorted(p.name for p in (landing.root / landing.day_folder("prod", day)).glob("points*.parquet"))


def test_a_crash_between_the_points_and_the_manifest_leaves_the_previous_complete_day(tmp_path, monkeypatch):
    landing, warehouse = Landing(tmp_path / "landing"), tmp_path / "doow.duckdb"
    land(landing, "prod", FIRST)
    before = landing.manifest("prod", FIRST)
    crash_before_manifest(monkeypatch)
    with pytest.raises(Crash):
        land(landing, "prod", FIRST)
    assert landing.manifest("prod", FIRST) == before
    assert len(points_files(landing, FIRST)) == 3  # the stable name, the first sync's file, the crashed one's
    assert os.path.samefile(
        landing.root / landing.day_folder("prod", FIRST) / "points.parquet", landing.points_file(before)
    )
    summary = write_partitions(warehouse, landing.root, CONNECTIONS, [FIRST])
    assert not summary.corrupt and summary.raw_points == before.rows
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT synced_at::VARCHAR, input_tokens FROM azure_openai.usage_daily").fetchall()
        view = con.execute("SELECT count(*) FROM azure_openai.metric_points").fetchone()[0]
    assert rows == [(before.synced_at.replace("T", " ").removesuffix("+00:00"), tokens("prod", FIRST))]
    assert view == before.rows


def test_superseded_files_go_once_an_hour_old_and_the_previous_syncs_stay(tmp_path):
    landing = Landing(tmp_path / "landing")
    land(landing, "prod", FIRST)
    first = landing.manifest("prod", FIRST)
    land(landing, "prod", FIRST)
    second = landing.manifest("prod", FIRST)
    for path in (landing.points_file(first), landing.points_file(second)):  # both written two hours ago
        os.utime(path, (path.stat().st_atime - 2 * HOUR, path.stat().st_mtime - 2 * HOUR))
    land(landing, "prod", FIRST)
    third = landing.manifest("prod", FIRST)
    names = points_files(landing, FIRST)
    assert landing.points_file(first).name not in names  # two syncs old and over an hour: deleted
    assert landing.points_file(second).name in names  # the previous sync's: a writer may be reading it
    assert landing.points_file(third).name in names and "points.parquet" in names
    assert len({first.sync_id, second.sync_id, third.sync_id}) == 3


def test_a_manifest_from_before_sync_named_files_still_reads_its_points_parquet(tmp_path):
    landing, warehouse = Landing(tmp_path / "landing"), tmp_path / "doow.duckdb"
    land(landing, "prod", FIRST)
    manifest_path = landing.manifest_path("prod", FIRST)
    legacy = json.loads(manifest_path.read_text())
    for key in ("sync_id", "points_file", "activity_files"):  # fields older manifests do not have
        del legacy[key]
    manifest_path.write_text(json.dumps(legacy))
    for path in (landing.root / landing.day_folder("prod", FIRST)).glob("points.*.parquet"):
        path.unlink()  # a landing zone written by an older version: only points.parquet
    assert write_partitions(warehouse, landing.root, CONNECTIONS, [FIRST]).raw_points == 3


def test_the_writer_points_the_views_name_at_the_file_the_manifest_names(tmp_path):
    """Two syncs of one day raced and the loser linked `points.parquet` last: the writer repairs the link."""
    landing, warehouse = Landing(tmp_path / "landing"), tmp_path / "doow.duckdb"
    land(landing, "prod", FIRST)
    loser = landing.points_file(landing.manifest("prod", FIRST))
    land(landing, "prod", FIRST)
    winner = landing.points_file(landing.manifest("prod", FIRST))
    stable = landing.root / landing.day_folder("prod", FIRST) / "points.parquet"
    stable.unlink()
    os.link(loser, stable)
    write_partitions(warehouse, landing.root, CONNECTIONS, [FIRST])
    assert os.path.samefile(stable, winner)
