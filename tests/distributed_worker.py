"""One train.py process of a multi-process test (tests/test_distributed.py); not a test itself.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py \
        SUMMARY.json -- --max_iters=20 ...           # rank 0 writes main()'s summary as JSON
    RANK=1 WORLD_SIZE=2 ... python tests/distributed_worker.py - --fail=exit:3 -- ...

With a summary path, it calls `train.main(argv)` and rank 0 dumps the returned summary (losses
at full precision, which the log does not print). With `-`, it runs train.py as `__main__`, so
errors are reported exactly as a user sees them. `--fail=exit:K` / `--fail=hang:K` is the test
hook that lives here rather than in train.py: rank 1 exits (or sleeps) at its K-th optimizer
step, right after launching that step's gradient all-reduces; `--fail=sigint:K` (`sigterm:K`)
makes rank 1 alone receive Ctrl-C (SIGTERM) there (the other ranks must still stop at the same
step); `--fail=stop_torchrun:K` sends SIGTERM to torchrun itself, which sends it on to every rank.
`--separate_out_dir` gives every rank but 0 its own --out_dir (OUT_DIR.rank<R>), so a test can
see that those ranks write nothing there (checkpoints and logs are rank 0's alone).
"""
from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minigrad.training import distributed  # noqa: E402


def inject_failure(spec: str) -> None:
    mode, _, step = spec.partition(":")
    real_average, calls = distributed.GradientReducer.average, [0]

    def average(self) -> None:
        calls[0] += 1
        if calls[0] == int(step):
            if mode == "exit":
                os._exit(3)
            if mode in ("sigint", "sigterm"):          # train.py's handler only asks to stop
                os.kill(os.getpid(), signal.SIGINT if mode == "sigint" else signal.SIGTERM)
                return real_average(self)
            if mode == "stop_torchrun":                 # torchrun (our parent) passes it on to every rank
                os.kill(os.getppid(), signal.SIGTERM)
                return real_average(self)
            time.sleep(600)                       # "hang": the test kills us
        real_average(self)

    distributed.GradientReducer.average = average


def main() -> None:
    summary_path, rest = sys.argv[1], sys.argv[2:]
    sep = rest.index("--")
    opts, argv = rest[:sep], rest[sep + 1:]
    rank = os.environ.get("RANK", "0")
    for opt in opts:
        if opt.startswith("--fail=") and rank == "1":
            inject_failure(opt.split("=", 1)[1])
        if opt == "--separate_out_dir" and rank != "0":
            argv = [f"{a}.rank{rank}" if a.startswith("--out_dir=") else a for a in argv]
    if summary_path == "-":
        sys.argv = [str(REPO / "train.py"), *argv]
        runpy.run_path(str(REPO / "train.py"), run_name="__main__")
        return
    import train
    summary = train.main(argv)
    if os.environ.get("RANK", "0") == "0":
        Path(summary_path).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
