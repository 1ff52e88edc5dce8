"""A hook for timing named phases (discovery, definitions, extraction, landing, write, ...).

Production passes none; benchmarks pass one to time each phase of the real code path, instead of patching
the product's functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PhaseHook = Callable[[str, float], None]  # (phase name, wall seconds), called when the phase ends


@contextmanager
def phase(hook: PhaseHook | None, name: str) -> Iterator[None]:
    if hook is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        hook(name, time.perf_counter() - started)
