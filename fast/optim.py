"""Multi-tensor AdamW and clipping: the optimizer step in a handful of launches.

The readable AdamW (minigrad/optim/adamw.py) updates one parameter at a time with Tensor
arithmetic: ~10 launches per parameter on the GPU, ~1500 for GPT-2 124M. `MultiTensorAdamW` does
the same update for every parameter of a group in one launch (kernels/adamw.py walks a table of
pointers), and `clip_grad_norm_` clips every gradient in three (a multi-tensor sum of squares, the
norm and coefficient, a multi-tensor scaled copy, or an in-place scaling of the CUDA-graph step's
fixed gradient buffers).

The step's scalars (lr, bias corrections) live in a small device array, written by
`prepare_step` before `apply_step` launches the updates: apply_step's launches are then identical
every step, which is what a CUDA graph needs to replay them (fast/cuda_graph.py calls
prepare_step itself before each replay and captures only apply_step).

State is the readable AdamW's (step, exp_avg, exp_avg_sq, master), so checkpoints move freely
between the two; tests/test_fast_parity.py checks both give the same weights.
"""
from __future__ import annotations

from typing import Iterable

from minigrad import Tensor
from minigrad.nn.utils import clip_grad_norm_ as _readable_clip_grad_norm_
from minigrad.optim import AdamW

from .ops import HYPER_SIZE, fast_ops


class MultiTensorAdamW(AdamW):
    """AdamW whose step is prepare_step() (host bookkeeping, the step's scalars written to the
    device) then apply_step() (one multi-tensor launch per parameter group, dtype and step count)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hyper: dict = {}      # batch key -> (backend, (HYPER_SIZE,) device array of the step's scalars)
        self.graphed = False        # True while a CUDA graph replays apply_step (it calls prepare_step)
        self.last_batches: list = []    # what the last apply_step updated (see prepare_step)

    @classmethod
    def from_optimizer(cls, opt: AdamW) -> "MultiTensorAdamW":
        """The same optimizer (its param groups, hyperparameters and state, shared, not copied),
        stepping through the multi-tensor path."""
        new = cls.__new__(cls)
        new.__dict__.update(opt.__dict__)
        new._hyper, new.graphed, new.last_batches = {}, False, []
        return new

    def step(self, closure=None):
        """One update of every parameter that has a .grad. Returns closure() if given."""
        loss = closure() if closure is not None else None
        if not self.graphed:
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

    def prepare_step(self, batches: list | None = None) -> None:
        """Count the step of every parameter with a .grad (creating its state on the first
        step) and write each batch's scalars (lr, bias corrections) to its device array: one
        small launch per batch, the only part of the step whose arguments change. A CUDA graph
        prepares its replay before the replay's backward has made any gradient: it passes the
        batches of the last step applied (`last_batches`)."""
        hyper = self._hyper
        for key, group, params in (self._batches() if batches is None else batches):
            for p in params:
                self._state_of(p)["step"] += 1
            b = params[0].backend
            if key not in hyper or hyper[key][0] is not b:
                hyper[key] = (b, b.empty((HYPER_SIZE,), "float64"))
            beta1, beta2 = group["betas"]
            fast_ops(b).adamw_hyper_(hyper[key][1], lr=float(group["lr"]), beta1=beta1, beta2=beta2,
                                     eps=float(group["eps"]), weight_decay=float(group["weight_decay"]),
                                     step=int(self.state[params[0]]["step"]))

    def apply_step(self) -> None:
        """The updates of prepare_step's parameters: one multi-tensor launch per batch and dtype,
        reading the scalars prepare_step wrote (the same launches every step)."""
        hyper = self._hyper
        self.last_batches = self._batches()
        for key, group, params in self.last_batches:
            if key not in hyper:
                raise RuntimeError("MultiTensorAdamW.apply_step() before prepare_step(): the step's "
                                   "scalars are not on the device yet")
            b = params[0].backend
            states = [self.state[p] for p in params]
            masters = [s.get("master") for s in states]
            fast_ops(b).adamw_step_multi_([p.data for p in params], [p.grad.data for p in params],
                                          [s["exp_avg"].data for s in states],
                                          [s["exp_avg_sq"].data for s in states], hyper[key][1],
                                          [None if m is None else m.data for m in masters])


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """minigrad.nn.utils.clip_grad_norm_, the L2 case in a few launches over all gradients
    (FastOps.clip_by_total_norm); other norms and error_if_nonfinite take the readable one."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    live = [p for p in params if p.grad is not None and p.grad.numel()]
    if float(norm_type) != 2.0 or error_if_nonfinite or not live or not float(max_norm) >= 0:
        return _readable_clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)
    device = live[0].grad.device
    if any(p.grad.device != device for p in live):
        return _readable_clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)  # says why
    b = live[0].grad.backend
    if all(getattr(p.grad, "_static_grad", False) for p in live):
        # the CUDA-graph step's fixed gradient buffers (fast/cuda_graph.py StaticGrads): scaled
        # in place, so the buffers (and AdamW's pointer tables over them) never move
        return Tensor._wrap(fast_ops(b).clip_by_total_norm_([p.grad.data for p in live], float(max_norm)), b)
    total, scaled = fast_ops(b).clip_by_total_norm([p.grad.data for p in live], float(max_norm))
    for p, g in zip(live, scaled):
        p.grad = Tensor._wrap(g, b)
    return Tensor._wrap(total, b)
