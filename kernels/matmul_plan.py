"""The matmul's host fast path (kernels/matmul_auto.py's plan cache): remember the launch a call
signature leads to, then repeat it.

Why: kernels/matmul.py's check -> allocate -> launch does a lot of host work before its kernel
runs: checks of shapes, dtypes and devices, collapsing batch dims into 4-d views, the epilogue's
meta-parameters, the tuned block sizes, and in matmul_auto the variant its timing picked. On the
stub GPU (benchmarks/bench_host_overhead.py) that is ~40 us per call on top of Triton's own ~15 us
launch, and a GPT-2 124M training step makes ~150 matmul calls: ~6 ms of host time per step, on a
GPU where the whole step's matmul work is ~13 ms. Yet a training step repeats the same few signatures
(shapes, strides, dtypes, epilogue) every time.

How: every input of that host work is in the key (`plan_key`): shapes, strides, dtypes, devices
of every operand, the epilogue, whether a's row sums are asked for (`rowsum=`: its own constexpr and
kernel argument), the forced variant, the 16-byte alignment of a and b (TMA
needs it), and the module switches tests flip (AUTOTUNE, ALLOW_TF32, USE_TMA, the interpreter).
After a call whose work ended in one direct kernel launch (`Launch`: the classic or persistent
kernel with known block sizes; not the autotuner's first run, not split-K's two launches), that
launch is kept as a `Plan` with its tensors replaced by the new call's. A later call with the
same key skips straight to the launch: every check it skips passed for an identical signature.
Only 2-d (M, K) @ (K, N) calls take the fast path (what Linear layers make).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch

MAX_PLANS = 4096          # a bounded cache: cleared when a program sweeps through many shapes


class Launch(NamedTuple):
    """One direct launch: kernel[grid](*args, **kwargs). args start with the six tensor
    arguments (c, a, b, bias or c, aux or c, rowsum or c); the rest are ints fixed by the signature."""
    kernel: object
    grid: Callable[[dict], tuple]
    args: tuple
    kwargs: dict


class Plan:
    """A remembered Launch, replayed with a new call's tensors (same signature)."""

    def __init__(self, launch: Launch, shape: tuple, before: Optional[Callable[[], None]] = None):
        self.kernel, self.kwargs = launch.kernel, launch.kwargs
        self.grid = launch.grid(launch.kwargs)              # block sizes are known: a fixed grid
        self.tail = launch.args[6:]                         # strides and sizes
        self.shape, self.before = shape, before

    def __call__(self, a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor],
                 out: Optional[torch.Tensor], aux: Optional[torch.Tensor],
                 rowsum: Optional[torch.Tensor] = None) -> torch.Tensor:
        c = torch.empty(self.shape, dtype=a.dtype, device=a.device) if out is None else out
        if self.before is not None:
            self.before()
        # Triton reads a tensor argument's data pointer and dtype only: the 2-d tensors stand in
        # for the 4-d views the slow path built over the same memory.
        self.kernel[self.grid](c, a, b, c if bias is None else bias, c if aux is None else aux,
                               c if rowsum is None else rowsum, *self.tail, **self.kwargs)
        return c


_PLANS: dict = {}


def _spec(t: Optional[torch.Tensor]):
    return None if t is None else (t.shape, t.stride(), t.dtype, t.device)


def plan_key(a: torch.Tensor, b: torch.Tensor, bias, activation, out, aux, aux_mode: str,
             variant, split_k, switches: tuple, rowsum=None) -> tuple:
    """Everything the slow path's decisions depend on (raises AttributeError for non-tensors)."""
    return (a.shape, a.stride(), a.dtype, a.device, b.shape, b.stride(), b.dtype, b.device,
            a.data_ptr() % 16, b.data_ptr() % 16, _spec(bias), _spec(out), _spec(aux), aux_mode,
            activation, variant, split_k, switches, _spec(rowsum))


def lookup(key: tuple) -> Optional[Plan]:
    return _PLANS.get(key)


def remember(key: tuple, launch: Launch, shape: tuple, before: Optional[Callable[[], None]] = None) -> None:
    if len(_PLANS) >= MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = Plan(launch, shape, before)


def clear() -> None:
    """Forget every plan (tests; after changing a launch rule at run time)."""
    _PLANS.clear()
