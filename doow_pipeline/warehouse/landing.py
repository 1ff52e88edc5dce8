"""Landing zone: raw metric points, account inventories and sync events as files, outside DuckDB.

Extraction writes here, so no process holds the DuckDB file while calling Azure. The landing zone is a local
folder (the default) or an Azure Blob Storage container (landing_store.py). Per connection and day:
  points/connection=<c>/day=<d>/points.<sync>.parquet    raw points of that day (may be empty: synced, no usage)
  activity/<kind>/connection=<c>/day=<d>/<kind>.<sync>.parquet   requests and PTU utilisation of that day
  manifests/connection=<c>/day=<d>.json    synced_at, is_final, accounts in scope and the names of the day's
                                           files: the commit marker
and per sync run: events/connection=<c>/<run>.json; per connection, the metricDefinitions facts of its accounts
(definitions/connection=<c>.json, read at the start of a fetch so definitions are read once per account).

Every data file gets a name of its own sync (`<sync>`), never overwritten, and the day's manifest is written
after them and names them. The writer reads the manifest first and then exactly the files it names, so a
crash (even kill -9) between a data file and the manifest leaves the previous complete day (its manifest still
names its own files), never the old manifest with new points. Each write is atomic: a local file is written
to a temporary name, fsynced and renamed; a blob upload is all or nothing. In a local landing zone the day's
current points also keep the stable name `points.parquet` (a hard link), which the `metric_points` view reads.
Superseded files are deleted by a later sync of the same day once they are an hour old, keeping the previous
sync's files, which a writer that read the previous manifest may still be reading.

While a sync extracts, each answer is staged as it arrives, as one piece, under
  staging/connection=<c>/run=<id>/<kind>/<n>.arrow     (kind: points, requests, utilization)
an uncompressed Arrow IPC file holding one record batch per UTC day of the answer, so memory holds one answer
per extraction thread, not the connection's whole range. The run keeps in memory which (piece, batch) holds
which day; landing merges a day from those batches alone (memory-mapped, so a day's merge reads that day's
rows, never the whole piece) into that day's file (manifest last, as above). One file per answer, not per
answer-day: creating and deleting thousands of small files per run cost more than the data they held. Staging
is the fetch process's own scratch, so always a local folder: under a local landing zone, or under the
system's temporary folder when the landing zone is a blob container (only merged days are shared). The run's
staging is removed when the run ends.
The writer never reads staging. A live run holds an exclusive lock on staging/connection=<c>/run=<id>.lock;
the kernel drops it when the process dies (even kill -9), so the next sync of the connection removes the
leftovers of dead runs and never those of a run still going.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from ..core import json_read
from ..core.events import SyncEvent
from ..core.metrics import POINT_SCHEMA
from ..core.problems import WarehouseError
from .landing_store import LandingLocation, LandingStore, LocalStore, landing_error, open_store

LEGACY_POINTS = "points.parquet"  # manifests from before files were named by their sync; the local view's alias
ACTIVITY_KINDS = ("requests", "utilization")
SUPERSEDED_AGE = timedelta(hours=1)  # a superseded data file older than this (and not the previous sync's) goes
VERSIONED = re.compile(r"^(?P<stem>[a-z]+)\.(?P<sync>[0-9A-Za-z_-]+)\.parquet$")
# Test hook: `<connection>:<day>` makes this process kill itself (SIGKILL, as kill -9) after that day's data
# files are written and before its manifest is, so the crash window is hit exactly, never by timing.
KILL_BEFORE_MANIFEST_ENV = "DOOW_TEST_KILL_BEFORE_MANIFEST"


class CorruptLandingFile(Exception):
    """A landing file that exists but cannot be read (truncated, not JSON, wrong shape)."""

    def __init__(self, path: Path | str, reason: str):
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
    sync_id: str = ""  # "" in manifests from before files were named by their sync
    points_file: str = LEGACY_POINTS
    activity_files: dict[str, str] | None = None  # kind -> file name; None: the legacy fixed names, when present


def new_sync_id(synced_at: str) -> str:
    """Unique per landed day: the sync's time (sorts) and a random part (two syncs of one instant differ)."""
    stamp = re.sub(r"[^0-9]", "", synced_at)[:20]
    return f"{stamp}-{uuid.uuid4().hex[:12]}"


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def _kill_point(connection: str, day: str) -> None:
    if os.environ.get(KILL_BEFORE_MANIFEST_ENV) == f"{connection}:{day}":
        os.kill(os.getpid(), signal.SIGKILL)


def _write_scratch(path: Path, write: Callable[[str], object]) -> None:
    """A staging piece: written under a temporary name and renamed (never read half-written), not fsynced (only
    this run reads it back, and a run that dies is not merged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StagedKind:
    """What a staging piece holds: token points (POINT_SCHEMA) or activity (the request and utilisation schemas)."""

    POINTS = "points"
    REQUESTS = "requests"
    UTILIZATION = "utilization"


@dataclass(frozen=True)
class StagedBatch:
    """Where one day of one staged answer is: the record batch `batch` of the piece file `piece`."""

    piece: Path
    batch: int


@dataclass
class StagingRun:
    """One sync run's staging area, open (and locked) while the run lives. The index of what is staged lives
    here, not in the folder: a piece is indexed only once it is whole, so a merge never reads one half-written,
    and nothing but this run reads its pieces."""

    connection: str
    run_id: str
    directory: Path
    lock_fd: int
    _pieces: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _index: dict[str, dict[date, list[StagedBatch]]] = field(default_factory=dict)

    def next_piece(self) -> int:
        with self._lock:  # extraction threads stage concurrently
            return next(self._pieces)

    def record(self, kind: str, piece: Path, days: list[date]) -> None:
        """Indexes a whole piece of `kind` whose record batch i holds the rows of days[i]."""
        with self._lock:
            by_day = self._index.setdefault(kind, {})
            for batch, day in enumerate(days):
                by_day.setdefault(day, []).append(StagedBatch(piece, batch))

    def forget(self, kind: str) -> None:
        with self._lock:
            self._index.pop(kind, None)

    def days(self, kind: str) -> list[date]:
        with self._lock:
            return sorted(self._index.get(kind, {}))

    def batches(self, kind: str, day: date) -> list[StagedBatch]:
        """The day's batches of `kind` in the order they were staged (pieces are numbered as they are written)."""
        with self._lock:
            return sorted(self._index.get(kind, {}).get(day, []), key=lambda b: b.piece.name)


def _write_piece(days: Iterator[pa.RecordBatch], path: str) -> None:
    first = next(days)
    with pa.OSFile(path, "wb") as sink, ipc.new_file(sink, first.schema) as writer:
        writer.write_batch(first)
        for batch in days:
            writer.write_batch(batch)


@dataclass(frozen=True)
class _DaySlices:
    days: list[date]  # the UTC days of the batches, in their order
    batches: Iterator[pa.RecordBatch]  # one per day, made as they are read


def _day_slices(frame: pl.DataFrame) -> _DaySlices:
    """The frame's rows as one record batch per UTC day of their `timestamp` (rows keep their order within a
    day). Sorted by day and handed to Arrow once without a copy (polars' string views), then each day's slice
    copied to plain strings as it is written: a conversion per day cost more CPU, and converting the whole answer
    at once held a third copy of it. (Slices of string views would each write the whole answer's string
    buffers.)"""
    by_day = frame.with_columns(pl.col("timestamp").dt.date().alias("_day")).sort("_day", maintain_order=True)
    runs = by_day["_day"].rle()
    whole = by_day.drop("_day").to_arrow(compat_level=pl.CompatLevel.newest()).combine_chunks().to_batches()[0]
    del by_day
    plain = pa.schema([pa.field(f.name, pa.large_string()) if f.type == pa.string_view() else f for f in whole.schema])
    lengths: list[int] = runs.struct.field("len").to_list()

    def batches() -> Iterator[pa.RecordBatch]:
        offset = 0
        for length in lengths:
            yield whole.slice(offset, length).cast(plain)
            offset += length

    return _DaySlices(runs.struct.field("value").to_list(), batches())


def _read_batches(batches: list[StagedBatch]) -> Iterator[pa.RecordBatch]:
    for staged in batches:
        with pa.memory_map(str(staged.piece)) as source:
            yield ipc.open_file(source).get_batch(staged.batch)


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
    """The landing zone's files, on a local folder or a blob container (`where`: a path, URL, location or store)."""

    def __init__(self, where: Path | str | LandingLocation | LandingStore, environ: Mapping[str, str] | None = None):
        if isinstance(where, Path | str):
            self.store: LandingStore = open_store(LandingLocation.parse(where), environ)
        elif isinstance(where, LandingLocation):
            self.store = open_store(where, environ)
        else:
            self.store = where
        self.location = self.store.location

    # ---- keys and (local) paths ----------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The local folder (readers that need files: polars, the DuckDB view). A blob landing zone has none:
        the writer reads it through its local cache (landing_cache.py)."""
        if self.location.local_root is None:
            raise WarehouseError(f"the landing zone {self.location} is not a local folder")
        return self.location.local_root

    @property
    def is_local(self) -> bool:
        return isinstance(self.store, LocalStore)

    @staticmethod
    def day_folder(connection: str, day: date | str) -> str:
        return f"points/connection={connection}/day={day}/"

    @staticmethod
    def activity_folder(kind: str, connection: str, day: date | str) -> str:
        return f"activity/{kind}/connection={connection}/day={day}/"

    @staticmethod
    def manifest_key(connection: str, day: date | str) -> str:
        return f"manifests/connection={connection}/day={day}.json"

    @staticmethod
    def events_prefix(connection: str) -> str:
        return f"events/connection={connection}/"

    def points_key(self, manifest: DayManifest) -> str:
        return self.day_folder(manifest.connection, manifest.day) + manifest.points_file

    def activity_key(self, manifest: DayManifest, kind: str) -> str | None:
        """The day's activity file of `kind` that the manifest names (legacy manifests: the fixed name)."""
        if manifest.activity_files is None:
            return self.activity_folder(kind, manifest.connection, manifest.day) + f"{kind}.parquet"
        name = manifest.activity_files.get(kind)
        return self.activity_folder(kind, manifest.connection, manifest.day) + name if name else None

    def file_keys(self, manifest: DayManifest) -> list[str]:
        """Every data file the manifest names (what a reader of the day needs besides the manifest)."""
        keys = [self.points_key(manifest)]
        keys += [k for k in (self.activity_key(manifest, kind) for kind in ACTIVITY_KINDS) if k]
        return keys

    def _path(self, key: str) -> Path:
        return self.root / key

    def manifest_path(self, connection: str, day: date | str) -> Path:
        return self._path(self.manifest_key(connection, day))

    def points_path(self, connection: str, day: date | str) -> Path:
        """The day's current points file: the one its manifest names (no manifest: the legacy name)."""
        try:
            manifest = self.manifest(connection, day)
        except CorruptLandingFile:
            manifest = None
        if manifest is None:
            return self._path(self.day_folder(connection, day) + LEGACY_POINTS)
        return self._path(self.points_key(manifest))

    def points_file(self, manifest: DayManifest) -> Path:
        return self._path(self.points_key(manifest))

    def activity_file(self, manifest: DayManifest, kind: str) -> Path | None:
        key = self.activity_key(manifest, kind)
        return self._path(key) if key else None

    def events_dir(self, connection: str) -> Path:
        return self._path(self.events_prefix(connection))

    def check_access(self, connection: str) -> None:
        """Lists the connection's manifests: a landing zone this process cannot reach (a wrong account,
        credential or role) fails here, before any Azure Monitor call, with the fix."""
        try:
            self.store.list_prefix(f"manifests/connection={connection}/")
        except Exception as exc:  # noqa: BLE001 - obstore's errors become the landing's WarehouseError
            raise landing_error(self.location, "list", exc) from None

    # ---- writing ------------------------------------------------------------------------------------------------

    def _put(self, key: str, data: bytes) -> None:
        try:
            self.store.put(key, data)
        except OSError as exc:
            if self.is_local:  # a full disk or a permission: named by the caller as before
                raise
            raise landing_error(self.location, f"write {key} to", exc) from None
        except Exception as exc:  # noqa: BLE001 - obstore's errors become the landing's WarehouseError
            raise landing_error(self.location, f"write {key} to", exc) from None

    def write_day(
        self, manifest: DayManifest, points: pl.DataFrame, activity: Mapping[str, pl.DataFrame] | None = None
    ) -> None:
        """The day's data files (named by this sync), then its manifest naming them: the commit marker."""
        previous = self._previous(manifest.connection, manifest.day)
        manifest.sync_id = new_sync_id(manifest.synced_at)
        # Sorted so a day's file is the same bytes whatever order the extraction threads finished in.
        day_points = points.select(list(POINT_SCHEMA)).sort(list(POINT_SCHEMA), nulls_last=True)
        manifest.activity_files = {}
        for kind, frame in (activity or {}).items():
            name = f"{kind}.{manifest.sync_id}.parquet"
            ordered = frame.sort(frame.columns, nulls_last=True)
            self._put(self.activity_folder(kind, manifest.connection, manifest.day) + name, _parquet_bytes(ordered))
            manifest.activity_files[kind] = name
        manifest.points_file = f"points.{manifest.sync_id}.parquet"
        manifest.rows = day_points.height
        self._put(self.points_key(manifest), _parquet_bytes(day_points))
        _kill_point(manifest.connection, manifest.day)
        self._put(self.manifest_key(manifest.connection, manifest.day), _manifest_bytes(manifest))
        if isinstance(self.store, LocalStore):
            folder = self.day_folder(manifest.connection, manifest.day)
            self.store.link(self.points_key(manifest), folder + LEGACY_POINTS)
        try:
            self._delete_superseded(manifest, previous)
        except Exception:  # noqa: BLE001 - housekeeping after the day is committed: the next sync of the day retries
            pass

    def keep_stable_name(self, manifest: DayManifest) -> None:
        """Points the day's `points.parquet` (what the metric_points view reads) at the file its manifest names,
        when two syncs of the day raced or one died between its manifest and the link. Local folders only."""
        if not isinstance(self.store, LocalStore) or manifest.points_file == LEGACY_POINTS:
            return
        stable, current = (
            self._path(self.day_folder(manifest.connection, manifest.day) + LEGACY_POINTS),
            self.points_file(manifest),
        )
        try:
            if stable.exists() and os.path.samefile(stable, current):
                return
            self.store.link(
                self.points_key(manifest), self.day_folder(manifest.connection, manifest.day) + LEGACY_POINTS
            )
        except OSError:
            return  # the view keeps its previous file; the next sync of the day links it

    def _previous(self, connection: str, day: str) -> DayManifest | None:
        try:
            return self.manifest(connection, day)
        except CorruptLandingFile:
            return None

    def _delete_superseded(self, manifest: DayManifest, previous: DayManifest | None) -> None:
        """Deletes the day's data files of older syncs, keeping this sync's and the previous sync's files (a
        writer that read the previous manifest may be reading them) and any file younger than an hour (another
        sync of the day may be about to name it). Ages are compared with this sync's own points file."""
        keep = set(self.file_keys(manifest)) | (set(self.file_keys(previous)) if previous else set())
        folders = [self.day_folder(manifest.connection, manifest.day)] + [
            self.activity_folder(kind, manifest.connection, manifest.day) for kind in ACTIVITY_KINDS
        ]
        listed = [obj for folder in folders for obj in self.store.list_prefix(folder)]
        mine = next((o for o in listed if o.key == self.points_key(manifest)), None)
        if mine is None:
            return
        cutoff = mine.modified - SUPERSEDED_AGE
        stale = [
            o.key
            for o in listed
            if o.key not in keep
            and (
                (VERSIONED.match(o.key.rsplit("/", 1)[-1]) and o.modified < cutoff)
                or o.key.endswith(".parquet.corrupt")  # a re-sync heals a day the writer set aside as corrupt
            )
        ]
        self.store.delete(stale)

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
        self._put(self.events_prefix(connection) + f"{run_key}.json", payload.encode("utf-8"))

    # ---- reading ------------------------------------------------------------------------------------------------

    @staticmethod
    def definitions_key(connection: str) -> str:
        return f"definitions/connection={connection}.json"

    def definitions_path(self, connection: str) -> Path | str:
        """Where the connection's definitions file is (a path locally, a URL on blob): for messages and tests."""
        return self._describe(self.definitions_key(connection))

    def definitions(self, connection: str) -> dict[str, Any] | None:
        """The connection's stored account definitions (services/definitions.py gives them meaning), None when
        there are none; CorruptLandingFile when the file cannot be read as a JSON object."""
        key = self.definitions_key(connection)
        data = self._get(key)
        if data is None:
            return None
        try:
            payload = json.loads(data.decode("utf-8"))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CorruptLandingFile(
                self._describe(key), f"not valid JSON ({' '.join(str(exc).split())[:200]})"
            ) from None
        if not isinstance(payload, dict):
            raise CorruptLandingFile(self._describe(key), "not a JSON object")
        return payload

    def write_definitions(self, connection: str, payload: dict[str, Any]) -> None:
        self._put(self.definitions_key(connection), json.dumps(payload, sort_keys=True, indent=1).encode("utf-8"))

    def manifest(self, connection: str, day: date | str) -> DayManifest | None:
        key = self.manifest_key(connection, day)
        data = self._get(key)
        return None if data is None else parse_manifest(data, self._describe(key))

    def _get(self, key: str) -> bytes | None:
        """The file's bytes, None when it does not exist."""
        try:
            found = self.store.get(key)
        except Exception as exc:  # noqa: BLE001 - obstore's errors become the landing's WarehouseError
            raise landing_error(self.location, f"read {key} from", exc) from None
        return None if found is None else found[0]

    def _describe(self, key: str) -> Path | str:
        return self._path(key) if self.is_local else self.location.describe(key)

    def event_files(self, connection: str) -> list[Path]:
        directory = self.events_dir(connection)
        return sorted(directory.glob("*.json")) if directory.exists() else []

    # ---- staging: pieces of a run's answers, merged into day files at landing -------------------------------
    @property
    def staging_root(self) -> Path:
        """Local even for a blob landing zone: staging is a run's scratch (the flock sweep needs a local folder)."""
        if self.location.local_root is not None:
            return self.location.local_root / "staging"
        zone = hashlib.sha256(self.location.url.encode("utf-8")).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "doow-staging" / zone

    def staging_dir(self, connection: str) -> Path:
        return self.staging_root / f"connection={connection}"

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
        """Writes one answer's rows (points or activity, with a `timestamp` column) as one piece: an Arrow IPC
        file with one record batch per UTC day, indexed by `run` once whole. Not fsynced: read back by this run
        only, and a run that dies is not merged."""
        if frame.is_empty():
            return
        slices = _day_slices(frame)
        path = run.directory / kind / f"{run.next_piece():06d}.arrow"
        _write_scratch(path, partial(_write_piece, slices.batches))
        run.record(kind, path, slices.days)

    def discard_staged(self, run: StagingRun, kind: str) -> None:
        """Drops what `run` staged of `kind` (an extraction asked again from the start stages everything again)."""
        run.forget(kind)
        shutil.rmtree(run.directory / kind, ignore_errors=True)

    def staged_days(self, run: StagingRun, kind: str) -> list[date]:
        return run.days(kind)

    def staged(self, run: StagingRun, kind: str, day: date, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """Every row staged by `run` for `day`, in staging order (empty, with `schema`, when none was). Reads
        the day's batches only; the copy into the frame lets each piece's mapping close right away."""
        batches = list(_read_batches(run.batches(kind, day)))
        if not batches:
            return pl.DataFrame(schema=schema)
        frame = pl.from_arrow(pa.Table.from_batches(batches), rechunk=True)
        assert isinstance(frame, pl.DataFrame)
        return frame.select(list(schema))

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
        # Manifests first: a day whose manifest is gone is not landed, whatever files are left mid-purge.
        prefixes = [f"{kind}/connection={connection}/" for kind in ("manifests", "points", "events")]
        prefixes += [f"activity/{kind}/connection={connection}/" for kind in ACTIVITY_KINDS]
        try:
            for prefix in prefixes:
                self.store.delete_tree(prefix)
            self.store.delete([self.definitions_key(connection)])
            shutil.rmtree(self.staging_dir(connection), ignore_errors=True)
        except Exception as exc:  # noqa: BLE001 - obstore's errors become the landing's WarehouseError
            raise landing_error(self.location, "delete files from", exc) from None


def _manifest_bytes(manifest: DayManifest) -> bytes:
    """The manifest as JSON with sorted keys. orjson: the standard encoder with an indent runs in pure Python,
    which cost most of the landing of a day with hundreds of accounts (a manifest holds them all)."""
    payload = {f.name: getattr(manifest, f.name) for f in fields(manifest)}
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    except TypeError:  # a string orjson refuses (a lone surrogate): the standard encoder escapes it
        return json.dumps(asdict(manifest), sort_keys=True, indent=1).encode("utf-8")


def parse_manifest(data: bytes, where: Path | str) -> DayManifest:
    try:
        return DayManifest(**json_read.loads(data))
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptLandingFile(where, f"not a valid manifest ({' '.join(str(exc).split())[:200]})") from None
