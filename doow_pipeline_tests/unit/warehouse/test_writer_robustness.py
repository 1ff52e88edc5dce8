"""The writer never acts on a stale view, survives corrupt landing files, odd folder names and full disks.

Races are forced deterministically: the seam is the writer's request for the warehouse
(`warehouse.store.connect`), the exact moment a second writer may hold the DuckDB lock for minutes. The test
runs the other sync to completion right there, before the first writer gets the warehouse.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from doow_pipeline.core.metrics import POINT_SCHEMA
from doow_pipeline.core.problems import WarehouseError
from doow_pipeline.warehouse import store
from doow_pipeline.warehouse.landing import DayManifest, Landing
from doow_pipeline.warehouse.store import ConnectionRecord, write_partitions

FIRST = date(2026, 11, 1)
GUID = "00000000-0000-0000-0000-000000000001"
CONNECTIONS = [
    ConnectionRecord(name, GUID, GUID, f"/subscriptions/{name}", "AzureCloud") for name in ("prod", "research")
]


def account_id(connection: str) -> str:
    return (
        f"/subscriptions/{connection}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a-{connection}"
    )


def tokens(connection: str, day: date) -> int:
    """Distinct per connection and day, so a lost or swapped day shows."""
    return (1000 if connection == "prod" else 7000) + day.day


def land(landing: Landing, connection: str, day: date) -> None:
    """One account, one deployment: input, output and total tokens for `day`, as a fetch would land them."""
    rid = account_id(connection)
    value = tokens(connection, day)
    stamp = datetime(day.year, day.month, day.day, tzinfo=UTC)
    points = pl.DataFrame(
        [
            {
                "resource_id": rid,
                "family": "models",
                "metric": metric,
                "deployment": "chat",
                "model_name": "gpt-4o",
                "model_version": "1",
                "metric_region": "eastus",
                "timestamp": stamp,
                "total": float(total),
            }
            for metric, total in (("InputTokens", value), ("OutputTokens", 1), ("TotalTokens", value + 1))
        ],
        schema=POINT_SCHEMA,
    )
    account = {
        "tenant_id": GUID,
        "subscription_id": connection,
        "resource_group": "rg",
        "resource_name": f"a-{connection}",
        "resource_id": rid,
        "resource_kind": "OpenAI",
        "resource_region": "eastus",
        "readable": True,
        "metrics_api": "batch",
        "metric_families": "models",
    }
    landing.write_day(
        DayManifest(connection, day.isoformat(), f"{day + timedelta(days=3)}T00:00:00+00:00", True, [account]), points
    )


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]


def usage(warehouse: Path) -> set[tuple[str, date, int]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return set(con.execute("SELECT connection, usage_date, input_tokens FROM azure_openai.usage_daily").fetchall())


def expected(landed: dict[str, list[date]]) -> set[tuple[str, date, int]]:
    return {(c, d, tokens(c, d)) for c, ds in landed.items() for d in ds}


@contextmanager
def when_writer_asks_for_the_warehouse(monkeypatch, action):
    """Runs `action` once, when the next writer asks for the warehouse (before it holds it)."""
    real = store.connect
    fired = []

    @contextmanager
    def connect(path, **kwargs):
        if not fired:
            fired.append(True)
            action()
        with real(path, **kwargs) as con:
            yield con

    monkeypatch.setattr(store, "connect", connect)
    yield fired


@pytest.mark.parametrize("order", [("prod", "research"), ("research", "prod")])
def test_concurrent_syncs_of_different_connections_keep_both(tmp_path, monkeypatch, order):
    """`sync -c A` waits for the warehouse while `sync -c B` lands and writes: both connections' usage stays."""
    warehouse, landing = tmp_path / "doow.duckdb", Landing(tmp_path / "landing")
    first, second = order
    span = days(FIRST, 3)
    for day in span:
        land(landing, first, day)

    def other_sync() -> None:
        for day in span:
            land(landing, second, day)
        write_partitions(warehouse, landing.root, CONNECTIONS, span)

    with when_writer_asks_for_the_warehouse(monkeypatch, other_sync) as fired:
        write_partitions(warehouse, landing.root, CONNECTIONS, span)
    assert fired
    assert usage(warehouse) == expected({"prod": span, "research": span})


def test_concurrent_syncs_over_overlapping_ranges_keep_every_day(tmp_path, monkeypatch):
    """prod syncs days 1-5 while research, over days 3-7, writes first: every landed day of both stays."""
    warehouse, landing = tmp_path / "doow.duckdb", Landing(tmp_path / "landing")
    prod_days, research_days = days(FIRST, 5), days(FIRST + timedelta(days=2), 5)
    for day in prod_days:
        land(landing, "prod", day)

    def research_sync() -> None:
        for day in research_days:
            land(landing, "research", day)
        write_partitions(warehouse, landing.root, CONNECTIONS, research_days)

    with when_writer_asks_for_the_warehouse(monkeypatch, research_sync):
        write_partitions(warehouse, landing.root, CONNECTIONS, prod_days)
    assert usage(warehouse) == expected({"prod": prod_days, "research": research_days})


def test_a_warehouse_folder_with_glob_characters_works(tmp_path):
    folder = tmp_path / "wh[1]"
    landing = Landing(folder / "landing")
    span = days(FIRST, 2)
    for day in span:
        land(landing, "prod", day)
    write_partitions(folder / "doow.duckdb", landing.root, CONNECTIONS, span)
    assert usage(folder / "doow.duckdb") == expected({"prod": span})
    with duckdb.connect(str(folder / "doow.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM azure_openai.metric_points").fetchone()[0] == 6


def _events(warehouse: Path) -> list[tuple[str, str | None, str, str]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "SELECT connection, partition, code, message FROM azure_openai.sync_events "
            "WHERE code = 'corrupt_landing_file' ORDER BY ALL"
        ).fetchall()


@pytest.mark.parametrize("kind", ["manifest", "points", "events"])
def test_a_corrupt_landing_file_is_named_and_blocks_nothing_else(tmp_path, kind):
    warehouse, landing = tmp_path / "doow.duckdb", Landing(tmp_path / "landing")
    span = days(FIRST, 3)
    for connection in ("prod", "research"):
        for day in span:
            land(landing, connection, day)
    landing.write_events("prod", "run1", str(FIRST), datetime(2026, 11, 5, tzinfo=UTC), [])
    write_partitions(warehouse, landing.root, CONNECTIONS, span)
    before = usage(warehouse)
    bad_day = span[1]
    if kind == "manifest":
        path = landing.manifest_path("prod", bad_day)
    elif kind == "points":
        path = landing.points_path("prod", bad_day)
    else:
        path = landing.events_dir("prod") / "run2.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('[{"time": "2026-11-05T00:00:00+00:00", "conn')
    if kind != "events":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated, as by a crash or a full disk

    summary = write_partitions(warehouse, landing.root, CONNECTIONS, span)
    assert [c.path for c in summary.corrupt] == [path]
    check = next(c for c in summary.check_results if c.name == "landing_files_readable")
    assert not check.passed and str(path) in check.description
    # The other connection's days and prod's other days are rewritten; the bad day keeps its previous rows.
    assert usage(warehouse) == before
    events = _events(warehouse)
    assert len(events) == 1
    connection, partition, _, message = events[0]
    assert connection == "prod" and str(path) in message
    if kind == "events":
        assert partition == "run2" and "delete this file" in message
    else:
        assert partition == str(bad_day)
        assert f"doow-azure sync --from {bad_day} --to {bad_day} -c prod" in message
        # Re-syncing the day rewrites the file and heals the warehouse.
        land(landing, "prod", bad_day)
        assert not write_partitions(warehouse, landing.root, CONNECTIONS, span).corrupt
        assert usage(warehouse) == before


def test_an_invalid_warehouse_file_is_named_with_the_fix(tmp_path):
    warehouse = tmp_path / "doow.duckdb"
    warehouse.write_bytes(b"\0" * 4096)
    with pytest.raises(WarehouseError, match=r"is not a readable DuckDB warehouse .* move it away"):
        write_partitions(warehouse, tmp_path / "landing", CONNECTIONS, [FIRST])


# ---- full disks: a real 4 MiB tmpfs (root may mount one; the test says so when it cannot) ------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk tests (run as root): {result.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    stats = os.statvfs(disk)
    filler.write_bytes(b"x" * max(stats.f_bavail * stats.f_frsize - leave, 0))
    return filler


def test_a_warehouse_creation_on_a_full_disk_leaves_no_file_and_names_the_cause(small_disk, tmp_path):
    landing = Landing(tmp_path / "landing")
    land(landing, "prod", FIRST)
    warehouse = small_disk / "doow.duckdb"
    filler = fill(small_disk, 8192)
    with pytest.raises(WarehouseError, match=rf"No space left on device: free space in {small_disk}"):
        write_partitions(warehouse, landing.root, CONNECTIONS, [FIRST])
    assert not warehouse.exists() and not Path(f"{warehouse}.wal").exists()
    filler.unlink()
    write_partitions(warehouse, landing.root, CONNECTIONS, [FIRST])  # the next run, with room, just works
    assert usage(warehouse) == expected({"prod": [FIRST]})


def test_a_full_disk_at_commit_reports_no_space_not_a_failed_rollback(small_disk, tmp_path):
    landing = Landing(tmp_path / "landing")
    span = days(FIRST, 30)
    for day in span:
        for connection in ("prod", "research"):
            land(landing, connection, day)
    warehouse = small_disk / "doow.duckdb"
    write_partitions(warehouse, landing.root, CONNECTIONS, span[:1])
    before = usage(warehouse)
    # Leave just enough room to open the warehouse, not enough for the new rows: the COMMIT hits the full disk.
    for leave in (16384, 32768, 65536):
        filler = fill(small_disk, leave)
        phases: list[str] = []
        try:
            with pytest.raises(WarehouseError) as raised:
                write_partitions(
                    warehouse, landing.root, CONNECTIONS, span, on_phase=lambda n, _s, seen=phases: seen.append(n)
                )
        finally:
            filler.unlink()
        assert usage(warehouse) == before  # the previous data is intact
        if phases and phases[-1] == "commit":
            break
    assert phases and phases[-1] == "commit", "no free-space level made the commit itself fail"
    assert f"No space left on device: free space in {small_disk}" in str(raised.value)
    assert "cannot rollback" not in str(raised.value)
    write_partitions(warehouse, landing.root, CONNECTIONS, span)
    assert usage(warehouse) == expected({"prod": span, "research": span})
