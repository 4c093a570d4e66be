"""The performance layer changes how fast a step runs, never what it computes.

- A GPT switched by `fast.accelerate` gives the readable GPT's loss and every gradient, on both
  backends (NumPy float64 and float32; Triton in float32 and bfloat16), for the model options
  that take different fused paths (GELU MLP with biases, SwiGLU + RMSNorm + RoPE with dropout, a
  padded vocabulary with an ignored target).
- Steps with clipping and the multi-tensor AdamW give the readable AdamW's weights.
- train.py with --fast=true and --fast=false logs the same losses.
- Delete fast/ and train.py and sample.py still work (train.py says once that the layer is
  missing); fast.accelerate swaps exactly the modules it names.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad
from minigrad import fast
from minigrad.fast import modules as M
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.nn.utils import clip_grad_norm_

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "gelu-bias": dict(activation="gelu", bias=True),
    "swiglu-rope-dropout": dict(activation="swiglu", norm="rmsnorm", pos="rope", bias=False,
                                qkv_bias=True, dropout=0.2),
    "padded-gelu-exact-dropout": dict(activation="gelu_exact", bias=False, dropout=0.1,
                                      pad_vocab_multiple=16),
}
# (device, dtype) -> (rtol, atol) for losses and gradients
TOLERANCES = {("cpu", "float64"): (1e-9, 1e-12), ("cpu", "float32"): (2e-4, 2e-6),
              ("cuda", "float32"): (2e-4, 2e-6), ("cuda", "bfloat16"): (6e-2, 4e-3)}


def _model(options: dict, device: str, dtype: str) -> GPT:
    minigrad.manual_seed(7)
    cfg = GPTConfig(block_size=8, vocab_size=21, n_layer=2, n_head=2, n_embd=16, **options)
    return GPT(cfg, device=device, dtype=dtype)


def _batch(vocab: int, ignore: bool):
    rng = np.random.default_rng(3)
    x = rng.integers(0, vocab, size=(2, 8))
    y = rng.integers(0, vocab, size=(2, 8))
    if ignore:
        y[0, :3] = -100
    return x, y


def _loss_and_grads(model: GPT, x, y, seed: int):
    minigrad.manual_seed(seed)                       # the same dropout masks on both paths
    _, loss = model(x, y, return_logits=False)
    loss.backward()
    grads = {n: p.grad.to(dtype="float32").numpy().astype(np.float64) for n, p in model.named_parameters()}
    return float(loss.item()), grads


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("device,dtype", list(TOLERANCES))
def test_accelerated_gpt_gives_the_readable_loss_and_gradients(name, device, dtype):
    if device == "cuda":
        from backend_testing import cuda_backend
        cuda_backend()
    options = CONFIGS[name]
    readable = _model(options, device, dtype)
    accelerated, _ = fast.accelerate(_model(options, device, dtype))
    assert type(accelerated) is M.FastGPT and type(readable) is GPT
    x, y = _batch(21, ignore="padded" in name)
    loss_r, grads_r = _loss_and_grads(readable, x, y, seed=11)
    loss_f, grads_f = _loss_and_grads(accelerated, x, y, seed=11)
    rtol, atol = TOLERANCES[(device, dtype)]
    assert loss_f == pytest.approx(loss_r, rel=rtol, abs=atol)
    assert grads_f.keys() == grads_r.keys()
    for k in grads_r:
        scale = np.abs(grads_r[k]).max()
        np.testing.assert_allclose(grads_f[k], grads_r[k], rtol=rtol, atol=atol + rtol * scale, err_msg=k)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_accelerated_steps_give_the_readable_weights(device):
    """Three steps of forward, backward, clip (it clips: max_norm 0.05) and AdamW; a model without
    biases (the key bias's gradient is zero up to rounding, which AdamW would amplify)."""
    if device == "cuda":
        from backend_testing import cuda_backend
        cuda_backend()
    options = dict(activation="gelu", bias=False)
    runs = []
    for accelerate in (False, True):
        model = _model(options, device, "float32")
        opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.95))
        clip = clip_grad_norm_
        if accelerate:
            model, opt = fast.accelerate(model, opt)
            clip = fast.clip_grad_norm_
            assert type(opt) is fast.MultiTensorAdamW
        losses, norms = [], []
        for step in range(3):
            x, y = _batch(21, ignore=False)
            _, loss = model(np.roll(x, step), np.roll(y, step), return_logits=False)
            loss.backward()
            norms.append(float(clip(model.parameters(), 0.05).item()))
            opt.step()
            opt.zero_grad()
            losses.append(float(loss.item()))
        runs.append((losses, norms, {n: p.numpy() for n, p in model.named_parameters()},
                     opt.state_dict()["state"]))
    (l0, n0, w0, s0), (l1, n1, w1, s1) = runs
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    np.testing.assert_allclose(n1, n0, rtol=1e-5)
    assert min(n0) > 0.05                                      # the clip really scaled
    for k in w0:
        np.testing.assert_allclose(w1[k], w0[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert s0.keys() == s1.keys() and all(s0[i]["step"] == s1[i]["step"] == 3 for i in s0)


def test_accelerate_swaps_what_it_names_and_keeps_the_parameters():
    model = _model(CONFIGS["gelu-bias"], "cpu", "float32")
    before = {n: p for n, p in model.named_parameters()}
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    opt = model.configure_optimizers(0.1, 1e-3)
    same, fast_opt = fast.accelerate(model, opt)
    assert same is model
    kinds = {}
    for m in model.modules():
        kinds[type(m).__name__] = kinds.get(type(m).__name__, 0) + 1
    # 2 blocks x (c_attn, c_proj, c_fc, c_proj) + lm_head Linear; wte, wpe; 2 dropouts per block + drop
    assert kinds["FusedLinear"] == 9 and kinds["FusedMLP"] == 2 and kinds["FusedSelfAttention"] == 2
    assert kinds["TrustedEmbedding"] == 2 and kinds["FastDropout"] == 5 and kinds["FastGPT"] == 1
    assert not {"Linear", "MLP", "CausalSelfAttention", "Embedding", "Dropout", "GPT"} & set(kinds)
    assert {n: p for n, p in model.named_parameters()} == before         # the same Parameters
    assert all(np.array_equal(v.numpy(), state[k]) for k, v in model.state_dict().items())
    assert fast_opt.param_groups is opt.param_groups and fast_opt.state is opt.state
    assert fast.accelerate(model, fast_opt)[1] is fast_opt                # idempotent
    assert "FusedMLP" in repr(model)                                      # print(model) shows it


def _train(tmp_path, fast_flag: str, shared: Path) -> list:
    import json

    import train
    out = tmp_path / f"out_{fast_flag}"
    train.main([f"--data={shared / 'tinyshakespeare.txt'}", f"--data_cache={tmp_path / 'cache'}",
                f"--out_dir={out}", "--max_iters=12", "--eval_interval=6", "--eval_iters=2",
                "--n_layer=2", "--n_embd=32", "--n_head=2", "--block_size=16", "--batch_size=4",
                "--grad_accum_steps=2", "--dropout=0.1", "--sample_tokens=0", "--plot=false",
                "--progress=false", "--device=cpu", f"--fast={fast_flag}"])
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_train_py_logs_the_same_losses_with_and_without_fast(tmp_path, shared_data):
    slow, quick = _train(tmp_path, "false", shared_data), _train(tmp_path, "true", shared_data)
    assert [r["step"] for r in slow] == [r["step"] for r in quick] == [0, 6, 12]
    for a, b in zip(slow, quick):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)


def test_without_the_fast_folder_train_and_sample_still_work(tmp_path, shared_data):
    """A copy of the repository without fast/: train.py says once that the layer is missing and
    trains; sample.py samples from what it saved."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("minigrad", "kernels", "models", "tokenizer"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    for script in ("train.py", "sample.py"):
        shutil.copy(REPO / script, repo / script)
    # the editable install maps minigrad.fast to this checkout's fast/: hide it from the copy
    boot = ("import runpy, sys; "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    env = dict(os.environ, PYTHONPATH=str(repo))

    def run(*args):
        r = subprocess.run([sys.executable, "-c", boot, *args], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        return r.stdout + r.stderr
    log = run("train.py", f"--data={shared_data / 'tinyshakespeare.txt'}", f"--data_cache={tmp_path / 'c'}",
              f"--out_dir={tmp_path / 'o'}", "--max_iters=4", "--eval_interval=4", "--eval_iters=1",
              "--n_layer=1", "--n_embd=16", "--n_head=2", "--block_size=8", "--batch_size=2",
              "--sample_tokens=5", "--plot=false", "--progress=false", "--device=cpu")
    assert log.count("the performance layer (fast/) is not installed") == 1
    assert (tmp_path / "o" / "ckpt_last.safetensors").is_file()
    out = run("sample.py", f"--out_dir={tmp_path / 'o'}", "--max_new_tokens=8", "--device=cpu",
              "--stream=false")
    assert "fast" not in out and len(out.strip()) > 0
