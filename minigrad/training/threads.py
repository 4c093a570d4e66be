"""How many CPU threads the NumPy backend's matrix products use (train.py / sample.py --threads).

On the CPU nearly all of a training step is NumPy's matrix products, which run in the BLAS
library NumPy ships with (OpenBLAS in the pip wheels). That library starts one thread per
core by default. For the small matrices of a small GPT this is a poor trade: on a quiet machine
more threads help a little, but beside any other CPU-bound process (a test run, a second
training run, a browser) OpenBLAS's threads spin waiting for each other at every product, and
a step gets several times slower. Measured with benchmarks/bench_threads.py on a 2-core machine
(docs/perf-notes.md section 9, benchmarks/results/threads-cpu.json), the default model's
ms/step with 1 and 2 threads: quiet 67 vs 53, beside one busy process 135 vs 925, beside two
183 vs 288. One thread loses at most ~25% and never falls off the cliff, so ``--threads=auto``
(the default) means one; ``--threads=all`` or ``--threads=N`` is for a quiet machine of your own.

NumPy has no call for this, so `set_blas_threads` finds the BLAS library in the process and
calls its own setter through ctypes (what the threadpoolctl package does, in a few lines).
Environment variables (``OPENBLAS_NUM_THREADS``) would also work, but only when set before
NumPy is imported, which a command-line setting is not.
"""
from __future__ import annotations

import ctypes
import os
import re
from typing import Optional

DEFAULT_THREADS = 1          # what --threads=auto means, by the measurement above

# (set, get) entry points of the BLAS builds NumPy wheels and conda use: the wheels' OpenBLAS
# (symbols prefixed scipy_ and suffixed 64_ for the 64-bit-integer build), a system OpenBLAS,
# MKL and BLIS.
_CALLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
    ("bli_thread_set_num_threads", "bli_thread_get_num_threads"),
)


def _loaded_blas_libraries() -> list[str]:
    """Paths of the BLAS shared libraries mapped into this process (Linux; [] elsewhere)."""
    import numpy  # noqa: F401  (loads its BLAS)
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return []
    return sorted(set(re.findall(r"(/\S*(?:blas|mkl_rt|blis)\S*\.(?:so|dylib)\S*)", maps)))


def blas_threads() -> Optional[int]:
    """The BLAS library's current thread count, or None when it cannot be found."""
    for path in _loaded_blas_libraries():
        lib = ctypes.CDLL(path)
        for _, get in _CALLS:
            fn = getattr(lib, get, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn())
    return None


def set_blas_threads(n: int) -> Optional[int]:
    """Make the BLAS library use `n` threads; returns the count it reports afterwards, or None
    when no BLAS library with a known setter is loaded (then nothing changed)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the thread count must be a positive integer, got {n!r}")
    for path in _loaded_blas_libraries():
        lib = ctypes.CDLL(path)
        for set_, _ in _CALLS:
            fn = getattr(lib, set_, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn(n)
                return blas_threads()
    return None


def resolve_threads(setting: str) -> int:
    """The thread count a --threads setting asks for: 'auto' -> DEFAULT_THREADS, 'all' -> every
    core this process may use, else a positive integer."""
    if setting == "auto":
        return DEFAULT_THREADS
    if setting == "all":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        n = int(setting)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--threads={setting}: expected auto, all or a positive integer")
    return n


def use_threads(setting: str) -> Optional[int]:
    """Apply a --threads setting; returns the BLAS thread count now in use (None: unknown BLAS)."""
    return set_blas_threads(resolve_threads(setting))
