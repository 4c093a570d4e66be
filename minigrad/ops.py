"""Every differentiable op, one `Function` each: forward beside backward, on raw backend arrays.

A Function's forward and backward call the backend interface (minigrad/backends/base.py), never
NumPy or torch directly, so each op is written once for both backends. State the backward needs is
kept on the Function object. Tensor methods (minigrad/tensor.py, tensor_shape.py) and
minigrad.nn.functional apply these; autograd.py walks them backward.

    elementwise   Unary, Add, Sub, Mul, Div, Pow, Maximum, Minimum, Where, Clamp, Cast
    reductions    Sum, Max
    movement      Reshape, Permute, Expand, Slice, IndexSelect, Concat, Contiguous
    matmul        MatMul
    fused pairs   Softmax, LogSoftmax, LayerNorm, RMSNorm, GELU, SiLU, Dropout, Embedding,
                  CrossEntropyRows, Attention: one backend call each way (a few kernels on the
                  GPU instead of the dozen primitives they replace)

Notation in the comments: y = f(a, b), g = dL/dy; each backward returns (dL/da, dL/db), one
gradient per Tensor input (None where none is needed).
"""
from __future__ import annotations

import math

from .autograd import Function


# ==============================================================================================
# Elementwise. Inputs arrive with equal shapes (or one Python scalar): broadcasting is done before,
# by `Expand`, so each backward here is purely local (no reductions).

def _is_arr(x) -> bool:
    return not isinstance(x, (int, float, bool))


class Unary(Function):
    """y = op(x) for op in exp, log, sqrt, tanh, sigmoid, relu, neg, abs, sin, cos."""

    def forward(self, x, op: str):
        self.op, self.x = op, x
        self.y = self.backend.unary(op, x)
        return self.y

    def backward(self, g):
        b, op, x, y = self.backend, self.op, self.x, self.y
        if op == "neg":
            return b.unary("neg", g)
        if op == "exp":                       # d exp(x) = exp(x)
            return b.binary("mul", g, y)
        if op == "log":                       # d log(x) = 1/x
            return b.binary("div", g, x)
        if op == "sqrt":                      # d sqrt(x) = 1 / (2 sqrt(x))
            return b.binary("div", g, b.binary("mul", y, 2.0))
        if op == "tanh":                      # 1 - tanh^2
            return b.binary("mul", g, b.binary("sub", 1.0, b.binary("mul", y, y)))
        if op == "sigmoid":                   # s (1 - s)
            return b.binary("mul", g, b.binary("mul", y, b.binary("sub", 1.0, y)))
        if op == "relu":                      # 1 where x > 0 (0 at x == 0, as torch)
            return b.where(b.compare("gt", x, 0.0), g, 0.0)
        if op == "abs":
            return b.binary("mul", g, b.unary("sign", x))
        if op == "sin":
            return b.binary("mul", g, b.unary("cos", x))
        if op == "cos":
            return b.unary("neg", b.binary("mul", g, b.unary("sin", x)))
        raise NotImplementedError(f"no gradient for unary op {op!r}")


class Add(Function):
    def forward(self, a, b):
        self.a_arr = _is_arr(a)
        return self.backend.binary("add", a, b)

    def backward(self, g):
        return _per_tensor(self, g, g)


class Sub(Function):
    def forward(self, a, b):
        self.a_arr = _is_arr(a)
        return self.backend.binary("sub", a, b)

    def backward(self, g):
        _, need_b = _needs(self)
        db = self.backend.unary("neg", g) if need_b else None
        return _per_tensor(self, g, db)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b, self.a_arr = a, b, _is_arr(a)
        return self.backend.binary("mul", a, b)

    def backward(self, g):
        bk = self.backend
        need_a, need_b = _needs(self)
        da = bk.binary("mul", g, self.b) if need_a else None
        db = bk.binary("mul", g, self.a) if need_b else None
        return _per_tensor(self, da, db)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b, self.a_arr = a, b, _is_arr(a)
        return self.backend.binary("div", a, b)

    def backward(self, g):
        bk = self.backend
        need_a, need_b = _needs(self)
        da = bk.binary("div", g, self.b) if need_a else None
        db = None
        if need_b:      # d(a/b)/db = -a / b^2
            db = bk.unary("neg", bk.binary("div", bk.binary("mul", g, self.a),
                                             bk.binary("mul", self.b, self.b)))
        return _per_tensor(self, da, db)


class Pow(Function):
    """a ** b with a tensor base and a tensor or scalar exponent, or a scalar base."""

    def forward(self, a, b):
        self.a, self.b, self.a_arr = a, b, _is_arr(a)
        self.y = self.backend.binary("pow", a, b)
        return self.y

    def backward(self, g):
        bk, a, b = self.backend, self.a, self.b
        da = db = None
        need_a, need_b = _needs(self)
        if need_a:                                            # b * a^(b-1)
            if _is_arr(b):
                da = bk.binary("mul", g, bk.binary("mul", b, bk.binary("pow", a, bk.binary("sub", b, 1.0))))
            else:
                da = bk.binary("mul", g, bk.binary("mul", bk.binary("pow", a, b - 1.0), float(b)))
        if need_b:                                            # a^b * log(a)
            log_a = bk.unary("log", a) if _is_arr(a) else math.log(a)
            db = bk.binary("mul", g, bk.binary("mul", self.y, log_a))
        return _per_tensor(self, da, db)


class Maximum(Function):
    """max(a, b); at ties the gradient is split evenly between a and b (as torch does)."""

    op = "maximum"

    def forward(self, a, b):
        self.a, self.b, self.a_arr = a, b, _is_arr(a)
        return self.backend.binary(self.op, a, b)

    def backward(self, g):
        bk = self.backend
        wins = "gt" if self.op == "maximum" else "lt"
        half = bk.binary("mul", g, 0.5)
        tie = bk.compare("eq", self.a, self.b)
        a_wins = bk.compare(wins, self.a, self.b)
        b_wins = bk.compare(wins, self.b, self.a)
        da = bk.where(a_wins, g, bk.where(tie, half, 0.0)) if _is_arr(self.a) else None
        db = bk.where(b_wins, g, bk.where(tie, half, 0.0)) if _is_arr(self.b) else None
        return _per_tensor(self, da, db)


class Minimum(Maximum):
    op = "minimum"


class Where(Function):
    """cond ? a : b. cond carries no gradient (it is bool); a/b may be scalars."""

    def forward(self, cond, a, b):
        self.cond, self.a_arr, self.b_arr = cond, _is_arr(a), _is_arr(b)
        return self.backend.where(cond, a, b)

    def backward(self, g):
        bk = self.backend
        out = [None]                                            # cond: no gradient
        if self.a_arr:
            out.append(bk.where(self.cond, g, 0.0))
        if self.b_arr:
            out.append(bk.where(self.cond, 0.0, g))
        return tuple(out)


class Clamp(Function):
    """clamp(x, lo, hi); gradient 1 where lo <= x <= hi (inclusive, as torch)."""

    def forward(self, x, lo, hi):
        b = self.backend
        self.x, self.lo, self.hi = x, lo, hi
        y = x
        if lo is not None:
            y = b.binary("maximum", y, lo)
        if hi is not None:
            y = b.binary("minimum", y, hi)
        return y

    def backward(self, g):
        b = self.backend
        if self.lo is not None:
            g = b.where(b.compare("ge", self.x, self.lo), g, 0.0)
        if self.hi is not None:
            g = b.where(b.compare("le", self.x, self.hi), g, 0.0)
        return g


class Cast(Function):
    def forward(self, x, dtype: str):
        self.src = self.backend.dtype(x)
        return self.backend.astype(x, dtype)

    def backward(self, g):
        return self.backend.astype(g, self.src)


def _needs(fn: Function) -> tuple[bool, bool]:
    """(a needs a gradient, b needs one) for a binary Function whose operand may be a scalar:
    a scalar operand never does, and then needs_input_grad has only the tensor's entry."""
    if len(fn.needs_input_grad) == 2:
        return fn.needs_input_grad
    return (True, False) if fn.a_arr else (False, True)


def _per_tensor(fn: Function, da, db):
    """Binary Functions may have a scalar operand, which is not a Tensor input: drop its slot.
    Each binary forward records `self.a_arr` (whether its first operand is an array)."""
    n = len(fn.needs_input_grad)
    if n == 2:
        return da, db
    return (da,) if fn.a_arr else (db,)


# ==============================================================================================
# Reductions: sum and max over any set of axes (mean and var are built from these).

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


# ==============================================================================================
# Movement: how elements are arranged, never their values. Most are views on both backends (no
# copy); each backward is the inverse arrangement: reshape back, permute by the inverse
# permutation, sum over broadcast dims, scatter slices.

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


# ==============================================================================================
# Matmul. Batch broadcasting is resolved before (Tensor.matmul expands).

def _t(b, x):
    """Swap the last two axes as a view (the backend's matmul reads transposed views directly)."""
    n = len(b.shape(x))
    return b.permute(x, tuple(range(n - 2)) + (n - 1, n - 2))


class MatMul(Function):
    def forward(self, a, b_):
        self.a, self.b_ = a, b_
        return self.backend.matmul(a, b_)

    def backward(self, g):
        # C = A B:  dA = dC B^T (..., M, K);  dB = A^T dC (..., K, N)
        b = self.backend
        da = b.matmul(g, _t(b, self.b_)) if self.needs_input_grad[0] else None
        db = b.matmul(_t(b, self.a), g) if self.needs_input_grad[1] else None
        return da, db


# ==============================================================================================
# Fused pairs (tier 3 of the backend interface). Each forward calls the backend's `<op>_fwd`, keeps
# what the matching `<op>_bwd` needs, and returns only the primary output; nn/functional.py wraps
# them with torch's signatures, and the tests check each backward against autograd through the
# primitives.

class Softmax(Function):
    """softmax over the last dim (functional.softmax permutes other dims there)."""

    def forward(self, x):
        self.y = self.backend.softmax_fwd(x)
        return self.y

    def backward(self, g):
        return self.backend.softmax_bwd(g, self.y)


class LogSoftmax(Function):
    def forward(self, x):
        self.y = self.backend.log_softmax_fwd(x)
        return self.y

    def backward(self, g):
        return self.backend.log_softmax_bwd(g, self.y)


class LayerNorm(Function):
    """x (..., C), weight/bias (C,) optional. Saves mean and rstd (N,) for backward."""

    def forward(self, x, weight=None, bias=None, eps: float = 1e-5):
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        y, self.mean, self.rstd = self.backend.layernorm_fwd(x, weight, bias, eps)
        return y

    def backward(self, g):
        dx, dw, db = self.backend.layernorm_bwd(g, self.x, self.weight, self.mean, self.rstd)
        grads = [dx]
        if self.weight is not None:
            grads.append(dw)
        if self.has_bias:
            if db is None:          # no weight but a bias: db = sum of g over rows
                b = self.backend
                n = len(b.shape(g))
                db = b.reduce_sum(g, tuple(range(n - 1)), False)
            grads.append(db)
        return tuple(grads)


class RMSNorm(Function):
    def forward(self, x, weight=None, eps: float = 1e-6):
        self.x, self.weight = x, weight
        y, self.rstd = self.backend.rmsnorm_fwd(x, weight, eps)
        return y

    def backward(self, g):
        dx, dw = self.backend.rmsnorm_bwd(g, self.x, self.weight, self.rstd)
        return (dx, dw) if self.weight is not None else dx


class GELU(Function):
    def forward(self, x, approximate: str = "none"):
        self.x, self.approximate = x, approximate
        return self.backend.gelu_fwd(x, approximate)

    def backward(self, g):
        return self.backend.gelu_bwd(g, self.x, self.approximate)


class SiLU(Function):
    def forward(self, x):
        self.x = x
        return self.backend.silu_fwd(x)

    def backward(self, g):
        return self.backend.silu_bwd(g, self.x)


class Dropout(Function):
    def forward(self, x, p: float, seed: int):
        self.p = p
        y, self.mask = self.backend.dropout_fwd(x, p, seed)
        return y

    def backward(self, g):
        return self.backend.dropout_bwd(g, self.mask, self.p)


class Embedding(Function):
    """weight (V, C), idx int64 (*S) -> (*S, C). idx is a Tensor input without gradient."""

    def forward(self, weight, idx):
        self.idx, self.V = idx, self.backend.shape(weight)[0]
        return self.backend.embedding_fwd(weight, idx)

    def backward(self, g):
        return self.backend.embedding_bwd(g, self.idx, self.V), None


class CrossEntropyRows(Function):
    """Per-row losses (N,) = logsumexp(logits[i]) - logits[i, t_i]; 0 where t_i == ignore_index.
    The reduction (mean over counted rows, sum, none) is applied to this output above."""

    def forward(self, logits, targets, ignore_index: int):
        self.logits, self.targets, self.ignore_index = logits, targets, ignore_index
        losses, self.lse = self.backend.cross_entropy_fwd(logits, targets, ignore_index)
        return losses

    def backward(self, g):
        d = self.backend.cross_entropy_bwd(g, self.logits, self.targets, self.lse,
                                           self.ignore_index)
        return d, None


class Attention(Function):
    """dropout(softmax(scale * q k^T + bias, causal)) v, without ever keeping the (T, S) matrix
    on the GPU.

    q (B, H, T, D), k/v (B, H, S, D), bias optional (B, H, T, S) (already expanded, no grad).
    dropout_p > 0 drops probabilities with the mask the backend's dropout_fwd draws from `seed`
    for a (B, H, T, S) array; only the seed is kept, the backward draws the mask again.
    """

    def forward(self, q, k, v, bias=None, causal: bool = False, scale: float = 1.0,
                dropout_p: float = 0.0, seed: int = 0):
        self.q, self.k, self.v, self.bias, self.causal, self.scale = q, k, v, bias, causal, scale
        self.dropout_p, self.seed = dropout_p, seed
        self.o, self.lse = self.backend.attention_fwd(q, k, v, causal, scale, bias, dropout_p, seed)
        return self.o

    def backward(self, g):
        dq, dk, dv = self.backend.attention_bwd(g, self.q, self.k, self.v, self.o, self.lse,
                                                self.causal, self.scale, self.bias,
                                                self.dropout_p, self.seed)
        return (dq, dk, dv) if self.bias is None else (dq, dk, dv, None)
