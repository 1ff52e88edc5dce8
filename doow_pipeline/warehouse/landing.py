"""Landing zone: raw metric points, account inventories and sync events as files, outside DuckDB.

Extraction writes here, so no process holds the DuckDB file while calling Azure. Per connection and day:
  points/connection=<c>/day=<d>/points.parquet   raw points of that day (may be empty: synced, no usage)
  manifests/connection=<c>/day=<d>.json    synced_at, is_final, accounts in scope: the commit marker
and per sync run: events/connection=<c>/<run>.json.
Each file is written to a temporary name and renamed, and a day's manifest is written after its points,
so a crash (even kill -9) leaves either the previous complete day or the new complete day, never a mix.

While a sync extracts, each answer is staged as it arrives, one piece per UTC day, under
  staging/connection=<c>/run=<id>/<kind>/day=<d>/<n>.parquet     (kind: points, requests, utilization)
so memory holds one answer per extraction thread, not the connection's whole range. Landing merges a day's
pieces into that day's file (manifest last, as above) and the run's staging is removed when the run ends.
The writer never reads staging. A live run holds an exclusive lock on staging/connection=<c>/run=<id>.lock;
the kernel drops it when the process dies (even kill -9), so the next sync of the connection removes the
leftovers of dead runs and never those of a run still going.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from ..core.events import SyncEvent
from ..core.metrics import POINT_SCHEMA


class CorruptLandingFile(Exception):
    """A landing file that exists but cannot be read (truncated, not JSON, wrong shape)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class DayManifest:
    connection: str
    day: str
    synced_at: str  # ISO 8601 UTC
    is_final: bool
    accounts: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0


def _atomic_write(path: Path, write: Callable[[str], object], durable: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StagedKind:
    """What a staging piece holds: token points (POINT_SCHEMA) or activity (the request and utilisation schemas)."""

    POINTS = "points"
    REQUESTS = "requests"
    UTILIZATION = "utilization"


@dataclass
class StagingRun:
    """One sync run's staging area, open (and locked) while the run lives."""

    connection: str
    run_id: str
    directory: Path
    lock_fd: int
    _pieces: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_piece(self) -> int:
        with self._lock:  # extraction threads stage concurrently
            return next(self._pieces)


def _write_piece(piece: pl.DataFrame, path: str) -> None:
    piece.write_parquet(path, compression="zstd")


def _day_of(directory: Path) -> date:
    return date.fromisoformat(directory.name.removeprefix("day="))


def _lock_if_dead(lock: Path) -> int | None:
    """An exclusive lock on a run's lock file when no live process holds it (its run is dead), else None."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return None  # removed meanwhile: its run ended
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Landing:
    def __init__(self, root: Path):
        self.root = Path(root)

    def points_path(self, connection: str, day: date | str) -> Path:
        return self.root / "points" / f"connection={connection}" / f"day={day}" / "points.parquet"

    def manifest_path(self, connection: str, day: date | str) -> Path:
        return self.root / "manifests" / f"connection={connection}" / f"day={day}.json"

    def activity_path(self, kind: str, connection: str, day: date | str) -> Path:
        """Activity beyond tokens (kind "requests" or "utilization"): one Parquet file per connection and day."""
        return self.root / "activity" / kind / f"connection={connection}" / f"day={day}" / f"{kind}.parquet"

    def write_activity(self, kind: str, connection: str, day: date | str, frame: pl.DataFrame) -> None:
        ordered = frame.sort(frame.columns, nulls_last=True)
        _atomic_write(
            self.activity_path(kind, connection, day),
            lambda tmp: ordered.write_parquet(tmp, compression="zstd", statistics=True),
        )

    def events_dir(self, connection: str) -> Path:
        return self.root / "events" / f"connection={connection}"

    def write_day(self, manifest: DayManifest, points: pl.DataFrame) -> None:
        # Sorted so a day's file is the same bytes whatever order the extraction threads finished in.
        day_points = points.select(list(POINT_SCHEMA)).sort(list(POINT_SCHEMA), nulls_last=True)
        _atomic_write(
            self.points_path(manifest.connection, manifest.day),
            lambda tmp: day_points.write_parquet(tmp, compression="zstd", statistics=True),
        )
        # A re-sync heals a day whose points file the writer set aside as corrupt.
        self.points_path(manifest.connection, manifest.day).with_name("points.parquet.corrupt").unlink(missing_ok=True)
        manifest.rows = day_points.height
        payload = json.dumps(asdict(manifest), sort_keys=True, indent=1)
        _atomic_write(
            self.manifest_path(manifest.connection, manifest.day),
            lambda tmp: Path(tmp).write_text(payload, encoding="utf-8"),
        )

    def write_events(
        self, connection: str, run_key: str, partition: str, time: datetime, events: list[SyncEvent]
    ) -> None:
        if not events:
            return
        payload = json.dumps(
            [
                {
                    "time": time.isoformat(),
                    "connection": connection,
                    "partition": partition,
                    "level": str(e.level),
                    "code": str(e.code),
                    "message": e.message,
                    "resource": e.resource_id,
                }
                for e in events
            ],
            indent=1,
        )
        _atomic_write(
            self.events_dir(connection) / f"{run_key}.json", lambda tmp: Path(tmp).write_text(payload, encoding="utf-8")
        )

    def manifest(self, connection: str, day: date | str) -> DayManifest | None:
        path = self.manifest_path(connection, day)
        if not path.exists():
            return None
        try:
            return DayManifest(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CorruptLandingFile(path, f"not a valid manifest ({' '.join(str(exc).split())[:200]})") from None

    def event_files(self, connection: str) -> list[Path]:
        directory = self.events_dir(connection)
        return sorted(directory.glob("*.json")) if directory.exists() else []

    # ---- staging: pieces of a run's answers, merged into day files at landing -------------------------------
    def staging_dir(self, connection: str) -> Path:
        return self.root / "staging" / f"connection={connection}"

    @contextmanager
    def staging(self, connection: str) -> Iterator[StagingRun]:
        """A new run's staging area for `connection`, removed when the run ends whatever its outcome. The
        leftovers of the connection's dead runs are removed first."""
        self.sweep_staging(connection)
        run = self._open_staging(connection)
        try:
            yield run
        finally:
            self._close_staging(run)

    def stage(self, run: StagingRun, kind: str, frame: pl.DataFrame) -> None:
        """Writes one answer's rows (points or activity, with a `timestamp` column) as one piece per UTC day.
        Pieces are not fsynced: they are read back by this run only, and a run that dies is not merged."""
        if frame.is_empty():
            return
        by_day = frame.with_columns(pl.col("timestamp").dt.date().alias("_day")).partition_by(
            "_day", as_dict=True, include_key=False
        )
        for (day,), piece in by_day.items():
            path = run.directory / kind / f"day={day}" / f"{run.next_piece():06d}.parquet"
            _atomic_write(path, partial(_write_piece, piece), durable=False)

    def staged_days(self, run: StagingRun, kind: str) -> list[date]:
        directory = run.directory / kind
        return sorted(_day_of(d) for d in directory.glob("day=*")) if directory.exists() else []

    def staged(self, run: StagingRun, kind: str, day: date, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """Every row staged by `run` for `day`, in piece order (empty, with `schema`, when none was)."""
        pieces = sorted((run.directory / kind / f"day={day}").glob("*.parquet"))
        if not pieces:
            return pl.DataFrame(schema=schema)
        return pl.concat([pl.read_parquet(p, glob=False) for p in pieces]).select(list(schema))

    def sweep_staging(self, connection: str) -> list[str]:
        """Removes the staging of the connection's runs whose process is gone; returns their run ids."""
        directory = self.staging_dir(connection)
        if not directory.exists():
            return []
        swept = []
        for lock in sorted([*directory.glob("run=*.lock"), *directory.glob(".run=*.lock.tmp")]):
            fd = _lock_if_dead(lock)
            if fd is None:
                continue
            try:
                run_id = lock.name.removeprefix(".").removeprefix("run=").split(".lock")[0]
                shutil.rmtree(directory / f"run={run_id}", ignore_errors=True)
                lock.unlink(missing_ok=True)
                swept.append(run_id)
            finally:
                os.close(fd)
        # A run's lock file exists before its folder (see _open_staging): a folder without one is left over.
        for folder in directory.glob("run=*"):
            if folder.is_dir() and not folder.with_name(f"{folder.name}.lock").exists():
                shutil.rmtree(folder, ignore_errors=True)
                swept.append(folder.name.removeprefix("run="))
        return swept

    def _open_staging(self, connection: str, attempts: int = 3) -> StagingRun:
        directory = self.staging_dir(connection)
        directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            run_id = uuid.uuid4().hex
            # Locked under a temporary name, then renamed: a sweeper never sees this run's lock file unlocked. A
            # sweeper that took the temporary file between its creation and its lock removed it: try a new id.
            pending = directory / f".run={run_id}.lock.tmp"
            fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.replace(pending, directory / f"run={run_id}.lock")
            except (BlockingIOError, FileNotFoundError):
                os.close(fd)
                if attempt == attempts:
                    raise
                continue
            except BaseException:
                os.close(fd)
                pending.unlink(missing_ok=True)
                raise
            run = StagingRun(connection, run_id, directory / f"run={run_id}", fd)
            try:
                run.directory.mkdir()
            except BaseException:
                self._close_staging(run)
                raise
            return run
        raise AssertionError("unreachable")

    def _close_staging(self, run: StagingRun) -> None:
        try:
            shutil.rmtree(run.directory, ignore_errors=True)
            run.directory.with_name(f"{run.directory.name}.lock").unlink(missing_ok=True)
        finally:
            with suppress(OSError):
                os.close(run.lock_fd)

    def purge(self, connection: str) -> None:
        shutil.rmtree(self.staging_dir(connection), ignore_errors=True)
        for kind in ("points", "manifests", "events"):
            shutil.rmtree(self.root / kind / f"connection={connection}", ignore_errors=True)
        for kind in ("requests", "utilization"):
            shutil.rmtree(self.root / "activity" / kind / f"connection={connection}", ignore_errors=True)
