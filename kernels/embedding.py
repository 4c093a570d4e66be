"""Embedding (row gather) and its backward (row scatter-add), generalised to any axis.

Math. Every operation here views a tensor as (outer, n, inner) around one axis:
    gather      out[o, j, :] = x[o, idx[j], :]              (embedding_fwd, index_select)
    scatter-add out[o, idx[j], :] += src[o, j, :]          (embedding_bwd, index_add)
The embedding is the case outer = 1, axis = 0, inner = C: weight (V, C), idx of any shape S,
out (*S, C); its backward scatter-adds dy (*S, C) into dweight (V, C).

Work split. A 2-D grid over (row tiles of BLOCK_N rows (o, j), column tiles of BLOCK_C):
each program loads BLOCK_N indices, then moves a (BLOCK_N, BLOCK_C) tile. Gather reads
and writes each output element once. Scatter-add uses float atomics (float32, or float64
for float64 sources) into a zero-initialised accumulator; 16-bit sources accumulate in a
float32 buffer that a last small kernel rounds into the output dtype.

Determinism: the scatter-add is NOT bitwise deterministic on a GPU when an index repeats:
the atomic adds of equal rows land in whatever order the hardware runs them, and float
addition is not associative, so repeated runs can differ in the last bits (exactly the
same set of addends, float32 accumulation; torch's default CUDA embedding backward is
deterministic because it sorts the ids first). Without repeated indices the result is
exact and deterministic. A sort-based deterministic path is future work.

Bytes moved: gather 2 * n_rows * inner * elt (+ 8 bytes an index); scatter-add reads src
once and does one atomic read-modify-write an element in L2 (+ a cast pass for 16-bit).

Indices: any integer dtype, any shape that views as 1-d. Out-of-range indices are masked
(gather writes zeros, scatter-add skips them): the backend checks ranges before calling.
x / weight / dy may be strided when their dims collapse to the (outer, n, inner) strides;
otherwise a clear ValueError asks for a contiguous tensor.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from .helpers import FLOAT_DTYPES, _cast_value, cdiv, check_float, next_power_of_2


# ---------------------------------------------------------------------------- kernels
@triton.jit
def _embedding_fwd_kernel(out_ptr,
                          x_ptr, idx_ptr,
                          stride_xo, stride_xa, stride_xi, stride_idx,
                          n_rows, n_idx, n_axis, n_inner,
                          BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """out[o, j, c] = x[o, idx[j], c]; out is contiguous (n_rows = outer * n_idx, n_inner)."""
    rows = (tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)   # (BLOCK_N,)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)                   # (BLOCK_C,)
    row_mask = rows < n_rows
    outer = rows // n_idx
    j = rows % n_idx
    src = tl.load(idx_ptr + j * stride_idx, mask=row_mask, other=0).to(tl.int64)
    valid = row_mask & (src >= 0) & (src < n_axis)     # never read outside x
    mask = valid[:, None] & (cols[None, :] < n_inner)
    vals = tl.load(x_ptr + outer[:, None] * stride_xo + src[:, None] * stride_xa
                   + cols[None, :] * stride_xi, mask=mask, other=0.0)
    out_mask = row_mask[:, None] & (cols[None, :] < n_inner)
    tl.store(out_ptr + rows[:, None] * n_inner + cols[None, :], vals, mask=out_mask)


@triton.jit
def _embedding_bwd_kernel(acc_ptr,
                          src_ptr, idx_ptr,
                          stride_so, stride_sj, stride_si, stride_idx,
                          n_rows, n_idx, n_axis, n_inner,
                          BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """acc[o, idx[j], c] += src[o, j, c] with atomics; acc is contiguous (outer, n_axis, inner)."""
    rows = (tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)   # (BLOCK_N,)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)                   # (BLOCK_C,)
    row_mask = rows < n_rows
    outer = rows // n_idx
    j = rows % n_idx
    dst = tl.load(idx_ptr + j * stride_idx, mask=row_mask, other=0).to(tl.int64)
    valid = row_mask & (dst >= 0) & (dst < n_axis)
    mask = valid[:, None] & (cols[None, :] < n_inner)
    vals = tl.load(src_ptr + outer[:, None] * stride_so + j[:, None] * stride_sj
                   + cols[None, :] * stride_si, mask=mask, other=0.0)
    vals = vals.to(acc_ptr.dtype.element_ty)
    offs = (outer[:, None] * n_axis + dst[:, None]) * n_inner + cols[None, :]
    tl.atomic_add(acc_ptr + offs, vals, mask=mask, sem="relaxed")


@triton.jit
def _embedding_bwd_cast_kernel(out_ptr, acc_ptr, n, BLOCK: tl.constexpr):
    """out = acc rounded to out's dtype (float32 accumulator -> 16-bit result)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    vals = tl.load(acc_ptr + offs, mask=offs < n)
    tl.store(out_ptr + offs, _cast_value(vals, out_ptr.dtype.element_ty), mask=offs < n)


# ---------------------------------------------------------------------------- helpers
def _collapsed_stride(shape: Sequence[int], strides: Sequence[int]) -> Optional[int]:
    """The single stride of dims (shape, strides) viewed as one flat dim, or None when they
    do not collapse. Size-1 dims are ignored; an empty group has stride 1 (unused)."""
    dims = [(size, stride) for size, stride in zip(shape, strides) if size != 1]
    for (_, outer_stride), (inner_size, inner_stride) in zip(dims, dims[1:]):
        if outer_stride != inner_stride * inner_size:
            return None
    return dims[-1][1] if dims else 1


def _three_dim_strides(x: torch.Tensor, axis: int, name: str) -> tuple[int, int, int]:
    """Strides of x viewed as (outer, x.shape[axis], inner); ValueError if impossible."""
    so = _collapsed_stride(x.shape[:axis], x.stride()[:axis])
    si = _collapsed_stride(x.shape[axis + 1:], x.stride()[axis + 1:])
    if so is None or si is None:
        raise ValueError(f"{name} of shape {tuple(x.shape)} and strides {tuple(x.stride())} cannot be "
                         f"viewed as (outer, n, inner) around axis {axis}; pass a contiguous tensor")
    return so, x.stride(axis), si


def _flat_index(idx: torch.Tensor, name: str = "idx") -> torch.Tensor:
    """idx as a 1-d view (no copy); TypeError/ValueError with a clear message otherwise."""
    if not isinstance(idx, torch.Tensor) or idx.dtype.is_floating_point or idx.dtype == torch.bool \
            or idx.is_complex():
        raise TypeError(f"{name} must be an integer tensor (int64), got "
                        f"{getattr(idx, 'dtype', type(idx).__name__)}")
    try:
        return idx.view(-1)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(idx.shape)} and strides {tuple(idx.stride())} cannot "
                         f"be viewed as 1-d; pass a contiguous index tensor") from None


def _norm_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} out of range for a {ndim}-d tensor")
    return axis % ndim


def _tiles(n_inner: int) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_C, num_warps): column tiles up to 512 wide, ~4K elements a tile."""
    block_c = min(512, next_power_of_2(max(n_inner, 1)))
    block_n = max(1, min(256, 4096 // block_c))
    return block_n, block_c, 4


def _prod(sizes: Sequence[int]) -> int:
    n = 1
    for size in sizes:
        n *= size
    return n


def _check_bwd(dy: torch.Tensor, idx: torch.Tensor, num_embeddings: int) -> tuple[torch.Tensor, int]:
    """-> (idx as a 1-d view, dy's row stride when viewed as (n_ids, C))."""
    check_float(dy, "dy")
    flat = _flat_index(idx)
    if dy.device != idx.device:
        raise ValueError(f"idx must be on {dy.device}, got {idx.device}")
    if dy.dim() != idx.dim() + 1 or tuple(dy.shape[:-1]) != tuple(idx.shape):
        raise ValueError(f"dy must have shape (*idx.shape, C) = ({', '.join(map(str, idx.shape))}, C), "
                         f"got {tuple(dy.shape)}")
    if num_embeddings < 0:
        raise ValueError(f"num_embeddings must be >= 0, got {num_embeddings}")
    row_stride = _collapsed_stride(dy.shape[:-1], dy.stride()[:-1])
    if row_stride is None:
        raise ValueError(f"dy of shape {tuple(dy.shape)} and strides {tuple(dy.stride())}: leading dims "
                         f"do not collapse into one row stride; pass a contiguous tensor")
    return flat, row_stride


def _empty_scatter(shape: Sequence[int], out_dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(acc, out): the zeroed atomics accumulator, float32 (float64 for float64), and the result,
    which is acc itself when out_dtype is the accumulator's (else a cast pass fills it)."""
    acc_dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    acc = torch.zeros(shape, dtype=acc_dtype, device=device)
    out = acc if out_dtype == acc_dtype else torch.empty(shape, dtype=out_dtype, device=device)
    return acc, out


def _gather(out: torch.Tensor, x: torch.Tensor, axis: int, idx_flat: torch.Tensor) -> torch.Tensor:
    """out[o, j, :] = x[o, idx[j], :] with x viewed as (outer, x.shape[axis], inner)."""
    inner = _prod(x.shape[axis + 1:])
    n_idx = idx_flat.numel()
    n_rows = _prod(x.shape[:axis]) * n_idx
    if n_rows == 0 or inner == 0:
        return out
    so, sa, si = _three_dim_strides(x, axis, "x")
    block_n, block_c, num_warps = _tiles(inner)
    _embedding_fwd_kernel[(cdiv(n_rows, block_n), cdiv(inner, block_c))](
        out, x, idx_flat, so, sa, si, idx_flat.stride(0),
        n_rows, n_idx, x.shape[axis], inner,
        BLOCK_N=block_n, BLOCK_C=block_c, num_warps=num_warps)
    return out


def _scatter_add(acc: torch.Tensor, out: torch.Tensor, axis: int, idx_flat: torch.Tensor,
                 src: torch.Tensor, src_strides: tuple[int, int, int]) -> torch.Tensor:
    """acc (zeros, shaped like out) += src (outer, n_idx, inner) rows at idx along `axis`; then out =
    acc rounded to out's dtype (no pass when out is acc). Returns out."""
    inner = _prod(acc.shape[axis + 1:])
    n_idx = idx_flat.numel()
    n_rows = _prod(acc.shape[:axis]) * n_idx
    if n_rows > 0 and inner > 0:
        block_n, block_c, num_warps = _tiles(inner)
        _embedding_bwd_kernel[(cdiv(n_rows, block_n), cdiv(inner, block_c))](
            acc, src, idx_flat, *src_strides, idx_flat.stride(0),
            n_rows, n_idx, acc.shape[axis], inner,
            BLOCK_N=block_n, BLOCK_C=block_c, num_warps=num_warps)
    n = out.numel()
    if out is not acc and n > 0:
        _embedding_bwd_cast_kernel[(cdiv(n, 1024),)](out, acc, n, BLOCK=1024, num_warps=4)
    return out


# ---------------------------------------------------------------------------- launchers
def embedding_fwd(weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather rows: weight (V, C) (any strides), idx integer of any shape S -> out (*S, C)
    contiguous in weight's dtype. Out-of-range ids give zero rows (checked above)."""
    check_float(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-d (V, C), got shape {tuple(weight.shape)}")
    flat = _flat_index(idx)
    if idx.device != weight.device:
        raise ValueError(f"idx must be on {weight.device}, got {idx.device}")
    out = torch.empty((*idx.shape, weight.shape[1]), dtype=weight.dtype, device=weight.device)
    return _gather(out, weight, 0, flat)


def embedding_bwd(dy: torch.Tensor, idx: torch.Tensor, num_embeddings: int,
                  out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Scatter-add rows: dy (*S, C), idx (*S) -> dweight (V, C), V = num_embeddings.

    Repeated ids accumulate (float32 atomics; float64 for float64 dy). The result has
    `out_dtype` (default dy's dtype; pass torch.float32 to keep the float32 accumulator
    and skip the rounding pass). Not bitwise deterministic with repeated ids (module doc).
    """
    flat, row_stride = _check_bwd(dy, idx, num_embeddings)
    out_dtype = dy.dtype if out_dtype is None else out_dtype
    if out_dtype not in FLOAT_DTYPES:
        raise TypeError(f"out_dtype must be a float dtype, got {out_dtype}")
    acc, out = _empty_scatter((num_embeddings, dy.shape[-1]), out_dtype, dy.device)
    # dy viewed as (outer = 1, n_ids, C)
    return _scatter_add(acc, out, 0, flat, dy, (0, row_stride, dy.stride(-1)))


def index_select(x: torch.Tensor, axis: int, idx: torch.Tensor) -> torch.Tensor:
    """Gather along `axis` with a 1-d integer index: out.shape = x.shape with x.shape[axis]
    replaced by len(idx); out contiguous in x's dtype. x may be strided when the dims
    before and after `axis` each collapse to one stride."""
    check_float(x, "x")
    if idx.dim() != 1:
        raise ValueError(f"idx must be 1-d, got shape {tuple(idx.shape)}")
    flat = _flat_index(idx)
    if idx.device != x.device:
        raise ValueError(f"idx must be on {x.device}, got {idx.device}")
    axis = _norm_axis(axis, x.dim())
    out = torch.empty((*x.shape[:axis], flat.numel(), *x.shape[axis + 1:]), dtype=x.dtype, device=x.device)
    return _gather(out, x, axis, flat)


def index_add(shape: Sequence[int], axis: int, idx: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """zeros(shape) with src's slices added at idx along `axis` (repeated indices accumulate).

    src has `shape` with shape[axis] replaced by len(idx); the result is contiguous in src's
    dtype, accumulated in float32 (float64 for float64). Not bitwise deterministic with
    repeated indices (module doc).
    """
    check_float(src, "src")
    shape = tuple(int(s) for s in shape)
    if idx.dim() != 1:
        raise ValueError(f"idx must be 1-d, got shape {tuple(idx.shape)}")
    flat = _flat_index(idx)
    if idx.device != src.device:
        raise ValueError(f"idx must be on {src.device}, got {idx.device}")
    axis = _norm_axis(axis, len(shape))
    expected = (*shape[:axis], flat.numel(), *shape[axis + 1:])
    if tuple(src.shape) != expected:
        raise ValueError(f"src must have shape {expected}, got {tuple(src.shape)}")
    strides = _three_dim_strides(src, axis, "src")
    acc, out = _empty_scatter(shape, src.dtype, src.device)
    return _scatter_add(acc, out, axis, flat, src, strides)
