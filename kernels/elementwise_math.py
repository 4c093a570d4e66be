"""The elementwise formulas as inlined @triton.jit helpers: `_unary_math(x, OP)` and
`_binary_math(a, b, OP)` (plus `_tanh`, `_sigmoid`, `_pow`, which the interpreter lacks or gets
wrong), shared by the elementwise kernels (kernels/elementwise.py, whose docstring has the math)
and the matmul epilogue (kernels/matmul_tiles.py, an activation's derivative after a matmul).

Each takes values already in the compute dtype (float32 for 16-bit inputs, float64, int64 or bool)
and returns the result in it; the caller loads, stores and casts. Nothing here launches anything.
"""
from __future__ import annotations

import triton
import triton.language as tl

# constants inlined in the kernels: sqrt(2/pi) = 0.7978845608028654, 1/sqrt(2) = 0.7071067811865476,
# 1/sqrt(2*pi) = 0.3989422804014327


@triton.jit
def _tanh(x):
    """tanh without libdevice (the interpreter has none): sign(x) (1 - e) / (1 + e), e = exp(-2|x|),
    and an odd Taylor series for |x| < 0.1 where 1 - e would cancel."""
    ax = tl.abs(x)
    e = tl.exp(-2.0 * ax)
    big = (1.0 - e) / (1.0 + e)
    big = tl.where(x < 0, -big, big)
    x2 = x * x
    small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))))
    return tl.where(ax < 0.1, small, big)


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _pow(a, b):
    """a ** b with numpy semantics for real results: negative bases need integer exponents."""
    mag = tl.exp2(b * tl.log2(tl.abs(a)))
    b_is_int = tl.floor(b) == b
    b_is_odd = b_is_int & ((b - 2.0 * tl.floor(0.5 * b)) != 0)
    signed = tl.where((a < 0) & b_is_odd, -mag, mag)
    out = tl.where((a < 0) & (~b_is_int), float("nan"), signed)
    return tl.where(b == 0, 1.0, out)          # x ** 0 == 1, even for 0 and nan


@triton.jit
def _unary_math(x, OP: tl.constexpr, IS_FLOAT: tl.constexpr):
    if OP == "neg":
        y = -x
    elif OP == "exp":
        y = tl.exp(x)
    elif OP == "log":
        y = tl.log(x)
    elif OP == "sqrt":
        y = tl.sqrt(x)
    elif OP == "rsqrt":
        y = 1.0 / tl.sqrt(x)
    elif OP == "tanh":
        y = _tanh(x)
    elif OP == "sigmoid":
        y = _sigmoid(x)
    elif OP == "relu":
        y = tl.where(x < 0, 0, x)            # keeps nan (like numpy's maximum(x, 0))
    elif OP == "abs":
        y = tl.abs(x)
    elif OP == "sign":
        if IS_FLOAT:
            y = tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, x))     # keeps 0 and nan
        else:
            y = (x > 0).to(x.dtype) - (x < 0).to(x.dtype)
    elif OP == "sin":
        y = tl.sin(x)
    elif OP == "cos":
        y = tl.cos(x)
    elif OP == "square":
        y = x * x
    elif OP == "reciprocal":
        y = 1.0 / x
    elif OP == "gelu":
        y = 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))
    elif OP == "gelu_tanh":
        u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        y = 0.5 * x * (1.0 + _tanh(u))
    elif OP == "silu":
        y = x * _sigmoid(x)
    else:
        tl.static_assert(False, "unknown unary op")
    return y


@triton.jit
def _binary_math(a, b, OP: tl.constexpr, IS_FLOAT: tl.constexpr):
    if OP == "add":
        c = a + b
    elif OP == "sub":
        c = a - b
    elif OP == "mul":
        c = a * b
    elif OP == "div":
        c = a / b
    elif OP == "pow":
        c = _pow(a, b)
    elif OP == "maximum":
        if IS_FLOAT:
            c = tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)
        else:
            c = tl.maximum(a, b)
    elif OP == "minimum":
        if IS_FLOAT:
            c = tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)
        else:
            c = tl.minimum(a, b)
    elif OP == "eq":
        c = a == b
    elif OP == "ne":
        c = a != b
    elif OP == "lt":
        c = a < b
    elif OP == "le":
        c = a <= b
    elif OP == "gt":
        c = a > b
    elif OP == "ge":
        c = a >= b
    elif OP == "gelu_bwd":                   # a = dy, b = x
        cdf = 0.5 * (1.0 + tl.erf(b * 0.7071067811865476))
        pdf = tl.exp(-0.5 * b * b) * 0.3989422804014327
        c = a * (cdf + b * pdf)
    elif OP == "gelu_tanh_bwd":
        x2 = b * b
        t = _tanh(0.7978845608028654 * (b + 0.044715 * x2 * b))
        du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x2)
        c = a * (0.5 * (1.0 + t) + 0.5 * b * (1.0 - t * t) * du)
    elif OP == "silu_bwd":
        s = _sigmoid(b)
        c = a * s * (1.0 + b * (1.0 - s))
    else:
        tl.static_assert(False, "unknown binary op")
    return c
