"""AdamW (Adam with decoupled weight decay, Loshchilov & Hutter), torch.optim.AdamW's update:

    p = p - lr * weight_decay * p                       # decay the weight itself, not the gradient
    m = beta1 * m + (1 - beta1) * g                     # first moment: a running mean of g
    v = beta2 * v + (1 - beta2) * g^2                   # second moment: a running mean of g^2
    p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

m and v start at 0, so early on they are biased towards 0; dividing by (1 - beta^t) at step t
corrects that. Each parameter is updated on its own, with Tensor arithmetic (no graph is
recorded: this is not part of the model). Parameters stored in bfloat16/float16 get float32
moments and a float32 *master* copy kept in the state: the update is applied to the master and
the parameter receives its rounded copy, so updates smaller than bf16's resolution are not lost.
The master is part of state_dict(), so a resumed run continues exactly.

Not here: amsgrad, maximize, foreach/fused flags. The performance layer has a multi-tensor AdamW
(fast/optim.py: every parameter in one launch) tested equal to this one.
"""
from __future__ import annotations

from typing import Iterable

from ..autograd import no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, _check_hyper

_LOW_PRECISION = ("bfloat16", "float16")


class AdamW(Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        _check_hyper("lr", lr)
        _check_hyper("eps", eps)
        _check_hyper("weight_decay", weight_decay)
        if amsgrad:
            raise NotImplementedError("AdamW(amsgrad=True) is not supported in minigrad")
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas {betas}: expected two values in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _init_state(self, p: Tensor) -> dict:
        b = p.backend
        low = p.dtype in _LOW_PRECISION
        moment_dtype = "float32" if low else p.dtype
        state = {"step": 0,
                 "exp_avg": Tensor._wrap(b.zeros(p.shape, moment_dtype), b),
                 "exp_avg_sq": Tensor._wrap(b.zeros(p.shape, moment_dtype), b)}
        if low:
            state["master"] = Tensor._wrap(b.astype(p.data, "float32"), b)
        return state

    def _state_dtype(self, p: Tensor, key: str):
        return "float32" if p.dtype in _LOW_PRECISION else p.dtype

    def _state_of(self, p: Tensor) -> dict:
        """p's state, created on its first step (a low-precision p must have its master copy)."""
        state = self.state.get(p)
        if not state:
            state = self.state[p] = self._init_state(p)
        if state.get("master") is None and p.dtype in _LOW_PRECISION:
            raise RuntimeError(f"parameter of shape {p.shape} is {p.dtype} but its AdamW state has "
                               "no float32 master copy (was the model cast after the optimizer "
                               "took its first step?)")
        return state

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a .grad. Returns closure() if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:                               # not used this step: not updated
                    continue
                if p.grad.shape != p.shape or p.grad.device != p.device:
                    raise RuntimeError(f"AdamW: a gradient of shape {p.grad.shape} on {p.grad.device!r} "
                                       f"for a parameter of shape {p.shape} on {p.device!r}")
                state = self._state_of(p)
                state["step"] += 1
                t = state["step"]
                w = state.get("master", p)                       # the float32 copy, if any
                g = p.grad if p.grad.dtype == w.dtype else p.grad.to(dtype=w.dtype)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.copy_(beta1 * m + (1 - beta1) * g)
                v.copy_(beta2 * v + (1 - beta2) * g * g)
                bias_correction1 = 1 - beta1 ** t
                bias_correction2 = 1 - beta2 ** t
                denom = v.sqrt() / bias_correction2 ** 0.5 + eps
                w.copy_(w * (1 - lr * weight_decay) - (lr / bias_correction1) * m / denom)
                if w is not p:
                    p.copy_(w)                                   # rounded to the parameter's dtype
        return loss


__all__ = ["AdamW"]
