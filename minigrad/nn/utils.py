"""Gradient utilities: clip_grad_norm_ (torch.nn.utils's name and semantics).

Clipping by the global norm: treat every gradient as one long vector g; if its L2 norm is above
max_norm, scale every gradient by max_norm / norm, so the step keeps its direction but not its
size (one bad batch cannot throw the weights far). As torch, the scale is
min(1, max_norm / (norm + 1e-6)) and is always applied (by 1.0 when the norm is below max_norm):
no `if` on a device value, so nothing waits for the GPU.

The performance layer has a multi-tensor version (fast/optim.py: a few launches for all
gradients) tested equal to this one.
"""
from __future__ import annotations

import math
from typing import Iterable

from ..autograd import no_grad
from ..tensor import Tensor


@no_grad()
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
    grads = [p.grad for p in params if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    # torch takes these silently, but a negative max_norm flips every gradient (ascent) and NaN
    # turns every weight into NaN; inf (never clip) and 0 (zero the gradients) mean something
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0 (inf: no clipping), got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"norm_type must be positive (or inf), got {norm_type}")
    acc = "float64" if any(g.dtype == "float64" for g in grads) else "float32"
    for g in grads[1:]:
        if g.device != grads[0].device:
            raise RuntimeError(f"clip_grad_norm_: gradients on different devices "
                               f"({grads[0].device!r} and {g.device!r})")
    # the norm of all gradients together, accumulated in float32 (float64) whatever their dtype
    total = None
    for g in grads:
        if g.numel() == 0:
            continue
        a = g.to(dtype=acc)
        if norm_type == 2.0:
            part = (a * a).sum()
        elif math.isinf(norm_type):
            part = a.abs().max()
        else:
            part = (a.abs() ** norm_type).sum()
        total = part if total is None else (total.maximum(part) if math.isinf(norm_type) else total + part)
    if total is None:                                                  # no gradient, or all empty
        total = Tensor(0.0, dtype=acc, device=grads[0].device if grads else None)
    if not math.isinf(norm_type):
        total = total.sqrt() if norm_type == 2.0 else total ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite, "
                           "so it cannot be clipped (error_if_nonfinite=True)")
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)                  # 0-d, stays on the device
    for p in params:
        if p.grad is not None:
            p.grad = p.grad * coef.to(dtype=p.grad.dtype)
    return total


__all__ = ["clip_grad_norm_"]
