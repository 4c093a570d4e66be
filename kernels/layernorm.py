"""LayerNorm and RMSNorm over the last dimension, forward and backward, in Triton.

Math (per row x of C columns; w, b are (C,) or absent):
    layernorm:  mean = sum(x)/C,  rstd = 1/sqrt(sum((x-mean)^2)/C + eps),  xhat = (x-mean)*rstd
    rmsnorm:    mean = 0 (no centring),  rstd = 1/sqrt(sum(x^2)/C + eps),  xhat = x*rstd
    y = xhat * w (+ b)
    backward, g = dy * w:
        layernorm:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
        rmsnorm:    dx = rstd * (g - xhat * mean(g * xhat))
        dw = sum_rows(dy * xhat),  db = sum_rows(dy)
Both norms share every kernel; the constexpr IS_RMS drops the centring.

Work split.
  * forward: a program owns ROWS whole rows as a (ROWS, BLOCK_C) tile in registers
    (BLOCK_C = next_pow2(C)), writes y and the saved statistics (mean, rstd).
  * backward: G programs; program g walks the row tiles g, g+G, g+2G, ... writing dx for
    each row (a row's dx needs only that row) and accumulating dy*xhat and dy in registers.
    It then writes its partial dw/db to row g of a (G, C) float32 buffer. A second kernel
    sums the G partials column-block by column-block, in a fixed order. No atomics or locks,
    so dw/db are bitwise deterministic for a given G (G depends only on the device's SM
    count and the problem size). This is the Triton layer-norm tutorial's two-stage
    reduction without its spin locks.

Bytes moved: forward reads x and writes y (2*N*C*elt, plus 8 bytes a row of statistics);
backward reads x and dy and writes dx (3*N*C*elt) plus G*C*4*2 bytes of partials, each
written once and read once.

Limits: C <= MAX_COLS (a row must fit in registers; larger C raises ValueError).
Accumulation is float32 (float64 for float64 input); mean/rstd are float32 (float64 for
float64 input). weight and bias may have any float dtype; dweight/dbias take the weight's.

Reference: Triton tutorial 05 (layer norm); Ba et al. 2016; Zhang & Sennrich 2019 (RMSNorm).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .helpers import _cast_value, acc_dtype, cdiv, check_float, interpreting, next_power_of_2, rows_view

# The widest row held in registers. Wider rows raise ValueError (no looped path yet).
MAX_COLS = 32768


# ---------------------------------------------------------------------------- kernels
@triton.jit
def _layernorm_fwd_kernel(y_ptr, mean_ptr, rstd_ptr,
                          x_ptr, w_ptr, b_ptr,
                          stride_xm, stride_xn, stride_ym, stride_w, stride_b,
                          n_rows, n_cols,
                          eps,
                          IS_RMS: tl.constexpr,       # RMSNorm: no centring, no mean output
                          HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr,
                          ACC: tl.constexpr,          # accumulation dtype
                          ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)     # (ROWS,)
    cols = tl.arange(0, BLOCK_C)                                            # (BLOCK_C,)
    row_mask = rows < n_rows
    col_mask = cols < n_cols
    mask = row_mask[:, None] & col_mask[None, :]                            # (ROWS, BLOCK_C)
    x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :] * stride_xn,
                mask=mask, other=0.0).to(ACC)
    if IS_RMS:
        xc = x
    else:
        mean = tl.sum(x, axis=1) / n_cols                                   # (ROWS,)
        xc = tl.where(mask, x - mean[:, None], 0.0)   # zero padding lanes before squaring
        tl.store(mean_ptr + rows, _cast_value(mean, mean_ptr.dtype.element_ty), mask=row_mask)
    var = tl.sum(xc * xc, axis=1) / n_cols                                  # (ROWS,)
    rstd = 1.0 / tl.sqrt(var + eps)
    tl.store(rstd_ptr + rows, _cast_value(rstd, rstd_ptr.dtype.element_ty), mask=row_mask)
    y = xc * rstd[:, None]
    if HAS_WEIGHT:
        w = tl.load(w_ptr + cols * stride_w, mask=col_mask, other=0.0).to(ACC)
        y = y * w[None, :]
    if HAS_BIAS:
        b = tl.load(b_ptr + cols * stride_b, mask=col_mask, other=0.0).to(ACC)
        y = y + b[None, :]
    tl.store(y_ptr + rows[:, None] * stride_ym + cols[None, :], _cast_value(y, y_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _layernorm_bwd_kernel(dx_ptr, dw_part_ptr, db_part_ptr,
                          dy_ptr, x_ptr, w_ptr, mean_ptr, rstd_ptr,
                          stride_dym, stride_dyn, stride_xm, stride_xn, stride_dxm, stride_w,
                          stride_mean, stride_rstd,
                          n_rows, n_cols,
                          IS_RMS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
                          ACC: tl.constexpr, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx for the row tiles pid, pid+G, ...; partial dw/db of those rows into row pid."""
    pid = tl.program_id(0)
    n_progs = tl.num_programs(0)
    n_tiles = tl.cdiv(n_rows, ROWS)
    cols = tl.arange(0, BLOCK_C)                                            # (BLOCK_C,)
    col_mask = cols < n_cols
    if HAS_WEIGHT:
        w = tl.load(w_ptr + cols * stride_w, mask=col_mask, other=0.0).to(ACC)
    dw_acc = tl.zeros((ROWS, BLOCK_C), ACC)
    db_acc = tl.zeros((ROWS, BLOCK_C), ACC)
    for tile in range(pid, n_tiles, n_progs):
        rows = (tile * ROWS + tl.arange(0, ROWS)).to(tl.int64)            # (ROWS,)
        row_mask = rows < n_rows
        mask = row_mask[:, None] & col_mask[None, :]                        # (ROWS, BLOCK_C)
        x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :] * stride_xn,
                    mask=mask, other=0.0).to(ACC)
        dy = tl.load(dy_ptr + rows[:, None] * stride_dym + cols[None, :] * stride_dyn,
                     mask=mask, other=0.0).to(ACC)
        rstd = tl.load(rstd_ptr + rows * stride_rstd, mask=row_mask, other=0.0).to(ACC)
        if IS_RMS:
            xhat = x * rstd[:, None]
        else:
            mean = tl.load(mean_ptr + rows * stride_mean, mask=row_mask, other=0.0).to(ACC)
            xhat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
        if HAS_WEIGHT:
            g = dy * w[None, :]
            dw_acc += dy * xhat
            db_acc += dy
        else:
            g = dy
        c2 = tl.sum(g * xhat, axis=1) / n_cols                              # mean(g * xhat)
        if IS_RMS:
            dx = rstd[:, None] * (g - xhat * c2[:, None])
        else:
            c1 = tl.sum(g, axis=1) / n_cols                                 # mean(g)
            dx = rstd[:, None] * (g - c1[:, None] - xhat * c2[:, None])
        tl.store(dx_ptr + rows[:, None] * stride_dxm + cols[None, :], _cast_value(dx, dx_ptr.dtype.element_ty),
                 mask=mask)
    if HAS_WEIGHT:
        tl.store(dw_part_ptr + pid * n_cols + cols, tl.sum(dw_acc, axis=0), mask=col_mask)
        if not IS_RMS:
            tl.store(db_part_ptr + pid * n_cols + cols, tl.sum(db_acc, axis=0), mask=col_mask)


@triton.jit
def _layernorm_bwd_dwdb_kernel(dw_ptr, db_ptr,
                               dw_part_ptr, db_part_ptr,
                               n_parts, n_cols,
                               HAS_DB: tl.constexpr,
                               BLOCK_G: tl.constexpr, BLOCK_C: tl.constexpr):
    """Second stage: dw[c] = sum_g dw_part[g, c] (and db), one column block per program."""
    cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)               # (BLOCK_C,)
    col_mask = cols < n_cols
    dw_acc = tl.zeros((BLOCK_G, BLOCK_C), dw_part_ptr.dtype.element_ty)
    db_acc = tl.zeros((BLOCK_G, BLOCK_C), dw_part_ptr.dtype.element_ty)
    for start in range(0, n_parts, BLOCK_G):
        parts = start + tl.arange(0, BLOCK_G)                               # (BLOCK_G,)
        mask = (parts[:, None] < n_parts) & col_mask[None, :]
        offs = parts[:, None] * n_cols + cols[None, :]
        dw_acc += tl.load(dw_part_ptr + offs, mask=mask, other=0.0)
        if HAS_DB:
            db_acc += tl.load(db_part_ptr + offs, mask=mask, other=0.0)
    tl.store(dw_ptr + cols, _cast_value(tl.sum(dw_acc, axis=0), dw_ptr.dtype.element_ty), mask=col_mask)
    if HAS_DB:
        tl.store(db_ptr + cols, _cast_value(tl.sum(db_acc, axis=0), db_ptr.dtype.element_ty), mask=col_mask)


# ---------------------------------------------------------------------------- helpers
def _tile_config(n_cols: int, elements: int) -> tuple[int, int, int]:
    """(BLOCK_C, ROWS, num_warps): a (ROWS, BLOCK_C) tile of about `elements` elements."""
    block_c = next_power_of_2(n_cols)
    rows = max(1, min(64, elements // block_c))
    num_warps = max(4, min(16, rows * block_c // 256))
    return block_c, rows, num_warps


def dwdb_block(n_cols: int) -> int:
    """Columns per program of the dw/db stage: about 64 programs over C (C = 768 -> 24 programs of
    32 columns; it was one 256-column block per program, 3 programs reading all 528 partial rows
    on an H100), never under 32 columns (128-byte float32 row segments) nor over 256. Each column
    is still summed over the partial rows in the same order: the same bits."""
    return max(32, min(256, next_power_of_2(cdiv(n_cols, 64))))


def _num_parts(n_tiles: int, device: torch.device) -> int:
    """G, the number of backward programs (and dw/db partial rows)."""
    if interpreting() or device.type != "cuda":
        return max(1, min(n_tiles, 4))
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(n_tiles, 4 * sms))


def _check_rows(x: torch.Tensor, name: str) -> tuple[int, int, int, int]:
    """x (..., C) as rows (rows_view's (N, C, row stride, col stride)), 0 < C <= MAX_COLS."""
    check_float(x, name)
    n_rows, n_cols, stride_m, stride_n = rows_view(x, name)
    if n_cols == 0:
        raise ValueError("cannot normalise over an empty last dim (C = 0)")
    if n_cols > MAX_COLS:
        raise ValueError(f"normalised dim C = {n_cols} exceeds the kernel limit MAX_COLS = {MAX_COLS}")
    return n_rows, n_cols, stride_m, stride_n


def _check_param(p: Optional[torch.Tensor], name: str, n_cols: int, device: torch.device) -> None:
    if p is None:
        return
    check_float(p, name)
    if tuple(p.shape) != (n_cols,):
        raise ValueError(f"{name} must have shape ({n_cols},), got {tuple(p.shape)}")
    if p.device != device:
        raise ValueError(f"{name} must be on {device}, got {p.device}")


def _check_stat(s: torch.Tensor, name: str, n_rows: int, device: torch.device) -> None:
    check_float(s, name)
    if tuple(s.shape) != (n_rows,):
        raise ValueError(f"{name} must have shape ({n_rows},), got {tuple(s.shape)}")
    if s.device != device:
        raise ValueError(f"{name} must be on {device}, got {s.device}")


def _check_bwd(dy, x, weight, mean, rstd, is_rms) -> tuple[int, int, int, int, int, int]:
    """-> (N, C, x's row and col strides, dy's row and col strides)."""
    check_float(dy, "dy")
    check_float(x, "x")
    if dy.shape != x.shape:
        raise ValueError(f"dy and x must have the same shape, got {tuple(dy.shape)} and {tuple(x.shape)}")
    if dy.device != x.device:
        raise ValueError(f"dy and x must be on the same device, got {dy.device} and {x.device}")
    n_rows, n_cols, stride_xm, stride_xn = _check_rows(x, "x")
    _, _, stride_dym, stride_dyn = rows_view(dy, "dy")
    _check_param(weight, "weight", n_cols, x.device)
    _check_stat(rstd, "rstd", n_rows, x.device)
    if not is_rms:
        _check_stat(mean, "mean", n_rows, x.device)
    return n_rows, n_cols, stride_xm, stride_xn, stride_dym, stride_dyn


# ---------------------------------------------------------------------------- launchers
def _norm_fwd(x, weight, bias, eps, is_rms):
    n_rows, n_cols, stride_xm, stride_xn = _check_rows(x, "x")
    _check_param(weight, "weight", n_cols, x.device)
    _check_param(bias, "bias", n_cols, x.device)
    stat_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    mean = None if is_rms else torch.empty(n_rows, dtype=stat_dtype, device=x.device)
    rstd = torch.empty(n_rows, dtype=stat_dtype, device=x.device)
    if n_rows == 0:
        return y, mean, rstd
    block_c, rows, num_warps = _tile_config(n_cols, 4096)
    _layernorm_fwd_kernel[(cdiv(n_rows, rows),)](
        y, rstd if is_rms else mean, rstd,
        x, x if weight is None else weight, x if bias is None else bias,
        stride_xm, stride_xn, n_cols,
        0 if weight is None else weight.stride(0), 0 if bias is None else bias.stride(0),
        n_rows, n_cols, float(eps),
        IS_RMS=is_rms, HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None,
        ACC=acc_dtype(x.dtype), ROWS=rows, BLOCK_C=block_c, num_warps=num_warps)
    return y, mean, rstd


def _norm_bwd(dy, x, weight, mean, rstd, is_rms):
    n_rows, n_cols, stride_xm, stride_xn, stride_dym, stride_dyn = _check_bwd(dy, x, weight, mean, rstd,
                                                                              is_rms)
    block_c, rows, num_warps = _tile_config(n_cols, 2048)
    n_parts = _num_parts(cdiv(n_rows, rows), x.device)
    has_w = weight is not None
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    dw = torch.empty(n_cols, dtype=weight.dtype, device=x.device) if has_w else None
    db = torch.empty(n_cols, dtype=weight.dtype, device=x.device) if has_w and not is_rms else None
    part_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if has_w:
        # empty, not zeros: every program writes its whole partial row, zeros where it had no
        # rows (so the kernel is launched even for n_rows == 0): no fill kernel per call
        dw_part = torch.empty((n_parts, n_cols), dtype=part_dtype, device=x.device)
        db_part = torch.empty((n_parts, n_cols), dtype=part_dtype, device=x.device) if not is_rms else dw_part
    else:
        dw_part = db_part = dx       # unused
    if n_rows > 0 or has_w:
        _layernorm_bwd_kernel[(n_parts,)](
            dx, dw_part, db_part,
            dy, x, weight if has_w else x, rstd if is_rms else mean, rstd,
            stride_dym, stride_dyn, stride_xm, stride_xn, n_cols,
            weight.stride(0) if has_w else 0,
            rstd.stride(0) if is_rms else mean.stride(0), rstd.stride(0),
            n_rows, n_cols,
            IS_RMS=is_rms, HAS_WEIGHT=has_w, ACC=acc_dtype(x.dtype),
            ROWS=rows, BLOCK_C=block_c, num_warps=num_warps)
    if has_w:
        block_cr = dwdb_block(n_cols)
        _layernorm_bwd_dwdb_kernel[(cdiv(n_cols, block_cr),)](
            dw, db if db is not None else dw, dw_part, db_part, n_parts, n_cols,
            HAS_DB=not is_rms, BLOCK_G=32, BLOCK_C=block_cr, num_warps=4)
    return dx, dw, db


def layernorm_fwd(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                  eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LayerNorm over the last dim. x (..., C); weight, bias (C,) or None.

    Returns (y (..., C) contiguous in x's dtype, mean (N,), rstd (N,)) with N = prod(x.shape[:-1]);
    mean/rstd are float32 (float64 for float64 x).
    """
    return _norm_fwd(x, weight, bias, eps, is_rms=False)


def layernorm_bwd(dy: torch.Tensor, x: torch.Tensor, weight: Optional[torch.Tensor],
                  mean: torch.Tensor, rstd: torch.Tensor,
                  ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Returns (dx (..., C) in x's dtype, dweight (C,), dbias (C,)) in weight's dtype;
    dweight and dbias are None when weight is None. Deterministic."""
    return _norm_bwd(dy, x, weight, mean, rstd, is_rms=False)


def rmsnorm_fwd(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm over the last dim: y = x * rstd * weight, rstd = 1/sqrt(mean(x^2) + eps).
    Returns (y (..., C), rstd (N,) float32, float64 for float64 x)."""
    y, _, rstd = _norm_fwd(x, weight, None, eps, is_rms=True)
    return y, rstd


def rmsnorm_bwd(dy: torch.Tensor, x: torch.Tensor, weight: Optional[torch.Tensor],
                rstd: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Returns (dx (..., C) in x's dtype, dweight (C,) in weight's dtype or None). Deterministic."""
    dx, dw, _ = _norm_bwd(dy, x, weight, None, rstd, is_rms=True)
    return dx, dw
