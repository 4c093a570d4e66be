"""benchmarks/gpu_check.py, the one-call GPU check, dry-run on the CPU so it cannot rot.

The dry run is the same script with the same stages (env, kernels vs the NumPy specification,
GPT-2 eager vs CUDA graph vs torch, shakespeare-char dropout graph vs eager, matmul and attention
vs torch) on Triton's interpreter, tiny models and a fake graph; its numbers measure nothing, but
every line of the stages runs and every comparison must hold at float32 tolerances (~30 s). The
driver's bookkeeping is checked too: a stage killed by its timeout is reported as such and the next
stage still runs, a stage the budget cannot fit is skipped with the reason, and the summary is
written after every stage (what a device call cut short returns).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_dry_run_passes_every_stage(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry_run", f"--out={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    summary = json.loads((tmp_path / "summary.json").read_text())
    failed = [r for r in _rows(tmp_path) if r.get("ok") is False]
    assert proc.returncode == 0 and summary["passed"], (proc.stdout[-3000:], failed)
    assert [r["stage"] for r in summary["stages"]] == ["env", "kernels", "gpt2", "dropout", "perf", "items"]
    rows = _rows(tmp_path)
    checks = {r["check"] for r in rows if "check" in r}
    for name in ("graph == eager per step", "ours == torch at step 0 (same weights)", "graph: captured, no "
                 "'capture failed'", "dropout graph: captured, no 'capture failed'",
                 "attention dropout == softmax -> dropout(same seed) -> @ v"):
        assert name in checks, name
    assert sum(1 for c in checks if c.startswith("matmul ")) >= 6
    perf = [r for r in rows if r.get("benchmark")]
    assert {r["benchmark"] for r in perf} == {"matmul", "attention", "issue 18 item"}
    assert all(r["dry_run"] for r in perf)
    runs = {r["run"]: r for r in rows if "run" in r}
    assert len(runs["ours eager"]["losses"]) == len(runs["ours CUDA graph"]["losses"]) == 4
    for stage in summary["stages"]:
        assert (tmp_path / f"{stage['stage']}.log").stat().st_size > 0


def test_a_timeout_is_reported_and_the_next_stage_still_runs(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    from benchmarks import gpu_check
    rc = gpu_check.main(["--dry_run", f"--out={tmp_path}", "--stages=env,perf", "--timeouts=env=0.3"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 1 and not summary["passed"]
    assert [(r["stage"], r["status"]) for r in summary["stages"]] == [("env", "timeout"), ("perf", "pass")]
    assert "killed after its 0 s timeout" in (tmp_path / "env.log").read_text()
    rc = gpu_check.main(["--dry_run", f"--out={tmp_path / 'late'}", "--stages=env", "--budget_s=2"])
    summary = json.loads((tmp_path / "late" / "summary.json").read_text())
    assert rc == 1 and summary["stages"][0]["status"] == "skipped"
