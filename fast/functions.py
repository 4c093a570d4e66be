"""The performance layer's Functions: each one computes what a few core ops compute, in fewer launches.

    Linear             x W^T + b           core: x @ W.T + b (MatMul, Add)
    MLP                act(x W1^T + b1) W2^T + b2    core: c_proj(act(c_fc(x))) (Linear, GELU, Linear)
    QKVAttention       self-attention read from the fused qkv projection, heads merged on output
                                           core: split, reshape, transpose, sdpa, transpose, reshape
    Attention          sdpa on (B, H, T, D) heads    core: nn/functional.py's Attention
    Dropout            dropout                       core: nn/functional.py's Dropout
    CrossEntropyInPlace   mean-able losses whose gradient overwrites the logits
                                           core: F.cross_entropy on the sliced logits
    LinearCrossEntropy    the lm_head matmul and CrossEntropyInPlace, the upstream scale on x's side
                                           core: lm_head (Linear), then F.cross_entropy

Like every core op they are `Function`s on raw backend arrays with forward beside backward; they
reach the backend through `fast_ops(backend)` (fast/ops.py), whose bodies are the specification.
Attention and Dropout differ from the core's only in drawing their masks through FastOps, whose
seed offset a CUDA-graph replay can change (fast/ops.py). tests/test_fast_parity.py checks each
against the core ops it replaces, values and gradients, on both backends.
"""
from __future__ import annotations

from minigrad.autograd import Function

from .ops import fast_ops


def _t(b, x):
    """Swap the last two axes as a view (the matmul reads transposed views in place)."""
    n = len(b.shape(x))
    return b.permute(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _weight_and_bias_grads(b, ops, dy, x, need_w: bool, need_b: bool) -> tuple:
    """(dW, db) of y = x W^T + b from dy (N, out): dW = dy^T x (out, in), db = sum of dy over rows
    (out,), each None where not needed. Both: one matmul whose A operand dy^T has db as its row sums."""
    if need_w and need_b:
        return ops.matmul_rowsum(_t(b, dy), x)
    dw = ops.matmul(_t(b, dy), x) if need_w else None
    return dw, (b.reduce_sum(dy, (0,), False) if need_b else None)


class Linear(Function):
    """y = x W^T (+ b): x (N, in), W (out, in), b (out,) optional -> (N, out), the bias added in
    the matmul's epilogue (one launch instead of a matmul and a broadcast add). Backward:
    dx = dy W, dW = dy^T x (computed in W's own layout, so W.grad is contiguous and the multi-tensor
    optimizer reads it without a copy), db = sum of dy over rows, which are the row sums of dy^T,
    the A operand of the dW matmul: that matmul writes them as it goes (matmul_rowsum), instead of
    a column-sum launch reading dy again."""

    def forward(self, x, w, bias=None):
        b = self.backend
        self.x, self.w, self.has_bias = x, w, bias is not None
        return fast_ops(b).matmul_bias(x, _t(b, w), bias)

    def backward(self, g):
        b, ops, need = self.backend, fast_ops(self.backend), self.needs_input_grad
        dx = ops.matmul(g, self.w) if need[0] else None
        dw, db = _weight_and_bias_grads(b, ops, g, self.x, need[1], self.has_bias and need[2])
        return (dx, dw, db) if self.has_bias else (dx, dw)


class MLP(Function):
    """y = act(x W1^T + b1) W2^T + b2: x (N, C), W1 (H, C), W2 (C_out, H), biases optional (both or
    neither) -> (N, C_out). The activation costs no launch of its own: the first matmul's
    epilogue writes both the pre-activation a and h = act(a) (matmul_bias_act), and the backward's
    dh = dy W2 comes out of its matmul already multiplied by act'(a) (matmul_act_grad). Saved for
    backward: x, a, h (what Linear, act, Linear would keep).

    Backward, with da = (dy W2) * act'(a):
    dW2 = dy^T h,  db2 = sum_rows dy,  dx = da W1,  dW1 = da^T x,  db1 = sum_rows da
    (weight gradients in the weights' own layout, each bias gradient from its weight gradient's
    matmul, as Linear's)."""

    def forward(self, x, w1, w2, b1=None, b2=None, activation: str = "gelu"):
        b, ops = self.backend, fast_ops(self.backend)
        self.x, self.w1, self.w2, self.activation = x, w1, w2, activation
        self.has_bias = b1 is not None
        self.h, self.a = ops.matmul_bias_act(x, _t(b, w1), b1, activation)   # (N, H) each
        return ops.matmul_bias(self.h, _t(b, w2), b2)                        # (N, C_out)

    def backward(self, g):
        b, ops, need = self.backend, fast_ops(self.backend), self.needs_input_grad
        bias = self.has_bias
        dw2, db2 = _weight_and_bias_grads(b, ops, g, self.h, need[2], bias and need[4])   # (C_out, H), (C_out,)
        da = None
        if need[0] or need[1] or (bias and need[3]):
            da = ops.matmul_act_grad(g, self.w2, self.a, self.activation)   # (N, H)
        dx = ops.matmul(da, self.w1) if need[0] else None                   # (N, C)
        dw1, db1 = _weight_and_bias_grads(b, ops, da, self.x, need[1], bias and need[3])  # (H, C), (H,)
        return (dx, dw1, dw2, db1, db2) if bias else (dx, dw1, dw2)


class QKVAttention(Function):
    """Self-attention over the output of a fused q/k/v projection: qkv (B, T, 3C) -> y (B, T, C)
    with the heads merged. One Function instead of split + reshapes + transposes + attention +
    transpose-copy, so the backward is one (B, T, 3C) gradient written in place by the backend
    (no zero-filled slice gradients to add up). Dropout on the (B, n_head, T, T) probabilities,
    the mask drawn from `seed` (and the seed offset), regenerated in the backward."""

    def forward(self, qkv, n_head: int, causal: bool = True, scale: float = 1.0,
                dropout_p: float = 0.0, seed: int = 0):
        self.qkv, self.n_head, self.causal, self.scale = qkv, n_head, causal, scale
        self.dropout_p, self.seed = dropout_p, seed
        self.y, self.lse = fast_ops(self.backend).qkv_attention_fwd(qkv, n_head, causal, scale,
                                                                    dropout_p, seed)
        return self.y

    def backward(self, g):
        return fast_ops(self.backend).qkv_attention_bwd(g, self.qkv, self.y, self.lse, self.n_head,
                                                        self.causal, self.scale, self.dropout_p,
                                                        self.seed)


class Attention(Function):
    """dropout(softmax(scale * q k^T, causal)) v on (B, H, T, D) heads without a bias, as the core's
    Attention, its dropout mask drawn through FastOps (seed + the seed offset)."""

    def forward(self, q, k, v, causal: bool = True, scale: float = 1.0, dropout_p: float = 0.0,
                seed: int = 0):
        self.q, self.k, self.v, self.causal, self.scale = q, k, v, causal, scale
        self.dropout_p, self.seed = dropout_p, seed
        self.o, self.lse = fast_ops(self.backend).attention_fwd(q, k, v, causal, scale, dropout_p, seed)
        return self.o

    def backward(self, g):
        return fast_ops(self.backend).attention_bwd(g, self.q, self.k, self.v, self.o, self.lse,
                                                    self.causal, self.scale, self.dropout_p, self.seed)


class Dropout(Function):
    """The core's Dropout, its mask drawn through FastOps (seed + the seed offset)."""

    def forward(self, x, p: float, seed: int):
        self.p = p
        y, self.mask = fast_ops(self.backend).dropout_fwd(x, p, seed)
        return y

    def backward(self, g):
        return self.backend.dropout_bwd(g, self.mask, self.p)


class CrossEntropyInPlace(Function):
    """Per-row losses (N,) of logits (N, Vp) over their first n_classes columns, computed together
    with their gradient, which overwrites the logits (Liger-Kernel style): no (N, V) softmax or
    gradient buffer, no copy of a sliced vocabulary, no zero-filled slice gradient. The caller
    must not read the logits afterwards. backward scales the stored gradient by the upstream one."""

    def forward(self, logits, targets, n_classes: int, ignore_index: int):
        self.dlogits = logits
        return fast_ops(self.backend).cross_entropy_fwd_bwd_(logits, targets, ignore_index, n_classes)

    def backward(self, g):
        b = self.backend
        N, Vp = b.shape(self.dlogits)
        if b.dtype(g) != b.dtype(self.dlogits):           # float32 losses, bf16/fp16 logits
            g = b.astype(g, b.dtype(self.dlogits))
        scale = b.expand(b.reshape(g, (N, 1)), (N, Vp))
        return b.binary("mul", self.dlogits, scale), None


class LinearCrossEntropy(Function):
    """Per-row losses (N,) of logits = x W^T: x (N, C), W (Vp, C), over the first n_classes columns
    (the rest is vocabulary padding), as the lm_head Linear followed by CrossEntropyInPlace: the
    logits are overwritten by d(sum of losses)/d(logits) in the same pass.

    Why one Function: backward gets one upstream number per row, g (N,) (a mean gives every row
    the same 1/N). Scaling the (N, Vp) gradient by it reads and writes the whole vocabulary-wide
    buffer once more (GPT-2: 8192 x 50304 bf16, 1.65 GB of traffic and an 824 MB buffer per
    micro-batch). Here the scale goes on the narrow side instead, which gives the same sums:

        dW = (g * dlogits)^T x = dlogits^T (g * x)        dx = (g * dlogits) W = g * (dlogits W)

    two (N, C) multiplies (C = n_embd, 65x narrower than the vocabulary for GPT-2)."""

    def forward(self, x, w, targets, n_classes: int, ignore_index: int):
        b, ops = self.backend, fast_ops(self.backend)
        self.x, self.w = x, w
        self.dlogits = ops.matmul(x, _t(b, w))                              # (N, Vp), overwritten:
        return ops.cross_entropy_fwd_bwd_(self.dlogits, targets, ignore_index, n_classes)

    def backward(self, g):
        b, ops, need = self.backend, fast_ops(self.backend), self.needs_input_grad
        N, C = b.shape(self.x)
        if b.dtype(g) != b.dtype(self.x):                  # float32 losses, bf16/fp16 activations
            g = b.astype(g, b.dtype(self.x))
        g_rows = b.expand(b.reshape(g, (N, 1)), (N, C))                     # (N, C), a view
        dx = b.binary("mul", ops.matmul(self.dlogits, self.w), g_rows) if need[0] else None
        dw = ops.matmul(_t(b, self.dlogits), b.binary("mul", self.x, g_rows)) if need[1] else None
        return dx, dw, None
