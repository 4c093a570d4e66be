"""Persistent matmul: one program per SM, each looping over output tiles (Triton tutorial 09).

    c[..., m, n] = act( sum_k a[..., m, k] * b[..., k, n] + bias[n] )     (as kernels/matmul.py)

Work split: the grid is min(#SMs, #tiles) programs; program p computes tiles p, p + P, p + 2P, ...
of the (batch x tiles) space, each tile in the grouped order of the classic kernel. Against the
classic one-program-per-tile launch this removes the per-CTA launch/teardown and the wave
quantisation of the block scheduler (a new CTA can only start when an old one exits), and lets the
compiler overlap one tile's epilogue with the next tile's first loads (`tl.range(flatten=True)`
fuses the tile loop and the K loop into one software-pipelined loop). It wins where the classic
grid has many tiles per SM and short K loops (GPT-2 forward shapes: 8192 x 2304, K = 768 is 1152
128x128 tiles, 8.7 per SM on an H100); it cannot help a grid with fewer tiles than SMs (split-K
does, kernels/matmul_splitk.py).

Two ways to read the operands, chosen per launch (`_tma_layout`):
- **TMA** (Hopper's tensor memory accelerator) through device-side tensor descriptors,
  `tl.make_tensor_descriptor`, when this Triton has it (3.4+; the GPU machine has 3.6 and CI the
  newest, both do), the device is sm_90 or newer (or the interpreter, which emulates it), the
  matrix is not batched, and each operand has one unit stride with 16-byte-aligned base and
  other stride (TMA's rules). A transposed operand (unit stride along M or N, e.g. the x^T of a
  weight gradient or the W^T of a Linear) gets a descriptor over its storage order and the loaded
  tile is transposed in registers (`.T`, free: it only changes the layout wgmma reads). TMA
  zero-fills out-of-bounds boxes, so no M/N wrap and no K-tail step are needed. Device-side
  descriptors need a small global scratch buffer per launch: the launcher installs a torch-backed
  allocator with `triton.set_allocator` once per thread (the host-side `TensorDescriptor` API was
  avoided because its block shape must be known before the autotuner has picked one).
- **Pointers** (`_dot_tile`, the classic kernel's loop) otherwise, and always for batched
  matmuls, int64 offsets or when `USE_TMA = False`. Under the interpreter both paths run, so both
  are verified without a GPU (tests force each).
The c store is always a masked pointer store (c may be any strided view, e.g. `out=`).

Row sums (`rowsum=` of kernels/matmul.py): the tiles with pid_n == 0 sum the a tiles they load
(either path) and store a's row sums; the tile loop is then not flattened (a per-tile branch between
two K loops is not one loop nest). That costs nothing at the weight-gradient shapes that ask for
row sums: about one tile per program there, so there is no next tile to overlap with.

Cost: the same 2*M*N*K FLOPs as the classic kernel. Limits: float32/bfloat16/float16 only
(float64 stays on the classic kernel's FMA path).

References: Triton tutorial 09 (persistent matmul, TMA descriptors); CUTLASS persistent
tile schedulers.
"""
from __future__ import annotations

import functools
import threading
from typing import Optional

import torch
import triton
import triton.language as tl

from .helpers import cdiv, interpreting, launch_tuned
from .matmul_plan import Launch
from .matmul_tiles import (_dot_tile, _grouped_tile, _mma, _row_sums, _store_rowsum, _store_tile,
                           prune_for_epilogue)

USE_TMA = True            # launch-time switch: TMA descriptors where supported (False: pointers)
INTERPRET_PROGRAMS = 3    # "SM count" under the interpreter: small and not a divisor of most tile
                          # counts, so each program walks several tiles and the last round is ragged


@triton.jit
def _tile_product(acc, rs, a_desc, b_desc, a_ptr, b_ptr, pid_m, pid_n, M, N, K,
                  stride_am, stride_ak, stride_bk, stride_bn,
                  DOT_PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr, INDEX_64: tl.constexpr,
                  EVEN_K: tl.constexpr, USE_TMA: tl.constexpr, A_T: tl.constexpr, B_T: tl.constexpr,
                  ROWSUM: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """(acc, rs) for one tile: acc += a @ b over all of K through the TMA descriptors (USE_TMA; the
    pointers are unused) or the pointer loop (`_dot_tile`; the descriptors are unused), and with
    ROWSUM rs += a's row sums from the same loaded a tiles."""
    if USE_TMA:
        off_m = pid_m * BLOCK_M
        off_n = pid_n * BLOCK_N
        for kb in range(0, tl.cdiv(K, BLOCK_K)):
            k = kb * BLOCK_K
            if A_T:
                a = a_desc.load([k, off_m]).T                                # (BLOCK_M, BLOCK_K)
            else:
                a = a_desc.load([off_m, k])
            if B_T:
                b = b_desc.load([off_n, k]).T                                # (BLOCK_K, BLOCK_N)
            else:
                b = b_desc.load([k, off_n])
            acc = _mma(acc, a, b, False, UPCAST_DOT, DOT_PRECISION)
            rs = _row_sums(rs, a, ROWSUM)          # TMA zero-fills past K and M: zeros add nothing
    else:
        acc, rs = _dot_tile(acc, rs, a_ptr, b_ptr, pid_m, pid_n, 0, K, M, N, stride_am, stride_ak,
                            stride_bk, stride_bn, False, UPCAST_DOT, DOT_PRECISION, INDEX_64, EVEN_K,
                            ROWSUM, BLOCK_M, BLOCK_N, BLOCK_K)
    return acc, rs


@triton.jit
def _matmul_persistent_kernel(
    c_ptr, a_ptr, b_ptr, bias_ptr, aux_ptr, rowsum_ptr,   # rowsum (M,) contiguous, ROWSUM only
    stride_c0, stride_c1, stride_cm, stride_cn,      # c viewed as (B0, B1, M, N)
    stride_a0, stride_a1, stride_am, stride_ak,      # a viewed as (B0, B1, M, K); may be 0/transposed
    stride_b0, stride_b1, stride_bk, stride_bn,      # b viewed as (B0, B1, K, N)
    stride_bias, stride_auxm, stride_auxn,           # aux (M, N): one matrix only (no batch)
    M, N, K, B1, BATCH,                              # BATCH = B0 * B1 (1 on the TMA path)
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, AUX: tl.constexpr,
    ROWSUM: tl.constexpr,         # also rowsum[m] = sum_k a[m, k], from the tiles with pid_n == 0
    DOT_PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr, INDEX_64: tl.constexpr,
    EVEN_K: tl.constexpr,         # K % BLOCK_K == 0 (pointer path only: TMA zero-fills the tail)
    USE_TMA: tl.constexpr,        # read a and b through TMA descriptors (batch 1 only)
    A_T: tl.constexpr,            # TMA: a is stored K-major-transposed (stride_am == 1)
    B_T: tl.constexpr,            # TMA: b is stored transposed (stride_bk == 1)
    FLATTEN: tl.constexpr,        # fuse tile loop and K loop for pipelining across tiles (not with
                                  # ROWSUM: its per-tile branch between two K loops is not one loop nest)
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    tiles = num_pid_m * num_pid_n
    a_desc = a_ptr         # placeholders on the pointer path (_tile_product ignores them there)
    b_desc = b_ptr
    if USE_TMA:
        # One descriptor per operand over its storage order; the unit stride is the last one.
        if A_T:
            a_desc = tl.make_tensor_descriptor(a_ptr, shape=[K, M], strides=[stride_ak, 1],
                                               block_shape=[BLOCK_K, BLOCK_M])
        else:
            a_desc = tl.make_tensor_descriptor(a_ptr, shape=[M, K], strides=[stride_am, 1],
                                               block_shape=[BLOCK_M, BLOCK_K])
        if B_T:
            b_desc = tl.make_tensor_descriptor(b_ptr, shape=[N, K], strides=[stride_bn, 1],
                                               block_shape=[BLOCK_N, BLOCK_K])
        else:
            b_desc = tl.make_tensor_descriptor(b_ptr, shape=[K, N], strides=[stride_bk, 1],
                                               block_shape=[BLOCK_K, BLOCK_N])

    for tile_id in tl.range(tl.program_id(0), tiles * BATCH, tl.num_programs(0), flatten=FLATTEN):
        pid_batch = tile_id // tiles
        pid_m, pid_n = _grouped_tile(tile_id % tiles, num_pid_m, num_pid_n, GROUP_M)
        b0 = (pid_batch // B1).to(tl.int64)
        b1 = (pid_batch % B1).to(tl.int64)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        rs = tl.zeros((BLOCK_M,), dtype=tl.float32)                    # a's row sums (ROWSUM)
        a_tile_ptr = a_ptr + b0 * stride_a0 + b1 * stride_a1
        b_tile_ptr = b_ptr + b0 * stride_b0 + b1 * stride_b1
        if ROWSUM and pid_n == 0:
            # as the classic kernel: the tiles of c's first column also sum a's rows (one writer
            # per row), the others run the plain loop (ROWSUM is 2-d only: no batch offset)
            acc, rs = _tile_product(acc, rs, a_desc, b_desc, a_tile_ptr, b_tile_ptr, pid_m, pid_n, M, N,
                                    K, stride_am, stride_ak, stride_bk, stride_bn, DOT_PRECISION,
                                    UPCAST_DOT, INDEX_64, EVEN_K, USE_TMA, A_T, B_T, True,
                                    BLOCK_M, BLOCK_N, BLOCK_K)
            _store_rowsum(rs, rowsum_ptr, pid_m, M, INDEX_64, BLOCK_M)
        else:
            acc, rs = _tile_product(acc, rs, a_desc, b_desc, a_tile_ptr, b_tile_ptr, pid_m, pid_n, M, N,
                                    K, stride_am, stride_ak, stride_bk, stride_bn, DOT_PRECISION,
                                    UPCAST_DOT, INDEX_64, EVEN_K, USE_TMA, A_T, B_T, False,
                                    BLOCK_M, BLOCK_N, BLOCK_K)
        _store_tile(acc, c_ptr + b0 * stride_c0 + b1 * stride_c1, bias_ptr, aux_ptr, pid_m, pid_n,
                    M, N, stride_cm, stride_cn, stride_bias, stride_auxm, stride_auxn, HAS_BIAS,
                    ACTIVATION, AUX, INDEX_64, BLOCK_M, BLOCK_N)


def _config(bm: int, bn: int, bk: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8},
                         num_warps=warps, num_stages=stages)


# Tutorial 09's Hopper list (BLOCK_K 64/128 feeds wgmma; 3-4 stages fit 227 KB for 16-bit inputs).
AUTOTUNE_CONFIGS = [
    _config(128, 256, 64, 8, 3),
    _config(128, 128, 64, 8, 4),
    _config(128, 128, 128, 8, 3),
    _config(256, 128, 64, 8, 3),
    _config(128, 64, 64, 4, 4),
    _config(64, 128, 64, 4, 4),
]

_persistent_autotuned = triton.autotune(
    configs=AUTOTUNE_CONFIGS,
    key=["M", "N", "K", "BATCH", "stride_am", "stride_ak", "stride_bk", "stride_bn", "USE_TMA", "AUX",
         "ROWSUM"],
    prune_configs_by={"early_config_prune": prune_for_epilogue},
)(triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})(_matmul_persistent_kernel))


def tma_supported() -> bool:
    """This Triton can build device-side tensor descriptors (3.4+) and take an allocator for them."""
    return hasattr(tl, "make_tensor_descriptor") and hasattr(triton, "set_allocator")


def _tma_layout(t: torch.Tensor) -> Optional[bool]:
    """For a 2-d operand view (rows, cols): False when rows are contiguous (stride (s, 1)), True
    when it is a transposed view (stride (1, s)), None when TMA cannot read it (no unit stride, or a
    base address or outer stride that is not 16-byte aligned)."""
    item = t.element_size()
    s0, s1 = t.stride()
    if t.data_ptr() % 16:
        return None
    if s1 == 1 and s0 * item % 16 == 0 and s0 >= t.shape[1]:
        return False
    if s0 == 1 and s1 * item % 16 == 0 and s1 >= t.shape[0]:
        return True
    return None


def tma_plan(a4: torch.Tensor, b4: torch.Tensor, index_64: bool) -> tuple[bool, bool, bool]:
    """(use TMA, a transposed, b transposed) for 4-d operand views a (B0, B1, M, K), b (B0, B1, K, N).

    TMA when the module switch allows it, this Triton has device-side descriptors, the device is
    sm_90+ (or the interpreter), there is one matrix (no batch), K > 0, offsets fit int32, and
    both operands have a TMA-readable layout (`_tma_layout`).
    """
    no = (False, False, False)
    if not (USE_TMA and a4.shape[0] * a4.shape[1] == 1 and a4.shape[3] > 0 and not index_64
            and tma_supported()):
        return no
    if not interpreting() and _device_info(a4.device.index)[1] < 9:
        return no
    a_t, b_t = _tma_layout(a4[0, 0]), _tma_layout(b4[0, 0])
    if a_t is None or b_t is None:
        return no
    return True, a_t, b_t


def num_programs(device: torch.device) -> int:
    """Programs of a persistent launch: the SM count (a small constant under the interpreter)."""
    if interpreting():
        return INTERPRET_PROGRAMS
    return _device_info(device.index)[0]


@functools.lru_cache(maxsize=None)
def _device_info(index: Optional[int]) -> tuple[int, int]:
    """(SM count, compute capability major) of a CUDA device, queried once (launches are hot)."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device() if index is None else index)
    return props.multi_processor_count, props.major


_ALLOCATOR = threading.local()


def _alloc_scratch(size: int, alignment: int, stream: Optional[int]) -> torch.Tensor:
    """Global scratch for device-side TMA descriptors (128 bytes per program)."""
    return torch.empty(size, dtype=torch.int8, device="cuda")


def _ensure_allocator() -> None:
    # Triton keeps the allocator in a ContextVar: set it once per thread that launches.
    if not getattr(_ALLOCATOR, "installed", False):
        triton.set_allocator(_alloc_scratch)
        _ALLOCATOR.installed = True


def launch(c4: torch.Tensor, a4: torch.Tensor, b4: torch.Tensor, bias: Optional[torch.Tensor],
           aux: Optional[torch.Tensor], meta: dict, cfg: Optional[dict],
           rowsum: Optional[torch.Tensor] = None) -> Optional[Launch]:
    """Launch on 4-d views c (B0, B1, M, N), a (B0, B1, M, K), b (B0, B1, K, N); aux (M, N) for the
    epilogue's AUX mode (kernels/matmul_tiles.py `_store_tile`), or None; rowsum (M,) for a's row
    sums when meta["ROWSUM"] (kernels/matmul.py), or None.

    meta: the classic kernel's epilogue/precision constexprs (FP64_FMA must be False).
    cfg: fixed BLOCK_*/GROUP_M/num_warps/num_stages, or None to autotune (launch_tuned).
    Returns the direct launch made (None when the autotuner ran), for kernels/matmul_auto.py's
    plan cache (kernels/matmul_plan.py).
    """
    B0, B1, M, K = a4.shape
    N = b4.shape[3]
    batch = B0 * B1
    use_tma, a_t, b_t = tma_plan(a4, b4, meta["INDEX_64"])
    if use_tma and not interpreting():
        _ensure_allocator()
    meta = dict(meta, USE_TMA=use_tma, A_T=a_t, B_T=b_t,
                FLATTEN=not interpreting() and not meta["ROWSUM"])
    del meta["FP64_FMA"]
    args = (c4, a4, b4, bias if bias is not None else c4, aux if aux is not None else c4,
            rowsum if rowsum is not None else c4,
            *c4.stride(), *a4.stride(), *b4.stride(), bias.stride(0) if bias is not None else 0,
            *(aux.stride() if aux is not None else (0, 0)), M, N, K, B1, batch)
    programs = num_programs(a4.device)

    def grid(META):
        return (min(programs, cdiv(M, META["BLOCK_M"]) * cdiv(N, META["BLOCK_N"]) * batch),)

    if cfg is None:
        extra = launch_tuned(_persistent_autotuned, _matmul_persistent_kernel, grid, args, meta,
                             derived=lambda c: {"EVEN_K": K % c["BLOCK_K"] == 0})
    else:
        extra = dict(cfg, EVEN_K=K % cfg["BLOCK_K"] == 0)
        _matmul_persistent_kernel[grid](*args, **meta, **extra)
    return None if extra is None else Launch(_matmul_persistent_kernel, grid, args, {**meta, **extra})


def before_launch(kwargs: dict):
    """What a remembered launch of these kwargs must do first: install the TMA scratch
    allocator (per thread) when it reads through device-side descriptors on a GPU; else None."""
    return _ensure_allocator if kwargs.get("USE_TMA") and not interpreting() else None
