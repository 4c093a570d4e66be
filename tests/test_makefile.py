"""The Makefile's user commands (issue 19 item 6), read with `make -n` (print, run nothing):
`make train` installs only the light [train] extra and passes DATA and any ARGS to train.py;
`make test` installs the test extras and runs the README's test command."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _dry_run(tmp_path, *args: str) -> list[str]:
    if shutil.which("make") is None:
        pytest.fail("make is not installed; the README's commands need it")
    # a fresh VENV path: the stamps do not exist, so make shows every step it would take
    # run as a user would, also when the test itself runs under `make test` (CI): not as a sub-make
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-n", "--no-print-directory", f"VENV={tmp_path / 'venv'}", *args], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_make_train_installs_the_train_extra_and_passes_settings(tmp_path):
    lines = _dry_run(tmp_path, "train", "DATA=my books/x.txt", "ARGS=--max_iters=500 --threads=2")
    assert any('pip install --quiet -e ".[train]"' in line for line in lines)
    assert not any(".[test]" in line for line in lines)                # no 2 GB of test extras
    assert lines[-1].endswith('train.py --data="my books/x.txt" --max_iters=500 --threads=2')   # a path may hold spaces


def test_make_test_runs_the_readme_command(tmp_path):
    lines = _dry_run(tmp_path, "test")
    assert any('pip install --quiet -e ".[test]"' in line for line in lines)
    assert lines[-1].endswith("-m pytest -q")
    assert "make test" in (REPO / ".ci" / "run").read_text() and "make test" in (REPO / "README.md").read_text()
