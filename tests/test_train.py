"""train.py end to end on tiny models: learning, logs, checkpoints, resume, presets, errors.

Everything runs on the NumPy backend with tmp dirs for out_dir and the data cache, and never
touches the network (downloads are pointed at an unreachable address where they matter).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import train
from backend_testing import cuda_backend  # tests/ is on sys.path
from train_spy import spy_on_training, synthetic_text
from minigrad.training import data as D
from minigrad.training.checkpoint import CheckpointError
from minigrad.training.presets import PRESETS
from minigrad.training.settings import parse_config

TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=8",
        "--eval_iters=4", "--sample_tokens=0", "--plot=false", "--progress=false", "--log_interval=1000"]


@pytest.fixture
def shakespeare(shared_data):
    path = shared_data / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def small_text(tmp_path, shakespeare):
    """The first ~120 kB of Tiny Shakespeare (enough for tiny runs, quick to tokenise)."""
    p = tmp_path / "small.txt"
    p.write_text(shakespeare.read_text(encoding="utf-8")[:120_000], encoding="utf-8")
    return p


def _run(tmp_path, data, *extra, name="out"):
    return train.main([f"--data={data}", f"--out_dir={tmp_path / name}",
                       f"--data_cache={tmp_path / 'cache'}", *TINY, *extra])


def test_tiny_model_lowers_val_loss_and_writes_logs(tmp_path, shakespeare):
    pytest.importorskip("matplotlib")
    s = _run(tmp_path, shakespeare, "--max_iters=40", "--eval_interval=20", "--learning_rate=1e-2",
             "--warmup_iters=5", "--plot=true", "--sample_tokens=16")
    first, last = s["evals"][0], s["evals"][-1]
    assert first["step"] == 0 and last["step"] == 40 and s["iters"] == 40
    assert first["val_loss"] > 4.0                         # ~ln(65) at initialisation
    assert last["val_loss"] < min(3.5, first["val_loss"] - 0.6)     # clearly lower after 40 steps
    assert s["evals"][1]["val_loss"] < first["val_loss"]
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 20, 40]
    for key in ("step", "train_loss", "val_loss", "lr", "tokens_per_s", "val_ppl"):
        assert key in rows[-1]
    assert rows[-1]["tokens_per_s"] > 0
    assert (out / "log.csv").read_text().startswith("step,train_loss,val_loss")
    for f in ("ckpt_best.safetensors", "ckpt_last.safetensors", "loss.png"):
        assert (out / f).is_file(), f


def test_resume_reproduces_the_uninterrupted_run(tmp_path, small_text):
    common = ["--max_iters=8", "--lr_decay_iters=8", "--warmup_iters=2", "--eval_interval=2",
              "--dropout=0.1", "--dtype=float64", "--grad_accum_steps=2"]
    straight = _run(tmp_path, small_text, *common, name="a")
    first = _run(tmp_path, small_text, *common, "--max_iters=4", name="b")
    assert first["iters"] == 4
    resumed = train.main([f"--out_dir={tmp_path / 'b'}", "--resume", "--max_iters=8", "--plot=false",
                          "--progress=false"])
    assert resumed["iters"] == 8 and sorted(resumed["losses"]) == [4, 5, 6, 7]
    for i in range(4):
        assert first["losses"][i] == straight["losses"][i]
    for i in range(4, 8):
        assert resumed["losses"][i] == straight["losses"][i], i
    assert resumed["evals"][-1]["val_loss"] == straight["evals"][-1]["val_loss"]
    logged = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert logged == [0, 2, 4, 6, 8]                      # the resumed run appends, no duplicate step 4


def test_corrupt_or_mismatched_checkpoint_gives_clear_error(tmp_path, small_text):
    _run(tmp_path, small_text, "--max_iters=2", "--eval_interval=2")
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match=r"n_layer=2 in the checkpoint but --n_layer=3"):
        train.main([f"--out_dir={out}", "--resume", "--n_layer=3", "--progress=false"])
    ck = out / "ckpt_last.safetensors"
    raw = ck.read_bytes()
    ck.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=r"^ckpt_last.safetensors: .*truncated"):
        train.main([f"--out_dir={out}", "--resume", "--progress=false"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        train.main([f"--out_dir={tmp_path / 'empty'}", "--resume"])


def test_early_stopping_with_patience(tmp_path, small_text):
    s = _run(tmp_path, small_text, "--max_iters=50", "--eval_interval=1", "--learning_rate=0",
             "--min_lr=0", "--patience=2")
    assert s["stopped_early"] and s["iters"] == 2          # evals at 1 and 2 do not improve on 0


def test_offline_default_data_says_how_to_use_local_text(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "TINY_SHAKESPEARE_URL", "http://127.0.0.1:9/input.txt")
    with pytest.raises(D.DataError, match=r"--data=PATH.*make train DATA="):
        train.main([f"--out_dir={tmp_path / 'o'}", f"--data_cache={tmp_path / 'c'}", "--progress=false"])


def test_parse_config_names_presets_and_errors():
    cfg, given = parse_config(train.TrainConfig, ["--preset", "shakespeare-char", "--max_iters=7",
                                                  "--resume", "--dropout", "0.3", "--bias=yes"], PRESETS)
    assert (cfg.n_layer, cfg.n_embd, cfg.block_size, cfg.max_iters, cfg.dropout) == (6, 384, 256, 7, 0.3)
    assert cfg.resume is True and cfg.bias is True and cfg.preset == "shakespeare-char"
    assert given == {"max_iters", "resume", "dropout", "bias"}
    with pytest.raises(ValueError, match="did you mean --learning_rate"):
        parse_config(train.TrainConfig, ["--learning_rat=1"], PRESETS)
    with pytest.raises(ValueError, match="unknown preset 'nope'; presets: shakespeare-char"):
        parse_config(train.TrainConfig, ["--preset=nope"], PRESETS)
    with pytest.raises(ValueError, match="--max_iters: expected int"):
        parse_config(train.TrainConfig, ["--max_iters=1.5"], PRESETS)
    for name in ("out_dir", "data", "tokenizer", "vocab_size", "n_layer", "n_head", "n_embd",
                 "block_size", "batch_size", "grad_accum_steps", "max_iters", "eval_interval",
                 "eval_iters", "learning_rate", "min_lr", "warmup_iters", "weight_decay", "dropout",
                 "device", "dtype", "seed", "resume", "patience"):
        assert hasattr(cfg, name), name


def test_bfloat16_on_cpu_falls_back_to_float32(capsys):
    cfg = train.TrainConfig(device="cpu", dtype="bfloat16")
    assert train.resolve_device_dtype(cfg) == ("cpu", "float32")
    assert "float32" in capsys.readouterr().out
    with pytest.raises(ValueError, match="float64 is for the NumPy backend"):
        train.resolve_device_dtype(train.TrainConfig(device="cuda", dtype="float64"))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_builds_and_runs_one_step(tmp_path, preset, shared_data, small_text):
    p = PRESETS[preset]
    extra = ["--max_iters=1", "--eval_interval=1", "--eval_iters=1", "--batch_size=2",
             "--grad_accum_steps=1", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16"]
    data = small_text
    if p.get("tokenizer") == "gpt2":
        extra.append(f"--gpt2_dir={shared_data / 'gpt2'}")
    if p.get("data") == "tinystories":
        data = shared_data / "tinystories_sample.txt"
    if p.get("tokenizer") == "bpe":
        extra.append("--vocab_size=400")
    args = [f"--data={data}", f"--out_dir={tmp_path / 'o'}", f"--data_cache={tmp_path / 'c'}",
            "--sample_tokens=4", "--plot=false", "--progress=false", *extra]
    s = train.main([f"--preset={preset}", *args])
    assert s["iters"] == 1 and np.isfinite(s["final_val_loss"])
    cfg = s["config"]
    assert cfg["preset"] == preset
    overridden = {a[2:].split("=")[0] for a in args}
    for k, v in p.items():                                 # the preset's own settings are in effect
        if k not in overridden:
            assert cfg[k] == v, k


@pytest.mark.gpu
def test_gpu_bfloat16_run_learns_and_resumes(tmp_path, small_text):
    """On a real GPU: the Triton backend in bf16 with fp32 masters learns, and resume continues."""
    common = ["--device=cuda", "--dtype=bfloat16", "--lr_decay_iters=60", "--eval_interval=30",
              "--learning_rate=1e-2", "--warmup_iters=5"]
    straight = _run(tmp_path, small_text, *common, "--max_iters=60", name="a")
    assert straight["dtype"] == "bfloat16" and straight["device"] == "cuda"
    assert straight["evals"][-1]["val_loss"] < straight["evals"][0]["val_loss"] - 0.6
    _run(tmp_path, small_text, *common, "--max_iters=30", name="b")
    resumed = train.main([f"--out_dir={tmp_path / 'b'}", "--resume", "--max_iters=60",
                          "--progress=false", "--plot=false"])
    # GPU reductions may differ in the last bits between runs: compare closely, not bitwise
    assert resumed["losses"][30] == pytest.approx(straight["losses"][30], rel=1e-2)
    assert resumed["evals"][-1]["val_loss"] == pytest.approx(straight["evals"][-1]["val_loss"], rel=2e-2)


def test_help_lists_every_setting_and_exits(capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("out_dir", "data", "tokenizer", "n_layer", "learning_rate", "patience", "resume", "init_from",
                 "threads", "epochs", "val_data", "bpe_pattern"):
        assert f"--{name}=" in out
    assert "presets:" in out and "shakespeare-char" in out
    preset_line = next(line for line in out.splitlines() if line.strip().startswith("--preset="))
    assert "apply" in preset_line and "informational" not in preset_line     # it does something


def test_same_run_on_the_triton_backend_matches_numpy(tmp_path, small_text):
    """train.py unchanged on device "cuda": our Triton kernels (in the interpreter without a GPU)
    give the NumPy backend's losses, step by step (float32, dropout off)."""
    cuda_backend()
    import torch
    tiny = ["--n_layer=1", "--n_embd=16", "--block_size=8", "--batch_size=2", "--eval_iters=1",
            "--max_iters=3", "--eval_interval=3", "--dtype=float32", "--learning_rate=1e-2"]
    cpu = _run(tmp_path, small_text, "--device=cpu", *tiny, name="cpu")
    gpu = _run(tmp_path, small_text, "--device=cuda", *tiny, name="cuda")
    tol = 2e-3 if torch.cuda.is_available() else 1e-4        # TF32 matmuls on a real GPU
    assert gpu["device"] == "cuda" and cpu["device"] == "cpu"
    assert sorted(gpu["losses"]) == sorted(cpu["losses"]) == [0, 1, 2]
    np.testing.assert_allclose([gpu["losses"][i] for i in (0, 1, 2)],
                               [cpu["losses"][i] for i in (0, 1, 2)], rtol=tol)
    np.testing.assert_allclose(gpu["final_val_loss"], cpu["final_val_loss"], rtol=tol)


# ---------------------------------------------------------------------------------------------
# What the loop does to the model at each step, watched from inside (tests/train_spy.py). Float64
# on the NumPy backend, dropout off and a synthetic text: exact and independent of shared data.

SPY = ["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8", "--eval_iters=1",
       "--sample_tokens=0", "--plot=false", "--progress=false", "--log_interval=1000",
       "--device=cpu", "--dtype=float64", "--dropout=0"]


@pytest.fixture
def words(tmp_path):
    return synthetic_text(tmp_path / "words.txt")


def _spy_run(monkeypatch, tmp_path, words, name, *extra):
    rec = spy_on_training(monkeypatch)
    summary = train.main([f"--data={words}", f"--out_dir={tmp_path / name}",
                          f"--data_cache={tmp_path / 'cache'}", *SPY, *extra])
    return summary, rec


def test_logged_train_loss_is_the_mean_over_accumulation_steps(tmp_path, monkeypatch, words):
    s, rec = _spy_run(monkeypatch, tmp_path, words, "o", "--batch_size=2", "--grad_accum_steps=3",
                      "--max_iters=2", "--eval_interval=2")
    micro = rec.micro_losses
    assert len(micro) == 6 and len(set(micro)) == 6        # 3 different micro-batches per step
    for it in range(2):
        by_hand = (micro[3 * it] + micro[3 * it + 1] + micro[3 * it + 2]) / 3
        assert s["losses"][it] == pytest.approx(by_hand, rel=1e-12), it


def test_grad_clip_is_applied_when_it_matters(tmp_path, monkeypatch, words):
    run = ["--batch_size=2", "--max_iters=3", "--eval_interval=3", "--learning_rate=1e-2"]
    _, free = _spy_run(monkeypatch, tmp_path, words, "free", *run, "--grad_clip=0")
    clip = min(free.grad_norms) / 4                         # every unclipped step is far above it
    _, clipped = _spy_run(monkeypatch, tmp_path, words, "clipped", *run, f"--grad_clip={clip}")
    assert len(clipped.grad_norms) == 3
    # the first step sees the same gradients in both runs (same init, same batch): scaled to clip
    assert clipped.grad_norms[0] == pytest.approx(clip, rel=1e-6)
    assert max(clipped.grad_norms) <= clip * (1 + 1e-6)
    ratio = clip / free.grad_norms[0]
    for name, g in free.grads[0].items():                   # the direction is kept
        np.testing.assert_allclose(clipped.grads[0][name], g * ratio, rtol=1e-6, atol=1e-14)


def test_grad_accumulation_equals_one_big_batch(tmp_path, monkeypatch, words):
    """grad_accum_steps=2 with batch B gives the gradient and the weights of one step with
    batch 2B: each micro-batch loss is scaled by 1/2, so their gradients add up to the mean."""
    one = ["--max_iters=1", "--eval_interval=1", "--grad_clip=0", "--learning_rate=1e-2"]
    _, acc = _spy_run(monkeypatch, tmp_path, words, "acc", *one, "--batch_size=2", "--grad_accum_steps=2")
    _, big = _spy_run(monkeypatch, tmp_path, words, "big", *one, "--batch_size=4", "--grad_accum_steps=1")
    # the same 4 sequences: two draws of 2 from the data RNG equal one draw of 4
    assert len(acc.batches) == 2 and len(big.batches) == 1
    np.testing.assert_array_equal(np.concatenate(acc.batches), big.batches[0])
    assert set(acc.grads[0]) == set(big.grads[0])
    for name, g in big.grads[0].items():
        np.testing.assert_allclose(acc.grads[0][name], g, rtol=1e-10, atol=1e-14, err_msg=name)
    big_weights = dict(big.model.named_parameters())
    for name, p in acc.model.named_parameters():
        np.testing.assert_allclose(p.numpy(), big_weights[name].numpy(), rtol=1e-10, atol=1e-14,
                                   err_msg=name)


def test_lr_schedule_as_applied_to_the_optimizer(tmp_path, monkeypatch, words):
    """Warmup, cosine decay and the floor, read from each param group at every step."""
    max_lr, min_lr, warmup, decay = 1e-2, 1e-3, 3, 9

    def by_hand(it):                                        # nanoGPT's get_lr, written out
        if it < warmup:
            return max_lr * (it + 1) / (warmup + 1)
        if it > decay:
            return min_lr
        progress = (it - warmup) / (decay - warmup)
        return min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2

    _, rec = _spy_run(monkeypatch, tmp_path, words, "o", "--batch_size=1", "--max_iters=12",
                      "--eval_interval=12", f"--learning_rate={max_lr}", f"--min_lr={min_lr}",
                      f"--warmup_iters={warmup}", f"--lr_decay_iters={decay}")
    assert len(rec.lrs) == 12
    for it, group_lrs in enumerate(rec.lrs):
        assert len(group_lrs) == 2                          # decay and no-decay groups
        assert group_lrs == [pytest.approx(by_hand(it), rel=1e-12)] * 2, it
    assert rec.lrs[0][0] == pytest.approx(2.5e-3) and rec.lrs[6][0] == pytest.approx(5.5e-3)
    assert rec.lrs[10][0] == rec.lrs[11][0] == pytest.approx(min_lr)
