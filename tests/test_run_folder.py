"""One run per out_dir, and nothing lost at the edges of a run (issue 20, items 1-3, 5, 6).

- A fresh run into a folder that holds a run is refused (the message names --resume and
  --overwrite); --overwrite=true replaces it; --resume with --overwrite is refused.
- A second run started into a folder while another runs there is refused (a file lock the OS
  drops when its holder dies, so a killed run leaves the folder usable).
- SIGTERM finishes the step, saves ckpt_last, prints the resume command and exits 143.
- Resuming with another --seed (which decides the document split) is refused.
- A kill between a checkpoint write and its log row: resume restores the row from the checkpoint.
- --resume on a run that already reached max_iters says so and trains nothing.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import train
from minigrad.training.checkpoint import CheckpointError, load_checkpoint
from minigrad.training.run_dir import read_log
from minigrad.training.settings import SettingsError
from test_train_faults import TINY, signal_a_training_run, tiny_text


def _run(tmp_path: Path, *extra: str, out: str = "out") -> dict:
    return train.main([f"--data={tiny_text(tmp_path)}", f"--out_dir={tmp_path / out}",
                       f"--data_cache={tmp_path / 'cache'}", *TINY, "--max_iters=4", "--eval_interval=2",
                       *extra])


def test_a_fresh_run_into_a_folder_holding_a_run_is_refused_unless_overwrite(tmp_path):
    _run(tmp_path)
    out = tmp_path / "out"
    before = (out / "ckpt_last.safetensors").read_bytes()
    with pytest.raises(SettingsError, match=r"holds a run .*--resume.*--overwrite=true"):
        _run(tmp_path)
    assert (out / "ckpt_last.safetensors").read_bytes() == before        # nothing touched
    assert [r["step"] for r in read_log(out)] == [0, 2, 4]
    with pytest.raises(SettingsError, match="give one of them"):
        _run(tmp_path, "--resume", "--overwrite=true")
    _run(tmp_path, "--overwrite=true", "--max_iters=2", "--seed=5")
    assert [r["step"] for r in read_log(out)] == [0, 2]                  # the old rows are gone
    assert load_checkpoint(out / "ckpt_last.safetensors").field("train_config", dict)["seed"] == 5


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # another process holds the folder's lock, as a running train.py does
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); f.write('pid 4242'); f.flush(); print('locked', flush=True); "
         "time.sleep(60)", str(out / ".run.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SettingsError, match=r"in use by another training run \(pid 4242\)"):
            _run(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    _run(tmp_path)                               # the holder died: its lock went with it
    assert (out / "ckpt_last.safetensors").is_file()


def test_sigterm_saves_the_current_step_and_exits_143(tmp_path):
    code, err = signal_a_training_run(tmp_path, signal.SIGTERM)
    assert code == 143, err
    assert "Traceback" not in err and "SIGTERM: finishing this step" in err
    m = re.search(r"SIGTERM: saved (\S+) at step (\d+); resume with:\n\s+python train.py", err)
    assert m, err
    assert load_checkpoint(tmp_path / "out" / "ckpt_last.safetensors").meta["iter_num"] == int(m.group(2)) >= 3


def test_resume_with_another_seed_is_refused(tmp_path):
    _run(tmp_path)
    with pytest.raises(CheckpointError, match=r"seed=1337 in the checkpoint but --seed=7"):
        _run(tmp_path, "--resume", "--max_iters=6", "--seed=7")


def test_a_log_row_lost_to_a_kill_is_restored_from_the_checkpoint(tmp_path):
    _run(tmp_path)
    out = tmp_path / "out"
    lines = (out / "log.jsonl").read_text().splitlines()
    saved_row = json.loads(lines[-1])
    (out / "log.jsonl").write_text("\n".join(lines[:-1]) + "\n")     # killed before the row of step 4
    _run(tmp_path, "--resume", "--max_iters=6")
    rows = read_log(out)
    assert [r["step"] for r in rows] == [0, 2, 4, 6]
    assert rows[2] == saved_row                                       # the very row, from the checkpoint


def test_resuming_a_finished_run_says_so_and_trains_nothing(tmp_path, capsys):
    _run(tmp_path)
    out = tmp_path / "out"
    before = (out / "ckpt_last.safetensors").read_bytes()
    capsys.readouterr()
    summary = _run(tmp_path, "--resume")
    said = capsys.readouterr().out
    assert "is at iteration 4, and --max_iters=4: nothing left to train" in said
    assert "--max_iters=8" in said and summary["iters"] == 4
    assert (out / "ckpt_last.safetensors").read_bytes() == before


def test_plot_without_matplotlib_says_so_once(tmp_path, monkeypatch, capsys):
    import builtins

    from minigrad.training import run_dir
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    monkeypatch.setitem(run_dir._said, "no matplotlib", False)
    run_dir.append_logs(tmp_path, {"step": 0, "train_loss": 1.0, "val_loss": 1.0, "val_ppl": 2.7})
    assert run_dir.plot_losses(tmp_path) is None and run_dir.plot_losses(tmp_path) is None
    err = capsys.readouterr().err
    assert err.count("matplotlib is not installed, so no loss.png") == 1
    assert not (tmp_path / "loss.png").exists()
