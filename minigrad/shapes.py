"""Shape arithmetic shared by the Tensor methods: broadcasting and dim normalisation."""
from __future__ import annotations


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


def _normalize_axes(dim, ndim: int) -> tuple:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dimension {d} out of range for a tensor with {ndim} dims")
        out.append(d % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"dimension repeated in {dim}")
    return tuple(sorted(out)) if ndim else ()
