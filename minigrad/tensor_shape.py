"""Tensor methods that change a tensor's shape: moving its elements (reshape/view, permute/transpose,
expand, (un)squeeze, split/chunk/narrow, indexing, cat and stack) and reducing dims (sum, mean,
var/std, max/min, argmax, logsumexp), plus the shape arithmetic they share (sizes, broadcasting,
dim normalisation).

Mixins of `Tensor` (minigrad/tensor.py), kept in their own file so tensor.py stays about what a
tensor is and how it computes. Movement is mostly views: no data is copied unless the layout
demands it. The Functions doing the work are in minigrad/ops.py; advanced `x[...]` indexing (index
tensors, bool masks) is in indexing.py.
"""
from __future__ import annotations

import math
import operator
from collections import namedtuple
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import dtypes
from .ops import Concat, Contiguous, IndexSelect, Max, Permute, Reshape, Slice, Sum, Where

if TYPE_CHECKING:
    from .tensor import Tensor


# ---------------------------------------------------------------------------------------------
# shape arithmetic

def parse_size(size: tuple, what: str, *, infer: bool = False) -> tuple:
    """Sizes given as f(2, 3) or f((2, 3)) -> (2, 3), each a non-negative int (as in torch).

    Every function that takes a size goes through here (creation, reshape/view, expand), so
    randn(2.5) or zeros("2") is a TypeError naming the element instead of a tensor of shape
    (2,) from int(2.5). Ints, NumPy ints and 1-element int64 tensors (via __index__) pass; bool
    does not. infer=True allows -1 (reshape: infer this size, expand: keep this size).
    """
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for i, s in enumerate(size):
        try:
            if isinstance(s, bool):
                raise TypeError
            out.append(operator.index(s))
        except TypeError:
            raise TypeError(f"{what}: sizes must be ints, got {type(s).__name__} {s!r} at "
                            f"position {i} of {tuple(size)}") from None
    if any(s < (-1 if infer else 0) for s in out):
        raise ValueError(f"{what}: negative dimension in shape {tuple(out)}"
                         + (" (-1 is the only negative size allowed)" if infer else ""))
    return tuple(out)


def can_view(shape: tuple, strides: tuple, new_shape: tuple) -> bool:
    """Whether an array of `shape` with element `strides` can be read as `new_shape` (same
    numel) without copying: torch's rule for Tensor.view (computeStride in ATen).

    Cut the dims into chunks whose elements are evenly spaced in memory (stride[i] ==
    shape[i+1] * stride[i+1]). Within a chunk any regrouping is a view; across a chunk boundary
    none is. So each new dim must lie inside one chunk: the chunks' sizes must be products of
    consecutive new dims. Dims of size 1 address nothing and are left out; an empty array has
    nothing to address and can take any shape.
    """
    if math.prod(shape) == 0:
        return True
    chunks, prev_stride = [], None            # chunk sizes, outermost first
    for n, st in zip(shape, strides):
        if n == 1:
            continue
        if chunks and prev_stride == n * st:
            chunks[-1] *= n
        else:
            chunks.append(n)
        prev_stride = st
    new = iter(n for n in new_shape if n != 1)
    for c in chunks:
        p = 1
        while p < c:
            p *= next(new)
        if p != c:
            return False
    return True


def broadcast_shapes(*shapes) -> tuple:
    """NumPy/torch broadcasting rule, with an error that names both shapes."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        dims = {s[i - ndim + len(s)] for s in shapes if i - ndim + len(s) >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(f"shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be "
                             "broadcast together")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def dim_of_shaped(dim, ndim: int, what: str) -> int:
    """normalize_dim for ops that need a real axis (size(d), stride(d), split, narrow): a 0-d
    tensor has none, which is an IndexError saying so (torch: "tensor has no dimensions")."""
    if ndim == 0:
        raise IndexError(f"{what}: dimension {dim} specified but the tensor is 0-d (a scalar, no "
                         "dimensions); reshape(1) gives it one")
    return normalize_dim(dim, ndim)


def normalize_dim(dim, ndim: int, *, insert: bool = False) -> int:
    """`dim` as an index in [0, ndim), counting negative dims from the end, as torch does.

    Every op that takes a dim goes through here, so a dim out of range is one clear IndexError
    (torch's class) instead of a wrong answer from `dim % ndim` or a bare "index out of range".
    A 0-d tensor accepts dim 0 and -1 (as in torch) and gets 0. insert=True is for ops that
    add a dim (unsqueeze, stack): there the new dim may also be at position ndim.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__} {dim!r}")
    n = ndim + 1 if insert else max(ndim, 1)
    if not -n <= dim < n:
        what = f"inserting a dim into a tensor with {ndim} dims" if insert else \
            f"a tensor with {ndim} dims"
        raise IndexError(f"dimension {dim} out of range for {what} (expected in [{-n}, {n - 1}])")
    return int(dim) % n if ndim or insert else 0


def _normalize_axes(dim, ndim: int) -> tuple:
    """dim (None = all, an int, or a sequence of ints) -> sorted distinct axes in [0, ndim)."""
    if dim is None:
        return tuple(range(ndim))
    dims = tuple(dim) if isinstance(dim, (tuple, list, range)) else (dim,)
    out = [normalize_dim(d, ndim) for d in dims]
    if len(set(out)) != len(out):
        raise ValueError(f"dimension repeated in {dim}")
    return tuple(sorted(out)) if ndim else ()


# ---------------------------------------------------------------------------------------------
# movement

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
        """Elements start .. start + length - 1 along dim, as a view (torch's narrow)."""
        d = dim_of_shaped(dim, self.ndim, "narrow")
        n = self.shape[d]
        start = operator.index(start) + (n if operator.index(start) < 0 else 0)
        if not 0 <= start <= n or not 0 <= length <= n - start:
            raise IndexError(f"narrow: start {start} and length {length} do not fit dim {d} of "
                             f"size {n}")
        index = tuple(slice(start, start + length, 1) if i == d else slice(0, s, 1)
                      for i, s in enumerate(self.shape))
        return self if length == n else Slice.apply(self, index=index)

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
        return Where.apply(m, float(value) if x.dtype in dtypes.FLOATS else value, x)

    def __getitem__(self, index) -> "Tensor":
        from .indexing import getitem
        return getitem(self, index)

    def __setitem__(self, index, value) -> None:
        from .indexing import setitem
        setitem(self, index, value)


# ---------------------------------------------------------------------------------------------
# reductions

MaxResult = namedtuple("MaxResult", ["values", "indices"])



class ReduceMixin:
    def sum(self, dim=None, keepdim: bool = False) -> "Tensor":
        x = self._as("int64") if self.dtype == "bool" else self
        return Sum.apply(x, axes=_normalize_axes(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False) -> "Tensor":
        if self.dtype not in dtypes.FLOATS:
            raise TypeError(f"mean() needs a floating point tensor, got {self.dtype}")
        axes = _normalize_axes(dim, self.ndim)
        n = math.prod(self.shape[a] for a in axes)
        return self.sum(dim=axes, keepdim=keepdim) * (1.0 / n if n else float("nan"))

    def var(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None) -> "Tensor":
        """Variance with Bessel's correction by default (as torch.var)."""
        if unbiased is not None:
            correction = 1 if unbiased else 0
        axes = _normalize_axes(dim, self.ndim)
        n = math.prod(self.shape[a] for a in axes)
        d = self - self.mean(dim=axes, keepdim=True)
        return (d * d).sum(dim=axes, keepdim=keepdim) * (1.0 / max(n - correction, 0) if
                                                          n - correction > 0 else float("nan"))

    def std(self, dim=None, keepdim: bool = False, correction: int = 1) -> "Tensor":
        return self.var(dim, keepdim, correction).sqrt()

    def amax(self, dim=None, keepdim: bool = False) -> "Tensor":
        axes = _normalize_axes(dim, self.ndim)
        for a in axes:
            if self.shape[a] == 0:
                raise ValueError("max() of an empty dimension is undefined")
        return Max.apply(self, axes=axes, keepdim=keepdim)

    def amin(self, dim=None, keepdim: bool = False) -> "Tensor":
        return -((-self).amax(dim, keepdim))

    def max(self, dim=None, keepdim: bool = False):
        """max() -> a 0-d tensor; max(dim) -> (values, indices), as in torch."""
        if isinstance(dim, _tensor()):
            return self.maximum(dim)
        if dim is None:
            return self.amax()
        return MaxResult(self.amax(dim, keepdim), self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim: bool = False):
        if isinstance(dim, _tensor()):
            return self.minimum(dim)
        if dim is None:
            return self.amin()
        return MaxResult(self.amin(dim, keepdim), (-self).argmax(dim, keepdim))

    def argmax(self, dim=None, keepdim: bool = False) -> "Tensor":
        if dim is None:
            return self.reshape(-1).argmax(0)
        d = normalize_dim(dim, self.ndim)
        if self.ndim == 0:                # a 0-d tensor is its own max, at index 0 (as in torch)
            return self.reshape(1).argmax(0)
        out = _tensor()._wrap(self.backend.argmax(self.data, d), self.backend)
        return out.unsqueeze(d) if keepdim else out

    def logsumexp(self, dim, keepdim: bool = False) -> "Tensor":
        m = self.amax(dim, keepdim=True).detach()
        out = (self - m).exp().sum(dim, keepdim=True).log() + m
        return out if keepdim else out.squeeze(dim)

    def softmax(self, dim: int = -1):
        from .nn import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim: int = -1):
        from .nn import functional as F
        return F.log_softmax(self, dim)


# ---------------------------------------------------------------------------------------------
# helpers

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


def where(condition: "Tensor", x, y) -> "Tensor":
    """condition ? x : y, broadcasting all three; gradients flow to x and y."""
    from .tensor import Tensor, _scalar_promotion, get_default_dtype   # tensor.py imports this module
    if not isinstance(condition, Tensor) or condition.dtype != "bool":
        raise TypeError("where() needs a bool condition tensor")
    dev = condition.device
    xs = [v if isinstance(v, (Tensor, int, float)) else Tensor(v, device=dev) for v in (x, y)]
    tens = [v for v in xs if isinstance(v, Tensor)]
    dt = None
    for t in tens:
        dt = t.dtype if dt is None else dtypes.promote(dt, t.dtype)
    if dt is None:
        dt = get_default_dtype()
    for v in xs:
        if not isinstance(v, Tensor):            # an int tensor with a float scalar -> float
            dt = _scalar_promotion(dt, v)
    shape = broadcast_shapes(condition.shape, *[t.shape for t in tens])
    cond = condition._broadcast_to(shape).contiguous()
    args = []
    for v in xs:
        if isinstance(v, Tensor):
            args.append(v._as(dt)._broadcast_to(shape))
        else:
            args.append(float(v) if dt in dtypes.FLOATS else int(v))
    if not tens:
        return Tensor._wrap(cond.backend.where(cond.data, *args), cond.backend)
    return Where.apply(cond, args[0], args[1])


def _tensor():
    from .tensor import Tensor        # lazy: tensor.py imports this module
    return Tensor
