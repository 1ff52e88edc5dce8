"""Throttling budgets (scenario `throttle:`), on the real monotonic clock (the scenario clock may be frozen).

- ARM reads: token bucket per (subscription, principal), plus a global bucket per subscription (15x by
  default); tenant-level reads (GET /subscriptions) use a bucket per (tenant, principal).
- metricDefinitions: at most N calls per 5 minutes per (subscription, principal), sliding window.
- getBatch: at most N calls per minute per (subscription, principal), sliding window, 529 beyond.
A refused call does not consume budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from .scenario import Throttle


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, capacity: float, stamp: float):
        self.tokens = capacity
        self.stamp = stamp


class Throttler:
    def __init__(self, budgets: Throttle, clock=time.monotonic):
        self.budgets = budgets
        self.clock = clock
        self.lock = threading.Lock()
        self.buckets: dict[tuple, _Bucket] = {}
        self.windows: dict[tuple, deque] = {}

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()
            self.windows.clear()

    def _bucket(self, key: tuple, capacity: float, rate: float, now: float) -> _Bucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        return bucket

    def arm_read(self, scope_kind: str, scope_id: str, principal: str) -> tuple[bool, dict[str, str], int]:
        """(allowed, headers, retry_after_s) for one ARM read. scope_kind is 'subscription' or 'tenant'."""
        b = self.budgets
        capacity, rate = float(b.arm_reads_bucket), float(b.arm_reads_refill_per_s)
        g_capacity = float(b.arm_global_reads_bucket)
        g_rate = rate * (g_capacity / capacity) if capacity else rate
        with self.lock:
            now = self.clock()
            own = self._bucket((scope_kind, scope_id.lower(), principal.lower()), capacity, rate, now)
            glob = self._bucket((scope_kind + "-global", scope_id.lower()), g_capacity, g_rate, now)
            if own.tokens >= 1 and glob.tokens >= 1:
                own.tokens -= 1
                glob.tokens -= 1
                allowed, retry = True, 0
            else:
                allowed = False
                waits = []
                if own.tokens < 1:
                    waits.append((1 - own.tokens) / rate if rate > 0 else 3600)
                if glob.tokens < 1:
                    waits.append((1 - glob.tokens) / g_rate if g_rate > 0 else 3600)
                retry = max(1, math.ceil(max(waits)))
            headers = {
                f"x-ms-ratelimit-remaining-{scope_kind}-reads": str(int(own.tokens)),
                f"x-ms-ratelimit-remaining-{scope_kind}-global-reads": str(int(glob.tokens)),
            }
        return allowed, headers, retry

    def _window(self, key: tuple, limit: int, seconds: float) -> tuple[bool, int, int]:
        """(allowed, remaining, retry_after_s)."""
        with self.lock:
            now = self.clock()
            window = self.windows.setdefault(key, deque())
            while window and window[0] <= now - seconds:
                window.popleft()
            if len(window) < limit:
                window.append(now)
                return True, limit - len(window), 0
            retry = max(1, math.ceil(window[0] + seconds - now))
            return False, 0, retry

    def definitions(self, subscription_id: str, principal: str) -> tuple[bool, int, int]:
        return self._window(
            ("definitions", subscription_id.lower(), principal.lower()), self.budgets.definitions_per_5min, 300.0
        )

    def batch(self, subscription_id: str, principal: str) -> tuple[bool, int, int]:
        return self._window(
            ("batch", subscription_id.lower(), principal.lower()), self.budgets.batch_calls_per_min, 60.0
        )
