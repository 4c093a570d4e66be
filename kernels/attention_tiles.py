"""Tile-level pieces shared by the attention kernels (kernels/attention.py forward,
kernels/attention_bwd.py backward): masked tile loads, the dot with the interpreter's bf16
workaround, the dropout mask's Philox counters, which block and head a program owns and the load
of one head's rows. Nothing here launches anything."""
from __future__ import annotations

import triton
import triton.language as tl

from .dropout import rand_quads


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
def _dot(a, b, DOT: tl.constexpr):
    """tl.dot with float32 accumulation. DOT: "ieee" / "tf32", float32 operands' input precision
    (kernels/helpers.py fp32_dot_precision; ignored for 16-bit operands), or "upcast": the
    interpreter's bf16 dot is wrong, so it multiplies in float32."""
    if DOT == "upcast":
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    else:
        return tl.dot(a, b, input_precision=DOT)


@triton.jit
def _rng_rows(pid_bh, rows, T, S, INDEX64: tl.constexpr):
    """Dropout: the Philox counter of keys 0..3 of probability row (b, h, row), i.e.
    (pid_bh * T + row) * ceil(S/4): kernels/dropout.py's rule for a (B, H, T, S) tensor, whose
    rows hold ceil(S/4) counters each; key j uses counter + j // 4, output j % 4."""
    groups_per_row = (S + 3) // 4
    if INDEX64:
        return (pid_bh.to(tl.int64) * T + rows.to(tl.int64)) * groups_per_row
    else:
        return (pid_bh * T + rows) * groups_per_row


@triton.jit
def _dropout_keep(seed, rng_rows, start_n, dropout_p, BLOCK_N: tl.constexpr):
    """The (len(rng_rows), BLOCK_N) dropout mask of keys start_n .. start_n + BLOCK_N - 1
    (start_n a multiple of 4: key blocks start at multiples of BLOCK_N) of the rows whose counters
    `_rng_rows` gave: one Philox call per four keys, all four outputs used (kernels/dropout.py
    `rand_quads`), a quarter of the calls of one tl.rand per entry. Keys past S take counters of
    the next row: callers mask them (their p is 0). The four outputs of a call land in one
    thread; the dot's layout spreads four neighbouring keys over two threads, so the compiler
    moves the bool tile through shared memory (BLOCK_M * BLOCK_N bytes), far cheaper than the
    three Philox calls per four scores it saves."""
    tl.static_assert(BLOCK_N % 4 == 0, "dropout draws keys in groups of 4")
    groups = rng_rows[:, None] + (start_n // 4 + tl.arange(0, BLOCK_N // 4))[None, :]  # (M, BLOCK_N/4)
    u = tl.reshape(rand_quads(seed, groups), (rng_rows.shape[0], BLOCK_N))          # (M, BLOCK_N)
    return u >= dropout_p


@triton.jit
def _block_and_head(H, LONGEST_FIRST: tl.constexpr, BLOCK: tl.constexpr):
    """(first row of this program's block, pid_bh, batch, head) from the (blocks, B*H) grid.
    LONGEST_FIRST (causal query blocks): rows near the end of the sequence see the most keys, so
    their blocks are handed out first and the grid's last wave is made of short programs."""
    if LONGEST_FIRST:
        start = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK
    else:
        start = tl.program_id(0) * BLOCK
    pid_bh = tl.program_id(1)
    return start, pid_bh, (pid_bh // H).to(tl.int64), (pid_bh % H).to(tl.int64)


@triton.jit
def _load_head_rows(ptr, off_b, off_h, stride_b, stride_h, stride_row, stride_d, rows, n_rows,
                    offs_d, D, EVEN_D: tl.constexpr):
    """The (len(rows), D_PAD) tile of head (off_b, off_h): rows past n_rows and padded head-dim
    columns load as 0."""
    return _load_tile(ptr + off_b * stride_b + off_h * stride_h + rows[:, None] * stride_row
                      + offs_d[None, :] * stride_d, rows, n_rows, offs_d, D, True, not EVEN_D)
