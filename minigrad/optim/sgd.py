"""SGD with momentum, dampening, Nesterov and L2 weight decay — torch.optim.SGD's update:

    g = grad (+ weight_decay * p)                        # coupled (L2) decay, as torch
    buf = g                        on the first step      (momentum != 0)
    buf = momentum * buf + (1 - dampening) * g   after
    g = g + momentum * buf  if nesterov  else  buf
    p -= lr * g

Written on backend arrays (no graph); the parameter is updated in place with backend.copy_.
"""
from __future__ import annotations

from typing import Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, _check_hyper


class SGD(Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 maximize: bool = False):
        _check_hyper("lr", lr)
        _check_hyper("momentum", momentum)
        _check_hyper("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _state_dtype(self, p: Tensor, key: str):
        return p.dtype                          # the momentum buffer has the gradient's dtype

    def step(self, closure=None):
        """One update of every parameter that has a .grad. Returns closure() if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p in self._params_with_grad(group):
                b = p.backend
                g = p.grad.data
                if group["maximize"]:
                    g = b.unary("neg", g)
                if wd != 0:
                    g = b.binary("add", g, b.binary("mul", p.data, wd))
                if mom != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = b.astype(g, b.dtype(g))                       # a copy of g
                    else:
                        buf = b.binary("add", b.binary("mul", buf.data, mom),
                                       g if damp == 0 else b.binary("mul", g, 1 - damp))
                    state["momentum_buffer"] = Tensor._wrap(buf, b)
                    g = b.binary("add", g, b.binary("mul", buf, mom)) if nesterov else buf
                b.copy_(p.data, b.binary("sub", p.data, b.binary("mul", g, lr)))
        return loss


__all__ = ["SGD"]
