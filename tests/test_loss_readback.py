"""DeferredLosses (minigrad/training/loss_readback.py): train.py's step losses read back in batches."""
import math

import pytest

import minigrad
from minigrad.training.loss_readback import DeferredLosses

class CountingScalar:
    """A stand-in for a device scalar Tensor that counts its read-backs."""
    reads = 0

    def __init__(self, value):
        self.value = value

    def detach(self):
        return self

    def item(self):
        CountingScalar.reads += 1
        return self.value

def test_reads_every_nth_step_the_mean_of_each_steps_micro_batches():
    CountingScalar.reads = 0
    pending = DeferredLosses(every=3, immediate=False)
    seen = []
    for step in range(7):
        pending.add(step, [CountingScalar(step), CountingScalar(step + 1.0)])   # mean: step + 0.5
        if pending.due(step + 1):
            seen.append(pending.read())
    # nothing read back before step 3's multiple; then exactly the three pending steps
    assert seen == [[(0, 0.5), (1, 1.5), (2, 2.5)], [(3, 3.5), (4, 4.5), (5, 5.5)]]
    assert CountingScalar.reads == 12
    assert pending.due(7) is False and pending.read() == [(6, 6.5)]       # what the end reads
    assert pending.read() == [] and not pending.due(9)

def test_immediate_reads_every_step():
    pending = DeferredLosses(every=10, immediate=True)
    pending.add(0, [CountingScalar(2.0)])
    assert pending.due(1) and pending.read() == [(0, 2.0)]

def test_real_tensors_and_nan_pass_through():
    pending = DeferredLosses(every=2, immediate=False)
    pending.add(0, [minigrad.tensor(1.0), minigrad.tensor(3.0)])
    pending.add(1, [minigrad.tensor(float("nan"))])
    (s0, v0), (s1, v1) = pending.read()
    assert (s0, v0) == (0, 2.0) and s1 == 1 and math.isnan(v1)

@pytest.mark.parametrize("every", [0, -1])
def test_bad_interval(every):
    with pytest.raises(ValueError, match="every must be >= 1"):
        DeferredLosses(every=every, immediate=False)

def test_a_step_without_losses_is_refused():
    with pytest.raises(ValueError, match="step 4 has no losses"):
        DeferredLosses(every=1, immediate=True).add(4, [])
