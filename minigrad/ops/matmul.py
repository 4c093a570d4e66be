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
