"""Multi-tensor kernels: one launch over a list of tensors (gradient clipping), and the pointer
tables they and the multi-tensor AdamW (kernels/adamw.py) read.

Why: an eager step that clips 148 gradients one at a time launches ~4 kernels per gradient
(square-sum, accumulate, scale): ~600 launches of ~15 us of host time each for GPT-2 small.
Here the whole list is one launch per pass.

Pointer table: the host writes, per tensor, its data addresses and element count into a small
int64 array, plus one (tensor, first element) entry per CHUNK-element chunk; program `pid`
handles chunk `pid`, loads its tensor's addresses and casts them back to typed pointers. The
tables are cached by the addresses they hold (`pointer_table`): when the same tensors (or new
ones at the same addresses, which the CUDA caching allocator tends to hand out step after step,
and which a CUDA graph guarantees) come again, no new table is uploaded. A new table is copied
from pinned host memory without blocking (a plain `torch.tensor(..., device="cuda")` of
pageable memory waits for the whole GPU queue to drain, like a sync).

Math (clipping, torch.nn.utils.clip_grad_norm_ with norm_type 2):
    total = sqrt(sum_i sum(g_i * g_i))   (float32 accumulation, float64 for float64 tensors)
    coef  = min(1, max_norm / (total + 1e-6));   out_i = g_i * coef
Work split: `sum_squares_multi` writes one float32 partial per chunk (deterministic: no atomics),
`clip_coef` sums the partials in one program and writes total and coef, `scale_multi` writes
each scaled tensor into a new one (a copy, as clip_grad_norm_ replaces each .grad), or in place
(the CUDA-graph step's fixed gradient buffers). Bytes: read every gradient twice, write it once.

Limits: tensors must be contiguous and share one dtype per launch (callers group them).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import torch
import triton
import triton.language as tl

from .helpers import FLOAT_DTYPES, TL_DTYPES, _cast_value, interpreting

BLOCK = 1024
CHUNK = 64 * BLOCK          # elements per program (table ~2K chunk entries for 124M elements)


def default_chunk() -> int:
    """CHUNK on the GPU; one BLOCK per program in the interpreter, which runs a program's loop
    in Python (64 iterations, mostly masked off for the small tensors of tests, cost ~50x)."""
    return BLOCK if interpreting() else CHUNK


# ---------------------------------------------------------------------------- kernels
@triton.jit
def _sum_squares_multi_kernel(partial_ptr,          # (n_chunks,) ACC: one sum per program
                              table_ptr,            # (T, 2) int64: address, numel
                              chunk_ptr,            # (n_chunks, 2) int64: tensor index, first element
                              X_DTYPE: tl.constexpr, ACC: tl.constexpr, CHUNK: tl.constexpr,
                              BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    t = tl.load(chunk_ptr + pid * 2)
    start = tl.load(chunk_ptr + pid * 2 + 1)
    x_ptr = tl.load(table_ptr + t * 2).to(tl.pointer_type(X_DTYPE))
    n = tl.load(table_ptr + t * 2 + 1)
    acc = tl.zeros([BLOCK], dtype=ACC)
    for inner in range(0, CHUNK, BLOCK):
        offs = start + inner + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(ACC)
        acc += x * x
    tl.store(partial_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _clip_coef_kernel(total_ptr, coef_ptr,          # 0-d ACC outputs: the norm and min(1, max_norm/(norm+eps))
                      partial_ptr, n_partials, max_norm,
                      ACC: tl.constexpr, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], dtype=ACC)
    for start in range(0, n_partials, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n_partials, other=0.0).to(ACC)
    total = tl.sqrt(tl.sum(acc, axis=0))
    coef = tl.minimum(max_norm / (total + 1e-6), 1.0)
    tl.store(total_ptr, total)
    tl.store(coef_ptr, coef)


@triton.jit
def _scale_multi_kernel(table_ptr,                  # (T, 3) int64: output address, input address, numel
                        chunk_ptr, coef_ptr,        # coef: 0-d, any float dtype
                        X_DTYPE: tl.constexpr, ACC: tl.constexpr, CHUNK: tl.constexpr,
                        BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    t = tl.load(chunk_ptr + pid * 2)
    start = tl.load(chunk_ptr + pid * 2 + 1)
    out_ptr = tl.load(table_ptr + t * 3).to(tl.pointer_type(X_DTYPE))
    x_ptr = tl.load(table_ptr + t * 3 + 1).to(tl.pointer_type(X_DTYPE))
    n = tl.load(table_ptr + t * 3 + 2)
    coef = tl.load(coef_ptr).to(ACC)
    for inner in range(0, CHUNK, BLOCK):
        offs = start + inner + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask).to(ACC)
        tl.store(out_ptr + offs, _cast_value(x * coef, X_DTYPE), mask=mask)   # bf16: round to nearest even


# ---------------------------------------------------------------------------- pointer tables
_TABLES: "OrderedDict[tuple, tuple]" = OrderedDict()
_MAX_TABLES = 64            # distinct (address list, chunk) keys kept: a few per optimizer/clip call


def _upload(rows, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 host data -> (device copy, host source), without waiting for the GPU queue (pinned
    memory + non_blocking). The host source is kept with the table: a copy made during a CUDA
    graph capture is replayed from that host block."""
    host = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
    if device.type == "cuda":
        host = host.pin_memory()
        return host.to(device, non_blocking=True), host
    return host.to(device), host


def pointer_table(rows: Sequence[tuple], numels: Sequence[int], chunk: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(table (T, len(row)) int64, chunks (n_chunks, 2) int64, n_chunks) on `device` for tensors
    whose addresses (and numel, as the last entry) are `rows`, split into `chunk`-element pieces.
    Cached by the rows: the same addresses give back the same device tables, no upload."""
    key = (tuple(rows), chunk, device)
    hit = _TABLES.get(key)
    if hit is None:
        # the chunk list depends on the sizes only (gradients get new addresses, not new sizes):
        # kept apart, so a new address list uploads just its (T, len(row)) table
        chunk_t, n_chunks, chunk_host = _chunk_table(tuple(numels), chunk, device)
        table, table_host = _upload([list(r) for r in rows], device)
        hit = _TABLES[key] = (table, chunk_t, n_chunks, (table_host, chunk_host))
        if len(_TABLES) > _MAX_TABLES:
            _TABLES.popitem(last=False)
    else:
        _TABLES.move_to_end(key)
    return hit[:3]


_CHUNKS: "OrderedDict[tuple, tuple]" = OrderedDict()


def _chunk_table(numels: tuple, chunk: int, device: torch.device) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(chunks (n_chunks, 2) int64 on device: [slot, start] per chunk-element piece, n_chunks,
    host source), built with NumPy (a GPT-2 has thousands of chunks) and cached by the sizes."""
    key = (numels, chunk, device)
    hit = _CHUNKS.get(key)
    if hit is None:
        sizes = np.asarray(numels, dtype=np.int64)
        counts = -(-sizes // chunk)                                   # chunks per tensor
        slots = np.repeat(np.arange(len(sizes), dtype=np.int64), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)         # each tensor's first chunk index
        starts = (np.arange(len(slots), dtype=np.int64) - first) * chunk
        chunk_t, chunk_host = _upload(np.stack([slots, starts], axis=1), device)
        hit = _CHUNKS[key] = (chunk_t, len(slots), chunk_host)
        if len(_CHUNKS) > _MAX_TABLES:
            _CHUNKS.popitem(last=False)
    else:
        _CHUNKS.move_to_end(key)
    return hit


def live_tables() -> list:
    """Every cached table: a CUDA graph that launched kernels reading them keeps this list, so
    no table it replays is freed when the cache evicts it."""
    return list(_TABLES.values())


def _check(xs: Sequence[torch.Tensor], what: str, chunk: int) -> None:
    if not xs:
        raise ValueError("clip_by_total_norm needs at least one tensor")
    if chunk < BLOCK or chunk % BLOCK:
        raise ValueError(f"chunk must be a multiple of BLOCK = {BLOCK}, got {chunk}")
    for i, x in enumerate(xs):
        if not isinstance(x, torch.Tensor) or x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{what}[{i}] must be a float torch.Tensor, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if not x.is_contiguous():
            raise ValueError(f"{what}[{i}] must be contiguous (shape {tuple(x.shape)}, strides "
                             f"{tuple(x.stride())})")
        if x.device != xs[0].device:
            raise ValueError(f"{what}[{i}] is on {x.device}, {what}[0] on {xs[0].device}")


def _by_dtype(xs: Sequence[torch.Tensor]) -> dict:
    groups: dict = {}
    for i, x in enumerate(xs):
        if x.numel():
            groups.setdefault(x.dtype, []).append(i)
    return groups


def _launch_clip(xs: Sequence[torch.Tensor], max_norm: float, chunk: int, total: torch.Tensor,
                 coef: torch.Tensor, out: list) -> None:
    """The three passes, one launch per dtype group for the first and the last: float partials
    of sum(x * x) per chunk, total and coef from them, out[i] = xs[i] * coef."""
    device = xs[0].device
    acc = TL_DTYPES[total.dtype]
    groups = _by_dtype(xs)
    tables = {dtype: pointer_table([(xs[i].data_ptr(), xs[i].numel()) for i in members],
                                   [xs[i].numel() for i in members], chunk, device)
              for dtype, members in groups.items()}
    n_partials = sum(t[2] for t in tables.values())
    partials = torch.empty(max(1, n_partials), dtype=total.dtype, device=device)
    offset = 0
    for dtype, (table, chunks, n_chunks) in tables.items():
        _sum_squares_multi_kernel[(n_chunks,)](
            partials[offset:], table, chunks, X_DTYPE=TL_DTYPES[dtype], ACC=acc, CHUNK=chunk,
            BLOCK=BLOCK, num_warps=4)
        offset += n_chunks
    _clip_coef_kernel[(1,)](total, coef, partials, n_partials, float(max_norm), ACC=acc,
                            BLOCK=BLOCK, num_warps=4)
    for dtype, members in groups.items():
        table, chunks, n_chunks = pointer_table(
            [(out[i].data_ptr(), xs[i].data_ptr(), xs[i].numel()) for i in members],
            [xs[i].numel() for i in members], chunk, device)
        _scale_multi_kernel[(n_chunks,)](table, chunks, coef, X_DTYPE=TL_DTYPES[dtype], ACC=acc,
                                         CHUNK=chunk, BLOCK=BLOCK, num_warps=4)


# ---------------------------------------------------------------------------- launchers
def clip_by_total_norm(xs: Sequence[torch.Tensor], max_norm: float,
                       chunk: Optional[int] = None, in_place: bool = False) -> tuple[torch.Tensor, torch.Tensor, list]:
    """The joint L2 norm of `xs` and their copies scaled by min(1, max_norm / (norm + 1e-6)).

    xs: non-empty list of contiguous float tensors on one device (any mix of dtypes).
    Returns (norm 0-d, coef 0-d, scaled list): float32 norm/coef (float64 when any x is float64),
    scaled[i] new, with xs[i]'s shape and dtype. 2 + 2 x (number of dtypes) launches.
    in_place: scale xs themselves and return them as `scaled` (same values; the pointer tables
    of a CUDA-graph step's fixed gradient buffers then never change). The xs must not overlap.
    `chunk` (a multiple of BLOCK) sets the elements per program (default: default_chunk())."""
    chunk = default_chunk() if chunk is None else chunk
    _check(xs, "xs", chunk)
    device = xs[0].device
    acc_torch = torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32
    total = torch.empty((), dtype=acc_torch, device=device)
    coef = torch.empty((), dtype=acc_torch, device=device)
    out = list(xs) if in_place else [torch.empty(x.shape, dtype=x.dtype, device=device) for x in xs]
    _launch_clip(xs, max_norm, chunk, total, coef, out)
    return total, coef, out


__all__ = ["clip_by_total_norm", "pointer_table"]
