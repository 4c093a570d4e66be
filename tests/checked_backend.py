"""CheckedBackend: wraps a backend and asserts the shape, dtype and array type of each result.

Tests run with it on (conftest.py: minigrad.backends.wrap_backends(CheckedBackend)), so a backend
that returns a wrong shape fails at the call that did it, not three ops later inside a gradient.
Only the cheap invariants are checked: shapes we can predict from the inputs, dtypes, and that
results are the backend's own array type.
"""
from __future__ import annotations

import math

from minigrad.backends.base import Backend


class CheckedBackend(Backend):
    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name
        self.device = inner.device

    def __getattr__(self, item):              # anything not overridden: pass through unchecked
        return getattr(self.inner, item)

    def __eq__(self, other):
        other = other.inner if isinstance(other, CheckedBackend) else other
        return self.inner is other

    def __hash__(self):
        return hash(id(self.inner))

    # -- helpers
    def _check(self, out, shape=None, dtype=None, what=""):
        b = self.inner
        assert b.is_array(out), f"{what}: expected a {b.name} array, got {type(out).__name__}"
        if shape is not None:
            assert tuple(b.shape(out)) == tuple(shape), f"{what}: shape {b.shape(out)} != {shape}"
        if dtype is not None:
            assert b.dtype(out) == dtype, f"{what}: dtype {b.dtype(out)} != {dtype}"
        return out

    def _s(self, x):
        return self.inner.shape(x)

    def _d(self, x):
        return self.inner.dtype(x)

    # -- tier 1
    def from_numpy(self, a, dtype=None):
        return self._check(self.inner.from_numpy(a, dtype), what="from_numpy")

    def to_numpy(self, x):
        return self.inner.to_numpy(x)

    def empty(self, shape, dtype):
        return self._check(self.inner.empty(shape, dtype), shape, dtype, "empty")

    def full(self, shape, value, dtype):
        return self._check(self.inner.full(shape, value, dtype), shape, dtype, "full")

    def arange(self, start, stop, step, dtype):
        n = max(0, math.ceil((stop - start) / step))
        return self._check(self.inner.arange(start, stop, step, dtype), (n,), dtype, "arange")

    def astype(self, x, dtype):
        return self._check(self.inner.astype(x, dtype), self._s(x), dtype, "astype")

    def shape(self, x):
        return self.inner.shape(x)

    def dtype(self, x):
        return self.inner.dtype(x)

    def is_array(self, x):
        return self.inner.is_array(x)

    def device_name(self):
        return self.inner.device_name()

    # -- tier 2
    def unary(self, op, x):
        return self._check(self.inner.unary(op, x), self._s(x), self._d(x), f"unary {op}")

    def binary(self, op, a, b):
        ref = a if self.inner.is_array(a) else b
        if self.inner.is_array(a) and self.inner.is_array(b):
            assert self._s(a) == self._s(b), f"binary {op}: shapes {self._s(a)} and {self._s(b)}"
            assert self._d(a) == self._d(b), f"binary {op}: dtypes {self._d(a)} and {self._d(b)}"
        return self._check(self.inner.binary(op, a, b), self._s(ref), self._d(ref), f"binary {op}")

    def compare(self, op, a, b):
        ref = a if self.inner.is_array(a) else b
        return self._check(self.inner.compare(op, a, b), self._s(ref), "bool", f"compare {op}")

    def where(self, cond, a, b):
        assert self._d(cond) == "bool", "where: cond must be bool"
        return self._check(self.inner.where(cond, a, b), self._s(cond), what="where")

    def reduce_sum(self, x, axes, keepdim):
        shape = _reduced(self._s(x), axes, keepdim)
        dtype = "int64" if self._d(x) in ("bool", "int64") else self._d(x)
        return self._check(self.inner.reduce_sum(x, axes, keepdim), shape, dtype, "reduce_sum")

    def reduce_max(self, x, axes, keepdim):
        shape = _reduced(self._s(x), axes, keepdim)
        return self._check(self.inner.reduce_max(x, axes, keepdim), shape, self._d(x), "reduce_max")

    def argmax(self, x, axis):
        shape = _reduced(self._s(x), [axis], False)
        return self._check(self.inner.argmax(x, axis), shape, "int64", "argmax")

    def reshape(self, x, shape):
        return self._check(self.inner.reshape(x, shape), shape, self._d(x), "reshape")

    def permute(self, x, axes):
        shape = tuple(self._s(x)[a] for a in axes)
        return self._check(self.inner.permute(x, axes), shape, self._d(x), "permute")

    def expand(self, x, shape):
        return self._check(self.inner.expand(x, shape), shape, self._d(x), "expand")

    def slice(self, x, index):
        return self._check(self.inner.slice(x, index), dtype=self._d(x), what="slice")

    def slice_backward(self, grad, shape, index):
        return self._check(self.inner.slice_backward(grad, shape, index), shape, self._d(grad),
                           "slice_backward")

    def index_select(self, x, axis, idx):
        shape = list(self._s(x))
        shape[axis] = self._s(idx)[0]
        return self._check(self.inner.index_select(x, axis, idx), tuple(shape), self._d(x),
                           "index_select")

    def index_add(self, shape, axis, idx, src):
        return self._check(self.inner.index_add(shape, axis, idx, src), shape, self._d(src),
                           "index_add")

    def concat(self, xs, axis):
        shape = list(self._s(xs[0]))
        shape[axis] = sum(self._s(x)[axis] for x in xs)
        return self._check(self.inner.concat(xs, axis), tuple(shape), self._d(xs[0]), "concat")

    def contiguous(self, x):
        out = self._check(self.inner.contiguous(x), self._s(x), self._d(x), "contiguous")
        assert self.inner.is_contiguous(out), "contiguous: result is not contiguous"
        return out

    def is_contiguous(self, x):
        return self.inner.is_contiguous(x)

    def strides(self, x):
        out = tuple(self.inner.strides(x))
        assert len(out) == len(self._s(x)), f"strides: {out} for shape {self._s(x)}"
        return out

    def matmul(self, a, b):
        sa, sb = self._s(a), self._s(b)
        assert sa[:-2] == sb[:-2] and sa[-1] == sb[-2], f"matmul: shapes {sa} @ {sb}"
        return self._check(self.inner.matmul(a, b), sa[:-1] + sb[-1:], self._d(a), "matmul")

    # -- tier 3: only the primary outputs' shapes are checked
    def softmax_fwd(self, x):
        return self._check(self.inner.softmax_fwd(x), self._s(x), self._d(x), "softmax_fwd")

    def softmax_bwd(self, dy, y):
        return self._check(self.inner.softmax_bwd(dy, y), self._s(y), self._d(y), "softmax_bwd")

    def log_softmax_fwd(self, x):
        return self._check(self.inner.log_softmax_fwd(x), self._s(x), self._d(x), "log_softmax_fwd")

    def log_softmax_bwd(self, dy, y):
        return self._check(self.inner.log_softmax_bwd(dy, y), self._s(y), self._d(y),
                           "log_softmax_bwd")

    def layernorm_fwd(self, x, weight, bias, eps):
        y, mean, rstd = self.inner.layernorm_fwd(x, weight, bias, eps)
        self._check(y, self._s(x), self._d(x), "layernorm_fwd")
        return y, mean, rstd

    def layernorm_bwd(self, dy, x, weight, mean, rstd):
        dx, dw, db = self.inner.layernorm_bwd(dy, x, weight, mean, rstd)
        self._check(dx, self._s(x), self._d(x), "layernorm_bwd")
        if weight is not None:
            self._check(dw, self._s(weight), what="layernorm_bwd dweight")
        return dx, dw, db

    def rmsnorm_fwd(self, x, weight, eps):
        y, rstd = self.inner.rmsnorm_fwd(x, weight, eps)
        self._check(y, self._s(x), self._d(x), "rmsnorm_fwd")
        return y, rstd

    def rmsnorm_bwd(self, dy, x, weight, rstd):
        dx, dw = self.inner.rmsnorm_bwd(dy, x, weight, rstd)
        self._check(dx, self._s(x), self._d(x), "rmsnorm_bwd")
        return dx, dw

    def gelu_fwd(self, x, approximate):
        return self._check(self.inner.gelu_fwd(x, approximate), self._s(x), self._d(x), "gelu_fwd")

    def gelu_bwd(self, dy, x, approximate):
        return self._check(self.inner.gelu_bwd(dy, x, approximate), self._s(x), self._d(x),
                           "gelu_bwd")

    def silu_fwd(self, x):
        return self._check(self.inner.silu_fwd(x), self._s(x), self._d(x), "silu_fwd")

    def silu_bwd(self, dy, x):
        return self._check(self.inner.silu_bwd(dy, x), self._s(x), self._d(x), "silu_bwd")

    def dropout_fwd(self, x, p, seed):
        y, mask = self.inner.dropout_fwd(x, p, seed)
        self._check(y, self._s(x), self._d(x), "dropout_fwd")
        return y, mask

    def dropout_bwd(self, dy, mask, p):
        return self._check(self.inner.dropout_bwd(dy, mask, p), self._s(dy), self._d(dy),
                           "dropout_bwd")

    def embedding_fwd(self, weight, idx):
        shape = self._s(idx) + self._s(weight)[1:]
        return self._check(self.inner.embedding_fwd(weight, idx), shape, self._d(weight),
                           "embedding_fwd")

    def embedding_bwd(self, dy, idx, num_embeddings):
        shape = (num_embeddings, self._s(dy)[-1])
        return self._check(self.inner.embedding_bwd(dy, idx, num_embeddings), shape,
                           what="embedding_bwd")

    def cross_entropy_fwd(self, logits, targets, ignore_index):
        losses, lse = self.inner.cross_entropy_fwd(logits, targets, ignore_index)
        self._check(losses, self._s(targets), what="cross_entropy_fwd")
        return losses, lse

    def cross_entropy_bwd(self, dlosses, logits, targets, lse, ignore_index):
        return self._check(self.inner.cross_entropy_bwd(dlosses, logits, targets, lse, ignore_index),
                           self._s(logits), self._d(logits), "cross_entropy_bwd")

    def attention_fwd(self, q, k, v, causal, scale, bias=None, dropout_p=0.0, seed=0):
        o, lse = self.inner.attention_fwd(q, k, v, causal, scale, bias, dropout_p, seed)
        self._check(o, self._s(q)[:-1] + self._s(v)[-1:], self._d(q), "attention_fwd")
        self._check(lse, self._s(q)[:-1], what="attention_fwd lse")
        return o, lse

    def attention_bwd(self, do, q, k, v, o, lse, causal, scale, bias=None, dropout_p=0.0, seed=0):
        dq, dk, dv = self.inner.attention_bwd(do, q, k, v, o, lse, causal, scale, bias, dropout_p, seed)
        self._check(dq, self._s(q), self._d(q), "attention_bwd dq")
        self._check(dk, self._s(k), self._d(k), "attention_bwd dk")
        self._check(dv, self._s(v), self._d(v), "attention_bwd dv")
        return dq, dk, dv

    def copy_(self, dst, src):
        return self.inner.copy_(dst, src)


def _reduced(shape, axes, keepdim):
    axes = {a % len(shape) for a in axes} if shape else set()
    if keepdim:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)
