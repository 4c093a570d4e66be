"""Each fused op against autograd through the primitives it replaces (docs/DESIGN.md trust level 2).

The composite forms are written out here from minigrad's primitive ops (exp, sum, amax,
mean, matmul, indexing, where, ...), so their gradients come from the primitives' backward
functions, which test_ops_gradcheck.py checks against finite differences. Values and
gradients (for one random cotangent) must agree in float64 to ~1e-10 and in float32 to ~1e-5.

Attention with dropout is checked on both backends (the Triton one in its interpreter without a
GPU): for one minigrad.manual_seed the fused op must draw F.dropout's mask for the (..., T, S)
probabilities, so it equals softmax -> F.dropout -> @ v, values and gradients.

Exact GELU (erf) has no composite here (there is no erf primitive): it is checked against
finite differences in test_ops_gradcheck.py and against torch in test_ops_vs_torch.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import Tensor
from backend_testing import cuda_backend  # tests/ is on sys.path

DEVICE = "cpu"


def tt(data, **kw) -> Tensor:
    """A tensor on the device under test."""
    return Tensor(data, device=DEVICE, **kw)
TOL = {"float64": dict(rtol=1e-10, atol=1e-11), "float32": dict(rtol=2e-5, atol=2e-6)}


def rnd(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def compare(fused, composite, arrays, dtype="float64", device=DEVICE, seed=0):
    """Run both forms on the same inputs; compare outputs and input gradients."""
    results = []
    cot = None
    for fn in (fused, composite):
        xs = [Tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]
        y = fn(*xs)
        if cot is None:
            cot = np.random.default_rng(seed).standard_normal(y.shape)
        y.backward(Tensor(cot, dtype=dtype, device=device))
        results.append((y.numpy(), [x.grad.numpy() if x.grad is not None else None for x in xs]))
    (yf, gf), (yc, gc) = results
    assert yf.dtype == np.dtype(dtype)
    np.testing.assert_allclose(yf, yc, **TOL[dtype], err_msg="forward values differ")
    for i, (a, b) in enumerate(zip(gf, gc)):
        assert (a is None) == (b is None), f"input {i}: gradient present in only one form"
        if a is not None:
            assert a.dtype == np.dtype(dtype), f"input {i}: gradient dtype {a.dtype}"
            np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"gradient of input {i} differs")


DTYPES = ["float64", "float32"]


# ---------------------------------------------------------------------------- composite forms
def softmax_c(x, dim):
    e = (x - x.amax(dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax_c(x, dim):
    z = x - x.amax(dim, keepdim=True).detach()
    return z - z.exp().sum(dim, keepdim=True).log()


def layer_norm_c(x, nd, w=None, b=None, eps=1e-5):
    dims = tuple(range(x.ndim - nd, x.ndim))
    mu = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, correction=0)
    y = (x - mu) / (var + eps).sqrt()
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def rms_norm_c(x, nd, w=None, eps=1e-6):
    dims = tuple(range(x.ndim - nd, x.ndim))
    y = x * ((x * x).mean(dims, keepdim=True) + eps).rsqrt()
    return y * w if w is not None else y


def gelu_tanh_c(x):
    k = math.sqrt(2 / math.pi)
    return 0.5 * x * (1 + (k * (x + 0.044715 * x ** 3)).tanh())


def silu_c(x):
    return x * x.sigmoid()


def cross_entropy_c(logits, target, ignore_index=-100, reduction="mean"):
    if logits.ndim > 2:                                   # (N, C, d...) -> (N*d..., C)
        logits = logits.permute((0,) + tuple(range(2, logits.ndim)) + (1,)).reshape(-1, logits.shape[1])
    t = target.reshape(-1).numpy()
    valid = t != ignore_index
    logp = log_softmax_c(logits, -1)
    picked = logp[np.arange(len(t)), np.where(valid, t, 0)]          # gather, (N,)
    losses = minigrad.where(Tensor(valid, device=picked.device), -picked, 0.0)
    if reduction == "none":
        return losses.reshape(target.shape)
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / float(valid.sum())


def attention_c(q, k, v, mask=None, causal=False, scale=None, dropout_p=0.0):
    T_, S_ = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale                  # (..., T, S)
    if mask is not None:
        if mask.dtype == "bool":
            s = s.masked_fill(mask.logical_not(), float("-inf"))
        else:
            s = s + mask
    if causal:                                           # bottom-right alignment
        keep = np.arange(S_)[None, :] <= np.arange(T_)[:, None] + (S_ - T_)
        s = s.masked_fill(Tensor(~keep, device=s.device), float("-inf"))
    return F.dropout(softmax_c(s, -1), dropout_p) @ v     # dropout_p = 0: F.dropout is the identity


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family(op, dim, dtype):
    fused = {"softmax": F.softmax, "log_softmax": F.log_softmax}[op]
    comp = {"softmax": softmax_c, "log_softmax": log_softmax_c}[op]
    compare(lambda x: fused(x, dim), lambda x: comp(x, dim), [rnd(3, 4, 5, scale=3)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extreme_logits(dtype):
    x = rnd(4, 6, scale=30) + 1000.0
    compare(lambda x: F.softmax(x, -1), lambda x: softmax_c(x, -1), [x], dtype)
    compare(lambda x: F.log_softmax(x, -1), lambda x: log_softmax_c(x, -1), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["none", "weight", "bias", "both"])
@pytest.mark.parametrize("xshape,ns", [((4, 6), (6,)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 4))], ids=str)
def test_layer_norm(xshape, ns, affine, dtype):
    arrays = [rnd(*xshape, scale=2) + 0.5]
    has_w, has_b = affine in ("weight", "both"), affine in ("bias", "both")
    if has_w:
        arrays.append(rnd(*ns, seed=1) + 1)
    if has_b:
        arrays.append(rnd(*ns, seed=2))

    def split(args):
        x, rest = args[0], list(args[1:])
        w = rest.pop(0) if has_w else None
        b = rest.pop(0) if has_b else None
        return x, w, b

    compare(lambda *a: F.layer_norm(split(a)[0], ns, *split(a)[1:]),
            lambda *a: layer_norm_c(split(a)[0], len(ns), *split(a)[1:]), arrays, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("xshape,ns", [((4, 6), (6,)), ((2, 3, 4), (3, 4))], ids=str)
def test_rms_norm(xshape, ns, with_weight, dtype):
    eps = 1e-6
    if with_weight:
        compare(lambda x, w: F.rms_norm(x, ns, w, eps=eps), lambda x, w: rms_norm_c(x, len(ns), w, eps),
                [rnd(*xshape), rnd(*ns, seed=1)], dtype)
    else:
        compare(lambda x: F.rms_norm(x, ns, eps=eps), lambda x: rms_norm_c(x, len(ns), eps=eps),
                [rnd(*xshape)], dtype)


def test_rms_norm_default_eps_is_dtype_eps():
    """torch's default: eps = finfo(dtype).eps."""
    x = rnd(3, 4, scale=1e-4)
    for dtype, eps in (("float64", np.finfo(np.float64).eps), ("float32", np.finfo(np.float32).eps)):
        compare(lambda x: F.rms_norm(x, 4), lambda x: rms_norm_c(x, 1, eps=float(eps)), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["gelu_tanh", "silu"])
def test_activations(op, dtype):
    fused = {"gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu}[op]
    comp = {"gelu_tanh": gelu_tanh_c, "silu": silu_c}[op]
    compare(fused, comp, [rnd(3, 7, scale=3)], dtype)


def test_gelu_exact_forward_matches_erf():
    x = rnd(20, scale=3)
    ref = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(F.gelu(tt(x, dtype="float64")).numpy(), ref, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout(dtype):
    p = 0.3
    x = np.abs(rnd(6, 8)) + 0.1                     # no zeros: the output reveals the mask
    minigrad.manual_seed(11)
    mask = F.dropout(tt(x, dtype=dtype), p).numpy() != 0

    def fused(x):
        minigrad.manual_seed(11)
        return F.dropout(x, p)
    compare(fused, lambda x: x * tt(mask.astype(dtype)) * (1 / (1 - p)), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idx", [[[0, 3, 3], [4, 0, 3]], [2, 2, 2, 2, 2], [[[1]]]], ids=str)
def test_embedding(idx, dtype):
    i = tt(np.array(idx, dtype=np.int64))
    compare(lambda w: F.embedding(i, w), lambda w: w[i], [rnd(5, 3)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", ["NC", "NCd"])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy(shape, reduction, ignore_index, dtype):
    rng = np.random.default_rng(5)
    lshape, tshape = {"NC": ((6, 5), (6,)), "NCd": ((2, 5, 3), (2, 3))}[shape]
    t = rng.integers(0, 5, tshape)
    t.reshape(-1)[1] = ignore_index
    target = tt(t.astype(np.int64))
    compare(lambda x: F.cross_entropy(x, target, ignore_index=ignore_index, reduction=reduction),
            lambda x: cross_entropy_c(x, target, ignore_index, reduction), [rnd(*lshape, scale=2)], dtype)


SDPA = {
    "3d": dict(qs=(2, 4, 3), ks=(2, 4, 3), vs=(2, 4, 2)),
    "3d_causal": dict(qs=(2, 4, 3), ks=(2, 4, 3), vs=(2, 4, 2), causal=True),
    "4d_causal": dict(qs=(2, 2, 4, 3), ks=(2, 2, 4, 3), vs=(2, 2, 4, 3), causal=True),
    "T<S_causal": dict(qs=(1, 2, 2, 3), ks=(1, 2, 5, 3), vs=(1, 2, 5, 3), causal=True),
    "T!=S": dict(qs=(2, 3, 4), ks=(2, 5, 4), vs=(2, 5, 2)),
    "bool_mask": dict(qs=(1, 2, 3, 4), ks=(1, 2, 5, 4), vs=(1, 2, 5, 4), mask="bool"),
    "bool_mask_bcast": dict(qs=(2, 2, 3, 4), ks=(2, 2, 3, 4), vs=(2, 2, 3, 4), mask="bool_b"),
    "float_mask": dict(qs=(2, 3, 4), ks=(2, 4, 4), vs=(2, 4, 3), mask="float"),
    "float_mask_causal": dict(qs=(2, 4, 4), ks=(2, 4, 4), vs=(2, 4, 3), mask="float", causal=True),
    "scale": dict(qs=(2, 3, 4), ks=(2, 3, 4), vs=(2, 3, 4), scale=0.7),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SDPA))
def test_attention(name, dtype):
    c = SDPA[name]
    T_, S_ = c["qs"][-2], c["ks"][-2]
    rng = np.random.default_rng(7)
    mask = None
    if c.get("mask") in ("bool", "bool_b"):
        m = rng.random((T_, S_)) > 0.4
        m[:, -1] = True                         # never a fully masked row (composite would give nan)
        mask = tt(m if c["mask"] == "bool" else m[None, None, :, :].repeat(2, axis=1))
    elif c.get("mask") == "float":
        mask = tt(rng.standard_normal((T_, S_)), dtype=dtype)
    kw = dict(causal=c.get("causal", False), scale=c.get("scale"))
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=kw["causal"],
                                                           scale=kw["scale"]),
            lambda q, k, v: attention_c(q, k, v, mask, **kw),
            [rnd(*c["qs"], seed=1), rnd(*c["ks"], seed=2), rnd(*c["vs"], seed=3)], dtype)


def test_attention_fully_masked_rows_give_zero():
    """Causal with T > S (bottom-right): the first T - S queries see no key -> output 0, grad 0."""
    q = tt(rnd(1, 4, 2), dtype="float64", requires_grad=True)
    k = tt(rnd(1, 2, 2, seed=1), dtype="float64", requires_grad=True)
    v = tt(rnd(1, 2, 2, seed=2), dtype="float64", requires_grad=True)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert np.all(o.numpy()[0, :2] == 0) and np.all(np.isfinite(o.numpy()))
    o.sum().backward()
    assert np.all(q.grad.numpy()[0, :2] == 0)
    for t in (q, k, v):
        assert np.all(np.isfinite(t.grad.numpy()))
    # the rows that do see keys match the composite form on those rows
    keep = np.tril(np.ones((2, 2), dtype=bool))
    ref = attention_c(q.detach()[:, 2:], k.detach(), v.detach(), mask=tt(keep))
    np.testing.assert_allclose(o.numpy()[:, 2:], ref.numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------- attention dropout
# (device, dtype): the NumPy spec in float64, the Triton backend in float32 (its attention kernels
# have no float64). Small shapes, for the interpreter.
DROPOUT_DEVICES = [("cpu", "float64"), ("cuda", "float32")]
# v's head dim equals q's here: the Triton attention kernels require it (k and v share a shape)
DROPOUT_SDPA = {
    "3d": dict(qs=(2, 4, 3), ks=(2, 4, 3), vs=(2, 4, 3)),
    "4d_causal": SDPA["4d_causal"],
    "T<S_causal": SDPA["T<S_causal"],
    "T!=S": dict(qs=(2, 3, 4), ks=(2, 5, 4), vs=(2, 5, 4)),
    "float_mask_causal": dict(qs=(2, 4, 4), ks=(2, 4, 4), vs=(2, 4, 4), mask="float", causal=True),
    "bool_mask": SDPA["bool_mask"],
}


def _device(device):
    if device == "cuda":
        cuda_backend()                                  # skips only without torch/triton
    return device


@pytest.mark.parametrize("p", [0.3, 1.0])
@pytest.mark.parametrize("name", list(DROPOUT_SDPA))
@pytest.mark.parametrize("device,dtype", DROPOUT_DEVICES, ids=["numpy", "triton"])
def test_attention_dropout_equals_softmax_then_dropout(device, dtype, name, p):
    """Fused sdpa with dropout_p == scores -> softmax -> F.dropout -> @ v, same manual_seed."""
    c = DROPOUT_SDPA[name]
    _device(device)
    T_, S_ = c["qs"][-2], c["ks"][-2]
    rng = np.random.default_rng(8)
    mask = None
    if c.get("mask") == "bool":
        m = rng.random((T_, S_)) > 0.4
        m[:, -1] = True
        mask = tt(m).to(device)
    elif c.get("mask") == "float":
        mask = Tensor(rng.standard_normal((T_, S_)), dtype=dtype, device=device)
    kw = dict(causal=c.get("causal", False), scale=c.get("scale"))

    def fused(q, k, v):
        minigrad.manual_seed(21)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=kw["causal"],
                                              scale=kw["scale"])

    def composite(q, k, v):
        minigrad.manual_seed(21)
        return attention_c(q, k, v, mask, dropout_p=p, **kw)
    compare(fused, composite, [rnd(*c["qs"], seed=1), rnd(*c["ks"], seed=2), rnd(*c["vs"], seed=3)],
            dtype, device=device)


@pytest.mark.parametrize("device,dtype", DROPOUT_DEVICES, ids=["numpy", "triton"])
def test_qkv_self_attention_dropout_equals_split_heads(device, dtype):
    """qkv_self_attention(dropout_p) == split qkv into heads -> sdpa(dropout_p) -> merge heads, and
    == the same with the composite softmax -> F.dropout (one seed: the same (B, nh, T, T) mask)."""
    _device(device)
    B, T, nh, hs = 2, 5, 2, 3
    C = nh * hs

    def heads(x):
        q, k, v = x.split(C, dim=2)
        return [t.reshape(B, T, nh, hs).transpose(1, 2) for t in (q, k, v)]     # (B, nh, T, hs)

    def merge(y):
        return y.transpose(1, 2).contiguous().reshape(B, T, C)

    def fused(x):
        minigrad.manual_seed(4)
        return F.qkv_self_attention(x, nh, dropout_p=0.4)

    def split_sdpa(x):
        minigrad.manual_seed(4)
        return merge(F.scaled_dot_product_attention(*heads(x), is_causal=True, dropout_p=0.4))

    def split_composite(x):
        minigrad.manual_seed(4)
        return merge(attention_c(*heads(x), causal=True, dropout_p=0.4))
    x = rnd(B, T, 3 * C, seed=5)
    compare(fused, split_sdpa, [x], dtype, device=device)
    compare(fused, split_composite, [x], dtype, device=device)


@pytest.mark.parametrize("p,draws", [(0.0, 0), (0.5, 1), (1.0, 0)])
def test_attention_dropout_draws_a_seed_as_f_dropout_does(p, draws):
    """One draw from the global generator per call with 0 < p < 1 and none otherwise, exactly as
    softmax -> F.dropout did, so a training run's random stream is unchanged by the fusion."""
    q = tt(rnd(1, 3, 2))
    minigrad.manual_seed(9)
    F.scaled_dot_product_attention(q, q, q, dropout_p=p)
    after_sdpa = minigrad.random.default_generator().integers(0, 2 ** 31 - 1)
    minigrad.manual_seed(9)
    F.dropout(q, p)
    after_dropout = minigrad.random.default_generator().integers(0, 2 ** 31 - 1)
    minigrad.manual_seed(9)
    for _ in range(draws):
        minigrad.random.default_generator().integers(0, 2 ** 31 - 1)
    assert after_sdpa == after_dropout == minigrad.random.default_generator().integers(0, 2 ** 31 - 1)


def test_attention_dropout_p_out_of_range():
    q = tt(rnd(1, 3, 2))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout_p"):
            F.scaled_dot_product_attention(q, q, q, dropout_p=p)
        with pytest.raises(ValueError, match="dropout_p"):
            F.qkv_self_attention(tt(rnd(1, 3, 6)), 2, dropout_p=p)
