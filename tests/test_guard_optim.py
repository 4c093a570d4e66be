"""Guards for clipping and AdamW (issue 21): bugs that once survived the suite.

- Clipping, on every path (the readable minigrad.nn.utils.clip_grad_norm_, the multi-tensor
  fast.clip_grad_norm_, and the FastOps / TritonFastOps clip_by_total_norm it calls), with the
  total norm below, at and above max_norm: the coefficient is min(1, max_norm / (norm + 1e-6)),
  so gradients whose norm is below max_norm come back unchanged (a coefficient not capped at 1
  would scale them up). Gradients are chosen with a total norm of exactly 5 (3-4-5).
- AdamW whose parameters have different step counts: a parameter without a gradient for some
  steps (same group), a param group added after some steps, and a state resumed from a real
  checkpoint file (whose tuples come back from JSON as lists): the readable AdamW and the
  multi-tensor one against a per-parameter AdamW written here in float64 NumPy, each parameter
  with its own bias corrections.
"""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from minigrad import fast
from minigrad.fast.ops import fast_ops
from minigrad.fast.optim import MultiTensorAdamW
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import AdamW
from minigrad.training.checkpoint import (load_checkpoint, optimizer_state_dict, optimizer_tensors,
                                          save_checkpoint)

DEVICES = ["cpu", "cuda"]


def _device(device: str) -> str:
    if device == "cuda":
        from backend_testing import cuda_backend   # tests/ is on sys.path
        cuda_backend()
    return device


# ------------------------------------------------------------------ clipping
# three gradients whose joint L2 norm is 5: sqrt(3^2 + 4^2), spread over shapes
GRADS = [np.array([[3.0, 0.0], [0.0, 0.0]]), np.array([0.0, 0.0, 0.0]), np.array([4.0])]
NORM = 5.0
CASES = {"below": 10.0, "at": 5.0, "above": 2.5}


def _coef(max_norm: float) -> float:
    return min(1.0, max_norm / (NORM + 1e-6))                # torch's clip_grad_norm_ rule


def _params(device, dtype):
    ps = []
    for g in GRADS:
        p = minigrad.tensor(np.ones_like(g), dtype=dtype, device=device, requires_grad=True)
        p.grad = minigrad.tensor(g, dtype=dtype, device=device)
        ps.append(p)
    return ps


def _tol(dtype):
    return dict(rtol=1e-12, atol=0) if dtype == "float64" else dict(rtol=2e-7, atol=0)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("path", ["readable", "fast"])
@pytest.mark.parametrize("device,dtype", [("cpu", "float64"), ("cpu", "float32"), ("cuda", "float32")])
def test_clip_grad_norm_below_at_and_above_max_norm(case, path, device, dtype):
    _device(device)
    max_norm = CASES[case]
    params = _params(device, dtype)
    clip = clip_grad_norm_ if path == "readable" else fast.clip_grad_norm_
    total = clip(params, max_norm)
    assert float(total.item()) == pytest.approx(NORM, rel=1e-7)
    for p, g in zip(params, GRADS):
        got = p.grad.numpy()
        if case == "below":
            np.testing.assert_array_equal(got, g)             # exactly unchanged: coefficient 1
        else:
            np.testing.assert_allclose(got, g * _coef(max_norm), **_tol(dtype))
    if case == "at":      # max_norm == norm: scaled by 5 / (5 + 1e-6), not left alone, not by 1
        assert params[2].grad.numpy()[0] <= 4.0


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("device,dtype", [("cpu", "float64"), ("cuda", "float32")])
def test_clip_by_total_norm_of_the_backend_ops(case, device, dtype):
    """FastOps (the specification, NumPy backend) and TritonFastOps (the multi-tensor kernels)."""
    _device(device)
    b = minigrad.get_backend(device)
    ops = fast_ops(b)
    assert type(ops).__name__ == ("TritonFastOps" if device == "cuda" else "FastOps")
    xs = [b.from_numpy(np.asarray(g, dtype=dtype)) for g in GRADS]
    total, out = ops.clip_by_total_norm(xs, CASES[case])
    assert float(b.to_numpy(total)) == pytest.approx(NORM, rel=1e-7)
    for x, g, o in zip(xs, GRADS, out):
        want = g if case == "below" else g * _coef(CASES[case])
        np.testing.assert_allclose(b.to_numpy(o), want, **_tol(dtype))
        np.testing.assert_array_equal(b.to_numpy(x), g)        # the inputs are left alone


# ------------------------------------------------------------------ AdamW and step counts
HYPER = dict(lr=0.05, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


class ReferenceAdamW:
    """AdamW for one parameter, in float64, with the parameter's own step count t."""

    def __init__(self, p, lr, betas, eps, weight_decay):
        self.p = np.array(p, dtype=np.float64)
        self.m, self.v, self.t = np.zeros_like(self.p), np.zeros_like(self.p), 0
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay

    def step(self, g):
        self.t += 1
        self.p = self.p * (1 - self.lr * self.wd)
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        self.p = self.p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


SHAPES = {"a": (3,), "b": (2, 2), "c": (5,)}


def _grad(name: str, step: int) -> np.ndarray:
    seed = 100 * step + list(SHAPES).index(name)
    return np.random.default_rng(seed).standard_normal(SHAPES[name])


def _init(name: str) -> np.ndarray:
    return np.random.default_rng(list(SHAPES).index(name)).standard_normal(SHAPES[name])


def _make(kind: str, params: list, **hyper):
    opt = AdamW(params, **(hyper or HYPER))
    if kind == "multi":
        opt = MultiTensorAdamW(params, **(hyper or HYPER))
    elif kind == "accelerated":
        opt = fast.accelerate(minigrad.nn.Linear(1, 1), opt)[1]      # from_optimizer
        assert isinstance(opt, MultiTensorAdamW)
    return opt


def _tensors(device, dtype, names):
    return {n: minigrad.tensor(_init(n), dtype=dtype, device=device, requires_grad=True) for n in names}


def _step(opt, ts, refs, step, active):
    """One step in which only the `active` parameters have a gradient."""
    for n, t in ts.items():
        t.grad = minigrad.tensor(_grad(n, step), dtype=t.dtype, device=t.device) if n in active else None
        if n in active:
            refs[n].step(_grad(n, step))
    opt.step()


def _check(ts, refs, dtype, what):
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    for n, t in ts.items():
        np.testing.assert_allclose(t.numpy(), refs[n].p, err_msg=f"{what}: {n}", **tol)


CONFIGS = [("cpu", "float64", k) for k in ("readable", "multi", "accelerated")] + \
          [("cuda", "float32", k) for k in ("readable", "multi")]


@pytest.mark.parametrize("device,dtype,kind", CONFIGS)
def test_adamw_parameters_that_start_late_have_their_own_bias_correction(device, dtype, kind):
    """One group; b gets no gradient for 3 steps, so at step 4 it takes its first step (t=1)
    beside a's t=4, and c joins at step 6 (t=1 beside 6 and 3)."""
    _device(device)
    ts = _tensors(device, dtype, "abc")
    refs = {n: ReferenceAdamW(_init(n), **HYPER) for n in ts}
    opt = _make(kind, list(ts.values()))
    for step in range(1, 9):
        active = "a" + ("b" if step >= 4 else "") + ("c" if step >= 6 else "")
        _step(opt, ts, refs, step, active)
        _check(ts, refs, dtype, f"step {step}")
    assert [opt.state[ts[n]]["step"] for n in "abc"] == [8, 5, 3]


@pytest.mark.parametrize("device,dtype,kind", CONFIGS)
def test_adamw_param_group_added_after_some_steps(device, dtype, kind):
    """A second group (other lr and betas) added after 3 steps, a third one (the first group's
    hyperparameters) after 5: each steps with its own hyperparameters and step count."""
    _device(device)
    ts = _tensors(device, dtype, "abc")
    other = dict(lr=0.02, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.0)
    refs = {"a": ReferenceAdamW(_init("a"), **HYPER), "b": ReferenceAdamW(_init("b"), **other),
            "c": ReferenceAdamW(_init("c"), **HYPER)}
    opt = _make(kind, [ts["a"]])
    for step in range(1, 9):
        if step == 4:
            opt.add_param_group({"params": [ts["b"]], **other})
        if step == 6:
            opt.add_param_group({"params": [ts["c"]]})
        active = "a" + ("b" if step >= 4 else "") + ("c" if step >= 6 else "")
        _step(opt, {n: ts[n] for n in active}, refs, step, active)
        _check({n: ts[n] for n in active}, refs, dtype, f"step {step}")


@pytest.mark.parametrize("device,dtype,first,second", [
    ("cpu", "float64", "readable", "readable"), ("cpu", "float64", "multi", "multi"),
    ("cpu", "float64", "readable", "multi"), ("cpu", "float64", "multi", "readable"),
    ("cuda", "float32", "multi", "multi")])
def test_adamw_resumed_from_a_checkpoint_file(tmp_path, device, dtype, first, second):
    """Steps 1-4 (b without a gradient until step 3, so the state holds step counts 4 and 2), the
    state written to a checkpoint file and read back (its betas come back from JSON as a list),
    loaded into a fresh optimizer over fresh parameters, then steps 5-8: every step equals the
    per-parameter reference, and the loaded param groups equal the saved ones (tuples included)."""
    _device(device)
    ts = _tensors(device, dtype, "ab")
    refs = {n: ReferenceAdamW(_init(n), **HYPER) for n in ts}
    opt = _make(first, list(ts.values()))
    for step in range(1, 5):
        _step(opt, ts, refs, step, "a" + ("b" if step >= 3 else ""))
    saved = opt.state_dict()
    tensors, info = optimizer_tensors(saved)
    save_checkpoint(tmp_path / "ckpt.safetensors", {**tensors, "model.a": ts["a"].numpy(),
                                                     "model.b": ts["b"].numpy()}, {"optimizer": info})
    ckpt = load_checkpoint(tmp_path / "ckpt.safetensors", required=())
    loaded = optimizer_state_dict(ckpt)
    assert isinstance(loaded["param_groups"][0]["betas"], list)          # what JSON gives back
    fresh = {n: minigrad.tensor(ckpt.tensors[f"model.{n}"], dtype=dtype, device=device, requires_grad=True)
             for n in "ab"}
    opt2 = _make(second, list(fresh.values()), lr=1.0, betas=(0.5, 0.5), eps=1e-3, weight_decay=0.5)
    opt2.load_state_dict(loaded)
    assert opt2.param_groups[0]["betas"] == HYPER["betas"] and type(opt2.param_groups[0]["betas"]) is tuple
    groups = opt2.state_dict()["param_groups"]
    assert groups == saved["param_groups"]
    assert [type(v) for v in groups[0].values()] == [type(v) for v in saved["param_groups"][0].values()]
    assert [opt2.state[fresh[n]]["step"] for n in "ab"] == [4, 2]
    for step in range(5, 9):
        _step(opt2, fresh, refs, step, "ab")
        _check(fresh, refs, dtype, f"step {step} after the resume")
