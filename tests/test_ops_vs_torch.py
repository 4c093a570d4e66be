"""minigrad against torch (CPU) as an independent oracle (docs/DESIGN.md trust level 4).

Each case is one function written once against a small namespace `L` that is either
minigrad or torch (same names: L.m is the module, L.F its functional API, L.idx/L.mask make
index tensors). Both run on the same random inputs in float32 and float64; values and the
gradients of sum(c * out) for a random cotangent c must agree.

Skips cleanly when torch is not installed (the core install has no torch).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as MF

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

DEVICE = "cpu"
TOL = {"float64": dict(rtol=1e-9, atol=1e-10), "float32": dict(rtol=2e-5, atol=2e-5)}
_TDT = {"float32": torch.float32, "float64": torch.float64}


def _mg_lib(dtype, device):
    return SimpleNamespace(
        m=minigrad, F=MF, name="minigrad",
        idx=lambda v: minigrad.tensor(np.asarray(v, dtype=np.int64), device=device),
        mask=lambda v: minigrad.tensor(np.asarray(v, dtype=bool), device=device),
        fl=lambda v: minigrad.tensor(np.asarray(v), dtype=dtype, device=device))


def _torch_lib(dtype):
    return SimpleNamespace(
        m=torch, F=TF, name="torch",
        idx=lambda v: torch.as_tensor(np.asarray(v, dtype=np.int64)),
        mask=lambda v: torch.as_tensor(np.asarray(v, dtype=bool)),
        fl=lambda v: torch.as_tensor(np.asarray(v), dtype=_TDT[dtype]))


def _outs(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def against_torch(fn, arrays, dtype, device=DEVICE, tol=None, seed=0):
    """fn(L, *tensors) -> tensor or list of tensors, run in both libraries and compared."""
    tol = tol or TOL[dtype]
    # minigrad
    L = _mg_lib(dtype, device)
    xs = [minigrad.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]
    ys = _outs(fn(L, *xs))
    rng = np.random.default_rng(seed)
    cots = [rng.standard_normal(y.shape) for y in ys]
    terms = [(y * minigrad.tensor(c, dtype=dtype, device=device)).sum() for y, c in zip(ys, cots)
             if y.requires_grad]
    if terms:
        loss = terms[0]
        for t in terms[1:]:
            loss = loss + t
        loss.backward()
    # torch
    Lt = _torch_lib(dtype)
    ts = [torch.tensor(a, dtype=_TDT[dtype], requires_grad=True) for a in arrays]
    zs = _outs(fn(Lt, *ts))
    tterms = [(z * torch.as_tensor(c, dtype=z.dtype)).sum() for z, c in zip(zs, cots) if z.requires_grad]
    if tterms:
        sum(tterms).backward()

    assert len(ys) == len(zs)
    for k, (y, z) in enumerate(zip(ys, zs)):
        assert y.shape == tuple(z.shape), f"output {k}: shape {y.shape} vs torch {tuple(z.shape)}"
        assert y.dtype == str(z.dtype).replace("torch.", ""), f"output {k}: dtype {y.dtype} vs {z.dtype}"
        np.testing.assert_allclose(y.numpy(), z.detach().numpy(), **tol, err_msg=f"output {k} values")
    for i, (x, t) in enumerate(zip(xs, ts)):
        if t.grad is None:
            assert x.grad is None or not np.any(x.grad.numpy()), f"input {i}: torch has no grad"
            continue
        assert x.grad is not None, f"input {i}: no gradient, torch has one"
        assert x.grad.dtype == dtype
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **tol, err_msg=f"input {i} grad")


def rnd(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def pos(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)


def away(*shape, seed=0):
    n = int(np.prod(shape)) if shape else 1
    rng = np.random.default_rng(seed)
    mags = 0.2 + 1.3 * (np.arange(n) + rng.uniform(0.1, 0.9, n)) / n
    return (rng.permutation(mags) * rng.choice([-1.0, 1.0], n)).reshape(shape)


DTYPES = ["float32", "float64"]
MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])

# name -> (fn(L, *xs), input arrays)
CASES = {
    # elementwise binary, with broadcasting
    "add": (lambda L, a, b: a + b, [rnd(2, 3), rnd(3, seed=1)]),
    "sub": (lambda L, a, b: a - b, [rnd(2, 1, 3), rnd(4, 1, seed=1)]),
    "mul": (lambda L, a, b: a * b, [rnd(), rnd(2, 3, seed=1)]),
    "div": (lambda L, a, b: a / b, [rnd(2, 3), pos(2, 3, seed=1)]),
    "pow_tensor": (lambda L, a, b: a ** b, [pos(2, 3), rnd(3, seed=1)]),
    "pow_scalar": (lambda L, a: a ** 3 + a ** 0.5 * 2 - a ** -1.5, [pos(2, 3)]),
    "rpow": (lambda L, a: 2.0 ** a + 0.5 ** a, [rnd(2, 3)]),
    "scalar_ops": (lambda L, a: (3 - a) * 2.5 / 4 + 1 - 2 / (a * a + 1), [rnd(2, 3)]),
    "neg": (lambda L, a: -a, [rnd(4)]),
    "maximum": (lambda L, a, b: L.m.maximum(a, b), [away(2, 3), away(3, seed=1) * 0.9]),
    "minimum": (lambda L, a, b: L.m.minimum(a, b), [away(2, 3), away(2, 1, seed=1) * 0.9]),
    # unary
    "exp": (lambda L, a: a.exp(), [rnd(2, 3)]),
    "log": (lambda L, a: a.log(), [pos(2, 3)]),
    "sqrt": (lambda L, a: a.sqrt(), [pos(2, 3)]),
    "rsqrt": (lambda L, a: a.rsqrt(), [pos(2, 3)]),
    "tanh": (lambda L, a: a.tanh(), [rnd(2, 3, scale=2)]),
    "sigmoid": (lambda L, a: a.sigmoid(), [rnd(2, 3, scale=4)]),
    "relu": (lambda L, a: a.relu() + L.F.relu(a), [away(2, 3)]),
    "abs_sin_cos": (lambda L, a: a.abs() + a.sin() * a.cos(), [away(2, 3)]),
    "gelu": (lambda L, a: L.F.gelu(a), [rnd(3, 4, scale=3)]),
    "gelu_tanh": (lambda L, a: L.F.gelu(a, approximate="tanh"), [rnd(3, 4, scale=3)]),
    "silu": (lambda L, a: L.F.silu(a), [rnd(3, 4, scale=3)]),
    "clamp": (lambda L, a: a.clamp(-0.5, 0.6) + a.clamp(min=0.1) + a.clamp(max=-0.3), [away(3, 4)]),
    "where": (lambda L, a, b: L.m.where(L.mask(MASK[0]), a, b), [rnd(2, 4), rnd(1, seed=1)]),
    "where_scalar": (lambda L, a: L.m.where(L.mask(MASK), a, 0.0), [rnd(3, 4)]),
    "masked_fill": (lambda L, a: a.masked_fill(L.mask(MASK), -1.0), [rnd(3, 4)]),
    # reductions
    "sum_all": (lambda L, a: a.sum(), [rnd(2, 3, 4)]),
    "sum_dim": (lambda L, a: a.sum(1), [rnd(2, 3, 4)]),
    "sum_dims_keep": (lambda L, a: a.sum((0, 2), keepdim=True), [rnd(2, 3, 4)]),
    "mean": (lambda L, a: a.mean(-1) + a.mean(), [rnd(2, 3, 4)]),
    "mean_keep": (lambda L, a: a.mean((0, 1), keepdim=True), [rnd(2, 3, 4)]),
    "amax": (lambda L, a: a.amax(1), [away(2, 3, 4)]),
    "amax_keep": (lambda L, a: a.amax((0, 2), keepdim=True), [away(2, 3, 4)]),
    "max_all": (lambda L, a: a.max(), [away(2, 3, 4)]),
    "max_dim": (lambda L, a: a.max(1).values + a.min(1).values, [away(2, 3, 4)]),
    "var": (lambda L, a: a.var(1), [rnd(2, 3, 4)]),
    "var_keep_biased": (lambda L, a: a.var((0, 2), keepdim=True, correction=0), [rnd(2, 3, 4)]),
    "var_all": (lambda L, a: a.var(), [rnd(2, 3, 4)]),
    "std": (lambda L, a: a.std(-1), [rnd(2, 3, 4)]),
    "logsumexp": (lambda L, a: a.logsumexp(1), [rnd(2, 3, 4)]),
    # matmul
    "matmul_2d": (lambda L, a, b: a @ b, [rnd(3, 4), rnd(4, 2, seed=1)]),
    "matmul_batched": (lambda L, a, b: a @ b, [rnd(2, 3, 4), rnd(2, 4, 5, seed=1)]),
    "matmul_bcast": (lambda L, a, b: L.m.matmul(a, b), [rnd(2, 1, 3, 4), rnd(3, 4, 2, seed=1)]),
    "matmul_1d_1d": (lambda L, a, b: a @ b, [rnd(4), rnd(4, seed=1)]),
    "matmul_1d_nd": (lambda L, a, b: a @ b, [rnd(4), rnd(2, 4, 3, seed=1)]),
    "matmul_nd_1d": (lambda L, a, b: a @ b, [rnd(2, 3, 4), rnd(4, seed=1)]),
    "matmul_transposed": (lambda L, a, b: a.transpose(-2, -1) @ b.mT, [rnd(2, 4, 3), rnd(2, 5, 4, seed=1)]),
    "linear": (lambda L, x, w, b: L.F.linear(x, w, b), [rnd(2, 3, 4), rnd(5, 4, seed=1), rnd(5, seed=2)]),
    # movement
    "reshape": (lambda L, a: a.reshape(4, -1).T.reshape(3, 8), [rnd(2, 3, 4)]),
    "view": (lambda L, a: a.view(6, 4) * 2, [rnd(2, 3, 4)]),
    "permute": (lambda L, a: a.permute(2, 0, 1) * L.fl(rnd(4, 1, 1)), [rnd(2, 3, 4)]),
    "transpose": (lambda L, a: a.transpose(0, 2), [rnd(2, 3, 4)]),
    "expand": (lambda L, a: a.expand(2, 3, 4), [rnd(3, 1)]),
    "unsqueeze_squeeze": (lambda L, a: a.unsqueeze(1).squeeze(0).squeeze(-1), [rnd(1, 3, 1)]),
    "flatten": (lambda L, a: a.flatten(1), [rnd(2, 3, 4)]),
    "contiguous": (lambda L, a: a.transpose(0, 1).contiguous().view(-1), [rnd(2, 3, 4)]),
    "narrow": (lambda L, a: a.narrow(1, 1, 2), [rnd(2, 3, 4)]),
    "cat": (lambda L, a, b: L.m.cat([a, b, a], 1), [rnd(2, 3), rnd(2, 1, seed=1)]),
    "stack": (lambda L, a, b: L.m.stack([a, b], -1), [rnd(2, 3), rnd(2, 3, seed=1)]),
    "split": (lambda L, a: a.split(2, 1), [rnd(2, 5)]),
    "split_sections": (lambda L, a: a.split([1, 3, 1], 1), [rnd(2, 5)]),
    "chunk": (lambda L, a: a.chunk(3, 0), [rnd(5, 2)]),
    # indexing
    "index_basic": (lambda L, a: a[1, ::2, None], [rnd(2, 3, 4)]),
    "index_ellipsis": (lambda L, a: a[..., 1:3] + a[:, None, 0, ..., 2:], [rnd(2, 3, 4)]),
    "index_neg_int": (lambda L, a: a[-1, -2], [rnd(2, 3, 4)]),
    "index_list_repeat": (lambda L, a: a[[2, 0, 2, -1]], [rnd(3, 4)]),
    "index_tensor_2d": (lambda L, a: a[L.idx([[0, 1], [2, 2]])], [rnd(3, 4)]),
    "index_second_dim": (lambda L, a: a[:, L.idx([3, 0, 3])], [rnd(3, 4)]),
    "index_two_arrays": (lambda L, a: a[L.idx([0, 2, 2]), L.idx([1, -1, 1])], [rnd(3, 4)]),
    "index_non_adjacent": (lambda L, a: a[L.idx([0, 2]), :, L.idx([1, 0])], [rnd(3, 2, 2)]),
    "index_bool_mask": (lambda L, a: a[L.mask(MASK)], [rnd(3, 4)]),
    "index_bool_rows": (lambda L, a: a[L.mask([True, False, True])], [rnd(3, 4)]),
    "index_select": (lambda L, a: a.index_select(1, L.idx([3, 3, 0])), [rnd(3, 4)]),
    # nn.functional
    "softmax_last": (lambda L, a: L.F.softmax(a, -1), [rnd(2, 3, 4, scale=3)]),
    "softmax_dim0": (lambda L, a: L.F.softmax(a, dim=0), [rnd(2, 3, 4, scale=3)]),
    "log_softmax_last": (lambda L, a: L.F.log_softmax(a, -1), [rnd(2, 3, 4, scale=3)]),
    "log_softmax_dim1": (lambda L, a: L.F.log_softmax(a, dim=1), [rnd(2, 3, 4, scale=3)]),
    "softmax_method": (lambda L, a: a.softmax(-1) + a.log_softmax(0), [rnd(3, 4)]),
    "layer_norm": (lambda L, x: L.F.layer_norm(x, (4,)), [rnd(2, 3, 4)]),
    "layer_norm_affine": (lambda L, x, w, b: L.F.layer_norm(x, (4,), w, b), [rnd(2, 3, 4), rnd(4, seed=1),
                                                                             rnd(4, seed=2)]),
    "layer_norm_2d_ns": (lambda L, x, w, b: L.F.layer_norm(x, (3, 4), w, b, eps=1e-3),
                         [rnd(2, 3, 4), rnd(3, 4, seed=1), rnd(3, 4, seed=2)]),
    "rms_norm": (lambda L, x: L.F.rms_norm(x, (4,)), [rnd(2, 3, 4)]),
    "rms_norm_weight": (lambda L, x, w: L.F.rms_norm(x, (3, 4), w, eps=1e-5), [rnd(2, 3, 4), rnd(3, 4, seed=1)]),
    "embedding": (lambda L, w: L.F.embedding(L.idx([[0, 4, 4], [2, 0, 4]]), w), [rnd(5, 3)]),
    "mse_loss": (lambda L, a, b: L.F.mse_loss(a, b), [rnd(2, 3), rnd(2, 3, seed=1)]),
    "nll_loss": (lambda L, a: L.F.nll_loss(L.F.log_softmax(a, -1), L.idx([1, -100, 3])), [rnd(3, 4)]),
}

for _red in ("mean", "sum", "none"):
    CASES[f"cross_entropy_NC_{_red}"] = (
        lambda L, x, r=_red: L.F.cross_entropy(x, L.idx([1, 0, -100, 4, 4]), reduction=r), [rnd(5, 5, scale=2)])
    CASES[f"cross_entropy_NCd_{_red}"] = (
        lambda L, x, r=_red: L.F.cross_entropy(x, L.idx([[1, 3, 3], [0, 2, 1]]), ignore_index=3, reduction=r),
        [rnd(2, 4, 3, scale=2)])
CASES["cross_entropy_NCdd"] = (lambda L, x: L.F.cross_entropy(x, L.idx([[[1, 0], [2, 2]], [[0, 0], [1, 2]]])),
                               [rnd(2, 3, 2, 2)])


def _sdpa_case(qs, ks, vs, causal=False, mask=None, scale=None):
    def fn(L, q, k, v):
        m = None
        if mask is not None:
            m = L.mask(mask) if mask.dtype == bool else L.fl(mask)
        kw = {} if scale is None else {"scale": scale}
        return L.F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, **kw)
    return fn, [rnd(*qs, seed=1), rnd(*ks, seed=2), rnd(*vs, seed=3)]


_bm = np.random.default_rng(9).random((3, 5)) > 0.4
_bm[:, 0] = True
CASES.update({
    "sdpa_3d": _sdpa_case((2, 4, 3), (2, 4, 3), (2, 4, 2)),
    "sdpa_3d_causal": _sdpa_case((2, 4, 3), (2, 4, 3), (2, 4, 2), causal=True),
    "sdpa_4d_causal": _sdpa_case((2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 4), causal=True),
    "sdpa_T!=S": _sdpa_case((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 2)),
    "sdpa_bool_mask": _sdpa_case((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4), mask=_bm),
    "sdpa_float_mask": _sdpa_case((2, 3, 4), (2, 5, 4), (2, 5, 3), mask=rnd(3, 5, seed=4)),
    "sdpa_scale": _sdpa_case((2, 3, 4), (2, 3, 4), (2, 3, 4), causal=True, scale=0.3),
})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_vs_torch(name, dtype):
    fn, arrays = CASES[name]
    tol = None
    if dtype == "float32" and (name.startswith("sdpa") or name.startswith("matmul")):
        tol = dict(rtol=1e-4, atol=1e-5)
    against_torch(fn, arrays, dtype, tol=tol)


def test_sdpa_causal_T_lt_S_bottom_right_matches_explicit_torch_mask():
    """T != S causal: torch's is_causal is top-left aligned; ours is bottom-right (documented).
    Compare with torch given the explicit bottom-right bool mask."""
    T_, S_ = 3, 5
    keep = np.arange(S_)[None, :] <= np.arange(T_)[:, None] + (S_ - T_)
    q, k, v = rnd(1, 2, T_, 4, seed=1), rnd(1, 2, S_, 4, seed=2), rnd(1, 2, S_, 4, seed=3)

    def fn(L, q, k, v):
        if L.name == "minigrad":
            return L.F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return L.F.scaled_dot_product_attention(q, k, v, attn_mask=L.mask(keep))
    for dtype in DTYPES:
        against_torch(fn, [q, k, v], dtype, tol=dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else None)


def test_sdpa_dropout_zero_matches_torch_and_is_the_default():
    q = rnd(1, 3, 4)
    for dtype in DTYPES:
        against_torch(lambda L, q: L.F.scaled_dot_product_attention(q, q, q, dropout_p=0.0), [q], dtype,
                      tol=dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else None)


def test_dtype_promotion_matches_torch():
    a32 = minigrad.tensor(rnd(3), dtype="float32")
    a64 = minigrad.tensor(rnd(3), dtype="float64")
    i64 = minigrad.tensor([1, 2, 3])
    t32, t64, ti = torch.tensor(rnd(3), dtype=torch.float32), torch.tensor(rnd(3)), torch.tensor([1, 2, 3])
    pairs = [((a32, a64), (t32, t64)), ((i64, a32), (ti, t32)), ((i64, a64), (ti, t64))]
    for (x, y), (tx, ty) in pairs:
        assert (x + y).dtype == str((tx + ty).dtype).replace("torch.", "")
        assert (x * y).dtype == str((tx * ty).dtype).replace("torch.", "")
    assert (i64 * 2.5).dtype == str((ti * 2.5).dtype).replace("torch.", "")
    assert (i64 + 2).dtype == str((ti + 2).dtype).replace("torch.", "")
    assert (a64 * 2).dtype == "float64" and (a32 * 2.0).dtype == "float32"
    assert (i64 / 2).dtype == str((ti / 2).dtype).replace("torch.", "")
    np.testing.assert_allclose((i64 / 2).numpy(), (ti / 2).numpy())


def test_against_torch_catches_mismatches():
    """The harness itself must fail on a wrong value or a wrong gradient."""
    with pytest.raises(AssertionError, match="values"):
        against_torch(lambda L, a: a * (2.0 if L.name == "minigrad" else 2.001), [rnd(3)], "float64")
    with pytest.raises(AssertionError, match="grad"):   # same values, gradient 0 instead of 2
        against_torch(lambda L, a: (a.detach() * 2.0 + a * 0.0) if L.name == "minigrad" else a * 2.0,
                      [rnd(3)], "float64")


# Every op that takes a dim, written once for both libraries (L is minigrad or torch).
DIM_OPS = {
    "softmax": lambda L, x, d: L.F.softmax(x, dim=d),
    "log_softmax": lambda L, x, d: L.F.log_softmax(x, dim=d),
    "sum": lambda L, x, d: x.sum(d),
    "mean": lambda L, x, d: x.mean(d),
    "var": lambda L, x, d: x.var(d),
    "amax": lambda L, x, d: x.amax(d),
    "max": lambda L, x, d: x.max(d)[0],
    "argmax": lambda L, x, d: x.argmax(d),
    "logsumexp": lambda L, x, d: x.logsumexp(d),
    "squeeze": lambda L, x, d: x.squeeze(d),
    "unsqueeze": lambda L, x, d: x.unsqueeze(d),
    "flatten": lambda L, x, d: x.flatten(d),
    "split": lambda L, x, d: x.split(1, d)[0],
    "chunk": lambda L, x, d: x.chunk(1, d)[0],
    "narrow": lambda L, x, d: x.narrow(d, 0, 1),
    "index_select": lambda L, x, d: x.index_select(d, L.idx([0])),
    "cat": lambda L, x, d: L.m.cat([x, x], d),
    "stack": lambda L, x, d: L.m.stack([x, x], d),
    "size": lambda L, x, d: L.fl(x.size(d)),
    "transpose_first": lambda L, x, d: x.transpose(d, 0),
    "transpose_last": lambda L, x, d: x.transpose(-1, d),
    "permute": lambda L, x, d: x.permute(*[d] + [i for i in range(x.ndim) if i != d % max(x.ndim, 1)]),
}


# torch refuses these on a 0-d tensor for another reason than the dim: only 2-d for them
_NOT_0D = ("cat", "split", "chunk", "narrow", "index_select", "size", "var", "permute")


@pytest.mark.parametrize("name,shape", [(n, s) for n in DIM_OPS for s in [(2, 3), ()]
                                        if s or n not in _NOT_0D],
                         ids=lambda v: v if isinstance(v, str) else f"{len(v)}d")
def test_dim_range_matches_torch(name, shape):
    """Each dim from -4 to 3: torch and minigrad both raise IndexError, or agree on the result.
    A dim past either end was silently wrapped (softmax, cat, stack, flatten, ...) before."""
    a = rnd(*shape) if shape else np.float64(0.5)
    for d in range(-4, 4):
        outs = []
        for L, x in ((_mg_lib("float64", DEVICE), minigrad.tensor(a, dtype="float64")),
                     (_torch_lib("float64"), torch.tensor(a, dtype=torch.float64))):
            try:
                outs.append(np.asarray(DIM_OPS[name](L, x, d).tolist()))
            except IndexError:
                outs.append("IndexError")
        assert type(outs[0]) is type(outs[1]), f"{name}(dim={d}): minigrad {outs[0]!r}, torch {outs[1]!r}"
        if not isinstance(outs[0], str):
            np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, err_msg=f"{name}(dim={d})")


def _factorizations(n: int, k: int):
    """Every shape of k dims with n elements."""
    if k == 1:
        yield (n,)
        return
    for d in range(1, n + 1):
        if n % d == 0:
            yield from ((d,) + rest for rest in _factorizations(n // d, k - 1))


def test_view_refuses_exactly_what_torch_refuses():
    """view never copies: on sliced/permuted/expanded layouts, every target shape of 1-3 dims is
    a view in minigrad iff it is one in torch (same values), else a RuntimeError in both. Before,
    view was reshape and silently copied (x.T.view(-1))."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        shape = tuple(int(s) for s in rng.integers(1, 4, size=rng.integers(1, 4)))
        steps = tuple(int(s) for s in rng.integers(1, 3, size=len(shape)))
        perm = tuple(int(i) for i in rng.permutation(len(shape)))
        big = rnd(*[s * st for s, st in zip(shape, steps)])
        expand = rng.random() < 0.5                     # size-1 dims become stride-0 dims of 3
        layouts = []
        for L, t in ((_mg_lib("float64", DEVICE), minigrad.tensor(big, dtype="float64")),
                     (_torch_lib("float64"), torch.tensor(big))):
            t = t[tuple(slice(None, None, st) for st in steps)].permute(*perm)
            if expand:
                t = t.expand(*[3 if s == 1 else s for s in t.shape])
            layouts.append(t)
        mx, tx = layouts
        assert mx.shape == tuple(tx.shape) and mx.stride() == tx.stride()
        for k in (1, 2, 3):
            for new in _factorizations(mx.numel(), k):
                try:
                    want = tx.view(new).numpy()
                except RuntimeError:
                    with pytest.raises(RuntimeError, match="Use .reshape"):
                        mx.view(new)
                    continue
                np.testing.assert_array_equal(mx.view(new).numpy(), want, err_msg=f"{tx.shape} -> {new}")
