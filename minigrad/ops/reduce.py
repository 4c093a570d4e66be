"""Reductions: sum and max over any set of axes. mean and var are built from these above."""
from __future__ import annotations

from ..autograd import Function


def _keepdim_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def forward(self, x, axes: tuple, keepdim: bool):
        self.in_shape, self.axes, self.keepdim = self.backend.shape(x), axes, keepdim
        return self.backend.reduce_sum(x, axes, keepdim)

    def backward(self, g):
        # Every input element contributed once: the gradient is g broadcast back.
        b = self.backend
        if not self.keepdim:
            g = b.reshape(g, _keepdim_shape(self.in_shape, self.axes))
        return b.contiguous(b.expand(g, self.in_shape))


class Max(Function):
    """Max over axes. The gradient goes to the maximal entries, split evenly between ties
    (torch.amax's rule; with no ties it is torch.max's rule too)."""

    def forward(self, x, axes: tuple, keepdim: bool):
        b = self.backend
        self.x, self.axes, self.keepdim = x, axes, keepdim
        self.y = b.reduce_max(x, axes, keepdim)
        return self.y

    def backward(self, g):
        b = self.backend
        shape = b.shape(self.x)
        kshape = _keepdim_shape(shape, self.axes)
        y = b.expand(b.reshape(self.y, kshape), shape)
        is_max = b.compare("eq", self.x, b.contiguous(y))
        count = b.reduce_sum(is_max, self.axes, True)                  # ties per reduced slice
        g = b.reshape(g, kshape)
        share = b.binary("div", g, b.astype(count, b.dtype(g)))
        return b.where(is_max, b.contiguous(b.expand(share, shape)), 0.0)
