"""Split-K matmul for few output tiles and a long K (the weight gradients of a Linear).

    c[m, n] = act( sum_s  sum_{k in split s} a[m, k] * b[k, n]  + bias[n] )

The weight gradient dW = X^T @ dY of a GPT-2 small Linear on 8192 tokens is (768 x 8192) @ (8192 x
{768, 2304, 3072}): 36 / 108 / 144 output tiles of 128x128 for the H100's 132 SMs, each walking a
128-step K loop. One program per tile leaves most SMs idle (36 tiles) or runs a second, nearly
empty wave (144 tiles = 1.09 waves). Splitting K into S ranges gives S times as many programs,
each with a K loop S times shorter.

Work split, two launches:
1. `_matmul_splitk_partial_kernel`, grid (tiles, S): program (t, s) computes tile t over the K
   blocks [s*kb, (s+1)*kb) (kb = cdiv(cdiv(K, BLOCK_K), S), so every split starts on a BLOCK_K
   boundary and only the last one has a K tail) with the classic kernel's tile loop
   (`_dot_tile`), and writes the float32 partial tile to workspace[s] of a (S, M, N) float32
   buffer.
2. `_matmul_splitk_reduce_kernel`, one program per (BLOCK_M, BLOCK_N) tile of c: sums the S
   partials in the fixed order s = 0, 1, ..., S-1 in float32, then the usual epilogue (+ bias,
   activation, one rounding to c's dtype, masked store into any strided c; `_store_tile`).

Row sums (`rowsum=` of kernels/matmul.py, the bias gradient of a weight gradient): the partial
programs of c's first column of tiles (pid_n == 0) also sum their a tiles over their K range and
write float32 partial row sums to a (S, M) workspace behind the (S, M, N) one; the reduce programs
of the first column of tiles add the S partials in the same fixed order and store rowsum. So the
weight gradients keep split-K, which the timing picks for 768 x 768 and 768 x 3072 (docs/perf-notes.md
section 8), and the row sums cost S * M * 4 bytes more of workspace (tens of KB).

Why a workspace and a reduce kernel, not float32 atomics into c: atomic adds land in whatever
order the programs finish, so the last bits of dW would change from run to run (and training runs
would not be reproducible); atomics would also need a zero-filled float32 buffer and a cast pass
anyway for a bf16 c, and cannot apply a nonlinear epilogue. The workspace costs S*M*N*4 bytes
written and read back once (S = 3 at 768 x 768: 14 MB, ~3-5 us against a ~55 us classic matmul
on an H100; at 768 x 2304 it eats the gain, so kernels/matmul_auto.py times split-K against the
classic kernel: docs/perf-notes.md section 8), and the result is bitwise identical across runs (tested).

Limits: one matrix (no batch dims; batched matmuls have enough tiles anyway); float32 / bfloat16 /
float16 inputs (float32 accumulation and workspace).

References: CUTLASS "split-K serial/parallel" GEMM; Triton's matmul tutorials.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .helpers import cdiv, interpreting, launch_tuned
from .matmul_tiles import _dot_tile, _grouped_tile, _store_rowsum, _store_tile

MAX_SPLIT = 16            # beyond this the workspace traffic outweighs any occupancy gain
MIN_K_BLOCKS_PER_SPLIT = 4  # a split shorter than this has no K loop left to pipeline
SPLIT_FILL_BLOCKS = 4.0     # split_candidates' model: fixed cost of one program, in K-block times
SPLIT_WS_BLOCKS_PER_MB = 0.8  # ... and of 1 MB of workspace traffic (~0.33 us at ~3 TB/s)


@triton.jit
def _matmul_splitk_partial_kernel(
    ws_ptr, rs_ws_ptr, a_ptr, b_ptr,                 # rs_ws: (S, M) float32 partial row sums (ROWSUM)
    stride_am, stride_ak, stride_bk, stride_bn,      # a (M, K), b (K, N): any strides
    M, N, K,
    stride_ws,                                       # M * N: one split's plane in the workspace
    SPLIT_K,                                         # S: grid size along axis 1
    DOT_PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr, INDEX_64: tl.constexpr,
    EVEN_K: tl.constexpr,         # K % BLOCK_K == 0: no split has a K tail
    ROWSUM: tl.constexpr,         # the pid_n == 0 programs also write a's partial row sums
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    pid_m, pid_n = _grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    pid_s = tl.program_id(1)
    k_split = tl.cdiv(tl.cdiv(K, BLOCK_K), SPLIT_K) * BLOCK_K     # a whole number of K blocks
    k0 = pid_s * k_split
    k_len = max(min(K - k0, k_split), 0)    # trailing splits may be empty when S does not divide
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    rs = tl.zeros((BLOCK_M,), dtype=tl.float32)
    if ROWSUM and pid_n == 0:      # c's first column of tiles: a's row sums over this K range too
        acc, rs = _dot_tile(acc, rs, a_ptr, b_ptr, pid_m, pid_n, k0, k_len, M, N, stride_am, stride_ak,
                            stride_bk, stride_bn, False, UPCAST_DOT, DOT_PRECISION, INDEX_64, EVEN_K,
                            True, BLOCK_M, BLOCK_N, BLOCK_K)
        _store_rowsum(rs, rs_ws_ptr + pid_s * M, pid_m, M, INDEX_64, BLOCK_M)
    else:
        acc, rs = _dot_tile(acc, rs, a_ptr, b_ptr, pid_m, pid_n, k0, k_len, M, N, stride_am, stride_ak,
                            stride_bk, stride_bn, False, UPCAST_DOT, DOT_PRECISION, INDEX_64, EVEN_K,
                            False, BLOCK_M, BLOCK_N, BLOCK_K)
    ws = ws_ptr + pid_s.to(tl.int64) * stride_ws
    _store_tile(acc, ws, ws, ws, pid_m, pid_n, M, N, N, 1, 0, 0, 0, False, "none", "none", INDEX_64,
                BLOCK_M, BLOCK_N)


@triton.jit
def _matmul_splitk_reduce_kernel(
    c_ptr, rowsum_ptr, ws_ptr, rs_ws_ptr, bias_ptr, aux_ptr,   # rowsum, rs_ws: ROWSUM only
    stride_cm, stride_cn, stride_bias, stride_auxm, stride_auxn,
    M, N, stride_ws, SPLIT_K,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, AUX: tl.constexpr, INDEX_64: tl.constexpr,
    ROWSUM: tl.constexpr,         # the pid_n == 0 programs also sum the S partial row sums
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m = tl.program_id(0) // num_pid_n
    pid_n = tl.program_id(0) % num_pid_n
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if INDEX_64:
        offs_m = offs_m.to(tl.int64)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    ptrs = ws_ptr + offs_m[:, None] * N + offs_n[None, :]                    # (BLOCK_M, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for s in range(0, SPLIT_K):     # fixed order: the same bits on every run
        acc += tl.load(ptrs, mask=mask, other=0.0)
        ptrs += stride_ws
    if ROWSUM and pid_n == 0:
        rs = tl.zeros((BLOCK_M,), dtype=tl.float32)
        rs_ptrs = rs_ws_ptr + offs_m                                         # (BLOCK_M,)
        for s in range(0, SPLIT_K):     # the same fixed order
            rs += tl.load(rs_ptrs, mask=offs_m < M, other=0.0)
            rs_ptrs += M
        _store_rowsum(rs, rowsum_ptr, pid_m, M, INDEX_64, BLOCK_M)
    _store_tile(acc, c_ptr, bias_ptr, aux_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, stride_bias,
                stride_auxm, stride_auxn, HAS_BIAS, ACTIVATION, AUX, INDEX_64, BLOCK_M, BLOCK_N)


def _config(bm: int, bn: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": BLOCK_K, "GROUP_M": 8},
                         num_warps=warps, num_stages=stages)


BLOCK_K = 64              # every GPU config: the split boundaries (and so S's range) depend on it
AUTOTUNE_CONFIGS = [
    _config(128, 128, 8, 3),
    _config(128, 128, 4, 4),
    _config(128, 256, 8, 3),
    _config(64, 128, 4, 4),
    _config(128, 64, 4, 4),
]

_partial_autotuned = triton.autotune(
    configs=AUTOTUNE_CONFIGS,
    key=["M", "N", "K", "SPLIT_K", "stride_am", "stride_ak", "stride_bk", "stride_bn", "ROWSUM"],
)(triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})(_matmul_splitk_partial_kernel))


REDUCE_BLOCKS = (32, 128, 4)      # reduce (BLOCK_M, BLOCK_N, num_warps): 4096 float32 per program
INTERPRET_REDUCE_BLOCKS = (16, 16, 1)


def split_candidates(M: int, N: int, K: int, programs: int, block_k: int = BLOCK_K) -> list[int]:
    """Up to three split counts worth timing for (M, N, K) on `programs` SMs, cheapest first.

    Empty when the output already has two waves of 128x128 tiles (split-K would only add
    workspace traffic) or K is too short for two splits of MIN_K_BLOCKS_PER_SPLIT blocks. The
    ranking is a rough model in units of one K block of one tile on one SM (~0.4 us for bf16 on an
    H100): each round of programs costs its K loop plus SPLIT_FILL_BLOCKS (pipeline fill, partial
    tile store), and the workspace costs SPLIT_WS_BLOCKS_PER_MB per MB written and read back.
    kernels/matmul_auto.py times the real thing; the model only keeps it from timing sixteen splits.
    """
    tiles = cdiv(M, 128) * cdiv(N, 128)
    k_blocks = cdiv(K, block_k)
    max_split = min(MAX_SPLIT, k_blocks // MIN_K_BLOCKS_PER_SPLIT)
    if tiles >= 2 * programs or max_split < 2:
        return []

    def cost(s: int) -> float:
        rounds = cdiv(tiles * s, programs)
        return rounds * (k_blocks / s + SPLIT_FILL_BLOCKS) + SPLIT_WS_BLOCKS_PER_MB * 8 * s * M * N / 1e6

    return sorted(range(2, max_split + 1), key=cost)[:3]


def launch(c2: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor, bias: Optional[torch.Tensor],
           aux: Optional[torch.Tensor], meta: dict, split_k: int, cfg: Optional[dict],
           rowsum: Optional[torch.Tensor] = None) -> None:
    """c2 (M, N) = epilogue(a2 (M, K) @ b2 (K, N)) with K cut into `split_k` ranges (the epilogue,
    with aux (M, N) for its AUX mode, runs in the reduce kernel); with meta["ROWSUM"], rowsum (M,)
    = a2's row sums as well (partials per split, summed by the reduce kernel).

    meta: the classic kernel's epilogue/precision constexprs (FP64_FMA must be False).
    cfg: fixed tile config, or None to autotune the partial kernel (launch_tuned).
    """
    M, K = a2.shape
    N = b2.shape[1]
    rows = split_k * M if meta["ROWSUM"] else 0
    # (S, M, N) partial tiles, then (S, M) partial row sums: one buffer, every entry written
    ws_all = torch.empty(split_k * M * N + rows, dtype=torch.float32, device=a2.device)
    ws, rs_ws = ws_all[:split_k * M * N], ws_all[split_k * M * N:]
    index_64 = meta["INDEX_64"] or M * N >= 2 ** 31
    pmeta = dict(DOT_PRECISION=meta["DOT_PRECISION"], UPCAST_DOT=meta["UPCAST_DOT"], INDEX_64=index_64,
                 ROWSUM=meta["ROWSUM"])
    args = (ws, rs_ws if rows else ws, a2, b2, *a2.stride(), *b2.stride(), M, N, K, M * N, split_k)

    def grid(META):
        return (cdiv(M, META["BLOCK_M"]) * cdiv(N, META["BLOCK_N"]), split_k)

    if cfg is None:
        launch_tuned(_partial_autotuned, _matmul_splitk_partial_kernel, grid, args, pmeta,
                     derived=lambda c: {"EVEN_K": K % c["BLOCK_K"] == 0})
    else:
        _matmul_splitk_partial_kernel[grid](*args, **pmeta, EVEN_K=K % cfg["BLOCK_K"] == 0, **cfg)

    bm, bn, warps = INTERPRET_REDUCE_BLOCKS if interpreting() else REDUCE_BLOCKS
    _matmul_splitk_reduce_kernel[(cdiv(M, bm) * cdiv(N, bn),)](
        c2, rowsum if rowsum is not None else c2, ws, rs_ws if rows else ws,
        bias if bias is not None else c2, aux if aux is not None else c2, *c2.stride(),
        bias.stride(0) if bias is not None else 0, *(aux.stride() if aux is not None else (0, 0)),
        M, N, M * N, split_k, HAS_BIAS=meta["HAS_BIAS"], ACTIVATION=meta["ACTIVATION"], AUX=meta["AUX"],
        INDEX_64=index_64, ROWSUM=meta["ROWSUM"], BLOCK_M=bm, BLOCK_N=bn, num_warps=warps)
