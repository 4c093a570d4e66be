"""Watch what train.main really does to its model, without changing it: every training
micro-batch loss, every training batch drawn, and at each optimizer step the learning rate
of each param group, the gradients and their global L2 norm.

It swaps train.GPT for a subclass (and train.get_batch for a recording wrapper) and wraps the
optimizers' step methods with pytest's monkeypatch, so the loop under test is train.py's own
(with --fast=true too: the multi-tensor AdamW's step is the one that runs; the subclass of GPT is
not swapped for FastGPT, its modules are). Used by tests/test_train.py and test_guard_training.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import minigrad
import train
from minigrad.models.gpt import GPT
from minigrad.optim import AdamW
from minigrad.training.data import get_batch as real_get_batch

REAL_STEPS = {AdamW: AdamW.step}            # the optimizers' own steps (a spy wraps these)
try:
    from minigrad.fast.optim import MultiTensorAdamW
    REAL_STEPS[MultiTensorAdamW] = MultiTensorAdamW.step
except ModuleNotFoundError:                 # a checkout without the performance layer
    pass


@dataclass
class TrainRecord:
    micro_losses: list[float] = field(default_factory=list)    # every training forward, in order
    batches: list[np.ndarray] = field(default_factory=list)    # x (B, T) of every training batch
    lrs: list[list[float]] = field(default_factory=list)       # per step: each group's "lr"
    grads: list[dict[str, np.ndarray]] = field(default_factory=list)   # per step: name -> float64 grad
    grad_norms: list[float] = field(default_factory=list)      # per step: global L2 norm at step()
    model: "GPT | None" = None                                # the trained model, after the run


def spy_on_training(monkeypatch) -> TrainRecord:
    """Patch train.py so that the next train.main(...) fills the returned TrainRecord (a second
    call replaces the first spy: it wraps the real classes, not the previous spy)."""
    rec = TrainRecord()

    def get_batch(*args, **kwargs):
        x, y = real_get_batch(*args, **kwargs)
        rec.batches.append(np.array(x))
        return x, y

    class SpyGPT(GPT):
        def forward(self, idx, targets=None, *args, **kwargs):
            logits, loss = super().forward(idx, targets, *args, **kwargs)
            if loss is not None and minigrad.is_grad_enabled():      # evals run under no_grad
                rec.micro_losses.append(loss.item())
            return logits, loss

        def configure_optimizers(self, *args, **kwargs):
            rec.model = self
            return super().configure_optimizers(*args, **kwargs)

    def spy_step(real_step):
        def step(opt, *a, **kw):
            names = {id(p): n for n, p in rec.model.named_parameters()}
            grads = {names[id(p)]: p.grad.numpy().astype(np.float64)
                     for g in opt.param_groups for p in g["params"] if p.grad is not None}
            rec.grads.append(grads)
            rec.grad_norms.append(float(np.sqrt(sum((g ** 2).sum() for g in grads.values()))))
            rec.lrs.append([g["lr"] for g in opt.param_groups])
            return real_step(opt, *a, **kw)
        return step

    # on the classes, not the instance: with --fast=true the AdamW becomes a MultiTensorAdamW
    # (fast.accelerate), whose own step must still be the one that runs
    for cls, real_step in REAL_STEPS.items():
        monkeypatch.setattr(cls, "step", spy_step(real_step))
    monkeypatch.setattr(train, "GPT", SpyGPT)
    monkeypatch.setattr(train, "get_batch", get_batch)
    return rec


def synthetic_text(path: Path, chars: int = 30_000, seed: int = 0) -> Path:
    """A small text of random words (no shared data needed), written to `path`."""
    rng = np.random.default_rng(seed)
    words = ["the", "king", "queen", "house", "river", "stone", "night", "said", "and", "of"]
    text, n = [], 0
    while n < chars:
        w = words[rng.integers(len(words))] + (".\n" if rng.random() < 0.1 else " ")
        text.append(w)
        n += len(w)
    path.write_text("".join(text), encoding="utf-8")
    return path
