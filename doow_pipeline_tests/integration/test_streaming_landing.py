"""Bounded memory (issue 11): a sync stages each answer in the landing zone as it arrives (one piece per answer, a
record batch per day) and merges each day's batches into that day's file, so no process holds a connection's whole
range. Through the real SDKs and the emulator: the piece is on disk after the first answer, before the next call;
the day files are byte for byte the ones landing the whole range at once writes; kill -9 mid-sync leaves every day
as it was and the next sync removes the dead run's staging and lands the same files."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from doow_pipeline.azure import metrics_api
from doow_pipeline.azure.activity import extract_activity
from doow_pipeline.azure.extract import extract_usage
from doow_pipeline.azure.metrics_api import MetricsReader
from doow_pipeline.config import load_config
from doow_pipeline.core.clock import days_between
from doow_pipeline.core.metrics import POINT_SCHEMA
from doow_pipeline.defs.runs import sync_range
from doow_pipeline.services.fetch import SyncOutcome, fetch_connection
from doow_pipeline.services.sessions import open_session
from doow_pipeline.warehouse.landing import DayManifest, Landing, StagedKind, StagingRun
from doow_pipeline.warehouse.store import ConnectionRecord, write_partitions
from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.harness import wait_until
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.demo import MAIN_PRINCIPAL, PROD, RESEARCH
from doow_pipeline_tests.project import ConnectionSpec, secret_env_name, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=6)
# A subscription on the batch path, and one on the per-resource path (with an unreadable account).
CONNECTIONS = [ConnectionSpec("prod", MAIN_PRINCIPAL, PROD), ConnectionSpec("research", MAIN_PRINCIPAL, RESEARCH)]


@pytest.fixture(scope="module")
def environment():
    saved = dict(os.environ)
    for spec in CONNECTIONS:
        os.environ[secret_env_name(spec.name)] = SCENARIO.principals[spec.client_id.lower()].secret
    yield
    os.environ.clear()
    os.environ.update(saved)


def project(workdir: Path, emulator, **settings):
    return load_config(write_project(workdir, emulator.endpoints, SCENARIO, CONNECTIONS, **settings))


def fetch(config, name: str, landing: Landing) -> SyncOutcome:
    connection = next(c for c in config.connections if c.name == name)
    with open_session(connection, os.environ[connection.client_secret_env], config.settings.endpoints) as session:
        return fetch_connection(session, connection, config.settings, landing, FIRST, LAST, NOW)


def landed_files(root: Path) -> dict[str, str]:
    """Every landed day's files but the events and staging, by day and kind: their SHA-256. Data files are named
    by their sync, so they are found through the day's manifest, whose own sync-specific fields are left out."""
    found = {}
    for path in sorted((root / "manifests").rglob("day=*.json")):
        manifest = json.loads(path.read_text())
        where = f"connection={manifest['connection']}/day={manifest['day']}"
        files = {"points": root / "points" / where / manifest["points_file"]}
        for kind, name in (manifest.get("activity_files") or {}).items():
            files[kind] = root / "activity" / kind / where / name
        for kind, file in files.items():
            found[f"{kind}/{where}"] = hashlib.sha256(file.read_bytes()).hexdigest()
        for sync_specific in ("sync_id", "points_file", "activity_files"):
            manifest.pop(sync_specific, None)
        found[f"manifest/{where}"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return found


def table_hashes(warehouse: Path) -> dict[str, str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t: hashlib.sha256(
                repr(con.execute(f"SELECT * FROM azure_openai.{t} ORDER BY ALL").fetchall()).encode()
            ).hexdigest()
            for t in ("usage_daily", "metric_points", "accounts", "requests_daily")
        }


def staged_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "staging").rglob("*.arrow")) if (root / "staging").exists() else []


def record_batches(piece: Path) -> int:
    with pa.memory_map(str(piece)) as source:
        return ipc.open_file(source).num_record_batches


@dataclass
class FirstAnswer:
    """What the landing zone and the emulator held right after the first answer was staged."""

    days: int = 0
    pieces: list[str] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    batch_calls: int = 0
    manifests: int = 0


class WatchedLanding(Landing):
    """The real landing zone, looked at right after the first answer is staged (nothing else changes)."""

    def __init__(self, root: Path, emulator):
        super().__init__(root)
        self.emulator = emulator
        self.first: FirstAnswer | None = None

    def stage(self, run: StagingRun, kind: str, frame: pl.DataFrame) -> None:
        super().stage(run, kind, frame)
        if self.first is None and not frame.is_empty():
            self.first = FirstAnswer(
                days=frame["timestamp"].dt.date().n_unique(),
                pieces=[str(p.relative_to(self.root)) for p in staged_files(self.root)],
                batches=[record_batches(p) for p in staged_files(self.root)],
                batch_calls=len(self.emulator.requests("batch")),
                manifests=len(list((self.root / "manifests").rglob("*.json"))),
            )


def test_each_answer_is_in_the_landing_zone_before_the_next_call(tmp_path, emulator, environment):
    config = project(tmp_path, emulator, concurrency=1)
    landing = WatchedLanding(tmp_path / "landing", emulator)
    emulator.clear_requests()
    outcome = fetch(config, "prod", landing)
    assert outcome.ok and len(outcome.rows_per_day) == 7
    first = landing.first
    assert first is not None
    # One call answered, and its points are already a file: one piece, a record batch per day it holds, nothing
    # landed yet.
    assert first.batch_calls == 1
    assert len(first.pieces) == 1 and first.batches == [first.days] and first.days > 1
    assert all(p.startswith("staging/connection=prod/run=") and "/points/" in p for p in first.pieces)
    assert first.manifests == 0
    assert len(emulator.requests("batch")) > 1, "more calls followed the first answer"
    assert outcome.points == sum(outcome.rows_per_day.values()) > 0
    assert staged_files(landing.root) == [], "the run's staging is gone once it landed"


class RecordedSpool(tempfile.SpooledTemporaryFile):
    """The reader's spool, noting where each answer waited (in memory or in a file on disk) when it is read back."""

    seen: list[tuple[bool, object]] = []

    def read(self, *args):
        RecordedSpool.seen.append((self._rolled, self.name if self._rolled else None))
        return super().read(*args)


def test_answers_wait_for_their_decoding_in_unnamed_temporary_files(tmp_path, emulator, environment, monkeypatch):
    """A getBatch answer waits for its decode slot in a temporary file, not as text in memory: spilled to disk or
    kept in memory, the same days land, byte for byte, and the files have no name (nothing can be left behind)."""
    monkeypatch.setattr(metrics_api.tempfile, "SpooledTemporaryFile", RecordedSpool)
    landed = {}
    for label, in_memory in (("on disk", 1), ("in memory", 1 << 40)):
        RecordedSpool.seen = []
        monkeypatch.setattr(metrics_api, "SPOOL_IN_MEMORY", in_memory)
        config = project(tmp_path / label.replace(" ", "-"), emulator)
        outcome = fetch(config, "prod", Landing(config.landing_dir))
        assert outcome.ok and outcome.points > 0
        calls = len(RecordedSpool.seen)
        assert calls > 1, "the prod subscription is read through getBatch"
        if in_memory == 1:
            assert all(rolled for rolled, _ in RecordedSpool.seen)
            # Unnamed: O_TMPFILE (the name is the descriptor), or where a file system lacks it, unlinked at once.
            assert all(isinstance(name, int) or not Path(str(name)).exists() for _, name in RecordedSpool.seen)
        else:
            assert not any(rolled for rolled, _ in RecordedSpool.seen)
        landed[label] = landed_files(Path(config.landing_dir))
    assert landed["on disk"] == landed["in memory"] and landed["on disk"]


def land_whole_range_at_once(config, name: str, outcome: SyncOutcome, root: Path) -> None:
    """The day files as landing wrote them before staging: the whole range extracted in memory, then each day
    partitioned out of it (activity files first, manifest last) - for the same plans and the same answers."""
    connection = next(c for c in config.connections if c.name == name)
    settings = config.settings
    landing, source = Landing(root), Landing(config.landing_dir)
    with open_session(connection, os.environ[connection.client_secret_env], settings.endpoints) as session:
        reader = MetricsReader(session)
        extraction = extract_usage(
            reader, outcome.plans, FIRST, LAST, now=NOW, top=settings.top, concurrency=settings.concurrency
        )
        readable = [p for p in outcome.plans if p.account.resource_id not in extraction.unreadable]
        activity = extract_activity(
            reader,
            readable,
            FIRST,
            LAST,
            now=NOW,
            paths=extraction.paths,
            top=settings.top,
            concurrency=settings.concurrency,
        )
    assert extraction.synced_days == outcome.extraction.synced_days
    assert extraction.points.height == outcome.points
    by_day = extraction.points.with_columns(pl.col("timestamp").dt.date().alias("_day")).partition_by(
        "_day", as_dict=True, include_key=False
    )
    for day in extraction.synced_days:
        manifest = source.manifest(name, day)
        assert manifest is not None
        landing.write_day(
            DayManifest(manifest.connection, manifest.day, manifest.synced_at, manifest.is_final, manifest.accounts),
            by_day.get((day,), pl.DataFrame(schema=POINT_SCHEMA)),
            {
                kind: frame.filter(pl.col("timestamp").dt.date() == day)
                for kind, frame in (("requests", activity.requests), ("utilization", activity.utilization))
            },
        )


@pytest.mark.parametrize("name", ["prod", "research"])
def test_day_files_are_byte_identical_to_landing_the_whole_range_at_once(name, tmp_path, emulator, environment):
    config = project(tmp_path / "project", emulator)
    outcome = fetch(config, name, Landing(config.landing_dir))
    assert outcome.ok and outcome.points > 0
    land_whole_range_at_once(config, name, outcome, tmp_path / "at-once")
    streamed, at_once = landed_files(config.landing_dir), landed_files(tmp_path / "at-once")
    assert len(streamed) == 7 * 4  # points, requests, utilization, manifest per day
    assert streamed == at_once


def test_kill_9_mid_sync_leaves_every_day_whole_and_the_next_sync_sweeps_its_staging(tmp_path, emulator, environment):
    config = project(tmp_path, emulator, concurrency=1)
    env = {**os.environ, "DOOW_CONNECTIONS": str(config.path)}
    command = [sys.executable, "-m", "doow_pipeline.cli", "sync", "--from", str(FIRST), "--to", str(LAST)]
    emulator.clear_faults()
    assert subprocess.run(command, env=env, capture_output=True, timeout=600).returncode == 0
    before = landed_files(config.landing_dir)
    assert len(before) == 2 * 7 * 4

    # The second answer stalls: the sync is mid-extraction, with the first answer staged, when it is killed.
    emulator.add_faults([{"match": "batch", "action": {"delay": 30}, "nth": [2]}])
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: staged_files(config.landing_dir), timeout=120), "nothing was staged"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
    finally:
        emulator.clear_faults()
    assert staged_files(config.landing_dir), "kill -9 left the run's staging behind"
    assert landed_files(config.landing_dir) == before, "every day is still the previous complete day"

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert staged_files(config.landing_dir) == [], "the next sync removed the dead run's staging"
    assert not [p for p in (config.landing_dir / "staging").rglob("run=*")]
    assert landed_files(config.landing_dir) == before, "the same answers land the same files"


def test_staging_left_by_a_killed_run_is_not_read_by_the_writer(tmp_path, emulator, environment):
    """A dead run's pieces sit outside points/: the writer's tables are those of the complete days alone."""
    clean = project(tmp_path / "clean", emulator)
    assert all(r.success for r in sync_range(clean, FIRST, LAST))
    config = project(tmp_path / "dirty", emulator)
    assert all(r.success for r in sync_range(config, FIRST, LAST))
    # What a killed run leaves: a piece of a landed day (here a whole day's points, so reading it would double
    # the day) and its lock file, which no process holds.
    landing = Landing(config.landing_dir)
    run_dir = landing.staging_dir("prod") / "run=0123456789abcdef"
    (run_dir / "points").mkdir(parents=True)
    day_points = pl.read_parquet(landing.points_path("prod", LAST)).to_arrow()
    with ipc.new_file(str(run_dir / "points" / "000000.arrow"), day_points.schema) as piece:
        piece.write_table(day_points)
    run_dir.with_name(f"{run_dir.name}.lock").touch()
    records = [ConnectionRecord(c.name, c.tenant_id, c.client_id, c.scope, c.cloud) for c in config.connections]
    write_partitions(config.warehouse_path, config.landing_dir, records, days_between(FIRST, LAST))
    assert table_hashes(config.warehouse_path) == table_hashes(clean.warehouse_path)


def test_a_sync_stages_its_activity_too(tmp_path, emulator, environment):
    config = project(tmp_path, emulator, concurrency=1)
    kinds: set[str] = set()

    class Kinds(Landing):
        def stage(self, run: StagingRun, kind: str, frame: pl.DataFrame) -> None:
            super().stage(run, kind, frame)
            kinds.add(kind)

    outcome = fetch(config, "prod", Kinds(config.landing_dir))
    assert outcome.ok
    assert kinds >= {StagedKind.POINTS, StagedKind.REQUESTS}
