"""benchmarks/bench_threads.py runs train.py per --threads and reads its progress lines right."""
from __future__ import annotations

import pytest

from benchmarks import bench_threads


def test_the_threads_benchmark_measures_train_py(tmp_path, shared_data, capsys):
    rc = bench_threads.main(["--threads", "1", "--busy", "0", "1", "--steps=30", "--repeats=1", "--no_write",
                             f"--data={shared_data / 'tinyshakespeare.txt'}", f"--data_cache={tmp_path}"])
    assert rc == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2
    for row in rows:
        ms = float(row.split("|")[2].split()[0])
        assert 0 < ms < 10_000


def test_interval_times_come_from_the_cumulative_progress_lines():
    # means since the eval at step 0: 50 ms over 10 steps, then 40 over 20 -> steps 11-20 took 30 each
    out = ("step 0: train loss 4.1\niter 10: loss 3.0 | lr 1e-4 | 100 tok/s | 50 ms/iter | ETA 5s\n"
           "iter 20: loss 2.9 | lr 1e-4 | 100 tok/s | 40 ms/iter | ETA 4s\n"
           "iter 30: loss 2.8 | lr 1e-4 | 100 tok/s | 40 ms/iter | ETA 3s\n")
    assert bench_threads.interval_ms(out) == pytest.approx([30.0, 40.0])
