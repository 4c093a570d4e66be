"""Every differentiable op against float64 central finite differences (docs/DESIGN.md trust level 1).

Each case is (function of Tensors, input arrays). `gradcheck` perturbs every entry of every
input and compares with autograd's vector-Jacobian product for a random cotangent. Inputs are
chosen away from kinks (relu at 0, max ties, clamp bounds) where the derivative is undefined.
Cases cover broadcasting, size-1 and empty dims, and non-contiguous inputs (the `Spec`
layouts "transposed" and "strided" of gradcheck.py).
"""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import Tensor

from gradcheck import Spec, gradcheck

DEVICE = "cpu"


def tt(data, **kw) -> Tensor:
    """A tensor on the device under test."""
    return Tensor(data, device=DEVICE, **kw)


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def pos(*shape, seed=0):
    """Positive values in [0.5, 2): for log, sqrt, pow bases, divisors."""
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)


def away(*shape, seed=0):
    """Values with |x| in [0.2, 1.5] and all distinct: no kinks, no ties."""
    n = int(np.prod(shape)) if shape else 1
    rng = np.random.default_rng(seed)
    mags = 0.2 + 1.3 * (np.arange(n) + rng.uniform(0.1, 0.9, n)) / n   # distinct magnitudes
    vals = rng.permutation(mags) * rng.choice([-1.0, 1.0], n)
    return vals.reshape(shape)


def T(arr):
    return Spec(arr, "transposed")


def S(arr):
    return Spec(arr, "strided")


def ids(*values):
    return Tensor(np.array(values, dtype=np.int64), device=DEVICE)


def check(fn, *inputs, **kw):
    gradcheck(fn, list(inputs), device=DEVICE, **kw)


# ---------------------------------------------------------------------------- elementwise binary
BROADCAST_PAIRS = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 1, 3), (4, 1)),
    ((), (2, 3)),
    ((1,), (3, 1)),
    ((0, 3), (3,)),
    ((2, 0), (1, 0)),
]

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": lambda a, b: minigrad.maximum(a, b),
    "minimum": lambda a, b: minigrad.minimum(a, b),
}


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("sa,sb", BROADCAST_PAIRS, ids=lambda s: "x".join(map(str, s)) or "0d")
def test_binary_broadcast(op, sa, sb):
    if op in ("div", "pow"):
        a, b = pos(*sa, seed=1), pos(*sb, seed=2)
    elif op in ("maximum", "minimum"):
        a, b = away(*sa, seed=1), away(*sb, seed=2) * 0.9   # distinct magnitudes: no ties
    else:
        a, b = rnd(*sa, seed=1), rnd(*sb, seed=2)
    check(BINARY[op], a, b)


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_binary_noncontiguous(op, layout):
    make = pos if op in ("div", "pow") else away
    a, b = make(3, 4, seed=3), make(3, 4, seed=4) * (0.9 if op in ("maximum", "minimum") else 1)
    check(BINARY[op], Spec(a, layout), Spec(b, "strided" if layout == "transposed" else "transposed"))


SCALAR_CASES = {
    "x+2": (lambda x: x + 2, rnd),
    "2+x": (lambda x: 2 + x, rnd),
    "x-1.5": (lambda x: x - 1.5, rnd),
    "3-x": (lambda x: 3 - x, rnd),
    "x*2.5": (lambda x: x * 2.5, rnd),
    "-2*x": (lambda x: -2 * x, rnd),
    "x/4": (lambda x: x / 4, rnd),
    "2/x": (lambda x: 2 / x, pos),
    "x**2": (lambda x: x ** 2, rnd),
    "x**3": (lambda x: x ** 3, rnd),
    "x**0.5": (lambda x: x ** 0.5, pos),
    "x**-1.5": (lambda x: x ** -1.5, pos),
    "x**1": (lambda x: x ** 1, rnd),
    "2**x": (lambda x: 2.0 ** x, rnd),
    "0.5**x": (lambda x: 0.5 ** x, rnd),
    "3**x_int_base": (lambda x: 3 ** x, rnd),
    "np_scalar*x": (lambda x: np.float64(1.5) * x, rnd),
}


@pytest.mark.parametrize("name", list(SCALAR_CASES))
def test_scalar_operand(name):
    fn, make = SCALAR_CASES[name]
    check(fn, make(2, 3, seed=5))
    check(fn, S(make(3, 2, seed=6)))


# ---------------------------------------------------------------------------- elementwise unary
UNARY = {
    "neg": (lambda x: -x, rnd),
    "exp": (lambda x: x.exp(), rnd),
    "log": (lambda x: x.log(), pos),
    "sqrt": (lambda x: x.sqrt(), pos),
    "rsqrt": (lambda x: x.rsqrt(), pos),
    "tanh": (lambda x: x.tanh(), rnd),
    "sigmoid": (lambda x: x.sigmoid(), rnd),
    "relu": (lambda x: x.relu(), away),
    "abs": (lambda x: x.abs(), away),
    "sin": (lambda x: x.sin(), rnd),
    "cos": (lambda x: x.cos(), rnd),
    "square": (lambda x: x.square(), rnd),
    "gelu": (lambda x: F.gelu(x), rnd),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), rnd),
    "silu": (lambda x: F.silu(x), rnd),
    "F.relu": (lambda x: F.relu(x), away),
    "F.sigmoid": (lambda x: F.sigmoid(x), rnd),
    "F.tanh": (lambda x: F.tanh(x), rnd),
    "minigrad.exp": (lambda x: minigrad.exp(x), rnd),
    "minigrad.log": (lambda x: minigrad.log(x), pos),
    "minigrad.sqrt": (lambda x: minigrad.sqrt(x), pos),
    "minigrad.tanh": (lambda x: minigrad.tanh(x), rnd),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("shape,layout", [((2, 3), "contiguous"), ((), "contiguous"),
                                          ((4,), "strided"), ((3, 2), "transposed"),
                                          ((0, 2), "contiguous")])
def test_unary(name, shape, layout):
    fn, make = UNARY[name]
    arr = make(*shape, seed=7)
    if name in ("sigmoid", "tanh", "exp", "gelu", "gelu_tanh", "silu"):
        arr = arr * 3                                 # reach the saturating tails too
    check(fn, Spec(arr, layout))


@pytest.mark.parametrize("lo,hi", [(-0.5, None), (None, 0.4), (-0.6, 0.7), (-0.6, -0.6 + 1e-9 + 0.05)])
def test_clamp(lo, hi):
    x = away(3, 4, seed=8)
    # keep every entry at least 0.02 from the bounds
    for bound in (lo, hi):
        if bound is not None:
            x = np.where(np.abs(x - bound) < 0.02, x + 0.05, x)
    check(lambda t: t.clamp(lo, hi), x)
    check(lambda t: minigrad.clamp(t, min=lo, max=hi), S(x))


@pytest.mark.parametrize("cshape,xshape,yshape", [
    ((2, 3), (2, 3), (2, 3)),
    ((2, 3), (3,), (2, 1)),
    ((3,), (2, 3), ()),
    ((2, 1), (1, 3), (2, 3)),
])
def test_where(cshape, xshape, yshape):
    cond = Tensor(np.random.default_rng(9).random(cshape) > 0.5, device=DEVICE)
    check(lambda x, y: minigrad.where(cond, x, y), rnd(*xshape, seed=10), rnd(*yshape, seed=11))


def test_where_scalar_branches():
    cond = Tensor(np.array([[True, False, True], [False, False, True]]), device=DEVICE)
    check(lambda x: minigrad.where(cond, x, 0.0), rnd(2, 3))
    check(lambda y: minigrad.where(cond, 1.5, y), T(rnd(2, 3)))
    check(lambda x: x.masked_fill(cond, -2.0), rnd(2, 3))


# ---------------------------------------------------------------------------- reductions
DIMS = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "var", "std", "var0", "logsumexp"])
def test_reduce(op, dim, keepdim):
    if op == "logsumexp" and dim is None:
        dim = (0, 1, 2)                                  # logsumexp needs explicit dims
    fns = {
        "sum": lambda x: x.sum(dim, keepdim),
        "mean": lambda x: x.mean(dim, keepdim),
        "amax": lambda x: x.amax(dim, keepdim),
        "amin": lambda x: x.amin(dim, keepdim),
        "var": lambda x: x.var(dim, keepdim),
        "std": lambda x: x.std(dim, keepdim),
        "var0": lambda x: x.var(dim, keepdim, correction=0),
        "logsumexp": lambda x: x.logsumexp(dim, keepdim),
    }
    x = away(2, 3, 4, seed=12)
    check(fns[op], x)
    if dim in (1, (0, 2)):
        check(fns[op], S(x))
        check(fns[op], T(x))


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "var"])
def test_reduce_size1_dims(op):
    x = away(1, 3, 1, seed=13)
    fn = {"sum": lambda t: t.sum((0, 2)), "mean": lambda t: t.mean(-1, keepdim=True),
          "amax": lambda t: t.amax(0), "var": lambda t: t.var(1)}[op]
    check(fn, x)


def test_reduce_empty_dims():
    check(lambda t: t.sum(0), rnd(0, 3))          # sum over an empty dim: zeros, no inputs to vary
    check(lambda t: t.sum(1), rnd(0, 3))
    check(lambda t: t.amax(1), rnd(0, 3))         # empty output: nothing to reduce over is fine
    check(lambda t: t.sum(), rnd(2, 0))


def test_max_min_with_dim():
    x = away(3, 4, seed=14)
    check(lambda t: t.max(1).values, x)
    check(lambda t: t.min(0, keepdim=True).values, x)
    check(lambda t: t.max(), x)
    check(lambda t: t.min(), S(x))


def test_max_ties_split_gradient():
    """At ties amax splits the gradient evenly (torch's rule), which central differences
    cannot see; checked directly here."""
    x = tt(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), dtype="float64", requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    y = tt(np.array([1.0, 2.0]), dtype="float64", requires_grad=True)
    z = tt(np.array([1.0, 1.0]), dtype="float64", requires_grad=True)
    minigrad.maximum(y, z).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0.5, 1.0])
    np.testing.assert_allclose(z.grad.numpy(), [0.5, 0.0])


# ---------------------------------------------------------------------------- matmul
MATMUL_SHAPES = [
    ((3, 4), (4, 2)),
    ((2, 3, 4), (4, 2)),          # batch on one side
    ((4, 3), (2, 3, 2)),
    ((2, 1, 3, 2), (3, 2, 2)),    # broadcasting batch dims
    ((2, 3, 4), (2, 4, 2)),
    ((4,), (4,)),                 # 1-d cases
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
    ((1, 4), (4, 1)),
    ((2, 0), (0, 3)),             # empty contraction: zeros
    ((0, 3), (3, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul(sa, sb):
    check(lambda a, b: a @ b, rnd(*sa, seed=15), rnd(*sb, seed=16))


@pytest.mark.parametrize("la,lb", [("transposed", "contiguous"), ("contiguous", "transposed"),
                                   ("transposed", "transposed"), ("strided", "strided")])
def test_matmul_noncontiguous(la, lb):
    check(lambda a, b: minigrad.matmul(a, b), Spec(rnd(2, 3, 4, seed=17), la),
          Spec(rnd(2, 4, 2, seed=18), lb))


def test_linear():
    check(lambda x, w, b: F.linear(x, w, b), rnd(2, 3, 4), rnd(5, 4, seed=1), rnd(5, seed=2))
    check(lambda x, w: F.linear(x, w), T(rnd(3, 4)), rnd(2, 4, seed=1))


# ---------------------------------------------------------------------------- movement
MOVEMENT = {
    "reshape": lambda x: x.reshape(4, 6),
    "reshape_-1": lambda x: x.reshape(-1, 3),
    "view": lambda x: x.view(2, 3, 2, 2),      # splits the last dim: a view in every layout
    "view_merge": lambda x: x.contiguous().view(2, 12),
    "reshape_1d": lambda x: minigrad.reshape(x, (24,)),
    "flatten": lambda x: x.flatten(1),
    "transpose": lambda x: x.transpose(0, 2),
    "minigrad.transpose": lambda x: minigrad.transpose(x, 1, -1),
    "permute": lambda x: x.permute(2, 0, 1),
    "minigrad.permute": lambda x: minigrad.permute(x, (1, 2, 0)),
    "T": lambda x: x.T,
    "mT": lambda x: x.mT,
    "unsqueeze0": lambda x: x.unsqueeze(0),
    "unsqueeze-1": lambda x: minigrad.unsqueeze(x, -1),
    "expand": lambda x: x[:, :1].expand(2, 3, 4),
    "expand_lead": lambda x: x[0:1].expand(3, 2, 3, 4),
    "expand_-1": lambda x: x[:, :, :1].expand(-1, -1, 5),
    "expand_as": lambda x: x[:1].expand_as(x),
    "broadcast_to": lambda x: x[:, 1:2].broadcast_to((2, 2, 3, 4)),
    "contiguous": lambda x: x.transpose(0, 1).contiguous(),
    "narrow": lambda x: x.narrow(2, 1, 2),
    "chain": lambda x: x.permute(1, 0, 2).reshape(3, 8)[1:].T.contiguous().reshape(-1),
}


@pytest.mark.parametrize("name", list(MOVEMENT))
@pytest.mark.parametrize("layout", ["contiguous", "strided", "transposed"])
def test_movement(name, layout):
    check(MOVEMENT[name], Spec(rnd(2, 3, 4, seed=19), layout))


@pytest.mark.parametrize("fn", [
    lambda x: x.squeeze(),
    lambda x: x.squeeze(0),
    lambda x: x.squeeze(2),
    lambda x: x.squeeze((0, 2)),
    lambda x: minigrad.squeeze(x, 1),      # dim of size 3: a no-op, still differentiable
    lambda x: x.unsqueeze(1).squeeze(1),
])
def test_squeeze(fn):
    check(fn, rnd(1, 3, 1, seed=20))
    check(fn, S(rnd(1, 3, 1, seed=20)))


# ---------------------------------------------------------------------------- indexing
BASIC_INDEX = {
    "int": lambda x: x[1],
    "neg_int": lambda x: x[-1],
    "int_int": lambda x: x[1, 2],
    "scalar": lambda x: x[1, 2, 3],
    "slice": lambda x: x[0:1],
    "slice_step": lambda x: x[:, ::2],
    "slice_step3": lambda x: x[..., 1::3],
    "neg_slice": lambda x: x[:, -2:],
    "empty_slice": lambda x: x[:, 2:1],
    "none": lambda x: x[None],
    "none_mid": lambda x: x[:, None, 1:],
    "ellipsis": lambda x: x[..., 1],
    "ellipsis_mid": lambda x: x[1, ..., ::2],
    "mixed": lambda x: x[1, ::2, None],
    "int_tensor": lambda x: x[tt(1)],
}


@pytest.mark.parametrize("name", list(BASIC_INDEX))
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_basic_indexing(name, layout):
    check(BASIC_INDEX[name], Spec(rnd(2, 3, 4, seed=21), layout))


MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])

ADVANCED_INDEX = {
    "list": lambda x: x[[0, 2]],
    "repeated": lambda x: x[[1, 1, 0, 1]],
    "negative": lambda x: x[[-1, 0, -3]],
    "tensor": lambda x: x[ids(2, 0, 2)],
    "2d_index": lambda x: x[ids(0, 2, 2, 1).reshape(2, 2)],
    "second_dim": lambda x: x[:, [3, 0, 3]],
    "after_int": lambda x: x[1, [3, 0, 3]],
    "two_arrays": lambda x: x[[0, 2, 2], [1, 3, 1]],
    "two_arrays_broadcast": lambda x: x[ids(0, 2).reshape(2, 1), ids(1, 3, 1)],
    "two_arrays_slice": lambda x: x[[0, 2], 1:3],
    "non_adjacent": lambda x: x.reshape(3, 2, 2)[[0, 2], :, [1, 0]],
    "adjacent_late": lambda x: x.reshape(2, 3, 2)[:, [2, 0], [1, 1]],
    "bool_mask_2d": lambda x: x[tt(MASK)],
    "bool_mask_rows": lambda x: x[tt(np.array([True, False, True]))],
    "bool_mask_cols_np": lambda x: x[:, np.array([False, True, True, False])],
    "bool_list": lambda x: x[[True, False, True]],
    "empty_index": lambda x: x[ids()],
    "index_select": lambda x: x.index_select(1, ids(3, 3, 0)),
}


@pytest.mark.parametrize("name", list(ADVANCED_INDEX))
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_advanced_indexing(name, layout):
    check(ADVANCED_INDEX[name], Spec(rnd(3, 4, seed=22), layout))


def test_advanced_indexing_matches_numpy():
    """Values and layout of the result follow NumPy's rules (gradcheck only sees gradients)."""
    x = rnd(3, 4, 5, seed=23)
    t = tt(x, dtype="float64")
    cases = [
        (lambda a: a[[0, 2]], lambda a: a[[0, 2]]),
        (lambda a: a[:, [1, 1, 3]], lambda a: a[:, [1, 1, 3]]),
        (lambda a: a[[0, 2], :, [4, 0]], lambda a: a[[0, 2], :, [4, 0]]),
        (lambda a: a[:, [2, 0], [1, 1]], lambda a: a[:, [2, 0], [1, 1]]),
        (lambda a: a[1:, [-1, 0]], lambda a: a[1:, [-1, 0]]),
        (lambda a: a[..., [4, 4]], lambda a: a[..., [4, 4]]),
        (lambda a: a[None, [0, 1], 2], lambda a: a[None, [0, 1], 2]),
    ]
    for ours, ref in cases:
        np.testing.assert_array_equal(ours(t).numpy(), ref(x))
    m = x > 0
    np.testing.assert_array_equal(t[tt(m)].numpy(), x[m])
    np.testing.assert_array_equal(t[tt(m[:, :, 0])].numpy(), x[m[:, :, 0]])


# ---------------------------------------------------------------------------- cat / stack / split
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    shapes = {0: [(1, 3), (2, 3), (0, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 2), (2, 1), (2, 2)]}[dim]
    arrays = [rnd(*s, seed=24 + i) for i, s in enumerate(shapes)]
    check(lambda *ts: minigrad.cat(list(ts), dim), *arrays)
    check(lambda a, b: minigrad.cat([a, b, a], dim), S(arrays[0]), T(arrays[1]))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim):
    check(lambda a, b, c: minigrad.stack([a, b, c], dim), rnd(2, 3), T(rnd(2, 3, seed=1)),
          S(rnd(2, 3, seed=2)))


@pytest.mark.parametrize("fn", [
    lambda x: x.split(2, 1),
    lambda x: x.split([1, 3, 1], dim=1),
    lambda x: minigrad.split(x, 1, 0),
    lambda x: x.chunk(3, 1),
    lambda x: minigrad.chunk(x, 2, -1),
    lambda x: x.split(2, 1)[1:],                  # some outputs unused: their slots get no gradient
    lambda x: [x.chunk(2, 0)[0] * 2.0],
], ids=["split_int", "split_sections", "split_dim0", "chunk", "chunk_neg", "partial", "one_of"])
def test_split_chunk(fn):
    check(fn, rnd(2, 5, seed=27))
    check(fn, S(rnd(2, 5, seed=27)))


def test_split_chunk_shapes():
    x = tt(rnd(2, 5))
    assert [t.shape for t in x.split(2, 1)] == [(2, 2), (2, 2), (2, 1)]
    assert [t.shape for t in x.chunk(3, 1)] == [(2, 2), (2, 2), (2, 1)]
    assert [t.shape for t in x.split([0, 5], 1)] == [(2, 0), (2, 5)]


# ---------------------------------------------------------------------------- fused nn.functional
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family(op, dim):
    fn = {"softmax": lambda x: F.softmax(x, dim), "log_softmax": lambda x: F.log_softmax(x, dim)}[op]
    x = rnd(2, 3, 4, seed=28) * 2
    check(fn, x)
    check(fn, T(x))
    check(fn, S(rnd(3, 1, seed=29)))


def test_softmax_methods_and_large_logits():
    check(lambda x: x.softmax(1), rnd(2, 3) + 500.0)     # max subtraction: no overflow
    check(lambda x: x.log_softmax(0), rnd(3, 2) - 500.0)
    check(lambda x: minigrad.softmax(x, -1), rnd(1, 1))


@pytest.mark.parametrize("affine", ["none", "weight", "bias", "both"])
@pytest.mark.parametrize("xshape,ns", [((3, 4), 4), ((2, 2, 3), (3,)), ((2, 2, 3), (2, 3))], ids=str)
def test_layer_norm(affine, xshape, ns):
    wshape = (ns,) if isinstance(ns, int) else ns
    x = rnd(*xshape, seed=30)
    w, b = rnd(*wshape, seed=31) + 1.0, rnd(*wshape, seed=32)
    if affine == "none":
        check(lambda x: F.layer_norm(x, ns), x)
    elif affine == "weight":
        check(lambda x, w: F.layer_norm(x, ns, w), x, w)
    elif affine == "bias":
        check(lambda x, b: F.layer_norm(x, ns, bias=b), x, b)
    else:
        check(lambda x, w, b: F.layer_norm(x, ns, w, b, eps=1e-3), x, w, b)
        check(lambda x, w, b: F.layer_norm(x, ns, w, b), S(x), S(w), b)


def test_layer_norm_noncontiguous():
    check(lambda x, w, b: F.layer_norm(x, 3, w, b), T(rnd(4, 3)), rnd(3, seed=1), rnd(3, seed=2))


@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("xshape,ns", [((3, 4), 4), ((2, 2, 3), (2, 3))], ids=str)
def test_rms_norm(with_weight, xshape, ns):
    wshape = (ns,) if isinstance(ns, int) else ns
    x = rnd(*xshape, seed=33)
    if with_weight:
        check(lambda x, w: F.rms_norm(x, ns, w), x, rnd(*wshape, seed=34))
        check(lambda x, w: F.rms_norm(x, ns, w, eps=1e-2), S(x), rnd(*wshape, seed=34))
    else:
        check(lambda x: F.rms_norm(x, ns), x)
    if len(xshape) == 2:
        check(lambda x: F.rms_norm(x, xshape[-1]), T(x))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_gradcheck(p):
    def fn(x):
        minigrad.manual_seed(1234)          # the same mask at every evaluation
        return F.dropout(x, p)
    check(fn, rnd(4, 6, seed=35))
    check(fn, S(rnd(3, 2, seed=36)))


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout_grad_is_mask_over_keep(p):
    """grad = mask / (1 - p), with the mask read off the forward output (x has no zeros)."""
    minigrad.manual_seed(3)
    x = tt(pos(50, 40), dtype="float64", requires_grad=True)
    y = F.dropout(x, p)
    g = rnd(50, 40, seed=1)
    y.backward(tt(g, dtype="float64"))
    mask = y.numpy() != 0
    np.testing.assert_allclose(y.numpy(), x.numpy() * mask / (1 - p), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), g * mask / (1 - p), rtol=1e-12)
    assert abs(mask.mean() - (1 - p)) < 0.05, "keep rate far from 1 - p"
    # same seed -> same mask; another seed -> another mask
    minigrad.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, p).numpy() != 0, mask)
    minigrad.manual_seed(4)
    assert not np.array_equal(F.dropout(x, p).numpy() != 0, mask)
    # eval mode and p=0 are the identity; p=1 zeroes everything
    assert F.dropout(x, p, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0)


@pytest.mark.parametrize("idx", [[[0, 2, 2], [4, 0, 2]], [1, 1, 1, 1], [3], [[]]], ids=str)
def test_embedding(idx):
    i = tt(np.array(idx, dtype=np.int64).reshape(np.array(idx).shape))
    check(lambda w: F.embedding(i, w), rnd(5, 3, seed=37))
    check(lambda w: F.embedding(i, w), S(rnd(5, 3, seed=37)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", ["NC", "NCd", "NCdd"])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy(reduction, shape, ignore):
    rng = np.random.default_rng(38)
    lshape, tshape = {"NC": ((4, 5), (4,)), "NCd": ((2, 4, 3), (2, 3)),
                      "NCdd": ((2, 3, 2, 2), (2, 2, 2))}[shape]
    C = lshape[1]
    t = rng.integers(0, C, tshape)
    if ignore:
        t.reshape(-1)[[0, 2]] = -100
    target = tt(t.astype(np.int64))
    check(lambda x: F.cross_entropy(x, target, reduction=reduction), rnd(*lshape, seed=39) * 2)


def test_cross_entropy_custom_ignore_index_and_noncontiguous():
    target = ids(1, 3, 3, 0)
    check(lambda x: F.cross_entropy(x, target, ignore_index=3), T(rnd(4, 5, seed=40)))
    check(lambda x: F.cross_entropy(x, target, ignore_index=3), S(rnd(4, 5, seed=40)))


def test_nll_and_mse():
    target = ids(1, -100, 0)
    check(lambda x: F.nll_loss(F.log_softmax(x, -1), target), rnd(3, 4, seed=41))
    check(lambda a, b: F.mse_loss(a, b), rnd(2, 3), rnd(2, 3, seed=1))
    check(lambda a, b: F.mse_loss(a, b, reduction="sum"), rnd(2, 3), rnd(2, 3, seed=1))


def _bool_mask(T_, S_, seed=42):
    m = np.random.default_rng(seed).random((T_, S_)) > 0.4
    m[:, 0] = True                       # every query keeps at least one key
    return m


SDPA_CASES = {
    "3d_noncausal": dict(qs=(2, 3, 4), ks=(2, 3, 4), vs=(2, 3, 2)),
    "3d_causal": dict(qs=(2, 3, 4), ks=(2, 3, 4), vs=(2, 3, 2), causal=True),
    "4d_causal": dict(qs=(1, 2, 3, 2), ks=(1, 2, 3, 2), vs=(1, 2, 3, 3), causal=True),
    "4d_noncausal_T!=S": dict(qs=(1, 2, 2, 3), ks=(1, 2, 4, 3), vs=(1, 2, 4, 2)),
    "causal_T<S": dict(qs=(1, 2, 3), ks=(1, 4, 3), vs=(1, 4, 2), causal=True),
    "causal_T>S": dict(qs=(1, 4, 2), ks=(1, 2, 2), vs=(1, 2, 2), causal=True),
    "2d": dict(qs=(3, 2), ks=(4, 2), vs=(4, 3)),
    "5d": dict(qs=(1, 2, 1, 2, 2), ks=(1, 2, 1, 3, 2), vs=(1, 2, 1, 3, 2), causal=True),
    "bool_mask": dict(qs=(2, 3, 4), ks=(2, 4, 4), vs=(2, 4, 2), mask="bool"),
    "float_mask": dict(qs=(1, 2, 3, 2), ks=(1, 2, 4, 2), vs=(1, 2, 4, 2), mask="float"),
    "bool_mask_causal": dict(qs=(1, 3, 2), ks=(1, 3, 2), vs=(1, 3, 2), mask="bool", causal=True),
    "scale": dict(qs=(1, 3, 2), ks=(1, 3, 2), vs=(1, 3, 2), scale=0.3),
}


@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_sdpa(name):
    c = SDPA_CASES[name]
    T_, S_ = c["qs"][-2], c["ks"][-2]
    mask = None
    if c.get("mask") == "bool":
        mask = tt(_bool_mask(T_, S_))
    elif c.get("mask") == "float":
        mask = tt(rnd(T_, S_, seed=43), dtype="float64")

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=c.get("causal", False),
                                              scale=c.get("scale"))
    q, k, v = rnd(*c["qs"], seed=44), rnd(*c["ks"], seed=45), rnd(*c["vs"], seed=46)
    check(fn, q, k, v)
    if len(c["qs"]) >= 3 and name in ("3d_causal", "4d_noncausal_T!=S", "bool_mask"):
        check(fn, S(q), T(k), S(v))


def test_sdpa_dropout_path():
    """dropout_p > 0 (dropout inside the fused op, its mask drawn again in the backward from the
    seed): with a fixed seed a deterministic function whose gradient is checked here."""
    def fn(q, k, v):
        minigrad.manual_seed(5)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.3, is_causal=True)
    check(fn, rnd(1, 3, 2), rnd(1, 3, 2, seed=1), rnd(1, 3, 2, seed=2))


# ---------------------------------------------------------------------------- the checker itself
class _WrongGrad(minigrad.Function):
    """y = x^2 with a deliberately wrong backward (2x + 1e-3 at one entry)."""

    def forward(self, x):
        self.x = x
        return self.backend.binary("mul", x, x)

    def backward(self, g):
        b = self.backend
        d = b.binary("mul", b.binary("mul", g, self.x), 2.0)
        n = b.to_numpy(d)
        n.reshape(-1)[-1] += 1e-3
        return b.from_numpy(n)


def test_gradcheck_catches_a_wrong_gradient():
    with pytest.raises(AssertionError, match=r"entry \(1, 2\)"):
        gradcheck(_WrongGrad.apply, [rnd(2, 3)])
    with pytest.raises(AssertionError, match="layout strided"):
        gradcheck(_WrongGrad.apply, [S(rnd(2, 3))])
    gradcheck(lambda x: x * x, [S(rnd(2, 3))])          # the correct form passes


def test_gradcheck_catches_a_leak_into_skipped_entries():
    """A gradient written outside the strided view's entries is an error, not ignored."""
    class Leak(minigrad.Function):
        def forward(self, x):
            return self.backend.binary("mul", x, 1.0)

        def backward(self, g):
            return g

    leaf = tt(np.zeros((4, 4)), dtype="float64", requires_grad=True)
    Leak.apply(leaf).sum().backward()
    spec = S(rnd(2, 2))
    with pytest.raises(AssertionError, match="leaked"):
        spec.grad_of(leaf)
