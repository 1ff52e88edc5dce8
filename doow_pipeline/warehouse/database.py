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


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


@contextmanager
def connect(path: Path, *, read_only: bool = False,
            wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """Opens the warehouse (creating the schema when writing), waiting with backoff while another process
    holds its lock; raises WarehouseError when the wait runs out."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() > deadline:
                raise WarehouseError(f"the warehouse {path} is held by another process (waited {wait_seconds:.0f} s): "
                                     f"{' '.join(str(exc).split())[:300]}. Close other sessions that opened it "
                                     "(DuckDB allows one writer process), then retry.") from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            con.execute(DDL)
            con.execute(COST_DDL)
            for comment in COST_COMMENTS:
                con.execute(comment)
        yield con
    finally:
        con.close()
