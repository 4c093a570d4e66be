"""Tensor movement: reshape/view, permute/transpose, expand, (un)squeeze, split/chunk, indexing,
plus cat and stack. Mostly views: no data is copied unless the layout demands it.

A mixin of `Tensor` (minigrad/tensor.py), kept in its own file so each file holds one idea.
The Functions doing the work are in minigrad/ops/movement.py; `x[...]` is in indexing.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math
from typing import Sequence

import numpy as np

from . import dtypes
from .ops.elementwise import Where
from .ops.movement import Concat, Contiguous, IndexSelect, Permute, Reshape
from .shapes import _normalize_axes, broadcast_shapes, can_view, dim_of_shaped, normalize_dim, parse_size


if TYPE_CHECKING:
    from .tensor import Tensor

class MovementMixin:
    def reshape(self, *shape) -> "Tensor":
        """Same elements in row-major order, new shape: a view when the strides allow, else a copy."""
        shape = self._target_shape(shape, "reshape")
        if shape == self.shape:
            return self
        return Reshape.apply(self, shape=shape)

    def view(self, *shape) -> "Tensor":
        """reshape that never copies: as torch, a RuntimeError when the strides do not allow it
        (e.g. x.T.view(-1)), so code written against minigrad stays correct under torch."""
        shape = self._target_shape(shape, "view")
        if not can_view(self.shape, self.stride(), shape):
            raise RuntimeError(
                f"view size is not compatible with input tensor's size and stride: shape {self.shape} "
                f"with strides {self.stride()} cannot be read as {shape} without a copy (a new dim "
                "would span dims that are not evenly spaced in memory). Use .reshape(...) instead.")
        return self.reshape(shape)

    def _target_shape(self, shape: tuple, what: str) -> tuple:
        """reshape/view sizes -> the full new shape (one -1 inferred), checked against numel."""
        shape = parse_size(shape, what, infer=True)
        n = self.numel()
        if shape.count(-1) > 1:
            raise ValueError(f"only one dimension can be -1 in {what}")
        if -1 in shape:
            rest = math.prod(s for s in shape if s != -1)
            if rest == 0 or n % rest:
                raise ValueError(f"cannot {what} a tensor of shape {self.shape} into {shape}")
            shape = tuple(n // rest if s == -1 else s for s in shape)
        if math.prod(shape) != n:
            raise ValueError(f"cannot {what} a tensor of shape {self.shape} ({n} elements) "
                             f"into {shape}")
        return shape

    def stride(self, dim=None):
        """Strides in elements, as torch's Tensor.stride(): a tuple, or one dim's stride."""
        st = self.backend.strides(self.data)
        return st if dim is None else st[dim_of_shaped(dim, self.ndim, "stride")]

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        s, e = normalize_dim(start_dim, self.ndim), normalize_dim(end_dim, self.ndim)
        if s > e:
            raise RuntimeError(f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
        if self.ndim == 0:
            return self.reshape(1)
        return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:]) if self.numel() else \
            self.reshape(self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def permute(self, *dims) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        if len(dims) != self.ndim:
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims")
        dims = tuple(normalize_dim(d, self.ndim) for d in dims)
        if sorted(dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims")
        if dims == tuple(range(self.ndim)):
            return self
        return Permute.apply(self, axes=dims)

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        dim0, dim1 = normalize_dim(dim0, self.ndim), normalize_dim(dim1, self.ndim)
        if dim0 == dim1:                  # also a 0-d tensor's transpose(0, -1), as in torch
            return self
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        return self.transpose(-2, -1)

    def expand(self, *shape) -> "Tensor":
        shape = parse_size(shape, "expand", infer=True)
        lead = len(shape) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: target {shape} has fewer dims than {self.shape}")
        if -1 in shape[:lead]:            # -1 keeps a size; a new leading dim has none to keep
            raise ValueError(f"expand: -1 is not allowed in a new leading dim: {shape} for {self.shape}")
        full = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        for i, s in enumerate(self.shape):
            if s != 1 and s != full[lead + i]:
                raise ValueError(f"expand: cannot expand shape {self.shape} to {shape}")
        return self._broadcast_to(full)

    def broadcast_to(self, shape) -> "Tensor":
        return self.expand(tuple(shape))

    def expand_as(self, other: "Tensor") -> "Tensor":
        return self.expand(other.shape)

    def unsqueeze(self, dim: int) -> "Tensor":
        d = normalize_dim(dim, self.ndim, insert=True)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None) -> "Tensor":
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dims = _normalize_axes(dim, self.ndim)
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))

    def contiguous(self) -> "Tensor":
        if self.backend.is_contiguous(self.data):
            return self
        return Contiguous.apply(self)

    def is_contiguous(self) -> bool:
        return self.backend.is_contiguous(self.data)

    def split(self, split_size_or_sections, dim: int = 0) -> list:
        dim = dim_of_shaped(dim, self.ndim, "split")
        n = self.shape[dim]
        if isinstance(split_size_or_sections, int):
            step = split_size_or_sections
            if step <= 0:
                raise ValueError("split size must be positive")
            sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split sections {sizes} do not sum to dim size {n}")
        out, start = [], 0
        for s in sizes:
            out.append(self.narrow(dim, start, s))
            start += s
        return out

    def chunk(self, chunks: int, dim: int = 0) -> list:
        dim = normalize_dim(dim, self.ndim)
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be > 0, got {chunks}")
        n = self.shape[dim]
        return self.split(max(1, math.ceil(n / chunks)), dim)

    def narrow(self, dim: int, start: int, length: int) -> "Tensor":
        index = [slice(None)] * self.ndim
        index[dim_of_shaped(dim, self.ndim, "narrow")] = slice(start, start + length)
        return self[tuple(index)]

    def index_select(self, dim: int, index: "Tensor") -> "Tensor":
        index = _as_index_tensor(index, self.device)
        if index.ndim != 1:
            raise ValueError(f"index_select needs a 1-d index, got shape {index.shape}")
        d = normalize_dim(dim, self.ndim)
        _check_index_range(index, self.shape[d], f"index_select along dim {d}")
        return IndexSelect.apply(self, index, axis=d)

    def masked_fill(self, mask: "Tensor", value: float) -> "Tensor":
        mask = mask if isinstance(mask, _tensor()) else _tensor()(mask, device=self.device)
        shape = broadcast_shapes(self.shape, mask.shape)
        m = mask._broadcast_to(shape).contiguous()
        x = self._broadcast_to(shape)
        return Where.apply(m, float(value) if dtypes.is_floating(x.dtype) else value, x)

    def __getitem__(self, index) -> "Tensor":
        from .indexing import getitem
        return getitem(self, index)

    def __setitem__(self, index, value) -> None:
        from .indexing import setitem
        setitem(self, index, value)


def _as_index_tensor(index, device) -> Tensor:
    if isinstance(index, _tensor()):
        if index.dtype != "int64":
            raise TypeError(f"index tensors must be int64, got {index.dtype}")
        return index
    arr = np.asarray(index)
    if arr.size == 0 and isinstance(index, (list, tuple)):
        arr = arr.astype(np.int64)        # [] has no values to be float: an empty selection
    if arr.dtype.kind not in "iu":
        raise TypeError(f"index must hold integers, got dtype {arr.dtype}")
    return _tensor()(arr.astype(np.int64), device=device)


def value_range(values) -> tuple[int, int]:
    """(min, max) of a non-empty integer tensor, on the host (one small device sync)."""
    b = values.backend
    flat = b.reshape(b.contiguous(values.data), (values.numel(),))
    neg_lo = b.to_numpy(b.reduce_max(b.unary("neg", flat), (0,), False))
    return -int(neg_lo), int(b.to_numpy(b.reduce_max(flat, (0,), False)))


def _check_index_range(index: "Tensor", size: int, what: str) -> None:
    """Out-of-range indices get a clear error here, not garbage from a kernel."""
    if index.numel() == 0:
        return
    lo, hi = value_range(index)
    if lo < -size or hi >= size:
        raise IndexError(f"{what}: index out of range: values span [{lo}, {hi}] but the size "
                         f"is {size} (valid: {-size}..{size - 1})")


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat() needs at least one tensor")
    nd = tensors[0].ndim
    if nd == 0:
        raise RuntimeError("cat: zero-dimensional tensors cannot be concatenated (use stack)")
    d = normalize_dim(dim, nd)
    dt = tensors[0].dtype
    for t in tensors[1:]:
        dt = dtypes.promote(dt, t.dtype)
    for t in tensors:
        if t.ndim != nd or any(s != r for i, (s, r) in enumerate(zip(t.shape, tensors[0].shape))
                               if i != d):
            raise ValueError(f"cat: shapes {[x.shape for x in tensors]} differ outside dim {d}")
    tensors = [t._as(dt) for t in tensors]
    if len(tensors) == 1:
        return tensors[0]
    return Concat.apply(*tensors, axis=d)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack() needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack needs tensors of one shape, got {sorted(shapes)}")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def _tensor():
    from .tensor import Tensor        # lazy: tensor.py imports this module
    return Tensor
