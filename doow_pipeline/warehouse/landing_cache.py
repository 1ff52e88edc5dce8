"""The writer's local copy of a blob landing zone: polars and the DuckDB `metric_points` view read local files.

Reading Parquet straight from blob storage would need DuckDB's azure extension (downloaded at run time, which
a closed network forbids) and a credential inside DuckDB. Instead the writer, holding the warehouse, refreshes
a cache folder laid out exactly like a local landing zone:

- it lists each configured connection's manifests and downloads those whose ETag changed, reading each
  manifest first and then the files it names (data files have names of their own sync, so a file already
  cached is never stale); the manifest is written into the cache after its files, as in the landing zone;
- events files are downloaded when their ETag changed; whatever vanished from the container (a purge) is
  deleted from the cache, and so are cached data files no manifest names any more;
- each day's current points file gets the stable name `points.parquet` there, which the view reads.

Only the process holding the warehouse writes the cache, so it needs no lock of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from .landing import ACTIVITY_KINDS, LEGACY_POINTS, VERSIONED, CorruptLandingFile, Landing, parse_manifest
from .landing_store import LandingLocation, LocalStore, landing_error

STATE_FILE = ".cache-state.json"  # cached key -> the version (ETag) it was downloaded at


class LandingCache:
    def __init__(self, source: Landing, root: Path):
        self.source = source
        self.root = root
        self.local = LocalStore(LandingLocation(url=str(root), local_root=root))
        self.landing = Landing(self.local)

    def display(self, path: Path | str) -> Path | str:
        """A cached file's place in the landing zone (its az:// URL), for messages."""
        try:
            key = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return path
        return self.source.location.describe(key)

    def refresh(self, connections: list[str]) -> Landing:
        try:
            self._refresh(connections)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | PermissionError) and exc.filename is None:
                raise landing_error(self.source.location, "read", exc) from None  # obstore's NotFound/Forbidden
            raise  # the cache's own disk: full or not writable, named by the caller as the warehouse's are
        except Exception as exc:  # noqa: BLE001 - obstore's errors become the landing's WarehouseError
            raise landing_error(self.source.location, "read", exc) from None
        return self.landing

    def _refresh(self, connections: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        fresh: dict[str, str] = {}
        for connection in connections:
            for obj in self.source.store.list_prefix(f"manifests/connection={connection}/"):
                if state.get(obj.key) == obj.version and self._complete(obj.key):
                    fresh[obj.key] = obj.version
                    continue
                version = self._download_day(obj.key)
                if version is not None:
                    fresh[obj.key] = version
            for obj in self.source.store.list_prefix(self.source.events_prefix(connection)):
                if state.get(obj.key) != obj.version or not self.local.exists(obj.key):
                    found = self.source.store.get(obj.key)
                    if found is None:
                        continue
                    self.local.put(obj.key, found[0])
                fresh[obj.key] = obj.version
        self._drop_vanished(connections, fresh)
        self._save_state(fresh)

    def _complete(self, manifest_key: str) -> bool:
        """The cached manifest and every file it names are there (a file set aside as corrupt is not)."""
        found = self.local.get(manifest_key)
        if found is None:
            return False
        try:
            manifest = parse_manifest(found[0], manifest_key)
        except CorruptLandingFile:
            return True  # cached as it is: the writer names it corrupt
        return all(self.local.exists(key) for key in self.source.file_keys(manifest))

    def _download_day(self, manifest_key: str) -> str | None:
        """The day's manifest (read first), then the files it names, then the manifest into the cache."""
        found = self.source.store.get(manifest_key)
        if found is None:  # deleted since the listing
            return None
        data, version = found
        try:
            manifest = parse_manifest(data, manifest_key)
        except CorruptLandingFile:
            self.local.put(manifest_key, data)  # the writer reads it, names it corrupt and keeps the day's rows
            return version
        for key in self.source.file_keys(manifest):
            if self.local.exists(key) and VERSIONED.match(key.rsplit("/", 1)[-1]):
                continue  # a file named by its sync never changes
            content = self.source.store.get(key)
            if content is None:
                self.local.delete([key])  # missing in the container: the writer reports it
                continue
            self.local.put(key, content[0])
        self.local.put(manifest_key, data)
        points = self.landing.points_key(manifest)
        alias = self.landing.day_folder(manifest.connection, manifest.day) + LEGACY_POINTS
        if points != alias:
            if self.local.exists(points):
                self.local.link(points, alias)
            else:
                self.local.delete([alias])
        return version

    def _drop_vanished(self, connections: list[str], fresh: dict[str, str]) -> None:
        """Deletes what the container no longer holds, and data files no cached manifest names."""
        named: set[str] = set()
        for connection in connections:
            for prefix in (f"manifests/connection={connection}/", self.source.events_prefix(connection)):
                self.local.delete([o.key for o in self.local.list_prefix(prefix) if o.key not in fresh])
            for obj in self.local.list_prefix(f"manifests/connection={connection}/"):
                found = self.local.get(obj.key)
                if found is None:
                    continue
                try:
                    manifest = parse_manifest(found[0], obj.key)
                except CorruptLandingFile:
                    continue
                named.update(self.source.file_keys(manifest))
                named.add(self.landing.day_folder(manifest.connection, manifest.day) + LEGACY_POINTS)
            folders = [f"points/connection={connection}/"]
            folders += [f"activity/{kind}/connection={connection}/" for kind in ACTIVITY_KINDS]
            for folder in folders:
                self.local.delete([o.key for o in self.local.list_prefix(folder) if o.key not in named])

    def _load_state(self) -> dict[str, str]:
        found = self.local.get(STATE_FILE)
        if found is None:
            return {}
        try:
            state = json.loads(found[0])
        except ValueError:
            return {}  # a damaged state only costs downloads
        return {str(k): str(v) for k, v in state.items()} if isinstance(state, dict) else {}

    def _save_state(self, state: dict[str, str]) -> None:
        self.local.put(STATE_FILE, json.dumps(state, sort_keys=True, indent=0).encode("utf-8"))


def cache_root(warehouse: Path) -> Path:
    """Beside the DuckDB file, whose writer owns it: `<warehouse stem>.landing-cache/`."""
    return warehouse.parent / f"{warehouse.stem}.landing-cache"
