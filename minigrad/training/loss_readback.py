"""Training losses read back from the device a batch of steps at a time, not once per step.

Why: `loss.item()` on a GPU makes the host wait until the GPU has finished the step. While it
waits, the host cannot queue the next step's kernel launches, so host time and GPU time add up
instead of overlapping (docs/perf-notes.md, issue 11: no device syncs in a training step).
train.py therefore keeps each step's micro-batch losses as device scalars and reads the pending
ones together: every `every` steps (its --log_interval), and before anything that must know them
(an eval and its checkpoint, a Ctrl-C save, the end of the run). The NaN-loss stop still sees
every step, only up to `every` steps later, and always before a checkpoint is written.

On the CPU (NumPy backend) a read costs nothing, and the CUDA-graph step returns the same output
Tensor every replay (the next replay overwrites it), so both read every step (`immediate`).

What it deliberately does not do: average across ranks or check for NaN; train.py does both with
the values it returns.
"""
from __future__ import annotations

import math

from minigrad import Tensor


class DeferredLosses:
    """Pending per-step losses: add(step, micro_losses) every step, read() when due(iter_num)."""

    def __init__(self, every: int, immediate: bool):
        if int(every) < 1:
            raise ValueError(f"DeferredLosses: every must be >= 1, got {every}")
        self.every, self.immediate = int(every), bool(immediate)
        self._pending: list[tuple[int, list[Tensor]]] = []

    def add(self, step: int, micro_losses: list[Tensor]) -> None:
        """Keep `step`'s micro-batch losses (scalar Tensors, detached) without reading them."""
        if not micro_losses:
            raise ValueError(f"DeferredLosses.add: step {step} has no losses")
        self._pending.append((step, [loss.detach() for loss in micro_losses]))

    def due(self, iter_num: int) -> bool:
        """True when the pending steps should be read now that `iter_num` steps are done: at
        every multiple of `every` (where train.py prints a progress line), or always."""
        return bool(self._pending) and (self.immediate or iter_num % self.every == 0)

    def read(self) -> list[tuple[int, float]]:
        """(step, mean of its micro-batch losses) for every pending step, oldest first; the
        first .item() waits for the device, the others find their values already there."""
        out = [(step, sum(loss.item() for loss in micro) / len(micro)) for step, micro in self._pending]
        self._pending.clear()
        return out

    def read_into(self, losses: dict, average=lambda value: value,
                  check=lambda step, value: None) -> float:
        """read(), each step's loss passed through `average` (over data-parallel ranks) and `check`
        (stop on NaN) and stored in losses[step]; returns the newest (NaN when none was pending)."""
        newest = math.nan
        for step, value in self.read():
            losses[step] = newest = average(value)
            check(step, newest)
        return newest
