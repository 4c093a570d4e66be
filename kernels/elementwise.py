"""Elementwise kernels: unary / binary / compare / where, fused GELU and SiLU, casts, fill, arange.

What it computes
    unary(op, x)           y = op(x), op in {neg exp log sqrt rsqrt tanh sigmoid relu abs sign
                           sin cos square reciprocal}
    binary(op, a, b)       c = a op b, op in {add sub mul div pow maximum minimum}; a, b same
                           shape, or one of them a Python scalar (a kernel scalar argument)
    compare(op, a, b)      bool c = a op b, op in {eq ne lt le gt ge}
    where(cond, a, b)      cond ? a : b (cond bool; a, b arrays of cond's shape or scalars)
    gelu_fwd / gelu_bwd    exact:  y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
                                   dy/dx = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
                           tanh:   u = sqrt(2/pi) (x + 0.044715 x^3), t = tanh(u), y = 0.5 x (1 + t)
                                   dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3*0.044715 x^2)
    silu_fwd / silu_bwd    y = x s, s = sigmoid(x);  dy/dx = s (1 + x (1 - s))
    cast(x, dtype)         a copy with a dtype change (the copy kernel in copy.py)
    fill(shape, v, ...)    a new tensor filled with v;  arange(start, stop, step, ...)

How work is split
    Same scheme as copy.py: dims are collapsed jointly over all operands (a contiguous tensor
    becomes one flat dim), each program handles BLOCK flat output indices, unravels them into a
    multi-index and dots it with each input's strides, so transposed, sliced and stride-0
    expanded views are read in place. The output is always a fresh contiguous tensor.
    Math runs in float32 for 16-bit inputs, float64 for float64, int64 for int64.

Scalars
    A Python scalar operand is passed as a kernel scalar: floats as the 64-bit pattern of the
    double (an int64 argument, bit-cast back in the kernel, so float64 arrays see the exact
    value), ints as int64. The scalar takes the array's dtype.

Bytes moved
    (inputs + output) * numel * itemsize; e.g. bf16 add of (8192, 3072) moves 151 MB.

Limits
    int64 supports neg/abs/sign/square, add/sub/mul/maximum/minimum and comparisons; bool
    supports comparisons and where. Triton has no tanh/pow that works in the interpreter, so
    tanh uses exp (with a Taylor series near 0) and pow uses exp2(b * log2|a|) with the sign
    fixed for integer exponents (relative error ~1e-6 in float32). maximum/minimum propagate NaN.
    float64 math on the GPU depends on Triton lowering fp64 exp/log (copies always work).

References: Hendrycks & Gimpel 2016 (GELU); the Triton tutorials (vector add, fused dropout).
"""
from __future__ import annotations

import numbers
import struct
from typing import Sequence

import torch
import triton
import triton.language as tl

from .copy import (_cast_value, _flat_index, _offset, _unravel, block_size, cdiv, check_rank,
                          check_tensor, collapse_dims, copy, needs_int64, pad_sizes, pad_strides)

UNARY_OPS = ("neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "sign",
             "sin", "cos", "square", "reciprocal")
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
COMPARE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
INT_UNARY_OPS = ("neg", "abs", "sign", "square")
INT_BINARY_OPS = ("add", "sub", "mul", "maximum", "minimum")

FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
SUPPORTED_DTYPES = FLOAT_DTYPES + (torch.int64, torch.bool)

# constants inlined in the kernels: sqrt(2/pi) = 0.7978845608028654, 1/sqrt(2) = 0.7071067811865476,
# 1/sqrt(2*pi) = 0.3989422804014327


# ----------------------------------------------------------------------------- jit math
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


@triton.jit
def _scalar(value, SCALAR_BITS: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """Decode a scalar argument (float64 bit pattern when SCALAR_BITS, else an int) and splat it
    to a (BLOCK,) tensor so scalar and array operands go through the same math."""
    v = tl.cast(value, tl.int64)
    if SCALAR_BITS:
        v = v.to(tl.float64, bitcast=True)
    return tl.full((BLOCK,), 0, COMPUTE) + v.to(COMPUTE)


# ----------------------------------------------------------------------------- kernels
@triton.jit
def _unary_fwd_kernel(
    out_ptr, x_ptr,
    x_s0, x_s1, x_s2, x_s3, x_s4, x_s5,         # input strides (elements); output is contiguous
    d1, d2, d3, d4, d5, N,                      # collapsed sizes, element count
    OP: tl.constexpr, COMPUTE: tl.constexpr,    # op name; math dtype (fp32 for 16-bit inputs)
    IS_FLOAT: tl.constexpr, RANK: tl.constexpr, INDEX64: tl.constexpr, BLOCK: tl.constexpr,
):
    idx = _flat_index(BLOCK, INDEX64)                                            # (BLOCK,)
    mask = idx < N
    i0, i1, i2, i3, i4, i5 = _unravel(idx, d1, d2, d3, d4, d5, RANK)
    x_off = _offset(i0, i1, i2, i3, i4, i5, x_s0, x_s1, x_s2, x_s3, x_s4, x_s5, RANK)
    x = tl.load(x_ptr + x_off, mask=mask).to(COMPUTE)
    y = _unary_math(x, OP, IS_FLOAT)
    tl.store(out_ptr + idx, _cast_value(y, out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["a_value", "b_value"])
def _binary_fwd_kernel(
    out_ptr, a_ptr, b_ptr,                      # a_ptr / b_ptr unused when that side is a scalar
    a_s0, a_s1, a_s2, a_s3, a_s4, a_s5,
    b_s0, b_s1, b_s2, b_s3, b_s4, b_s5,
    d1, d2, d3, d4, d5, N,
    a_value, b_value,                           # scalar operands (see _scalar)
    OP: tl.constexpr, COMPUTE: tl.constexpr, IS_FLOAT: tl.constexpr,
    A_SCALAR: tl.constexpr, B_SCALAR: tl.constexpr, SCALAR_BITS: tl.constexpr,
    RANK: tl.constexpr, INDEX64: tl.constexpr, BLOCK: tl.constexpr,
):
    idx = _flat_index(BLOCK, INDEX64)                                            # (BLOCK,)
    mask = idx < N
    i0, i1, i2, i3, i4, i5 = _unravel(idx, d1, d2, d3, d4, d5, RANK)
    if A_SCALAR:
        a = _scalar(a_value, SCALAR_BITS, COMPUTE, BLOCK)
    else:
        a_off = _offset(i0, i1, i2, i3, i4, i5, a_s0, a_s1, a_s2, a_s3, a_s4, a_s5, RANK)
        a = tl.load(a_ptr + a_off, mask=mask).to(COMPUTE)
    if B_SCALAR:
        b = _scalar(b_value, SCALAR_BITS, COMPUTE, BLOCK)
    else:
        b_off = _offset(i0, i1, i2, i3, i4, i5, b_s0, b_s1, b_s2, b_s3, b_s4, b_s5, RANK)
        b = tl.load(b_ptr + b_off, mask=mask).to(COMPUTE)
    c = _binary_math(a, b, OP, IS_FLOAT)
    tl.store(out_ptr + idx, _cast_value(c, out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["a_value", "b_value"])
def _where_fwd_kernel(
    out_ptr, cond_ptr, a_ptr, b_ptr,
    c_s0, c_s1, c_s2, c_s3, c_s4, c_s5,
    a_s0, a_s1, a_s2, a_s3, a_s4, a_s5,
    b_s0, b_s1, b_s2, b_s3, b_s4, b_s5,
    d1, d2, d3, d4, d5, N,
    a_value, b_value,
    COMPUTE: tl.constexpr, A_SCALAR: tl.constexpr, B_SCALAR: tl.constexpr,
    SCALAR_BITS: tl.constexpr, RANK: tl.constexpr, INDEX64: tl.constexpr, BLOCK: tl.constexpr,
):
    idx = _flat_index(BLOCK, INDEX64)                                            # (BLOCK,)
    mask = idx < N
    i0, i1, i2, i3, i4, i5 = _unravel(idx, d1, d2, d3, d4, d5, RANK)
    c_off = _offset(i0, i1, i2, i3, i4, i5, c_s0, c_s1, c_s2, c_s3, c_s4, c_s5, RANK)
    cond = tl.load(cond_ptr + c_off, mask=mask) != 0
    if A_SCALAR:
        a = _scalar(a_value, SCALAR_BITS, COMPUTE, BLOCK)
    else:
        a_off = _offset(i0, i1, i2, i3, i4, i5, a_s0, a_s1, a_s2, a_s3, a_s4, a_s5, RANK)
        a = tl.load(a_ptr + a_off, mask=mask & cond).to(COMPUTE)
    if B_SCALAR:
        b = _scalar(b_value, SCALAR_BITS, COMPUTE, BLOCK)
    else:
        b_off = _offset(i0, i1, i2, i3, i4, i5, b_s0, b_s1, b_s2, b_s3, b_s4, b_s5, RANK)
        b = tl.load(b_ptr + b_off, mask=mask & (~cond)).to(COMPUTE)
    y = tl.where(cond, a, b)
    tl.store(out_ptr + idx, _cast_value(y, out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["value"])
def _fill_fwd_kernel(out_ptr, N, value, SCALAR_BITS: tl.constexpr, COMPUTE: tl.constexpr,
                     INDEX64: tl.constexpr, BLOCK: tl.constexpr):
    idx = _flat_index(BLOCK, INDEX64)
    y = _scalar(value, SCALAR_BITS, COMPUTE, BLOCK)
    tl.store(out_ptr + idx, _cast_value(y, out_ptr.dtype.element_ty), mask=idx < N)


@triton.jit(do_not_specialize=["start", "step"])
def _arange_fwd_kernel(out_ptr, N, start, step, INDEX64: tl.constexpr, BLOCK: tl.constexpr):
    idx = _flat_index(BLOCK, INDEX64)
    y = tl.cast(start, tl.int64) + idx.to(tl.int64) * tl.cast(step, tl.int64)   # exact in int64
    tl.store(out_ptr + idx, _cast_value(y, out_ptr.dtype.element_ty), mask=idx < N)


# ----------------------------------------------------------------------------- launch helpers
def _compute_dtype(dtype: torch.dtype):
    """The dtype math happens in: fp32 for 16-bit floats, else the storage dtype."""
    return {torch.float32: tl.float32, torch.bfloat16: tl.float32, torch.float16: tl.float32,
            torch.float64: tl.float64, torch.int64: tl.int64, torch.bool: tl.int1}[dtype]


def _scalar_arg(value, dtype: torch.dtype) -> int:
    """Encode a Python scalar for a kernel: float dtypes -> bits of the double, else an int."""
    if isinstance(value, torch.Tensor):
        raise TypeError("scalar operand must be a Python number, got a tensor")
    if dtype.is_floating_point:
        return struct.unpack("<q", struct.pack("<d", float(value)))[0]
    return int(value)


def _check_dtype(x: torch.Tensor, allowed: Sequence[torch.dtype], what: str) -> None:
    if x.dtype not in allowed:
        raise TypeError(f"{what}: dtype {x.dtype} is not supported (expected one of "
                        f"{[str(d) for d in allowed]})")


def _launch_flat(kernel, n: int, out: torch.Tensor, tensors: list, args_after: list, **meta):
    """Collapse dims over [out] + tensors (None = scalar: stride-0 placeholder), launch, return out."""
    if n == 0:
        return out
    shape = tuple(out.shape)
    strides = [out.stride()] + [t.stride() if t is not None else (0,) * len(shape) for t in tensors]
    sizes, collapsed = collapse_dims(shape, strides)
    check_rank(sizes, kernel.__name__ if hasattr(kernel, "__name__") else "elementwise")
    stride_args = []
    for st in collapsed[1:]:
        stride_args += pad_strides(st)
    ptrs = [t if t is not None else out for t in tensors]
    block = block_size(out.dtype if out.dtype.itemsize < 8 else None)
    grid = (cdiv(n, block),)
    kernel[grid](out, *ptrs, *stride_args, *pad_sizes(sizes), n, *args_after,
                 RANK=len(sizes), INDEX64=needs_int64(sizes, collapsed), BLOCK=block,
                 num_warps=4, **meta)
    return out


def _empty_like_shape(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(tuple(x.shape), dtype=dtype, device=x.device)


# ----------------------------------------------------------------------------- launchers
def unary(op: str, x: torch.Tensor) -> torch.Tensor:
    """y = op(x) for op in UNARY_OPS (plus "gelu", "gelu_tanh", "silu"); contiguous, x's dtype."""
    check_tensor(x, f"unary {op}")
    if op not in UNARY_OPS + ("gelu", "gelu_tanh", "silu"):
        raise ValueError(f"unary: unknown op {op!r}, expected one of {UNARY_OPS}")
    if x.dtype == torch.int64:
        if op not in INT_UNARY_OPS:
            raise TypeError(f"unary {op}: int64 supports only {INT_UNARY_OPS}, cast to float first")
    else:
        _check_dtype(x, FLOAT_DTYPES, f"unary {op}")
    out = _empty_like_shape(x, x.dtype)
    return _launch_flat(_unary_fwd_kernel, x.numel(), out, [x], [], OP=op,
                        COMPUTE=_compute_dtype(x.dtype), IS_FLOAT=x.dtype.is_floating_point)


def _binary_operands(what: str, a, b):
    """Validate (array, array) or (array, scalar) operands; return (ref tensor, a_t, b_t)."""
    a_t = a if isinstance(a, torch.Tensor) else None
    b_t = b if isinstance(b, torch.Tensor) else None
    if a_t is None and b_t is None:
        raise TypeError(f"{what}: at least one operand must be a tensor, got two scalars")
    if a_t is not None and b_t is not None:
        if tuple(a_t.shape) != tuple(b_t.shape):
            raise ValueError(f"{what}: shape mismatch {tuple(a_t.shape)} vs {tuple(b_t.shape)} "
                             "(broadcast with an explicit expand first)")
        if a_t.dtype != b_t.dtype:
            raise TypeError(f"{what}: dtype mismatch {a_t.dtype} vs {b_t.dtype}")
        if a_t.device != b_t.device:
            raise ValueError(f"{what}: device mismatch {a_t.device} vs {b_t.device}")
    for s in (a, b):
        if not isinstance(s, (torch.Tensor, numbers.Number)):
            raise TypeError(f"{what}: operands must be tensors or Python scalars, got {type(s).__name__}")
    return (a_t if a_t is not None else b_t), a_t, b_t


def _launch_binary(op: str, a, b, out_dtype: torch.dtype | None, what: str) -> torch.Tensor:
    ref, a_t, b_t = _binary_operands(what, a, b)
    dtype = ref.dtype
    out = _empty_like_shape(ref, out_dtype or dtype)
    a_val = _scalar_arg(a, dtype) if a_t is None else 0
    b_val = _scalar_arg(b, dtype) if b_t is None else 0
    return _launch_flat(_binary_fwd_kernel, ref.numel(), out, [a_t, b_t], [a_val, b_val], OP=op,
                        COMPUTE=_compute_dtype(dtype), IS_FLOAT=dtype.is_floating_point,
                        A_SCALAR=a_t is None, B_SCALAR=b_t is None,
                        SCALAR_BITS=dtype.is_floating_point)


def binary(op: str, a, b) -> torch.Tensor:
    """c = a op b, op in BINARY_OPS; same-shape tensors or one Python scalar (takes the array's dtype)."""
    if op not in BINARY_OPS:
        raise ValueError(f"binary: unknown op {op!r}, expected one of {BINARY_OPS}")
    ref, _, _ = _binary_operands(f"binary {op}", a, b)
    if ref.dtype == torch.int64:
        if op not in INT_BINARY_OPS:
            raise TypeError(f"binary {op}: int64 supports only {INT_BINARY_OPS}, cast to float first")
    else:
        _check_dtype(ref, FLOAT_DTYPES, f"binary {op}")
    return _launch_binary(op, a, b, None, f"binary {op}")


def compare(op: str, a, b) -> torch.Tensor:
    """bool c = a op b, op in COMPARE_OPS; same-shape tensors or one Python scalar."""
    if op not in COMPARE_OPS:
        raise ValueError(f"compare: unknown op {op!r}, expected one of {COMPARE_OPS}")
    ref, _, _ = _binary_operands(f"compare {op}", a, b)
    _check_dtype(ref, SUPPORTED_DTYPES, f"compare {op}")
    return _launch_binary(op, a, b, torch.bool, f"compare {op}")


def where(cond: torch.Tensor, a, b) -> torch.Tensor:
    """cond ? a : b. a, b: tensors of cond's shape (same dtype) or Python scalars.

    With two scalars the result is float32, or int64 when `a` is an int (not bool or float).
    """
    check_tensor(cond, "where cond")
    if cond.dtype != torch.bool:
        raise TypeError(f"where: cond must be bool, got {cond.dtype}")
    tensors = [t for t in (a, b) if isinstance(t, torch.Tensor)]
    for t in tensors:
        if tuple(t.shape) != tuple(cond.shape):
            raise ValueError(f"where: shape mismatch, cond {tuple(cond.shape)} vs {tuple(t.shape)}")
        if t.device != cond.device:
            raise ValueError(f"where: device mismatch, cond on {cond.device} vs {t.device}")
    if len(tensors) == 2 and tensors[0].dtype != tensors[1].dtype:
        raise TypeError(f"where: dtype mismatch {tensors[0].dtype} vs {tensors[1].dtype}")
    if tensors:
        dtype = tensors[0].dtype
        _check_dtype(tensors[0], SUPPORTED_DTYPES, "where")
    else:
        dtype = torch.int64 if (isinstance(a, int) and not isinstance(a, bool)) else torch.float32
    a_t = a if isinstance(a, torch.Tensor) else None
    b_t = b if isinstance(b, torch.Tensor) else None
    out = _empty_like_shape(cond, dtype)
    a_val = _scalar_arg(a, dtype) if a_t is None else 0
    b_val = _scalar_arg(b, dtype) if b_t is None else 0
    return _launch_flat(_where_fwd_kernel, cond.numel(), out, [cond, a_t, b_t], [a_val, b_val],
                        COMPUTE=_compute_dtype(dtype), A_SCALAR=a_t is None, B_SCALAR=b_t is None,
                        SCALAR_BITS=dtype.is_floating_point)


def _check_approximate(approximate: str) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return "gelu" if approximate == "none" else "gelu_tanh"


def gelu_fwd(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU, exact (erf) or tanh approximation. Nothing needs saving beyond x."""
    return unary(_check_approximate(approximate), x)


def gelu_bwd(dy: torch.Tensor, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """dx = dy * gelu'(x), one pass over dy and x."""
    op = _check_approximate(approximate) + "_bwd"
    ref, _, _ = _binary_operands("gelu_bwd", dy, x)
    _check_dtype(ref, FLOAT_DTYPES, "gelu_bwd")
    return _launch_binary(op, dy, x, None, "gelu_bwd")


def silu_fwd(x: torch.Tensor) -> torch.Tensor:
    """y = x * sigmoid(x)."""
    return unary("silu", x)


def silu_bwd(dy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x)."""
    ref, _, _ = _binary_operands("silu_bwd", dy, x)
    _check_dtype(ref, FLOAT_DTYPES, "silu_bwd")
    return _launch_binary("silu_bwd", dy, x, None, "silu_bwd")


def cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A new contiguous tensor with x's values converted to `dtype` (float -> int truncates,
    anything -> bool is != 0)."""
    check_tensor(x, "cast")
    if dtype not in SUPPORTED_DTYPES or x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"cast: {x.dtype} -> {dtype} not supported (dtypes: {SUPPORTED_DTYPES})")
    return copy(x, dtype)


def fill(shape: Sequence[int], value, dtype: torch.dtype, device) -> torch.Tensor:
    """A new contiguous tensor of `shape` filled with `value` (cast to dtype)."""
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"fill: dtype {dtype} not supported")
    out = torch.empty(tuple(shape), dtype=dtype, device=device)
    return fill_(out, value)


def fill_(out: torch.Tensor, value) -> torch.Tensor:
    """Fill a contiguous tensor in place with `value`. Returns out."""
    check_tensor(out, "fill_")
    if not out.is_contiguous():
        raise ValueError("fill_: out must be contiguous")
    n = out.numel()
    if n == 0:
        return out
    dtype = out.dtype
    compute = tl.float64 if dtype.is_floating_point else (tl.int64 if dtype != torch.bool else tl.int64)
    val = _scalar_arg(value, dtype) if dtype != torch.bool else int(bool(value))
    block = block_size(dtype)
    _fill_fwd_kernel[(cdiv(n, block),)](
        out, n, val, SCALAR_BITS=dtype.is_floating_point, COMPUTE=compute,
        INDEX64=n > 2 ** 31 - 1, BLOCK=block, num_warps=4)
    return out


def arange(start: int, stop: int, step: int, dtype: torch.dtype, device) -> torch.Tensor:
    """1-d tensor start, start+step, ... < stop (integer arguments, computed exactly in int64)."""
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"arange: dtype {dtype} not supported")
    n = max(0, -((start - stop) // step))          # ceil((stop - start) / step)
    out = torch.empty((n,), dtype=dtype, device=device)
    if n == 0:
        return out
    block = block_size(dtype)
    _arange_fwd_kernel[(cdiv(n, block),)](out, n, int(start), int(step),
                                                 INDEX64=n > 2 ** 31 - 1, BLOCK=block, num_warps=4)
    return out
