"""Where the landing zone's files live: a local folder (the default) or an Azure Blob Storage container.

`Landing` (landing.py) speaks to a `LandingStore` in five verbs: put bytes atomically, get, list a prefix,
delete, exists. Keys are '/'-separated paths below the landing root ("manifests/connection=prod/day=...").

- `LocalStore` writes each file to a temporary name, fsyncs and renames it, as the landing always did.
- `BlobStore` uses obstore (Rust object_store): a blob upload is atomic (a reader sees the old blob or the
  whole new one), and listing returns each blob's ETag, which the writer's local cache compares.

Credentials (`BlobStore`): azure-identity's DefaultAzureCredential (workload or managed identity,
AZURE_CLIENT_ID/SECRET/TENANT_ID, the Azure CLI's sign-in), or, for Azurite and other emulators, a shared
account key in the DOOW_LANDING_ACCOUNT_KEY environment variable. Neither is ever part of the settings,
run config or a message; the key is registered with core.secrets so every log record masks it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..core import secrets
from ..core.landing_location import ACCOUNT_KEY_ENV, LandingLocation
from ..core.problems import WarehouseError

__all__ = ["ACCOUNT_KEY_ENV", "BlobStore", "LandingLocation", "LandingStore", "LocalStore", "open_store"]


@dataclass(frozen=True)
class StoredObject:
    key: str  # below the landing root
    size: int
    version: str  # changes whenever the object is rewritten: the ETag on blob, (inode, mtime, size) locally
    modified: datetime


class LandingStore(Protocol):
    location: LandingLocation

    def put(self, key: str, data: bytes) -> None:
        """Writes the whole object at once: a reader sees the previous object or this one, never a part."""

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version, or None when there is none."""

    def list_prefix(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with `prefix` (a folder ends in '/')."""

    def delete(self, keys: list[str]) -> None:
        """Deletes these objects; absent ones are no error."""

    def delete_tree(self, prefix: str) -> None:
        """Deletes every object under the folder `prefix`."""

    def exists(self, key: str) -> bool: ...


def landing_error(location: LandingLocation, action: str, exc: BaseException) -> WarehouseError:
    reason = secrets.scrub(" ".join(str(exc).split()))[:400] or type(exc).__name__
    if location.is_blob:
        fix = (
            "check settings.landing, landing_account and landing_endpoint, that this machine's identity "
            "(azure-identity: managed/workload identity, AZURE_CLIENT_* or `az login`) has the Storage Blob "
            "Data Contributor role on the container, and that the container exists"
        )
    else:
        fix = "check that the folder exists and is writable, and that the disk has room"
    return WarehouseError(f"Cannot {action} the landing zone {location}: {reason}. Fix: {fix}.")


class LocalStore:
    """The landing zone as a folder: temporary file, fsync, rename."""

    def __init__(self, location: LandingLocation):
        assert location.local_root is not None
        self.location = location
        self.root = location.local_root

    def path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> tuple[bytes, str] | None:
        path = self.path(key)
        try:
            with path.open("rb") as fh:
                stat = os.fstat(fh.fileno())
                return fh.read(), _local_version(stat)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def list_prefix(self, prefix: str) -> list[StoredObject]:
        folder, _, start = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            name = path.relative_to(self.root).as_posix()
            if not name.startswith(prefix) or path.name.startswith(".") or not path.is_file():
                continue
            stat = path.stat()
            found.append(
                StoredObject(name, stat.st_size, _local_version(stat), datetime.fromtimestamp(stat.st_mtime, UTC))
            )
        return sorted(found, key=lambda o: o.key)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self.root / prefix.rstrip("/"), ignore_errors=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def link(self, key: str, alias: str) -> None:
        """Gives `key` a second, stable name (a hard link replaced atomically), for readers that glob it."""
        target, source = self.path(alias), self.path(key)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)
        try:
            os.link(source, tmp)
        except OSError:  # a file system without hard links: a copy, still renamed into place
            shutil.copyfile(source, tmp)
        try:
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _local_version(stat: os.stat_result) -> str:
    return f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"


class BlobStore:
    """The landing zone as blobs under `az://<container>/<prefix>/`, through obstore."""

    def __init__(self, location: LandingLocation, environ: Mapping[str, str] | None = None):
        from obstore.store import AzureStore

        assert location.container is not None and location.account is not None
        self.location = location
        env = os.environ if environ is None else environ
        config: dict[str, Any] = {"account_name": location.account}
        client_options: dict[str, Any] = {"timeout": "120s", "connect_timeout": "10s"}
        if location.endpoint:
            config["endpoint"] = location.endpoint
            if location.endpoint.startswith("http://"):  # only ever a loopback emulator (LandingLocation checks)
                client_options["allow_http"] = True
        key = env.get(ACCOUNT_KEY_ENV)
        provider = None
        if key:
            secrets.register([key])
            config["account_key"] = key
        else:
            from obstore.auth.azure import AzureCredentialProvider  # azure-identity's DefaultAzureCredential

            provider = AzureCredentialProvider()
        try:
            self._store = AzureStore(
                location.container,
                prefix=location.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=client_options,  # type: ignore[arg-type]
                credential_provider=provider,
            )
        except Exception as exc:  # noqa: BLE001 - obstore's configuration errors, named with the fix
            raise landing_error(location, "open", exc) from None

    def put(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self._store, key, data)

    def get(self, key: str) -> tuple[bytes, str] | None:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = obstore.get(self._store, key)
            data = bytes(result.bytes())
        except (NotFoundError, FileNotFoundError):
            return None
        return data, _etag(result.meta.get("e_tag"), result.meta["last_modified"])

    def list_prefix(self, prefix: str) -> list[StoredObject]:
        import obstore

        found = []
        for batch in obstore.list(self._store, prefix=prefix):
            for meta in batch:
                key = str(meta["path"])
                if not key.startswith(prefix):
                    continue
                modified = meta["last_modified"]
                found.append(StoredObject(key, int(meta["size"]), _etag(meta.get("e_tag"), modified), modified))
        return sorted(found, key=lambda o: o.key)

    def delete(self, keys: list[str]) -> None:
        import obstore

        if not keys:
            return
        try:
            obstore.delete(self._store, keys)
        except FileNotFoundError:  # the batch stops at an absent blob: delete the rest one by one
            for key in keys:
                try:
                    obstore.delete(self._store, key)
                except FileNotFoundError:
                    pass

    def delete_tree(self, prefix: str) -> None:
        self.delete([o.key for o in self.list_prefix(prefix.rstrip("/") + "/")])

    def exists(self, key: str) -> bool:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return False
        return True


def _etag(etag: str | None, modified: datetime) -> str:
    """The ETag without its quotes (a GET answers it quoted, a listing does not)."""
    return etag.strip('"') if etag else modified.isoformat()


def open_store(location: LandingLocation, environ: Mapping[str, str] | None = None) -> LocalStore | BlobStore:
    return BlobStore(location, environ) if location.is_blob else LocalStore(location)
