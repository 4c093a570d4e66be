"""train.py when things go wrong: Ctrl-C, a diverging loss, crash debris, torn logs, hostile or
old checkpoints. Tiny models on a tiny generated text in tmp_path; no network.
"""
from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import train
from minigrad import serialization
from minigrad.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minigrad.training.run_dir import read_log
from minigrad.training.stops import TrainingDiverged

REPO = Path(__file__).resolve().parents[1]
TINY = ["--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8", "--batch_size=2",
        "--eval_iters=1", "--sample_tokens=0", "--plot=false", "--progress=false", "--warmup_iters=0"]


def tiny_text(folder: Path) -> Path:
    """~10 kB of seeded word salad: enough windows of 9 characters for both splits."""
    rng = random.Random(0)
    words = "the king and queen of a small land went to see old friends by the sea".split()
    p = folder / "tiny.txt"
    p.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(300)), encoding="utf-8")
    return p


def run(tmp_path: Path, *extra: str, out: str = "out") -> dict:
    return train.main([f"--data={tiny_text(tmp_path)}", f"--out_dir={tmp_path / out}",
                       f"--data_cache={tmp_path / 'cache'}", *TINY, *extra])


def resave(path: Path, **changes) -> None:
    """Rewrite a checkpoint with some metadata entries changed (None: removed), as an attacker or
    an older version could; the checksums are recomputed, so only the content is wrong."""
    ck = load_checkpoint(path)
    meta = {k: v for k, v in {**ck.meta, **changes}.items() if v is not None}
    save_checkpoint(path, ck.tensors, meta)


# ---------------------------------------------------------------------------------------------
# Ctrl-C


def signal_a_training_run(tmp_path, signum: int) -> tuple[int, str]:
    """Start `python train.py` on the tiny text (out/ and cache/ under tmp_path), send it `signum`
    once iteration 3 is logged; returns (exit code, stderr)."""
    text = tiny_text(tmp_path)
    cmd = [sys.executable, "-u", "train.py", f"--data={text}", f"--out_dir={tmp_path / 'out'}",
           f"--data_cache={tmp_path / 'cache'}", *TINY, "--max_iters=100000", "--eval_interval=100000",
           "--log_interval=1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        for line in proc.stdout:                       # wait until training steps are running
            if line.startswith("iter 3:") or time.time() > deadline:
                break
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, err


def test_ctrl_c_saves_the_current_step_exits_130_and_the_printed_command_resumes(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    code, err = signal_a_training_run(tmp_path, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    m = re.search(r"saved (\S+) at step (\d+); resume with:\n\s+(python train.py .*)", err)
    assert m, err
    step = int(m.group(2))
    assert step >= 3 and Path(m.group(1)) == out / "ckpt_last.safetensors"
    # the exact command: out_dir, --resume, and the data cache (paths never come from the file)
    args = shlex.split(m.group(3))
    assert args[:2] == ["python", "train.py"]
    assert args[2:] == [f"--out_dir={out}", "--resume", f"--data_cache={cache}"]
    assert load_checkpoint(out / "ckpt_last.safetensors").meta["iter_num"] == step
    resumed = train.main(args[2:] + [f"--max_iters={step + 2}"])
    assert sorted(resumed["losses"]) == [step, step + 1]      # continues from the saved step
    assert all(np.isfinite(v) for v in resumed["losses"].values())


# ---------------------------------------------------------------------------------------------
# divergence


def test_nan_loss_stops_with_step_and_value_and_keeps_the_last_good_checkpoint(tmp_path):
    run(tmp_path, "--max_iters=2", "--eval_interval=2")
    ck = tmp_path / "out" / "ckpt_last.safetensors"
    before = ck.read_bytes()
    with pytest.raises(TrainingDiverged, match=r"at step \d+ is (nan|inf|-inf);.*\(step 2\) is kept") as e:
        with np.errstate(all="ignore"):
            train.main([f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'cache'}", "--resume",
                        "--max_iters=40", "--learning_rate=1e30", "--grad_clip=0"])
    assert int(re.search(r"step (\d+)", str(e.value)).group(1)) >= 2
    assert ck.read_bytes() == before                          # nothing saved after divergence
    saved = load_checkpoint(ck)
    assert saved.meta["iter_num"] == 2
    assert all(np.isfinite(a).all() for a in saved.tensors.values())


def test_diverged_run_exits_nonzero_with_one_line(tmp_path):
    text = tiny_text(tmp_path)
    r = subprocess.run([sys.executable, "train.py", f"--data={text}", f"--out_dir={tmp_path / 'o'}",
                        f"--data_cache={tmp_path / 'c'}", *TINY, "--max_iters=20", "--eval_interval=2",
                        "--learning_rate=1e30", "--grad_clip=0"],
                       cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert re.search(r"error: training diverged: the (training|eval) loss at step \d+ is", r.stderr)


# ---------------------------------------------------------------------------------------------
# debris from a killed run


def test_temp_files_of_an_interrupted_checkpoint_write_are_removed_on_the_next_start(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()

    def killed(f):                                  # the process dies mid-write: no cleanup runs
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(serialization.os, "unlink", lambda *a, **k: None)
        with pytest.raises(KeyboardInterrupt):
            serialization.atomic_write(out / "ckpt_last.safetensors", killed)
    debris = [p.name for p in out.iterdir()]
    assert len(debris) == 1 and debris[0].startswith(".ckpt_last.safetensors.")   # the real temp name
    keep = [out / ".notes.tmp", out / "ckpt_last.safetensors.bak", out / "my.tmp"]
    for p in keep:
        p.write_text("not ours")
    run(tmp_path, "--max_iters=1", "--eval_interval=1")
    assert sorted(p.name for p in out.iterdir() if p.name.endswith((".tmp", ".bak"))) == \
        sorted(p.name for p in keep)


def test_torn_log_line_is_cut_and_never_fatal(tmp_path, capsys):
    run(tmp_path, "--max_iters=2", "--eval_interval=1")
    log = tmp_path / "out" / "log.jsonl"
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    with open(log, "a") as f:
        f.write('{"step": 3, "train_lo')                 # killed while appending
    assert [r["step"] for r in read_log(tmp_path / "out")] == [0, 1, 2]
    assert "ignored 1 line" in capsys.readouterr().err
    train.main([f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'cache'}", "--resume",
                "--max_iters=3"])
    assert "dropped a torn last line" in capsys.readouterr().err
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [0, 1, 2, 3]


def test_log_rows_are_written_after_their_checkpoint(tmp_path, monkeypatch):
    """At every append to log.jsonl, ckpt_last already holds the step of that row."""
    seen = []
    from minigrad.training import run_dir
    real = run_dir.append_logs

    def spy(out_dir, row, step_losses=None):
        ck = out_dir / "ckpt_last.safetensors"
        seen.append((row["step"], load_checkpoint(ck).meta["iter_num"] if ck.exists() else None))
        real(out_dir, row, step_losses)
    monkeypatch.setattr(run_dir, "append_logs", spy)
    run(tmp_path, "--max_iters=4", "--eval_interval=2")
    assert seen == [(0, None), (2, 2), (4, 4)]


# ---------------------------------------------------------------------------------------------
# checkpoints: paths, metadata checksum, older files


def test_resume_takes_paths_from_the_command_line_never_from_the_checkpoint(tmp_path):
    run(tmp_path, "--max_iters=2", "--eval_interval=2")
    ck = tmp_path / "out" / "ckpt_last.safetensors"
    cfg = load_checkpoint(ck).meta["train_config"]
    evil = tmp_path / "elsewhere"
    resave(ck, train_config={**cfg, "data_cache": str(evil / "cache"), "out_dir": str(evil / "out"),
                             "gpt2_dir": str(evil / "gpt2")})
    s = train.main([f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'cache'}", "--resume",
                    "--max_iters=3"])
    assert s["iters"] == 3 and not evil.exists()
    assert s["config"]["data_cache"] == str(tmp_path / "cache") and s["config"]["gpt2_dir"] == ""
    assert s["config"]["out_dir"] == str(tmp_path / "out")


def test_checkpoint_metadata_is_covered_by_the_checksum(tmp_path):
    run(tmp_path, "--max_iters=1", "--eval_interval=1")
    ck = tmp_path / "out" / "ckpt_last.safetensors"
    raw = ck.read_bytes()
    # an edit that keeps the file well-formed: another learning rate, same length
    edited = raw.replace(b'\\"learning_rate\\": 0.001', b'\\"learning_rate\\": 0.009', 1)
    assert edited != raw
    ck.write_bytes(edited)
    with pytest.raises(CheckpointError, match="metadata .* does not match the checksum"):
        load_checkpoint(ck)


def test_a_checkpoint_from_before_the_metadata_checksum_loads_with_a_warning(tmp_path):
    run(tmp_path, "--max_iters=1", "--eval_interval=1")
    ck = tmp_path / "out" / "ckpt_last.safetensors"
    md = serialization.read_metadata(ck)
    del md["meta_checksum"]                               # what the previous version wrote
    serialization.save_file(serialization.load_numpy_file(ck), ck, metadata=md)
    with pytest.warns(UserWarning, match="before checkpoints checksummed their metadata"):
        s = train.main([f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'cache'}", "--resume",
                        "--max_iters=2"])
    assert s["iters"] == 2
    assert "meta_checksum" in serialization.read_metadata(ck)     # rewritten fully checked
