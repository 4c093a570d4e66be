"""Tensor indexing: `x[...]` with ints, slices, None, Ellipsis, integer arrays and bool masks.

The work is split into the two kinds of indexing NumPy defines:
1. basic indexing (ints, slices with positive step, None, ...) -> one `Slice` view (+ reshape);
2. advanced indexing (integer tensors/lists, bool masks) -> `IndexSelect` on one flattened
   axis. Several index arrays are broadcast together and combined into one flat index
   (i0 * n1 + i1 ...), so the backend only ever gathers along a single axis.
Result layout follows NumPy: advanced dims replace the indexed dims in place when those are
adjacent, else they go first.

Scalar entries follow torch: an int (or anything with __index__) picks one position; a bool
adds a new dim of size 1 (True) or 0 (False); a float, string or other scalar is an IndexError
(`x[1.9]` would otherwise silently mean `x[1]`), as are index arrays holding floats.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from .ops import IndexSelect, Slice


def _is_advanced(item) -> bool:
    from .tensor import Tensor
    if isinstance(item, Tensor):
        return True
    if isinstance(item, (list, np.ndarray)):
        return True
    return False


class _EmptyNewDim:
    """Index entry for `False`: a new dim like None, but of size 0 (torch and NumPy agree)."""

    def __repr__(self) -> str:
        return "False"


EMPTY_NEW_DIM = _EmptyNewDim()


def _new_dim(it) -> bool:
    """True for entries that insert a dim instead of consuming one (None, a bool scalar)."""
    return it is None or it is EMPTY_NEW_DIM


def _scalar_position(it, d: int, size: int) -> int:
    """A scalar index entry as a position in 0..size-1, or IndexError naming what was given."""
    try:
        i = operator.index(it)           # int, NumPy ints, anything with __index__; not float
    except TypeError:
        raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None, bools and integer or "
                         f"bool tensors/arrays are valid indices (got {type(it).__name__} {it!r} "
                         f"for dim {d})") from None
    if not -size <= i < size:
        raise IndexError(f"index {i} is out of bounds for dim {d} with size {size}")
    return i % size


def _expand_index(x, index) -> list:
    """Normalise to a list with one entry per dim of x (after inserting None dims)."""
    from .tensor import Tensor
    if not isinstance(index, tuple):
        index = (index,)
    # A bool scalar is a new dim (torch, NumPy), not the position int(True) == 1.
    index = tuple((None if it else EMPTY_NEW_DIM) if isinstance(it, (bool, np.bool_)) else it
                  for it in index)
    # bool masks stand for the integer positions of their True entries (one entry per mask dim)
    expanded, masks = [], []          # masks: (position of its first entry in expanded, shape)
    for item in index:
        if isinstance(item, Tensor) and item.dtype == "bool" or \
                isinstance(item, np.ndarray) and item.dtype == np.bool_:
            mask = item.numpy() if isinstance(item, Tensor) else item
            masks.append((len(expanded), mask.shape))
            expanded.extend(np.nonzero(mask))
        elif isinstance(item, list) and item and all(isinstance(v, bool) for v in item):
            masks.append((len(expanded), (len(item),)))
            expanded.extend(np.nonzero(np.asarray(item)))
        else:
            expanded.append(item)
    n_consuming = sum(1 for it in expanded if not _new_dim(it) and it is not Ellipsis)
    if sum(1 for it in expanded if it is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis (...)")
    if n_consuming > x.ndim:
        raise IndexError(f"too many indices for a tensor of dimension {x.ndim}")
    for k, shape in masks:            # a mask must match the dims it covers (else wrong answers)
        d = sum(1 for it in expanded[:k] if not _new_dim(it) and it is not Ellipsis)
        if any(it is Ellipsis for it in expanded[:k]):
            d += x.ndim - n_consuming
        if tuple(shape) != tuple(x.shape[d:d + len(shape)]):
            raise IndexError(f"bool mask of shape {tuple(shape)} does not match dims {d}.."
                             f"{d + len(shape) - 1} of a tensor of shape {x.shape}")
    out = []
    for it in expanded:
        if it is Ellipsis:
            out.extend([slice(None)] * (x.ndim - n_consuming))
        else:
            out.append(it)
    if not any(it is Ellipsis for it in expanded):     # identity test: `in` would call Tensor.__eq__
        out.extend([slice(None)] * (x.ndim - n_consuming))
    return out


def getitem(x, index):
    from .tensor import Tensor, _as_index_tensor, _check_index_range

    items = _expand_index(x, index)
    # Step 1: None -> insert size-1 dims into x, so every entry consumes exactly one dim
    # (False takes none of its one position: an empty slice).
    if any(_new_dim(it) for it in items):
        shape, d = [], 0
        for it in items:
            if _new_dim(it):
                shape.append(1)
            else:
                shape.append(x.shape[d])
                d += 1
        x = x.reshape(tuple(shape))
        items = [slice(None) if it is None else slice(0, 0) if it is EMPTY_NEW_DIM else it
                 for it in items]

    # Step 2: basic indexing. ints drop their dim; advanced entries keep theirs for step 3.
    basic, kept_dims, adv = [], [], []   # kept_dims: for each output dim, the index entry it came from
    for d, it in enumerate(items):
        size = x.shape[d]
        if _is_advanced(it):
            basic.append(slice(None))
            adv.append((len(kept_dims), it))
            kept_dims.append(d)
        elif isinstance(it, slice):
            start, stop, step = it.indices(size)
            if step <= 0:
                raise ValueError("negative or zero slice steps are not supported")
            basic.append(slice(start, max(start, stop), step))
            kept_dims.append(d)
        else:
            basic.append(_scalar_position(it, d, size))
    if any(not (isinstance(s, slice) and s == slice(0, x.shape[d], 1))
           for d, s in enumerate(basic)):
        x = Slice.apply(x, index=tuple(basic))
    if not adv:
        return x

    # Step 3: advanced indexing on the remaining dims listed in adv.
    idx_tensors = []
    for pos, it in adv:
        try:
            t = _as_index_tensor(it, x.device)
        except TypeError as e:            # torch: "tensors used as indices must be long, ... or bool"
            raise IndexError(f"indexing dim {pos}: index tensors/arrays must hold integers or bools "
                             f"({e})") from None
        _check_index_range(t, x.shape[pos], f"indexing dim {pos}")
        # negative indices count from the end
        if t.numel():
            t = Tensor._wrap(t.backend.where(t.backend.compare("lt", t.data, 0),
                                             t.backend.binary("add", t.data, x.shape[pos]), t.data),
                             t.backend)
        idx_tensors.append(t)
    from .tensor import broadcast_shapes
    bshape = broadcast_shapes(*[t.shape for t in idx_tensors])
    positions = [pos for pos, _ in adv]
    adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
    # move the indexed dims to the front, merge them into one axis, gather along it
    rest = [d for d in range(x.ndim) if d not in positions]
    x = x.permute(positions + rest)
    sizes = [x.shape[i] for i in range(len(positions))]
    x = x.reshape((math.prod(sizes),) + x.shape[len(positions):])
    flat = None
    for t, n_after in zip(idx_tensors, [math.prod(sizes[i + 1:]) for i in range(len(sizes))]):
        term = t.expand(bshape) * n_after if n_after != 1 else t.expand(bshape)
        flat = term if flat is None else flat + term
    flat = flat.contiguous().reshape(-1)
    out = IndexSelect.apply(x, flat, axis=0)          # in range: checked per index array above
    out = out.reshape(bshape + x.shape[1:])
    if adjacent and positions[0] > 0:
        nb = len(bshape)
        first = positions[0]
        order = list(range(nb, nb + first)) + list(range(nb)) + list(range(nb + first, out.ndim))
        out = out.permute(order)
    return out


def setitem(x, index, value) -> None:
    """In-place `x[index] = value` for tensors outside autograd (basic indexing or masks)."""
    from .autograd import is_grad_enabled
    from .tensor import Tensor
    if x.requires_grad and is_grad_enabled():
        raise RuntimeError("in-place assignment into a tensor that requires grad is not "
                           "supported; build a new tensor (e.g. with where/cat) or use no_grad()")
    b = x.backend
    items = _expand_index(x, index)
    if any(_is_advanced(it) or _new_dim(it) for it in items):
        # advanced assignment: go through the host (rare; used for small bookkeeping tensors)
        arr = x.numpy()
        v = value.numpy() if isinstance(value, Tensor) else value
        np_index = tuple(it.numpy() if isinstance(it, Tensor) else False if it is EMPTY_NEW_DIM else it
                         for it in items)
        arr[np_index] = v
        x.data = b.from_numpy(arr, x.dtype) if x.dtype not in ("bfloat16", "float16") else \
            b.astype(b.from_numpy(arr, "float32"), x.dtype)
        return
    basic = []
    for d, it in enumerate(items):
        if isinstance(it, slice):
            start, stop, step = it.indices(x.shape[d])
            if step <= 0:
                raise ValueError("negative or zero slice steps are not supported")
            basic.append(slice(start, max(start, stop), step))
        else:
            basic.append(_scalar_position(it, d, x.shape[d]))
    view = b.slice(x.data, tuple(basic))
    vshape = tuple(b.shape(view))
    if isinstance(value, Tensor):
        src = value.detach()._as(x.dtype).expand(vshape).data
    else:
        src = b.full(vshape, value, x.dtype)
    b.copy_(view, src)
