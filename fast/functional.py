"""The performance layer's functional forms: the fused Functions of fast/functions.py behind the
signatures of the core calls they replace, and the host-side id checks that save device reads.

    linear(x, w, b)                       == F.linear              (bias in the matmul epilogue)
    mlp(x, w1, w2, b1, b2, activation)    == F.mlp                 (activation in the epilogues)
    qkv_self_attention(qkv, n_head, ...)  == F.qkv_self_attention  (heads read in place)
    attention(q, k, v, ...)               == F.scaled_dot_product_attention(q, k, v, is_causal=...)
    dropout(x, p, training)               == F.dropout
    cross_entropy_in_place(logits, t, C)  == F.cross_entropy(logits[:, :C], t), logits overwritten
    linear_cross_entropy(x, w, t, C)      == F.cross_entropy(F.linear(x, w)[:, :C], t)   (the lm_head and
                                             its loss: the backward scales x, not the logits)

Host ids: checking token ids on the GPU costs a read-back, which makes the host wait for the GPU
queue to drain. `host_ids` checks a batch on the host before its upload and remembers the range
on the Tensor, so the accelerated model's loss needs no read-back (`with_known_range`,
`ids_range`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from minigrad import Tensor, ops
from minigrad.dtypes import FLOATS
from minigrad.nn import functional as F
from minigrad.tensor_shape import value_range

from . import functions


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """F.linear as one Function: y = x W^T + b, the bias in the matmul's epilogue, dW in W's layout."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features but weight is {weight.shape} "
                         f"(out_features, in_features)")
    if x.ndim < 2 or x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        return F.linear(x, weight, bias)                   # mixed dtypes or a vector: the core's
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x                  # (N, in), a view if it can be
    y = functions.Linear.apply(*((x2, weight) if bias is None else (x2, weight, bias)))   # (N, out)
    return y.reshape(lead + (weight.shape[0],)) if x.ndim != 2 else y


def mlp(x: Tensor, fc_weight: Tensor, proj_weight: Tensor, fc_bias: Optional[Tensor] = None,
        proj_bias: Optional[Tensor] = None, activation: str = "gelu") -> Tensor:
    """F.mlp as one Function whose activation runs inside the matmuls' epilogues (forward and
    backward): linear(act(linear(x, fc_weight, fc_bias)), proj_weight, proj_bias)."""
    F.check_mlp_args(x, fc_weight, proj_weight, fc_bias, proj_bias, activation)
    tensors = [fc_weight, proj_weight] + ([fc_bias, proj_bias] if fc_bias is not None else [])
    if x.ndim < 2 or any(t.dtype != x.dtype for t in tensors) or x.dtype not in FLOATS:
        return F.mlp(x, fc_weight, proj_weight, fc_bias, proj_bias, activation)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x                  # (N, C), a view if it can be
    y = functions.MLP.apply(x2, *tensors, activation=activation)           # (N, C_out)
    return y.reshape(lead + (proj_weight.shape[0],)) if x.ndim != 2 else y


def qkv_self_attention(qkv: Tensor, n_head: int, is_causal: bool = True,
                       scale: Optional[float] = None, dropout_p: float = 0.0) -> Tensor:
    """F.qkv_self_attention as one Function: qkv (B, T, 3C) -> (B, T, C), the heads read from qkv in
    place and written merged, one (B, T, 3C) gradient; dropout_p applies whenever it is > 0."""
    hs = F.check_qkv(qkv, n_head)
    scale = 1.0 / hs ** 0.5 if scale is None else float(scale)
    seed = F.attention_dropout_seed(float(dropout_p))
    return functions.QKVAttention.apply(qkv, n_head=n_head, causal=is_causal, scale=scale,
                                        dropout_p=float(dropout_p), seed=seed)


def attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = True, dropout_p: float = 0.0,
              scale: Optional[float] = None) -> Tensor:
    """F.scaled_dot_product_attention for 4-d heads (B, H, T, D) without a mask, its dropout mask
    drawn with the performance layer's seed offset (what a CUDA-graph replay varies)."""
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal,
                                              scale=scale)
    scale = 1.0 / q.shape[-1] ** 0.5 if scale is None else float(scale)
    seed = F.attention_dropout_seed(float(dropout_p))
    return functions.Attention.apply(q, k, v, causal=is_causal, scale=scale,
                                     dropout_p=float(dropout_p), seed=seed)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """F.dropout, its mask drawn with the performance layer's seed offset (the same seed draws)."""
    if not 0.0 <= p <= 1.0 or not training or p in (0.0, 1.0) or x.dtype not in FLOATS:
        return F.dropout(x, p, training)
    return functions.Dropout.apply(x, p=p, seed=F.dropout_seed())


def embedding_unchecked(idx: Tensor, weight: Tensor) -> Tensor:
    """F.embedding without its range check (a device read-back): for ids checked on the host."""
    if not isinstance(idx, Tensor) or idx.dtype != "int64":
        return F.embedding(idx, weight)
    return ops.Embedding.apply(weight, idx)


def cross_entropy_in_place(logits: Tensor, target: Tensor, n_classes: Optional[int] = None,
                           ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of logits (N, Vp) over their first n_classes columns (default all; the
    rest is vocabulary padding) with int64 targets (N,), as F.cross_entropy(logits[:, :n_classes],
    target), for a training step: the gradient is computed in the same pass and OVERWRITES the
    logits, which must not be used afterwards (the lm_head output of a loss-only forward)."""
    N, Vp = logits.shape
    if logits.dtype not in FLOATS:
        raise TypeError(f"cross_entropy_in_place needs a floating point tensor, got {logits.dtype}")
    return _mean_loss(lambda t, C: functions.CrossEntropyInPlace.apply(logits, t, n_classes=C,
                                                                        ignore_index=ignore_index),
                      target, N, Vp, n_classes, ignore_index, logits.device)


def linear_cross_entropy(x: Tensor, weight: Tensor, target: Tensor, n_classes: Optional[int] = None,
                         ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of logits = x W^T (x (N, C), W (Vp, C)) over their first n_classes columns,
    as F.cross_entropy(F.linear(x, W)[:, :n_classes], target): the lm_head and the loss of a
    training step in one Function (functions.LinearCrossEntropy), whose backward scales x by the
    upstream gradient instead of the (N, Vp) logits gradient. Mixed dtypes take the two-call path."""
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_cross_entropy: x must be (N, C) and weight (Vp, C), got {x.shape} "
                         f"and {weight.shape}")
    if x.dtype != weight.dtype or x.dtype not in FLOATS:
        return cross_entropy_in_place(linear(x, weight), target, n_classes, ignore_index)
    return _mean_loss(lambda t, C: functions.LinearCrossEntropy.apply(x, weight, t, n_classes=C,
                                                                       ignore_index=ignore_index),
                      target, x.shape[0], weight.shape[0], n_classes, ignore_index, x.device)


def _mean_loss(row_losses, target, N: int, Vp: int, n_classes: Optional[int], ignore_index: int,
               device: str) -> Tensor:
    """The mean over the counted rows of row_losses(target, C) (N,), after the checks both fused
    losses share: C in [1, Vp], int64 targets (N,), ids in range (on the host when their range is
    known, else on the device, which also counts the ignored rows)."""
    C = Vp if n_classes is None else int(n_classes)
    if not 0 < C <= Vp:
        raise ValueError(f"n_classes must be in [1, {Vp}], got {C}")
    if not isinstance(target, Tensor):
        target = host_ids(np.asarray(target, dtype=np.int64), device)
    if target.dtype != "int64" or target.shape != (N,):
        raise ValueError(f"target must be int64 of shape ({N},), got {target.dtype} {target.shape}")
    known = getattr(target, "_known_range", None)
    valid = None
    if not _known_class_ids(known, C) or known[0] <= ignore_index <= known[1]:
        # some rows may be ignored (or out of range): check and count them on the device
        valid = target != ignore_index
        F.check_targets(target, valid, C, ignore_index)
    losses = row_losses(target, C)                                         # (N,)
    if valid is None:                        # every target counts: the mean divides by N, a host number
        return losses.sum() * (1.0 / N)
    return losses.sum() / valid.sum().to(dtype=losses.dtype)


def _known_class_ids(known: Optional[tuple[int, int]], C: int) -> bool:
    """True when a range (lo, hi) remembered from the host proves every id is a class in [0, C)."""
    return known is not None and 0 <= known[0] and known[1] < C


def host_ids(values, device: str) -> Tensor:
    """An int64 Tensor on `device` made from host ids (a NumPy array or nested list), with their
    (min, max) taken on the host before the upload and remembered on the Tensor, so a range check
    needs no read-back from the device. Only for Tensors the caller made here and does not write
    into afterwards: the remembered range is not updated by in-place writes."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    t = Tensor(arr.astype(np.int64, copy=False), device=device)
    return with_known_range(t, int(arr.min()), int(arr.max())) if arr.size else t


def with_known_range(t: Tensor, lo: int, hi: int) -> Tensor:
    """Remember that every value of the int64 tensor t lies in [lo, hi] (see host_ids; a static
    buffer whose every batch is validated on the host may carry the valid range instead)."""
    t._known_range = (int(lo), int(hi))
    return t


def ids_range(t: Tensor) -> tuple[int, int]:
    """(min, max) of a non-empty int tensor: remembered from the host when known, else read from
    the device (one sync)."""
    known = getattr(t, "_known_range", None)
    return known if known is not None else value_range(t)
