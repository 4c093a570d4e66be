"""Gradient utilities: clip_grad_norm_ (torch.nn.utils's name and semantics).

Everything stays on the device: the total norm is a 0-d array, the clip coefficient
min(1, max_norm / (norm + 1e-6)) is computed there too and multiplied into every gradient,
so clipping costs no host synchronisation (as torch, it always multiplies, by 1.0 when the
norm is below max_norm). The L2 case is one backend call over all gradients
(`Backend.clip_by_total_norm`: a few multi-tensor launches on the GPU).
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..tensor import Tensor


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients so that their joint norm is at most max_norm; return the norm before
    clipping as a 0-d Tensor (float32, or float64 when any gradient is float64).

    norm_type: 2.0 (default), any p > 0, or float('inf') (largest absolute value). bfloat16 and
    float16 gradients are accumulated in float32. Each `p.grad` is replaced by its scaled copy
    (autograd may hand the same gradient array to two tensors, so scaling one in place could
    scale the other twice).
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p for p in params if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    # torch takes these silently, but a negative max_norm flips every gradient (ascent) and NaN
    # turns every weight into NaN; inf (never clip) and 0 (zero the gradients) mean something
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0 (inf: no clipping), got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"norm_type must be positive (or inf), got {norm_type}")
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))
    b = grads[0].grad.backend
    for p in grads[1:]:
        if p.grad.device != grads[0].grad.device:
            raise RuntimeError(f"clip_grad_norm_: gradients on different devices "
                               f"({grads[0].grad.device!r} and {p.grad.device!r})")
    if norm_type == 2.0 and not error_if_nonfinite:
        # the usual case: the backend's joint norm and scaled copies (a few launches in all)
        live = [p for p in grads if p.grad.numel()]
        total, scaled = b.clip_by_total_norm([p.grad.data for p in live], max_norm) if live else \
            (b.full((), 0.0, "float64" if any(p.grad.dtype == "float64" for p in grads) else "float32"), [])
        for p, g in zip(live, scaled):
            p.grad = Tensor._wrap(g, b)
        return Tensor._wrap(total, b)
    acc = "float64" if any(p.grad.dtype == "float64" for p in grads) else "float32"
    inf = math.isinf(norm_type)
    total = b.full((), 0.0, acc)
    for p in grads:
        g = p.grad
        if g.numel() == 0:
            continue
        if norm_type == 2.0:               # the usual case: one fused read of each gradient
            part = b.sum_squares(g.data)
            total = b.binary("add", total, part if b.dtype(part) == acc else b.astype(part, acc))
            continue
        a = g.data if g.dtype == acc else b.astype(g.data, acc)
        axes = tuple(range(g.ndim))
        if inf:
            total = b.binary("maximum", total, b.reduce_max(b.unary("abs", a), axes, False))
        else:
            part = b.reduce_sum(b.binary("pow", b.unary("abs", a), norm_type), axes, False)
            total = b.binary("add", total, part)
    if not inf:
        total = b.unary("sqrt", total) if norm_type == 2.0 else b.binary("pow", total, 1.0 / norm_type)
    if error_if_nonfinite and not np.isfinite(b.to_numpy(total)):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite, "
                           "so it cannot be clipped (error_if_nonfinite=True)")
    coef = b.binary("div", max_norm, b.binary("add", total, 1e-6))
    coef = b.binary("minimum", coef, 1.0)
    coef_as = {acc: coef}                      # one cast per gradient dtype, not per gradient
    for p in grads:
        g = p.grad
        if g.dtype not in coef_as:
            coef_as[g.dtype] = b.astype(coef, g.dtype)
        c = b.expand(b.reshape(coef_as[g.dtype], (1,) * g.ndim), g.shape)
        p.grad = Tensor._wrap(b.binary("mul", g.data, c), b)
    return Tensor._wrap(total, b)


__all__ = ["clip_grad_norm_"]
