"""How many BLAS threads train.py should use on a CPU: ms/step of the real script, per --threads,
on a quiet machine and with other CPU-bound work running beside it.

    python -m benchmarks.bench_threads                       # threads 1 and every core; 0, 1, 2 busy processes
    python -m benchmarks.bench_threads --threads 1 2 4 --busy 0 --steps=100

Each measurement is one `python train.py` process (the default `make train` model: 4 layers,
4 heads, 128 dims, context 64, batch 12; `--fast` as by default) that trains `--steps` steps
without evals; the figure is the median of its "ms/iter" progress lines after the first one
(which includes warm-up). "busy N" starts N processes that spin on the CPU for the whole
measurement: what a test run, a second training run or a browser does to a shared machine.
Runs alternate between thread counts (`--repeats` rounds), so drifting load hits each alike.

Rows go to benchmarks/results/threads-cpu.json (with the machine's core count and BLAS); the
table is printed for docs/perf-notes.md. train.py's `--threads=auto` is chosen from this.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _ms_per_step(threads: int, steps: int, data: str, cache: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "train.py", f"--data={data}", f"--data_cache={cache}", f"--out_dir={out}",
               f"--max_iters={steps}", f"--eval_interval={10 * steps}", "--eval_iters=1", "--log_interval=10",
               "--sample_tokens=0", "--plot=false", "--progress=false", f"--threads={threads}", "--device=cpu"]
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"train.py failed: {r.stderr[-2000:]}")
    return statistics.median(interval_ms(r.stdout))


def interval_ms(stdout: str) -> list[float]:
    """ms per step within each logging interval after the first, from train.py's progress lines
    ("iter N: ... | 62 ms/iter | ...", each the mean since the last eval, which is at step 0 only)."""
    means = [(int(n), float(ms)) for n, ms in re.findall(r"^iter (\d+): .*\| (\d+) ms/iter", stdout, re.MULTILINE)]
    return [(n2 * m2 - n1 * m1) / (n2 - n1) for (n1, m1), (n2, m2) in zip(means, means[1:])]


def main(argv=None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, cores}))
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "tinyshakespeare.txt"))
    ap.add_argument("--data_cache", default=str(REPO / "data"))
    ap.add_argument("--no_write", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from minigrad.training.threads import _loaded_blas_libraries

    rows = []
    for busy in args.busy:
        stop = mp.Event()
        spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        try:
            times: dict[int, list[float]] = {t: [] for t in args.threads}
            for _ in range(args.repeats):
                for t in args.threads:
                    times[t].append(_ms_per_step(t, args.steps, args.data, args.data_cache))
        finally:
            stop.set()
            for p in spinners:
                p.join()
        for t in args.threads:
            rows.append({"busy_processes": busy, "threads": t, "ms_per_step": round(min(times[t]), 1),
                         "runs": [round(x, 1) for x in times[t]]})
            print(f"busy {busy}  threads {t}: {min(times[t]):6.1f} ms/step  (runs {times[t]})", flush=True)

    print("\n| other CPU-bound processes | " + " | ".join(f"--threads={t}" for t in args.threads) + " |")
    print("|---" * (len(args.threads) + 1) + "|")
    for busy in args.busy:
        cells = [f"{r['ms_per_step']:.1f} ms" for r in rows if r["busy_processes"] == busy]
        print(f"| {busy} | " + " | ".join(cells) + " |")
    if not args.no_write:
        out = REPO / "benchmarks" / "results" / "threads-cpu.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "benchmark": "threads", "date": time.strftime("%Y-%m-%d"), "cores": cores,
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "blas": [Path(p).name for p in _loaded_blas_libraries()], "steps": args.steps, "rows": rows}, indent=1))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
