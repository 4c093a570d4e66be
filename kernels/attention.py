"""Fused scaled dot-product attention, forward and backward (FlashAttention-2 style).

Forward, per (batch b, head h), with q (T, D), k and v (S, D):

    s = scale * q @ k^T (+ bias)          (T, S), masked to -inf where not allowed
    p = softmax(s, -1);  o = p @ v        (T, D)
    lse[i] = logsumexp_j s[i, j]          (T,)  float32, saved for backward

`causal` masks s[i, j] for j > i + (S - T): bottom-right alignment, so the last query row sees
every key (a query block at the end of a KV cache); equal to torch's is_causal when T == S.
A row whose keys are all masked (causal with T > S, or a bias full of -inf) gives o = 0 and
lse = -inf, without NaNs.

Backward (p recomputed from q, k and the saved lse, never stored):

    dv = p^T @ do;   dp = do @ v^T;   delta[i] = sum_d do[i, d] * o[i, d]  (= rowsum(p * dp))
    ds = p * (dp - delta[:, None]);   dq = scale * ds @ k;   dk = scale * ds^T @ q

The bias gets no gradient.

Dropout on the probabilities (dropout_p = p > 0), FlashAttention-2 style, the mask never stored:

    keep[b, h, i, j] = u >= p,   u = output j % 4 of Philox(seed, ((b*H + h)*T + i)*ceil(S/4) + j // 4)
    o = (p_ij * keep / (1 - p)) @ v          lse, m and l stay those of the undropped p
    dv = (p * keep / (1 - p))^T @ do;   dp = (do @ v^T) * keep / (1 - p);   ds = p * (dp - delta)

delta = rowsum(do * o) still equals rowsum(p * dp) with the dropped o and dp. Each Philox 4x32-10
call (counter based) serves four neighbouring keys of a row, kernels/dropout.py's rule for a
(B, H, T, S) tensor, so the mask is exactly the one it draws for softmax(s) of that shape with the
same seed: the fused op equals scores -> softmax -> dropout -> @ v (attention_tiles.py
`_dropout_keep`). The backward kernels draw the same numbers again from the seed. p == 1 gives
o = 0 and zero gradients (scale passed as 0, never inf). HAS_DROPOUT is a constexpr: without
dropout the Philox code is not compiled in at all. Counters are int32 unless B*H*T*ceil(S/4)
(plus block padding) reaches 2**31 (INDEX64; the same numbers either way).

Work split. The T x S score matrix is never materialised: each program streams over blocks.
- forward: one program per (BLOCK_M query rows, b*h). It loops over BLOCK_N key blocks with an
  *online softmax*: keep the running row max m, the running sum l and the unnormalised output
  acc; for each new block rescale acc and l by exp(m_old - m_new). Scores live in log2 units
  (scale*log2(e) is folded into one multiply, then exp2, which is what the hardware computes);
  lse is converted back to natural-log units on store (lse = (m + log2 l) * ln 2).
- backward (its kernels live in kernels/attention_bwd.py; the tile helpers both directions
  share in kernels/attention_tiles.py), the atomic-free two-kernel scheme of the Triton
  fused-attention tutorial (FA2), in two launches:
  1. `_attention_bwd_dq_kernel`: one program per (BLOCK_M queries, b*h) holds q, do and a dq
     accumulator and loops over key blocks. It also loads its o rows and computes
     delta = rowsum(do * o) for its queries (it needs it itself), and stores it for kernel 2:
     the tutorial's separate preprocessing launch is folded in here.
  2. `_attention_bwd_dkdv_kernel` (after 1, reads delta): one program per (BLOCK_N keys, b*h)
     holds its k, v block and dk, dv accumulators and loops over query blocks; only this
     program writes those rows. p and ds are recomputed in both: 3 matmuls in kernel 1
     (q k^T, do v^T, ds k) + 4 in kernel 2 (q k^T, p^T do, v do^T, ds^T q), i.e. 7 instead of
     FA2's 5, the price of having no atomics on dq.
- Causal work skipping: key blocks entirely above the diagonal are never visited; blocks
  entirely below it run a mask-free loop; only the blocks that straddle the diagonal (and the
  key tail when S is not a block multiple) pay for building masks. Same in the backward.
  Causal query blocks are handed out last-first (they see the most keys) to balance the grid.
- Tails and padding: the head dim is padded to a power of two >= 16 (so 48, 80, 96 work) with
  masked loads; rows past T or keys past S are masked on load. In the dk/dv kernel padded and
  fully-masked query rows get lse = +inf, which makes their p exactly 0 with no extra mask.

Cost: forward 4*T*S*D FLOPs per (b, h) (2 matmuls; halved by causal), backward conventionally
counted as 10*T*S*D (2.5x forward, 5 matmuls; this scheme executes 7, i.e. 14*T*S*D).
Memory traffic is O((T + S) * D) per (b, h) plus the bias if given, so attention is
compute-bound at realistic sizes. Dropout adds one Philox call per 4 visible (i, j) in the
forward and in each of the two backward kernels (10 rounds of two 32x32-bit multiplies with their
high halves, plus xors: tens of integer ops per call), a shared-memory conversion of each keep
tile into the dot's layout, and live registers in the loops (the dk/dv kernel already holds two
accumulators). Its GPU cost is not measured here.

Precision: float32, bfloat16 and float16 inputs, float32 accumulation and softmax statistics.
float32 inputs multiply in IEEE float32 by default (tests hold o, lse and the gradients to ~1e-4
of a float64 reference); `ALLOW_TF32 = True` or MINIGRAD_TF32=1 switches the five products to TF32
tensor cores (~1e-3 relative per product: tests allow (2e-2, 1e-2)). 16-bit inputs multiply in
their own precision (bf16 (6e-2, 3e-2), fp16 (1e-2, 1e-2) against float64). float64 is not
supported (clear error; the NumPy backend is the float64 path).

Autotuning (GPU, AUTOTUNE on, MINIGRAD_AUTOTUNE not 0): the block sizes are timed once per
(T, S) bucket, each rounded up to a power of two, with the head dim and the constexpr switches
(`_tune_key`), not per exact length: decoding with a KV cache grows S by one every token, and a
key holding S (or the cache's strides) re-ran the autotuner at every step, seconds each on a
GPU. Queries of at most SHORT_QUERY rows (decoding) use a fixed config and never autotune.

Limits: head dim D <= 256 (<= 128 recommended: larger tiles spill registers); B * H <= 65535
(grid axis 1); head dims that are not a power of two load with element masks, which stops
vectorised/pipelined loads (correct, slower); q and k share D, k and v share shape; the bias,
if given, is (B, H, T, S) (any strides, stride 0 from expand is fine) and is read once per
(query block, key block) visit.

References: Dao, "FlashAttention-2" (2023); Triton tutorial 06 (fused attention); Milakov &
Gimelshein, "Online normalizer calculation for softmax" (2018).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .attention_bwd import _attention_bwd_dkdv_kernel, _attention_bwd_dq_kernel
from .attention_tiles import _block_and_head, _dot, _dropout_keep, _load_tile, _rng_rows
from .dropout import check_seed_offset, philox_key
from .helpers import (INT32_LIMIT, _cast_value, autotune_enabled, cdiv, fp32_dot_precision, interpreting,
                      launch_tuned, next_power_of_2)

AUTOTUNE = True            # on the GPU pick block sizes by timing (not MINIGRAD_AUTOTUNE=0, not the interpreter)
ALLOW_TF32 = False         # float32 inputs: IEEE float32 products (False), TF32 (True or MINIGRAD_TF32=1)
SHORT_QUERY = 16           # T <= this (decoding): a fixed config, never autotuned
LOG2E = 1.4426950408889634


@triton.jit
def _fwd_inner(acc, m_i, l_i, q, k_ptrs, v_ptrs, bias_ptrs, offs_m, offs_n, offs_d,
               stride_kn, stride_vn, stride_bias_s, T, S, D, diag, qk_scale, lo, hi,
               rng_rows, dropout_p, seed,
               MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_BIAS: tl.constexpr,
               HAS_DROPOUT: tl.constexpr, EVEN_D: tl.constexpr, DOT: tl.constexpr,
               BLOCK_N: tl.constexpr):
    """Online-softmax sweep over key blocks [lo, hi). MASKED: build causal/tail masks.
    HAS_DROPOUT: the statistics m, l see every p; only the p @ v product drops entries."""
    k_ptrs += lo * stride_kn
    v_ptrs += lo * stride_vn
    if HAS_BIAS:
        bias_ptrs += lo * stride_bias_s
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n                                               # key indices
        k = _load_tile(k_ptrs, cols, S, offs_d, D, MASKED, not EVEN_D)        # (BLOCK_N, D_PAD)
        qk = _dot(q, tl.trans(k), DOT) * qk_scale                             # (BLOCK_M, BLOCK_N) log2 units
        if HAS_BIAS:
            bias = tl.load(bias_ptrs, mask=(offs_m[:, None] < T) & (cols[None, :] < S), other=0.0)
            qk += bias.to(tl.float32) * 1.4426950408889634
        if MASKED:
            keep = cols[None, :] < S
            if CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
            qk = tl.where(keep, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        # A row with nothing visible so far has m_new = -inf; subtracting 0 instead keeps
        # exp2(-inf - 0) = 0 rather than exp2(-inf + inf) = NaN.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(qk - m_safe[:, None])                                # (BLOCK_M, BLOCK_N)
        alpha = tl.math.exp2(m_i - m_safe)                                    # rescales old stats
        l_i = l_i * alpha + tl.sum(p, 1)
        v = _load_tile(v_ptrs, cols, S, offs_d, D, MASKED, not EVEN_D)        # (BLOCK_N, D_PAD)
        if HAS_DROPOUT:   # keep[i, j]: kernels/dropout.py's mask of the (B, H, T, S) probabilities
            kept = _dropout_keep(seed, rng_rows, start_n, dropout_p, BLOCK_N)   # (BLOCK_M, BLOCK_N)
            p = tl.where(kept, p, 0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, DOT)
        m_i = m_new
        k_ptrs += BLOCK_N * stride_kn
        v_ptrs += BLOCK_N * stride_vn
        if HAS_BIAS:
            bias_ptrs += BLOCK_N * stride_bias_s
    return acc, m_i, l_i


# ---------------------------------------------------------------------------- forward
# The seed changes every call: not specialising on it (== 1, divisible by 16) avoids recompiles.
@triton.jit(do_not_specialize=["seed"])
def _attention_fwd_kernel(
    o_ptr, lse_ptr, q_ptr, k_ptr, v_ptr, bias_ptr,
    stride_ob, stride_oh, stride_ot, stride_od,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_ks, stride_kd,
    stride_vb, stride_vh, stride_vs, stride_vd,
    stride_bias_b, stride_bias_h, stride_bias_t, stride_bias_s,   # 0 where the bias was expanded
    H, T, S, D,
    qk_scale,                      # scale * log2(e): scores go straight to exp2 units
    dropout_p,                     # drop probability (2.0 when p == 1: rand < 1 drops all)
    dropout_scale,                 # 1 / (1 - p), 0 when p == 1 (never inf)
    seed,                          # Philox key of the dropout mask
    seed_offset_ptr,               # (1,) int64 added to the key (CUDA-graph replays), if HAS_SEED_OFFSET
    CAUSAL: tl.constexpr, HAS_BIAS: tl.constexpr, DOT: tl.constexpr,
    HAS_DROPOUT: tl.constexpr,     # False compiles the Philox draws out entirely
    HAS_SEED_OFFSET: tl.constexpr,
    INDEX64: tl.constexpr,         # dropout counters need int64 (B * H * T * ceil(S/4) near 2**31)
    D_PAD: tl.constexpr,           # head dim rounded up to a power of two >= 16
    EVEN_D: tl.constexpr,          # D == D_PAD: no head-dim masks
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    seed = philox_key(seed, seed_offset_ptr, HAS_SEED_OFFSET)   # + the device offset, if any
    start_m, pid_bh, off_b, off_h = _block_and_head(H, CAUSAL, BLOCK_M)    # causal: longest first
    q_ptr += off_b * stride_qb + off_h * stride_qh
    k_ptr += off_b * stride_kb + off_h * stride_kh
    v_ptr += off_b * stride_vb + off_h * stride_vh
    o_ptr += off_b * stride_ob + off_h * stride_oh

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D_PAD)
    q = _load_tile(q_ptr + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd,
                   offs_m, T, offs_d, D, True, not EVEN_D)                   # (BLOCK_M, D_PAD)
    k_ptrs = k_ptr + offs_n[:, None] * stride_ks + offs_d[None, :] * stride_kd
    v_ptrs = v_ptr + offs_n[:, None] * stride_vs + offs_d[None, :] * stride_vd
    bias_ptrs = bias_ptr
    if HAS_BIAS:
        bias_ptrs = (bias_ptr + off_b * stride_bias_b + off_h * stride_bias_h
                     + offs_m[:, None] * stride_bias_t + offs_n[None, :] * stride_bias_s)

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, D_PAD), dtype=tl.float32)

    # Key ranges: [0, n_full) is seen by every row of this block (no masks), [n_full, hi) needs
    # masks (diagonal and/or key tail), keys >= hi are invisible to every row.
    diag = S - T                                      # query i sees key j iff j <= i + diag
    if CAUSAL:
        hi = tl.minimum(S, tl.maximum(start_m + BLOCK_M + diag, 0))
        n_full = tl.minimum(tl.maximum(start_m + diag + 1, 0), S) // BLOCK_N * BLOCK_N
    else:
        hi = S
        n_full = S // BLOCK_N * BLOCK_N
    rng_rows = offs_m                                 # unused without dropout
    if HAS_DROPOUT:
        rng_rows = _rng_rows(pid_bh, offs_m, T, S, INDEX64)                  # (BLOCK_M,)
    acc, m_i, l_i = _fwd_inner(acc, m_i, l_i, q, k_ptrs, v_ptrs, bias_ptrs, offs_m, offs_n, offs_d,
                               stride_ks, stride_vs, stride_bias_s, T, S, D, diag, qk_scale, 0, n_full,
                               rng_rows, dropout_p, seed,
                               False, CAUSAL, HAS_BIAS, HAS_DROPOUT, EVEN_D, DOT, BLOCK_N)
    acc, m_i, l_i = _fwd_inner(acc, m_i, l_i, q, k_ptrs, v_ptrs, bias_ptrs, offs_m, offs_n, offs_d,
                               stride_ks, stride_vs, stride_bias_s, T, S, D, diag, qk_scale, n_full, hi,
                               rng_rows, dropout_p, seed,
                               True, CAUSAL, HAS_BIAS, HAS_DROPOUT, EVEN_D, DOT, BLOCK_N)

    # Fully masked rows have l = 0: divide by 1 instead, giving o = 0 and lse = -inf.
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    o = acc / l_safe[:, None]
    if HAS_DROPOUT:
        o = o * dropout_scale
    lse = (m_i + tl.math.log2(l_i)) * 0.6931471805599453      # log2 units -> natural log
    tl.store(lse_ptr + pid_bh.to(tl.int64) * T + offs_m, lse, mask=offs_m < T)
    o_ptrs = o_ptr + offs_m[:, None] * stride_ot + offs_d[None, :] * stride_od
    if EVEN_D:
        tl.store(o_ptrs, _cast_value(o, o_ptr.dtype.element_ty), mask=offs_m[:, None] < T)
    else:
        tl.store(o_ptrs, _cast_value(o, o_ptr.dtype.element_ty),
                 mask=(offs_m[:, None] < T) & (offs_d[None, :] < D))


# ---------------------------------------------------------------------------- configs
def _cfgs(pairs):
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in pairs]


# (BLOCK_M, BLOCK_N, warps, stages). Forward: big query tiles amortise the q load and the
# softmax bookkeeping; the dk/dv kernel prefers big key tiles and thin query tiles, the dq
# kernel the reverse (as in the Triton tutorial's BLOCK_M1/N1, BLOCK_M2/N2).
# The last entry of each list is small enough to fit shared memory even for float32 D = 256;
# configs that do not fit are skipped by the autotuner.
_FWD_CONFIGS = _cfgs([(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 32, 4, 4),
                      (64, 64, 4, 3), (128, 64, 4, 4), (128, 128, 8, 2), (64, 32, 4, 2)])
_DKDV_CONFIGS = _cfgs([(32, 128, 4, 3), (64, 128, 8, 3), (32, 64, 4, 3), (64, 64, 4, 3),
                       (32, 128, 8, 2), (16, 128, 4, 3), (16, 64, 4, 2)])
_DQ_CONFIGS = _cfgs([(128, 32, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3), (64, 32, 4, 3),
                     (128, 32, 8, 2), (128, 16, 4, 3), (64, 16, 4, 2)])
_KEY = ["T", "S", "D_PAD", "CAUSAL", "HAS_BIAS", "HAS_DROPOUT"]

_attention_fwd_autotuned = triton.autotune(_FWD_CONFIGS, key=_KEY)(_attention_fwd_kernel)
# The dk/dv and dq kernels overwrite (never accumulate into) their outputs (dq also delta, the
# same values each time), and a dropout mask depends only on the seed, so re-running them while
# tuning is harmless.
_attention_bwd_dkdv_autotuned = triton.autotune(_DKDV_CONFIGS, key=_KEY)(_attention_bwd_dkdv_kernel)
_attention_bwd_dq_autotuned = triton.autotune(_DQ_CONFIGS, key=_KEY)(_attention_bwd_dq_kernel)


def _use_autotune(T: int) -> bool:
    return AUTOTUNE and T > SHORT_QUERY and autotune_enabled()


def _tune_key(T: int, S: int) -> tuple:
    """What the autotuner's pick may depend on: T and S rounded up to powers of two (so a growing
    KV cache re-tunes at most once per doubling, and never below SHORT_QUERY rows), and the
    constexprs (head dim, causal, bias, dropout), which launch_tuned adds from meta itself."""
    return (next_power_of_2(T), next_power_of_2(S))


def _fixed(kind: str, d_pad: int, itemsize: int) -> dict:
    """Block sizes when not autotuning (interpreter: tiny blocks so small tests hit every path).

    On the GPU the tiles shrink as a row of q/k/v grows (d_pad * itemsize bytes) so that the
    pipelined shared-memory buffers fit the 228 KB of an H100 SM (checked by compiling for sm_90).
    """
    if interpreting():
        return dict(BLOCK_M=16, BLOCK_N=16, num_warps=4, num_stages=1)
    row_bytes = d_pad * itemsize
    if kind == "short":      # a few query rows (decoding): the smallest tl.dot tile, wide key blocks
        return dict(BLOCK_M=16, BLOCK_N=64 if row_bytes <= 256 else 32, num_warps=4, num_stages=2)
    table = {   # row_bytes limit: (fwd, dkdv, dq) as (BLOCK_M, BLOCK_N, warps, stages)
        128: ((128, 64, 4, 3), (32, 128, 4, 3), (128, 32, 4, 3)),
        256: ((128, 64, 8, 3), (32, 128, 4, 3), (128, 32, 4, 3)),
        512: ((64, 64, 4, 2), (32, 64, 4, 2), (64, 32, 4, 2)),
        1024: ((64, 32, 4, 2), (16, 64, 4, 2), (64, 16, 4, 2)),
    }
    limit = min(lim for lim in table if row_bytes <= lim)
    m, n, w, st = table[limit][("fwd", "dkdv", "dq").index(kind)]
    return dict(BLOCK_M=m, BLOCK_N=n, num_warps=w, num_stages=st)


def _fixed_for(kind: str, meta: dict, itemsize: int, T: int) -> dict:
    """_fixed's config (the forward's "short" one for T <= SHORT_QUERY query rows); with dropout
    on the GPU, 8 warps: the Philox state of a tile spread over twice the threads. Compiled for
    sm_90 (bf16, D = 64): with 4 warps the dropout forward (128 x 64) spills 164 bytes per thread
    and the dk/dv kernel (32 x 128) 264 (584, 280 with a Philox call per score); with 8, none."""
    if kind == "fwd" and T <= SHORT_QUERY:
        kind = "short"
    cfg = _fixed(kind, meta["D_PAD"], itemsize)
    if meta["HAS_DROPOUT"] and not interpreting() and kind != "short":
        cfg["num_warps"] = 8
    return cfg


# ---------------------------------------------------------------------------- launch
def _check(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           bias: Optional[torch.Tensor]) -> tuple[int, int, int, int, int]:
    for n, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{name}: {n} must be a 4-d tensor (B, H, T|S, D); got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    if q.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"{name}: supports float32/bfloat16/float16; got {q.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"{name}: q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"{name}: q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")
    B, H, T, D = q.shape
    S = k.shape[2]
    if k.shape != (B, H, S, D) or v.shape != (B, H, S, D):
        raise ValueError(f"{name}: expected k and v of shape (B, H, S, D) = ({B}, {H}, S, {D}) "
                         f"matching q {tuple(q.shape)}; got k {tuple(k.shape)}, v {tuple(v.shape)}")
    if B * H > 65535:
        raise ValueError(f"{name}: B * H = {B * H} exceeds the 65535 programs of grid axis 1")
    if not 1 <= D <= 256:
        raise ValueError(f"{name}: head dim must be in [1, 256]; got {D}")
    if bias is not None:
        if bias.shape != (B, H, T, S):
            raise ValueError(f"{name}: bias must have shape (B, H, T, S) = {(B, H, T, S)} (expand it "
                             f"first); got {tuple(bias.shape)}")
        if not bias.is_floating_point() or bias.device != q.device:
            raise TypeError(f"{name}: bias must be a floating tensor on {q.device}; got "
                            f"{bias.dtype} on {bias.device}")
    return B, H, T, S, D


def _meta(q: torch.Tensor, D: int, causal: bool, bias: Optional[torch.Tensor], dropout_p: float,
          B: int, H: int, T: int, S: int) -> dict:
    d_pad = max(16, next_power_of_2(D))
    # The largest dropout counter a program forms, padded rows and keys included (blocks <= 128).
    index64 = dropout_p > 0 and (B * H * T + 128) * cdiv(S, 4) + 32 > INT32_LIMIT
    return dict(CAUSAL=bool(causal), HAS_BIAS=bias is not None, HAS_DROPOUT=dropout_p > 0,
                INDEX64=bool(index64), DOT=_dot_mode(q.dtype),
                D_PAD=d_pad, EVEN_D=d_pad == D)


def _dot_mode(dtype: torch.dtype) -> str:
    """The kernels' DOT constexpr: "upcast" for bf16 in the interpreter (its bf16 dot is wrong),
    float32's input precision ("ieee" unless TF32 is allowed), "tf32" (ignored) for 16-bit."""
    if interpreting() and dtype == torch.bfloat16:
        return "upcast"
    return fp32_dot_precision(ALLOW_TF32) if dtype == torch.float32 else "tf32"


def _dropout_args(dropout_p: float, seed: int, seed_offset: Optional[torch.Tensor],
                  like: torch.Tensor) -> tuple[tuple, dict]:
    """(p, 1 / (1 - p)) as the kernels take them, and the seed (a per-call argument, kept out of
    the autotuning signature) with the optional device-side seed offset (kernels/dropout.py,
    added to the key in the kernels). p == 1 mirrors kernels/dropout.py: p = 2.0 (every rand < 1 is
    dropped) and scale 0, so the output and gradients are 0, never inf * 0 = NaN."""
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"attention: dropout_p must be in [0, 1]; got {dropout_p}")
    if not 0 <= seed < 2 ** 31:
        raise ValueError(f"attention: seed must be in [0, 2**31); got {seed}")
    has_offset = seed_offset is not None and dropout_p > 0
    if has_offset:
        check_seed_offset(seed_offset, like.device)
    per_call = dict(seed=int(seed), seed_offset_ptr=seed_offset if has_offset else like,
                    HAS_SEED_OFFSET=has_offset)
    if dropout_p >= 1.0:
        return (2.0, 0.0), per_call
    return (float(dropout_p), 1.0 / (1.0 - dropout_p)), per_call


def _bias_args(bias: Optional[torch.Tensor], fallback: torch.Tensor) -> tuple:
    if bias is None:
        return fallback, 0, 0, 0, 0
    return (bias, *bias.stride())


def _check_out(name: str, t: torch.Tensor, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """A caller's output view: right shape, dtype and device, no stride-0 (overlapping) dims."""
    if tuple(t.shape) != tuple(shape) or t.dtype != like.dtype or t.device != like.device:
        raise ValueError(f"{name} must be {tuple(shape)} {like.dtype} on {like.device}; got "
                         f"{tuple(t.shape)} {t.dtype} on {t.device}")
    if any(st == 0 and n > 1 for n, st in zip(t.shape, t.stride())):
        raise ValueError(f"{name} must not be an expanded (stride-0) view; got strides {t.stride()}")
    return t


def _check_bwd(do: torch.Tensor, o: torch.Tensor, lse: torch.Tensor, out: Optional[tuple],
               q: torch.Tensor, S: int) -> None:
    """do, o like q; lse the forward's (B, H, T) float32; `out` (dq, dk, dv) views, if given."""
    B, H, T, D = q.shape
    for n, t in (("do", do), ("o", o)):
        if t.shape != q.shape or t.dtype != q.dtype or t.device != q.device:
            raise ValueError(f"attention_bwd: {n} must be {tuple(q.shape)} {q.dtype} on {q.device}; "
                             f"got {tuple(t.shape)} {t.dtype} on {t.device}")
    if lse.shape != (B, H, T) or lse.dtype != torch.float32 or not lse.is_contiguous():
        raise ValueError(f"attention_bwd: lse must be contiguous ({B}, {H}, {T}) float32 (from "
                         f"attention_fwd); got {tuple(lse.shape)} {lse.dtype}")
    if out is not None:
        for i, (t, shape) in enumerate(zip(out, ((B, H, T, D), (B, H, S, D), (B, H, S, D)))):
            _check_out(f"attention_bwd: out[{i}]", t, shape, q)
        if out[1].stride() != out[2].stride():
            raise ValueError(f"attention_bwd: out dk and dv must have equal strides (the kernel takes "
                             f"one set); got {out[1].stride()} and {out[2].stride()}")


def _launch_fwd(o: torch.Tensor, lse: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: Optional[torch.Tensor], causal: bool, scale: float, dropout_p: float,
                drop: tuple, per_call: dict) -> None:
    """One program per (BLOCK_M queries, b*h); block sizes autotuned on the GPU, fixed otherwise."""
    B, H, T, D = q.shape
    S = k.shape[2]
    meta = _meta(q, D, causal, bias, dropout_p, B, H, T, S)
    bias_t, *bias_strides = _bias_args(bias, q)
    args = (o, lse, q, k, v, bias_t, *o.stride(), *q.stride(), *k.stride(), *v.stride(),
            *bias_strides, H, T, S, D, float(scale) * LOG2E, *drop)

    def grid(META):
        return (cdiv(T, META["BLOCK_M"]), B * H)

    if _use_autotune(T):
        launch_tuned(_attention_fwd_autotuned, _attention_fwd_kernel, grid, args, meta, per_call=per_call,
                     tune_key=_tune_key(T, S))
    else:
        _attention_fwd_kernel[grid](*args, **per_call, **meta, **_fixed_for("fwd", meta, q.element_size(), T))


def _launch_bwd(dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor, delta: torch.Tensor,
                do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor,
                lse: torch.Tensor, bias: Optional[torch.Tensor], causal: bool, scale: float,
                dropout_p: float, drop: tuple, per_call: dict) -> None:
    """dq first: it also computes delta = rowsum(do * o) for its rows, which the dk/dv kernel reads."""
    B, H, T, D = q.shape
    S = k.shape[2]
    meta = _meta(q, D, causal, bias, dropout_p, B, H, T, S)
    bias_t, *bias_strides = _bias_args(bias, q)
    tail = (*bias_strides, H, T, S, D, float(scale), float(scale) * LOG2E, *drop)
    dq_args = (dq, delta, q, k, v, o, do, lse, bias_t, *dq.stride(), *q.stride(), *k.stride(),
               *v.stride(), *o.stride(), *do.stride(), *tail)
    dkdv_args = (dk, dv, q, k, v, do, lse, delta, bias_t, *dk.stride(), *q.stride(), *k.stride(),
                 *v.stride(), *do.stride(), *tail)

    def grid_dkdv(META):
        return (cdiv(S, META["BLOCK_N"]), B * H)

    def grid_dq(META):
        return (cdiv(T, META["BLOCK_M"]), B * H)

    if _use_autotune(T):
        key = _tune_key(T, S)
        launch_tuned(_attention_bwd_dq_autotuned, _attention_bwd_dq_kernel, grid_dq, dq_args, meta,
                     per_call=per_call, tune_key=key)
        launch_tuned(_attention_bwd_dkdv_autotuned, _attention_bwd_dkdv_kernel, grid_dkdv, dkdv_args, meta,
                     per_call=per_call, tune_key=key)
    else:
        _attention_bwd_dq_kernel[grid_dq](*dq_args, **per_call, **meta,
                                          **_fixed_for("dq", meta, q.element_size(), T))
        _attention_bwd_dkdv_kernel[grid_dkdv](*dkdv_args, **per_call, **meta,
                                              **_fixed_for("dkdv", meta, q.element_size(), T))


def attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float,
                  bias: Optional[torch.Tensor] = None, out: Optional[torch.Tensor] = None,
                  dropout_p: float = 0.0, seed: int = 0, seed_offset: Optional[torch.Tensor] = None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused attention forward. q (B, H, T, D); k, v (B, H, S, D); any strides, one dtype
    (float32/bfloat16/float16). bias: optional additive (B, H, T, S), any float dtype and strides.
    out: optional (B, H, T, D) view to write o into (e.g. a (B, T, H, D) buffer permuted, so the
    heads come out already merged, with no transpose copy).
    dropout_p > 0: o = (p * keep / (1 - p)) @ v with keep[b, h, i, j] = u >= p, u the uniform
    kernels/dropout.py gives element (row, j) of a (B, H, T, S) tensor, row = (b*H + h)*T + i
    (output j % 4 of Philox(seed, row * ceil(S/4) + j // 4)): its mask for that shape and seed.
    lse is that of the undropped probabilities.
    seed_offset: optional (1,) int64 device tensor added to the seed when the kernel runs (as
    kernels/dropout.py's; the CUDA-graph step rewrites it before each replay).

    Returns o (B, H, T, D) (contiguous unless `out` was given) in q's dtype and lse (B, H, T)
    float32 (natural log; -inf for rows with every key masked, whose o is 0).
    """
    B, H, T, S, D = _check("attention_fwd", q, k, v, bias)
    drop, per_call = _dropout_args(dropout_p, seed, seed_offset, q)
    if out is not None:
        _check_out("attention_fwd: out", out, (B, H, T, D), q)
    o = torch.empty((B, H, T, D), dtype=q.dtype, device=q.device) if out is None else out
    lse = torch.empty((B, H, T), dtype=torch.float32, device=q.device)
    if o.numel() == 0:
        return o, lse
    # S == 0 runs too: no key block is visited, so every row gets o = 0 and lse = -inf.
    _launch_fwd(o, lse, q, k, v, bias, causal, scale, dropout_p, drop, per_call)
    return o, lse


def attention_bwd(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  o: torch.Tensor, lse: torch.Tensor, causal: bool, scale: float,
                  bias: Optional[torch.Tensor] = None, out: Optional[tuple] = None,
                  dropout_p: float = 0.0, seed: int = 0, seed_offset: Optional[torch.Tensor] = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused attention backward. do, o (B, H, T, D) and lse (B, H, T) float32 from attention_fwd;
    q, k, v, causal, scale, bias, dropout_p and seed as given to it (the dropout mask is drawn
    again from the seed, never stored). Returns (dq, dk, dv) in q's dtype with the shapes
    of q, k, v (the bias gets no gradient): contiguous, or written into `out` = (dq, dk, dv)
    views (dk and dv with equal strides), e.g. the three thirds of one (B, T, 3, H, D) buffer,
    which is the gradient of a fused qkv projection's output with no concat or fill."""
    B, H, T, S, D = _check("attention_bwd", q, k, v, bias)
    drop, per_call = _dropout_args(dropout_p, seed, seed_offset, q)
    _check_bwd(do, o, lse, out, q, S)
    if T == 0 or S == 0 or B * H * D == 0:   # one side is empty: every gradient is zero
        return (torch.zeros((B, H, T, D), dtype=q.dtype, device=q.device),
                torch.zeros((B, H, S, D), dtype=q.dtype, device=q.device),
                torch.zeros((B, H, S, D), dtype=q.dtype, device=q.device))
    if out is None:
        # dk and dv are passed one set of strides, so they must be allocated alike (contiguous).
        dq, dk, dv = (torch.empty(shape, dtype=q.dtype, device=q.device)
                      for shape in ((B, H, T, D), (B, H, S, D), (B, H, S, D)))
    else:
        dq, dk, dv = out
    delta = torch.empty((B, H, T), dtype=torch.float32, device=q.device)   # written by the dq kernel
    _launch_bwd(dq, dk, dv, delta, do, q, k, v, o, lse, bias, causal, scale, dropout_p, drop, per_call)
    return dq, dk, dv
