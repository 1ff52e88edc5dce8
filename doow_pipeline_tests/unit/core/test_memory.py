"""core/memory.py: the allocator settings take effect in glibc (read back from glibc itself, in a fresh process)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

# A fresh interpreter: 8 threads that allocate at once, then glibc's own account of its arenas (malloc_info lists one
# <heap> per arena) and of a 1.5 MiB block allocated after a 4 MiB one was freed (mallinfo2's hblkhd: bytes in
# mmapped blocks; with glibc's dynamic threshold the 1.5 MiB block comes from the heap instead).
PROBE = textwrap.dedent(
    """
    import ctypes, json, re, sys, tempfile, threading
    from doow_pipeline.core.memory import tune_allocator

    applied = tune_allocator() if sys.argv[1] == "tuned" else ()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    barrier = threading.Barrier(8)

    def allocate():
        blocks = [libc.malloc(4096)]
        barrier.wait()  # every thread holds memory at once, so none can reuse another's arena
        blocks += [libc.malloc(4096) for _ in range(199)]
        for block in blocks:
            libc.free(block)

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        arenas = len(re.findall(r"<heap nr=", open(out.name).read()))

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(3 << 19)
    mmapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    print(json.dumps({"applied": list(applied), "arenas": arenas, "mmapped": mmapped}))
    """
)


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env={**clean, **env}, check=True
    )
    return json.loads(done.stdout)


def test_tuned_process_has_two_arenas_and_mmaps_large_blocks() -> None:
    tuned, default = _probe("tuned"), _probe("default")
    assert tuned["applied"] == ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"]
    assert tuned["arenas"] <= 2 < default["arenas"]
    # After a 4 MiB block was freed, glibc's default serves 1.5 MiB from a heap; tuned, it is mapped (and unmapped
    # when freed, so it never stays in an arena).
    assert tuned["mmapped"] >= 3 << 19
    assert default["mmapped"] == 0


def test_environment_settings_win() -> None:
    probed = _probe("tuned", MALLOC_ARENA_MAX="8", MALLOC_MMAP_THRESHOLD_=str(1 << 20))
    assert probed["applied"] == []
    assert probed["arenas"] > 2
