"""Fused Functions (tier 3 of the backend interface): one forward, one backward, each a few
kernels on the GPU instead of the dozen primitives they replace.

Each forward calls the backend's `<op>_fwd`, keeps what the matching `<op>_bwd` needs on the
Function object, and returns only the primary output. minigrad/nn/functional.py wraps these
with torch's signatures; the tests check each backward against autograd through primitives.
"""
from __future__ import annotations

from ..autograd import Function


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


class CrossEntropyInPlace(Function):
    """Per-row losses (N,) of logits (N, Vp) over their first n_classes columns, computed together
    with their gradient, which overwrites the logits (Liger-Kernel style): no (N, V) softmax or
    gradient buffer, no copy of a sliced vocabulary, no zero-filled slice gradient. The caller
    must not read the logits afterwards. backward scales the stored gradient by the upstream one."""

    def forward(self, logits, targets, n_classes: int, ignore_index: int):
        self.dlogits = logits
        return self.backend.cross_entropy_fwd_bwd_(logits, targets, ignore_index, n_classes)

    def backward(self, g):
        b = self.backend
        N, Vp = b.shape(self.dlogits)
        if b.dtype(g) != b.dtype(self.dlogits):           # float32 losses, bf16/fp16 logits
            g = b.astype(g, b.dtype(self.dlogits))
        scale = b.expand(b.reshape(g, (N, 1)), (N, Vp))
        return b.binary("mul", self.dlogits, scale), None


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


class QKVAttention(Function):
    """Self-attention over the output of a fused q/k/v projection: qkv (B, T, 3C) -> y (B, T, C)
    with the heads merged. One Function instead of split + reshapes + transposes + attention +
    transpose-copy, so the backward is one (B, T, 3C) gradient written in place by the backend
    (no zero-filled slice gradients to add up). Dropout as Attention's, on the (B, n_head, T, T)
    probabilities."""

    def forward(self, qkv, n_head: int, causal: bool = True, scale: float = 1.0,
                dropout_p: float = 0.0, seed: int = 0):
        self.qkv, self.n_head, self.causal, self.scale = qkv, n_head, causal, scale
        self.dropout_p, self.seed = dropout_p, seed
        self.y, self.lse = self.backend.qkv_attention_fwd(qkv, n_head, causal, scale, dropout_p, seed)
        return self.y

    def backward(self, g):
        return self.backend.qkv_attention_bwd(g, self.qkv, self.y, self.lse, self.n_head,
                                              self.causal, self.scale, self.dropout_p, self.seed)
