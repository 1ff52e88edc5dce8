"""The C allocator's settings for a sync: freed answers go back to the system instead of staying in per-thread pools.

Each extraction thread reads whole getBatch answers (15-30 MiB of text for 50 accounts x 90 days) and decodes
them through pyarrow's system pool, so both go through glibc's malloc. glibc gives threads arenas of their own (up
to 8 per core) and, once a large block has been freed, raises its mmap threshold to that size (up to 32 MiB), so
later answers came from the arenas' heaps and stayed there when freed: every extraction thread's arena ended up
holding an answer's worth of memory. Measured on the 1,000-account backfill (`benchmarks/README.md`, "Fourth
pass"): peak 765-788 MiB with glibc's defaults, 518-553 MiB with two arenas, 517-535 MiB with a fixed 1 MiB mmap
threshold, 495 MiB with both, flat across connections.

`mallopt` changes the process's allocator from then on (arenas already made stay), so `tune_allocator` runs
before a sync starts its threads. Each setting has an environment variable of glibc's own (`MALLOC_ARENA_MAX`,
`MALLOC_MMAP_THRESHOLD_`); one set there wins. On other C libraries this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from dataclasses import dataclass

# From glibc's malloc.h.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


@dataclass(frozen=True)
class AllocatorSetting:
    option: int
    value: int
    env: str  # glibc's environment variable for the same setting


SETTINGS = (
    AllocatorSetting(M_ARENA_MAX, 2, "MALLOC_ARENA_MAX"),
    AllocatorSetting(M_MMAP_THRESHOLD, 1 << 20, "MALLOC_MMAP_THRESHOLD_"),
)


@functools.cache
def tune_allocator() -> tuple[str, ...]:
    """Applies SETTINGS once per process (those the environment does not set); returns the names applied."""
    if not sys.platform.startswith("linux"):
        return ()
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to ask, or one without mallopt
        return ()
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; musl's stub returns 0 and changes nothing.
    return tuple(s.env for s in SETTINGS if s.env not in os.environ and mallopt(s.option, s.value) == 1)
