"""minigrad.fast: the performance layer. The same training step, in fewer launches and less host time.

    from minigrad import fast
    model, optimizer = fast.accelerate(model, optimizer)     # one explicit call
    ...
    fast.clip_grad_norm_(model.parameters(), 1.0)            # a few launches for every gradient

The core (minigrad/, models/gpt.py, train.py) says what a training step does, in the words of
nanoGPT and micrograd; this folder makes it fast, and the core never imports it. `accelerate`
swaps each module of a GPT for a fused subclass (fast/modules.py, the Liger-Kernel pattern: no
global patching), turns AdamW into a multi-tensor AdamW over the same state (fast/optim.py), and
on the CPU lets NumPy reuse freed memory (fast/host_memory.py). train.py also captures the step
as a CUDA graph on a GPU (fast/cuda_graph.py). Every piece is tested equal to what it replaces
(tests/test_fast_parity.py); delete this folder and everything still trains and samples, slower.

What is here, and what each replaces:
    ops.py, triton_ops.py  backend operations the core contract leaves out (matmul epilogues, a
                           loss that overwrites its logits, qkv attention, multi-tensor AdamW and
                           clipping, CUDA graphs), specified by the core operations they replace
    functions.py           the fused Functions built on them
    functional.py          their torch-like wrappers, and host-side token id checks
    modules.py             the fused module subclasses a GPT is switched to
    optim.py               MultiTensorAdamW and the multi-tensor clip_grad_norm_
    cuda_graph.py          the training step captured once and replayed
    host_memory.py         glibc malloc thresholds that keep NumPy's freed pages for reuse
"""
from __future__ import annotations

from typing import Optional

from minigrad.nn import Module
from minigrad.optim import AdamW, Optimizer

from .cuda_graph import GraphedStep, train_step_graph
from .host_memory import keep_freed_memory
from .modules import swap_modules
from .optim import MultiTensorAdamW, clip_grad_norm_


def accelerate(model: Module, optimizer: Optional[Optimizer] = None
               ) -> tuple[Module, Optional[Optimizer]]:
    """Switch `model` and `optimizer` to the performance layer; returns (model, optimizer).

    model: its modules change class in place to their fused subclasses (the same object comes
    back; parameters, names and state_dict are untouched). optimizer: an AdamW comes back as a
    MultiTensorAdamW sharing its param groups and state (other optimizers come back as they
    are). On the NumPy backend, freed host memory is kept for reuse from now on (process-wide)."""
    swap_modules(model)
    params = list(model.parameters())
    if params and params[0].device == "cpu":
        keep_freed_memory()
    if isinstance(optimizer, AdamW) and not isinstance(optimizer, MultiTensorAdamW):
        optimizer = MultiTensorAdamW.from_optimizer(optimizer)
    return model, optimizer


__all__ = ["accelerate", "clip_grad_norm_", "train_step_graph", "GraphedStep", "MultiTensorAdamW",
           "swap_modules", "keep_freed_memory"]
