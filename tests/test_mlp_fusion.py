"""fast's mlp: the transformer MLP as one Function whose activation runs in the matmul epilogues,
equal to the core's F.mlp (linear -> activation -> linear).

- NumPy (the specification, float64): F.mlp == linear -> activation -> linear composed from the
  separately tested ops, values and all five gradients, for every activation, with and without
  biases, a 3-d input, an input that needs no gradient.
- The backend methods it uses (`matmul_bias_act`, `matmul_act_grad`): Triton (one epilogue each)
  == the NumPy spec, and the spec == a hand computation.
- The whole Function on Triton == on NumPy, float32 and bfloat16.
- GPT's MLP takes it (one matmul launch pair, no activation kernels) and keeps SwiGLU composite.

Small shapes: the Triton side runs in the interpreter in CI.
"""
from __future__ import annotations

import kernel_testing  # noqa: F401  (interpreter only when there is no CUDA; before kernels)

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import minigrad  # noqa: E402
import minigrad.nn.functional as F  # noqa: E402
from backend_testing import cuda_backend  # noqa: E402
from minigrad import fast  # noqa: E402
from minigrad.fast import functional as FF  # noqa: E402
from minigrad.fast.ops import FastOps, fast_ops  # noqa: E402
from checked_backend import CheckedBackend  # noqa: E402
from minigrad.backends.numpy_backend import NumpyBackend  # noqa: E402

ACTIVATIONS = ["gelu", "gelu_exact", "silu"]
RNG = np.random.default_rng(5)
NB = FastOps(CheckedBackend(NumpyBackend()))         # the performance layer's spec, on NumPy


def _act(x, activation):
    """The activations by hand in float64 (erf from math, elementwise)."""
    if activation == "gelu":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if activation == "gelu_exact":
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    return x / (1 + np.exp(-x))


def _composite(x, w1, w2, b1, b2, activation):
    h = F.linear(x, w1, b1)
    h = {"gelu": lambda t: F.gelu(t, approximate="tanh"), "gelu_exact": F.gelu, "silu": F.silu}[activation](h)
    return F.linear(h, w2, b2)


def _core_mlp(x, w1, w2, b1, b2, activation):
    return F.mlp(x, w1, w2, b1, b2, activation=activation)


def _inputs(bias: bool, lead=(2, 3), C=6, H=10, C_out=5):
    arrays = [RNG.standard_normal(lead + (C,)), 0.4 * RNG.standard_normal((H, C)),
              0.4 * RNG.standard_normal((C_out, H))]
    if bias:
        arrays += [RNG.standard_normal(H), RNG.standard_normal(C_out)]
    return arrays, RNG.standard_normal(lead + (C_out,))


def _run(fn, arrays, cot, dtype, device, activation, x_grad=True):
    ts = [minigrad.tensor(a, dtype=dtype, device=device, requires_grad=x_grad or i > 0)
          for i, a in enumerate(arrays)]
    y = fn(ts[0], ts[1], ts[2], *(ts[3:] or [None, None]), activation)
    (y * minigrad.tensor(cot, dtype=dtype, device=device)).sum().backward()
    return [y.numpy()] + [t.grad.numpy() if t.grad is not None else None for t in ts]


def _mlp(x, w1, w2, b1, b2, activation):
    return FF.mlp(x, w1, w2, b1, b2, activation=activation)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numpy_mlp_equals_linear_activation_linear(activation, bias):
    arrays, cot = _inputs(bias)
    fused = _run(_mlp, arrays, cot, "float64", "cpu", activation)
    composite = _run(_composite, arrays, cot, "float64", "cpu", activation)
    core = _run(_core_mlp, arrays, cot, "float64", "cpu", activation)   # the core's F.mlp: the same
    for a, c in zip(core, composite):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-12)
    assert len(fused) == 1 + len(arrays)
    for i, (a, c) in enumerate(zip(fused, composite)):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-12, err_msg=f"output {i}")
    # and the forward by hand
    x, w1, w2 = arrays[:3]
    b1, b2 = (arrays[3], arrays[4]) if bias else (0.0, 0.0)
    np.testing.assert_allclose(fused[0], _act(x @ w1.T + b1, activation) @ w2.T + b2, rtol=1e-11)


def test_input_without_gradient_and_bad_arguments():
    arrays, cot = _inputs(True)
    out = _run(_mlp, arrays, cot, "float64", "cpu", "gelu", x_grad=False)
    ref = _run(_composite, arrays, cot, "float64", "cpu", "gelu", x_grad=False)
    assert out[1] is None and ref[1] is None
    for a, c in zip(out[2:], ref[2:]):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-12)
    x, w1, w2, b1, b2 = (minigrad.tensor(a) for a in arrays)
    for mlp in (F.mlp, FF.mlp):
        with pytest.raises(ValueError, match="activation must be one of"):
            mlp(x, w1, w2, activation="relu6")
        with pytest.raises(ValueError, match="do not fit"):
            mlp(x, w2, w1)
        with pytest.raises(ValueError, match="both biases or neither"):
            mlp(x, w1, w2, b1, None)


def test_numpy_backend_spec_by_hand():
    a, w, bias, dy, w2 = (RNG.standard_normal(s) for s in ((4, 6), (6, 7), (7,), (4, 3), (3, 7)))
    for activation in ACTIVATIONS:
        y, pre = NB.matmul_bias_act(a, w, bias, activation)
        np.testing.assert_allclose(pre, a @ w + bias, rtol=1e-12)
        np.testing.assert_allclose(y, _act(pre, activation), rtol=1e-12)
        eps = 1e-6                                             # act' by central differences
        deriv = (_act(pre + eps, activation) - _act(pre - eps, activation)) / (2 * eps)
        np.testing.assert_allclose(NB.matmul_act_grad(dy, w2, pre, activation), (dy @ w2) * deriv,
                                   rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_triton_backend_methods_match_numpy(activation):
    tb = fast_ops(CheckedBackend(cuda_backend()))
    a, w, bias, dy, w2 = (RNG.standard_normal(s).astype(np.float32)
                          for s in ((19, 24), (24, 21), (21,), (19, 17), (17, 21)))
    y_n, pre_n = NB.matmul_bias_act(a, w, bias, activation)
    up, down = tb.b.from_numpy, tb.b.to_numpy
    y_t, pre_t = tb.matmul_bias_act(*(up(t) for t in (a, w, bias)), activation)
    np.testing.assert_allclose(down(pre_t), pre_n, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(down(y_t), y_n, rtol=1e-5, atol=1e-5)
    g_n = NB.matmul_act_grad(dy, w2, pre_n, activation)
    g_t = tb.matmul_act_grad(up(dy), up(w2), up(pre_n), activation)
    np.testing.assert_allclose(down(g_t), g_n, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("bfloat16", 4e-2)])
def test_triton_mlp_matches_numpy(dtype, tol):
    cuda_backend()
    arrays, cot = _inputs(True, lead=(3, 7), C=24, H=40, C_out=20)
    if dtype == "bfloat16":                   # the same bf16-representable inputs on both sides
        arrays = [minigrad.tensor(a, dtype="bfloat16", device="cuda").float().numpy() for a in arrays]
    got = _run(_mlp, arrays, cot, dtype, "cuda", "gelu")
    want = _run(_mlp, arrays, cot, "float64", "cpu", "gelu")
    for i, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g, dtype=np.float64)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * np.abs(w).max(), err_msg=f"output {i}")


def test_accelerated_gpt_mlp_uses_the_fused_function(monkeypatch):
    """An accelerated GPT's MLP goes through FF.mlp (not F.gelu) for GELU; SwiGLU keeps its
    composite form."""
    from minigrad.models.gpt import GPT, GPTConfig
    calls = []
    real_mlp, real_silu = FF.mlp, F.silu
    monkeypatch.setattr(FF, "mlp", lambda *a, **k: (calls.append("mlp"), real_mlp(*a, **k))[1])
    monkeypatch.setattr(F, "gelu", lambda *a, **k: pytest.fail("GELU ran as its own op"))
    monkeypatch.setattr(F, "silu", lambda *a, **k: (calls.append("silu"), real_silu(*a, **k))[1])
    idx = np.arange(8).reshape(1, 8) % 11
    for activation, expected in (("gelu", ["mlp", "mlp"]), ("swiglu", ["silu", "silu"])):
        calls.clear()
        cfg = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=8,
                        activation=activation)
        model, _ = fast.accelerate(GPT(cfg))
        model(minigrad.tensor(idx, dtype="int64"))
        assert calls == expected, (activation, calls)
