"""Landing zone: raw metric points, account inventories and sync events as files, outside DuckDB.

Extraction writes here, so no process holds the DuckDB file while calling Azure. Per connection and day:
  points/connection=<c>/day=<d>/points.parquet   raw points of that day (may be empty: synced, no usage)
  manifests/connection=<c>/day=<d>.json    synced_at, is_final, accounts in scope: the commit marker
and per sync run: events/connection=<c>/<run>.json; per connection, the metricDefinitions facts of its accounts
(definitions/connection=<c>.json, read at the start of a fetch so definitions are read once per account).
Each file is written to a temporary name and renamed, and a day's manifest is written after its points,
so a crash (even kill -9) leaves either the previous complete day or the new complete day, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
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


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

    def definitions_path(self, connection: str) -> Path:
        return self.root / "definitions" / f"connection={connection}.json"

    def definitions(self, connection: str) -> dict[str, Any] | None:
        """The connection's stored account definitions (services/definitions.py gives them meaning), None when
        there are none; CorruptLandingFile when the file cannot be read as a JSON object."""
        path = self.definitions_path(connection)
        if not path.exists():
            return None
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CorruptLandingFile(path, f"not valid JSON ({' '.join(str(exc).split())[:200]})") from None
        if not isinstance(payload, dict):
            raise CorruptLandingFile(path, "not a JSON object")
        return payload

    def write_definitions(self, connection: str, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, sort_keys=True, indent=1)
        _atomic_write(self.definitions_path(connection), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

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

    def purge(self, connection: str) -> None:
        for kind in ("points", "manifests", "events"):
            shutil.rmtree(self.root / kind / f"connection={connection}", ignore_errors=True)
        for kind in ("requests", "utilization"):
            shutil.rmtree(self.root / "activity" / kind / f"connection={connection}", ignore_errors=True)
        self.definitions_path(connection).unlink(missing_ok=True)
