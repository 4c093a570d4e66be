"""Softmax and log-softmax over the last dimension, forward and backward, in Triton.

Math (per row x of C columns, m = max(x), s = sum(exp(x - m))):
    softmax:      y = exp(x - m) / s              dx = y * (dy - sum(dy * y))
    log_softmax:  y = x - m - log(s)              dx = dy - exp(y) * sum(dy)

Work split. x (..., C) is viewed as N rows of C columns (the leading dims must collapse to
one row stride; the column stride may be anything and Triton specialises it when it is 1).
Two paths, picked by the launcher:
  * single block (C <= SINGLE_BLOCK_MAX): a program holds ROWS whole rows in registers as a
    (ROWS, BLOCK_C) tile, BLOCK_C = next_pow2(C). One read of x, one write of y.
  * multi block (longer rows): one program per row walks the row in BLOCK_C chunks keeping
    a running max and a running sum rescaled whenever the max grows (the "online softmax"
    of Milakov & Gimelshein, 2018), then walks the row a second time to write y.
    x is read twice (the second read often hits L2), y written once.
Backward uses the same two paths (first pass: the row sum, second pass: dx).

Bytes moved (single block): forward 2*N*C*elt, backward 3*N*C*elt; multi block adds one
extra read of the input row. FLOPs are negligible: these kernels are bandwidth bound.

Accumulation is float32 (float64 for float64 input). Supported dtypes: float32, float16,
bfloat16, float64. A row that is entirely -inf gives NaN, as in torch.

Nothing here imports minigrad. `rows_view` (the (..., C) -> (N, C) stride check), `check_float`
and `acc_dtype` come from kernels/helpers.py, shared with the other row-wise kernel families
(layernorm, cross_entropy).

References: Triton tutorial 02 (fused softmax); Milakov & Gimelshein, "Online normalizer
calculation for softmax" (2018).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .helpers import _cast_value, acc_dtype, cdiv, check_float, next_power_of_2, rows_view

# Rows up to this many columns are held whole in registers (single-block path).
SINGLE_BLOCK_MAX = 8192
# Chunk width of the multi-block path for longer rows.
MULTI_BLOCK = 4096


# ---------------------------------------------------------------------------- kernels
@triton.jit
def _softmax_fwd_kernel(y_ptr, x_ptr,
                        stride_xm, stride_xn, stride_ym,
                        n_rows, n_cols,
                        LOG: tl.constexpr,       # True: log_softmax, False: softmax
                        ACC: tl.constexpr,       # accumulation dtype (tl.float32 / tl.float64)
                        ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """Single-block forward: ROWS whole rows per program."""
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)     # (ROWS,)
    cols = tl.arange(0, BLOCK_C)                                            # (BLOCK_C,)
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)              # (ROWS, BLOCK_C)
    x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :] * stride_xn,
                mask=mask, other=-float("inf")).to(ACC)                     # (ROWS, BLOCK_C)
    m = tl.max(x, axis=1)                                                   # (ROWS,)
    m = tl.where(rows < n_rows, m, 0.0)            # padding rows: avoid -inf - -inf = NaN
    z = x - m[:, None]
    e = tl.exp(z)                                  # padding lanes: exp(-inf) = 0
    s = tl.sum(e, axis=1)                                                   # (ROWS,)
    s = tl.where(rows < n_rows, s, 1.0)            # padding rows: avoid 0 / 0
    if LOG:
        y = z - tl.log(s)[:, None]
    else:
        y = e / s[:, None]
    tl.store(y_ptr + rows[:, None] * stride_ym + cols[None, :], _cast_value(y, y_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _softmax_fwd_multiblock_kernel(y_ptr, x_ptr,
                                   stride_xm, stride_xn, stride_ym,
                                   n_cols,
                                   LOG: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr):
    """Multi-block forward: one program per row, online max/sum, then a writing pass."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    y_row = y_ptr + row * stride_ym
    offs = tl.arange(0, BLOCK_C)
    # Running max m and running sum s = sum(exp(x - m)) over the chunks seen so far; a new
    # chunk rescales s by exp(m_old - m_new). One exp per element (plus one per chunk).
    m = tl.full([], -float("inf"), ACC)
    s = tl.full([], 0.0, ACC)
    for start in range(0, n_cols, BLOCK_C):
        cols = start + offs
        x = tl.load(x_row + cols * stride_xn, mask=cols < n_cols, other=-float("inf")).to(ACC)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        # While every element seen is -inf, shift by 0 so that exp(-inf - -inf) never makes
        # a NaN (the terms are exp(-inf) = 0 anyway).
        shift = tl.where(m_new == -float("inf"), 0.0, m_new)
        s = s * tl.exp(m - shift) + tl.sum(tl.exp(x - shift), axis=0)
        m = m_new
    # an all -inf row ends with m = -inf, s = 0: the outputs are NaN, as in torch
    log_s = tl.log(s)
    for start in range(0, n_cols, BLOCK_C):
        cols = start + offs
        x = tl.load(x_row + cols * stride_xn, mask=cols < n_cols, other=-float("inf")).to(ACC)
        if LOG:
            y = x - m - log_s
        else:
            y = tl.exp(x - m) / s
        tl.store(y_row + cols, _cast_value(y, y_ptr.dtype.element_ty), mask=cols < n_cols)


@triton.jit
def _softmax_bwd_kernel(dx_ptr, dy_ptr, y_ptr,
                        stride_dym, stride_dyn, stride_ym, stride_yn, stride_dxm,
                        n_rows, n_cols,
                        LOG: tl.constexpr, ACC: tl.constexpr,
                        ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """Single-block backward: ROWS whole rows per program."""
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)     # (ROWS,)
    cols = tl.arange(0, BLOCK_C)                                            # (BLOCK_C,)
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)              # (ROWS, BLOCK_C)
    dy = tl.load(dy_ptr + rows[:, None] * stride_dym + cols[None, :] * stride_dyn,
                 mask=mask, other=0.0).to(ACC)
    if LOG:
        # Padding lanes load y = -inf so that exp(y) = 0 there.
        y = tl.load(y_ptr + rows[:, None] * stride_ym + cols[None, :] * stride_yn,
                    mask=mask, other=-float("inf")).to(ACC)
        dx = dy - tl.exp(y) * tl.sum(dy, axis=1)[:, None]
    else:
        y = tl.load(y_ptr + rows[:, None] * stride_ym + cols[None, :] * stride_yn,
                    mask=mask, other=0.0).to(ACC)
        dx = y * (dy - tl.sum(dy * y, axis=1)[:, None])
    tl.store(dx_ptr + rows[:, None] * stride_dxm + cols[None, :], _cast_value(dx, dx_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _softmax_bwd_multiblock_kernel(dx_ptr, dy_ptr, y_ptr,
                                   stride_dym, stride_dyn, stride_ym, stride_yn, stride_dxm,
                                   n_cols,
                                   LOG: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr):
    """Multi-block backward: pass 1 reduces the row sum, pass 2 writes dx."""
    row = tl.program_id(0).to(tl.int64)
    dy_row = dy_ptr + row * stride_dym
    y_row = y_ptr + row * stride_ym
    dx_row = dx_ptr + row * stride_dxm
    offs = tl.arange(0, BLOCK_C)
    acc = tl.zeros((BLOCK_C,), ACC)
    for start in range(0, n_cols, BLOCK_C):
        cols = start + offs
        dy = tl.load(dy_row + cols * stride_dyn, mask=cols < n_cols, other=0.0).to(ACC)
        if LOG:
            acc += dy                                           # sum(dy)
        else:
            y = tl.load(y_row + cols * stride_yn, mask=cols < n_cols, other=0.0).to(ACC)
            acc += dy * y                                       # sum(dy * y)
    total = tl.sum(acc, axis=0)
    for start in range(0, n_cols, BLOCK_C):
        cols = start + offs
        dy = tl.load(dy_row + cols * stride_dyn, mask=cols < n_cols, other=0.0).to(ACC)
        y = tl.load(y_row + cols * stride_yn, mask=cols < n_cols, other=0.0).to(ACC)
        if LOG:
            dx = dy - tl.exp(y) * total
        else:
            dx = y * (dy - total)
        tl.store(dx_row + cols, _cast_value(dx, dx_ptr.dtype.element_ty), mask=cols < n_cols)


# ---------------------------------------------------------------------------- helpers
def _single_block_config(block_c: int) -> tuple[int, int]:
    """(rows per program, num_warps) for a (ROWS, BLOCK_C) tile of about 4K elements."""
    rows = max(1, min(64, 4096 // block_c))
    num_warps = max(4, min(16, rows * block_c // 512))
    return rows, num_warps


def _pick_block(n_cols: int, block_size: Optional[int]) -> tuple[int, bool]:
    """(BLOCK_C, single_block?). `block_size` forces a chunk width (tests use it to reach the
    multi-block path at small sizes); it must be a power of two."""
    if block_size is None:
        block = next_power_of_2(n_cols)
        if block <= SINGLE_BLOCK_MAX:
            return block, True
        return MULTI_BLOCK, False
    if block_size < 1 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two, got {block_size}")
    return block_size, block_size >= n_cols


def _check_bwd(dy: torch.Tensor, y: torch.Tensor) -> None:
    check_float(dy, "dy")
    check_float(y, "y")
    if dy.shape != y.shape:
        raise ValueError(f"dy and y must have the same shape, got {tuple(dy.shape)} and {tuple(y.shape)}")
    if dy.dtype != y.dtype:
        raise TypeError(f"dy and y must have the same dtype, got {dy.dtype} and {y.dtype}")
    if dy.device != y.device:
        raise ValueError(f"dy and y must be on the same device, got {dy.device} and {y.device}")


# ---------------------------------------------------------------------------- launchers
def _forward(x: torch.Tensor, log: bool, block_size: Optional[int]) -> torch.Tensor:
    check_float(x, "x")
    n_rows, n_cols, stride_xm, stride_xn = rows_view(x, "x")
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if n_rows == 0 or n_cols == 0:
        return y
    block, single = _pick_block(n_cols, block_size)
    if single:
        rows, num_warps = _single_block_config(block)
        _softmax_fwd_kernel[(cdiv(n_rows, rows),)](
            y, x, stride_xm, stride_xn, n_cols, n_rows, n_cols,
            LOG=log, ACC=acc_dtype(x.dtype), ROWS=rows, BLOCK_C=block, num_warps=num_warps)
    else:
        _softmax_fwd_multiblock_kernel[(n_rows,)](
            y, x, stride_xm, stride_xn, n_cols, n_cols,
            LOG=log, ACC=acc_dtype(x.dtype), BLOCK_C=block, num_warps=8)
    return y


def _backward(dy: torch.Tensor, y: torch.Tensor, log: bool, block_size: Optional[int]) -> torch.Tensor:
    _check_bwd(dy, y)
    n_rows, n_cols, stride_dym, stride_dyn = rows_view(dy, "dy")
    _, _, stride_ym, stride_yn = rows_view(y, "y")
    dx = torch.empty(y.shape, dtype=y.dtype, device=y.device)
    if n_rows == 0 or n_cols == 0:
        return dx
    block, single = _pick_block(n_cols, block_size)
    if single:
        rows, num_warps = _single_block_config(block)
        _softmax_bwd_kernel[(cdiv(n_rows, rows),)](
            dx, dy, y, stride_dym, stride_dyn, stride_ym, stride_yn, n_cols, n_rows, n_cols,
            LOG=log, ACC=acc_dtype(y.dtype), ROWS=rows, BLOCK_C=block, num_warps=num_warps)
    else:
        _softmax_bwd_multiblock_kernel[(n_rows,)](
            dx, dy, y, stride_dym, stride_dyn, stride_ym, stride_yn, n_cols, n_cols,
            LOG=log, ACC=acc_dtype(y.dtype), BLOCK_C=block, num_warps=8)
    return dx


def softmax_fwd(x: torch.Tensor, block_size: Optional[int] = None) -> torch.Tensor:
    """y = softmax(x) over the last dim. x (..., C) float -> y (..., C) contiguous, x's dtype.

    `block_size` (a power of two) overrides the column block; below C it forces the
    multi-block (online) path.
    """
    return _forward(x, False, block_size)


def softmax_bwd(dy: torch.Tensor, y: torch.Tensor, block_size: Optional[int] = None) -> torch.Tensor:
    """dx = y * (dy - sum(dy * y, -1, keepdim)). dy, y (..., C) -> dx (..., C) contiguous."""
    return _backward(dy, y, False, block_size)


def log_softmax_fwd(x: torch.Tensor, block_size: Optional[int] = None) -> torch.Tensor:
    """y = x - logsumexp(x) over the last dim. x (..., C) -> y (..., C) contiguous."""
    return _forward(x, True, block_size)


def log_softmax_bwd(dy: torch.Tensor, y: torch.Tensor, block_size: Optional[int] = None) -> torch.Tensor:
    """dx = dy - exp(y) * sum(dy, -1, keepdim). dy, y (..., C) -> dx (..., C) contiguous."""
    return _backward(dy, y, True, block_size)
