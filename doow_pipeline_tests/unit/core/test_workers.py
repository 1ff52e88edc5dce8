"""worker_pool: once its caller stops (a failure, an interrupt), queued tasks never start; calls in flight finish."""

import threading
from concurrent.futures import Future, wait

import pytest

from doow_pipeline.core.workers import worker_pool


class Stopped(KeyboardInterrupt):
    pass


def test_queued_tasks_never_start_once_the_caller_stops():
    ran: list[int] = []
    queued: list[Future] = []
    started, in_flight_done = threading.Event(), threading.Event()

    def in_flight() -> None:
        started.set()
        # Returns as soon as the queued tasks are cancelled (a cancelled future is done); the timeout only bounds
        # a regression, where they would still be queued behind this task.
        wait(queued, timeout=10)
        in_flight_done.set()

    with pytest.raises(Stopped), worker_pool(1, "test") as pool:
        pool.submit(in_flight)
        queued.extend(pool.submit(ran.append, n) for n in range(5))
        started.wait()
        raise Stopped

    assert in_flight_done.is_set(), "the call in flight finished before the pool closed"
    assert all(f.cancelled() for f in queued) and ran == []


def test_a_pool_left_normally_runs_every_task():
    ran: list[int] = []
    with worker_pool(2, "test") as pool:
        for n in range(5):
            pool.submit(ran.append, n)
    assert sorted(ran) == [0, 1, 2, 3, 4]
