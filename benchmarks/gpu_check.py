"""The prepared GPU check: everything the first real GPU must confirm, in one call of at most 8 minutes.

    python -m benchmarks.gpu_check --prepare          # here, before the call: data into .gpu_carry/
    python -m benchmarks.gpu_check --out=$OUT         # on the GPU machine (see docs/BENCHMARKS.md)
    python -m benchmarks.gpu_check --dry_run --out=/tmp/check     # CPU: interpreter, tiny sizes

A lent GPU gives 15 minutes of device time in all, machine start included, so this is one command
that stays under 8 minutes and returns something useful even when it is cut short. Stages, in order
(benchmarks/gpu_check_stages.py and gpu_check_kernels.py hold them), each a subprocess under its
own timeout:

  env       GPU, driver, CUDA, python, torch, triton and numpy versions, where minigrad imports from
  kernels   every kernel family against the NumPy specification (minigrad/backends/numpy_backend.py)
            at small shapes, float32 (IEEE: tight tolerances) and bfloat16, NaN/inf included
  gpt2      GPT-2 124M (bf16, 8 x 1024 tokens per step): our eager step, our CUDA-graph step and a
            torch eager model from the same weights, 20 steps each with a 5-step lr warm-up to
            6e-4: per-step losses compared, a failed capture is a failure, ms/iter and MFU
  dropout   shakespeare-char (dropout 0.2): the CUDA-graph step against the eager one (new masks
            per replay, so losses agree statistically): val loss after the same steps
  perf      matmul at 3 GPT-2 shapes against cuBLAS, attention at 2 shapes against SDPA
  items     issue 18's slow items against what they replaced: db from the dW matmul, the
            cross-entropy's scale on the narrow side, dropout's four Philox outputs per draw

Fixed kernel configs throughout (MINIGRAD_AUTOTUNE=0: one compile per kernel variant, no timing
of candidates), Triton's cache outside the carried folder (TRITON_CACHE_DIR, default
/tmp/minigrad-gpu-check-triton: kept while the machine stays warm, never carried back and forth).
Results stream to --out as they come: one log per stage (<stage>.log), one JSON row per check
(results.jsonl), and summary.json / summary.txt rewritten after every stage, so a call cut off by
its time limit still returns every stage that finished. Exit status: 0 when every stage passed.

Data: --prepare copies ../shared/data/tinyshakespeare.txt (or $MINIGRAD_DATA's) into the ignored
.gpu_carry/data/ and encodes it with the GPT-2 tokenizer (../shared/data/gpt2) into
gpt2_tokens.npy (~2 MB in all); carry `.gpu_carry`. Without it the gpt2 and dropout stages train
on synthetic token streams (and say so): the comparisons still hold, the losses mean less.

--dry_run runs the same stages on the CPU (Triton's interpreter, tiny models, a fake graph that
records by running, torch on the CPU): tests/test_gpu_check.py runs it in CI, so the script cannot
rot before a GPU arrives. Its numbers are not measurements of anything.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / ".gpu_carry"
STAGES = ("env", "kernels", "gpt2", "dropout", "perf", "items")
# seconds per stage on the GPU (timeouts): 20 + 110 + 150 + 100 + 60 + 30 = 470 <= the 480 budget
TIMEOUTS = {"env": 20, "kernels": 110, "gpt2": 150, "dropout": 100, "perf": 60, "items": 30}
DRY_TIMEOUTS = {"env": 60, "kernels": 180, "gpt2": 180, "dropout": 180, "perf": 120, "items": 120}
BUDGET_S = 480                                    # the whole call: 8 minutes


def prepare(data_dir: Optional[str] = None) -> int:
    """Copy the text and the GPT-2 tokens the stages read into .gpu_carry/data (ignored by git)."""
    src = Path(data_dir or os.environ.get("MINIGRAD_DATA") or REPO.parent / "shared" / "data")
    dst = CARRY / "data"
    dst.mkdir(parents=True, exist_ok=True)
    text = src / "tinyshakespeare.txt"
    if not text.exists():
        print(f"gpu_check --prepare: {text} not found; the stages will use synthetic tokens")
        return 1
    shutil.copyfile(text, dst / "tinyshakespeare.txt")
    gpt2 = src / "gpt2"
    if (gpt2 / "vocab.json").exists() and (gpt2 / "merges.txt").exists():
        import numpy as np

        sys.path.insert(0, str(REPO))
        from minigrad.tokenizer import BPETokenizer
        tok = BPETokenizer.from_gpt2_files(str(gpt2 / "vocab.json"), str(gpt2 / "merges.txt"))
        t0 = time.perf_counter()
        ids = np.asarray(tok.encode(text.read_text(encoding="utf-8")), dtype=np.uint16)
        np.save(dst / "gpt2_tokens.npy", ids)
        print(f"gpu_check --prepare: {len(ids):,} GPT-2 tokens in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"gpu_check --prepare: no GPT-2 vocabulary in {gpt2}: the gpt2 stage will use synthetic tokens")
    total = sum(f.stat().st_size for f in dst.iterdir())
    print(f"gpu_check --prepare: {dst} holds {total / 1e6:.1f} MB; carry '.gpu_carry'")
    return 0


def _write_summary(out: Path, rows: list[dict], started: float) -> None:
    summary = {"stages": rows, "elapsed_s": round(time.time() - started, 1),
               "passed": all(r["status"] == "pass" for r in rows)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [f"{r['stage']:8s} {r['status']:8s} {r['seconds']:6.1f} s  {r.get('note', '')}" for r in rows]
    lines.append(f"total {summary['elapsed_s']:.1f} s: {'PASS' if summary['passed'] else 'FAIL'}")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")


def _run_stage(stage: str, out: Path, dry_run: bool, timeout: float, env: dict) -> tuple[str, str]:
    """(status, note): pass / fail / timeout, running the stage in its own process group."""
    cmd = [sys.executable, "-m", "benchmarks.gpu_check_stages", stage, f"--out={out}"]
    if dry_run:
        cmd.append("--dry_run")
    with open(out / f"{stage}.log", "w") as log:
        log.write(f"$ {' '.join(cmd)}  (timeout {timeout:.0f} s)\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)        # the stage and anything it started
            proc.wait()
            log.write(f"\n[gpu_check] {stage}: killed after its {timeout:.0f} s timeout\n")
            return "timeout", f"killed after {timeout:.0f} s"
    if rc == 0:
        return "pass", ""
    return "fail", f"exit status {rc} (see {stage}.log, results.jsonl)"


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu-check-out"), help="results folder")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {STAGES}")
    ap.add_argument("--dry_run", action="store_true", help="CPU: Triton's interpreter, tiny sizes")
    ap.add_argument("--prepare", action="store_true", help="copy the data into .gpu_carry/data and exit")
    ap.add_argument("--data", default=None, help="--prepare's source folder (default ../shared/data)")
    ap.add_argument("--budget_s", type=float, default=BUDGET_S, help="the whole call's limit")
    ap.add_argument("--timeouts", default="", help="per-stage overrides, e.g. kernels=60,perf=30")
    args = ap.parse_args(argv)
    if args.prepare:
        return prepare(args.data)
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}; expected a subset of {STAGES}")
    timeouts = dict(DRY_TIMEOUTS if args.dry_run else TIMEOUTS)
    for item in filter(None, args.timeouts.split(",")):
        name, _, seconds = item.partition("=")
        timeouts[name] = float(seconds)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1", MINIGRAD_AUTOTUNE="0", MINIGRAD_AUTOTUNE_CACHE="off")
    env.setdefault("TRITON_CACHE_DIR", "/tmp/minigrad-gpu-check-triton")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    if args.dry_run:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    started, rows = time.time(), []
    print(f"gpu_check{' (dry run)' if args.dry_run else ''}: stages {stages}, results in {out}", flush=True)
    for stage in stages:
        left = args.budget_s - (time.time() - started)
        timeout = min(timeouts[stage], left)
        if left < 5:                              # not worth starting: say so and go on
            rows.append({"stage": stage, "status": "skipped", "seconds": 0.0,
                         "note": f"{left:.0f} s of the {args.budget_s:.0f} s budget left"})
            _write_summary(out, rows, started)
            continue
        t0 = time.time()
        status, note = _run_stage(stage, out, args.dry_run, timeout, env)
        rows.append({"stage": stage, "status": status, "seconds": round(time.time() - t0, 1), "note": note})
        _write_summary(out, rows, started)
        print(f"  {stage}: {status} in {rows[-1]['seconds']:.1f} s {note}", flush=True)
    print((out / "summary.txt").read_text(), end="", flush=True)
    return 0 if all(r["status"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
