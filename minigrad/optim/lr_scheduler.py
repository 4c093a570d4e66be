"""Learning-rate schedules: nanoGPT's linear warmup + cosine decay, as a pure function and as a
scheduler object that writes each param group's "lr".

    lr(step) = max_lr * (step + 1) / (warmup_steps + 1)                 step < warmup_steps
             = min_lr + 0.5 * (1 + cos(pi * r)) * (max_lr - min_lr)     warmup <= step <= decay
               with r = (step - warmup_steps) / (decay_steps - warmup_steps)
             = min_lr                                                   step > decay_steps

`decay_steps` counts from step 0 (it includes the warmup), like nanoGPT's lr_decay_iters.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from .optimizer import Optimizer


def cosine_with_warmup(step: int, max_lr: float, min_lr: float, warmup_steps: int,
                       decay_steps: int) -> float:
    """The learning rate at `step` (0-based) of a warmup + cosine schedule (nanoGPT's get_lr)."""
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step > decay_steps or decay_steps <= warmup_steps:
        return min_lr
    ratio = (step - warmup_steps) / (decay_steps - warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))         # 1 -> 0
    return min_lr + coeff * (max_lr - min_lr)


class LambdaLR:
    """lr of group i = base_lr_i * lr_lambda(step) (torch's LambdaLR), step = number of .step()
    calls so far.

    Construction sets step 0's lr; call .step() after each optimizer.step(), as in torch.
    The base lr of each group is its "initial_lr" (set from its "lr" on first use).
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Optional[Callable[[int], float]],
                 last_step: int = -1):
        self.optimizer = optimizer
        self.lr_lambda = lr_lambda
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_step = last_step
        self.step()

    def get_lr(self) -> list[float]:
        return [base * float(self.lr_lambda(self.last_step)) for base in self.base_lrs]

    def step(self) -> None:
        self.last_step += 1
        self._last_lr = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambda")}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items()
                              if k not in ("optimizer", "lr_lambda")})
        self.base_lrs = list(self.base_lrs)
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g["lr"] = lr
        self._last_lr = self.get_lr()


class WarmupCosine(LambdaLR):
    """cosine_with_warmup for every param group, with max_lr = the group's initial lr and
    min_lr = min_lr (absolute, all groups) or min_lr_ratio * initial lr (default 0.1, nanoGPT's
    choice)."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, decay_steps: int,
                 min_lr_ratio: Optional[float] = None, min_lr: Optional[float] = None,
                 last_step: int = -1):
        if min_lr is not None and min_lr_ratio is not None:
            raise ValueError("give min_lr or min_lr_ratio, not both")
        if warmup_steps < 0 or decay_steps < 0:
            raise ValueError(f"warmup_steps and decay_steps must be >= 0, got {warmup_steps}, "
                             f"{decay_steps}")
        self.warmup_steps, self.decay_steps = int(warmup_steps), int(decay_steps)
        self.min_lr = None if min_lr is None else float(min_lr)
        self.min_lr_ratio = 0.1 if (min_lr is None and min_lr_ratio is None) else min_lr_ratio
        super().__init__(optimizer, None, last_step)

    def get_lr(self) -> list[float]:
        out = []
        for base in self.base_lrs:
            lo = self.min_lr if self.min_lr is not None else self.min_lr_ratio * base
            out.append(cosine_with_warmup(self.last_step, base, lo, self.warmup_steps,
                                          self.decay_steps))
        return out

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs),
                "_last_lr": list(self._last_lr), "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps, "min_lr": self.min_lr,
                "min_lr_ratio": self.min_lr_ratio}


__all__ = ["cosine_with_warmup", "LambdaLR", "WarmupCosine"]
