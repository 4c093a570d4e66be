"""AdamW (decoupled weight decay, Loshchilov & Hutter) — torch.optim.AdamW's update:

    p -= lr * weight_decay * p
    m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
    p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

Each parameter is one call to `backend.adamw_step_`, which updates the parameter and the
moment arrays in place (one fused kernel on the GPU). Parameters stored in bfloat16/float16
get float32 moments and a float32 *master* copy kept in the state: the update is applied to
the master and the parameter receives its rounded copy, so small updates are not lost to
bf16 rounding. The master is part of state_dict(), so a resumed run continues exactly.

Not here: amsgrad, maximize, capturable/foreach/fused flags.
"""
from __future__ import annotations

from typing import Iterable

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

    def step(self, closure=None):
        """One update of every parameter that has a .grad. Returns closure() if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in self._params_with_grad(group):
                b = p.backend
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = self._init_state(p)
                state["step"] += 1
                master = state.get("master")
                if master is None and p.dtype in _LOW_PRECISION:
                    raise RuntimeError(f"parameter of shape {p.shape} is {p.dtype} but its AdamW "
                                       "state has no float32 master copy (was the model cast after "
                                       "the optimizer took its first step?)")
                b.adamw_step_(p.data, b.contiguous(p.grad.data), state["exp_avg"].data,
                              state["exp_avg_sq"].data, lr=float(group["lr"]), beta1=beta1,
                              beta2=beta2, eps=float(group["eps"]),
                              weight_decay=float(group["weight_decay"]), step=int(state["step"]),
                              master=None if master is None else master.data)
        return loss


__all__ = ["AdamW"]
