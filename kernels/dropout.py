"""Dropout with the random mask drawn inside the kernel (seeded Philox), never on the host.

What it computes
    forward   r = uniform[0, 1) from Philox(seed, counter);  keep = r >= p
              y = keep ? x / (1 - p) : 0          returns (y, mask = keep as bool)
    backward  dx = dy * mask / (1 - p)
    Which random number an element gets. View x's logical shape as (R, S): S = its last dim
    (1 for a 0-d x), row = the row-major index over all the other dims. One Philox 4x32-10 call
    yields four 32-bit outputs, and all four are used, for four neighbouring elements of a row:

        element (row, j) gets output j % 4 of Philox(key = seed, counter = row * ceil(S/4) + j // 4)

    converted to [0, 1) as tl.rand does (so output 0 is exactly tl.rand(seed, counter)). A row
    whose S is not a multiple of 4 leaves the unused outputs of its last call unused; counters
    never straddle rows. The mask depends only on (seed, logical shape, element index), so it
    is the same whether x is contiguous or a strided view, and the same on the GPU and in the
    interpreter for a given seed (Philox is counter based). kernels/attention.py draws the
    numbers of its (B, H, T, S) probabilities by the same rule, so its fused dropout mask is
    this kernel's mask of a (B, H, T, S) tensor.
    seed_offset (optional, a 1-element int64 device tensor): the key is seed + seed_offset[0],
    read by the kernel at run time. A CUDA graph freezes the host seed of every captured launch;
    rewriting the offset before each replay gives each replayed step new masks
    (`seed_offset_tensor` / `set_seed_offset_`, used by fast/cuda_graph.py).

How work is split
    Like elementwise.py, but over Philox groups: each program handles BLOCK // 4 groups
    (row, j // 4), a (BLOCK // 4, 4) tile of elements, one Philox call per group; it reads x
    (any strided view, dims collapsed in the launcher; the row-major flat index of each element
    is unravelled as in elementwise.py) and writes y and the bool mask contiguously. Slots of a
    group past the end of its row (S not a multiple of 4) are masked off: for S >= 4 at most
    3 of 4 * ceil(S/4) per row, but a tensor with S = 1, 2 or 3 runs 4x, 2x, 1.33x the slots.

Bytes moved
    forward: numel * (2 * itemsize + 1) (read x, write y and mask); backward: numel *
    (2 * itemsize + 1). Saving the mask (1 byte) instead of re-drawing it keeps the backward a
    plain elementwise pass; re-generation from the seed would save that byte per element.

Limits
    p in [0, 1]; p == 1 drops everything (y = 0, mask all False). The mask stream is Triton's
    Philox 4x32, 10 rounds (tl.rand4x); it is not the same stream as numpy's or torch's.
    tests/test_kernels_dropout.py checks the rule above against a NumPy Philox.

References: Srivastava et al. 2014 (dropout); the Triton tutorial "low-memory dropout";
Salmon et al. 2011 (Philox).
"""
from __future__ import annotations

import struct
from typing import Optional

import torch
import triton
import triton.language as tl

from .copy import collapse_dims
from .elementwise import fill_ as _fill_
from .helpers import (FLOAT_DTYPES, _cast_value, _flat_index, _offset, _unravel, block_size, cdiv,
                      check_rank, check_tensor, needs_int64, pad_sizes, pad_strides)


@triton.jit
def _decode_double(bits):
    """A float64 passed as its int64 bit pattern (exact for float64 inputs)."""
    return tl.cast(bits, tl.int64).to(tl.float64, bitcast=True)


@triton.jit
def philox_key(seed, seed_offset_ptr, HAS_SEED_OFFSET: tl.constexpr):
    """The Philox key: the host seed, plus the device-resident offset when there is one."""
    key = seed
    if HAS_SEED_OFFSET:                      # resolved at compile time: one return type
        key = seed.to(tl.int64) + tl.load(seed_offset_ptr)
    return key


@triton.jit
def rand_quads(key, counters):
    """Four uniforms [0, 1) per Philox call: counters (...) -> (..., 2, 2); reshaped to (..., 4),
    entry k is output k of Philox(key, counter), as tl.rand4x returns them (output 0 is
    tl.rand(key, counter)). One call costs what tl.rand costs for one number.
    The callers reshape (..., G, 2, 2) -> (..., 4 * G): element 4 * g + k gets output k of
    counter g, which is the layout "four neighbouring elements of a row per call"."""
    u0, u1, u2, u3 = tl.rand4x(key, counters)
    # tl.join stacks along a new last axis: join(join(u0, u2), join(u1, u3))[..., a, b] is
    # u[2a + b], so a row-major reshape of the last two axes lists u0, u1, u2, u3 in order.
    return tl.join(tl.join(u0, u2), tl.join(u1, u3))


@triton.jit(do_not_specialize=["seed", "scale_bits"])
def _dropout_fwd_kernel(
    y_ptr, mask_ptr, x_ptr, seed_offset_ptr,
    x_s0, x_s1, x_s2, x_s3, x_s4, x_s5,      # x strides (elements); y and mask are contiguous
    d1, d2, d3, d4, d5, N,
    S,                                       # x's logical last dim: rows of S elements
    p,                                       # drop probability (float32; 2.0 means drop all)
    scale_bits,                              # 1 / (1 - p) as float64 bits
    seed,                                    # Philox key (plus seed_offset_ptr[0] if HAS_SEED_OFFSET)
    HAS_SEED_OFFSET: tl.constexpr,
    EVEN_S: tl.constexpr,                    # S % 4 == 0: group g is flat elements 4g .. 4g+3
    COMPUTE: tl.constexpr, RANK: tl.constexpr, INDEX64: tl.constexpr, BLOCK: tl.constexpr,
):
    # Group g = row * Q + c (Q = ceil(S/4) groups per row) covers elements (row, 4c .. 4c+3):
    # its number is also its Philox counter.
    g = _flat_index(BLOCK // 4, INDEX64)                                         # (BLOCK/4,)
    quad = tl.arange(0, 4)[None, :]                                              # (1, 4)
    if EVEN_S:
        # rows hold whole groups: the flat index is 4g + k, four contiguous elements, which
        # the compiler can see (vector loads and stores)
        idx = (g * 4)[:, None] + quad                                            # (BLOCK/4, 4)
        in_bounds = idx < N
    else:
        groups_per_row = (S + 3) // 4
        row = g // groups_per_row
        j = (g - row * groups_per_row)[:, None] * 4 + quad                       # (BLOCK/4, 4)
        idx = row[:, None] * S + j                   # row-major flat index in x's logical shape
        # g < R * Q (R = N // S rows) keeps row < R, and j < S drops the slots past a row's end
        in_bounds = (g < N // S * groups_per_row)[:, None] & (j < S)
    i0, i1, i2, i3, i4, i5 = _unravel(idx, d1, d2, d3, d4, d5, RANK)
    x_off = _offset(i0, i1, i2, i3, i4, i5, x_s0, x_s1, x_s2, x_s3, x_s4, x_s5, RANK)
    x = tl.load(x_ptr + x_off, mask=in_bounds, other=0).to(COMPUTE)
    key = philox_key(seed, seed_offset_ptr, HAS_SEED_OFFSET)
    r = tl.reshape(rand_quads(key, g), (BLOCK // 4, 4))   # uniform [0, 1): output j % 4 of group g
    keep = r >= p
    scale = _decode_double(scale_bits).to(COMPUTE)
    y = tl.where(keep, x * scale, 0.0)
    tl.store(y_ptr + idx, _cast_value(y, y_ptr.dtype.element_ty), mask=in_bounds)
    tl.store(mask_ptr + idx, keep, mask=in_bounds)


@triton.jit(do_not_specialize=["scale_bits"])
def _dropout_bwd_kernel(
    dx_ptr, dy_ptr, mask_ptr,
    g_s0, g_s1, g_s2, g_s3, g_s4, g_s5,      # dy strides
    m_s0, m_s1, m_s2, m_s3, m_s4, m_s5,      # mask strides
    d1, d2, d3, d4, d5, N,
    scale_bits,
    COMPUTE: tl.constexpr, RANK: tl.constexpr, INDEX64: tl.constexpr, BLOCK: tl.constexpr,
):
    idx = _flat_index(BLOCK, INDEX64)
    in_bounds = idx < N
    i0, i1, i2, i3, i4, i5 = _unravel(idx, d1, d2, d3, d4, d5, RANK)
    g_off = _offset(i0, i1, i2, i3, i4, i5, g_s0, g_s1, g_s2, g_s3, g_s4, g_s5, RANK)
    m_off = _offset(i0, i1, i2, i3, i4, i5, m_s0, m_s1, m_s2, m_s3, m_s4, m_s5, RANK)
    dy = tl.load(dy_ptr + g_off, mask=in_bounds, other=0).to(COMPUTE)
    keep = tl.load(mask_ptr + m_off, mask=in_bounds, other=0) != 0
    scale = _decode_double(scale_bits).to(COMPUTE)
    dx = tl.where(keep, dy * scale, 0.0)
    tl.store(dx_ptr + idx, _cast_value(dx, dx_ptr.dtype.element_ty), mask=in_bounds)


def _check_p(p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    return p


def _scale_bits(p: float) -> int:
    scale = 0.0 if p >= 1.0 else 1.0 / (1.0 - p)
    return struct.unpack("<q", struct.pack("<d", scale))[0]


def _compute(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def seed_offset_tensor(device) -> torch.Tensor:
    """A 1-element int64 device tensor holding 0: a seed offset for the dropout kernels."""
    return _fill_(torch.empty(1, dtype=torch.int64, device=device), 0)


def set_seed_offset_(seed_offset: torch.Tensor, value: int) -> None:
    """seed_offset[0] = value, by a kernel launch (not a host write: the tensor is device memory,
    and the launch is stream-ordered with the work that reads it)."""
    check_seed_offset(seed_offset, seed_offset.device)
    _fill_(seed_offset, int(value))


def check_seed_offset(seed_offset: torch.Tensor, device) -> None:
    if not (isinstance(seed_offset, torch.Tensor) and seed_offset.shape == (1,)
            and seed_offset.dtype == torch.int64 and seed_offset.device == device):
        raise ValueError(f"seed_offset must be a (1,) int64 tensor on {device}; got "
                         f"{getattr(seed_offset, 'shape', type(seed_offset).__name__)} "
                         f"{getattr(seed_offset, 'dtype', '')}")


def _check_bwd(dy: torch.Tensor, mask: torch.Tensor) -> None:
    check_tensor(dy, "dropout_bwd dy")
    check_tensor(mask, "dropout_bwd mask")
    if tuple(dy.shape) != tuple(mask.shape):
        raise ValueError(f"dropout_bwd: shape mismatch, dy {tuple(dy.shape)} vs mask {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"dropout_bwd: mask must be bool, got {mask.dtype}")
    if dy.dtype not in FLOAT_DTYPES:
        raise TypeError(f"dropout_bwd: dy must be a float tensor, got {dy.dtype}")


def dropout_fwd(x: torch.Tensor, p: float, seed: int, seed_offset: Optional[torch.Tensor] = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (y, mask): y = x * mask / (1 - p), mask bool (True = kept), both contiguous.
    The Philox key is seed (+ seed_offset[0] read on the device, when given)."""
    check_tensor(x, "dropout_fwd x")
    if seed_offset is not None:
        check_seed_offset(seed_offset, x.device)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"dropout_fwd: x must be a float tensor, got {x.dtype}")
    p = _check_p(p)
    y = torch.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    mask = torch.empty(tuple(x.shape), dtype=torch.bool, device=x.device)
    n = x.numel()
    if n == 0:
        return y, mask
    # launch: collapse x's dims (y and mask are contiguous); rows of S = x.shape[-1] elements,
    # ceil(S/4) Philox groups per row, one program per block // 4 groups
    sizes, (x_st,) = collapse_dims(tuple(x.shape), [x.stride()])
    check_rank(sizes, "dropout_fwd")
    block = block_size(x.dtype)
    S = x.shape[-1] if x.dim() > 0 else 1
    groups = n // S * cdiv(S, 4)
    _dropout_fwd_kernel[(cdiv(groups, block // 4),)](
        y, mask, x, seed_offset if seed_offset is not None else x, *pad_strides(x_st),
        *pad_sizes(sizes), n, S, 2.0 if p >= 1.0 else p, _scale_bits(p), int(seed),
        HAS_SEED_OFFSET=seed_offset is not None, EVEN_S=S % 4 == 0, COMPUTE=_compute(x.dtype),
        RANK=len(sizes), INDEX64=needs_int64(sizes, [x_st]), BLOCK=block, num_warps=4)
    return y, mask


def dropout_bwd(dy: torch.Tensor, mask: torch.Tensor, p: float) -> torch.Tensor:
    """dx = dy * mask / (1 - p) (contiguous, dy's dtype)."""
    _check_bwd(dy, mask)
    p = _check_p(p)
    dx = torch.empty(tuple(dy.shape), dtype=dy.dtype, device=dy.device)
    n = dy.numel()
    if n == 0:
        return dx
    sizes, (g_st, m_st) = collapse_dims(tuple(dy.shape), [dy.stride(), mask.stride()])
    check_rank(sizes, "dropout_bwd")
    block = block_size(dy.dtype)
    _dropout_bwd_kernel[(cdiv(n, block),)](
        dx, dy, mask, *pad_strides(g_st), *pad_strides(m_st), *pad_sizes(sizes), n,
        _scale_bits(p), COMPUTE=_compute(dy.dtype), RANK=len(sizes),
        INDEX64=needs_int64(sizes, [g_st, m_st]), BLOCK=block, num_warps=4)
    return dx
