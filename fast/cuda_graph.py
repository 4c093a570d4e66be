"""A training step captured once as a CUDA graph and replayed (train.py's --cuda_graph).

Why: an eager step issues hundreds of kernel launches, each costing ~10-40 us of Python and
Triton host time (docs/perf-notes.md), so a GPU step is host-bound. A graph replays the whole
captured step (forward, backward, clipping, AdamW) with one call: tens of microseconds of host time.

How: `GraphedStep` owns static input Tensors. Each call copies the host batch into them, then
  - the first call runs the step eagerly after `before_warmup()` (train_step_graph: the dropout
    seed offset exists from here on, so the kernels compile in the variant the capture launches);
    kernels compile and autotune, the optimizer state and the pointer tables are created;
  - the other warm-up calls run exactly what will be captured, eagerly: `before_replay()` (host
    work whose launches must not be frozen into the graph: AdamW's prepare_step, which writes
    the step's lr and bias corrections to device memory, and a new dropout seed offset), then the
    step with graphed=True (the optimizer only applies its update). Every kernel signature and
    every pointer table the capture will need is made here: CUDA forbids loading a module or
    uploading from pageable memory while capturing;
  - the next call captures the step once, then replays it (a capture records kernels without
    running them);
  - every later call only replays. The step's outputs (the loss) are the Tensors the capture
    produced; each replay rewrites their memory, so the same objects are returned every time.
If the capture fails, the message says why, `on_capture_failure()` runs (train_step_graph: drop
the gradients the aborted capture left, and the fixed gradient buffers) and the step runs eagerly
from then on.

What the graph needs from the step, and how this project provides it:
  - no host read of device data (a sync cannot be captured): token ids are validated on the host
    before the copy, and the static buffers carry a known id range (FF.with_known_range);
  - launches whose arguments do not change: AdamW's scalars live on the device; the gradients
    live in fixed buffers (`StaticGrads`, allocated before the warm-up and accumulated in
    place), so the multi-tensor pointer tables of clipping and AdamW, built in the warm-up, hold
    the addresses the replays use (fresh gradients would get new private-pool addresses inside
    the capture, and every table would be rebuilt and uploaded there);
  - randomness that changes per replay: dropout draws its seeds on the host per call, which the
    capture freezes into the graph's launches; the kernels add a seed offset they read from
    device memory (`FastOps.set_dropout_seed_offset_`), which `before_replay` rewrites with a new
    host-drawn value before every replay, so each step gets new masks;
  - inputs that do not wait for the GPU: x and y arrive in one pinned, non-blocking upload
    (`FastOps.upload_ids`) and one copy kernel into the static buffer.

What it does not do: capture evaluation or sampling, or change shapes (one graph per step shape).
The graph object comes from the backend's FastOps (`cuda_graph()`: torch.cuda.CUDAGraph on a
GPU); tests pass fake ones (tests/test_cuda_graph.py; tests/test_graph_capture_signatures.py runs
the Triton kernels in the interpreter and checks that no kernel signature and no host upload is
first seen inside the capture). The GPU check is benchmarks/gpu_check.py's `gpt2` and `dropout`
stages.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import numpy as np

import minigrad
from minigrad import Tensor

from . import functional as FF
from .ops import fast_ops


class StaticGrads:
    """Each trainable parameter's .grad in one buffer allocated here, for good: a backward pass
    writes its first contribution into the buffer (a copy) and adds the others in place, and
    p.grad is that buffer's Tensor (marked `_static_grad`) until zero_grad sets it to None again.
    The values are autograd's: the same adds in the same order, only into memory that never moves.

    Installed per parameter (an instance attribute over Tensor._accumulate_grad), so the readable
    path and other models are untouched; `remove()` takes it away. Costs one copy launch per
    parameter per step (the first contribution; autograd keeps it without a copy) and
    sum(numel) gradient elements of memory held between steps."""

    def __init__(self, params):
        seen, self.params, self.buffers = set(), [], []
        for p in params:
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            b = p.backend
            buf = Tensor._wrap(b.empty(p.shape, p.dtype), b)
            buf._static_grad = True
            p._accumulate_grad = functools.partial(_accumulate_into, p, buf)
            self.params.append(p)
            self.buffers.append(buf)

    def remove(self) -> None:
        for p in self.params:
            p.__dict__.pop("_accumulate_grad", None)


def _accumulate_into(p: Tensor, buf: Tensor, g) -> None:
    """Tensor._accumulate_grad into the fixed buffer `buf` (see StaticGrads)."""
    if p.grad is None:                       # the step's first contribution
        p.backend.copy_(buf.data, g)
        p.grad = buf
    elif p.grad is buf:
        fast_ops(p.backend).add_(buf.data, g)
    else:                                    # .grad replaced by code that does not know the buffer
        Tensor._accumulate_grad(p, g)


class GraphedStep:
    """step(*static_inputs, graphed: bool) -> Tensor | tuple of Tensors, run by capture and replay.

    static_inputs: Tensors the step reads; each call's host arrays (same shapes) are copied into
    them, or `copy_in(*arrays)` does it. graphed=False: an eager step (the first warm-up call,
    the fallback); graphed=True: the part to capture (before_replay has already run), also run
    eagerly by the other warm-up calls. make_graph() -> an object with capture(fn) (records fn,
    returns its outputs) and replay(), and `executes_on_capture` (False for CUDA graphs: a capture
    records without running, so the capturing call replays once afterwards).
    """

    def __init__(self, step: Callable, static_inputs: Sequence[Tensor], make_graph: Callable,
                 before_replay: Callable[[], None] = lambda: None,
                 validate: Callable[..., None] = lambda *arrays: None, warmup: int = 2,
                 log: Callable[[str], None] = print,
                 before_warmup: Callable[[], None] = lambda: None,
                 copy_in: Optional[Callable[..., None]] = None,
                 on_capture_failure: Callable[[], None] = lambda: None):
        self.step, self.static = step, list(static_inputs)
        self.make_graph, self.before_replay, self.validate = make_graph, before_replay, validate
        if int(warmup) < 1:     # the optimizer state and autotuning must exist before a capture
            raise ValueError(f"warmup must be >= 1 eager call before the capture, got {warmup}")
        self.warmup, self.log = int(warmup), log
        self.before_warmup, self.copy_in, self.on_capture_failure = before_warmup, copy_in, on_capture_failure
        self.calls, self.graph, self.outputs, self.failed = 0, None, None, None

    def _copy_in(self, arrays: Sequence[np.ndarray]) -> None:
        if self.copy_in is not None:
            self.copy_in(*arrays)
            return
        if len(arrays) != len(self.static):
            raise ValueError(f"expected {len(self.static)} input arrays, got {len(arrays)}")
        for i, (a, t) in enumerate(zip(arrays, self.static)):
            a = np.asarray(a)
            if tuple(a.shape) != t.shape:
                raise ValueError(f"input {i} has shape {a.shape}; the graphed step was built for "
                                 f"{t.shape} (one graph per shape)")
        self.validate(*arrays)
        for a, t in zip(arrays, self.static):
            b = t.backend
            b.copy_(t.data, b.from_numpy(np.ascontiguousarray(a), t.dtype))

    def __call__(self, *arrays: np.ndarray):
        self._copy_in(arrays)
        self.calls += 1
        if self.graph is not None:
            self.before_replay()
            self.graph.replay()
            return self.outputs
        if self.failed is not None:
            return self.step(*self.static, graphed=False)
        if self.calls == 1:                     # creates the optimizer state: a full eager step
            self.before_warmup()
            return self.step(*self.static, graphed=False)
        self.before_replay()
        if self.calls <= self.warmup:           # the captured path, run eagerly
            return self.step(*self.static, graphed=True)
        try:
            graph = self.make_graph()
            outputs = graph.capture(lambda: self.step(*self.static, graphed=True))
        except Exception as e:                              # noqa: BLE001 - any capture failure falls back
            self.failed = f"{type(e).__name__}: {e}"
            self.log(f"note: CUDA graph capture failed ({self.failed}); running the step eagerly")
            self.on_capture_failure()
            return self.step(*self.static, graphed=True)    # prepare_step already ran for this call
        self.graph, self.outputs = graph, outputs
        if not getattr(graph, "executes_on_capture", False):
            graph.replay()
        return outputs


def train_step_graph(step: Callable, model, optimizer, accum: int, batch_size: int,
                     block_size: int, log: Callable[[str], None] = print,
                     make_graph: Optional[Callable] = None, warmup: int = 2) -> Optional[GraphedStep]:
    """train.py's step as a GraphedStep, or None (with the reason logged) where graphs do not
    apply: a backend without CUDA graphs (NumPy, Triton's interpreter) or an optimizer without
    prepare_step/apply_step (the readable AdamW: accelerate() first).

    step(xs, ys) -> [loss]: forward and backward over the micro-batches xs[i], ys[i] (B, T),
    clipping and the optimizer step (train.py's train_step). The graphed step feeds it views of
    one static (2, accum, B, T) id buffer (x, then y), each host batch checked on the host and
    uploaded in one non-blocking copy; the model's gradients live in fixed buffers from here on
    (StaticGrads); inside the capture the optimizer only applies its update (prepare_step runs
    before every replay, and before the second warm-up call, which runs the captured path
    eagerly), and dropout gets a new seed offset before every replay (the offset exists from the
    first warm-up call on, so its kernels compile there)."""
    backend = model.transformer.wte.weight.backend
    ops = fast_ops(backend)
    if make_graph is None:
        make_graph = ops.cuda_graph
        try:
            ops.cuda_graph_check()
        except (NotImplementedError, RuntimeError) as e:
            log(f"note: --cuda_graph: not available here ({e}); running eagerly")
            return None
    if not (hasattr(optimizer, "prepare_step") and hasattr(optimizer, "apply_step")):
        log(f"note: --cuda_graph: {type(optimizer).__name__} cannot split its step; running eagerly")
        return None
    V = model.config.vocab_size
    shape = (accum, batch_size, block_size)
    # x and y in one buffer, so one upload and one copy fill both
    ids = FF.with_known_range(minigrad.zeros(2, *shape, dtype="int64", device=model.device), 0, V - 1)
    # the micro-batches the step reads: (B, T) views of the static buffer, whose ids are checked
    xs, ys = ([FF.with_known_range(ids[j, i], 0, V - 1) for i in range(accum)] for j in range(2))
    grads = StaticGrads(model.parameters())         # before the warm-up: its tables see them

    def graphable(ids_static: Tensor, graphed: bool = False):
        optimizer.graphed = graphed                 # under capture: apply_step only
        try:
            losses = step(xs, ys)
        finally:
            optimizer.graphed = False
        return sum(loss.detach() for loss in losses) / len(losses)

    def copy_in(xs_host: np.ndarray, ys_host: np.ndarray) -> None:
        arrays = [np.asarray(xs_host), np.asarray(ys_host)]
        for i, a in enumerate(arrays):
            if tuple(a.shape) != shape:
                raise ValueError(f"input {i} has shape {a.shape}; the graphed step was built for "
                                 f"{shape} (one graph per shape)")
        for what, a in zip(("idx", "targets"), arrays):
            if a.dtype.kind not in "iu":
                raise TypeError(f"{what} must hold integer token ids, got dtype {a.dtype}")
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi >= V:
                raise IndexError(f"{what}: token ids must be in [0, {V - 1}] (vocab_size={V}), "
                                 f"got values in [{lo}, {hi}]")
        backend.copy_(ids.data, ops.upload_ids(np.stack(arrays)))   # (2, accum, B, T), one upload

    def set_seed_offset(offset: int) -> None:
        if model.config.dropout > 0:
            ops.set_dropout_seed_offset_(offset)

    def before_replay() -> None:
        # the step's lr and bias corrections, on the device, for the parameters the step updates
        # (no gradient exists yet: the replay's backward has not run)
        optimizer.prepare_step(optimizer.last_batches)
        # new dropout masks for this replay (see the module docstring)
        set_seed_offset(int(minigrad.random.default_generator().integers(0, 2 ** 62)))

    def on_capture_failure() -> None:
        # the aborted capture ran the backward's host side: drop its gradients; the eager steps
        # from now on need no fixed buffers
        optimizer.zero_grad(set_to_none=True)
        grads.remove()

    runner = GraphedStep(graphable, [ids], make_graph, before_replay=before_replay, log=log,
                         warmup=warmup, before_warmup=lambda: set_seed_offset(0), copy_in=copy_in,
                         on_capture_failure=on_capture_failure)
    runner.static_grads = grads
    return runner


__all__ = ["GraphedStep", "StaticGrads", "train_step_graph"]
