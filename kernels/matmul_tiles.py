"""Tile-level pieces shared by the matmul kernels (classic, persistent, split-K).

Each matmul variant differs only in *which* (tile, K-range) pairs a program computes and where the
result goes; the work on one tile is the same code, kept here once as inlined @triton.jit helpers:

- `_grouped_tile`: tile index -> (pid_m, pid_n) in grouped order (GROUP_M tile-rows swept column
  by column, so the a-rows and b-columns in flight stay in L2).
- `_dot_tile`: acc += a[tile rows, k0:k0+k_len] @ b[k0:k0+k_len, tile cols] with pointer loads.
  Rows/columns past M/N are wrapped with a modulo (loads need no M/N masks; those results are
  never stored); whole K blocks run unmasked (vectorised, software-pipelined), the K tail is one
  masked step peeled out of the loop (compiled out when every K range is a multiple of BLOCK_K).
  With ROWSUM it also sums the a tiles it loads along K (`_row_sums`): a's row sums come out of
  the same loads (a Linear's bias gradient db = dY^T 1 from its weight gradient dW = dY^T X).
- `_mma`: one acc += a @ b step (tl.dot, or float64 multiply + tl.sum).
- `_store_tile`: the epilogue on the float32 (float64) accumulator: + bias[n], activation, one
  rounding to c's dtype, masked store into any strided c; optionally also storing the
  pre-activation, or applying an activation's derivative instead (`_activation_grad`), so an MLP's
  activation costs no launch of its own in either direction.
- `_store_rowsum`: the masked store of a tile-row's (BLOCK_M,) row sums.

`prune_for_epilogue` is the autotuners' config filter for the AUX epilogues (see its docstring).

Nothing here launches anything; see kernels/matmul.py for the math and the variants' docstrings.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .elementwise_math import _binary_math
from .helpers import _cast_value


MAX_ACC_PER_THREAD_AUX = 64      # float32 accumulator values per thread kept for an AUX epilogue


def prune_for_epilogue(configs, named_args, **kwargs):
    """The classic and persistent autotuners' early_config_prune: with an AUX epilogue (the MLP's
    pre-activation store and GELU, or GELU' on a loaded pre-activation) the accumulator, the aux
    tile and the activation's temporaries are live together, so only tiles with at most
    MAX_ACC_PER_THREAD_AUX accumulator values per thread are timed. Measured with ptxas for sm_90
    (bf16, triton 3.9, AUX "pre" + GELU, docs/perf-notes.md section 10): classic 128x256 / 256x128
    tiles (128 per thread) spill 2.2-3.2 KB per thread and 128x128 with 4 warps 2.1 KB; persistent
    TMA 128x256 spills 256-424 B and 256x128 0.7-3 KB (flattened or not), 128x128 with 8 warps none.
    Without an AUX epilogue every config stays (the timing decides)."""
    if kwargs.get("AUX", "none") == "none":
        return configs
    keep = [c for c in configs
            if c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= MAX_ACC_PER_THREAD_AUX * 32 * c.num_warps]
    return keep or configs


@triton.jit
def _apply_activation(x, ACTIVATION: tl.constexpr):
    """Elementwise activation on the float32/float64 accumulator tile."""
    if ACTIVATION == "relu":
        x = tl.maximum(x, 0.0)
    elif ACTIVATION == "silu":
        x = x * tl.sigmoid(x)
    elif ACTIVATION == "gelu_tanh":
        # 0.5 * x * (1 + tanh(z)) == x * sigmoid(2z), z = sqrt(2/pi) * (x + 0.044715 x^3);
        # the sigmoid form needs no tanh (absent from core tl) and is stable for large |x|.
        z = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        x = x * tl.sigmoid(2.0 * z)
    elif ACTIVATION == "gelu_exact":
        x = 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))
    return x


@triton.jit
def _activation_grad(dy, x, ACTIVATION: tl.constexpr):
    """dy * act'(x) on the accumulator tile: the elementwise kernels' backward formulas, reused."""
    if ACTIVATION == "relu":
        return tl.where(x > 0, dy, 0.0)
    elif ACTIVATION == "silu":
        return _binary_math(dy, x, "silu_bwd", True)
    elif ACTIVATION == "gelu_tanh":
        return _binary_math(dy, x, "gelu_tanh_bwd", True)
    else:
        tl.static_assert(ACTIVATION == "gelu_exact", "AUX='grad' needs an activation")
        return _binary_math(dy, x, "gelu_bwd", True)


@triton.jit
def _mma(acc, a, b, FP64_FMA: tl.constexpr, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """acc += a @ b for one (BLOCK_M, BLOCK_K) x (BLOCK_K, BLOCK_N) step."""
    if FP64_FMA:     # float64: broadcast product (BLOCK_M, BLOCK_K, BLOCK_N) summed over K
        return acc + tl.sum(a[:, :, None] * b[None, :, :], axis=1)
    elif UPCAST_DOT:  # interpreter only: its bfloat16 tl.dot is wrong
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    else:
        return tl.dot(a, b, acc, input_precision=DOT_PRECISION)


@triton.jit
def _grouped_tile(tile, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Tile index in [0, num_pid_m * num_pid_n) -> (pid_m, pid_n), grouped order."""
    pids_per_group = GROUP_M * num_pid_n
    group_id = tile // pids_per_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((tile % pids_per_group) % group_size_m)
    pid_n = (tile % pids_per_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def _row_sums(rs, a, ROWSUM: tl.constexpr):
    """rs (BLOCK_M,) += the row sums of one loaded a tile (BLOCK_M, BLOCK_K), in rs's dtype
    (float32; float64 for float64 inputs); rs unchanged without ROWSUM (compiled out)."""
    if ROWSUM:
        rs += tl.sum(a.to(rs.dtype), axis=1)
    return rs


@triton.jit
def _dot_tile(acc, rs, a_ptr, b_ptr, pid_m, pid_n, k0, k_len, M, N,
              stride_am, stride_ak, stride_bk, stride_bn,
              FP64_FMA: tl.constexpr, UPCAST_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
              INDEX_64: tl.constexpr,
              EVEN_K: tl.constexpr,   # k_len % BLOCK_K == 0 for every caller: no tail step
              ROWSUM: tl.constexpr,   # also rs += a's row sums over this K range
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """(acc, rs): acc (BLOCK_M, BLOCK_N) += a[rows of pid_m, k0:k0+k_len] @ b[k0:k0+k_len, cols of
    pid_n]; with ROWSUM, rs (BLOCK_M,) += sum over the same k of a[rows of pid_m, k] (else rs as given).

    a_ptr/b_ptr point at the (M, K) / (K, N) matrix of this batch entry; any strides. The row sums
    read the a tiles already loaded for the dot (no extra global load): their cost is a reduction
    in registers per K step, which is why callers ask for them in one column of tiles only.
    """
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    # Wrap out-of-range rows/cols back into range (results there are never stored): loads need
    # no M/N masks. No contiguity hints here: in a tail tile the wrapped offsets are not one
    # contiguous run, and a false hint would let a vector load read past the tensor.
    offs_am = offs_m % M
    offs_bn = offs_n % N
    offs_k = tl.arange(0, BLOCK_K)
    if INDEX_64:
        offs_am = offs_am.to(tl.int64)
        offs_bn = offs_bn.to(tl.int64)
        offs_k = offs_k.to(tl.int64)
    a_ptrs = a_ptr + offs_am[:, None] * stride_am + (k0 + offs_k)[None, :] * stride_ak   # (BLOCK_M, BLOCK_K)
    b_ptrs = b_ptr + (k0 + offs_k)[:, None] * stride_bk + offs_bn[None, :] * stride_bn   # (BLOCK_K, BLOCK_N)
    # Main loop over whole K blocks, mask-free: unmasked loads vectorise, which is what lets the
    # compiler pipeline them (cp.async / TMA need >= 4-byte pieces; an element-wise K mask
    # would make every load scalar and switch multi-stage pipelining off).
    for kb in range(0, k_len // BLOCK_K):
        a = tl.load(a_ptrs)                                                  # (BLOCK_M, BLOCK_K)
        b = tl.load(b_ptrs)                                                  # (BLOCK_K, BLOCK_N)
        acc = _mma(acc, a, b, FP64_FMA, UPCAST_DOT, DOT_PRECISION)
        rs = _row_sums(rs, a, ROWSUM)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    if not EVEN_K:   # the K tail, peeled out of the loop: one masked step
        k_left = k_len % BLOCK_K
        a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)      # zeros add nothing to rs
        b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        acc = _mma(acc, a, b, FP64_FMA, UPCAST_DOT, DOT_PRECISION)
        rs = _row_sums(rs, a, ROWSUM)
    return acc, rs


@triton.jit
def _store_rowsum(rs, rowsum_ptr, pid_m, M, INDEX_64: tl.constexpr, BLOCK_M: tl.constexpr):
    """rowsum[rows of pid_m] = rs (BLOCK_M,), rounded once to rowsum's dtype; rows past M (their
    sums are of wrapped rows) are masked. rowsum is contiguous (the wrappers check it)."""
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    if INDEX_64:
        offs_m = offs_m.to(tl.int64)
    tl.store(rowsum_ptr + offs_m, _cast_value(rs, rowsum_ptr.dtype.element_ty), mask=offs_m < M)


@triton.jit
def _store_tile(acc, c_ptr, bias_ptr, aux_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, stride_bias,
                stride_auxm, stride_auxn,
                HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, AUX: tl.constexpr,
                INDEX_64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """The epilogue: c[tile] from the accumulator, rounded once to c's dtype; rows/cols past M/N
    are masked. AUX says what the second (M, N) tensor `aux` is for:

    "none"  c = act(acc + bias[n])
    "pre"   aux = acc + bias[n] rounded to aux's dtype (the pre-activation a backward needs) and
            c = act(aux) computed from that rounded value, so c is exactly what a separate
            activation kernel reading aux would give: one launch and one (M, N) read fewer
    "grad"  c = acc * act'(aux): acc is dy @ W of the layer after the activation (dy w.r.t. the
            activation's output), aux the pre-activation saved in the forward; this is the
            activation's backward done in the epilogue (the bias must be off)
    """
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if INDEX_64:
        offs_m = offs_m.to(tl.int64)
        offs_n = offs_n.to(tl.int64)
    c_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_n * stride_bias, mask=offs_n < N, other=0.0)   # (BLOCK_N,)
        acc += bias.to(acc.dtype)[None, :]
    if AUX != "none":
        aux_ptrs = aux_ptr + offs_m[:, None] * stride_auxm + offs_n[None, :] * stride_auxn
    if AUX == "pre":
        pre = _cast_value(acc, aux_ptr.dtype.element_ty)
        tl.store(aux_ptrs, pre, mask=c_mask)
        acc = _apply_activation(pre.to(acc.dtype), ACTIVATION)
    elif AUX == "grad":
        pre = tl.load(aux_ptrs, mask=c_mask, other=0.0).to(acc.dtype)
        acc = _activation_grad(acc, pre, ACTIVATION)
    else:
        acc = _apply_activation(acc, ACTIVATION)
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    # _cast_value: bfloat16 rounds to nearest even on the GPU and in the interpreter alike
    tl.store(c_ptrs, _cast_value(acc, c_ptr.dtype.element_ty), mask=c_mask)
