"""Elementwise Functions. Inputs arrive with equal shapes (or one Python scalar): broadcasting
is done before, by `Expand`, so each backward here is purely local (no reductions).

Notation in the comments: y = f(a, b), g = dL/dy; each backward returns (dL/da, dL/db).
"""
from __future__ import annotations

import math

from ..autograd import Function


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
