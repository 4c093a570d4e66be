"""What a run leaves for the person watching it, and the data and length settings (issue 19,
items 1, 7 and 8).

- steps.csv holds every step's training loss, equal to the losses train.main returns; loss.png is
  redrawn after every eval (not only at the end) and once more on Ctrl-C; the plot marks the best
  checkpoint's step.
- the progress line shows an ETA.
- --val_data takes validation text as it is; .jsonl input reads each line's text field;
  --epochs sets max_iters from passes over the training tokens.
- --threads sets the BLAS library's thread count.
"""
from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest

import train
from minigrad.training import data as D
from minigrad.training import run_dir
from minigrad.training.progress import ProgressBar, duration
from minigrad.training.run_dir import read_step_losses
from minigrad.training.settings import SettingsError
from test_train_faults import TINY, tiny_text


def _run(tmp_path, *extra, data=None):
    return train.main([f"--data={data or tiny_text(tmp_path)}", f"--out_dir={tmp_path / 'out'}",
                       f"--data_cache={tmp_path / 'cache'}", *TINY, *extra])


# ---------------------------------------------------------------------------------------------
# steps.csv, loss.png after every eval, the best marker


def test_every_step_loss_is_on_disk_and_the_plot_is_redrawn_at_each_eval(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    drawn = []                                        # (steps in log.jsonl, steps in steps.csv) per draw
    real = run_dir.plot_losses

    def spy(out_dir):
        drawn.append(([r["step"] for r in run_dir.read_log(out_dir)], sorted(read_step_losses(out_dir))))
        return real(out_dir)
    monkeypatch.setattr(run_dir, "plot_losses", spy)
    s = _run(tmp_path, "--max_iters=6", "--eval_interval=3", "--plot=true")
    assert [d[0] for d in drawn] == [[0], [0, 3], [0, 3, 6], [0, 3, 6]]   # each eval, then the end
    assert drawn[1][1] == [0, 1, 2]                   # the steps before that eval are on disk by then
    on_disk = read_step_losses(tmp_path / "out")
    assert sorted(on_disk) == sorted(s["losses"]) == list(range(6))
    assert all(math.isclose(on_disk[k], s["losses"][k], rel_tol=1e-12) for k in on_disk)
    assert (tmp_path / "out" / "loss.png").stat().st_size > 1000


def test_the_plot_marks_the_best_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    out = tmp_path / "out"
    out.mkdir()
    for step, val in ((0, 3.0), (10, 2.0), (20, 2.5)):
        run_dir.append_logs(out, {"step": step, "train_loss": val, "val_loss": val, "val_ppl": math.exp(val)},
                            {step: val + 0.1})
    labels = []
    real_close = plt.close

    def keep_labels(fig):
        labels.extend(line.get_label() for ax in fig.axes for line in ax.get_lines())
        real_close(fig)
    monkeypatch.setattr(plt, "close", keep_labels)
    assert run_dir.plot_losses(out) == out / "loss.png"
    assert "best: step 10, val 2.0000" in labels and "train (each step)" in labels


def test_ctrl_c_writes_the_steps_since_the_last_eval_and_draws_the_plot(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from minigrad.training import stops
    real_add = train.DeferredLosses.add

    def add(self, it, losses):                         # Ctrl-C while step 3 runs
        if it == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_add(self, it, losses)
    monkeypatch.setattr(train.DeferredLosses, "add", add)
    with pytest.raises(stops.TrainingInterrupted):
        _run(tmp_path, "--max_iters=50", "--eval_interval=100", "--plot=true")
    out = tmp_path / "out"
    assert sorted(read_step_losses(out)) == [0, 1, 2, 3]          # every step run, not only evals
    assert [r["step"] for r in run_dir.read_log(out)] == [0]      # the one eval before the Ctrl-C
    assert (out / "loss.png").is_file()


def test_steps_csv_keeps_the_newest_loss_of_a_retrained_step(tmp_path):
    out = tmp_path
    run_dir.append_logs(out, {"step": 0, "train_loss": 1, "val_loss": 1, "val_ppl": 1}, {0: 5.0, 1: 4.0, 2: 3.0})
    run_dir.append_logs(out, {"step": 2, "train_loss": 1, "val_loss": 1, "val_ppl": 1}, {2: 2.5, 3: 2.0})
    with open(out / "steps.csv", "a") as f:
        f.write("4,not a number\n")
    assert read_step_losses(out) == {0: 5.0, 1: 4.0, 2: 2.5, 3: 2.0}


def test_progress_line_shows_an_eta(capsys, monkeypatch):
    clock = iter([100.0, 101.0, 102.0])
    monkeypatch.setattr("minigrad.training.progress.time.time", lambda: next(clock))
    bar = ProgressBar(total=100, live=False, every=1, tokens_per_iter=10)
    bar.update(1, 2.0, 1e-3)                         # 1 s per iteration, 99 to go
    bar.update(2, 2.0, 1e-3)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("ETA 1m39s") and out[1].endswith("ETA 1m38s")
    assert [duration(x) for x in (0, 59.4, 61, 3600, 7261)] == ["0s", "59s", "1m01s", "1h00m", "2h01m"]


# ---------------------------------------------------------------------------------------------
# --val_data, .jsonl, --epochs


def _jsonl(path, texts, field="text"):
    path.write_text("".join(json.dumps({"id": i, field: t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    return path


def test_val_data_is_used_as_the_validation_split_as_it_is(tmp_path):
    train_txt = tmp_path / "train.txt"
    train_txt.write_text("the cat sat on the mat\n" * 200, encoding="utf-8")
    val_txt = tmp_path / "val.txt"
    val_txt.write_text("a dog ran to the cat\n" * 20, encoding="utf-8")
    p = D.prepare_data(str(train_txt), "char", val_fraction=0.5, cache_dir=tmp_path / "c", val_data=str(val_txt))
    assert p.meta["split"] == "given"
    assert p.tokenizer.decode(p.train) == train_txt.read_text()          # no share of --data held out
    assert p.tokenizer.decode(p.val) == val_txt.read_text()
    alone = D.prepare_data(str(train_txt), "char", val_fraction=0.5, cache_dir=tmp_path / "c")
    assert alone.cache_path != p.cache_path                              # its own cache entry
    with pytest.raises(D.DataError, match=r"--val_data=.*nope: no such file or folder; expected"):
        D.prepare_data(str(train_txt), "char", cache_dir=tmp_path / "c", val_data=str(tmp_path / "nope"))


def test_jsonl_lines_are_documents_of_their_text_field(tmp_path):
    texts = [f"story {i}: once upon a time\nthe end" for i in range(30)]
    f = _jsonl(tmp_path / "stories.jsonl", texts)
    assert D.read_documents([f]) == texts
    folder = tmp_path / "shelf"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", texts[:3], field="content")
    (folder / "b.txt").write_text("plain text", encoding="utf-8")
    assert [p.name for p in D.resolve_sources(str(folder), tmp_path).files] == ["a.jsonl", "b.txt"]
    assert D.read_documents(D.resolve_sources(str(folder), tmp_path).files, "content") == texts[:3] + ["plain text"]


@pytest.mark.parametrize("line, match", [
    ('{"text": "ok"}\n{"text": "cut', r"bad\.jsonl:2: not a JSON line"),
    ('{"body": "no text key"}', r"bad\.jsonl:1: expected a JSON object with a text field 'text', got keys "
                                r"\['body'\]; name the field with --text_field=NAME"),
    ('["a list"]', r"bad\.jsonl:1: .* got a list"),
    ('{"text": 5}', r"bad\.jsonl:1: expected a JSON object with a text field 'text'"),
])
def test_bad_jsonl_lines_name_file_and_line(tmp_path, line, match):
    f = tmp_path / "bad.jsonl"
    f.write_text(line, encoding="utf-8")
    with pytest.raises(D.DataError, match=match):
        D.read_documents([f])


def test_train_on_jsonl_with_its_own_val_file(tmp_path):
    texts = [f"tale {i}: a cat and a dog met by the river and talked about fish." for i in range(60)]
    tr = _jsonl(tmp_path / "train.jsonl", texts, field="story")
    va = _jsonl(tmp_path / "val.jsonl", texts[:5], field="story")
    s = _run(tmp_path, "--max_iters=2", "--eval_interval=2", f"--val_data={va}", "--text_field=story", data=tr)
    assert s["iters"] == 2 and s["config"]["val_data"] == str(va)


def test_epochs_sets_the_number_of_iterations(tmp_path, capsys):
    text = tiny_text(tmp_path)
    p = D.prepare_data(str(text), "char", val_fraction=0.1, seed=1337, cache_dir=tmp_path / "cache")
    s = _run(tmp_path, "--epochs=0.05", "--eval_interval=1000")
    per_iter = s["config"]["batch_size"] * s["config"]["block_size"] * s["config"]["grad_accum_steps"]
    expected = math.ceil(0.05 * len(p.train) / per_iter)
    assert s["iters"] == expected and s["config"]["max_iters"] == expected
    assert f"= {expected:,} iterations" in capsys.readouterr().out
    with pytest.raises(SettingsError, match="--epochs and --max_iters both set the length"):
        _run(tmp_path, "--epochs=1", "--max_iters=3", "--overwrite=true")
    with pytest.raises(SettingsError, match="--epochs must be a finite number >= 0"):
        _run(tmp_path, "--epochs=-1", "--overwrite=true")


def test_resume_of_an_epochs_run_continues_to_the_same_end(tmp_path):
    first = _run(tmp_path, "--epochs=0.05", "--eval_interval=2")
    again = train.main([f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'cache'}", "--resume"])
    assert again["iters"] == first["iters"] and again["evals"] == []          # finished: nothing to do
    more = train.main([f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'cache'}", "--resume",
                       "--epochs=0.1"])
    assert more["iters"] > first["iters"]


# ---------------------------------------------------------------------------------------------
# --threads


def test_threads_setting_steers_the_blas_library(tmp_path):
    from minigrad.training import threads as T
    before = T.blas_threads()
    assert before is not None                         # NumPy's wheels ship OpenBLAS: found
    try:
        assert T.use_threads("1") == 1 and T.blas_threads() == 1
        assert T.use_threads("2") == 2
        assert T.use_threads("auto") == T.DEFAULT_THREADS
        assert T.resolve_threads("all") >= 1
        a = np.random.default_rng(0).standard_normal((64, 64))
        T.use_threads("1")
        one = a @ a
        T.use_threads("2")
        assert np.allclose(one, a @ a)
        with pytest.raises(ValueError, match="expected auto, all or a positive integer"):
            T.resolve_threads("0")
        s = _run(tmp_path, "--max_iters=1", "--eval_interval=1", "--threads=1")
        assert s["config"]["threads"] == "1" and T.blas_threads() == 1
        with pytest.raises(SettingsError, match="--threads must be auto, all or a positive integer, got 'x'"):
            _run(tmp_path, "--threads=x", "--overwrite=true")
    finally:
        T.set_blas_threads(before)


def test_wandb_gets_every_eval_row_and_is_finished(tmp_path, monkeypatch):
    import sys
    import types
    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw["project"], kw["name"])),
                                 log=lambda row, step: calls.append(("log", step, row["val_loss"])),
                                 finish=lambda: calls.append(("finish",)))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    s = _run(tmp_path, "--max_iters=4", "--eval_interval=2", "--wandb_log=true", "--wandb_project=p")
    assert calls == [("init", "p", "out")] + [("log", r["step"], r["val_loss"]) for r in s["evals"]] + [("finish",)]
    calls.clear()
    _run(tmp_path, "--max_iters=2", "--eval_interval=2", "--overwrite=true")       # off by default
    assert calls == []
