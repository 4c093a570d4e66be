"""A training step captured once as a CUDA graph and replayed (train.py's --cuda_graph).

Why: an eager step issues hundreds of kernel launches, each costing ~10-40 us of Python and
Triton host time (docs/perf-notes.md), so a GPU step is host-bound. A graph replays the whole
captured step (forward, backward, clipping, AdamW) with one call: tens of microseconds of host time.

How: `GraphedStep` owns static input Tensors. Each call copies the host batch into them, runs
`before_replay()` (host work whose launches must not be frozen into the graph: AdamW's
prepare_step, which writes the step's lr and bias corrections to device memory), then
  - the first `warmup` calls run the step eagerly (kernels compile and autotune, the optimizer
    state and pointer tables are created: none of that may happen during a capture);
  - the next call captures the step once, then replays it (a capture records kernels without
    running them);
  - every later call only replays. The step's outputs (the loss) are the Tensors the capture
    produced; each replay rewrites their memory, so the same objects are returned every time.
If the capture fails, the message says why and the step runs eagerly from then on.

What the graph needs from the step, and how this project provides it:
  - no host read of device data (a sync cannot be captured): token ids are validated on the host
    by `validate` before the copy, and the static buffers carry a known id range (FF.with_known_range);
  - launches whose arguments do not change: AdamW's scalars and pointer tables live on the device;
  - randomness that changes per replay: dropout draws its seeds on the host per call, which the
    capture freezes into the graph's launches; the kernels add a seed offset they read from
    device memory (`FastOps.set_dropout_seed_offset_`), which `before_replay` rewrites with a new
    host-drawn value before every replay, so each step gets new masks.

What it does not do: capture evaluation or sampling, or change shapes (one graph per step shape).
The graph object comes from the backend's FastOps (`cuda_graph()`: torch.cuda.CUDAGraph on a
GPU); tests pass a fake one. Verified on the CPU only (tests/test_cuda_graph.py); see docs/perf-notes.md
for what remains to check on a GPU.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

import minigrad
from minigrad import Tensor

from . import functional as FF
from .ops import fast_ops


class GraphedStep:
    """step(*static_inputs, graphed: bool) -> Tensor | tuple of Tensors, run by capture and replay.

    static_inputs: Tensors the step reads; each call's host arrays (same shapes) are copied into
    them. graphed=False: an eager step (warmup, fallback); graphed=True: the part to capture
    (before_replay has already run). make_graph() -> an object with capture(fn) (records fn,
    returns its outputs) and replay(), and `executes_on_capture` (False for CUDA graphs: a capture
    records without running, so the capturing call replays once afterwards).
    """

    def __init__(self, step: Callable, static_inputs: Sequence[Tensor], make_graph: Callable,
                 before_replay: Callable[[], None] = lambda: None,
                 validate: Callable[..., None] = lambda *arrays: None, warmup: int = 2,
                 log: Callable[[str], None] = print):
        self.step, self.static = step, list(static_inputs)
        self.make_graph, self.before_replay, self.validate = make_graph, before_replay, validate
        if int(warmup) < 1:     # the optimizer state and autotuning must exist before a capture
            raise ValueError(f"warmup must be >= 1 eager call before the capture, got {warmup}")
        self.warmup, self.log = int(warmup), log
        self.calls, self.graph, self.outputs, self.failed = 0, None, None, None

    def _copy_in(self, arrays: Sequence[np.ndarray]) -> None:
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
        if self.failed is not None or self.calls <= self.warmup:
            return self.step(*self.static, graphed=False)
        self.before_replay()
        try:
            graph = self.make_graph()
            outputs = graph.capture(lambda: self.step(*self.static, graphed=True))
        except Exception as e:                              # noqa: BLE001 - any capture failure falls back
            self.failed = f"{type(e).__name__}: {e}"
            self.log(f"note: CUDA graph capture failed ({self.failed}); running the step eagerly")
            return self.step(*self.static, graphed=True)    # prepare_step already ran for this call
        self.graph, self.outputs = graph, outputs
        if not getattr(graph, "executes_on_capture", False):
            graph.replay()
        return outputs


def train_step_graph(step: Callable, model, optimizer, accum: int, batch_size: int,
                     block_size: int, log: Callable[[str], None] = print,
                     make_graph: Optional[Callable] = None) -> Optional[GraphedStep]:
    """train.py's step as a GraphedStep, or None (with the reason logged) where graphs do not
    apply: a backend without CUDA graphs (NumPy, Triton's interpreter) or an optimizer without
    prepare_step/apply_step (the readable AdamW: accelerate() first).

    step(xs, ys) -> [loss]: forward and backward over the micro-batches xs[i], ys[i] (B, T),
    clipping and the optimizer step (train.py's train_step). The graphed step feeds it views of
    static (accum, B, T) id buffers, each host batch checked on the host before it is copied in;
    inside the capture the optimizer only applies its update (prepare_step runs before every
    replay), and dropout gets a new seed offset before every replay."""
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
    static = [FF.with_known_range(minigrad.zeros(*shape, dtype="int64", device=model.device), 0, V - 1)
              for _ in range(2)]
    # the micro-batches the step reads: (B, T) views of the static buffers, whose ids are checked
    xs, ys = ([FF.with_known_range(buf[i], 0, V - 1) for i in range(accum)] for buf in static)

    def graphable(x_static: Tensor, y_static: Tensor, graphed: bool = False):
        optimizer.graphed = graphed                 # under capture: apply_step only
        try:
            losses = step(xs, ys)
        finally:
            optimizer.graphed = False
        return sum(loss.detach() for loss in losses) / len(losses)

    def validate(xs_host: np.ndarray, ys_host: np.ndarray) -> None:
        for what, a in (("idx", xs_host), ("targets", ys_host)):
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi >= V:
                raise IndexError(f"{what}: token ids must be in [0, {V - 1}] (vocab_size={V}), "
                                 f"got values in [{lo}, {hi}]")

    def before_replay() -> None:
        # the step's lr and bias corrections, on the device, for the parameters the step updates
        # (no gradient exists yet: the replay's backward has not run)
        optimizer.prepare_step(optimizer.last_batches)
        if model.config.dropout > 0:         # new dropout masks for this replay (see the docstring)
            offset = int(minigrad.random.default_generator().integers(0, 2 ** 62))
            ops.set_dropout_seed_offset_(offset)

    return GraphedStep(graphable, static, make_graph, before_replay=before_replay, validate=validate,
                       log=log)


__all__ = ["GraphedStep", "train_step_graph"]
