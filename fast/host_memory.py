"""Keep freed host memory for reuse, so NumPy's temporaries don't page-fault on every op.

Every NumPy op returns a fresh array. glibc's malloc serves arrays above 128 KiB with `mmap`
and gives them back to the OS on free (or trims the heap top), so the next array of the same
size starts on untouched pages and pays a page fault per 4 KiB: for a (768, 512) float32
temporary that is ~400 faults, which made a GELU backward 7x slower than its arithmetic.
Raising the mmap and trim thresholds makes malloc keep and reuse that memory instead.

This is a process-wide allocator setting, applied once when the NumPy backend is first
created (never at import); on other C libraries it does nothing. The cost: the process keeps
its peak heap instead of returning it to the OS between steps.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 2**30) -> bool:
    """Apply the thresholds (glibc only). Returns True when they were set."""
    global _applied
    if _applied or not sys.platform.startswith("linux"):
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):          # musl and others: no mallopt, nothing to do
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _applied
