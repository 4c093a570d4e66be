"""Tile-level pieces shared by the attention kernels (kernels/attention.py forward,
kernels/attention_bwd.py backward): masked tile loads, the dot with the interpreter's bf16
workaround, and the dropout mask's Philox counters. Nothing here launches anything."""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _load_tile(ptrs, rows, n_rows, cols, n_cols, CHECK_ROWS: tl.constexpr, CHECK_COLS: tl.constexpr):
    """Load a 2-d tile, masking only the axes that can run past the tensor (compile-time)."""
    if CHECK_ROWS and CHECK_COLS:
        return tl.load(ptrs, mask=(rows[:, None] < n_rows) & (cols[None, :] < n_cols), other=0.0)
    elif CHECK_ROWS:
        return tl.load(ptrs, mask=rows[:, None] < n_rows, other=0.0)
    elif CHECK_COLS:
        return tl.load(ptrs, mask=cols[None, :] < n_cols, other=0.0)
    else:
        return tl.load(ptrs)


@triton.jit
def _dot(a, b, UPCAST: tl.constexpr):
    """tl.dot with float32 accumulation. UPCAST works around the interpreter's wrong bf16 dot."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    else:
        return tl.dot(a, b)


@triton.jit
def _rng_rows(pid_bh, rows, T, S, INDEX64: tl.constexpr):
    """Dropout: flat index of (b, h, row, key 0) in the row-major (B, H, T, S) probabilities,
    (pid_bh * T + row) * S; adding the key index gives the Philox counter of one entry."""
    if INDEX64:
        return (pid_bh.to(tl.int64) * T + rows.to(tl.int64)) * S
    else:
        return (pid_bh * T + rows) * S
