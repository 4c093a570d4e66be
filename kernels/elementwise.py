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
    Math runs in float32 for 16-bit inputs, float64 for float64, int64 for int64; the formulas
    are @triton.jit helpers in kernels/elementwise_math.py (the matmul epilogue reuses them).

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

from .copy import collapse_dims, copy
from .elementwise_math import _binary_math, _unary_math
from .helpers import (FLOAT_DTYPES, _cast_value, _flat_index, _offset, _unravel, block_size, cdiv,
                      check_rank, check_tensor, needs_int64, pad_sizes, pad_strides)

UNARY_OPS = ("neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "sign",
             "sin", "cos", "square", "reciprocal")
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
COMPARE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
INT_UNARY_OPS = ("neg", "abs", "sign", "square")
INT_BINARY_OPS = ("add", "sub", "mul", "maximum", "minimum")

SUPPORTED_DTYPES = FLOAT_DTYPES + (torch.int64, torch.bool)


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


def _check_operands(what: str, a, b):
    """(array, array) or (array, scalar) operands of one shape, dtype and device; returns
    (reference tensor, a or None, b or None), None marking a Python scalar."""
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


def _check_int_or_float(x: torch.Tensor, op: str, int_ops: Sequence[str], what: str) -> None:
    """int64 takes only `int_ops`; anything else must be a float dtype."""
    if x.dtype == torch.int64:
        if op not in int_ops:
            raise TypeError(f"{what}: int64 supports only {tuple(int_ops)}, cast to float first")
    else:
        _check_dtype(x, FLOAT_DTYPES, what)


def _check_where(cond: torch.Tensor, a, b) -> torch.dtype:
    """cond bool; a, b tensors of cond's shape, device and one dtype, or scalars. -> the output dtype
    (with two scalars float32, or int64 when `a` is an int, not bool or float)."""
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
    if not tensors:
        return torch.int64 if (isinstance(a, int) and not isinstance(a, bool)) else torch.float32
    _check_dtype(tensors[0], SUPPORTED_DTYPES, "where")
    return tensors[0].dtype


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


def _launch_binary(op: str, out: torch.Tensor, a, b, dtype: torch.dtype) -> torch.Tensor:
    """out = a op b; a Python scalar operand takes `dtype` (the tensor operand's)."""
    a_t = a if isinstance(a, torch.Tensor) else None
    b_t = b if isinstance(b, torch.Tensor) else None
    a_val = _scalar_arg(a, dtype) if a_t is None else 0
    b_val = _scalar_arg(b, dtype) if b_t is None else 0
    return _launch_flat(_binary_fwd_kernel, out.numel(), out, [a_t, b_t], [a_val, b_val], OP=op,
                        COMPUTE=_compute_dtype(dtype), IS_FLOAT=dtype.is_floating_point,
                        A_SCALAR=a_t is None, B_SCALAR=b_t is None,
                        SCALAR_BITS=dtype.is_floating_point)


def _empty_like_shape(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(tuple(x.shape), dtype=dtype, device=x.device)


# ----------------------------------------------------------------------------- launchers
def unary(op: str, x: torch.Tensor) -> torch.Tensor:
    """y = op(x) for op in UNARY_OPS (plus "gelu", "gelu_tanh", "silu"); contiguous, x's dtype."""
    check_tensor(x, f"unary {op}")
    if op not in UNARY_OPS + ("gelu", "gelu_tanh", "silu"):
        raise ValueError(f"unary: unknown op {op!r}, expected one of {UNARY_OPS}")
    _check_int_or_float(x, op, INT_UNARY_OPS, f"unary {op}")
    out = _empty_like_shape(x, x.dtype)
    return _launch_flat(_unary_fwd_kernel, x.numel(), out, [x], [], OP=op,
                        COMPUTE=_compute_dtype(x.dtype), IS_FLOAT=x.dtype.is_floating_point)


def binary(op: str, a, b) -> torch.Tensor:
    """c = a op b, op in BINARY_OPS; same-shape tensors or one Python scalar (takes the array's dtype)."""
    if op not in BINARY_OPS:
        raise ValueError(f"binary: unknown op {op!r}, expected one of {BINARY_OPS}")
    ref, _, _ = _check_operands(f"binary {op}", a, b)
    _check_int_or_float(ref, op, INT_BINARY_OPS, f"binary {op}")
    out = _empty_like_shape(ref, ref.dtype)
    return _launch_binary(op, out, a, b, ref.dtype)


def add_(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """out += x in place (same shape and dtype; x any strides, out must not overlap itself):
    binary("add", out, x) written over out. Returns out. (Accumulating a gradient into a fixed
    buffer, as the CUDA-graph step does, without a new allocation.)"""
    ref, _, _ = _check_operands("add_", out, x)
    _check_int_or_float(ref, "add", INT_BINARY_OPS, "add_")
    if any(st == 0 and n > 1 for n, st in zip(out.shape, out.stride())):
        raise ValueError(f"add_: out must not be an expanded (stride-0) view; got strides {out.stride()}")
    return _launch_binary("add", out, out, x, out.dtype)


def compare(op: str, a, b) -> torch.Tensor:
    """bool c = a op b, op in COMPARE_OPS; same-shape tensors or one Python scalar."""
    if op not in COMPARE_OPS:
        raise ValueError(f"compare: unknown op {op!r}, expected one of {COMPARE_OPS}")
    ref, _, _ = _check_operands(f"compare {op}", a, b)
    _check_dtype(ref, SUPPORTED_DTYPES, f"compare {op}")
    out = _empty_like_shape(ref, torch.bool)
    return _launch_binary(op, out, a, b, ref.dtype)


def where(cond: torch.Tensor, a, b) -> torch.Tensor:
    """cond ? a : b. a, b: tensors of cond's shape (same dtype) or Python scalars.

    With two scalars the result is float32, or int64 when `a` is an int (not bool or float).
    """
    dtype = _check_where(cond, a, b)
    out = _empty_like_shape(cond, dtype)
    a_t = a if isinstance(a, torch.Tensor) else None
    b_t = b if isinstance(b, torch.Tensor) else None
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
    ref, _, _ = _check_operands("gelu_bwd", dy, x)
    _check_dtype(ref, FLOAT_DTYPES, "gelu_bwd")
    out = _empty_like_shape(ref, ref.dtype)
    return _launch_binary(op, out, dy, x, ref.dtype)


def silu_fwd(x: torch.Tensor) -> torch.Tensor:
    """y = x * sigmoid(x)."""
    return unary("silu", x)


def silu_bwd(dy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x)."""
    ref, _, _ = _check_operands("silu_bwd", dy, x)
    _check_dtype(ref, FLOAT_DTYPES, "silu_bwd")
    out = _empty_like_shape(ref, ref.dtype)
    return _launch_binary("silu_bwd", out, dy, x, ref.dtype)


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
    compute = tl.float64 if dtype.is_floating_point else tl.int64
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
