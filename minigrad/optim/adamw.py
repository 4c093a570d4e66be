"""AdamW (decoupled weight decay, Loshchilov & Hutter) — torch.optim.AdamW's update:

    p -= lr * weight_decay * p
    m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
    p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

All parameters of a group are one call to `backend.adamw_step_multi_`, which updates the
parameters and moment arrays in place (one multi-tensor kernel launch per group and dtype on the
GPU); the step's scalars (lr, bias corrections) are written to a small device array first, so
the update launches are the same every step and a CUDA graph can replay them. Parameters stored in bfloat16/float16
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
        self._hyper: dict = {}      # batch key -> (backend, (HYPER_SIZE,) device array of the step's scalars)

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
        """One update of every parameter that has a .grad. Returns closure() if given.

        = prepare_step() (host bookkeeping and the step's scalars written to the device) then
        apply_step() (the updates, reading those scalars). A CUDA-graph step captures only
        apply_step and calls prepare_step before each replay."""
        loss = closure() if closure is not None else None
        self.prepare_step()
        self.apply_step()
        return loss

    def _batches(self):
        """[(key, group, [params])]: the parameters that have a .grad, per group and per step
        count (normally one batch per group: every parameter steps together)."""
        out = []
        for gi, group in enumerate(self.param_groups):
            by_step: dict[tuple, list] = {}
            for p in self._params_with_grad(group):
                state = self.state.get(p)
                by_step.setdefault((state["step"] if state else 0, p.device), []).append(p)
            for slot, step in enumerate(sorted(by_step)):
                out.append(((gi, slot), group, by_step[step]))
        return out

    def prepare_step(self) -> None:
        """Count the step of every parameter with a .grad (creating its state on the first
        step) and write each batch's scalars (lr, bias corrections) to its device array: one
        small launch per parameter group, the only part of the step whose arguments change."""
        hyper = self._hyper
        for key, group, params in self._batches():
            for p in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = self._init_state(p)
                if state.get("master") is None and p.dtype in _LOW_PRECISION:
                    raise RuntimeError(f"parameter of shape {p.shape} is {p.dtype} but its AdamW "
                                       "state has no float32 master copy (was the model cast after "
                                       "the optimizer took its first step?)")
                state["step"] += 1
            b = params[0].backend
            if key not in hyper or hyper[key][0] is not b:
                hyper[key] = (b, b.empty((b.HYPER_SIZE,), "float64"))
            beta1, beta2 = group["betas"]
            b.adamw_hyper_(hyper[key][1], lr=float(group["lr"]), beta1=beta1, beta2=beta2,
                           eps=float(group["eps"]), weight_decay=float(group["weight_decay"]),
                           step=int(self.state[params[0]]["step"]))

    def apply_step(self) -> None:
        """The updates of prepare_step's parameters: one multi-tensor launch per parameter group
        and dtype, reading the scalars prepare_step wrote (the same launches every step)."""
        hyper = self._hyper
        for key, group, params in self._batches():
            if key not in hyper:
                raise RuntimeError("AdamW.apply_step() before prepare_step(): the step's scalars "
                                   "are not on the device yet")
            b = params[0].backend
            states = [self.state[p] for p in params]
            masters = [s.get("master") for s in states]
            b.adamw_step_multi_([p.data for p in params], [p.grad.data for p in params],
                                [s["exp_avg"].data for s in states],
                                [s["exp_avg_sq"].data for s in states], hyper[key][1],
                                [None if m is None else m.data for m in masters])


__all__ = ["AdamW"]
