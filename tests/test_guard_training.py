"""Guards for train.py's run-time machinery (issue 21): bugs that once survived the suite.

- Clipping inside training, --fast=true and --fast=false: a grad_clip far above every gradient
  norm leaves the gradients exactly as the unclipped run's (a coefficient not capped at 1 would
  scale them up), one below the norms scales them to it.
- Resume: an early-stopping run interrupted and resumed stops at the uninterrupted run's step
  (the count of evals without improvement is restored, not reset to 0).
- The checkpoint checksum covers shapes and dtypes: a tensor reshaped (or reinterpreted) with the
  same bytes is refused.
- The divergence stop: NaN, +inf and -inf stop; the largest finite float does not.
- The settings check: --vocab_size=256 is refused (a BPE vocabulary needs 256 bytes plus
  <|endoftext|>: BPETokenizer.train refuses 256 and accepts 257 with that special token).
- The loss read-back before a checkpoint: a step whose loss is NaN (or +inf) right before an eval
  stops the run before that eval's checkpoint is written, also where losses are read back only
  every log_interval steps (the GPU's deferred read, forced here on the CPU; and on the Triton
  interpreter, where train.py defers them itself).
Tiny models on generated text (tests/train_spy.py), float64 on the NumPy backend unless it says so.
"""
from __future__ import annotations

import gc
import math

import numpy as np
import pytest

import minigrad
import train
from minigrad.serialization import load_numpy_file, read_metadata, save_file
from minigrad.tokenizer import BPETokenizer
from minigrad.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minigrad.training.loss_readback import DeferredLosses
from minigrad.training.settings import TRAIN_RULES, SettingsError, validate_settings
from minigrad.training.stops import RunGuard, TrainingDiverged
from train_spy import spy_on_training, synthetic_text  # tests/ is on sys.path

SPY = ["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8", "--eval_iters=1",
       "--sample_tokens=0", "--plot=false", "--progress=false", "--log_interval=1000",
       "--device=cpu", "--dtype=float64", "--dropout=0", "--batch_size=2"]


@pytest.fixture(autouse=True)
def _unfreeze_gc():
    """train.main() freezes the GC for its loop and unfreezes it only when it returns: a run that
    raises (a diverged loss, a refused setting) leaves it frozen. Do not leak that to later tests."""
    yield
    gc.unfreeze()


@pytest.fixture
def words(tmp_path):
    return synthetic_text(tmp_path / "words.txt")


def _main(tmp_path, words, name, *extra):
    return train.main([f"--data={words}", f"--out_dir={tmp_path / name}",
                       f"--data_cache={tmp_path / 'cache'}", *SPY, *extra])


# ------------------------------------------------------------------ clipping inside training
@pytest.mark.parametrize("fast", ["true", "false"])
def test_grad_clip_above_every_norm_leaves_the_gradients_alone(tmp_path, monkeypatch, words, fast):
    run = ["--max_iters=3", "--eval_interval=3", "--learning_rate=1e-2", f"--fast={fast}"]
    rec = spy_on_training(monkeypatch)
    _main(tmp_path, words, "free", *run, "--grad_clip=0")
    free = rec
    assert len(free.grads) == 3
    high = 8 * max(free.grad_norms)                     # never reached: the coefficient is 1
    rec = spy_on_training(monkeypatch)
    _main(tmp_path, words, "high", *run, f"--grad_clip={high}")
    for step, (g_free, g_high) in enumerate(zip(free.grads, rec.grads)):
        for name, g in g_free.items():
            np.testing.assert_array_equal(g_high[name], g, err_msg=f"step {step}: {name}")
    low = min(free.grad_norms) / 4                      # always reached: scaled to the clip
    rec = spy_on_training(monkeypatch)
    _main(tmp_path, words, "low", *run, f"--grad_clip={low}")
    assert rec.grad_norms[0] == pytest.approx(low, rel=1e-6)
    assert max(rec.grad_norms) <= low * (1 + 1e-6)


# ------------------------------------------------------------------ resume and early stopping
def test_resumed_early_stopping_run_stops_where_the_uninterrupted_one_does(tmp_path, words):
    """lr 0: the val loss never improves after the first eval, so with patience 3 and an eval
    every step the run stops at step 3. Interrupted at step 2 (two evals without improvement
    saved) and resumed, it must stop at step 3 too, not count again from 0."""
    common = ["--eval_interval=1", "--learning_rate=0", "--min_lr=0", "--patience=3"]
    straight = _main(tmp_path, words, "a", *common, "--max_iters=50")
    assert straight["stopped_early"] and straight["iters"] == 3
    first = _main(tmp_path, words, "b", *common, "--max_iters=2")
    assert first["iters"] == 2 and not first["stopped_early"]
    assert load_checkpoint(tmp_path / "b" / "ckpt_last.safetensors").meta["bad_evals"] == 2
    resumed = train.main([f"--out_dir={tmp_path / 'b'}", f"--data_cache={tmp_path / 'cache'}", "--resume",
                          "--max_iters=50", "--plot=false", "--progress=false"])
    assert resumed["stopped_early"] and resumed["iters"] == straight["iters"] == 3
    assert [e["step"] for e in resumed["evals"]] == [3]


# ------------------------------------------------------------------ checkpoint integrity
@pytest.mark.parametrize("change", ["reshape", "transpose-shape", "reinterpret-dtype"])
def test_checkpoint_checksum_covers_shapes_and_dtypes(tmp_path, change):
    path = tmp_path / "ckpt.safetensors"
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_checkpoint(path, {"model.w": w, "model.b": np.ones(4, np.float32)}, {"iter_num": 1})
    assert load_checkpoint(path, required=()).tensors["model.w"].shape == (3, 4)
    md, tensors = read_metadata(path), load_numpy_file(path)
    same_bytes = {"reshape": w.reshape(2, 6), "transpose-shape": w.reshape(4, 3),
                  "reinterpret-dtype": w.view(np.int32)}[change]
    assert same_bytes.tobytes() == w.tobytes()
    save_file({**tensors, "model.w": same_bytes}, path, metadata=md)   # the old checksums kept
    with pytest.raises(CheckpointError, match="corrupt: the tensor data does not match the checksum"):
        load_checkpoint(path, required=())


# ------------------------------------------------------------------ the divergence stop
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_losses_stop_the_run(tmp_path, value):
    guard = RunGuard(tmp_path, "python train.py --resume")
    with pytest.raises(TrainingDiverged, match=rf"the training loss at step 7 is {value}"):
        guard.check_finite(7, value)
    with pytest.raises(TrainingDiverged):
        guard.check_finite(7, np.float64(value))


def test_finite_losses_do_not_stop_the_run(tmp_path):
    guard = RunGuard(tmp_path, "python train.py --resume")
    for value in (0.0, -0.0, 1e308, np.finfo(np.float64).max, -np.finfo(np.float64).max, 5e-324,
                  np.float32(3.4e38)):
        guard.check_finite(1, value)


# ------------------------------------------------------------------ the vocab_size rule
@pytest.mark.parametrize("vocab_size, ok", [(255, False), (256, False), (257, True), (65536, True),
                                            (65537, False)])
def test_vocab_size_rule_at_its_boundaries(vocab_size, ok):
    cfg = train.TrainConfig(tokenizer="bpe", vocab_size=vocab_size)
    if ok:
        validate_settings(cfg, TRAIN_RULES)
    else:
        with pytest.raises(SettingsError, match=rf"--vocab_size must be an integer in \[257, 65536\], "
                                                rf"got {vocab_size}$"):
            validate_settings(cfg, TRAIN_RULES)


def test_the_smallest_bpe_vocabulary_is_256_bytes_plus_endoftext():
    """Why 257: BPE training itself refuses 256 tokens with <|endoftext|> and accepts 257."""
    text = ["the cat sat on the mat"]
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train(text, 256, special_tokens=["<|endoftext|>"], verbose=False)
    tok = BPETokenizer.train(text, 257, special_tokens=["<|endoftext|>"], verbose=False)
    assert tok.vocab_size == 257 and tok.eot_token == 256


def test_train_refuses_vocab_size_256_before_any_work(tmp_path, words):
    with pytest.raises(SettingsError, match=r"--vocab_size must be an integer in \[257, 65536\], got 256"):
        _main(tmp_path, words, "o", "--tokenizer=bpe", "--vocab_size=256")
    assert not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ loss read-back before a checkpoint
def _poison_step(monkeypatch, bad_step: int, value: float, calls: list):
    """train.GPT whose training forward at step `bad_step` returns loss + value: the loss read
    back is not finite while the gradient (d loss) and so the weights and evals stay finite."""
    class PoisonedGPT(train.GPT):
        def forward(self, idx, targets=None, *args, **kwargs):
            logits, loss = super().forward(idx, targets, *args, **kwargs)
            if loss is not None and minigrad.is_grad_enabled():          # evals run under no_grad
                calls.append(None)
                if len(calls) == bad_step + 1:
                    loss = loss + minigrad.tensor(value, dtype=loss.dtype, device=loss.device)
            return logits, loss
    monkeypatch.setattr(train, "GPT", PoisonedGPT)


@pytest.mark.parametrize("fast", ["true", "false"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_bad_loss_right_before_an_eval_stops_before_its_checkpoint(tmp_path, monkeypatch, words, fast, value):
    """Losses read back only every 1000 steps (the GPU's deferral, forced here): step 3's loss is
    bad, the eval at 4 must read it first and stop, so no checkpoint holds step 4."""
    monkeypatch.setattr(train, "DeferredLosses", lambda every, immediate: DeferredLosses(every, False))
    calls: list = []
    _poison_step(monkeypatch, 3, value, calls)
    with pytest.raises(TrainingDiverged, match=rf"the training loss at step 3 is {value}; .*no checkpoint"):
        _main(tmp_path, words, "o", "--max_iters=8", "--eval_interval=4", f"--fast={fast}")
    assert len(calls) == 4                                  # it stopped before step 4 ran
    assert not (tmp_path / "o" / "ckpt_last.safetensors").exists()
    assert not (tmp_path / "o" / "ckpt_best.safetensors").exists()


def test_bad_loss_before_an_eval_on_the_triton_backend(tmp_path, monkeypatch, words):
    """The same on device cuda (Triton's interpreter here), where train.py defers the read-back by
    itself (no CUDA graph in the interpreter)."""
    from backend_testing import cuda_backend
    cuda_backend()
    calls: list = []
    _poison_step(monkeypatch, 1, math.nan, calls)
    args = [a for a in SPY if not a.startswith(("--device", "--dtype"))]
    with pytest.raises(TrainingDiverged, match=r"the training loss at step 1 is nan; .*no checkpoint"):
        train.main([f"--data={words}", f"--out_dir={tmp_path / 'o'}", f"--data_cache={tmp_path / 'cache'}",
                    *args, "--device=cuda", "--dtype=float32", "--max_iters=4", "--eval_interval=2",
                    "--eval_iters=1"])
    assert len(calls) == 2
    assert not (tmp_path / "o" / "ckpt_last.safetensors").exists()
