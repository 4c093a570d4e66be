"""The CUDA-graph step's capture launches nothing new: no kernel signature and no host upload is
first seen inside the capture (issue 18 item 1-2), with dropout on and off.

Why it matters on a GPU: CUDA forbids loading a module (a kernel compiled for a signature not yet
seen) and synchronous or pageable uploads while a stream is capturing, so either makes the
capture fail and the run fall back to eager steps (with a note that is easy to miss). On the CPU
the kernels run in Triton's interpreter, so this records, for every launch, the signature a real
GPU would compile for, the way Triton's JIT specialises it (the kernel, every constexpr value,
each tensor's dtype and 16-byte alignment, each int's width and whether it is 1 or a multiple of
16 unless the kernel says do_not_specialize, the launch options), and every host-to-device
transfer (torch.from_numpy / torch.tensor / torch.as_tensor, through which every upload of ours
passes: Backend.from_numpy, the pointer tables, FastOps.upload_ids). A fake graph runs the step
at capture time with a flag set; the test asserts that the capture's signatures are a subset of
the warm-up's and that it uploaded nothing.

The controls show the checks can fail: without the warm-up's seed offset (what the step did
before) the dropout and attention kernels' HAS_SEED_OFFSET variants are first launched inside
the capture; gradients at new addresses (what a capture without the fixed gradient buffers
allocates) make the multi-tensor pointer tables upload inside the capture.
"""
from __future__ import annotations

import contextlib
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import minigrad  # noqa: E402
from minigrad import fast  # noqa: E402
from minigrad.fast import cuda_graph as CG  # noqa: E402
from minigrad.fast.ops import fast_ops  # noqa: E402
from minigrad.models.gpt import GPT, GPTConfig  # noqa: E402

if torch.cuda.is_available():          # a real GPU has real graphs: tests/test_cuda_graph.py and
    pytest.skip("interpreter-only: records launches of Triton's CPU interpreter",   # the GPU check
                allow_module_level=True)

from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

V, B, T = 11, 2, 8


class Recorder:
    """Launch signatures seen outside and inside the capture, and uploads inside it."""

    def __init__(self):
        self.capturing = False
        self.warm, self.captured = set(), set()
        self.uploads: list[str] = []
        self._params: dict = {}

    def signature(self, fn, args: tuple, kwargs: dict) -> tuple:
        """What Triton's JIT would compile one variant for (see the module docstring)."""
        params = self._params.get(fn)
        if params is None:
            params = self._params[fn] = inspect.signature(fn.fn).parameters
        no_spec = set(fn.kwargs.get("do_not_specialize", ()) or ())
        bound = dict(zip(params, args), **kwargs)
        key: list = [fn.__name__]
        for name, param in params.items():
            v = bound.get(name, param.default)
            if "constexpr" in str(param.annotation):
                key.append((name, repr(v)))
            elif isinstance(v, torch.Tensor):
                key.append((name, str(v.dtype), v.data_ptr() % 16 == 0))
            elif isinstance(v, bool):
                key.append((name, "i1"))
            elif isinstance(v, int):
                width = "i32" if -2 ** 31 <= v < 2 ** 31 else "i64"
                key.append((name, width) if name in no_spec else (name, width, v == 1, v % 16 == 0))
            elif isinstance(v, float):
                key.append((name, "fp32"))
            else:
                key.append((name, type(v).__name__))
        key += sorted((k, repr(v)) for k, v in kwargs.items() if k not in params)   # num_warps, ...
        return tuple(key)

    def new_in_capture(self) -> list[str]:
        return sorted({k[0] for k in self.captured - self.warm})


@contextlib.contextmanager
def recording():
    rec = Recorder()
    run = InterpretedFunction.run

    def recorded_run(self, *args, grid, warmup, **kwargs):
        (rec.captured if rec.capturing else rec.warm).add(rec.signature(self, args, kwargs))
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    transfers = {name: getattr(torch, name) for name in ("from_numpy", "tensor", "as_tensor")}

    def counted(name):
        def transfer(*args, **kwargs):
            if rec.capturing:
                rec.uploads.append(name)
            return transfers[name](*args, **kwargs)
        return transfer
    InterpretedFunction.run = recorded_run
    for name in transfers:
        setattr(torch, name, counted(name))
    try:
        yield rec
    finally:
        InterpretedFunction.run = run
        for name, fn in transfers.items():
            setattr(torch, name, fn)


class CapturingGraph:
    """FakeGraph of tests/test_cuda_graph.py that flags the capture for the recorder."""
    executes_on_capture = True

    def __init__(self, rec: Recorder):
        self.rec = rec

    def capture(self, fn):
        self.fn, self.rec.capturing = fn, True
        try:
            self.out = fn()
        finally:
            self.rec.capturing = False
        return self.out

    def replay(self):
        self.out.backend.copy_(self.out.data, self.fn().data)


def _graphed_run(monkeypatch, dropout: float, accum: int, warmup: int = 2, control: bool = False) -> Recorder:
    """Warm-up calls and the capture of a 1-layer accelerated GPT's training step (train.py's
    train_step: micro-batches, clip, AdamW, zero_grad) on the Triton backend, recorded."""
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=1, n_head=2, n_embd=16, dropout=dropout),
                device="cuda")
    model, opt = fast.accelerate(model, model.configure_optimizers(0.1, 1e-3, (0.9, 0.95)))
    # a fresh process has no seed offset yet: the warm-up must create it
    monkeypatch.setattr(fast_ops(model.transformer.wte.weight.backend), "seed_offset_tensor", None)

    def train_step(xs, ys):
        losses = []
        for x, y in zip(xs, ys):
            _, loss = model(x, y, return_logits=False)
            (loss / accum).backward()
            losses.append(loss)
        fast.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return losses

    rng = np.random.default_rng(0)
    with recording() as rec:
        runner = CG.train_step_graph(train_step, model, opt, accum, B, T,
                                     make_graph=lambda: CapturingGraph(rec), warmup=warmup)
        if control:                     # the step before issue 18: no seed offset in the warm-up
            runner.before_warmup = lambda: None
        for _ in range(warmup + 1):
            loss = runner(rng.integers(0, V, (accum, B, T)), rng.integers(0, V, (accum, B, T)))
    assert runner.graph is not None and runner.failed is None
    assert np.isfinite(float(loss.item()))
    assert len(rec.captured) > 10                      # the capture did launch the step's kernels
    return rec


@pytest.mark.parametrize("dropout, accum", [(0.2, 2), (0.0, 1)])
def test_capture_launches_only_what_the_warmup_compiled(monkeypatch, dropout, accum):
    rec = _graphed_run(monkeypatch, dropout, accum)
    assert rec.new_in_capture() == []
    assert rec.uploads == []
    names = {k[0] for k in rec.captured}
    assert {"_adamw_step_multi_kernel", "_scale_multi_kernel"} <= names
    if dropout:
        assert {"_attention_fwd_kernel", "_dropout_fwd_kernel"} <= names
        offsets = {e[1] for k in rec.captured if k[0] == "_attention_fwd_kernel" for e in k[1:]
                   if e[0] == "HAS_SEED_OFFSET"}
        assert offsets == {"True"}                     # the capture reads the device seed offset


def test_control_without_the_warmup_offset_compiles_inside_the_capture(monkeypatch):
    rec = _graphed_run(monkeypatch, 0.2, 1, warmup=1, control=True)
    assert {"_attention_fwd_kernel", "_attention_bwd_dq_kernel", "_attention_bwd_dkdv_kernel",
            "_dropout_fwd_kernel"} <= set(rec.new_in_capture())


def test_control_new_gradient_addresses_upload_tables_inside_the_capture():
    """What the fixed gradient buffers prevent. Clipping them in place (as the graphed step does)
    reuses the warm-up's pointer tables: no upload. Gradients at addresses the warm-up never saw
    (fresh ones, which a real capture allocates from its private pool), or the out-of-place clip's
    new outputs, build and upload new tables, and the recorder sees those uploads."""
    backend = minigrad.get_backend("cuda")
    ops = fast_ops(backend)
    fixed = [backend.full((5, 3), 1.0, "float32") for _ in range(3)]
    fresh = [backend.full((5, 3), 1.0, "float32") for _ in range(3)]
    with recording() as rec:
        ops.clip_by_total_norm_(fixed, 1.0)                        # warm-up: tables built here
        rec.capturing = True
        ops.clip_by_total_norm_(fixed, 1.0)                        # same addresses: no upload
        assert rec.uploads == []
        ops.clip_by_total_norm(fixed, 1.0)                         # new outputs: a new scale table
        assert rec.uploads
        rec.uploads.clear()
        ops.clip_by_total_norm_(fresh, 1.0)
        rec.capturing = False
    assert rec.uploads and rec.new_in_capture() == []
