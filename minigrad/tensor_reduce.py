"""Tensor reductions: sum, mean, var/std, max/min (amax/amin), argmax, logsumexp, softmax.

A mixin of `Tensor` (minigrad/tensor.py), kept in its own file so each file holds one idea.
sum and max are `Function`s (minigrad/ops/reduce.py); the rest are built from them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math
from collections import namedtuple

from . import dtypes
from .ops.reduce import Max, Sum
from .shapes import _normalize_axes, normalize_dim

MaxResult = namedtuple("MaxResult", ["values", "indices"])


if TYPE_CHECKING:
    from .tensor import Tensor

class ReduceMixin:
    def sum(self, dim=None, keepdim: bool = False) -> "Tensor":
        x = self._as("int64") if self.dtype == "bool" else self
        return Sum.apply(x, axes=_normalize_axes(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False) -> "Tensor":
        if not dtypes.is_floating(self.dtype):
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


def _tensor():
    from .tensor import Tensor        # lazy: tensor.py imports this module
    return Tensor
