"""Opening the DuckDB warehouse: one writer process at a time, readers wait for it a bounded time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ..core.problems import WarehouseError
from .schema import COST_COMMENTS, COST_DDL, DDL

LOCK_WAIT_SECONDS = 300


def no_space(exc: BaseException) -> bool:
    return "no space left on device" in str(exc).lower()


def _no_space_error(path: Path, exc: BaseException, doing: str) -> WarehouseError:
    return WarehouseError(
        f"No space left on device: free space in {path.parent.resolve()} ({doing} {path} failed: "
        f"{' '.join(str(exc).split())[:200]}); the previous data is intact, so rerun the sync "
        "once there is room."
    )


def _invalid_file_error(path: Path, exc: BaseException) -> WarehouseError:
    return WarehouseError(
        f"{path} is not a readable DuckDB warehouse ({' '.join(str(exc).split())[:200]}). Fix: "
        f"move it away (for example to {path.name}.broken), then re-sync the days you need: the "
        "raw points are kept in the landing files beside it."
    )


def _remove_new_file(path: Path) -> None:
    """A warehouse this call was creating when it failed (a full disk, say) is removed, so the next run
    creates it afresh instead of tripping over a partial file."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            pass


def commit(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """COMMIT, with a full disk reported as itself (not as the failed ROLLBACK that follows it)."""
    try:
        con.execute("COMMIT")
    except duckdb.Error as exc:
        if no_space(exc):
            raise _no_space_error(Path(path), exc, "writing") from exc
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK when a transaction is still open; a failed COMMIT already ended it, and the error that
    matters is the one that made it fail."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Opens the warehouse (creating the schema when writing), waiting with backoff while another process
    holds its lock; raises WarehouseError when the wait runs out."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    creating = not read_only and not path.exists()
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                if creating:
                    _remove_new_file(path)
                if no_space(exc):
                    raise _no_space_error(path, exc, "creating" if creating else "opening") from exc
                raise _invalid_file_error(path, exc) from exc
            if time.monotonic() > deadline:
                raise WarehouseError(
                    f"the warehouse {path} is held by another process (waited {wait_seconds:.0f} s): "
                    f"{' '.join(str(exc).split())[:300]}. Close other sessions that opened it "
                    "(DuckDB allows one writer process), then retry."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            con.execute(DDL)
            con.execute(COST_DDL)
            for comment in COST_COMMENTS:
                con.execute(comment)
    except duckdb.Error as exc:
        con.close()
        if creating:
            _remove_new_file(path)
        if no_space(exc):
            raise _no_space_error(path, exc, "creating" if creating else "opening") from exc
        raise
    try:
        yield con
    finally:
        con.close()
