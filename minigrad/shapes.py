"""Shape arithmetic shared by the Tensor methods: size parsing, broadcasting, dim normalisation."""
from __future__ import annotations

import math
import operator

import numpy as np


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
