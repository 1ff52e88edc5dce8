"""Thread pools for the calls a sync makes at once (definitions, metrics, activity)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


@contextmanager
def worker_pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor whose queued tasks never start once the caller stops: a failed call, Ctrl-C or a stop
    signal (which Dagster raises in the thread waiting on the pool). Only the calls in flight finish; the plain
    `with ThreadPoolExecutor()` exit would first run every task still queued, the rest of the sync."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
