"""Data-parallel scaling on the CPU: train.py on 1 rank vs 2 ranks (torchrun, gloo), tokens/s.

    python -m benchmarks.bench_distributed                   # 120 steps each, 2 repeats
    python -m benchmarks.bench_distributed --max_iters=40 --repeats=1   # a quick look

Weak scaling, the way data parallelism is used: every rank keeps the per-rank batch (12 x 64
tokens, nanoGPT's Shakespeare CPU model: 4 layers, 4 heads, 128 dims), so 2 ranks process twice
the tokens per step. Each rank gets ONE BLAS thread (OMP/OPENBLAS/MKL_NUM_THREADS=1), and so
does the single rank: 1 core against 2 cores, a fair comparison on a 2-core machine, whose
second core would otherwise serve the single process's BLAS threads.

Each step is timestamped in the worker (train.py calls GradientReducer.average once per step):
ms/step is the median wall time per step after 10 warm-up steps, and CPU ms/step the median of
rank 0's process CPU time per step (gloo's threads included), which a loaded machine disturbs
far less than wall time. With the same work per rank, scaling efficiency = ms/step(1 rank) /
ms/step(2 ranks) = tokens/s(2) / (2 x tokens/s(1)); 1.0 is perfect, and what is missing is the
gradient all-reduce (0.8 M float32 = 3.2 MB per step, one bucket), the per-step loss
all-reduce, and whatever else the machine runs (the load average is recorded with each row:
the machine is shared). train.py's own tokens/s (global, evals excluded) is recorded too.

Rows go to benchmarks/results/distributed-cpu.json (ours = 2 ranks, baseline = 1 rank, ratio =
baseline_ms / ours_ms = the efficiency); the table is printed for docs/BENCHMARKS.md. GPU
multi-rank (NCCL) figures are owed: they need a machine with several GPUs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = ["--n_layer=4", "--n_head=4", "--n_embd=128", "--block_size=64", "--batch_size=12",
         "--activation=gelu_exact", "--dropout=0", "--sample_tokens=0", "--plot=false",
         "--progress=false", "--eval_iters=1", "--log_interval=100000", "--warmup_iters=10"]


def _worker(summary_path: str, argv: list[str]) -> int:
    """The process torchrun starts: train.main, rank 0 writes the summary as JSON.

    train.py calls GradientReducer.average once per step (a no-op on one rank), so wrapping it
    here timestamps every step: wall time, and this process's CPU time (gloo's threads included).
    """
    sys.path.insert(0, str(REPO))
    import train
    from minigrad.training import distributed
    stamps: list[tuple[float, float]] = []
    average = distributed.GradientReducer.average

    def timed_average(self) -> None:
        average(self)
        stamps.append((time.perf_counter(), time.process_time()))

    distributed.GradientReducer.average = timed_average
    summary = train.main(argv)
    if os.environ.get("RANK", "0") == "0":
        skip = min(10, len(stamps) // 4)                 # warm-up steps
        wall = np.diff([w for w, _ in stamps[skip:]]) * 1000
        cpu = np.diff([c for _, c in stamps[skip:]]) * 1000
        Path(summary_path).write_text(json.dumps({
            "tokens_per_s": summary["tokens_per_s"], "iters": summary["iters"],
            "median_ms": float(np.median(wall)), "median_cpu_ms": float(np.median(cpu))}))
    return 0


def _run(ranks: int, data: str, cache: str, out: str, max_iters: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO))
    summary = Path(out) / "summary.json"
    args = [str(summary), "--", f"--data={data}", f"--data_cache={cache}", f"--out_dir={out}",
            f"--max_iters={max_iters}", f"--eval_interval={max_iters}", *MODEL]
    if ranks == 1:
        cmd = [sys.executable, "-m", "benchmarks.bench_distributed", "--worker", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "-m", "benchmarks.bench_distributed", "--worker", *args]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{ranks}-rank run failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return json.loads(summary.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        sep = argv.index("--")
        return _worker(argv[1], argv[sep + 1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--max_iters", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=2, help="measure 1 and 2 ranks this many times each")
    ap.add_argument("--data", default="", help="a text file (default: ../shared/data/tinyshakespeare.txt)")
    args = ap.parse_args(argv)
    try:
        import torch.distributed as dist
    except ImportError:
        print("bench_distributed: needs torch (torch.distributed with gloo); skipped")
        return 0
    if not dist.is_available() or not dist.is_gloo_available():
        print("bench_distributed: this torch has no gloo backend; skipped")
        return 0
    data = args.data or str(REPO.parent / "shared" / "data" / "tinyshakespeare.txt")
    if not Path(data).is_file():
        print(f"bench_distributed: {data} not found; pass --data=FILE")
        return 1
    from benchmarks import common
    from benchmarks.bench_tokenizer import cpu_name
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        for rep in range(args.repeats):
            res = {}
            for ranks in (1, 2):
                load_before = os.getloadavg()[0]
                res[ranks] = _run(ranks, data, cache, str(Path(tmp) / f"r{ranks}-{rep}"), args.max_iters)
                res[ranks]["load"] = (load_before + os.getloadavg()[0]) / 2
            one, two = res[1], res[2]
            eff = one["median_ms"] / two["median_ms"]       # same work per rank: time ratio
            row = common.make_row(
                "distributed_cpu", f"4x4x128 T=64 B=12 per rank, 2 ranks (gloo) vs 1, {args.max_iters} iters, "
                f"1 thread per rank, repeat {rep + 1}", "float32", two["median_ms"], "1 rank", one["median_ms"],
                tokens_per_s=round(two["tokens_per_s"], 1), baseline_tokens_per_s=round(one["tokens_per_s"], 1),
                cpu_ms=round(two["median_cpu_ms"], 2), baseline_cpu_ms=round(one["median_cpu_ms"], 2),
                scaling_efficiency=round(eff, 4), ranks=2, threads_per_rank=1,
                load_average=round((one["load"] + two["load"]) / 2, 2), backend="gloo", cpu_model=cpu_name())
            rows.append(row)
            print(f"repeat {rep + 1}: median step 1 rank {one['median_ms']:.1f} ms, "
                  f"2 ranks {two['median_ms']:.1f} ms (CPU {one['median_cpu_ms']:.1f} / "
                  f"{two['median_cpu_ms']:.1f} ms): efficiency {eff:.2f}, "
                  f"load average ~{row['load_average']}", flush=True)
    path = common.write_rows(rows, name="distributed")
    print(f"\nrows -> {path}\n")
    print("| repeat | load avg | ms/step 1 rank | ms/step 2 ranks | efficiency | CPU ms/step 1 rank | "
          "CPU ms/step 2 ranks | tok/s 1 rank | tok/s 2 ranks |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['load_average']} | {r['baseline_ms']:.1f} | {r['ours_ms']:.1f} | "
              f"{r['scaling_efficiency']:.2f} | {r['baseline_cpu_ms']:.1f} | {r['cpu_ms']:.1f} | "
              f"{r['baseline_tokens_per_s']:,.0f} | {r['tokens_per_s']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
