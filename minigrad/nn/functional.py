"""minigrad.nn.functional: torch.nn.functional's names and signatures over minigrad's ops.

The fused ones (softmax, log_softmax, layer_norm, rms_norm, gelu, silu, dropout, embedding,
cross_entropy, scaled_dot_product_attention) are single Functions from minigrad/ops.py, one
backend call each way; the rest compose Tensor ops: linear is x @ W^T + b, mlp is
linear(act(linear(x))), qkv_self_attention splits heads and calls scaled_dot_product_attention.

Not here: convolutions, pooling, the fused epilogue forms of linear and mlp (the performance
layer, fast/functional.py, has those, tested equal to these).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import ops
from .. import random as _random
from ..dtypes import FLOATS
from ..tensor import Tensor
from ..tensor_shape import broadcast_shapes, normalize_dim, value_range


def _last_dim_op(fn, x: Tensor, dim: int) -> Tensor:
    """Fused row ops work over the last dim: move `dim` there and back (views, no copies)."""
    d = normalize_dim(dim, x.ndim)
    if x.numel() == 0:                    # no rows, or rows of no entries: an empty result, as torch
        return x * 1.0
    if x.ndim == 0:                       # one row of one entry, as torch treats a 0-d tensor
        return fn.apply(x.reshape(1)).reshape(())
    if d == x.ndim - 1:
        return fn.apply(x)
    y = fn.apply(x.transpose(d, -1))
    return y.transpose(d, -1)


def _floating(x: Tensor, what: str) -> Tensor:
    if x.dtype not in FLOATS:
        raise TypeError(f"{what} needs a floating point tensor, got {x.dtype}")
    return x


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _last_dim_op(ops.Softmax, _floating(x, "softmax"), dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _last_dim_op(ops.LogSoftmax, _floating(x, "log_softmax"), dim)


def _norm_args(x: Tensor, normalized_shape, weight, what: str):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[-len(ns):]) != ns:
        raise ValueError(f"{what}: input shape {x.shape} does not end with normalized_shape {ns}")
    if weight is not None and weight.shape != ns:
        raise ValueError(f"{what}: weight shape {weight.shape} != normalized_shape {ns}")
    return ns


def layer_norm(x: Tensor, normalized_shape, weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    ns = _norm_args(_floating(x, "layer_norm"), normalized_shape, weight, "layer_norm")
    C = math.prod(ns)
    lead = x.shape[:x.ndim - len(ns)]
    x2 = x.reshape(lead + (C,)) if len(ns) != 1 else x
    w = weight.reshape(C) if weight is not None else None
    b = bias.reshape(C) if bias is not None else None
    y = ops.LayerNorm.apply(x2, w, b, eps=eps)
    return y.reshape(x.shape) if len(ns) != 1 else y


def rms_norm(x: Tensor, normalized_shape, weight: Optional[Tensor] = None,
             eps: Optional[float] = None) -> Tensor:
    ns = _norm_args(_floating(x, "rms_norm"), normalized_shape, weight, "rms_norm")
    if eps is None:
        eps = float(np.finfo(np.float32 if x.dtype != "float64" else np.float64).eps)
    C = math.prod(ns)
    x2 = x.reshape(x.shape[:x.ndim - len(ns)] + (C,)) if len(ns) != 1 else x
    w = weight.reshape(C) if weight is not None else None
    y = ops.RMSNorm.apply(x2, w, eps=eps)
    return y.reshape(x.shape) if len(ns) != 1 else y


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    return ops.GELU.apply(_floating(x, "gelu"), approximate=approximate)


def silu(x: Tensor) -> Tensor:
    return ops.SiLU.apply(_floating(x, "silu"))


def relu(x: Tensor) -> Tensor:
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity in eval).

    The mask is drawn by the backend from a seed taken from minigrad's global generator, so
    `minigrad.manual_seed` makes dropout reproducible (on the GPU the draw happens in-kernel).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return ops.Dropout.apply(_floating(x, "dropout"), p=p, seed=dropout_seed())


def dropout_seed() -> int:
    """A mask seed from minigrad's global generator (one draw), so manual_seed makes every dropout
    (F.dropout and attention's) reproducible."""
    return int(_random.default_generator().integers(0, 2 ** 31 - 1))


def attention_dropout_seed(p: float) -> int:
    """Attention's dropout_p checked, and its seed drawn as F.dropout draws one: only when some but
    not all entries are dropped (0 < p < 1), so the global generator advances as it does for
    softmax -> F.dropout."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"attention dropout_p must be in [0, 1], got {p}")
    return dropout_seed() if 0.0 < p < 1.0 else 0


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """y = x W^T + b with W (out, in), as torch. W^T is a view: no copy."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features but weight is {weight.shape} "
                         f"(out_features, in_features)")
    y = x @ weight.transpose(0, 1)                                         # (..., out)
    return y + bias if bias is not None else y


MLP_ACTIVATIONS = {"gelu": lambda h: gelu(h, approximate="tanh"), "gelu_exact": gelu, "silu": silu}


def check_mlp_args(x: Tensor, fc_weight: Tensor, proj_weight: Tensor, fc_bias: Optional[Tensor],
                   proj_bias: Optional[Tensor], activation: str) -> None:
    """The shapes mlp() needs, each mismatch a clear ValueError."""
    if activation not in MLP_ACTIVATIONS:
        raise ValueError(f"mlp: activation must be one of {tuple(MLP_ACTIVATIONS)}, got {activation!r}")
    if fc_weight.ndim != 2 or proj_weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != fc_weight.shape[1] \
            or proj_weight.shape[1] != fc_weight.shape[0]:
        raise ValueError(f"mlp: x {x.shape}, fc_weight {fc_weight.shape} (H, C) and proj_weight "
                         f"{proj_weight.shape} (C_out, H) do not fit")
    if (fc_bias is None) != (proj_bias is None):
        raise ValueError("mlp: give both biases or neither")
    for name, b, n in (("fc_bias", fc_bias, fc_weight.shape[0]),
                       ("proj_bias", proj_bias, proj_weight.shape[0])):
        if b is not None and b.shape != (n,):
            raise ValueError(f"mlp: {name} must have shape ({n},), got {b.shape}")


def mlp(x: Tensor, fc_weight: Tensor, proj_weight: Tensor, fc_bias: Optional[Tensor] = None,
        proj_bias: Optional[Tensor] = None, activation: str = "gelu") -> Tensor:
    """The transformer MLP, linear(act(linear(x, fc_weight, fc_bias)), proj_weight, proj_bias).

    fc_weight (H, C), proj_weight (C_out, H), x (..., C) -> (..., C_out). activation: "gelu" (the
    tanh approximation, GPT-2's), "gelu_exact" (erf) or "silu".
    """
    check_mlp_args(x, fc_weight, proj_weight, fc_bias, proj_bias, activation)
    h = MLP_ACTIVATIONS[activation](linear(x, fc_weight, fc_bias))         # (..., H)
    return linear(h, proj_weight, proj_bias)                               # (..., C_out)


def embedding(idx: Tensor, weight: Tensor) -> Tensor:
    """Rows of weight (V, C) picked by int64 ids of any shape -> (*idx.shape, C)."""
    if not isinstance(idx, Tensor):
        idx = Tensor(np.asarray(idx, dtype=np.int64), device=weight.device)
    if idx.dtype != "int64":
        raise TypeError(f"embedding ids must be int64, got {idx.dtype}")
    V = weight.shape[0]
    if idx.numel():
        lo, hi = value_range(idx)                        # a kernel given a bad id would read garbage
        if lo < 0 or hi >= V:
            raise IndexError(f"embedding: token ids must be in [0, {V - 1}] (num_embeddings={V}), "
                             f"got values in [{lo}, {hi}]")
    return ops.Embedding.apply(weight, idx)


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy of class logits (N, C) (or (N, C, d1, ...) as torch) with int64 targets.

    reduction: 'mean' (over targets != ignore_index, as torch), 'sum' or 'none'.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=np.int64), device=logits.device)
    if target.dtype != "int64":
        raise TypeError(f"cross_entropy targets must be int64 class ids, got {target.dtype}")
    _floating(logits, "cross_entropy")
    if logits.ndim > 2:                   # (N, C, d1, ...) -> (N*d1*..., C)
        perm = (0,) + tuple(range(2, logits.ndim)) + (1,)
        logits = logits.permute(perm)
    C = logits.shape[-1]
    rows = logits.reshape(-1, C).contiguous()
    expected = rows.shape[0]
    if target.numel() != expected:
        raise ValueError(f"cross_entropy: {expected} rows of logits but target has shape "
                         f"{target.shape}")
    t = target.reshape(-1).contiguous()
    valid = t != ignore_index
    if t.numel():
        check_targets(t, valid, C, ignore_index)
    losses = ops.CrossEntropyRows.apply(rows, t, ignore_index=ignore_index)
    if reduction == "none":
        return losses.reshape(target.shape)
    if reduction == "sum":
        return losses.sum()
    count = valid.sum().to(dtype=losses.dtype)
    return losses.sum() / count               # all rows ignored -> 0/0 = nan, as torch


def check_targets(t: Tensor, valid: Tensor, C: int, ignore_index: int) -> None:
    """Every target not equal to ignore_index must be a class id in [0, C) (read from the device:
    a kernel given a bad id would read garbage)."""
    safe = Tensor._wrap(t.backend.where(valid.data, t.data, 0), t.backend)   # ignored -> 0
    lo, hi = value_range(safe)
    if lo < 0 or hi >= C:
        raise IndexError(f"cross_entropy: target class ids must be in [0, {C - 1}] (or "
                         f"ignore_index={ignore_index}), got values in [{lo}, {hi}]")


def nll_loss(log_probs: Tensor, target: Tensor, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C); composite (gather + mean)."""
    N, C = log_probs.shape
    valid = (target != ignore_index)
    safe = Tensor._wrap(target.backend.where(valid.data, target.data, 0), target.backend)
    picked = log_probs.reshape(-1)[safe + Tensor(np.arange(N) * C, device=log_probs.device)]
    losses = -picked * valid.to(dtype=log_probs.dtype)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / valid.sum().to(dtype=log_probs.dtype)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    d = input - target
    sq = d * d
    return {"mean": sq.mean, "sum": sq.sum}[reduction]() if reduction != "none" else sq


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor] = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: Optional[float] = None) -> Tensor:
    """softmax(q k^T * scale + mask) v over (..., T, D) x (..., S, D) -> (..., T, D).

    attn_mask: bool (True = attend, as torch) or float (added to the scores), broadcastable to
    (..., T, S). is_causal masks keys after each query, aligned to the *bottom-right* corner
    when T != S (query i sees keys j <= i + S - T), so decoding with a KV cache works; for
    T == S this is exactly torch's is_causal. dropout_p drops attention probabilities inside the
    fused op (as torch, the caller passes 0 in eval): the result equals softmax -> F.dropout ->
    @ v with the same minigrad.manual_seed, the mask being the one F.dropout would draw for the
    (..., T, S) probabilities, without materialising them on the GPU; dropout_p = 1 gives zeros.
    """
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"attention needs q, k, v with the same number of dims (>= 2), got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} do not fit "
                         "(q/k head dims and k/v lengths must match)")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    T, S = q.shape[-2], k.shape[-2]
    dropout_p = float(dropout_p)
    seed = attention_dropout_seed(dropout_p)
    bias = None
    if attn_mask is not None:
        if attn_mask.dtype == "bool":
            bias = Tensor._wrap(attn_mask.backend.where(attn_mask.data, 0.0, float("-inf")),
                                attn_mask.backend)._as(q.dtype)
        else:
            bias = attn_mask.detach()._as(q.dtype)
    # the fused op works on 4-d (B, H, T, D); fold any other leading dims into that form (the
    # dropout mask's flat (..., T, S) indices are unchanged by it)
    lead = q.shape[:-2]
    B = math.prod(lead)
    q4 = q.reshape((B, 1, T, q.shape[-1])) if q.ndim != 4 else q
    k4 = k.reshape((B, 1, S, k.shape[-1])) if k.ndim != 4 else k
    v4 = v.reshape((B, 1, S, v.shape[-1])) if v.ndim != 4 else v
    if bias is not None:
        try:
            full = broadcast_shapes(bias.shape, lead + (T, S))
        except ValueError:
            full = None
        if full != lead + (T, S):
            raise ValueError(f"attn_mask shape {attn_mask.shape} does not broadcast to "
                             f"{lead + (T, S)}")
        bias = bias.expand(lead + (T, S))
        if q.ndim != 4:
            bias = bias.contiguous().reshape((B, 1, T, S))
        o = ops.Attention.apply(q4, k4, v4, bias.detach(), causal=is_causal, scale=scale,
                                  dropout_p=dropout_p, seed=seed)
    else:
        o = ops.Attention.apply(q4, k4, v4, causal=is_causal, scale=scale, dropout_p=dropout_p,
                                  seed=seed)
    return o.reshape(q.shape[:-1] + (v.shape[-1],)) if q.ndim != 4 else o


def check_qkv(qkv: Tensor, n_head: int) -> int:
    """qkv must be a floating (B, T, 3C) tensor with C divisible by n_head; returns the head size."""
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"qkv_self_attention: qkv must be (B, T, 3C) with C divisible by n_head="
                         f"{n_head}; got shape {qkv.shape}")
    _floating(qkv, "qkv_self_attention")
    return qkv.shape[-1] // (3 * n_head)


def qkv_self_attention(qkv: Tensor, n_head: int, is_causal: bool = True,
                       scale: Optional[float] = None, dropout_p: float = 0.0) -> Tensor:
    """Multi-head self-attention from a fused projection, as nanoGPT's CausalSelfAttention: qkv
    (B, T, 3C) holds q, k, v side by side on the last dim, each split into n_head heads of size
    hs = C / n_head -> y (B, T, C) with the heads merged back. dropout_p applies whenever it is > 0
    (pass 0 in eval, as with torch's sdpa)."""
    hs = check_qkv(qkv, n_head)
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = qkv.split(C, dim=2)                                       # (B, T, C) each
    q = q.reshape(B, T, n_head, hs).transpose(1, 2)                     # (B, nh, T, hs)
    k = k.reshape(B, T, n_head, hs).transpose(1, 2)                     # (B, nh, T, hs)
    v = v.reshape(B, T, n_head, hs).transpose(1, 2)                     # (B, nh, T, hs)
    y = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal, scale=scale)
    return y.transpose(1, 2).contiguous().reshape(B, T, C)              # (B, T, C)
