"""A pytest plugin that fails the session when a skip could be hiding a failure (issue 13).

On a machine with the `[test]` extras a test may skip for two reasons only:
- it is marked `gpu` (it needs a real CUDA GPU), or
- the shared data it needs is absent: its skip reason names a path under the shared data
  folder, and that path does not exist. On a machine that has the data, the same skip fails.
Anything else (a broad `except Exception: pytest.skip(...)`, an import that should work, a
module-level importorskip of a package the extras provide) is listed at the end of the run
and makes the exit status 1, even though every test "passed".

It looks only at the tests that ran, so a partial run (`pytest tests/test_x.py`, `-k`, `-m gpu`)
is judged on its own skips; it never re-runs anything. conftest.py registers it and decides
whether it is enforced (`extras_installed()` and no CUDA); tests/test_skip_guard.py tests it.
A checkout run without an install (PYTHONPATH=.) has no package metadata for minigrad: the
`[test]` extra is then read from the checkout's setup.py, so that run is guarded too.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path
from typing import Optional

import pytest


def extra_from_setup_py(setup_py: Path, extra: str = "test") -> list[str]:
    """The requirements of an extra written in a setup.py (extras_require={"test": [...]}, a
    literal), read without running the file."""
    tree = ast.parse(Path(setup_py).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return list(ast.literal_eval(node.value).get(extra, []))
    raise ValueError(f"{setup_py}: no extras_require literal found")


def extras_installed(package: str = "minigrad", setup_py: Optional[Path] = None) -> bool:
    """True when every requirement of `package`'s `[test]` extra is installed. The extra is read
    from the package's metadata (pip install); without metadata, from `setup_py` when given (a
    checkout run with PYTHONPATH=.), else nothing is known and the answer is False."""
    try:
        requires = [r for r in importlib.metadata.requires(package) or []
                    if re.search(r"""extra\s*==\s*["']test["']""", r)]
    except importlib.metadata.PackageNotFoundError:
        if setup_py is None or not Path(setup_py).is_file():
            return False
        requires = extra_from_setup_py(setup_py)
    for req in requires:
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group()
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


class SkipGuard:
    """Records every skip (test or collection) with its reason; see the module docstring."""

    def __init__(self, enforce: bool, data_dir: Path):
        self.enforce = enforce
        self.data_dir = str(data_dir)
        self.skips: list[tuple[str, str, bool]] = []        # (node id, reason, marked gpu)
        self.gpu_nodes: set[str] = set()

    # ---- recording
    @staticmethod
    def _reason(report) -> str:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return reason.removeprefix("Skipped: ")

    def pytest_collection_finish(self, session) -> None:
        # by marker, not by keyword: keywords also hold the names of the folders on the path
        self.gpu_nodes = {item.nodeid for item in session.items if item.get_closest_marker("gpu")}

    def pytest_runtest_logreport(self, report) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):   # an xfail is not a skip
            self.skips.append((report.nodeid, self._reason(report), report.nodeid in self.gpu_nodes))

    def pytest_collectreport(self, report) -> None:
        if report.skipped:                                      # e.g. a module-level importorskip
            self.skips.append((report.nodeid, self._reason(report), False))

    # ---- judging
    def _data_absent(self, reason: str) -> bool:
        """The reason names a path under the shared data folder, and one such path is missing."""
        paths = re.findall(re.escape(self.data_dir) + r"""[^\s'"(),;]*""", reason)
        return any(not Path(p.rstrip(".:")).exists() for p in paths)

    def offenders(self) -> list[tuple[str, str]]:
        return [(node, reason) for node, reason, gpu in self.skips
                if not gpu and not self._data_absent(reason)]

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if self.enforce and self.offenders() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        bad = self.offenders() if self.enforce else []
        if not bad:
            return
        tr = terminalreporter
        tr.write_sep("=", f"{len(bad)} skip(s) that may hide failures (skip_guard)", red=True, bold=True)
        for node, reason in bad:
            tr.write_line(f"SKIPPED {node}: {reason}")
        tr.write_line("With the [test] extras a test may skip only when it is marked `gpu` or when the "
                      f"shared data path its reason names is absent (under {self.data_dir}). "
                      "Fix the cause, or mark a test that needs a CUDA GPU with @pytest.mark.gpu.")
