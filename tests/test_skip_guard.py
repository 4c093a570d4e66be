"""tests/skip_guard.py: a session whose only skips are gpu-marked (or need absent shared data)
passes; any other skip fails it, and the report names the test and its reason.

Each case runs pytest in a subprocess on a tiny generated test folder whose conftest registers
the guard with enforcement on, so this holds whatever machine runs it. The real suite's own
enforcement (on with the [test] extras and no CUDA) is conftest.py's `pytest_configure`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from skip_guard import extras_installed

TESTS_DIR = Path(__file__).resolve().parent

CONFTEST = """
from pathlib import Path
from skip_guard import SkipGuard

def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")
    config.pluginmanager.register(SkipGuard(True, Path(__file__).parent / "data"), "skip_guard")
"""

ALLOWED = """
import pytest
from pathlib import Path

DATA = Path(__file__).parent / "data"

def test_passes():
    assert True

@pytest.mark.gpu
@pytest.mark.skipif(True, reason="needs a CUDA GPU")
def test_gpu_marked():
    pass

@pytest.mark.gpu
def test_gpu_marked_skips_inside():
    pytest.skip("no CUDA here")

def test_needs_absent_data():
    pytest.skip(f"shared data {DATA / 'corpus.txt'} is absent")

@pytest.mark.xfail(reason="an expected failure is not a skip")
def test_xfail():
    assert False
"""

HIDDEN = """
import pytest
from pathlib import Path

DATA = Path(__file__).parent / "data"

def test_passes():
    assert True

def test_broad_except_skip():
    try:
        raise RuntimeError("the Triton backend is broken")
    except Exception as e:
        pytest.skip(f"backend unavailable: {e}")

def test_needs_present_data():
    pytest.skip(f"{DATA / 'present.txt'} not found")
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("a_package_that_is_not_installed_anywhere")

def test_never_runs():
    pass
"""


def _run(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    for name, text in {"conftest.py": CONFTEST, "pytest.ini": "[pytest]\n", **files}.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "present.txt").write_text("the data is here")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"              # a bare pytest starts faster
    env["PYTHONPATH"] = str(TESTS_DIR)                      # where skip_guard.py lives
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)


def test_only_gpu_and_absent_data_skips_pass(tmp_path):
    r = _run(tmp_path, {"test_allowed.py": ALLOWED})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 skipped" in r.stdout and "skip_guard" not in r.stdout


def test_other_skips_fail_the_session_and_are_listed(tmp_path):
    r = _run(tmp_path, {"test_allowed.py": ALLOWED, "test_hidden.py": HIDDEN,
                        "test_module_skip.py": MODULE_SKIP})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 xfailed" in r.stdout and "failed" not in r.stdout.replace("xfailed", "")
    assert "3 skip(s) that may hide failures (skip_guard)" in r.stdout
    assert "test_hidden.py::test_broad_except_skip: backend unavailable: the Triton backend is broken" \
        in r.stdout
    assert "test_hidden.py::test_needs_present_data" in r.stdout          # the data is there
    assert "test_module_skip.py: could not import 'a_package_that_is_not_installed_anywhere'" in r.stdout
    for allowed in ("test_gpu_marked", "test_needs_absent_data", "test_xfail"):
        assert f"::{allowed}:" not in r.stdout


def test_the_suite_enforces_it_with_the_test_extras_and_no_cuda(pytestconfig):
    from conftest import HAS_CUDA, HAS_TRITON, torch
    guard = pytestconfig.pluginmanager.get_plugin("skip_guard")
    setup_py = TESTS_DIR.parent / "setup.py"
    assert guard is not None and guard.enforce == (extras_installed(setup_py=setup_py) and not HAS_CUDA)
    assert extras_installed("a-package-that-does-not-exist") is False
    # without metadata (a checkout run), the checkout's setup.py says what the extra is
    assert extras_installed("a-package-that-does-not-exist", setup_py) == extras_installed(setup_py=setup_py)
    if torch is not None and HAS_TRITON:                    # the CI machine: pip install -e '.[test]'
        assert extras_installed(), "torch and triton are here but not every [test] extra"
