"""The test harness guards itself (issue 21): tests/conftest.py and tests/skip_guard.py.

Each case runs pytest in a subprocess on a tiny generated checkout (a tests/ folder with copies
of conftest.py, skip_guard.py and checked_backend.py, and a setup.py with a [test] extra), with
minigrad imported from this checkout (PYTHONPATH, as a checkout run without an install):
- an installed but broken triton (or torch), a fake package first on the path whose import
  raises, stops the session with the reason instead of passing as "not installed" (which would
  drop the kernel test files without a skip the guard could see);
- without minigrad's package metadata (hidden by a plugin loaded before conftest), the skip guard
  is still enforced: the [test] extra comes from setup.py;
- a test that leaves TRITON_INTERPRET unset, or imports a kernel module while it is unset (so the
  module is compiled for a GPU and every later launch looks for a GPU driver), fails, and the
  tests after it see TRITON_INTERPRET=1 again.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent

HIDE_METADATA = """
import importlib.metadata as md

_requires = md.requires


def requires(name):
    if name == "minigrad":                      # as in a checkout that was never pip-installed
        raise md.PackageNotFoundError(name)
    return _requires(name)


md.requires = requires
"""


def _session(tmp_path: Path, tests: dict[str, str], fakes: dict[str, str] = (), plugin: str = ""):
    """pytest on a generated checkout in tmp_path/repo; `fakes` are packages (name -> the code of
    their __init__.py) put first on the path; `plugin` is code loaded with -p before conftest."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    for name in ("conftest.py", "skip_guard.py", "checked_backend.py"):
        shutil.copy(TESTS_DIR / name, repo / "tests" / name)
    # the checkout's setup.py, as far as the guard reads it: a literal [test] extra (installed here)
    (repo / "setup.py").write_text('from setuptools import setup\n\nsetup(name="minigrad", '
                                   'extras_require={"gpu": ["torch"], "test": ["pytest>=7", "numpy"]})\n')
    (repo / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    for name, code in tests.items():
        (repo / "tests" / name).write_text(textwrap.dedent(code))
    extra = tmp_path / "path"
    extra.mkdir()
    for name, code in dict(fakes).items():
        (extra / name).mkdir()
        (extra / name / "__init__.py").write_text(textwrap.dedent(code))
    args = []
    if plugin:
        (extra / "harness_plugin.py").write_text(textwrap.dedent(plugin))
        args = ["-p", "harness_plugin"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "TRITON_INTERPRET")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(extra), str(REPO)])
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "tests"],
                       cwd=repo, capture_output=True, text=True, timeout=180, env=env)
    return r.returncode, r.stdout + r.stderr


PASSING = {"test_ok.py": """
    def test_ok():
        assert True
"""}


@pytest.mark.parametrize("name", ["triton", "torch"])
def test_an_installed_but_broken_package_stops_the_session(tmp_path, name):
    broken = f'raise ImportError("lib{name}.so: cannot open shared object file (a broken install)")'
    code, out = _session(tmp_path, PASSING, fakes={name: broken})
    assert code != 0, out
    assert f"{name} is installed" in out and f"`import {name}` fails" in out, out
    assert f"lib{name}.so: cannot open shared object file" in out
    assert "1 passed" not in out


def test_the_skip_guard_is_enforced_in_a_checkout_without_package_metadata(tmp_path):
    tests = {"test_skips.py": """
        import importlib.metadata
        import pytest

        def test_metadata_is_hidden():
            with pytest.raises(importlib.metadata.PackageNotFoundError):
                importlib.metadata.requires("minigrad")

        def test_hides_a_failure():
            pytest.skip("backend unavailable: it is broken")
    """}
    code, out = _session(tmp_path, tests, plugin=HIDE_METADATA)
    assert "1 passed, 1 skipped" in out, out
    assert code == 1, out
    assert "1 skip(s) that may hide failures (skip_guard)" in out
    assert "test_skips.py::test_hides_a_failure: backend unavailable: it is broken" in out


def test_a_test_that_leaks_triton_state_fails(tmp_path):
    tests = {"test_leaks.py": """
        import importlib
        import os

        def test_a_imports_kernels_without_the_interpreter(monkeypatch):
            monkeypatch.delenv("TRITON_INTERPRET")
            importlib.import_module("minigrad.kernels.copy")

        def test_b_unsets_the_interpreter():
            del os.environ["TRITON_INTERPRET"]

        def test_c_sees_it_again():
            assert os.environ["TRITON_INTERPRET"] == "1"
    """}
    code, out = _session(tmp_path, tests)
    assert code == 1, out
    assert "3 passed, 2 errors" in out, out
    assert "ERROR tests/test_leaks.py::test_a_imports_kernels_without_the_interpreter" in out
    assert re.search(r"compiled for a GPU: [\w., ]*minigrad\.kernels\.copy\b", out), out
    assert "ERROR tests/test_leaks.py::test_b_unsets_the_interpreter" in out
    assert "it left TRITON_INTERPRET=None" in out
