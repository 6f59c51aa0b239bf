"""The command's allocator setting: large freed blocks are reused without new page faults.

Measured in child processes (the setting is process-wide): a 64 MiB block is written, freed
and allocated again; glibc's default returns it to the kernel, so the second write faults
every page in afresh, and :func:`~specinterp._allocator.keep_freed_memory` keeps it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only"
)

CHILD = """
import ctypes, resource, sys
from specinterp._allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 64 * 2**20
block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_write_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_keep_freed_memory_reuses_large_blocks():
    pytest.importorskip("ctypes")
    applied, faults = _second_write_faults("keep")
    if applied != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    _, default_faults = _second_write_faults("default")
    pages = 64 * 2**20 // 4096
    assert default_faults > pages // 2  # the default: munmap'ed, faulted in again
    assert faults < pages // 50  # kept: the same pages, no faults
