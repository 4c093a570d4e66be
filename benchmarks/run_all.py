"""Run every benchmark in one go (`make bench`): the CPU ones always, the kernel ones on a GPU.

    python -m benchmarks.run_all            # everything that can run on this machine
    python -m benchmarks.run_all --quick    # CPU training benchmark shortened to 200 steps

Each benchmark checks its own correctness first and writes its rows to
benchmarks/results/<benchmark>-<device>.json; this script only sequences them and reports
which ones failed (a failing benchmark does not stop the others).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time

KERNELS = ["matmul", "attention", "softmax", "layernorm", "cross_entropy", "elementwise",
           "embedding", "adamw"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorten the CPU training benchmarks")
    ap.add_argument("--only", nargs="*", help="benchmark names, e.g. matmul tokenizer train_cpu")
    args = ap.parse_args(argv)
    runs = [(f"bench_{k}", []) for k in KERNELS]
    runs += [("bench_train", []),                    # one GPT training step vs torch (GPU)
             ("bench_tokenizer", []),
             ("bench_train_cpu", ["--max_iters=200"] if args.quick else []),
             ("bench_distributed", ["--max_iters=40", "--repeats=1"] if args.quick else [])]   # 1 vs 2 CPU ranks
    if args.only:
        runs = [(m, a) for m, a in runs if m.removeprefix("bench_") in args.only]
    failed = []
    for module, margs in runs:
        print(f"\n===== {module} {' '.join(margs)}", flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"benchmarks.{module}")
            takes_argv = bool(inspect.signature(mod.main).parameters)
            rc = mod.main(margs) if takes_argv else mod.main()
        except Exception as e:                       # keep going: report at the end
            print(f"{module} failed: {type(e).__name__}: {e}")
            rc = 1
        print(f"===== {module}: {'ok' if not rc else 'FAILED'} ({time.perf_counter() - t0:.0f} s)")
        if rc:
            failed.append(module)
    print("\nfailed: " + (", ".join(failed) if failed else "none"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
