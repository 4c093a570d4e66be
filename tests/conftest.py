"""Test setup shared by every test file.

- Without CUDA, Triton kernels run in Triton's interpreter on torch CPU tensors: that must be
  decided before any kernel module is imported, so it happens here, first.
- Every backend is wrapped in CheckedBackend (shape/dtype assertions on each call).
- `shared_data` finds ../shared/data (or $MINIGRAD_DATA) and skips clearly when it is absent.
- Tests marked `gpu` skip without CUDA.
- skip_guard.py fails the session when, with the [test] extras and no CUDA, a test skips for any
  reason but `gpu` or absent shared data (a skip must never hide a failure). It is enforced in a
  checkout run with PYTHONPATH=. too (the extras are then read from setup.py).
- torch and triton count as installed when Python can find them (importlib.util.find_spec); one
  that is installed but fails to import stops the session with the reason, instead of passing as
  "not installed" (which drops the kernel test files without a skip anyone sees).
- No test may leave behind state that changes later tests: TRITON_INTERPRET must still be "1" after
  each test, and no kernel module may have been imported compiled for a GPU (as happens when one
  is first imported while a test has TRITON_INTERPRET unset: every later kernel launch then looks
  for a GPU driver). `_no_leaked_triton_state` fails the test that did it.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

# Tiny matmuls are far slower with a pool of BLAS threads fighting over 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import pytest


def import_if_installed(name: str):
    """The module `name`, or None when it is not installed (a core install has no torch or triton).
    Installed but failing to import is an error that stops the session: it would otherwise pass
    as "not installed" and the kernel test files would be dropped without a skip."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    try:
        return importlib.import_module(name)
    except Exception as err:
        raise RuntimeError(f"{name} is installed ({spec.origin}) but `import {name}` fails: "
                           f"{type(err).__name__}: {err}. Fix the installation (pip install -e '.[test]') "
                           f"or uninstall {name}; the tests will not run as if it were absent.") from err


torch = import_if_installed("torch")
HAS_CUDA = torch is not None and torch.cuda.is_available()

if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import minigrad.backends  # noqa: E402

triton = import_if_installed("triton")       # after TRITON_INTERPRET: triton reads it when kernels load
HAS_TRITON = triton is not None

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
    enforce = extras_installed(setup_py=REPO / "setup.py") and not HAS_CUDA
    config.pluginmanager.register(SkipGuard(enforce=enforce, data_dir=shared_data_dir()), "skip_guard")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (run with one: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# ---------------------------------------------------------------------------------------------
# state a test must not leak (issue 21)

INTERPRETING = HAS_TRITON and not HAS_CUDA
_checked_kernel_modules: set[str] = set()


def kernels_compiled_for_a_gpu() -> list[str]:
    """Names of the loaded minigrad.kernels modules whose Triton kernels were built for a GPU
    (triton.jit without TRITON_INTERPRET=1) rather than for the interpreter; each module is
    looked at once, the first time it is seen loaded."""
    from triton.runtime.jit import JITFunction, KernelInterface
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("minigrad.kernels.") or name in _checked_kernel_modules or module is None:
            continue
        _checked_kernel_modules.add(name)
        for value in list(vars(module).values()):
            while isinstance(value, KernelInterface) and not isinstance(value, JITFunction) \
                    and isinstance(getattr(value, "fn", None), KernelInterface):
                value = value.fn                   # autotune / heuristics wrappers
            if isinstance(value, JITFunction):
                found.append(name)
                break
    return found


@pytest.fixture(autouse=True)
def _no_leaked_triton_state():
    yield
    if not INTERPRETING:
        return
    problems = []
    if os.environ.get("TRITON_INTERPRET") != "1":
        problems.append(f"it left TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')!r} (put back to '1')")
        os.environ["TRITON_INTERPRET"] = "1"
    gpu = kernels_compiled_for_a_gpu()
    if gpu:
        problems.append(f"kernel modules were first imported without TRITON_INTERPRET=1 and are compiled "
                        f"for a GPU: {', '.join(gpu)} (every later launch needs a GPU driver; import them "
                        "in a subprocess instead)")
    if problems:
        pytest.fail("this test leaks Triton state to the tests after it: " + "; ".join(problems),
                    pytrace=False)
