"""Reductions: sum and max over any set of axes (keepdim or not), argmax along one axis.

What it computes
    reduce_sum(x, axes, keepdim)   y = sum over `axes`; float32 accumulation for 16-bit and
                                   float32 inputs, float64 for float64, int64 for int64/bool.
                                   Output keeps x's dtype (bool/int -> int64).
    reduce_max(x, axes, keepdim)   y = max over `axes` (every reduced axis must be non-empty).
    sum_squares(x)                 sum of x * x over everything, 0-d, in float32 (float64 for
                                   float64): one read of x for gradient clipping's norm.
    argmax(x, axis)                int64 index of the first maximum along `axis` (axis removed).
    Backward lives above the boundary (sum -> expand, max -> mask of the argmax positions).

How work is split
    The launcher views x with the reduced axes moved last (a zero-copy permute) and splits the
    result into kept dims (rows) and reduced dims (cols). When each group collapses into a
    single strided dim the kernel reads x in place as a strided (n_rows, n_cols) matrix;
    otherwise x is first made contiguous with the copy kernel (copy.py).
    A program owns BLOCK_R rows and a range of columns; it walks its columns BLOCK_C at a time,
    accumulating a (BLOCK_R, BLOCK_C) tile in registers, and reduces the tile at the end.
    Tiles are shaped by which way memory is contiguous: long along cols when reducing the
    innermost dim, tall along rows when reducing an outer dim (so loads stay coalesced).
    When there are too few row blocks to fill the GPU (e.g. a full reduction to a scalar), the
    columns are split over several programs that write float32 partials (n_rows, n_splits), and
    a second launch of the same kernel reduces the partials.
    Column sums (reducing an outer dim, e.g. a bias gradient: dy (N, C) summed over N) first
    narrow the row blocks, down to COL_MIN_BLOCK_R contiguous elements (one 32-byte sector of
    bf16): if that gives at least COL_SINGLE_PASS_PROGRAMS programs, each program loops over
    every column of its rows in one launch (deterministic: no atomics, no partials). A training
    step has one bias gradient per biased Linear, so this halves their launches.

Bytes moved
    numel * itemsize read once (plus n_rows * n_splits partials), n_rows written.

Limits
    max propagates NaN like numpy; argmax ignores NaN (numpy would return the first NaN).
    Each group of dims (kept / reduced) that does not collapse to one stride costs a copy.
    argmax is single-pass per row block (no column split), fine for a vocabulary-sized row.

References: the Triton tutorials (fused softmax's row reduction), CUB's two-pass device reduce.
"""
from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl

from .copy import collapse_dims, copy
from .elementwise import fill_
from .helpers import _cast_value, cdiv, check_tensor, interpreting, next_power_of_2

MAX_TILE = 4096                  # elements per (BLOCK_R, BLOCK_C) tile on the GPU
TARGET_PROGRAMS = 264            # ~2 programs per SM on an H100 before we split columns
INTERPRET_TILE = 256             # small tiles so interpreter tests hit multi-block loops
INTERPRET_TARGET_PROGRAMS = 4    # ... and the two-pass split
MIN_COLS_PER_SPLIT = 4           # never split into pieces of fewer than 4 column blocks
COL_MIN_BLOCK_R = 16             # narrowest row block of a column sum: 32 contiguous bytes of bf16
COL_SINGLE_PASS_PROGRAMS = 32    # ... one pass if that gives this many programs (C=768 -> 48)
INTERPRET_COL_SINGLE_PASS_PROGRAMS = 2   # interpreter tests reach both column-sum paths
INT64_MIN = -(2 ** 63)


@triton.jit
def _reduce_fwd_kernel(
    out_ptr, x_ptr,
    stride_row, stride_col,          # x strides (elements) of the (rows, cols) view
    n_rows, n_cols,
    cols_per_split,                  # columns handled by one program along grid axis 1
    n_splits,                        # out is (n_rows, n_splits) row-major
    OP: tl.constexpr,                # "sum", "sumsq" (sum of squares) or "max"
    ACC: tl.constexpr,               # accumulator dtype (fp32 / fp64 / int64)
    LOWEST: tl.constexpr,            # identity of max: -inf or INT64_MIN
    INDEX64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_r = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)                              # (BLOCK_R,)
    if INDEX64:
        rows = rows.to(tl.int64)
    row_mask = rows < n_rows
    row_off = rows * stride_row
    col_start = pid_s * cols_per_split
    col_end = tl.minimum(col_start + cols_per_split, n_cols)
    if OP != "max":                               # "sum" or "sumsq"
        acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=ACC)
    else:
        acc = tl.full((BLOCK_R, BLOCK_C), LOWEST, dtype=ACC)
    for c0 in range(col_start, col_end, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)                                       # (BLOCK_C,)
        if INDEX64:
            cols = cols.to(tl.int64)
        mask = row_mask[:, None] & (cols < col_end)[None, :]                   # (BLOCK_R, BLOCK_C)
        x = tl.load(x_ptr + row_off[:, None] + cols[None, :] * stride_col, mask=mask, other=0)
        x = x.to(ACC)
        if OP == "sum":
            acc += x
        elif OP == "sumsq":                       # squared after the cast: no 16-bit rounding
            acc += x * x
        elif ACC == tl.int64:
            acc = tl.maximum(acc, tl.where(mask, x, LOWEST))
        else:                                     # a nan anywhere makes the max nan (numpy)
            acc = tl.maximum(acc, tl.where(mask, x, LOWEST), propagate_nan=tl.PropagateNan.ALL)
    if OP != "max":
        res = tl.sum(acc, axis=1)                                               # (BLOCK_R,)
    else:
        res = tl.max(acc, axis=1)
        if ACC != tl.int64:                       # tl.max itself skips nan: put it back
            has_nan = tl.max((acc != acc).to(tl.int32), axis=1) > 0
            res = tl.where(has_nan, float("nan"), res)
    tl.store(out_ptr + rows * n_splits + pid_s, _cast_value(res, out_ptr.dtype.element_ty),
             mask=row_mask)


@triton.jit
def _argmax_fwd_kernel(
    out_ptr, x_ptr,
    stride_row, stride_col, n_rows, n_cols,
    ACC: tl.constexpr, LOWEST: tl.constexpr,
    INDEX64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)                   # (BLOCK_R,)
    if INDEX64:
        rows = rows.to(tl.int64)
    row_mask = rows < n_rows
    row_off = rows * stride_row
    best = tl.full((BLOCK_R,), LOWEST, dtype=ACC)       # running max per row
    best_idx = tl.zeros((BLOCK_R,), dtype=tl.int64)     # its first column
    for c0 in range(0, n_cols, BLOCK_C):
        cols = (c0 + tl.arange(0, BLOCK_C)).to(tl.int64)                         # (BLOCK_C,)
        mask = row_mask[:, None] & (cols < n_cols)[None, :]
        x = tl.load(x_ptr + row_off[:, None] + cols[None, :] * stride_col, mask=mask, other=0)
        x = tl.where(mask, x.to(ACC), LOWEST)                                    # (BLOCK_R, BLOCK_C)
        blk_max = tl.max(x, axis=1)                                              # (BLOCK_R,)
        # first column holding the block max (masked columns are past n_cols, so never first)
        cand = tl.where(x == blk_max[:, None], cols[None, :], n_cols)
        blk_idx = tl.min(cand, axis=1)
        better = blk_max > best                       # strict: an earlier block wins ties
        best_idx = tl.where(better, blk_idx, best_idx)
        best = tl.where(better, blk_max, best)
    tl.store(out_ptr + rows, best_idx, mask=row_mask)


# ----------------------------------------------------------------------------- launch helpers
def _acc_dtype(dtype: torch.dtype, op: str):
    if dtype == torch.float64:
        return tl.float64, torch.float64
    if dtype in (torch.int64, torch.bool):
        return tl.int64, torch.int64
    if dtype in (torch.float32, torch.bfloat16, torch.float16):
        return tl.float32, torch.float32
    raise TypeError(f"reduce {op}: dtype {dtype} is not supported")


def _lowest(dtype: torch.dtype):
    return float("-inf") if dtype.is_floating_point else INT64_MIN


def _normalize_axes(x: torch.Tensor, axes: Sequence[int], what: str) -> list[int]:
    nd = x.dim()
    out = []
    for a in axes:
        a = int(a)
        if a < 0:
            a += nd
        if not 0 <= a < nd:
            raise ValueError(f"{what}: axis {a} out of range for a {nd}-d tensor")
        out.append(a)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axes {list(axes)}")
    return sorted(out)


def _as_matrix(x: torch.Tensor, axes: list[int]):
    """View x as (n_rows, n_cols) with reduced axes as cols: returns (tensor, stride_row,
    stride_col, n_rows, n_cols); copies to contiguous only when a group does not collapse."""
    kept = [d for d in range(x.dim()) if d not in axes]
    xp = x.permute(*kept, *axes)                          # zero-copy: reduced axes last
    k_shape = [x.shape[d] for d in kept]
    r_shape = [x.shape[d] for d in axes]
    n_rows = 1
    for n in k_shape:
        n_rows *= n
    n_cols = 1
    for n in r_shape:
        n_cols *= n
    k_sizes, (k_st,) = collapse_dims(k_shape, [[x.stride(d) for d in kept]])
    r_sizes, (r_st,) = collapse_dims(r_shape, [[x.stride(d) for d in axes]])
    if len(k_sizes) == 1 and len(r_sizes) == 1:
        return x, k_st[0], r_st[0], n_rows, n_cols
    xc = copy(xp)                                          # row-major (kept..., reduced...)
    return xc, n_cols, 1, n_rows, n_cols


def _tile(n_rows: int, n_cols: int, stride_col: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_C): long along the contiguous direction, at most MAX_TILE elements."""
    tile = INTERPRET_TILE if interpreting() else MAX_TILE
    if stride_col == 1:                                    # reducing the innermost dim
        block_c = min(next_power_of_2(max(n_cols, 1)), tile)
        block_r = min(next_power_of_2(max(n_rows, 1)), max(1, tile // block_c))
    else:                                                  # reducing an outer dim: rows contiguous
        block_r = min(next_power_of_2(max(n_rows, 1)), min(128, tile))
        block_c = min(next_power_of_2(max(n_cols, 1)), max(1, tile // block_r))
    return block_r, block_c


def _column_single_pass_tile(n_rows: int, n_cols: int) -> tuple[int, int] | None:
    """(BLOCK_R, BLOCK_C) of a one-launch column sum (rows contiguous, reduced dim strided), or
    None when even COL_MIN_BLOCK_R-row blocks give too few programs (then split the columns).
    Row blocks halve until there are enough of them to fill the GPU or they reach the minimum;
    the tile keeps its element count, so each program walks the reduced dim in taller steps."""
    tile = INTERPRET_TILE if interpreting() else MAX_TILE
    target = INTERPRET_TARGET_PROGRAMS if interpreting() else TARGET_PROGRAMS
    enough = INTERPRET_COL_SINGLE_PASS_PROGRAMS if interpreting() else COL_SINGLE_PASS_PROGRAMS
    block_r, _ = _tile(n_rows, n_cols, 0)
    while block_r > COL_MIN_BLOCK_R and cdiv(n_rows, block_r) < target:
        block_r //= 2
    if cdiv(n_rows, block_r) < enough:
        return None
    return block_r, min(next_power_of_2(max(n_cols, 1)), max(1, tile // block_r))


def _split_plan(n_rows: int, n_cols: int, stride_col: int) -> tuple[int, int, int, int]:
    """(BLOCK_R, BLOCK_C, cols_per_split, n_splits) of a (n_rows, n_cols) reduction. One pass
    (n_splits == 1, cols_per_split == n_cols) when the row blocks fill the GPU, or for a column
    sum whose narrowed row blocks do (`_column_single_pass_tile`); else the columns are split over
    n_splits programs per row block, whose partials a second pass reduces."""
    block_r, block_c = _tile(n_rows, n_cols, stride_col)
    row_blocks = cdiv(n_rows, block_r)
    target = INTERPRET_TARGET_PROGRAMS if interpreting() else TARGET_PROGRAMS
    col_blocks = cdiv(n_cols, block_c)
    if row_blocks >= target or col_blocks < 2 * MIN_COLS_PER_SPLIT:
        return block_r, block_c, n_cols, 1
    if stride_col != 1:
        one_pass = _column_single_pass_tile(n_rows, n_cols)
        if one_pass is not None:                           # a column sum: one launch
            return *one_pass, n_cols, 1
    n_splits = min(cdiv(target, row_blocks), col_blocks // MIN_COLS_PER_SPLIT)
    cols_per_split = cdiv(col_blocks, n_splits) * block_c
    n_splits = cdiv(n_cols, cols_per_split)
    if n_splits == 1:
        return block_r, block_c, n_cols, 1
    return block_r, block_c, cols_per_split, n_splits


def _launch_reduce(out, x, stride_row, stride_col, n_rows, n_cols, op, acc, lowest, block_r,
                   block_c, cols_per_split, n_splits):
    index64 = (n_rows * abs(stride_row) + n_cols * abs(stride_col) > 2 ** 31 - 1
               or n_rows * n_splits > 2 ** 31 - 1)
    grid = (cdiv(n_rows, block_r), n_splits)
    _reduce_fwd_kernel[grid](out, x, stride_row, stride_col, n_rows, n_cols, cols_per_split,
                             n_splits, OP=op, ACC=acc, LOWEST=lowest, INDEX64=index64,
                             BLOCK_R=block_r, BLOCK_C=block_c,
                             num_warps=8 if block_r * block_c >= 4096 else 4)


def _check_reduce(op: str, x: torch.Tensor, axes: Sequence[int], keepdim: bool):
    """-> (sorted axes, out shape, out dtype)."""
    check_tensor(x, f"reduce_{op}")
    axes = _normalize_axes(x, axes, f"reduce_{op}")
    _, acc_torch = _acc_dtype(x.dtype, op)                   # TypeError for unsupported dtypes
    if op == "max" and any(x.shape[d] == 0 for d in axes):
        raise ValueError(f"reduce_max: cannot take the max over an empty axis (shape {tuple(x.shape)}, "
                         f"axes {axes})")
    if op == "sum":
        out_dtype = torch.int64 if x.dtype in (torch.int64, torch.bool) else x.dtype
    elif op == "sumsq":
        out_dtype = acc_torch
    else:
        out_dtype = x.dtype
    out_shape = [1 if d in axes else n for d, n in enumerate(x.shape)] if keepdim else \
        [n for d, n in enumerate(x.shape) if d not in axes]
    return axes, out_shape, out_dtype


def _launch(op: str, out: torch.Tensor, x: torch.Tensor, axes: list[int]) -> torch.Tensor:
    """out = op over `axes` of x: x viewed as a (rows, cols) matrix, one launch, or two when the
    columns are split (`_split_plan`)."""
    xm, stride_row, stride_col, n_rows, n_cols = _as_matrix(x, axes)
    if n_cols == 0:                                        # sum over an empty axis is 0
        return fill_(out, 0)
    acc, acc_torch = _acc_dtype(x.dtype, op)
    lowest = _lowest(x.dtype)
    block_r, block_c, cols_per_split, n_splits = _split_plan(n_rows, n_cols, stride_col)
    if n_splits == 1:
        _launch_reduce(out, xm, stride_row, stride_col, n_rows, n_cols, op, acc, lowest,
                       block_r, block_c, n_cols, 1)
        return out
    # pass 1: partials (n_rows, n_splits) in the accumulator dtype; pass 2 reduces them
    partial = torch.empty((n_rows, n_splits), dtype=acc_torch, device=x.device)
    _launch_reduce(partial, xm, stride_row, stride_col, n_rows, n_cols, op, acc, lowest,
                   block_r, block_c, cols_per_split, n_splits)
    block_r2, block_c2 = _tile(n_rows, n_splits, 1)
    op2 = "max" if op == "max" else "sum"                 # partials of a sumsq are summed
    _launch_reduce(out, partial, n_splits, 1, n_rows, n_splits, op2, acc, lowest,
                   block_r2, block_c2, n_splits, 1)
    return out


def _reduce(op: str, x: torch.Tensor, axes: Sequence[int], keepdim: bool) -> torch.Tensor:
    axes, out_shape, out_dtype = _check_reduce(op, x, axes, keepdim)
    if not axes:
        return copy(x, out_dtype).view(out_shape)
    out = torch.empty(out_shape, dtype=out_dtype, device=x.device)
    if out.numel() == 0:
        return out
    return _launch(op, out, x, axes)


# ----------------------------------------------------------------------------- launchers
def reduce_sum(x: torch.Tensor, axes: Sequence[int], keepdim: bool = False) -> torch.Tensor:
    """Sum over `axes` (empty = copy). Float32 accumulation; bool/int64 sum to int64."""
    return _reduce("sum", x, axes, keepdim)


def sum_squares(x: torch.Tensor) -> torch.Tensor:
    """sum(x * x) over every element: 0-d float32 (float64 for float64 x)."""
    if not x.dtype.is_floating_point:
        raise TypeError(f"sum_squares: expected a float tensor, got {x.dtype}")
    x = x.reshape(1) if x.dim() == 0 else x              # a 0-d x still needs one reduced axis
    return _reduce("sumsq", x, list(range(x.dim())), False)


def reduce_max(x: torch.Tensor, axes: Sequence[int], keepdim: bool = False) -> torch.Tensor:
    """Max over `axes` (empty = copy); every reduced axis must be non-empty."""
    return _reduce("max", x, axes, keepdim)


def argmax(x: torch.Tensor, axis: int) -> torch.Tensor:
    """int64 index of the first maximum along `axis`; the axis is removed."""
    check_tensor(x, "argmax")
    (axis,) = _normalize_axes(x, [axis], "argmax")
    if x.shape[axis] == 0:
        raise ValueError(f"argmax: axis {axis} of shape {tuple(x.shape)} is empty")
    acc, _ = _acc_dtype(x.dtype, "argmax")
    out_shape = [n for d, n in enumerate(x.shape) if d != axis]
    out = torch.empty(out_shape, dtype=torch.int64, device=x.device)
    if out.numel() == 0:
        return out
    xm, stride_row, stride_col, n_rows, n_cols = _as_matrix(x, [axis])
    block_r, block_c = _tile(n_rows, n_cols, stride_col)
    index64 = n_rows * abs(stride_row) + n_cols * abs(stride_col) > 2 ** 31 - 1
    _argmax_fwd_kernel[(cdiv(n_rows, block_r),)](
        out, xm, stride_row, stride_col, n_rows, n_cols, ACC=acc, LOWEST=_lowest(x.dtype),
        INDEX64=index64, BLOCK_R=block_r, BLOCK_C=block_c,
        num_warps=8 if block_r * block_c >= 4096 else 4)
    return out
