"""Cross-entropy over a (possibly huge) vocabulary, forward and backward, in Triton.

Math, per row i of logits x (V columns) with target t_i:
    lse_i   = log(sum_j exp(x_ij))                       (a max-shifted, online log-sum-exp)
    loss_i  = lse_i - x_{i, t_i},  and 0 where t_i == ignore_index
    dx_ij   = dloss_i * (exp(x_ij - lse_i) - [j == t_i]),  and 0 rows where t_i == ignore_index

Work split.
  * forward: one program per row walks the vocabulary in BLOCK_V chunks with a running
    max and a running sum rescaled when the max grows (online softmax), so V = 50257 or
    50304 never has to fit in registers. The target logit is a single scalar load. Reads the logits once.
  * backward: a 2-D grid (row, vocabulary chunk): every program recomputes
    exp(x - lse) for its chunk from the saved lse and writes dlogits. Reads the logits once,
    writes dlogits once.
  * fused forward+backward (`cross_entropy_fwd_bwd`, Liger-Kernel style): one program per
    row computes lse in a first walk and writes dlogits = grad_scale * (softmax - onehot)
    in a second walk, so the (N, V) softmax is never materialised and the backward pass
    needs no second launch. `out=logits` overwrites the logits with their gradient in place
    (safe: every element is read before it is written, by the same program), which saves
    the N*V buffer, as Liger does. The training loop can call it when it knows the loss
    scale up front (e.g. grad_scale = 1 / number of counted targets for a mean).

Bytes moved: forward N*V*elt (+ small), backward 2*N*V*elt, fused 3*N*V*elt (the second
read of a row often hits L2). FLOPs are negligible; everything is bandwidth bound.

Targets: int64 (any int dtype works). A target equal to ignore_index gives loss 0 and a zero
gradient row. A target out of [0, V) that is not ignore_index is never read (the load is
masked): its loss is NaN so that the bug is visible, and its gradient row is the softmax
(nothing subtracted). The backend checks ranges before calling.

Accumulation is float32 (float64 for float64 logits); losses and lse are float32 (float64
for float64 logits); dlogits takes the logits' dtype.

References: Liger-Kernel (Hsu et al. 2024) fused linear cross-entropy; Milakov &
Gimelshein 2018 (online softmax).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .helpers import _cast_value, acc_dtype, cdiv, check_float, next_power_of_2

# Vocabulary chunk per loop iteration (forward and fused paths) and per program (backward).
BLOCK_V = 4096


# ---------------------------------------------------------------------------- kernels
@triton.jit
def _row_lse(x_row, stride_xn, n_cols, ACC: tl.constexpr, BLOCK_V: tl.constexpr):
    """log(sum(exp(x_row))) of one row by an online walk over BLOCK_V chunks."""
    offs = tl.arange(0, BLOCK_V)
    m = tl.full([], -float("inf"), ACC)       # running max
    s = tl.full([], 0.0, ACC)                 # running sum of exp(x - m)
    for start in range(0, n_cols, BLOCK_V):
        cols = start + offs
        x = tl.load(x_row + cols * stride_xn, mask=cols < n_cols, other=-float("inf")).to(ACC)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        shift = tl.where(m_new == -float("inf"), 0.0, m_new)    # no -inf - -inf NaNs
        s = s * tl.exp(m - shift) + tl.sum(tl.exp(x - shift), axis=0)
        m = m_new
    return m + tl.log(s)          # an all -inf row gives -inf + log(0) = -inf


@triton.jit
def _cross_entropy_fwd_kernel(loss_ptr, lse_ptr,
                              x_ptr, t_ptr,
                              stride_xm, stride_xn, stride_t,
                              n_cols, ignore_index,
                              ACC: tl.constexpr, BLOCK_V: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    lse = _row_lse(x_row, stride_xn, n_cols, ACC, BLOCK_V)
    t = tl.load(t_ptr + row * stride_t).to(tl.int64)
    in_range = (t >= 0) & (t < n_cols)
    # Masked scalar load: an out-of-range target is never dereferenced (NaN loss instead).
    x_t = tl.load(x_row + t * stride_xn, mask=in_range, other=float("nan")).to(ACC)
    loss = tl.where(t == ignore_index, 0.0, lse - x_t)
    tl.store(loss_ptr + row, _cast_value(loss, loss_ptr.dtype.element_ty))
    tl.store(lse_ptr + row, _cast_value(lse, lse_ptr.dtype.element_ty))


@triton.jit
def _cross_entropy_bwd_kernel(dx_ptr,
                              dloss_ptr, x_ptr, t_ptr, lse_ptr,
                              stride_dl, stride_xm, stride_xn, stride_t, stride_lse, stride_dxm,
                              n_cols, ignore_index,
                              ACC: tl.constexpr, BLOCK_V: tl.constexpr):
    """Grid (N, cdiv(V, BLOCK_V)): one vocabulary chunk of one row per program."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)              # (BLOCK_V,)
    col_mask = cols < n_cols
    t = tl.load(t_ptr + row * stride_t).to(tl.int64)
    dloss = tl.load(dloss_ptr + row * stride_dl).to(ACC)
    dloss = tl.where(t == ignore_index, 0.0, dloss)
    lse = tl.load(lse_ptr + row * stride_lse).to(ACC)
    x = tl.load(x_ptr + row * stride_xm + cols * stride_xn, mask=col_mask, other=0.0).to(ACC)
    p = tl.exp(x - lse)
    dx = dloss * (p - tl.where(cols == t, 1.0, 0.0))
    tl.store(dx_ptr + row * stride_dxm + cols, _cast_value(dx, dx_ptr.dtype.element_ty), mask=col_mask)


@triton.jit
def _cross_entropy_fwd_bwd_kernel(loss_ptr, lse_ptr, dx_ptr,
                                  x_ptr, t_ptr,
                                  stride_xm, stride_xn, stride_t, stride_dxm, stride_dxn,
                                  n_cols,
                                  n_out_cols,     # >= n_cols: dx columns n_cols.. are written 0 (padding)
                                  ignore_index, grad_scale,
                                  ACC: tl.constexpr, BLOCK_V: tl.constexpr):
    """One program per row: lse walk, then a walk writing dx (may alias x, see module doc)."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    dx_row = dx_ptr + row * stride_dxm
    lse = _row_lse(x_row, stride_xn, n_cols, ACC, BLOCK_V)
    t = tl.load(t_ptr + row * stride_t).to(tl.int64)
    in_range = (t >= 0) & (t < n_cols)
    x_t = tl.load(x_row + t * stride_xn, mask=in_range, other=float("nan")).to(ACC)
    ignored = t == ignore_index
    tl.store(loss_ptr + row, _cast_value(tl.where(ignored, 0.0, lse - x_t), loss_ptr.dtype.element_ty))
    tl.store(lse_ptr + row, _cast_value(lse, lse_ptr.dtype.element_ty))
    scale = tl.where(ignored, 0.0, grad_scale)
    offs = tl.arange(0, BLOCK_V)
    for start in range(0, n_out_cols, BLOCK_V):
        cols = start + offs
        x = tl.load(x_row + cols * stride_xn, mask=cols < n_cols, other=0.0).to(ACC)
        dx = scale * (tl.exp(x - lse) - tl.where(cols == t, 1.0, 0.0))
        dx = tl.where(cols < n_cols, dx, 0.0)
        tl.store(dx_row + cols * stride_dxn, _cast_value(dx, dx_ptr.dtype.element_ty), mask=cols < n_out_cols)


# ---------------------------------------------------------------------------- helpers
def _check_inputs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    check_float(logits, "logits")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-d (N, V), got shape {tuple(logits.shape)}")
    if not isinstance(targets, torch.Tensor) or targets.dtype.is_floating_point \
            or targets.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise TypeError(f"targets must be an integer tensor (int64), got "
                        f"{getattr(targets, 'dtype', type(targets).__name__)}")
    n_rows, n_cols = logits.shape
    if tuple(targets.shape) != (n_rows,):
        raise ValueError(f"targets must have shape ({n_rows},), got {tuple(targets.shape)}")
    if targets.device != logits.device:
        raise ValueError(f"targets must be on {logits.device}, got {targets.device}")
    if n_cols == 0:
        raise ValueError("logits must have at least one class (V > 0)")
    return n_rows, n_cols


def _check_rows(n_rows: int, device: torch.device, **vectors: torch.Tensor) -> None:
    """Each of `vectors` (dlosses, lse) is a float (n_rows,) tensor on `device` (any strides)."""
    for name, v in vectors.items():
        check_float(v, name)
        if tuple(v.shape) != (n_rows,):
            raise ValueError(f"{name} must have shape ({n_rows},), got {tuple(v.shape)}")
        if v.device != device:
            raise ValueError(f"{name} must be on {device}, got {v.device}")


def _check_out(out: torch.Tensor, logits: torch.Tensor) -> None:
    """out: (N, V_out >= V) of the logits' dtype and device."""
    n_rows, n_cols = logits.shape
    if (out.dim() != 2 or out.shape[0] != n_rows or out.shape[1] < n_cols or out.dtype != logits.dtype
            or out.device != logits.device):
        raise ValueError(f"out must be ({n_rows}, >= {n_cols}) {logits.dtype} on {logits.device}, got "
                         f"{tuple(out.shape)} {out.dtype} on {out.device}")


def _pick_block(n_cols: int, block_size: Optional[int]) -> int:
    if block_size is None:
        return min(BLOCK_V, next_power_of_2(n_cols))
    if block_size < 1 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two, got {block_size}")
    return block_size


def _num_warps(block: int) -> int:
    return max(4, min(16, block // 256))


# ---------------------------------------------------------------------------- launchers
def cross_entropy_fwd(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int,
                      block_size: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N, V) float (any strides), targets (N,) int64 -> (losses (N,), lse (N,)).

    losses[i] = lse[i] - logits[i, t_i], 0 where t_i == ignore_index; both float32
    (float64 for float64 logits). `block_size` (power of two) overrides the vocabulary chunk.
    """
    n_rows, n_cols = _check_inputs(logits, targets)
    stat_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    losses = torch.empty(n_rows, dtype=stat_dtype, device=logits.device)
    lse = torch.empty(n_rows, dtype=stat_dtype, device=logits.device)
    if n_rows == 0:
        return losses, lse
    block = _pick_block(n_cols, block_size)
    _cross_entropy_fwd_kernel[(n_rows,)](
        losses, lse, logits, targets,
        logits.stride(0), logits.stride(1), targets.stride(0), n_cols, int(ignore_index),
        ACC=acc_dtype(logits.dtype), BLOCK_V=block, num_warps=_num_warps(block))
    return losses, lse


def cross_entropy_bwd(dlosses: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                      lse: torch.Tensor, ignore_index: int,
                      block_size: Optional[int] = None) -> torch.Tensor:
    """dlogits (N, V) contiguous, logits' dtype: dlosses[i] * (softmax(logits[i]) - onehot(t_i)),
    zero rows where t_i == ignore_index. dlosses and lse are (N,) float (any strides;
    a stride-0 expanded dlosses works)."""
    n_rows, n_cols = _check_inputs(logits, targets)
    _check_rows(n_rows, logits.device, dlosses=dlosses, lse=lse)
    dlogits = torch.empty((n_rows, n_cols), dtype=logits.dtype, device=logits.device)
    if n_rows == 0:
        return dlogits
    block = _pick_block(n_cols, block_size)
    _cross_entropy_bwd_kernel[(n_rows, cdiv(n_cols, block))](
        dlogits, dlosses, logits, targets, lse,
        dlosses.stride(0), logits.stride(0), logits.stride(1), targets.stride(0), lse.stride(0),
        n_cols, n_cols, int(ignore_index),
        ACC=acc_dtype(logits.dtype), BLOCK_V=block, num_warps=_num_warps(block))
    return dlogits


def cross_entropy_fwd_bwd(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int,
                          grad_scale: float, out: Optional[torch.Tensor] = None,
                          block_size: Optional[int] = None,
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and backward in one launch: (losses (N,), lse (N,), dlogits (N, V)).

    dlogits = grad_scale * (softmax(logits) - onehot(t)) with zero ignored rows, i.e. the
    gradient of grad_scale * sum(losses). `out` (N, V) of logits' dtype receives dlogits;
    `out=logits` overwrites the logits in place (their values are no longer needed). `out` may be
    wider, (N, V_out > V): its extra columns are written 0 (a padded vocabulary: logits is then
    the view out[:, :V] of the lm_head output, whose padded columns get no gradient).
    """
    n_rows, n_cols = _check_inputs(logits, targets)
    if out is not None:
        _check_out(out, logits)
    stat_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    losses = torch.empty(n_rows, dtype=stat_dtype, device=logits.device)
    lse = torch.empty(n_rows, dtype=stat_dtype, device=logits.device)
    if out is None:
        out = torch.empty((n_rows, n_cols), dtype=logits.dtype, device=logits.device)
    if n_rows == 0:
        return losses, lse, out
    block = _pick_block(n_cols, block_size)
    _cross_entropy_fwd_bwd_kernel[(n_rows,)](
        losses, lse, out, logits, targets,
        logits.stride(0), logits.stride(1), targets.stride(0), out.stride(0), out.stride(1),
        n_cols, out.shape[1], int(ignore_index), float(grad_scale),
        ACC=acc_dtype(logits.dtype), BLOCK_V=block, num_warps=_num_warps(block))
    return losses, lse, out
