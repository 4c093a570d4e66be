"""Strided copy (with an optional dtype cast): the kernel behind contiguous(), astype and copy_.

What it computes
    out[i0, ..., ik] = cast(x[i0, ..., ik]) for every element, where both `x` and `out` may be
    any strided views (transposed, sliced, stride-0 expanded inputs). `copy(x)` writes a fresh
    row-major buffer; `copy_into(dst, src)` writes into an existing (possibly strided) view,
    which is what slice_backward, concat and copy_ need. There is no backward: the adjoint of
    a copy is a copy.

How work is split
    The launcher first *collapses* dimensions: size-1 dims are dropped and two neighbouring
    dims merge whenever every operand walks them as one (stride[outer] == stride[inner] *
    size[inner]). A contiguous tensor therefore becomes one flat dim and the kernel reduces
    to `out[i] = x[i]`. What is left (at most MAX_RANK dims) is padded with leading size-1
    dims. Each program takes BLOCK consecutive flat output indices, unravels them into a
    multi-index with the (constexpr) RANK innermost sizes, and dots the multi-index with each
    operand's strides to get its element offset.

Bytes moved
    numel * (in_bytes + out_bytes); a large contiguous copy is the bandwidth ceiling that the
    elementwise benchmark compares against.

Limits
    Up to MAX_RANK (6) dims after collapsing. Offsets switch to int64 when any operand spans
    more than 2**31 elements. Overlapping destinations (stride-0 dst) give unspecified results.
    Casts to 16-bit floats go through float32 and round to nearest even (bf16 rounding is done
    on the bits, so the interpreter, which would truncate, agrees with the GPU).

`collapse_dims` lives here and is reused by the other flat families (elementwise.py, dropout.py,
reduce.py) and the Triton backend; the kernel-side index helpers (`_flat_index`, `_unravel`,
`_offset`) and the padding to MAX_RANK are in kernels/helpers.py, shared with the same families.

References: the Triton tutorial "vector addition"; PyTorch's TensorIterator dim coalescing.
"""
from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl

from .helpers import (_cast_value, _flat_index, _offset, _unravel, block_size, cdiv, check_rank,
                      check_tensor, needs_int64, pad_sizes, pad_strides)


# ----------------------------------------------------------------------------- kernel
@triton.jit
def _copy_fwd_kernel(
    out_ptr, in_ptr,
    o_s0, o_s1, o_s2, o_s3, o_s4, o_s5,      # destination strides (elements), padded to 6
    x_s0, x_s1, x_s2, x_s3, x_s4, x_s5,      # source strides (0 for expanded dims)
    d1, d2, d3, d4, d5,                      # collapsed sizes (d0 is implied by N)
    N,                                       # number of elements
    RANK: tl.constexpr,                      # how many of the 6 dims are real
    INDEX64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    idx = _flat_index(BLOCK, INDEX64)                                  # (BLOCK,)
    mask = idx < N
    i0, i1, i2, i3, i4, i5 = _unravel(idx, d1, d2, d3, d4, d5, RANK)
    x_off = _offset(i0, i1, i2, i3, i4, i5, x_s0, x_s1, x_s2, x_s3, x_s4, x_s5, RANK)
    o_off = _offset(i0, i1, i2, i3, i4, i5, o_s0, o_s1, o_s2, o_s3, o_s4, o_s5, RANK)
    x = tl.load(in_ptr + x_off, mask=mask)
    tl.store(out_ptr + o_off, _cast_value(x, out_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------- dim collapsing
def collapse_dims(shape: Sequence[int], strides_list: Sequence[Sequence[int]]):
    """Merge neighbouring dims that every operand walks contiguously; drop size-1 dims.

    Returns (sizes, [strides per operand]) with at least one dim. Example: a contiguous
    (4, 5, 6) tensor and its contiguous output collapse to sizes [120], strides [[1], [1]];
    a transposed (6, 5) view of a (5, 6) tensor stays 2-d.
    """
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    if not dims:
        return [1], [[0] for _ in strides_list]
    sizes = [shape[dims[0]]]
    strides = [[s[dims[0]]] for s in strides_list]
    for d in dims[1:]:
        n = shape[d]
        mergeable = all(st[-1] == s[d] * n for st, s in zip(strides, strides_list))
        if mergeable:
            sizes[-1] *= n
            for st, s in zip(strides, strides_list):
                st[-1] = s[d]
        else:
            sizes.append(n)
            for st, s in zip(strides, strides_list):
                st.append(s[d])
    return sizes, strides


# ----------------------------------------------------------------------------- launchers
def copy_into(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Write `src` into the (possibly strided) view `dst`, casting to dst.dtype. Returns dst.

    src and dst must have the same shape and device; src may be an expanded (stride-0) view.
    """
    check_tensor(dst, "copy_into dst")
    check_tensor(src, "copy_into src")
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"copy_into: shape mismatch, dst {tuple(dst.shape)} vs src {tuple(src.shape)}")
    if dst.device != src.device:
        raise ValueError(f"copy_into: device mismatch, dst on {dst.device} vs src on {src.device}")
    n = dst.numel()
    if n == 0:
        return dst
    # launch: collapse dims jointly, then one program per `block` flat indices
    sizes, (o_st, x_st) = collapse_dims(dst.shape, [dst.stride(), src.stride()])
    check_rank(sizes, "copy_into")
    block = block_size(dst.dtype)
    _copy_fwd_kernel[(cdiv(n, block),)](
        dst, src, *pad_strides(o_st), *pad_strides(x_st), *pad_sizes(sizes), n,
        RANK=len(sizes), INDEX64=needs_int64(sizes, [o_st, x_st]), BLOCK=block, num_warps=4,
    )
    return dst


def copy(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A new row-major contiguous tensor with x's values, cast to `dtype` (default x.dtype)."""
    check_tensor(x, "copy x")
    out = torch.empty(tuple(x.shape), dtype=dtype or x.dtype, device=x.device)
    return copy_into(out, x)
