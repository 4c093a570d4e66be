"""Test setup shared by every test file.

- Without CUDA, Triton kernels run in Triton's interpreter on torch CPU tensors: that must be
  decided before any kernel module is imported, so it happens here, first.
- Every backend is wrapped in CheckedBackend (shape/dtype assertions on each call).
- `shared_data` finds ../shared/data (or $MINIGRAD_DATA) and skips clearly when it is absent.
- Tests marked `gpu` skip without CUDA.
- skip_guard.py fails the session when, with the [test] extras and no CUDA, a test skips for any
  reason but `gpu` or absent shared data (a skip must never hide a failure).
"""
from __future__ import annotations

import os

# Tiny matmuls are far slower with a pool of BLAS threads fighting over 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import pytest

try:
    import torch
    HAS_CUDA = torch.cuda.is_available()
except ImportError:                      # core install: no torch, NumPy backend only
    torch = None
    HAS_CUDA = False

if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import minigrad.backends  # noqa: E402

try:
    import triton  # noqa: F401,E402
    HAS_TRITON = True
except ImportError:
    HAS_TRITON = False

# A core install (numpy + regex: `pip install -e .`) still runs every test that needs neither
# torch nor triton; the kernel test modules import both at the top, so they are not collected
# (the report header says so).
KERNEL_TEST_FILES = ["test_kernels_*.py", "test_triton_backend.py"]
collect_ignore_glob = [] if (torch is not None and HAS_TRITON) else KERNEL_TEST_FILES

from checked_backend import CheckedBackend  # noqa: E402  (tests/ is on sys.path)

minigrad.backends.wrap_backends(CheckedBackend)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    env = os.environ.get("MINIGRAD_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d} (set MINIGRAD_DATA to its path)")
    return d


def pytest_report_header(config):
    if collect_ignore_glob:
        return (f"torch/triton not installed: {', '.join(KERNEL_TEST_FILES)} not collected "
                "(pip install -e '.[test]' for the whole suite)")
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a real CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "slow: long-running; still part of the default run")
    from skip_guard import SkipGuard, extras_installed   # tests/ is on sys.path
    config.pluginmanager.register(
        SkipGuard(enforce=extras_installed() and not HAS_CUDA, data_dir=shared_data_dir()), "skip_guard")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (run with one: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
