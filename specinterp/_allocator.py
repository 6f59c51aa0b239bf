"""Keep large freed blocks in the process heap (glibc), for the command-line runs.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB by default)
with a fresh ``mmap`` and returns it with ``munmap`` when freed, so a loop that allocates and
frees the same large tensors — a Hessian-vector product through a language model's per-token
loss, whose logits alone are ``T·V`` floats per sequence — page-faults and zero-fills all of
them on every pass. On a GPT-2 with its 50 257-word vocabulary (16 × 32 tokens) that is more
than half of each product's time: 1.25 s per product, 0.50 s with the threshold raised (the
kernel time falls from 6.7 s to 1.0 s over five products). The price is that the heap keeps
its peak size until the process ends, which suits a command that exits when its report is
written; a library must not change the allocator of the program that imports it, so only
:func:`specinterp.cli.main` calls this. Library users get the same effect from the
environment: ``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(threshold: int = 2**30) -> bool:
    """Raise glibc's mmap and trim thresholds to ``threshold`` bytes; whether it applied.

    A no-op (``False``) off Linux or where the C library has no ``mallopt`` (musl, macOS).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, threshold))
