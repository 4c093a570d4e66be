"""Batched matrix multiply with a fused bias + activation epilogue.

    c[..., m, n] = act( sum_k a[..., m, k] * b[..., k, n]  + bias[n] )

a is (..., M, K), b is (..., K, N), both any strided view (transposed, sliced, batch dims
expanded with stride 0); c is (..., M, N) in the inputs' dtype, accumulated in float32
(float64 for float64 inputs). There is no backward kernel: the backward of c = a @ b is two more
matmuls (dA = dC @ B^T, dB = A^T @ dC), done by calling `matmul` on transposed *views*, which is
why both operands may be transposed without a copy. The fused activation is forward-only
(the caller that wants its gradient asks for the pre-activation with `pre_out=`, and
`act_grad_at=` applies the activation's derivative in the epilogue of the backward's matmul).

Work split (as in the Triton matmul tutorial): one program per (BLOCK_M, BLOCK_N) tile of c per
batch entry. Each walks K in BLOCK_K steps, loads an a-tile and a b-tile and feeds `tl.dot`
(tensor cores: wgmma on Hopper, mma on Ampere). Tiles are visited in *grouped* order: GROUP_M
consecutive tile-rows are swept column by column, so the a-rows of a group and the b-columns
in flight stay in L2 and each operand is read from HBM about once per group instead of once per
tile. The batch index is the slowest-moving part of the program id so a whole matrix finishes
before the next starts.

The wrapper `matmul` is the tutorial's three steps: check the operands, allocate c, launch the
kernel (per batch index left after collapsing, see below). Its tile config is autotuned on a GPU
when AUTOTUNE is on (launch_tuned: the autotuner runs once per launch signature), fixed otherwise
(tests, the interpreter).

Variants: this "classic" one-program-per-tile kernel has two siblings that share its tile code
(kernels/matmul_tiles.py): a persistent kernel (kernels/matmul_persistent.py: one program per
SM walking tiles, TMA loads on sm_90) for grids of many tiles with short K loops, and split-K
(kernels/matmul_splitk.py: K cut into S ranges, float32 partials reduced in a fixed order) for
outputs with fewer tiles than SMs and a long K, i.e. the weight gradients. `matmul` launches the
classic kernel unless `variant=` names another (tests, benchmarks). Choosing among them by timing
each shape on the GPU, and replaying a seen call's launch to save host time, is the performance
layer's business: kernels/matmul_auto.py reuses this file's steps and adds both.

Row sums (`rowsum=`, 2-d only): rowsum[m] = sum_k a[m, k] from the same launch. With a = dY^T
(the weight gradient dW = dY^T X of a Linear) that is the bias gradient db, which would otherwise be a
column-sum launch over dY of its own. The programs of c's first column of tiles (pid_n == 0) add up
the a tiles they load anyway, in float32 registers, and store their BLOCK_M sums: one writer per row,
so no atomics and no zero fill; the other programs take the plain loop (a uniform branch per
program). Cost: a (BLOCK_M, BLOCK_K) reduction per K step in those programs only.

Tails: rows/columns past M/N are clamped with a modulo (`offs % M`) so their loads stay in
bounds without masks (their results are simply not stored); the K tail is one masked step peeled
out of the main loop (skipped at compile time when K % BLOCK_K == 0), so the main loop's loads
stay unmasked, vectorised and software-pipelined.

Batch dims: all leading dims are collapsed *jointly* for a, b and c into as few dims as the
strides allow (dims of size 1 dropped; neighbours merged when every tensor's strides nest).
The kernel takes two batch dims with their own strides (this covers contiguous, transposed,
expanded-stride-0 and (B, H)-style batches); when more than two remain after collapsing, the
launch function loops over the extra leading ones on the host, one launch per index, with
zero-copy `as_strided` views. Offsets are int32 unless some tensor spans more than 2**31
elements, then int64 (a compile-time switch).

Precision, per input dtype (what the tests hold each to, against the NumPy specification):
- float32: IEEE float32 products and accumulation by default (`input_precision="ieee"`; rtol/atol
  ~1e-4 at test sizes). TF32 tensor cores (10-bit mantissa products, float32 accumulation, about
  8x the throughput on an H100, ~1e-3 relative error per product: tests allow (2e-2, 1e-2)) only
  when asked: `ALLOW_TF32 = True` here or MINIGRAD_TF32=1 in the environment
  (helpers.fp32_dot_precision). The interpreter always computes in IEEE.
- bfloat16 / float16: the inputs' own precision, float32 accumulation, one rounding of the
  result (bf16 round to nearest even): errors are those of the inputs' last bit.
- float64: float64 multiply-adds (no tensor cores), as the NumPy backend.
float64 inputs do not use tl.dot (fp64 tensor-core dot support varies across Triton versions
and GPUs): they take a plain multiply-and-`tl.sum` path in float64, correct but slow; it exists
so the float64 reference runs can go through the same entry point.

Cost: 2*M*N*K FLOPs per batch entry; bytes ~ (M*K + K*N)*(reuse-dependent) + M*N*itemsize. At
GPT-2 sizes it is compute-bound; the benchmark reports TFLOP/s against measured cuBLAS.

Limits: a and b must share dtype and device; batch dims must be equal (broadcast above with
`expand`); `out`, when given, must not overlap itself (no stride-0 dims).

References: Triton tutorial 03 (matrix multiplication), "grouped ordering" section;
CUTLASS's threadblock swizzle for the same L2 idea.
"""
from __future__ import annotations

import itertools
from typing import Iterator, Optional

import torch
import triton
import triton.language as tl

from . import matmul_persistent as _persistent
from . import matmul_splitk as _splitk
from .helpers import autotune_enabled, cdiv, fp32_dot_precision, interpreting, launch_tuned
from .matmul_plan import Launch
from .matmul_tiles import _dot_tile, _grouped_tile, _store_rowsum, _store_tile, prune_for_epilogue

# Launch-time switches (read on every call, never at import).
AUTOTUNE = True        # on the GPU pick the tile config by timing (unless MINIGRAD_AUTOTUNE=0)
ALLOW_TF32 = False     # float32 inputs: IEEE float32 dot (False), TF32 tensor cores (True or MINIGRAD_TF32=1)

ACTIVATIONS = (None, "relu", "silu", "gelu", "gelu_tanh", "gelu_exact")
VARIANTS = ("classic", "persistent", "splitk")


@triton.jit
def _matmul_fwd_kernel(
    c_ptr, a_ptr, b_ptr, bias_ptr, aux_ptr, rowsum_ptr,   # rowsum (M,) contiguous, ROWSUM only
    stride_c0, stride_c1, stride_cm, stride_cn,      # c viewed as (B0, B1, M, N)
    stride_a0, stride_a1, stride_am, stride_ak,      # a viewed as (B0, B1, M, K); may be 0/transposed
    stride_b0, stride_b1, stride_bk, stride_bn,      # b viewed as (B0, B1, K, N)
    stride_bias, stride_auxm, stride_auxn,           # aux (M, N): one matrix only (no batch)
    M, N, K, B1,                                     # B1: size of the inner batch dim
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, AUX: tl.constexpr,
    ROWSUM: tl.constexpr,         # also rowsum[m] = sum_k a[m, k] (one matrix only: 2-d a and b)
    FP64_FMA: tl.constexpr,       # float64 inputs: multiply + tl.sum in float64 instead of tl.dot
    DOT_PRECISION: tl.constexpr,  # "ieee" (default) or "tf32" for float32 inputs
    UPCAST_DOT: tl.constexpr,     # interpreter only: its bf16 tl.dot is wrong, so dot in float32
    INDEX_64: tl.constexpr,       # some tensor spans >= 2**31 elements: int64 offsets
    EVEN_K: tl.constexpr,         # K % BLOCK_K == 0: no K-tail mask
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    tiles = num_pid_m * num_pid_n
    pid_batch = pid // tiles
    pid_m, pid_n = _grouped_tile(pid % tiles, num_pid_m, num_pid_n, GROUP_M)

    # Batch offsets in int64: batch * stride overflows int32 for big batched tensors.
    b0 = (pid_batch // B1).to(tl.int64)
    b1 = (pid_batch % B1).to(tl.int64)
    a_ptr += b0 * stride_a0 + b1 * stride_a1
    b_ptr += b0 * stride_b0 + b1 * stride_b1
    c_ptr += b0 * stride_c0 + b1 * stride_c1

    if FP64_FMA:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    rs = tl.zeros((BLOCK_M,), dtype=acc.dtype)                       # a's row sums (ROWSUM)
    if ROWSUM and pid_n == 0:
        # Every column of tiles loads the same a-rows; the first one also sums them along K
        # (no atomics: one program owns each row). A uniform branch per program, so the other
        # columns run the plain loop below, untouched (ROWSUM False compiles this branch out).
        acc, rs = _dot_tile(acc, rs, a_ptr, b_ptr, pid_m, pid_n, 0, K, M, N, stride_am, stride_ak,
                            stride_bk, stride_bn, FP64_FMA, UPCAST_DOT, DOT_PRECISION, INDEX_64,
                            EVEN_K, True, BLOCK_M, BLOCK_N, BLOCK_K)
        _store_rowsum(rs, rowsum_ptr, pid_m, M, INDEX_64, BLOCK_M)
    else:
        acc, rs = _dot_tile(acc, rs, a_ptr, b_ptr, pid_m, pid_n, 0, K, M, N, stride_am, stride_ak,
                            stride_bk, stride_bn, FP64_FMA, UPCAST_DOT, DOT_PRECISION, INDEX_64,
                            EVEN_K, False, BLOCK_M, BLOCK_N, BLOCK_K)
    _store_tile(acc, c_ptr, bias_ptr, aux_ptr, pid_m, pid_n, M, N, stride_cm, stride_cn, stride_bias,
                stride_auxm, stride_auxn, HAS_BIAS, ACTIVATION, AUX, INDEX_64, BLOCK_M, BLOCK_N)


def _config(bm: int, bn: int, bk: int, group_m: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": group_m},
                         num_warps=warps, num_stages=stages)


# Tried in order by the autotuner; configs that do not fit shared memory are skipped by it.
# The first group is Hopper-friendly (large tiles, BLOCK_K 64 feeds wgmma well); the rest are the
# tutorial's Ampere list, which wins for skinny or small problems.
_AUTOTUNE_CONFIGS = [
    _config(128, 256, 64, 8, 8, 3),
    _config(128, 256, 64, 8, 8, 4),
    _config(256, 128, 64, 8, 8, 3),
    _config(128, 128, 64, 8, 8, 3),
    _config(128, 128, 64, 8, 4, 4),
    _config(64, 256, 32, 8, 4, 4),
    _config(64, 128, 64, 8, 4, 4),
    _config(128, 128, 32, 8, 4, 4),
    _config(128, 64, 32, 8, 4, 4),
    _config(64, 128, 32, 8, 4, 4),
    _config(128, 32, 32, 8, 4, 4),
    _config(64, 32, 32, 8, 2, 5),
    _config(32, 64, 32, 8, 2, 5),
]

_matmul_fwd_autotuned = triton.autotune(
    configs=_AUTOTUNE_CONFIGS,
    # Layout changes the best tile, so the strides of the contraction dims are part of the key;
    # so do the epilogue (AUX prunes the configs that spill) and the row sums (more registers).
    key=["M", "N", "K", "stride_am", "stride_ak", "stride_bk", "stride_bn", "AUX", "ROWSUM"],
    prune_configs_by={"early_config_prune": prune_for_epilogue},
)(triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})(_matmul_fwd_kernel))


# ---------------------------------------------------------------------------- checks
def check_operands(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor],
                   activation: Optional[str], out: Optional[torch.Tensor], pre_out: Optional[torch.Tensor],
                   act_grad_at: Optional[torch.Tensor], rowsum: Optional[torch.Tensor] = None,
                   ) -> tuple[Optional[torch.Tensor], str]:
    """Every check of `matmul`'s arguments but the variant; returns (aux tensor, AUX mode) for the
    epilogue (`_check_aux`)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError(f"matmul expects torch tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.dim() < 2 or b.dim() < 2:
        raise ValueError(f"matmul needs a (..., M, K) and b (..., K, N); got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul operands must share a dtype; got a {a.dtype} and b {b.dtype}")
    if a.dtype not in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        raise TypeError(f"matmul supports float32/bfloat16/float16/float64; got {a.dtype}")
    if a.device != b.device:
        raise ValueError(f"matmul operands must be on one device; got {a.device} and {b.device}")
    if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shape mismatch: a {tuple(a.shape)} @ b {tuple(b.shape)} "
                         f"(expected (..., M, K) @ (..., K, N) with equal batch dims)")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    for name, t in (("bias", bias), ("out", out)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"matmul: {name} must be a torch tensor or None, got {type(t).__name__}")
    N = b.shape[-1]
    if bias is not None:
        if bias.shape != (N,) or bias.dtype != a.dtype or bias.device != a.device:
            raise ValueError(f"bias must be ({N},) {a.dtype} on {a.device}; got "
                             f"{tuple(bias.shape)} {bias.dtype} on {bias.device}")
    aux, aux_mode = _check_aux(pre_out, act_grad_at, a, b, bias, activation)
    if out is not None:
        c_shape = (*a.shape[:-2], a.shape[-2], N)
        if out.shape != c_shape or out.dtype != a.dtype or out.device != a.device:
            raise ValueError(f"out must be {c_shape} {a.dtype} on {a.device}; got "
                             f"{tuple(out.shape)} {out.dtype} on {out.device}")
        if any(st == 0 and n > 1 for n, st in zip(out.shape, out.stride())):
            raise ValueError(f"out must not be an expanded (stride-0) view; got strides {out.stride()}")
    _check_rowsum(rowsum, a, b)
    return aux, aux_mode


def _check_rowsum(rowsum: Optional[torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> None:
    """rowsum: None, or a contiguous (M,) floating tensor on a's device, for a 2-d matmul with N > 0
    (the row sums come from the programs of c's first column of tiles: with N == 0 there are none)."""
    if rowsum is None:
        return
    if not isinstance(rowsum, torch.Tensor):
        raise TypeError(f"matmul: rowsum must be a torch tensor or None, got {type(rowsum).__name__}")
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"matmul: rowsum works on one (M, K) @ (K, N) matrix; got a {tuple(a.shape)}, "
                         f"b {tuple(b.shape)}")
    M, N = a.shape[0], b.shape[1]
    if rowsum.shape != (M,):
        raise ValueError(f"matmul: rowsum must have shape ({M},) (a's rows); got {tuple(rowsum.shape)}")
    if rowsum.dtype not in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        raise TypeError(f"matmul: rowsum must be float32/bfloat16/float16/float64; got {rowsum.dtype}")
    if rowsum.device != a.device:
        raise ValueError(f"matmul: rowsum must be on {a.device} (a's device); got {rowsum.device}")
    if not rowsum.is_contiguous():
        raise ValueError(f"matmul: rowsum must be contiguous; got stride {rowsum.stride()}")
    if N == 0 and M > 0:
        raise ValueError("matmul: rowsum needs N > 0 (the row sums ride on c's first column of tiles)")


def _check_aux(pre_out: Optional[torch.Tensor], act_grad_at: Optional[torch.Tensor], a: torch.Tensor,
               b: torch.Tensor, bias: Optional[torch.Tensor], activation: Optional[str],
               ) -> tuple[Optional[torch.Tensor], str]:
    """(aux tensor, AUX mode) for the epilogue, after checking pre_out / act_grad_at."""
    if pre_out is None and act_grad_at is None:
        return None, "none"
    if pre_out is not None and act_grad_at is not None:
        raise ValueError("matmul: pass pre_out (forward) or act_grad_at (backward), not both")
    name, aux = ("pre_out", pre_out) if pre_out is not None else ("act_grad_at", act_grad_at)
    if activation is None:
        raise ValueError(f"matmul: {name} needs an activation (one of {ACTIVATIONS[1:]})")
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"matmul: {name} works on one (M, K) @ (K, N) matrix; got a {tuple(a.shape)}, "
                         f"b {tuple(b.shape)}")
    if act_grad_at is not None and bias is not None:
        raise ValueError("matmul: act_grad_at computes a gradient; it takes no bias")
    shape = (a.shape[0], b.shape[1])
    if not isinstance(aux, torch.Tensor) or aux.shape != shape or aux.dtype != a.dtype \
            or aux.device != a.device:
        raise ValueError(f"matmul: {name} must be {shape} {a.dtype} on {a.device}; got "
                         f"{tuple(getattr(aux, 'shape', ()))} {getattr(aux, 'dtype', type(aux).__name__)}")
    if any(st == 0 and n > 1 for n, st in zip(aux.shape, aux.stride())):
        raise ValueError(f"matmul: {name} must not be an expanded (stride-0) view")
    return aux, ("pre" if pre_out is not None else "grad")


def check_variant(variant: str, split_k: Optional[int], dtype: torch.dtype,
                  batch_shape: tuple[int, ...]) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown matmul variant {variant!r}; expected one of {VARIANTS}")
    if variant != "classic" and dtype == torch.float64:
        raise ValueError(f"matmul variant {variant!r} supports float32/bfloat16/float16; got float64 "
                         f"(the classic kernel takes it)")
    if variant == "splitk" and any(n > 1 for n in batch_shape):
        raise ValueError(f"matmul variant 'splitk' takes one (M, K) @ (K, N) matrix; got batch dims "
                         f"{batch_shape}")
    if split_k is not None:
        if variant != "splitk":
            raise ValueError(f"split_k is for variant='splitk'; got variant={variant!r}")
        if not isinstance(split_k, int) or isinstance(split_k, bool) or split_k < 1:
            raise ValueError(f"split_k must be a positive int; got {split_k!r}")


# ---------------------------------------------------------------------------- launch
def _fixed_config(dtype: torch.dtype) -> dict:
    """One configuration for runs without autotuning (tests, interpreter, AUTOTUNE=False,
    MINIGRAD_AUTOTUNE=0): on the GPU, the Hopper-friendly 128x128 tile that leads the autotuner's
    list for 16-bit inputs (BLOCK_K 64 feeds wgmma), BLOCK_K 32 for float32 (same bytes per stage)."""
    if interpreting():
        return dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2, num_warps=4, num_stages=1)
    if dtype == torch.float64:
        # the 3-d product tile (BLOCK_M, BLOCK_K, BLOCK_N) lives in registers: keep it small
        return dict(BLOCK_M=32, BLOCK_N=32, BLOCK_K=8, GROUP_M=8, num_warps=4, num_stages=2)
    if dtype == torch.float32:
        return dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=3)
    return dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3)


def tile_config(dtype: torch.dtype) -> Optional[dict]:
    """None when the autotuner picks the tiles (GPU, AUTOTUNE on, MINIGRAD_AUTOTUNE not 0, not
    float64), else the fixed config."""
    if AUTOTUNE and dtype != torch.float64 and autotune_enabled():
        return None
    return _fixed_config(dtype)


def _collapse_batch(shape: tuple[int, ...], strides: list[tuple[int, ...]]) -> list[tuple[int, list[int]]]:
    """Merge batch dims jointly for several tensors: [(size, [stride per tensor]), ...].

    Size-1 dims vanish; dims i and i+1 merge when every tensor has stride[i] == stride[i+1] *
    size[i+1] (true for contiguous batches and for stride-0 expanded ones alike).
    """
    merged: list[tuple[int, list[int]]] = []
    for i, size in enumerate(shape):
        if size == 1:
            continue
        st = [s[i] for s in strides]
        if merged and all(ps == s * size for ps, s in zip(merged[-1][1], st)):
            merged[-1] = (merged[-1][0] * size, st)
        else:
            merged.append((size, st))
    return merged


def batch_views(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Zero-copy 4-d views a (B0, B1, M, K), b (B0, B1, K, N), c (B0, B1, M, N) over the batch dims
    collapsed jointly: one triple, or one per index of the leading dims when more than two remain."""
    batch_shape = tuple(a.shape[:-2])
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    dims = _collapse_batch(batch_shape, [a.stride()[:-2], b.stride()[:-2], c.stride()[:-2]])
    while len(dims) < 2:
        dims.insert(0, (1, [0, 0, 0]))
    outer, inner = dims[:-2], dims[-2:]
    sizes = [d[0] for d in inner]
    for idx in itertools.product(*[range(d[0]) for d in outer]):   # one iteration unless > 2 dims
        views = []
        for ti, (t, rows, cols) in enumerate(((a, M, K), (b, K, N), (c, M, N))):
            offset = t.storage_offset() + sum(i * d[1][ti] for i, d in zip(idx, outer))
            strides = [d[1][ti] for d in inner] + list(t.stride()[-2:])
            views.append(t.as_strided((*sizes, rows, cols), strides, offset))
        yield views[0], views[1], views[2]


def _max_offset(t: torch.Tensor) -> int:
    return sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride()) if n > 0)


def epilogue_meta(c4: torch.Tensor, a4: torch.Tensor, b4: torch.Tensor, bias: Optional[torch.Tensor],
                  activation: Optional[str], aux_mode: str, aux: Optional[torch.Tensor] = None,
                  rowsum: Optional[torch.Tensor] = None) -> dict:
    """The kernels' epilogue and precision constexprs for 4-d views (`batch_views`); ROWSUM when
    a's row sums are asked for too.

    INDEX_64: 64-bit offsets when any operand the kernel indexes (a, b, c, the bias, the AUX
    tensor) spans 2**31 elements or more; else int32 offsets would wrap and address memory
    before the buffer."""
    dtype = a4.dtype
    spans = [_max_offset(a4[0, 0]), _max_offset(b4[0, 0]), _max_offset(c4[0, 0])]
    spans += [_max_offset(t) for t in (bias, aux) if t is not None]
    index_64 = max(spans) >= 2 ** 31
    return dict(
        HAS_BIAS=bias is not None,
        ACTIVATION={"gelu": "gelu_tanh"}.get(activation, activation) or "none",
        AUX=aux_mode,
        ROWSUM=rowsum is not None,
        FP64_FMA=dtype == torch.float64,
        DOT_PRECISION=fp32_dot_precision(ALLOW_TF32) if dtype == torch.float32 else "tf32",
        UPCAST_DOT=interpreting() and dtype == torch.bfloat16,
        INDEX_64=index_64,
    )


def _launch_classic(c4: torch.Tensor, a4: torch.Tensor, b4: torch.Tensor, bias: Optional[torch.Tensor],
                    aux: Optional[torch.Tensor], meta: dict, cfg: Optional[dict],
                    rowsum: Optional[torch.Tensor] = None) -> Optional[Launch]:
    """One program per tile; cfg None autotunes the tile config. Returns the direct launch made
    (None when the autotuner ran)."""
    B0, B1, M, K = a4.shape
    N = b4.shape[3]
    args = (c4, a4, b4, bias if bias is not None else c4, aux if aux is not None else c4,
            rowsum if rowsum is not None else c4, *c4.stride(), *a4.stride(), *b4.stride(), bias.stride(0) if bias is not None else 0,
            *(aux.stride() if aux is not None else (0, 0)), M, N, K, B1)
    batch = B0 * B1

    def grid(META):
        return (cdiv(M, META["BLOCK_M"]) * cdiv(N, META["BLOCK_N"]) * batch,)

    if cfg is None:
        extra = launch_tuned(_matmul_fwd_autotuned, _matmul_fwd_kernel, grid, args, meta,
                             derived=lambda c: {"EVEN_K": K % c["BLOCK_K"] == 0})
    else:
        extra = dict(cfg, EVEN_K=K % cfg["BLOCK_K"] == 0)
        _matmul_fwd_kernel[grid](*args, **meta, **extra)
    return None if extra is None else Launch(_matmul_fwd_kernel, grid, args, {**meta, **extra})


def launch(variant: str, split_k: Optional[int], c4: torch.Tensor, a4: torch.Tensor, b4: torch.Tensor,
           bias: Optional[torch.Tensor], aux: Optional[torch.Tensor], meta: dict,
           cfg: Optional[dict], rowsum: Optional[torch.Tensor] = None) -> Optional[Launch]:
    """Launch `variant` on 4-d views c (B0, B1, M, N), a (B0, B1, M, K), b (B0, B1, K, N); aux (M, N);
    rowsum (M,) when meta["ROWSUM"]. cfg: fixed tiles, or None to autotune them. Returns the one
    direct kernel launch it made, if it was one (kernels/matmul_auto.py replays it; split-K makes
    two launches: None)."""
    if variant == "persistent":
        return _persistent.launch(c4, a4, b4, bias, aux, meta, cfg, rowsum)
    elif variant == "splitk":
        M, K, N = a4.shape[2], a4.shape[3], b4.shape[3]
        if split_k is None:
            block_k = cfg["BLOCK_K"] if cfg else _splitk.BLOCK_K
            split_k = (_splitk.split_candidates(M, N, K, _persistent.num_programs(a4.device), block_k)
                       or [2])[0]
        _splitk.launch(c4[0, 0], a4[0, 0], b4[0, 0], bias, aux, meta, split_k, cfg, rowsum)
        return None
    return _launch_classic(c4, a4, b4, bias, aux, meta, cfg, rowsum)


def matmul(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None,
           activation: Optional[str] = None, out: Optional[torch.Tensor] = None, *,
           pre_out: Optional[torch.Tensor] = None, act_grad_at: Optional[torch.Tensor] = None,
           rowsum: Optional[torch.Tensor] = None, variant: str = "classic",
           split_k: Optional[int] = None) -> torch.Tensor:
    """c = activation(a @ b + bias): a (..., M, K), b (..., K, N) -> c (..., M, N).

    a, b: same dtype (float32, bfloat16, float16 or float64) and device, equal batch dims, any
    strides (transposed / sliced / stride-0 expanded views are read in place, never copied).
    bias: optional (N,) in a's dtype. activation: None, "relu", "silu", "gelu" (= "gelu_tanh",
    the tanh approximation, as GPT-2 uses), "gelu_tanh" or "gelu_exact" (erf).
    out: optional preallocated (..., M, N) result of a's dtype (may be a strided view).
    Returns c (contiguous unless `out` was given) in a's dtype; accumulation in float32
    (float64 for float64). float32 multiplies in IEEE float32 unless ALLOW_TF32 or MINIGRAD_TF32=1.
    pre_out: optional (M, N) tensor of a's dtype (2-d a and b only, an activation given): the
    pre-activation a @ b + bias is written there as well, and c = activation(pre_out) (what a
    backward needs, in the same launch).
    act_grad_at: optional (M, N) tensor of a's dtype (2-d only, an activation given, no bias):
    instead c = (a @ b) * activation'(act_grad_at), the activation's backward in the epilogue;
    act_grad_at is the pre-activation saved by the forward, a @ b the gradient w.r.t. its output.
    rowsum: optional contiguous (M,) float32/bfloat16/float16/float64 tensor (2-d a and b, N > 0):
    rowsum[m] = sum_k a[m, k] is written there too, accumulated in float32 (float64 for float64
    inputs) and rounded once to rowsum's dtype, by the programs of c's first column of tiles
    (every variant; combines with bias, activation, pre_out, act_grad_at and out; c is the same
    bits as without it). With a = dY^T it is a Linear's bias gradient, from its weight gradient's
    launch.
    variant: "classic" (the default), "persistent" or "splitk" (see the module docstring; the
    latter two take float32/bfloat16/float16, "splitk" no batch dims). split_k: the number of K
    ranges for "splitk" (default: about one wave of tiles). kernels/matmul_auto.py's matmul, with
    this signature and variant=None, picks the fastest variant per shape by timing instead.
    """
    aux, aux_mode = check_operands(a, b, bias, activation, out, pre_out, act_grad_at, rowsum)
    check_variant(variant, split_k, a.dtype, tuple(a.shape[:-2]))
    if out is None:
        out = torch.empty(*a.shape[:-2], a.shape[-2], b.shape[-1], dtype=a.dtype, device=a.device)
    if out.numel() == 0:
        return out   # M, N or a batch dim is 0 (K == 0 still runs: c = act(bias) or act(0), rowsum 0)
    cfg = tile_config(a.dtype)
    for a4, b4, c4 in batch_views(a, b, out):      # one launch unless > 2 batch dims remain
        meta = epilogue_meta(c4, a4, b4, bias, activation, aux_mode, aux, rowsum)
        launch(variant, split_k, c4, a4, b4, bias, aux, meta, cfg, rowsum)
    return out
