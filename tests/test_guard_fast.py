"""Guards for the performance layer's MLP and in-place loss (issue 21): bugs that once survived.

- The MLP activation names: fast's `mlp` with every activation name against the definitions
  written out here with math.tanh / math.erf (GPT-2's "gelu" is the tanh form, "gelu_exact" the
  erf form), values and input gradients (torch's autograd as the oracle for the derivatives), and
  against the core composite c_proj(act(c_fc(x))) with random weights. A "gelu" mapped to the erf
  form differs by up to 4.7e-4 at |x| = 2.7; identity weights keep the float32 matmuls exact, so
  that difference is hundreds of times the tolerance.
- Bias-only training through the fused MLP: only the biases require grad (each alone, or both).
- The host-side id checks before the in-place cross-entropy (alone, and with the lm_head matmul
  in linear_cross_entropy): a target equal to n_classes must be refused with the check's own
  message, and an ignore_index equal to the smallest or largest target (inside the remembered
  range) must be ignored, on both backends; FastGPT's targets too.
Expected values are computed here in float64 NumPy (or by the readable path where it says so).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
from minigrad import fast
from minigrad.fast import functional as FF
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.nn import functional as F

DEVICES = ["cpu", "cuda"]
K = math.sqrt(2.0 / math.pi)


def _device(device: str) -> str:
    if device == "cuda":
        from backend_testing import cuda_backend   # tests/ is on sys.path
        cuda_backend()
    return device


def _dtype(device: str) -> str:
    return "float64" if device == "cpu" else "float32"


def _t(a, device, dtype=None, grad=False):
    a = np.asarray(a)
    dtype = dtype or ("int64" if a.dtype.kind in "iu" else _dtype(device))
    return minigrad.tensor(a, dtype=dtype, device=device, requires_grad=grad)


# ------------------------------------------------------------------ the activation definitions
def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(K * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + np.exp(-x))


DEFINITIONS = {"gelu": gelu_tanh, "gelu_exact": gelu_erf, "silu": silu}


def _torch_act(name: str):
    import torch
    return {"gelu": lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
            "gelu_exact": lambda t: torch.nn.functional.gelu(t), "silu": torch.nn.functional.silu}[name]


def test_the_definitions_differ_where_the_test_looks():
    x = np.linspace(-4.0, 4.0, 64)
    assert np.abs(gelu_tanh(x) - gelu_erf(x)).max() > 4e-4        # the bug this file must see
    assert gelu_tanh(np.array([1.0]))[0] == pytest.approx(0.8411919906, abs=1e-9)   # by hand
    assert gelu_erf(np.array([1.0]))[0] == pytest.approx(0.8413447461, abs=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(DEFINITIONS))
def test_each_activation_name_computes_its_definition(device, name):
    """Identity weights: the fused MLP is act(x + b1) + b2, exactly, for every path (the fused
    Function, the core F.mlp and the GPT's MLP module), with the input gradient act'(x + b1)."""
    _device(device)
    torch = pytest.importorskip("torch")
    C = 8
    x = np.linspace(-4.0, 4.0, 4 * C).reshape(4, C)                    # covers |x| = 2.7
    b1 = np.linspace(-0.3, 0.2, C)
    b2 = np.linspace(0.1, -0.1, C)
    want = DEFINITIONS[name](x + b1) + b2
    tx = torch.tensor(x + b1, dtype=torch.float64, requires_grad=True)
    _torch_act(name)(tx).sum().backward()
    want_dx = tx.grad.numpy()
    assert np.abs(want - DEFINITIONS["gelu" if name != "gelu" else "gelu_exact"](x + b1) - b2).max() > 1e-4
    rtol, atol = (1e-12, 1e-12) if device == "cpu" else (1e-5, 2e-6)
    eye = np.eye(C)
    for path in ("fast", "core"):
        xt = _t(x, device, grad=True)
        args = (xt, _t(eye, device), _t(eye, device), _t(b1, device), _t(b2, device))
        y = (FF.mlp if path == "fast" else F.mlp)(*args, activation=name)
        np.testing.assert_allclose(y.numpy(), want, rtol=rtol, atol=atol, err_msg=path)
        y.sum().backward()
        np.testing.assert_allclose(xt.grad.numpy(), want_dx, rtol=rtol, atol=atol, err_msg=path)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(DEFINITIONS))
def test_fused_mlp_equals_the_core_composite(device, name):
    """Random weights: fast's mlp against c_proj(act(c_fc(x))) written with the core's linear and
    activation functions, values and the gradients of all five inputs."""
    _device(device)
    rng = np.random.default_rng(5)
    N, C, H = 6, 8, 16
    arrays = [rng.standard_normal((N, C)), rng.standard_normal((H, C)) * 0.7,
              rng.standard_normal((C, H)) * 0.3, rng.standard_normal(H) * 0.5, rng.standard_normal(C)]
    act = {"gelu": lambda h: F.gelu(h, approximate="tanh"), "gelu_exact": F.gelu, "silu": F.silu}[name]
    results = []
    for path in ("fast", "composite"):
        ts = [_t(a, device, grad=True) for a in arrays]
        x, w1, w2, b1, b2 = ts
        if path == "fast":
            y = FF.mlp(x, w1, w2, b1, b2, activation=name)
        else:
            y = F.linear(act(F.linear(x, w1, b1)), w2, b2)
        (y * _t(np.linspace(-1, 1, N * C).reshape(N, C), device)).sum().backward()
        results.append([y.numpy()] + [t.grad.numpy() for t in ts])
    rtol, atol = (1e-11, 1e-12) if device == "cpu" else (2e-5, 2e-5)
    for i, (got, want) in enumerate(zip(*results)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"output {i}")


# ------------------------------------------------------------------ bias-only training
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("trainable", [("b1",), ("b2",), ("b1", "b2")])
def test_bias_only_training_through_the_fused_mlp(device, trainable):
    """Only biases require grad (the input and weights are frozen): backward must not crash and
    must give the readable path's bias gradients (the fc bias needs d(pre-activation) even when
    neither x nor W1 wants a gradient)."""
    _device(device)
    rng = np.random.default_rng(2)
    N, C, H = 5, 8, 16
    arrays = {"x": rng.standard_normal((N, C)), "w1": rng.standard_normal((H, C)) * 0.5,
              "w2": rng.standard_normal((C, H)) * 0.5, "b1": rng.standard_normal(H),
              "b2": rng.standard_normal(C)}
    upstream = np.linspace(-1, 1, N * C).reshape(N, C)
    grads = {}
    for path, fn in (("fast", FF.mlp), ("core", F.mlp)):
        ts = {k: _t(a, device, grad=k in trainable) for k, a in arrays.items()}
        y = fn(ts["x"], ts["w1"], ts["w2"], ts["b1"], ts["b2"], activation="gelu")
        (y * _t(upstream, device)).sum().backward()
        for k, t in ts.items():
            assert (t.grad is not None) == (k in trainable), (path, k)
        grads[path] = {k: ts[k].grad.numpy() for k in trainable}
    # db2 is the upstream gradient summed over rows, by hand
    if "b2" in trainable:
        np.testing.assert_allclose(grads["core"]["b2"], upstream.sum(0), rtol=1e-6)
    tol = dict(rtol=1e-12, atol=1e-12) if device == "cpu" else dict(rtol=2e-5, atol=2e-5)
    for k in trainable:
        np.testing.assert_allclose(grads["fast"][k], grads["core"][k], err_msg=k, **tol)


def test_bias_only_training_of_an_accelerated_gpt():
    """A GPT with biases whose weights are frozen: the accelerated model trains its biases and
    gets the readable model's bias gradients (NumPy float64)."""
    def model():
        minigrad.manual_seed(4)
        m = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=16, bias=True),
                dtype="float64")
        for n, p in m.named_parameters():
            p.requires_grad = n.endswith(".bias")
        return m
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))
    got = {}
    for name, m in (("readable", model()), ("fast", fast.accelerate(model())[0])):
        _, loss = m(x, y, return_logits=False)
        loss.backward()
        got[name] = {n: p.grad.numpy() for n, p in m.named_parameters() if p.requires_grad}
    assert got["fast"].keys() == got["readable"].keys() and "transformer.h.0.mlp.c_fc.bias" in got["fast"]
    for n, g in got["readable"].items():
        np.testing.assert_allclose(got["fast"][n], g, rtol=1e-9, atol=1e-12, err_msg=n)


# ------------------------------------------------------------------ in-place cross-entropy
def _ce_reference(logits: np.ndarray, targets: np.ndarray, C: int, ignore_index: int):
    """Mean loss over the rows whose target is not ignore_index, and d(loss)/d(logits) (N, Vp):
    softmax - onehot over the first C columns, divided by the number of counted rows."""
    z = logits[:, :C].astype(np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    valid = targets != ignore_index
    n = valid.sum()
    rows = np.arange(len(targets))[valid]
    loss = (lse[valid] - z[rows, targets[valid]]).sum() / n
    grad = np.zeros_like(logits, dtype=np.float64)
    p = np.exp(z - lse[:, None])
    p[rows, targets[valid]] -= 1.0
    grad[:, :C] = np.where(valid[:, None], p, 0.0) / n
    return loss, grad


def _ce(device, logits_np, targets, C, ignore_index, host_range=True, kind="in_place"):
    """(loss, d(loss)/d(logits)) through FF.cross_entropy_in_place, or through
    FF.linear_cross_entropy with logits = x W^T for x = the identity (N, N) and W = logits^T, so
    the logits are exactly logits_np and dW^T = d(loss)/d(logits)."""
    t = FF.host_ids(np.asarray(targets), device) if host_range else _t(np.asarray(targets), device)
    if kind == "linear":
        x = _t(np.eye(len(logits_np)), device)                             # (N, N)
        w = _t(np.ascontiguousarray(logits_np.T), device, grad=True)       # (Vp, N)
        loss = FF.linear_cross_entropy(x, w, t, C, ignore_index=ignore_index)
        loss.backward()
        return float(loss.item()), w.grad.numpy().T
    leaf = _t(logits_np, device, grad=True)
    logits = leaf * 1.0                              # overwritten by the loss: not the leaf itself
    loss = FF.cross_entropy_in_place(logits, t, C, ignore_index=ignore_index)
    loss.backward()
    return float(loss.item()), leaf.grad.numpy()


LOGITS = np.random.default_rng(1).standard_normal((4, 8)) * 2.0     # N=4 rows, Vp=8, C=6 classes
KINDS = ["in_place", "linear"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("host_range", [True, False])
@pytest.mark.parametrize("targets, ignore_index", [
    ([0, 5, 2, 3], -100),        # the largest class C-1: every row counts
    ([0, 5, 2, 3], 6),           # ignore_index == C, just outside the range: every row counts
    ([0, 5, 2, 3], -1),          # just below it
    ([0, 3, 5, 3], 3),           # ignore_index inside the range
    ([0, 2, 5, 0], 0),           # ignore_index == the smallest target
    ([1, 2, 5, 5], 5),           # ignore_index == the largest target
    ([-100, 2, 5, -100], -100),  # the usual ignored rows
])
def test_in_place_cross_entropy_counts_exactly_the_rows_it_should(kind, device, host_range, targets,
                                                                 ignore_index):
    _device(device)
    C = 6
    loss, grad = _ce(device, LOGITS, targets, C, ignore_index, host_range, kind)
    want_loss, want_grad = _ce_reference(LOGITS, np.array(targets), C, ignore_index)
    tol = dict(rtol=1e-12, atol=1e-13) if device == "cpu" else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, want_loss, **tol)
    np.testing.assert_allclose(grad, want_grad, **tol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("host_range", [True, False])
@pytest.mark.parametrize("targets, ignore_index, shown", [
    ([0, 6, 2, 3], -100, r"\[0, 6\]"),         # a target equal to C (a padding column)
    ([0, 7, 2, 3], -100, r"\[0, 7\]"),         # the last padding column
    ([-1, 5, 2, 3], -100, r"\[-1, 5\]"),        # below 0 and not ignored
    ([0, 6, 2, 6], 5, r"\[0, 6\]"),            # ignore_index C-1 does not make C a class
])
def test_in_place_cross_entropy_refuses_targets_outside_the_classes(kind, device, host_range, targets,
                                                                    ignore_index, shown):
    _device(device)
    message = r"^cross_entropy: target class ids must be in \[0, 5\] .*got values in "
    with pytest.raises(IndexError, match=message + shown):
        _ce(device, LOGITS, targets, 6, ignore_index, host_range, kind)


@pytest.mark.parametrize("device", DEVICES)
def test_fast_gpt_checks_its_ids_at_the_vocabulary_boundary(device):
    """vocab_size 13 padded to 16: a target or an input id of 13 lies in the padding and must be
    refused; 12 is the last class; an ignore_index equal to a class id ignores exactly those rows.
    The accelerated loss equals the readable model's in every accepted case."""
    _device(device)

    def model():
        minigrad.manual_seed(6)
        return GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16,
                             pad_vocab_multiple=16), device=device, dtype=_dtype(device))
    readable, accelerated = model(), fast.accelerate(model())[0]
    assert accelerated.config.padded_vocab_size == 16
    rng = np.random.default_rng(8)
    x = rng.integers(0, 13, (2, 8))
    y = rng.integers(0, 13, (2, 8))
    y[0, 0], y[1, 3], x[1, 1] = 12, 0, 12
    tol = 1e-10 if device == "cpu" else 2e-5
    for ignore in (-100, 12, 0):
        _, want = readable(x, y, ignore_index=ignore)
        _, got = accelerated(x, y, ignore_index=ignore, return_logits=False)
        assert got.item() == pytest.approx(want.item(), rel=tol), ignore
    for form in ("numpy", "host_ids"):             # host_ids: a range remembered on the Tensor
        wrap = (lambda a: a) if form == "numpy" else (lambda a: FF.host_ids(a, device))
        bad_y = y.copy()
        bad_y[1, 5] = 13
        with pytest.raises(IndexError, match=r"target class ids must be in \[0, 12\]"):
            accelerated(wrap(x), wrap(bad_y), return_logits=False)
        with pytest.raises(IndexError, match=r"target class ids must be in \[0, 12\]"):
            accelerated(wrap(x), wrap(bad_y), ignore_index=12, return_logits=False)
        bad_x = x.copy()
        bad_x[0, 2] = 13
        with pytest.raises(IndexError, match=r"token ids must be in \[0, 12\]"):
            accelerated(wrap(bad_x), wrap(y), return_logits=False)
        _, got = accelerated(wrap(x), wrap(y), ignore_index=12, return_logits=False)
        _, want = readable(x, y, ignore_index=12)
        assert got.item() == pytest.approx(want.item(), rel=tol), form


# ------------------------------------------------------------------ CUDA graphs: the capturing call
class RecordOnlyGraph:
    """A fake CUDA graph that behaves as a real one on capture: it records the step without
    running it (executes_on_capture = False). capture(fn) runs fn to learn its outputs, then puts
    back every tensor fn changed (`state()`: the weights and the optimizer's moments) and fills
    the outputs with NaN, as memory a capture allocated but never computed; replay() runs the
    recorded step and writes its results into the captured outputs."""

    executes_on_capture = False

    def __init__(self, state):
        self.state, self.fn, self.out, self.runs = state, None, None, 0

    def capture(self, fn):
        before = [(t, t.numpy().copy()) for t in self.state()]
        self.fn, self.out = fn, fn()
        for t, a in before:
            t.backend.copy_(t.data, t.backend.from_numpy(a, t.dtype))
        b = self.out.backend
        b.copy_(self.out.data, b.full(self.out.shape, float("nan"), self.out.dtype))
        return self.out

    def replay(self):
        self.runs += 1
        new = self.fn()
        self.out.backend.copy_(self.out.data, new.data)


def test_the_capturing_call_of_a_graphed_step_runs_its_step():
    """A real capture records the step without running it, so the call that captures must replay
    once: its loss is the eager step's and the weights move. Graphed and eager runs (2 warmups,
    the capture, 2 replays) give the same losses and weights."""
    from minigrad.fast.cuda_graph import train_step_graph
    from minigrad.nn.utils import clip_grad_norm_

    def model():
        minigrad.manual_seed(3)
        m = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16))
        return fast.accelerate(m, m.configure_optimizers(0.1, 1e-2, (0.9, 0.95)))
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 13, (2, 2, 8)), rng.integers(0, 13, (2, 2, 8))) for _ in range(5)]

    eager_model, eager_opt = model()
    eager = []
    for xs, ys in batches:
        losses = []
        for x, y in zip(xs, ys):
            _, loss = eager_model(x, y, return_logits=False)
            (loss / 2).backward()
            losses.append(loss.item())
        clip_grad_norm_(eager_model.parameters(), 0.5)
        eager_opt.step()
        eager_opt.zero_grad()
        eager.append(sum(losses) / 2)

    gmodel, gopt = model()

    def step(xs, ys):                                   # train.py's train_step
        losses = []
        for x, y in zip(xs, ys):
            _, loss = gmodel(x, y, return_logits=False)
            (loss / len(xs)).backward()
            losses.append(loss)
        fast.clip_grad_norm_(gmodel.parameters(), 0.5)
        gopt.step()
        gopt.zero_grad()
        return losses

    def state():
        return list(gmodel.parameters()) + [v for s in gopt.state.values() for v in s.values()
                                            if isinstance(v, minigrad.Tensor)]
    graphs = []
    runner = train_step_graph(step, gmodel, gopt, accum=2, batch_size=2, block_size=8,
                              make_graph=lambda: graphs.append(RecordOnlyGraph(state)) or graphs[-1])
    assert runner.warmup == 2
    graphed = []
    for i, (xs, ys) in enumerate(batches):
        before = [p.numpy().copy() for p in gmodel.parameters()]
        graphed.append(float(runner(xs, ys).item()))
        moved = any(not np.array_equal(a, p.numpy()) for a, p in zip(before, gmodel.parameters()))
        assert moved, f"call {i}: the weights did not change"
    assert len(graphs) == 1 and graphs[0].runs == 3              # the capture's replay and 2 more
    np.testing.assert_allclose(graphed, eager, rtol=1e-6)
    for (name, p), q in zip(eager_model.named_parameters(), gmodel.parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-6, atol=1e-7, err_msg=name)
