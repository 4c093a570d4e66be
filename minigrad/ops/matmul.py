"""Batched matrix product. Batch broadcasting is resolved before (Tensor.matmul expands)."""
from __future__ import annotations

from ..autograd import Function


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
        db = None
        if self.needs_input_grad[1]:
            if not b.is_contiguous(self.b_) and b.is_contiguous(_t(b, self.b_)):
                # B is a transposed view (a Linear's x W^T): compute dB^T = dC^T A in W's own
                # layout and return its transposed view, so W's .grad comes out contiguous (the
                # multi-tensor optimizer and clipping read gradients flat, without a copy)
                db = _t(b, b.matmul(_t(b, g), self.a))
            else:
                db = b.matmul(_t(b, self.a), g)
        return da, db


class Linear(Function):
    """y = x W^T (+ b): x (N, in), W (out, in), b (out,) optional -> (N, out), the bias added in
    the matmul's epilogue (one launch instead of a matmul and a broadcast add). Backward:
    dx = dy W, dW = dy^T x (in W's own layout), db = sum of dy over rows."""

    def forward(self, x, w, bias=None):
        b = self.backend
        self.x, self.w, self.has_bias = x, w, bias is not None
        return b.matmul_bias(x, _t(b, w), bias)

    def backward(self, g):
        b = self.backend
        dx = b.matmul(g, self.w) if self.needs_input_grad[0] else None
        dw = b.matmul(_t(b, g), self.x) if self.needs_input_grad[1] else None
        if not self.has_bias:
            return dx, dw
        db = b.reduce_sum(g, (0,), False) if self.needs_input_grad[2] else None
        return dx, dw, db


class MLP(Function):
    """y = act(x W1^T + b1) W2^T + b2: x (N, C), W1 (H, C), W2 (C_out, H), biases optional (both or
    neither) -> (N, C_out). The activation costs no launch of its own: the first matmul's
    epilogue writes both the pre-activation a and h = act(a) (backend.matmul_bias_act), and the
    backward's dh = dy W2 comes out of its matmul already multiplied by act'(a)
    (backend.matmul_act_grad). Saved for backward: x, a, h (what Linear, act, Linear would keep).

    Backward, with da = (dy W2) * act'(a):
    dW2 = dy^T h,  db2 = sum_rows dy,  dx = da W1,  dW1 = da^T x,  db1 = sum_rows da
    (weight gradients in the weights' own layout, as Linear's)."""

    def forward(self, x, w1, w2, b1=None, b2=None, activation: str = "gelu"):
        b = self.backend
        self.x, self.w1, self.w2, self.activation = x, w1, w2, activation
        self.has_bias = b1 is not None
        self.h, self.a = b.matmul_bias_act(x, _t(b, w1), b1, activation)  # (N, H) each
        return b.matmul_bias(self.h, _t(b, w2), b2)                       # (N, C_out)

    def backward(self, g):
        b, need = self.backend, self.needs_input_grad
        dw2 = b.matmul(_t(b, g), self.h) if need[2] else None            # (C_out, H)
        da = None
        if need[0] or need[1] or (self.has_bias and need[3]):
            da = b.matmul_act_grad(g, self.w2, self.a, self.activation)  # (N, H)
        dx = b.matmul(da, self.w1) if need[0] else None                  # (N, C)
        dw1 = b.matmul(_t(b, da), self.x) if need[1] else None           # (H, C)
        if not self.has_bias:
            return dx, dw1, dw2
        db1 = b.reduce_sum(da, (0,), False) if need[3] else None
        db2 = b.reduce_sum(g, (0,), False) if need[4] else None
        return dx, dw1, dw2, db1, db2
