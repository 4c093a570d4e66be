"""The fused attention backward kernels (FlashAttention-2 style, atomic-free, two launches).

The math, the work split and the costs are in kernels/attention.py's docstring, which also
launches these (`attention_bwd`). Here:

- `_attention_bwd_dq_kernel`, launched first: one program per (BLOCK_M queries, b*h) holds q, do
  and a dq accumulator, loops over key blocks, and also computes delta = rowsum(do * o) for its
  rows, which it stores for the next kernel (no separate preprocessing launch).
- `_attention_bwd_dkdv_kernel`: one program per (BLOCK_N keys, b*h) holds its k, v block and
  dk, dv accumulators and loops over query blocks; only this program writes those rows.

p and ds are recomputed from q, k and the saved lse in both; with dropout the forward's mask is
drawn again from the seed (plus the device seed offset), never stored.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .attention_tiles import _block_and_head, _dot, _dropout_keep, _load_head_rows, _load_tile, _rng_rows
from .dropout import philox_key
from .helpers import _cast_value


@triton.jit
def _bwd_dkdv_inner(dk, dv, k, v, q_ptrs, do_ptrs, bias_ptrs, lse_ptr, delta_ptr,
                    offs_m, offs_n, offs_d, stride_qt, stride_dot, stride_bias_t,
                    T, S, D, diag, qk_scale, lo, hi, pid_bh, start_n, dropout_p, dropout_scale, seed,
                    MASKED: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DROPOUT: tl.constexpr,
                    INDEX64: tl.constexpr, EVEN_D: tl.constexpr,
                    DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Accumulate dk, dv of one key block over query blocks [lo, hi). Works transposed:
    scores are (BLOCK_N keys, BLOCK_M queries) so the accumulations need no transposes.
    HAS_DROPOUT: the forward's mask is drawn again from the seed (same counters, transposed;
    start_n, this program's first key, picks the Philox counters of its keys)."""
    q_ptrs += lo * stride_qt
    do_ptrs += lo * stride_dot
    if HAS_BIAS:
        bias_ptrs += lo * stride_bias_t
    for start_m in range(lo, hi, BLOCK_M):
        rows = start_m + offs_m
        q = _load_tile(q_ptrs, rows, T, offs_d, D, True, not EVEN_D)          # (BLOCK_M, D_PAD)
        # lse in log2 units; +inf for padded rows (>= T) and fully masked rows (-inf) so that
        # their p = exp2(s - inf) is exactly 0: no row mask and no NaN.
        lse = tl.load(lse_ptr + rows, mask=rows < T, other=float("-inf"))
        lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
        qkT = _dot(k, tl.trans(q), DOT) * qk_scale                            # (BLOCK_N, BLOCK_M)
        if HAS_BIAS:
            bias = tl.load(bias_ptrs, mask=(rows[None, :] < T) & (offs_n[:, None] < S), other=0.0)
            qkT += bias.to(tl.float32) * 1.4426950408889634
        pT = tl.math.exp2(qkT - lse2[None, :])                                # (BLOCK_N, BLOCK_M)
        if MASKED:   # causal: key j visible to query i iff j <= i + diag
            pT = tl.where(offs_n[:, None] <= rows[None, :] + diag, pT, 0.0)
        do = _load_tile(do_ptrs, rows, T, offs_d, D, True, not EVEN_D)        # (BLOCK_M, D_PAD)
        delta = tl.load(delta_ptr + rows, mask=rows < T, other=0.0)
        dpT = _dot(v, tl.trans(do), DOT)                                     # (BLOCK_N, BLOCK_M)
        if HAS_DROPOUT:
            # the dropped, rescaled probabilities multiplied v: dv = (p keep / (1-p))^T do and
            # d(loss)/dp = (do v^T) keep / (1-p); delta = rowsum(do * o) is unchanged
            rng = _rng_rows(pid_bh, rows, T, S, INDEX64)                      # (BLOCK_M,)
            # drawn (queries, keys) like the forward, keys in groups of 4, then transposed
            keptT = tl.trans(_dropout_keep(seed, rng, start_n, dropout_p, BLOCK_N))  # (BLOCK_N, BLOCK_M)
            dv += _dot(tl.where(keptT, pT * dropout_scale, 0.0).to(do.dtype), do, DOT)
            dpT = tl.where(keptT, dpT * dropout_scale, 0.0)
        else:
            dv += _dot(pT.to(do.dtype), do, DOT)                             # (BLOCK_N, D_PAD)
        dsT = pT * (dpT - delta[None, :])
        dk += _dot(dsT.to(q.dtype), q, DOT)                                  # (BLOCK_N, D_PAD)
        q_ptrs += BLOCK_M * stride_qt
        do_ptrs += BLOCK_M * stride_dot
        if HAS_BIAS:
            bias_ptrs += BLOCK_M * stride_bias_t
    return dk, dv


@triton.jit(do_not_specialize=["seed"])
def _attention_bwd_dkdv_kernel(
    dk_ptr, dv_ptr, q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, bias_ptr,
    stride_dkb, stride_dkh, stride_dks, stride_dkd,   # dk and dv share these (both contiguous)
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_ks, stride_kd,
    stride_vb, stride_vh, stride_vs, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_bias_b, stride_bias_h, stride_bias_t, stride_bias_s,
    H, T, S, D,
    scale, qk_scale, dropout_p, dropout_scale, seed,  # dropout as in the forward kernel
    seed_offset_ptr,
    CAUSAL: tl.constexpr, HAS_BIAS: tl.constexpr, DOT: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, HAS_SEED_OFFSET: tl.constexpr, INDEX64: tl.constexpr,
    D_PAD: tl.constexpr, EVEN_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    seed = philox_key(seed, seed_offset_ptr, HAS_SEED_OFFSET)   # + the device offset, if any
    start_n, pid_bh, off_b, off_h = _block_and_head(H, False, BLOCK_N)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D_PAD)
    k = _load_head_rows(k_ptr, off_b, off_h, stride_kb, stride_kh, stride_ks, stride_kd,
                        offs_n, S, offs_d, D, EVEN_D)                         # (BLOCK_N, D_PAD)
    v = _load_head_rows(v_ptr, off_b, off_h, stride_vb, stride_vh, stride_vs, stride_vd,
                        offs_n, S, offs_d, D, EVEN_D)
    q_ptrs = (q_ptr + off_b * stride_qb + off_h * stride_qh
              + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd)
    do_ptrs = (do_ptr + off_b * stride_dob + off_h * stride_doh
               + offs_m[:, None] * stride_dot + offs_d[None, :] * stride_dod)
    bias_ptrs = bias_ptr
    if HAS_BIAS:   # laid out (BLOCK_N, BLOCK_M) like the transposed scores
        bias_ptrs = (bias_ptr + off_b * stride_bias_b + off_h * stride_bias_h
                     + offs_m[None, :] * stride_bias_t + offs_n[:, None] * stride_bias_s)
    lse_ptr += pid_bh.to(tl.int64) * T
    delta_ptr += pid_bh.to(tl.int64) * T
    dk = tl.zeros((BLOCK_N, D_PAD), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, D_PAD), dtype=tl.float32)

    # Query ranges for this key block: rows < lo see none of it, rows in [lo, m_full) see part
    # of it (mask), rows >= m_full see all of it. Padded keys (>= S) produce garbage dk/dv
    # rows that are never stored, so keys need no mask here.
    diag = S - T
    if CAUSAL:
        lo = tl.maximum(start_n - diag, 0) // BLOCK_M * BLOCK_M
        m_full = tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - diag, lo), BLOCK_M) * BLOCK_M
        m_full = tl.minimum(m_full, T)
    else:
        lo = 0
        m_full = 0
    dk, dv = _bwd_dkdv_inner(dk, dv, k, v, q_ptrs, do_ptrs, bias_ptrs, lse_ptr, delta_ptr,
                             offs_m, offs_n, offs_d, stride_qt, stride_dot, stride_bias_t,
                             T, S, D, diag, qk_scale, lo, m_full, pid_bh, start_n, dropout_p, dropout_scale,
                             seed, True, HAS_BIAS, HAS_DROPOUT, INDEX64, EVEN_D, DOT, BLOCK_M, BLOCK_N)
    dk, dv = _bwd_dkdv_inner(dk, dv, k, v, q_ptrs, do_ptrs, bias_ptrs, lse_ptr, delta_ptr,
                             offs_m, offs_n, offs_d, stride_qt, stride_dot, stride_bias_t,
                             T, S, D, diag, qk_scale, tl.maximum(m_full, lo), T,
                             pid_bh, start_n, dropout_p, dropout_scale, seed,
                             False, HAS_BIAS, HAS_DROPOUT, INDEX64, EVEN_D, DOT, BLOCK_M, BLOCK_N)

    dk *= scale                                     # ds is d(loss)/d(s); s = scale * q.k
    out_offs = (off_b * stride_dkb + off_h * stride_dkh
                + offs_n[:, None] * stride_dks + offs_d[None, :] * stride_dkd)
    mask = (offs_n[:, None] < S) & (offs_d[None, :] < D)
    tl.store(dk_ptr + out_offs, _cast_value(dk, dk_ptr.dtype.element_ty), mask=mask)
    tl.store(dv_ptr + out_offs, _cast_value(dv, dv_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_dq_inner(dq, q, do, lse2, delta, k_ptrs, v_ptrs, bias_ptrs, offs_m, offs_n, offs_d,
                  stride_ks, stride_vs, stride_bias_s, T, S, D, diag, qk_scale, lo, hi,
                  rng_rows, dropout_p, dropout_scale, seed,
                  MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_BIAS: tl.constexpr,
                  HAS_DROPOUT: tl.constexpr, EVEN_D: tl.constexpr, DOT: tl.constexpr,
                  BLOCK_N: tl.constexpr):
    """Accumulate dq of one query block over key blocks [lo, hi)."""
    k_ptrs += lo * stride_ks
    v_ptrs += lo * stride_vs
    if HAS_BIAS:
        bias_ptrs += lo * stride_bias_s
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        k = _load_tile(k_ptrs, cols, S, offs_d, D, MASKED, not EVEN_D)        # (BLOCK_N, D_PAD)
        v = _load_tile(v_ptrs, cols, S, offs_d, D, MASKED, not EVEN_D)
        qk = _dot(q, tl.trans(k), DOT) * qk_scale                             # (BLOCK_M, BLOCK_N)
        if HAS_BIAS:
            bias = tl.load(bias_ptrs, mask=(offs_m[:, None] < T) & (cols[None, :] < S), other=0.0)
            qk += bias.to(tl.float32) * 1.4426950408889634
        p = tl.math.exp2(qk - lse2[:, None])
        if MASKED:   # keys past S (their p would be exp2(0 - lse), not 0) and causal diagonal
            keep = cols[None, :] < S
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
            p = tl.where(keep, p, 0.0)
        dp = _dot(do, tl.trans(v), DOT)                                      # (BLOCK_M, BLOCK_N)
        if HAS_DROPOUT:   # d(loss)/dp = (do v^T) keep / (1-p), the forward's mask drawn again
            kept = _dropout_keep(seed, rng_rows, start_n, dropout_p, BLOCK_N)   # (BLOCK_M, BLOCK_N)
            dp = tl.where(kept, dp * dropout_scale, 0.0)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, DOT)                                   # (BLOCK_M, D_PAD)
        k_ptrs += BLOCK_N * stride_ks
        v_ptrs += BLOCK_N * stride_vs
        if HAS_BIAS:
            bias_ptrs += BLOCK_N * stride_bias_s
    return dq


@triton.jit(do_not_specialize=["seed"])
def _attention_bwd_dq_kernel(
    dq_ptr, delta_ptr, q_ptr, k_ptr, v_ptr, o_ptr, do_ptr, lse_ptr, bias_ptr,
    stride_dqb, stride_dqh, stride_dqt, stride_dqd,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_ks, stride_kd,
    stride_vb, stride_vh, stride_vs, stride_vd,
    stride_ob, stride_oh, stride_ot, stride_od,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_bias_b, stride_bias_h, stride_bias_t, stride_bias_s,
    H, T, S, D,
    scale, qk_scale, dropout_p, dropout_scale, seed,  # dropout as in the forward kernel
    seed_offset_ptr,
    CAUSAL: tl.constexpr, HAS_BIAS: tl.constexpr, DOT: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, HAS_SEED_OFFSET: tl.constexpr, INDEX64: tl.constexpr,
    D_PAD: tl.constexpr, EVEN_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """dq of one query block, and delta = rowsum(do * o) of its rows, stored for the dk/dv kernel
    that runs next (so the backward needs no separate preprocessing launch)."""
    seed = philox_key(seed, seed_offset_ptr, HAS_SEED_OFFSET)   # + the device offset, if any
    start_m, pid_bh, off_b, off_h = _block_and_head(H, CAUSAL, BLOCK_M)    # causal: longest first
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D_PAD)
    q = _load_head_rows(q_ptr, off_b, off_h, stride_qb, stride_qh, stride_qt, stride_qd,
                        offs_m, T, offs_d, D, EVEN_D)                         # (BLOCK_M, D_PAD)
    do = _load_head_rows(do_ptr, off_b, off_h, stride_dob, stride_doh, stride_dot, stride_dod,
                         offs_m, T, offs_d, D, EVEN_D)
    lse = tl.load(lse_ptr + pid_bh.to(tl.int64) * T + offs_m, mask=offs_m < T, other=float("-inf"))
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)   # p = 0 rows
    o = _load_head_rows(o_ptr, off_b, off_h, stride_ob, stride_oh, stride_ot, stride_od,
                        offs_m, T, offs_d, D, EVEN_D)                         # (BLOCK_M, D_PAD)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)                  # (BLOCK_M,) = rowsum(p * dp)
    tl.store(delta_ptr + pid_bh.to(tl.int64) * T + offs_m, delta, mask=offs_m < T)
    rng_rows = offs_m                                 # unused without dropout
    if HAS_DROPOUT:
        rng_rows = _rng_rows(pid_bh, offs_m, T, S, INDEX64)                  # (BLOCK_M,)
    k_ptrs = (k_ptr + off_b * stride_kb + off_h * stride_kh
              + offs_n[:, None] * stride_ks + offs_d[None, :] * stride_kd)
    v_ptrs = (v_ptr + off_b * stride_vb + off_h * stride_vh
              + offs_n[:, None] * stride_vs + offs_d[None, :] * stride_vd)
    bias_ptrs = bias_ptr
    if HAS_BIAS:
        bias_ptrs = (bias_ptr + off_b * stride_bias_b + off_h * stride_bias_h
                     + offs_m[:, None] * stride_bias_t + offs_n[None, :] * stride_bias_s)
    dq = tl.zeros((BLOCK_M, D_PAD), dtype=tl.float32)

    diag = S - T                                      # same key ranges as the forward
    if CAUSAL:
        hi = tl.minimum(S, tl.maximum(start_m + BLOCK_M + diag, 0))
        n_full = tl.minimum(tl.maximum(start_m + diag + 1, 0), S) // BLOCK_N * BLOCK_N
    else:
        hi = S
        n_full = S // BLOCK_N * BLOCK_N
    dq = _bwd_dq_inner(dq, q, do, lse2, delta, k_ptrs, v_ptrs, bias_ptrs, offs_m, offs_n, offs_d,
                       stride_ks, stride_vs, stride_bias_s, T, S, D, diag, qk_scale, 0, n_full,
                       rng_rows, dropout_p, dropout_scale, seed,
                       False, CAUSAL, HAS_BIAS, HAS_DROPOUT, EVEN_D, DOT, BLOCK_N)
    dq = _bwd_dq_inner(dq, q, do, lse2, delta, k_ptrs, v_ptrs, bias_ptrs, offs_m, offs_n, offs_d,
                       stride_ks, stride_vs, stride_bias_s, T, S, D, diag, qk_scale, n_full, hi,
                       rng_rows, dropout_p, dropout_scale, seed,
                       True, CAUSAL, HAS_BIAS, HAS_DROPOUT, EVEN_D, DOT, BLOCK_N)
    dq *= scale
    tl.store(dq_ptr + off_b * stride_dqb + off_h * stride_dqh
             + offs_m[:, None] * stride_dqt + offs_d[None, :] * stride_dqd,
             _cast_value(dq, dq_ptr.dtype.element_ty), mask=(offs_m[:, None] < T) & (offs_d[None, :] < D))
