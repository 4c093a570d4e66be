"""Movement Functions: they change how elements are arranged, never their values.

Most are views on both backends (no copy). Each backward is the inverse arrangement:
reshape back, permute by the inverse permutation, sum over broadcast dims, scatter slices.
"""
from __future__ import annotations

from ..autograd import Function


class Reshape(Function):
    def forward(self, x, shape: tuple):
        self.in_shape = self.backend.shape(x)
        return self.backend.reshape(x, shape)

    def backward(self, g):
        return self.backend.reshape(g, self.in_shape)


class Permute(Function):
    def forward(self, x, axes: tuple):
        self.axes = axes
        return self.backend.permute(x, axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return self.backend.permute(g, tuple(inverse))


class Expand(Function):
    """Broadcast x to `shape` (new leading dims allowed). Backward sums over what was broadcast."""

    def forward(self, x, shape: tuple):
        b = self.backend
        self.in_shape = b.shape(x)
        lead = len(shape) - len(self.in_shape)
        padded = (1,) * lead + tuple(self.in_shape)
        self.axes = tuple(i for i, (p, s) in enumerate(zip(padded, shape)) if p == 1 and s != 1)
        self.lead = lead
        return b.expand(b.reshape(x, padded), tuple(shape))

    def backward(self, g):
        b = self.backend
        if self.axes:
            g = b.reduce_sum(g, self.axes, True)
        return b.reshape(g, self.in_shape)


class Slice(Function):
    """Basic indexing with ints and positive-step slices (a view)."""

    def forward(self, x, index: tuple):
        self.in_shape, self.index = self.backend.shape(x), index
        return self.backend.slice(x, index)

    def backward(self, g):
        return self.backend.slice_backward(g, self.in_shape, self.index)


class IndexSelect(Function):
    """Gather along one axis with a 1-d int64 index; repeated indices accumulate in backward."""

    def forward(self, x, idx, axis: int):
        self.in_shape, self.idx, self.axis = self.backend.shape(x), idx, axis
        return self.backend.index_select(x, axis, idx)

    def backward(self, g):
        return self.backend.index_add(self.in_shape, self.axis, self.idx, g), None


class Concat(Function):
    def forward(self, *xs, axis: int):
        b = self.backend
        self.axis = axis
        self.sizes = [b.shape(x)[axis] for x in xs]
        return b.concat(xs, axis)

    def backward(self, g):
        b = self.backend
        out, start = [], 0
        ndim = len(b.shape(g))
        for n in self.sizes:
            index = tuple(slice(start, start + n) if d == self.axis else slice(None)
                          for d in range(ndim))
            out.append(b.slice(g, index))
            start += n
        return tuple(out)


class Contiguous(Function):
    def forward(self, x):
        return self.backend.contiguous(x)

    def backward(self, g):
        return g
