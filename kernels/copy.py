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

The shared strided-index helpers (`collapse_dims`, `_unravel`, `_offset`, ...) live here and
are reused by elementwise.py and dropout.py.

References: the Triton tutorial "vector addition"; PyTorch's TensorIterator dim coalescing.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

MAX_RANK = 6
GPU_BLOCK = 1024          # elements per program on the GPU (4 warps, 8 elements per thread)
INTERPRET_BLOCK = 128     # small so tests at small sizes cover multiple programs and tails
INT32_LIMIT = 2 ** 31 - 1


# ----------------------------------------------------------------------------- jit helpers
@triton.jit
def _unravel(idx, d1, d2, d3, d4, d5, RANK: tl.constexpr):
    """Split flat row-major indices over sizes (d0, d1, ..., d5) into per-dim indices.

    Only the RANK innermost dims are used (d0 is never needed: the outermost index is what is
    left after dividing by all inner sizes). Unused entries are returned unchanged (garbage)
    and must be ignored by the caller, which `_offset` does with the same RANK.
    """
    i0 = idx
    i1 = idx
    i2 = idx
    i3 = idx
    i4 = idx
    i5 = idx
    if RANK > 1:
        i4 = idx // d5
        i5 = idx % d5
    if RANK > 2:
        i3 = i4 // d4
        i4 = i4 % d4
    if RANK > 3:
        i2 = i3 // d3
        i3 = i3 % d3
    if RANK > 4:
        i1 = i2 // d2
        i2 = i2 % d2
    if RANK > 5:
        i0 = i1 // d1
        i1 = i1 % d1
    return i0, i1, i2, i3, i4, i5


@triton.jit
def _offset(i0, i1, i2, i3, i4, i5, s0, s1, s2, s3, s4, s5, RANK: tl.constexpr):
    """Element offsets = multi-index . strides over the RANK innermost dims."""
    off = i5 * s5
    if RANK > 1:
        off += i4 * s4
    if RANK > 2:
        off += i3 * s3
    if RANK > 3:
        off += i2 * s2
    if RANK > 4:
        off += i1 * s1
    if RANK > 5:
        off += i0 * s0
    return off


@triton.jit
def _flat_index(BLOCK: tl.constexpr, INDEX64: tl.constexpr):
    """This program's BLOCK flat indices, in int64 when the tensors are too big for int32."""
    pid = tl.program_id(0)
    if INDEX64:
        pid = pid.to(tl.int64)
    return pid * BLOCK + tl.arange(0, BLOCK)


@triton.jit
def _to_bf16_rtne(x):
    """float32 -> bfloat16, round to nearest even, done on the bits. Every bf16 store in kernels/
    goes through here (via `_cast_value`).

    The GPU's cvt instruction does this natively, but Triton's interpreter truncates; doing it
    by hand (a few integer ops, free in a memory-bound kernel) gives identical bits on both.
    Finite values round to nearest even and overflow to inf; inf stays inf; NaN stays a quiet
    NaN with its sign. tests/test_bf16_rounding.py mirrors these lines in NumPy: keep them in step.
    """
    bits = x.to(tl.uint32, bitcast=True)
    # Adding 0x7FFF plus the lowest kept bit carries into bit 16 exactly when the dropped half is
    # above one half, or equal to it with an odd kept part. For finite values and inf the sum
    # cannot pass 2**32 (-inf is 0xFF800000), so a carry into the exponent is a correct round to inf.
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    # A NaN must not take that path: 0x7FFFFFFF would carry past the sign bit into -0.0, and a NaN
    # whose payload sits only in the low 16 bits (0x7F800001) would truncate to inf. Keep its sign
    # and top payload bits and set the quiet bit (bit 22, bf16 bit 6) so the payload is never 0.
    is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
    bits = tl.where(is_nan, bits | 0x00400000, rounded)
    return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _cast_value(x, OUT_DTYPE: tl.constexpr):
    """Cast to OUT_DTYPE with numpy semantics: to bool means != 0; to 16-bit floats via fp32,
    rounding to nearest even."""
    if OUT_DTYPE == tl.int1:
        y = x != 0
    elif OUT_DTYPE == tl.bfloat16:
        if x.dtype == tl.bfloat16:
            y = x
        else:
            y = _to_bf16_rtne(x.to(tl.float32))
    elif (OUT_DTYPE == tl.float16) and (x.dtype != tl.float16):
        y = x.to(tl.float32).to(OUT_DTYPE)
    else:
        y = x.to(OUT_DTYPE)
    return y


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


# ----------------------------------------------------------------------------- launch helpers
# Grid arithmetic runs on the host for every launch (hundreds per training step): plain integer
# code here costs ~0.05 us, triton.cdiv / triton.next_power_of_2 ~1.5 us (measured with
# benchmarks/bench_host_overhead.py, docs/perf-notes.md).
def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for positive b."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


_TUNED: dict = {}        # (autotuned kernel, launch signature) -> the config its autotuner chose


def launch_tuned(tuner, kernel, grid, args: tuple, meta: dict, derived=None,
                 per_call: Optional[dict] = None) -> None:
    """kernel[grid](*args, **meta) with the block sizes `tuner` (its triton.autotune wrapper)
    picks, paying for the autotuner only once per distinct launch.

    Triton's Autotuner.run (plus a Heuristics wrapper) costs ~20 us of host time per call even
    when its cache hits, and an eager training step launches a matmul ~100 times. So the first
    launch of each signature goes through the autotuner (which benchmarks every config), its
    `best_config` is remembered here, and later launches call the plain kernel with it.
    The signature (every int argument, every tensor's dtype, the meta-parameters) contains the
    autotuner's own key, so a remembered config is only reused where the autotuner would have
    reused it. `derived(config) -> dict` supplies constexprs a heuristics wrapper would compute.
    `per_call` holds keyword arguments that change on every call and cannot change the best
    config (a dropout seed): passed to the kernel, kept out of the signature, so they neither
    re-run the autotuner nor grow the table.
    Returns the block-size keyword arguments of a direct launch (cfg plus `derived`'s), which a
    caller may keep to launch the plain kernel itself next time; None when the autotuner ran.
    """
    per_call = per_call or {}
    key = (id(tuner), tuple(a for a in args if isinstance(a, int)),
           tuple(a.dtype for a in args if isinstance(a, torch.Tensor)), tuple(meta.items()))
    cfg = _TUNED.get(key)
    if cfg is None:
        tuner[grid](*args, **per_call, **meta)
        best = tuner.best_config
        _TUNED[key] = dict(best.kwargs, num_warps=best.num_warps, num_stages=best.num_stages)
        return None
    extra = dict(derived(cfg), **cfg) if derived else cfg
    kernel[grid](*args, **per_call, **meta, **extra)
    return extra


def interpreting() -> bool:
    """True when kernels run in the Triton CPU interpreter (decided at launch time)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def block_size(dtype: torch.dtype | None = None) -> int:
    """Elements per program for the flat elementwise/copy kernels."""
    if interpreting():
        return INTERPRET_BLOCK
    if dtype is not None and dtype.itemsize <= 2:
        return 2 * GPU_BLOCK       # 16-byte vectors of 16-bit values
    return GPU_BLOCK


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


def pad_sizes(sizes: Sequence[int]) -> list[int]:
    """(d1..d5) kernel arguments for collapsed sizes (left-padded with 1s)."""
    padded = [1] * (MAX_RANK - len(sizes)) + list(sizes)
    return padded[1:]


def pad_strides(strides: Sequence[int]) -> list[int]:
    """(s0..s5) kernel arguments for collapsed strides (left-padded with 0s)."""
    return [0] * (MAX_RANK - len(strides)) + list(strides)


def needs_int64(sizes: Sequence[int], strides_list: Sequence[Sequence[int]]) -> bool:
    """True when a flat index or some operand offset may not fit in int32."""
    numel = 1
    for n in sizes:
        numel *= n
    if numel > INT32_LIMIT:
        return True
    for strides in strides_list:
        span = sum((n - 1) * abs(s) for n, s in zip(sizes, strides))
        if span > INT32_LIMIT:
            return True
    return False


def check_rank(sizes: Sequence[int], what: str) -> None:
    if len(sizes) > MAX_RANK:
        raise ValueError(f"{what}: at most {MAX_RANK} non-mergeable dims are supported after "
                         f"collapsing, got sizes {list(sizes)}; make the input contiguous first")


def check_tensor(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")


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
    sizes, (o_st, x_st) = collapse_dims(dst.shape, [dst.stride(), src.stride()])
    check_rank(sizes, "copy_into")
    block = block_size(dst.dtype)
    grid = (cdiv(n, block),)
    _copy_fwd_kernel[grid](
        dst, src, *pad_strides(o_st), *pad_strides(x_st), *pad_sizes(sizes), n,
        RANK=len(sizes), INDEX64=needs_int64(sizes, [o_st, x_st]), BLOCK=block, num_warps=4,
    )
    return dst


def copy(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A new row-major contiguous tensor with x's values, cast to `dtype` (default x.dtype)."""
    check_tensor(x, "copy x")
    out = torch.empty(tuple(x.shape), dtype=dtype or x.dtype, device=x.device)
    return copy_into(out, x)
