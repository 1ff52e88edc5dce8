"""The analyst copy: every writer publishes a read-only copy of the warehouse, atomically, so readers (BI tools,
notebooks) never hold the writer's file; a failed publish leaves the write committed and the previous copy.

Readers run in another process (doow_pipeline_tests/readers.py): DuckDB's lock is per process.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from doow_pipeline.core.problems import WarehouseError
from doow_pipeline.usage.pricing import DeploymentTypes
from doow_pipeline.warehouse.cost import CostOptions, write_cost
from doow_pipeline.warehouse.database import connect
from doow_pipeline.warehouse.landing import Landing
from doow_pipeline.warehouse.store import delete_connection, write_partitions
from doow_pipeline_tests.readers import Reader, database_rows
from doow_pipeline_tests.unit.warehouse.test_writer_robustness import (
    CONNECTIONS,
    FIRST,
    days,
    expected,
    fill,
    land,
    usage,
)

USAGE_COUNT = "SELECT count(*), sum(input_tokens) FROM azure_openai.usage_daily"


def landed(tmp_path: Path, span) -> Landing:
    landing = Landing(tmp_path / "landing")
    for day in span:
        for connection in ("prod", "research"):
            land(landing, connection, day)
    return landing


def test_a_write_publishes_a_copy_equal_to_the_warehouse_whose_raw_points_view_works(tmp_path):
    span = days(FIRST, 3)
    landing = landed(tmp_path, span)
    warehouse, copy = tmp_path / "doow.duckdb", tmp_path / "doow.analyst.duckdb"
    summary = write_partitions(warehouse, landing.root, CONNECTIONS, span, analyst_copy=copy)
    assert summary.publication is not None and summary.publication.ok, summary.publication
    assert summary.publication.size_bytes == copy.stat().st_size > 0
    assert database_rows(copy) == database_rows(warehouse)
    # metric_points is a view over the landing files by absolute path: it reads them from the copy too
    with Reader(copy) as reader:
        assert reader.query("SELECT count(*) FROM azure_openai.metric_points") == [[3 * 2 * 3]]
    assert not list(tmp_path.glob(".doow.analyst.duckdb.*"))  # no temporary file left


def test_without_an_analyst_copy_nothing_is_published(tmp_path):
    landing = landed(tmp_path, [FIRST])
    summary = write_partitions(tmp_path / "doow.duckdb", landing.root, CONNECTIONS, [FIRST])
    assert summary.publication is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doow.duckdb", "landing"]


def test_a_reader_of_the_warehouse_itself_blocks_the_writer(tmp_path):
    """Why the copy exists: a read-only session on the writer's own file makes every writer wait."""
    landing = landed(tmp_path, [FIRST])
    warehouse = tmp_path / "doow.duckdb"
    write_partitions(warehouse, landing.root, CONNECTIONS, [FIRST])
    with Reader(warehouse):
        with pytest.raises(WarehouseError, match="held by another process"):
            with connect(warehouse, wait_seconds=0.3):
                pass


def test_a_reader_holding_the_copy_never_blocks_a_write_and_sees_the_new_data_on_reconnect(tmp_path):
    span = days(FIRST, 4)
    landing = landed(tmp_path, span)
    warehouse, copy = tmp_path / "doow.duckdb", tmp_path / "doow.analyst.duckdb"
    write_partitions(warehouse, landing.root, CONNECTIONS, span[:1], analyst_copy=copy)
    with Reader(copy) as reader:
        before = reader.query(USAGE_COUNT)
        assert before[0][0] == 2
        # the writer must not wait at all: a lock held on its file would make it wait, then fail
        summary = write_partitions(warehouse, landing.root, CONNECTIONS, span, analyst_copy=copy)
        assert summary.publication is not None and summary.publication.ok
        cost = write_cost(warehouse, span, CostOptions(DeploymentTypes(), {}), datetime(2026, 11, 20, tzinfo=UTC), copy)
        assert cost.publication is not None and cost.publication.ok
        assert reader.query(USAGE_COUNT) == before  # the open session keeps the copy it opened
        files = reader.open_files()
        assert not [f for f in files if f.startswith(str(warehouse))], files  # it never opened the writer's file
        reader.reconnect()
        assert reader.query(USAGE_COUNT)[0][0] == 2 * len(span)
        purged = delete_connection(warehouse, "research", copy)
        assert purged.publication is not None and purged.publication.ok
        assert purged.counts["usage_daily"] == len(span)
        reader.reconnect()
        assert reader.query("SELECT DISTINCT connection FROM azure_openai.usage_daily") == [["prod"]]
    assert database_rows(copy) == database_rows(warehouse)


@pytest.fixture
def copy_disk(tmp_path):
    """A real 16 MiB tmpfs for the analyst copy (root may mount one; the test says so when it cannot): room for
    two copies of the test's warehouse, the published one and the one being published."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (run as root): {result.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_failed_publish_keeps_the_write_and_the_previous_copy(copy_disk, tmp_path):
    """A full disk under the copy's folder: the write is committed, the publish fails with the cause named and
    the previous copy stays, byte for byte; the next write with room publishes again."""
    span = days(FIRST, 30)
    landing = landed(tmp_path, span)
    warehouse, copy = tmp_path / "doow.duckdb", copy_disk / "doow.analyst.duckdb"
    first = write_partitions(warehouse, landing.root, CONNECTIONS, span[:1], analyst_copy=copy)
    assert first.publication is not None and first.publication.ok
    previous = copy.read_bytes()
    filler = fill(copy_disk, copy.stat().st_size // 2)  # less room than a second copy needs
    try:
        summary = write_partitions(warehouse, landing.root, CONNECTIONS, span, analyst_copy=copy)
    finally:
        remaining = sorted(p.name for p in copy_disk.iterdir())
        filler.unlink()
    publication = summary.publication
    assert publication is not None and not publication.ok
    assert "No space left on device" in (publication.error or "")
    assert f"publishing the analyst copy {copy} failed" in publication.message
    assert usage(warehouse) == expected({"prod": span, "research": span})  # the write itself is committed
    assert copy.read_bytes() == previous  # readers keep the previous copy
    assert remaining == ["doow.analyst.duckdb", "filler"]  # no temporary file left on the full disk
    again = write_partitions(warehouse, landing.root, CONNECTIONS, span, analyst_copy=copy)
    assert again.publication is not None and again.publication.ok
    assert database_rows(copy) == database_rows(warehouse)
