"""End to end on both backends: one training step of a small transformer gives the same numbers.

A tiny GPT (two pre-norm blocks: layernorm, causal attention, GELU MLP, tied lm_head) is built
once from a seed, copied to device "cuda" (the Triton backend: real kernels on a GPU, Triton's
interpreter on CPU in CI), and both copies take the same steps: forward, cross-entropy,
backward, gradient clipping, AdamW. Loss, every gradient and every updated weight must agree
with the NumPy backend (dropout off). This is the test that says "any minigrad program runs
unchanged through the kernels".
"""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from minigrad.nn.utils import clip_grad_norm_
from backend_testing import cuda_backend  # tests/ is on sys.path
from minigrad.models import GPT, GPTConfig

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # interpreter masked lanes


# float32 on both sides; the GPU uses TF32 matmuls, hence the looser bound there.
def _tol():
    import torch
    return (5e-3, 5e-4) if torch.cuda.is_available() else (2e-4, 2e-5)


@pytest.mark.parametrize("activation,norm,pos", [("gelu", "layernorm", "learned"),
                                                 ("swiglu", "rmsnorm", "rope")])
def test_training_steps_match_numpy_backend(activation, norm, pos):
    cuda_backend()
    rtol, atol = _tol()
    cfg = GPTConfig(block_size=8, vocab_size=61, n_layer=2, n_head=2, n_embd=32, dropout=0.0,
                    activation=activation, norm=norm, pos=pos)
    models = {}
    for device in ("cpu", "cuda"):
        minigrad.manual_seed(1234)
        m = GPT(cfg)
        if device == "cuda":
            m.to("cuda")
        models[device] = m
    opts = {d: m.configure_optimizers(weight_decay=0.1, learning_rate=3e-3, betas=(0.9, 0.95))
            for d, m in models.items()}
    rng = np.random.default_rng(0)
    for step in range(2):
        idx = rng.integers(0, cfg.vocab_size, size=(3, cfg.block_size))
        tgt = rng.integers(0, cfg.vocab_size, size=(3, cfg.block_size))
        losses, norms = {}, {}
        for device, model in models.items():
            _, loss = model(minigrad.tensor(idx, device=device), minigrad.tensor(tgt, device=device))
            opts[device].zero_grad()
            loss.backward()
            norms[device] = float(clip_grad_norm_(model.parameters(), 1.0).item())
            losses[device] = loss.item()
        np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=rtol, atol=atol)
        np.testing.assert_allclose(norms["cuda"], norms["cpu"], rtol=rtol * 10, atol=atol)
        cpu_params = dict(models["cpu"].named_parameters())
        for name, p in models["cuda"].named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), cpu_params[name].grad.numpy(),
                                       rtol=rtol * 10, atol=atol * 10, err_msg=f"grad of {name}")
        for opt in opts.values():
            opt.step()
        for name, p in models["cuda"].named_parameters():
            np.testing.assert_allclose(p.numpy(), cpu_params[name].numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name} after step {step}")


def test_device_errors_are_clear():
    cuda_backend()
    a = minigrad.ones(2, 2)
    b = minigrad.ones(2, 2, device="cuda")
    with pytest.raises(RuntimeError, match="same device"):
        a + b
    assert (b.to("cpu") + a).device == "cpu"
    assert b.to("cpu").numpy().tolist() == [[1.0, 1.0], [1.0, 1.0]]
