"""TritonBackend against NumpyBackend (the specification), method by method.

Both backends get the same inputs (built from the same NumPy arrays, through each backend's
own from_numpy / permute / expand / slice, so views are exercised too) and their outputs are
compared on the host. float32 and float64 are compared directly; bfloat16/float16 run on the
Triton side on bf16-rounded inputs and are compared with NumpyBackend float32 at loose
tolerance. Shapes are chosen to cross block boundaries with tails, include size-1 and 0-d
cases, transposed and stride-0 expanded views. In CI this runs in Triton's interpreter;
`-m gpu` adds realistic sizes on a real GPU.
"""
from __future__ import annotations

import itertools

import kernel_testing  # noqa: E402,F401  (interpreter only when there is no CUDA; before kernels)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from minigrad.backends.base import BINARY_OPS, COMPARE_OPS, UNARY_OPS  # noqa: E402
from checked_backend import CheckedBackend  # noqa: E402
from minigrad.backends.numpy_backend import NumpyBackend  # noqa: E402
from minigrad.backends.triton_backend import TritonBackend  # noqa: E402

# Every tolerance of this file, (rtol, atol). Per dtype of the Triton result (16-bit results
# are compared to NumPy float32 on the same rounded inputs), then the few ops that need more.
_GPU = torch.cuda.is_available()
TOL = {
    "float32": (2e-5, 2e-5),
    "float64": (1e-10, 1e-12),
    "bfloat16": (3e-2, 3e-2),
    "float16": (5e-3, 5e-3),
    "int64": (0, 0),
    "bool": (0, 0),
    # op-specific (float32 unless named)
    # float32 matmul and attention multiply in IEEE float32 by default, on the GPU too (with
    # MINIGRAD_TF32=1, TF32 tensor cores: (2e-3, 2e-3) would be needed there)
    "matmul": (5e-5, 5e-5) if _GPU else (2e-5, 2e-5),        # GPU: another summation order
    "matmul_bf16": (3e-2, 1e-1),
    "long_sum": (1e-4, 1e-4),                                # 3000-term sums, other order
    "norm_bwd": (1e-4, 1e-4),
    "attention": (1e-4, 1e-4),
    "embedding_bwd": (1e-5, 1e-5),
    "dropout": (1e-6, 1e-7),
    "gpu_sum": (1e-4, 1e-3),
    "gpu_matmul": (2e-2, 1e-1),
    "gpu_rows": (1e-4, 1e-4),
    "gpu_softmax": (1e-4, 1e-6),
}

NB = CheckedBackend(NumpyBackend())
TB = CheckedBackend(TritonBackend())
RNG = np.random.default_rng(0)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ----------------------------------------------------------------------------- helpers
def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def bf16_round(x: np.ndarray, dtype: str = "bfloat16") -> np.ndarray:
    """x rounded to a 16-bit float and back (torch is the oracle for the rounding)."""
    tdt = torch.bfloat16 if dtype == "bfloat16" else torch.float16
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(tdt).float().numpy()


def arr(x, dtype=None):
    """An input built on each backend with from_numpy."""
    return lambda be: be.from_numpy(x, dtype)


def transposed(x, dtype=None):
    """x's values, as a view whose last two dims are transposed in memory (strided)."""
    xt = np.ascontiguousarray(np.swapaxes(x, -1, -2))
    nd = x.ndim
    axes = list(range(nd - 2)) + [nd - 1, nd - 2]
    return lambda be: be.permute(be.from_numpy(xt, dtype), axes)


def expanded(x_small, shape, dtype=None):
    """A stride-0 broadcast view of x_small to `shape`."""
    return lambda be: be.expand(be.from_numpy(x_small, dtype), shape)


def _build(be, args):
    """Materialise inputs on a backend: callables are called, lists (concat) element-wise."""
    return [_build(be, a) if isinstance(a, list) else a(be) if callable(a) else a for a in args]


def _host(be, out):
    if out is None:
        return None
    if isinstance(out, (tuple, list)):
        return [_host(be, o) for o in out]
    return be.to_numpy(out)


def _compare(t_out, n_out, tol, what):
    if isinstance(n_out, list):
        assert isinstance(t_out, list) and len(t_out) == len(n_out), what
        for i, (t, n) in enumerate(zip(t_out, n_out)):
            _compare(t, n, tol, f"{what}[{i}]")
        return
    if n_out is None:
        assert t_out is None, f"{what}: expected None"
        return
    assert t_out.shape == n_out.shape, f"{what}: shape {t_out.shape} vs {n_out.shape}"
    rtol, atol = tol
    if rtol == 0 and atol == 0:
        np.testing.assert_array_equal(t_out, n_out, err_msg=what)
    else:
        np.testing.assert_allclose(t_out.astype(np.float64), n_out.astype(np.float64),
                                   rtol=rtol, atol=atol, err_msg=what)


def check(method, *args, tol=None, t_args=None, **kwargs):
    """Run `method` on both backends with the same inputs and compare the results.

    args are values or callables `f(backend) -> array`. t_args (optional) gives different
    inputs for the Triton side (for 16-bit dtypes). Returns the Triton output."""
    n_out = getattr(NB, method)(*_build(NB, args), **kwargs)
    t_out = getattr(TB, method)(*_build(TB, t_args if t_args is not None else args), **kwargs)
    if tol is None:
        ref = n_out[0] if isinstance(n_out, tuple) else n_out
        tol = TOL[NB.dtype(ref)]
    _compare(_host(TB, t_out), _host(NB, n_out), tol, method)
    return t_out


# ----------------------------------------------------------------------------- tier 1
def test_from_numpy_to_numpy_roundtrip():
    for x in [randn(3, 5), randn(4, dtype=np.float64), np.arange(7), np.array([True, False]),
              np.array(2.5), np.arange(6, dtype=np.int32).reshape(2, 3), randn(4, 6)[:, ::2]]:
        t = TB.from_numpy(x)
        assert TB.dtype(t) == NB.dtype(NB.from_numpy(x))
        np.testing.assert_array_equal(TB.to_numpy(t), NB.to_numpy(NB.from_numpy(x)))
    x = randn(3, 4)
    t = TB.from_numpy(x, "bfloat16")
    assert TB.dtype(t) == "bfloat16"
    np.testing.assert_array_equal(TB.to_numpy(t), bf16_round(x))          # round to nearest even
    assert TB.to_numpy(t).dtype == np.float32
    t64 = TB.from_numpy(x, "float64")
    assert TB.dtype(t64) == "float64" and TB.to_numpy(t64).dtype == np.float64
    # from_numpy copies: mutating the source later does not change the tensor
    src = randn(5)
    t = TB.from_numpy(src)
    src[:] = 0
    assert np.all(TB.to_numpy(t) != 0)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_creation(dtype):
    value = {"bool": True, "int64": -7}.get(dtype, 0.1)
    check("full", (3, 70), value, dtype)
    check("full", (), value, dtype)
    check("zeros", (2, 3), dtype)
    check("ones", (5,), dtype)
    e = TB.empty((2, 0, 3), dtype)
    assert TB.shape(e) == (2, 0, 3) and TB.dtype(e) == dtype
    if dtype != "bool":
        for start, stop, step in [(0, 200, 1), (3, 20, 4), (5, -7, -3), (2, 2, 1)]:
            check("arange", start, stop, step, dtype)
    assert TB.is_array(TB.zeros((1,), dtype)) and not TB.is_array(np.zeros(1))


@pytest.mark.parametrize("src,dst", list(itertools.product(["float32", "float64", "int64", "bool"],
                                                           repeat=2)))
def test_astype(src, dst):
    x = (randn(6, 45) * 4).astype({"float32": np.float32, "float64": np.float64,
                                   "int64": np.int64, "bool": np.bool_}[src])
    check("astype", transposed(x), dst)


def test_astype_16bit():
    x = randn(5, 33)
    for half in ("bfloat16", "float16"):
        t = TB.astype(TB.from_numpy(x), half)
        assert TB.dtype(t) == half
        np.testing.assert_array_equal(TB.to_numpy(t), bf16_round(x, half))


# ----------------------------------------------------------------------------- elementwise
def _unary_input(op, x):
    return np.abs(x) + 0.1 if op in ("log", "sqrt", "rsqrt", "reciprocal") else x


@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary(op):
    x = randn(7, 41) * 2
    x[0, :4] = [0.0, -0.0, 1e-4, -2e-3]
    x = _unary_input(op, x)
    check("unary", op, arr(x))
    check("unary", op, arr(x.astype(np.float64)))
    check("unary", op, transposed(x))                              # strided
    check("unary", op, expanded(x[:1], (5, 41)))                            # stride 0
    check("unary", op, arr(np.float32(x[1, 1])))                           # 0-d
    xb = bf16_round(x)
    check("unary", op, arr(xb), t_args=[op, arr(xb, "bfloat16")], tol=TOL["bfloat16"])
    if op in ("neg", "abs", "sign", "square"):
        check("unary", op, arr(np.arange(-20, 22).reshape(3, 14)))


@pytest.mark.parametrize("op", BINARY_OPS)
def test_binary(op):
    a = randn(6, 50)
    b = randn(6, 50)
    if op == "pow":
        a = np.abs(a) + 0.2
    check("binary", op, arr(a), arr(b))
    check("binary", op, arr(a.astype(np.float64)), arr(b.astype(np.float64)))
    check("binary", op, arr(a), transposed(b))
    check("binary", op, arr(a), expanded(b[:1], (6, 50)))
    check("binary", op, arr(a), 1.5)
    check("binary", op, arr(a.astype(np.float64)), 0.1)                   # exact float64 scalar
    if op != "pow":
        check("binary", op, -2.5, arr(b))
    ab, bb = bf16_round(a), bf16_round(b)
    check("binary", op, arr(ab), arr(bb), t_args=[op, arr(ab, "bfloat16"), arr(bb, "bfloat16")],
          tol=TOL["bfloat16"])
    if op in ("add", "sub", "mul", "maximum", "minimum"):
        ia = RNG.integers(-1000, 1000, (5, 37))
        ib = RNG.integers(-1000, 1000, (5, 37))
        check("binary", op, arr(ia), arr(ib))
        check("binary", op, arr(ia), 3)
        check("binary", op, 7, transposed(ib))


@pytest.mark.parametrize("op", COMPARE_OPS)
def test_compare(op):
    a = RNG.integers(-2, 3, (4, 40)).astype(np.float32)
    b = RNG.integers(-2, 3, (4, 40)).astype(np.float32)
    check("compare", op, arr(a), arr(b))
    check("compare", op, arr(a), transposed(b))
    check("compare", op, arr(a), 0.0)
    check("compare", op, 1.0, expanded(b[:1], (4, 40)))
    check("compare", op, arr(a.astype(np.int64)), 1)
    check("compare", op, arr(a > 0), arr(b > 0))


def test_where():
    cond = randn(5, 33) > 0
    a, b = randn(5, 33), randn(5, 33)
    check("where", arr(cond), arr(a), arr(b))
    check("where", transposed(cond), expanded(a[:1], (5, 33)), transposed(b))
    check("where", arr(cond), arr(a), -1.5)
    check("where", arr(cond), 2.0, arr(b.astype(np.float64)))
    check("where", arr(cond), 1.0, float("-inf"))                          # float32
    check("where", arr(cond), 1, 0)                                         # int64
    check("where", arr(cond), arr(np.arange(165).reshape(5, 33)), 7)
    check("where", arr(cond), arr(~cond), arr(cond))


# ----------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions(keepdim):
    x = randn(3, 4, 37)
    for axes in [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]:
        check("reduce_sum", arr(x), axes, keepdim)
        check("reduce_max", arr(x), axes, keepdim)
        check("reduce_sum", arr(x.astype(np.float64)), axes, keepdim)
        check("reduce_sum", expanded(x[:, :1], (3, 4, 37)), axes, keepdim)
    xt = randn(37, 4)
    check("reduce_sum", transposed(xt), (0,), keepdim)
    check("reduce_max", transposed(xt), (1,), keepdim)
    check("reduce_sum", arr(RNG.integers(-9, 9, (6, 30))), (0,), keepdim)
    check("reduce_max", arr(RNG.integers(-9, 9, (6, 30))), (1,), keepdim)
    check("reduce_sum", arr(x > 0), (0, 2), keepdim)
    check("reduce_sum", arr(randn(2, 3000)), (1,), keepdim, tol=TOL["long_sum"])     # two passes
    xb = bf16_round(x)
    check("reduce_sum", arr(xb), (2,), keepdim, t_args=[arr(xb, "bfloat16"), (2,), keepdim],
          tol=TOL["bfloat16"])


def test_argmax():
    x = randn(4, 5, 37)
    x[0, 0, 3] = x[0, 0, 9] = 10.0                                          # tie: first wins
    for axis in range(3):
        check("argmax", arr(x), axis)
    check("argmax", transposed(randn(37, 6)), 1)
    check("argmax", arr(RNG.integers(-3, 3, (5, 20))), 1)
    check("argmax", arr(randn(2, 2000)), 1)


# ----------------------------------------------------------------------------- movement
def test_views_and_copies():
    x = randn(4, 6, 5)
    check("reshape", arr(x), (24, 5))
    check("reshape", arr(x), (4, 30))
    check("reshape", transposed(x), (4, 30))        # needs a copy
    t = TB.reshape(TB.from_numpy(x), (2, 2, 30))
    assert TB.is_contiguous(t)
    check("permute", arr(x), (2, 0, 1))
    check("expand", arr(x[:, :1]), (4, 7, 5))
    check("slice", arr(x), (slice(1, 3), 2, slice(0, 5, 2)))
    check("slice", arr(x), (0, 0, 0))
    check("contiguous", transposed(x))
    check("contiguous", expanded(x[:, :1], (4, 3, 5)))
    c = TB.from_numpy(x)
    assert TB.contiguous(c) is c
    assert TB.is_contiguous(c) and not TB.is_contiguous(TB.permute(c, (1, 0, 2)))


def test_strides_in_elements_match_numpy():
    """Tensor.view decides from these (shapes.can_view), so both backends must report the same."""
    x = randn(4, 6, 5)
    for make in (arr(x), transposed(x), expanded(x[:, :1], (4, 3, 5)), arr(np.float64(2.0)),
                 lambda be: be.slice(be.from_numpy(x), (slice(1, 3), 2, slice(0, 5, 2)))):
        assert TB.strides(make(TB)) == NB.strides(make(NB))
    assert TB.strides(TB.from_numpy(x)) == (30, 5, 1)


def test_slice_backward_and_concat():
    g = randn(2, 5, 3)
    check("slice_backward", arr(g), (4, 7, 6), (slice(1, 3), slice(2, 7), slice(0, 6, 2)))
    check("slice_backward", arr(randn(7)), (4, 7), (2, slice(None)))
    a, b, c = randn(2, 5), randn(3, 5), randn(2, 5)
    check("concat", [arr(a), arr(b), arr(c)], 0)
    check("concat", [arr(a), transposed(c)], 1)
    check("concat", [arr(a), arr(np.zeros((2, 0), np.float32)), expanded(c[:, :1], (2, 3))], 1)
    check("concat", [arr(np.arange(4)), arr(np.arange(3))], 0)


def test_index_select_and_add():
    x = randn(5, 9, 4)
    idx = np.array([3, 0, 3, 8, 1])
    for axis in range(3):
        i = idx % x.shape[axis]
        check("index_select", arr(x), axis, arr(i))
        src_shape = list(x.shape)
        src_shape[axis] = len(i)
        check("index_add", tuple(x.shape), axis, arr(i), arr(randn(*src_shape)))
    check("index_select", transposed(randn(4, 9)), 1, arr(np.array([0, 2, 2])))
    check("index_select", arr(np.arange(20).reshape(4, 5)), 0, arr(np.array([3, 1])))   # int64


def test_copy_():
    for dst_np, src_fn in [(np.zeros((4, 6), np.float32), arr(randn(4, 6))),
                           (np.zeros((4, 6), np.float64), transposed(randn(4, 6))),
                           (np.zeros((4, 6), np.float32), expanded(randn(1, 6), (4, 6))),
                           (np.zeros((4, 6), np.int64), arr(randn(4, 6) * 10))]:
        outs = []
        for be in (NB, TB):
            dst = be.from_numpy(dst_np)
            view = be.slice(dst, (slice(0, 4), slice(0, 6)))
            be.copy_(view, src_fn(be))
            outs.append(be.to_numpy(dst))
        _compare(outs[1], outs[0], TOL[str(dst_np.dtype)] if str(dst_np.dtype) in TOL else (0, 0), "copy_")
    # into a strided view of a bigger buffer
    outs = []
    for be in (NB, TB):
        dst = be.zeros((5, 8), "float32")
        be.copy_(be.slice(dst, (slice(1, 5, 2), slice(0, 8, 3))), be.from_numpy(randn_fixed()))
        outs.append(be.to_numpy(dst))
    np.testing.assert_array_equal(outs[1], outs[0])


def randn_fixed():
    return np.arange(6, dtype=np.float32).reshape(2, 3) + 0.5


# ----------------------------------------------------------------------------- matmul
def test_matmul():
    check("matmul", arr(randn(5, 19)), arr(randn(19, 7)), tol=TOL["matmul"])
    check("matmul", arr(randn(2, 3, 17, 33)), arr(randn(2, 3, 33, 20)), tol=TOL["matmul"])
    check("matmul", transposed(randn(2, 17, 33)), transposed(randn(2, 33, 20)), tol=TOL["matmul"])
    check("matmul", arr(randn(2, 17, 33)), expanded(randn(1, 33, 20), (2, 33, 20)), tol=TOL["matmul"])
    check("matmul", arr(randn(1, 1)), arr(randn(1, 1)), tol=TOL["matmul"])
    check("matmul", arr(randn(9, 21, dtype=np.float64)), arr(randn(21, 18, dtype=np.float64)))
    a, b = bf16_round(randn(16, 40)), bf16_round(randn(40, 24))
    check("matmul", arr(a), arr(b), t_args=[arr(a, "bfloat16"), arr(b, "bfloat16")],
          tol=TOL["matmul_bf16"])


# ----------------------------------------------------------------------------- fused
def test_softmax_family():
    for shape in [(3, 7), (2, 4, 100), (1, 1)]:
        x, dy = randn(*shape) * 3, randn(*shape)
        for fwd, bwd in [("softmax_fwd", "softmax_bwd"), ("log_softmax_fwd", "log_softmax_bwd")]:
            y = NB.to_numpy(getattr(NB, fwd)(NB.from_numpy(x)))
            check(fwd, arr(x))
            check(bwd, arr(dy), arr(y))
    x = randn(4, 30)
    check("softmax_fwd", transposed(x))                             # strided last dim
    x3 = randn(6, 3, 10)
    check("softmax_fwd", lambda be: be.permute(be.from_numpy(x3), (1, 0, 2)))   # non-collapsible
    xb = bf16_round(randn(5, 64))
    check("softmax_fwd", arr(xb), t_args=[arr(xb, "bfloat16")], tol=TOL["bfloat16"])


@pytest.mark.parametrize("affine", [True, False])
def test_norms(affine):
    x, dy = randn(2, 5, 48), randn(2, 5, 48)
    w = randn(48) if affine else None
    bias = randn(48) if affine else None
    wf = arr(w) if affine else None
    bf = arr(bias) if affine else None
    check("layernorm_fwd", arr(x), wf, bf, 1e-5)
    _, mean, rstd = NB.layernorm_fwd(NB.from_numpy(x), NB.from_numpy(w) if affine else None,
                                     NB.from_numpy(bias) if affine else None, 1e-5)
    check("layernorm_bwd", arr(dy), arr(x), wf, arr(NB.to_numpy(mean)), arr(NB.to_numpy(rstd)),
          tol=TOL["norm_bwd"])
    check("rmsnorm_fwd", arr(x), wf, 1e-6)
    _, rstd = NB.rmsnorm_fwd(NB.from_numpy(x), NB.from_numpy(w) if affine else None, 1e-6)
    check("rmsnorm_bwd", arr(dy), arr(x), wf, arr(NB.to_numpy(rstd)), tol=TOL["norm_bwd"])
    check("layernorm_fwd", lambda be: be.permute(be.from_numpy(x.swapaxes(0, 1).copy()), (1, 0, 2)),
          wf, bf, 1e-5)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_silu(approximate):
    x, dy = randn(7, 33) * 3, randn(7, 33)
    check("gelu_fwd", arr(x), approximate)
    check("gelu_bwd", arr(dy), transposed(x), approximate)
    check("gelu_fwd", arr(x.astype(np.float64)), approximate)
    check("silu_fwd", expanded(x[:1], (7, 33)))
    check("silu_bwd", arr(dy), arr(x))
    xb = bf16_round(x)
    check("gelu_fwd", arr(xb), approximate, t_args=[arr(xb, "bfloat16"), approximate],
          tol=TOL["bfloat16"])


def test_dropout():
    x = randn(40, 50)
    y, mask = TB.dropout_fwd(TB.from_numpy(x), 0.25, 17)
    m = TB.to_numpy(mask)
    assert m.dtype == np.bool_ and abs(m.mean() - 0.75) < 0.04
    np.testing.assert_allclose(TB.to_numpy(y), NB.to_numpy(NB.binary("div", NB.from_numpy(x * m), 0.75)),
                               rtol=TOL["dropout"][0], atol=TOL["dropout"][1])
    _, mask2 = TB.dropout_fwd(TB.from_numpy(x), 0.25, 17)
    np.testing.assert_array_equal(TB.to_numpy(mask2), m)                   # same seed, same mask
    check("dropout_bwd", arr(randn(40, 50)), arr(m), 0.25)


def test_embedding():
    w = randn(11, 20)
    idx = np.array([[1, 5, 1], [10, 0, 5]])
    check("embedding_fwd", arr(w), arr(idx))
    check("embedding_fwd", transposed(w), arr(idx))
    check("embedding_bwd", arr(randn(2, 3, 20)), arr(idx), 11, tol=TOL["embedding_bwd"])
    # ids that are not one flat run in memory: a cropped context idx[:, -3:] and a transpose
    wide = np.array([[3, 1, 5, 1, 7], [10, 2, 0, 5, 4]])

    def crop(be):
        return be.slice(be.from_numpy(wide), (slice(None), slice(2, None)))
    check("embedding_fwd", arr(w), crop)
    check("embedding_bwd", arr(randn(2, 3, 20)), crop, 11, tol=TOL["embedding_bwd"])
    check("embedding_fwd", arr(w), transposed(idx))


def test_cross_entropy():
    N, V = 9, 70
    logits = randn(N, V) * 2
    targets = RNG.integers(0, V, N)
    targets[2] = -100
    check("cross_entropy_fwd", arr(logits), arr(targets), -100)
    losses, lse = NB.cross_entropy_fwd(NB.from_numpy(logits), NB.from_numpy(targets), -100)
    dl = randn(N)
    check("cross_entropy_bwd", arr(dl), arr(logits), arr(targets), arr(NB.to_numpy(lse)), -100)
    check("cross_entropy_bwd", expanded(dl[:1], (N,)), transposed(logits), arr(targets),
          arr(NB.to_numpy(lse)), -100)
    check("cross_entropy_fwd", arr(logits.astype(np.float64)), arr(targets), -100)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T,S", [(17, 17), (5, 21)])
def test_attention(causal, T, S):
    B, H, D = 1, 2, 16
    q, k, v, do = randn(B, H, T, D), randn(B, H, S, D), randn(B, H, S, D), randn(B, H, T, D)
    scale = D ** -0.5
    tol = TOL["attention"]
    check("attention_fwd", arr(q), arr(k), arr(v), causal, scale, tol=tol)
    o, lse = NB.attention_fwd(NB.from_numpy(q), NB.from_numpy(k), NB.from_numpy(v), causal, scale)
    check("attention_bwd", arr(do), arr(q), arr(k), arr(v), arr(NB.to_numpy(o)),
          arr(NB.to_numpy(lse)), causal, scale, tol=tol)
    if not causal and T == S:
        bias = np.where(randn(1, 1, T, S) > 0.5, -np.inf, 0).astype(np.float32)
        bias[..., 0] = 0                                                    # keep a key per row
        bias_fn = expanded(bias, (B, H, T, S))
        check("attention_fwd", arr(q), transposed(k), arr(v), False, scale,
              bias_fn, tol=tol)


def test_attention_dropout_masks_follow_each_backends_dropout():
    """The backends' dropout streams differ (Philox vs NumPy's PCG64), so attention with dropout is
    compared by what each must draw: q = 0 (uniform p = 1/S) and v = I make o reveal the mask
    (o = keep / (S (1 - p))). NumPy's is dropout_fwd's for a (B, H, T, S) array, i.e.
    default_rng(seed).random((B, H, T, S)) >= p; Triton's is its dropout_fwd's (kernels/dropout.py)
    for that shape; both keep about 1 - p."""
    B, H, T, S, p, seed = 2, 2, 24, 32, 0.25, 77
    masks = []
    for be in (NB, TB):
        eye = be.from_numpy(np.broadcast_to(np.eye(S, dtype=np.float32), (B, H, S, S)).copy())
        o, _ = be.attention_fwd(be.from_numpy(np.zeros((B, H, T, S), np.float32)), eye, eye, False, 1.0,
                                None, p, seed)
        o = be.to_numpy(o)
        kept = o != 0
        np.testing.assert_allclose(o[kept], 1.0 / (S * (1 - p)), rtol=1e-6)
        _, spec = be.dropout_fwd(be.from_numpy(np.ones((B, H, T, S), np.float32)), p, seed)
        np.testing.assert_array_equal(kept, be.to_numpy(spec))
        assert abs(kept.mean() - (1 - p)) < 0.03                             # 3072 draws: std 0.008
        masks.append(kept)
    np.testing.assert_array_equal(masks[0], np.random.default_rng(seed).random((B, H, T, S)) >= p)
    assert (masks[0] != masks[1]).any()                                      # different generators


# ----------------------------------------------------------------------------- construction
def test_constructor_needs_cuda_or_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        TritonBackend()


def test_name_and_device():
    b = TritonBackend()
    assert b.name == "triton" and b.device == "cuda"


# ----------------------------------------------------------------------------- GPU, real sizes
@pytest.mark.gpu
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_realistic_sizes_gpu():
    x, y = randn(1024, 3072), randn(1024, 3072)
    check("binary", "add", arr(x), arr(y))
    check("gelu_fwd", arr(x), "tanh")
    check("reduce_sum", arr(x), (0,), False, tol=TOL["gpu_sum"])
    check("softmax_fwd", arr(randn(256, 50304)), tol=TOL["gpu_softmax"])
    check("layernorm_fwd", arr(x), arr(randn(3072)), arr(randn(3072)), 1e-5, tol=TOL["gpu_rows"])
    check("matmul", arr(randn(512, 768)), arr(randn(768, 3072)), tol=TOL["gpu_matmul"])
    logits = randn(512, 50304)
    check("cross_entropy_fwd", arr(logits), arr(RNG.integers(0, 50304, 512)), -100, tol=TOL["gpu_rows"])
    q, k, v = randn(2, 12, 256, 64), randn(2, 12, 256, 64), randn(2, 12, 256, 64)
    check("attention_fwd", arr(q), arr(k), arr(v), True, 0.125, tol=TOL["attention"])
    check("concat", [arr(x), arr(y)], 1)


def test_device_name_says_where_arrays_live():
    name = TB.device_name()
    assert isinstance(name, str) and name
    assert name == (torch.cuda.get_device_name() if _GPU else "cpu (Triton interpreter)")


def test_movement_ops_on_0d_arrays_match_numpy():
    """Every movement op on a 0-d array (a scalar tensor): the Triton backend once passed ()
    to torch as *() (expand() missing 'size'), so a scalar's .sum() backward failed on "cuda"."""
    x = np.float32(2.5)
    check("expand", arr(x), ())
    check("expand", arr(x), (2, 3))                  # a scalar broadcast to a shape
    check("reshape", arr(x), ())
    check("reshape", arr(x), (1, 1))
    check("permute", arr(x), ())
    check("slice", arr(x), ())
    check("contiguous", arr(x))
    check("reduce_sum", arr(x), (), False)
    check("concat", lambda be: [be.reshape(be.from_numpy(x), (1,))] * 2, 0)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_scalar_tensor_backward_on_both_backends(device):
    """0-d tensors through autograd: sum, mean, expand, permute and reshape of a scalar."""
    import minigrad
    x = minigrad.tensor(3.0, requires_grad=True, device=device)
    y = x.sum() * 2.0 + x.mean() + x.expand(2, 3).sum() + x.permute(()).reshape(1).sum()
    y.backward()
    assert x.grad.shape == () and x.grad.item() == pytest.approx(2.0 + 1.0 + 6.0 + 1.0)
