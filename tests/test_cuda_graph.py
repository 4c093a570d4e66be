"""fast/cuda_graph.py on the CPU: the capture/replay bookkeeping with a fake graph object.

A real CUDA graph needs a GPU; these tests check everything around it with `FakeGraph`, which
records the captured callable, runs it on capture (executes_on_capture = True) and on each
replay runs it again and writes the results into the captured output memory (what a real
replay does by re-running the same kernels on the same addresses). They prove: each call's
host arrays land in the static input buffers; the runner calls the step eagerly only for the
warmup and captures it once; later calls are replays returning the same output objects;
before_replay runs before the capture and every replay; a failed capture falls back to eager
steps with a message; a graphed, accelerated GPT training run gives the readable eager run's
losses and weights (NumPy backend); and with dropout, whose host seeds a graph freezes
(`FrozenSeedsGraph` simulates that), each replay still draws new masks through the seed offset.
"""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from minigrad import fast
from minigrad.fast.cuda_graph import GraphedStep, train_step_graph
from minigrad.fast.ops import fast_ops
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.nn.utils import clip_grad_norm_


class FakeGraph:
    executes_on_capture = True

    def __init__(self):
        self.fn, self.out, self.replays = None, None, 0

    def capture(self, fn):
        self.fn = fn
        self.out = fn()
        return self.out

    def replay(self):
        self.replays += 1
        new = self.fn()
        self.out.backend.copy_(self.out.data, new.data)       # same memory, new values


def test_static_buffers_warmup_capture_and_replays():
    log, events = [], []
    static = minigrad.zeros(3, dtype="float32")

    def step(x, graphed):
        events.append("graphed" if graphed else "eager")
        return (x * 2.0).sum()

    graphs = []

    def make_graph():
        graphs.append(FakeGraph())
        return graphs[-1]
    runner = GraphedStep(step, [static], make_graph, before_replay=lambda: events.append("before"),
                         warmup=2, log=log.append, before_warmup=lambda: events.append("setup"))
    outs = [runner(np.array([i, 1.0, 2.0], dtype=np.float32)) for i in range(5)]
    # inputs are copied into the static buffer: it holds the last call's values
    np.testing.assert_array_equal(static.numpy(), [4.0, 1.0, 2.0])
    assert [float(o.item()) for o in outs[:2]] == [6.0, 8.0]
    # one full eager step (after before_warmup), one eager run of exactly the captured path
    # (before_replay, graphed=True), then one capture (+ before_replay), then replays only
    assert events == ["setup", "eager", "before", "graphed", "before", "graphed", "before", "graphed",
                      "before", "graphed"]
    assert len(graphs) == 1 and graphs[0].replays == 2
    assert outs[2] is outs[3] is outs[4]                          # the captured output object
    assert float(outs[4].item()) == 2.0 * (4 + 1 + 2)             # rewritten by the last replay
    assert log == []
    with pytest.raises(ValueError, match="one graph per shape"):
        runner(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match="warmup must be >= 1"):
        GraphedStep(step, [static], make_graph, warmup=0)


def test_failed_capture_falls_back_to_eager_with_a_message():
    log, modes = [], []
    static = minigrad.zeros(2, dtype="float32")

    def step(x, graphed):
        modes.append(graphed)
        return x.sum()

    def broken():
        raise RuntimeError("operation not permitted when stream is capturing")
    runner = GraphedStep(step, [static], broken, warmup=1, log=log.append)
    sums = [float(runner(np.full(2, i, dtype=np.float32)).item()) for i in range(3)]
    assert sums == [0.0, 2.0, 4.0]
    assert len(log) == 1 and "capture failed" in log[0] and "stream is capturing" in log[0]
    assert modes == [False, True, False]          # the failing call still runs its (prepared) step


def _model(accelerated: bool = True):
    minigrad.manual_seed(3)
    model = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16))
    opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95))
    return fast.accelerate(model, opt) if accelerated else (model, opt)


def _train_step(model, opt, grad_clip):
    """train.py's train_step: forward and backward over the micro-batches, clip, AdamW."""
    def step(xs, ys):
        losses = []
        for x, y in zip(xs, ys):
            _, loss = model(x, y, return_logits=False)
            (loss / len(xs)).backward()
            losses.append(loss)
        fast.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        opt.zero_grad()
        return losses
    return step


def test_graphed_gpt_training_matches_eager_steps():
    """Same seeds, same batches (2 micro-batches per step, clipping, a changing lr): the graphed
    step (fake graph) and train.py's eager loop give identical losses and weights (both
    accelerated: tests/test_fast_parity.py compares the accelerated model with the readable one)."""
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 13, (2, 2, 8)), rng.integers(0, 13, (2, 2, 8))) for _ in range(5)]
    lrs = [1e-2, 8e-3, 6e-3, 4e-3, 2e-3]
    model, opt = _model()
    eager = []
    for (xs, ys), lr in zip(batches, lrs):
        for g in opt.param_groups:
            g["lr"] = lr
        total = 0.0
        for x, y in zip(xs, ys):
            _, loss = model(x, y, return_logits=False)
            (loss / 2).backward()
            total += loss.item()
        clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
        eager.append(total / 2)
    gmodel, gopt = _model()
    fake = []
    runner = train_step_graph(_train_step(gmodel, gopt, 0.5), gmodel, gopt, accum=2, batch_size=2,
                              block_size=8, make_graph=lambda: fake.append(FakeGraph()) or fake[-1])
    graphed = []
    for (xs, ys), lr in zip(batches, lrs):
        for g in gopt.param_groups:
            g["lr"] = lr
        graphed.append(float(runner(xs, ys).item()))
    assert len(fake) == 1 and fake[0].replays == 5 - runner.warmup - 1
    np.testing.assert_allclose(graphed, eager, rtol=1e-6)
    for (name, p), (_, q) in zip(model.named_parameters(), gmodel.named_parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-6, atol=1e-7, err_msg=name)
    with pytest.raises(IndexError, match=r"token ids must be in \[0, 12\]"):
        runner(np.full((2, 2, 8), 13), batches[0][1])


def test_train_step_graph_says_why_it_is_not_used():
    log = []
    model, opt = _model()
    step = _train_step(model, opt, 1.0)
    assert train_step_graph(step, model, opt, 1, 2, 8, log=log.append) is None    # NumPy backend
    assert "no CUDA graphs" in log[-1]
    model, opt = _model(accelerated=False)                                     # the readable AdamW
    assert train_step_graph(step, model, opt, 1, 2, 8, log=log.append, make_graph=FakeGraph) is None
    assert "cannot split its step" in log[-1]


class FrozenSeedsGraph(FakeGraph):
    """A fake graph that also freezes host randomness as a CUDA graph does: every replay runs the
    step with minigrad's generator at its capture-time state, so the step's host-drawn dropout
    seeds are the captured ones (and the generator is left as it was: a real replay draws
    nothing on the host). Only what the step reads from memory at run time can change."""

    def capture(self, fn):
        self.state = minigrad.get_rng_state()
        return super().capture(fn)

    def replay(self):
        now = minigrad.get_rng_state()
        minigrad.set_rng_state(self.state)
        try:
            super().replay()
        finally:
            minigrad.set_rng_state(now)


def _dropout_losses(monkeypatch, reseed: bool) -> list[float]:
    """Losses of 5 graphed steps on one batch with lr 0 (the weights never change): they differ
    only if the dropout masks do."""
    minigrad.manual_seed(3)
    model = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16, dropout=0.3))
    model, opt = fast.accelerate(model, model.configure_optimizers(0.0, 0.0, (0.9, 0.95)))
    ops = fast_ops(model.transformer.wte.weight.backend)
    monkeypatch.setattr(ops, "seed_offset", 0)                # put back to 0 for later tests
    if not reseed:      # what the graph would do without the device-side offset: frozen masks
        monkeypatch.setattr(ops, "set_dropout_seed_offset_", lambda offset: None)
    runner = train_step_graph(_train_step(model, opt, 1.0), model, opt, accum=1, batch_size=2,
                              block_size=8, make_graph=FrozenSeedsGraph)
    x = np.arange(16).reshape(1, 2, 8) % 13
    return [float(runner(x, (x + 1) % 13).item()) for _ in range(5)]


def test_graphed_dropout_draws_new_masks_on_every_replay(monkeypatch):
    """With dropout the graph is used (it no longer refuses), and each replay's masks are new:
    before_replay writes a new seed offset that the dropout kernels add to their frozen seeds.
    The control run without the offset shows the test can fail: frozen seeds, equal losses."""
    frozen = _dropout_losses(monkeypatch, reseed=False)
    replays = frozen[3:]                       # 2 eager warmups, the capture, then replays
    assert replays[0] == replays[1] == frozen[2]
    monkeypatch.undo()
    fresh = _dropout_losses(monkeypatch, reseed=True)
    assert len(set(fresh[2:])) == 3, fresh     # the capture and both replays: new masks each


def test_static_gradient_buffers_hold_autograds_values_at_fixed_addresses():
    """StaticGrads (what the graphed step installs before its warm-up): every .grad lives in one
    buffer for good, the first contribution copied in and the others added in place, clipping
    scales it in place, and the values equal plain autograd's (same adds, same order)."""
    from minigrad.fast.cuda_graph import StaticGrads
    rng = np.random.default_rng(1)
    batches = [(rng.integers(0, 13, (2, 8)), rng.integers(0, 13, (2, 8))) for _ in range(2)]

    def step(model, opt):
        for x, y in batches:
            _, loss = model(x, y, return_logits=False)
            (loss / 2).backward()
        grads = [p.grad for p in model.parameters()]
        fast.clip_grad_norm_(model.parameters(), 0.05)          # small: the scaling happens
        return grads, [p.grad.numpy() for p in model.parameters()]
    model, opt = _model()
    ref_grads, ref = step(model, opt)
    smodel, sopt = _model()
    static = StaticGrads(smodel.parameters())
    buffers = dict(zip(map(id, static.params), static.buffers))
    for _ in range(2):                                          # the same buffers step after step
        grads, got = step(smodel, sopt)
        assert all(g is buffers[id(p)] and g._static_grad for p, g in zip(smodel.parameters(), grads))
        assert all(p.grad is g for p, g in zip(smodel.parameters(), grads))   # clipped in place
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b)
        sopt.zero_grad(set_to_none=True)
        assert all(p.grad is None for p in smodel.parameters())
    assert not any(g is b for g, b in zip(ref_grads, buffers.values()))
    static.remove()
    step(smodel, sopt)
    assert not any(p.grad is buffers[id(p)] for p in smodel.parameters())


def test_failed_capture_drops_the_gradients_it_left():
    """A capture that fails halfway leaves .grad set (the capture ran the backward's host side):
    train_step_graph's on_capture_failure clears them, so the eager rerun starts from none, and
    takes the fixed gradient buffers away (eager steps do not need them)."""
    model, opt = _model()
    calls = []

    def broken():
        class Graph:
            def capture(self, fn):
                fn()                                             # the host side ran ...
                raise RuntimeError("capture invalidated")        # ... then the capture failed
        return Graph()

    def step(xs, ys):
        calls.append([p.grad is None for p in model.parameters()])
        for x, y in zip(xs, ys):
            _, loss = model(x, y, return_logits=False)
            loss.backward()
        opt.step()
        return [loss]                      # no zero_grad: a failing capture stops before it
    log = []
    runner = train_step_graph(step, model, opt, accum=1, batch_size=2, block_size=8, log=log.append,
                              make_graph=broken, warmup=1)
    x = np.arange(16).reshape(1, 2, 8) % 13
    for _ in range(2):
        runner(x, x)
    assert runner.failed and "capture failed" in log[0]
    assert all(calls[2])                   # the eager rerun after the failed capture: no stale .grad
    assert not any("_accumulate_grad" in p.__dict__ for p in model.parameters())   # buffers gone
