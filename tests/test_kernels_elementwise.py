"""kernels/elementwise.py and kernels/copy.py against torch (the oracle) in the interpreter.

Shapes cover one program and many (the interpreter block is 128 elements), tails that are not
a multiple of the block, 0-d and size-1 tensors, transposed / sliced views and stride-0
expanded inputs. Realistic sizes run only on a GPU (`-m gpu`).
"""

import kernel_testing  # noqa: E402,F401  (interpreter only when there is no CUDA; before kernels)

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from kernel_testing import DEVICE  # noqa: E402
from minigrad.kernels import copy as copy_mod  # noqa: E402
from minigrad.kernels import elementwise as ew  # noqa: E402

# per-dtype tolerances (rtol, atol) against torch computing in float32/float64
TOL = {
    torch.float32: (1e-5, 1e-6),
    torch.float64: (1e-12, 1e-12),
    torch.bfloat16: (2e-2, 2e-2),
    torch.float16: (2e-3, 2e-3),
}
FLOATS = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # interpreter log(0) etc.

UNARY_REF = {
    "neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "abs": torch.abs,
    "sign": torch.sign, "sin": torch.sin, "cos": torch.cos, "square": torch.square,
    "reciprocal": torch.reciprocal,
}
BINARY_REF = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
              "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum}
COMPARE_REF = {"eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
               "ge": torch.ge}


def _views(dtype=torch.float32, seed=0):
    """(name, tensor) pairs that hit the strided paths; all of logical shape (5, 6, 7) or similar."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(7, 6, 5, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    return [
        ("contiguous", base.permute(2, 1, 0).contiguous()),        # 210 elements: 2 blocks + tail
        ("transposed", base.permute(2, 1, 0)),
        ("sliced", torch.randn(5, 12, 9, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)[:, ::2, 1:8]),
        ("expanded", base[:1, :, :1].permute(2, 1, 0).expand(5, 6, 7)),
    ]


def _close(out, ref, dtype):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out.double(), ref.double(), rtol=rtol, atol=atol, equal_nan=True)


def _domain(op, x):
    return x.abs() + 0.1 if op in ("log", "sqrt", "rsqrt", "reciprocal") else x


@pytest.mark.parametrize("op", ew.UNARY_OPS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_matches_torch(op, dtype):
    for name, x in _views(dtype):
        x = _domain(op, x)
        out = ew.unary(op, x)
        assert out.is_contiguous() and out.dtype == dtype and out.shape == x.shape, name
        _close(out, UNARY_REF[op](x.double()), dtype)


def test_unary_edge_values():
    x = torch.tensor([0.0, -0.0, 1e-6, -1e-3, 0.05, 0.2, -3.0, 20.0, -50.0], device=DEVICE)
    _close(ew.unary("tanh", x), torch.tanh(x.double()), torch.float32)
    _close(ew.unary("sigmoid", x), torch.sigmoid(x.double()), torch.float32)
    assert torch.equal(ew.unary("relu", x), torch.relu(x))
    assert torch.equal(ew.unary("sign", x), torch.sign(x))
    s = ew.unary("exp", torch.tensor(1.5, device=DEVICE))                           # 0-d
    assert s.shape == () and abs(float(s) - 4.4816890703) < 1e-5


@pytest.mark.parametrize("op", ew.INT_UNARY_OPS)
def test_unary_int64(op):
    x = torch.randint(-50, 50, (9, 31), device=DEVICE)
    assert torch.equal(ew.unary(op, x.t()), UNARY_REF[op](x.t()))


@pytest.mark.parametrize("op", ew.BINARY_OPS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_binary_matches_torch(op, dtype):
    views = _views(dtype)
    others = _views(dtype, seed=1)
    for (name, a), (_, b) in zip(views, reversed(others)):
        if op == "pow":
            a = a.abs() + 0.5
        out = ew.binary(op, a, b)
        assert out.is_contiguous() and out.dtype == dtype, name
        _close(out, BINARY_REF[op](a.double(), b.double()), dtype)
        # scalar on either side: the scalar takes the array's dtype
        _close(ew.binary(op, a, 1.75), BINARY_REF[op](a.double(), torch.tensor(1.75, dtype=torch.float64)), dtype)
        if op != "pow":
            _close(ew.binary(op, -2.5, b), BINARY_REF[op](torch.tensor(-2.5, dtype=torch.float64), b.double()), dtype)


def test_pow_special_cases():
    a = torch.tensor([-2.0, -2.0, -2.0, 0.0, 0.0, 0.0, 3.0, 4.0], device=DEVICE)
    b = torch.tensor([2.0, 3.0, 0.5, 0.0, 2.0, -1.0, 0.0, -0.5], device=DEVICE)
    _close(ew.binary("pow", a, b), torch.pow(a.double(), b.double()), torch.float32)
    _close(ew.binary("pow", 2.0, b), torch.pow(2.0, b.double()), torch.float32)


def test_float64_scalar_is_exact():
    x = torch.ones(3, dtype=torch.float64, device=DEVICE)
    assert torch.equal(ew.binary("mul", x, 0.1), x * 0.1)       # 0.1 was not rounded to float32


@pytest.mark.parametrize("op", ew.INT_BINARY_OPS)
def test_binary_int64(op):
    a = torch.randint(-2 ** 40, 2 ** 40, (6, 29), device=DEVICE)
    b = torch.randint(-2 ** 40, 2 ** 40, (29, 6), device=DEVICE).t()
    assert torch.equal(ew.binary(op, a, b), BINARY_REF[op](a, b))
    assert torch.equal(ew.binary(op, a, 3), BINARY_REF[op](a, torch.tensor(3)))
    assert torch.equal(ew.binary(op, 2 ** 35, a), BINARY_REF[op](torch.tensor(2 ** 35), a))


def test_maximum_propagates_nan():
    a = torch.tensor([1.0, float("nan"), 3.0], device=DEVICE)
    b = torch.tensor([float("nan"), 2.0, 1.0], device=DEVICE)
    torch.testing.assert_close(ew.binary("maximum", a, b), torch.maximum(a, b), equal_nan=True)
    torch.testing.assert_close(ew.binary("minimum", a, b), torch.minimum(a, b), equal_nan=True)


@pytest.mark.parametrize("op", ew.COMPARE_OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_compare(op, dtype):
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-2, 3, (5, 6, 7), generator=g).to(dtype).to(DEVICE)
    b = torch.randint(-2, 3, (7, 6, 5), generator=g).to(dtype).to(DEVICE).permute(2, 1, 0)
    out = ew.compare(op, a, b)
    assert out.dtype == torch.bool
    assert torch.equal(out, COMPARE_REF[op](a, b))
    e = a[:, :1].expand(5, 6, 7)
    assert torch.equal(ew.compare(op, e, b), COMPARE_REF[op](e, b))
    scalar = True if dtype == torch.bool else 1
    assert torch.equal(ew.compare(op, a, scalar), COMPARE_REF[op](a, torch.tensor(scalar).to(dtype)))
    assert torch.equal(ew.compare(op, scalar, a), COMPARE_REF[op](torch.tensor(scalar).to(dtype), a))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool])
def test_where(dtype):
    g = torch.Generator().manual_seed(0)
    cond = torch.rand(7, 6, 5, generator=g).to(DEVICE).permute(2, 1, 0) > 0.5
    a = torch.randn(5, 6, 7, generator=g).mul(5).to(dtype).to(DEVICE)
    b = torch.randn(5, 1, 7, generator=g).mul(5).to(dtype).to(DEVICE).expand(5, 6, 7)
    assert torch.equal(ew.where(cond, a, b), torch.where(cond, a, b))
    if dtype != torch.bool:
        s = 2 if dtype == torch.int64 else -1.5
        assert torch.equal(ew.where(cond, a, s), torch.where(cond, a, torch.tensor(s).to(dtype)))
        assert torch.equal(ew.where(cond, s, b), torch.where(cond, torch.tensor(s).to(dtype), b))


def test_where_two_scalars_dtype():
    cond = torch.tensor([True, False, True], device=DEVICE)
    out = ew.where(cond, 1.0, float("-inf"))
    assert out.dtype == torch.float32 and torch.equal(out, torch.tensor([1.0, float("-inf"), 1.0], device=DEVICE))
    out = ew.where(cond, 3, 4)
    assert out.dtype == torch.int64 and torch.equal(out, torch.tensor([3, 4, 3], device=DEVICE))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_gelu_fwd_bwd(approximate, dtype):
    for name, x in _views(dtype):
        xd = x.double().requires_grad_(True)
        y = F.gelu(xd, approximate=approximate)
        dy = torch.randn(x.shape, dtype=torch.float64).to(DEVICE)
        (dx_ref,) = torch.autograd.grad(y, xd, dy)
        _close(ew.gelu_fwd(x, approximate), y.detach(), dtype)
        _close(ew.gelu_bwd(dy.to(dtype), x, approximate), dx_ref, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_silu_fwd_bwd(dtype):
    for name, x in _views(dtype):
        xd = x.double().requires_grad_(True)
        y = F.silu(xd)
        dy = torch.randn(x.shape, dtype=torch.float64).to(DEVICE)
        (dx_ref,) = torch.autograd.grad(y, xd, dy)
        _close(ew.silu_fwd(x), y.detach(), dtype)
        _close(ew.silu_bwd(dy.to(dtype).permute(2, 1, 0).contiguous().permute(2, 1, 0), x), dx_ref, dtype)


ALL_DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int64, torch.bool]


@pytest.mark.parametrize("src", ALL_DTYPES)
@pytest.mark.parametrize("dst", ALL_DTYPES)
def test_cast_all_pairs(src, dst):
    x = (torch.randn(5, 6, 7, dtype=torch.float64) * 50).to(src).to(DEVICE).permute(2, 0, 1)
    out = ew.cast(x, dst)
    assert out.dtype == dst and out.is_contiguous() and out.shape == x.shape
    ref = x.to(dst) if src != torch.float64 or dst != torch.bfloat16 else x.float().to(dst)
    assert torch.equal(out, ref)                     # bit-exact, rounding to nearest even


@pytest.mark.parametrize("name_x", _views(), ids=lambda v: v[0])
def test_copy_and_copy_into(name_x):
    name, x = name_x
    out = copy_mod.copy(x)
    assert out.is_contiguous() and torch.equal(out, x)
    dst = torch.zeros(7, 14, 9, device=DEVICE)
    view = dst.permute(2, 0, 1)[1:6, :6, 2:9:1]
    copy_mod.copy_into(view[:, :, :7], x)
    ref = torch.zeros(7, 14, 9, device=DEVICE)
    ref.permute(2, 0, 1)[1:6, :6, 2:9] = x
    assert torch.equal(dst, ref)


def test_copy_high_rank_and_errors():
    x = torch.randn(2, 3, 2, 3, 2, 3, device=DEVICE).permute(5, 3, 1, 4, 2, 0)   # 6 unmergeable dims
    assert torch.equal(copy_mod.copy(x), x.contiguous())
    with pytest.raises(ValueError, match="shape mismatch"):
        copy_mod.copy_into(torch.empty(2, 3, device=DEVICE), torch.empty(3, 2, device=DEVICE))
    with pytest.raises(ValueError, match="shape mismatch"):
        ew.binary("add", torch.ones(2, 3, device=DEVICE), torch.ones(3, device=DEVICE))
    with pytest.raises(TypeError, match="int64"):
        ew.unary("exp", torch.ones(2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(TypeError, match="dtype mismatch"):
        ew.binary("add", torch.ones(2, device=DEVICE), torch.ones(2, dtype=torch.float64, device=DEVICE))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_fill_and_arange(dtype):
    value = {torch.bool: True, torch.int64: -(2 ** 40)}.get(dtype, 0.1)
    out = ew.fill((3, 50, 3), value, dtype, DEVICE)
    assert torch.equal(out, torch.full((3, 50, 3), value, dtype=dtype, device=DEVICE))
    assert ew.fill((), 2, dtype, DEVICE).shape == ()
    assert ew.fill((0, 4), 2, dtype, DEVICE).shape == (0, 4)
    if dtype != torch.bool:
        for start, stop, step in [(0, 300, 1), (3, 20, 4), (5, -7, -3), (4, 4, 1)]:
            out = ew.arange(start, stop, step, dtype, DEVICE)
            assert torch.equal(out, torch.arange(start, stop, step, device=DEVICE).to(dtype))


@pytest.mark.gpu
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_realistic_sizes_gpu(dtype):
    x = torch.randn(8192, 3072, device="cuda", dtype=dtype)
    y = torch.randn(8192, 3072, device="cuda", dtype=dtype)
    _close(ew.binary("add", x, y), x.double() + y.double(), dtype)
    _close(ew.binary("mul", x.t(), y.t()), x.t().double() * y.t().double(), dtype)
    _close(ew.gelu_fwd(x, "tanh"), F.gelu(x.double(), approximate="tanh"), dtype)
    b = torch.randn(3072, device="cuda", dtype=dtype)
    _close(ew.binary("add", x, b.expand(8192, 3072)), x.double() + b.double(), dtype)
    assert torch.equal(ew.cast(x, torch.float32), x.float())
