"""Host time of one training step on the Triton backend, measured without a GPU.

    python -m benchmarks.bench_host_overhead                              # shakespeare-char
    python -m benchmarks.bench_host_overhead --case=gpt2-124m --steps=20
    python -m benchmarks.bench_host_overhead --tiny --steps=2 --json=/tmp/h.json   # seconds

Why: an eager engine is host-bound on a fast GPU when the Python work per step (engine,
backend wrappers, kernel launchers, Triton's launch path, torch allocations) takes longer than
the kernels. This tool runs the real GPU code path against benchmarks/fake_gpu.py's stub driver
(an H100 that compiles everything and launches nothing), so a step's wall time here is the host
cost of a real step minus the real cuLaunchKernel calls (a few us each): a lower bound on it.

A case is the model of one train.py preset on device "cuda" in bfloat16, as train.py resolves
it (benchmarks/bench_train.py's case_config): shakespeare-char 6x6x384 T=256 B=64 V=65 dropout
0.2 exact GELU; gpt2-124m 12x12x768 T=1024 B=8 V=50257->50304 biases; tinystories 6x6x384
T=128 B=32 V=50257->50304. One step = forward + backward + clip_grad_norm_ + AdamW + zero_grad
on one fixed batch, as bench_train times it. `--tiny` shrinks the model to seconds.

Reported, after `--warmup` steps (compilation and autotuning happen there):
  - host ms/step: median of `--steps` plain steps, with min/p10/p90/max (the CPU is shared),
    and the Python GC pauses among them; the same per phase (forward, backward, clip, AdamW,
    zero_grad);
  - kernel launches per step (counted in the stub launcher; must be equal in every step),
    by phase and kernel, and host us per launch = ms/step / launches, with the launches that
    exist only because storage is host memory (to_numpy/from_numpy copies) counted apart;
    device syncs (to_numpy, .item(), .tolist(), and each blocking upload: Backend.from_numpy is
    a copy from pageable memory, which waits for the stream on a GPU) and uploads per step
    (blocking, and FastOps.upload_ids's pinned non-blocking ones); torch.zeros calls (on a GPU
    each is also a torch fill kernel, not counted as a launch);
  - from `--timed_steps` separate steps with plain timers around them: Triton's launch entry
    points (JITFunction.run by kernel, Autotuner.run, Heuristics.run) and torch.empty & co;
    host allocation of large CPU tensors (mmap) is slower than the CUDA caching allocator, so
    the tool also reports the excess over a small torch.empty, to discount;
  - a cProfile breakdown of `--profile_steps` steps by layer: engine (minigrad/ outside
    backends/), model (models/), backend wrappers (minigrad/backends/), kernel launchers
    (kernels/*.py), Triton runtime (triton/), torch allocation, torch other (views, metadata),
    stub (fake_gpu.py), other. A builtin or library function (len, numpy, functools, ...) is
    charged to the layer of the code that called it. cProfile inflates Python-heavy layers, so
    shares are shown next to the plain ms/step;
  - a launch ladder: the plain cost of one op at each level (bare Triton launch, kernel launch
    function, backend method, Tensor op), and a FLOPs estimate of the GPU time (an estimate).

`--no_autotune` uses the kernels' fixed configs (few compiles on a cold Triton cache; what the
test runs), at the price of not measuring the autotuner's lookups. docs/perf-notes.md records
the results and what they predict for the GPU.

What it deliberately does not do: run on a real GPU (it refuses: use bench_train there), time
any kernel, or write benchmarks/results (these are not device measurements); `--json` writes
the numbers to a file of your choice. Patched for the stub only, inside this process: Triton's
driver, triton_backend._storage_device (host memory), value_range (it reads device data; it
still runs, launches and counts as a sync, but its answer is replaced by (0, 0)), torch.zeros
(as torch.empty: the stub's memory is never read, and a CPU memset of a 150 MB buffer is not
host time on a GPU).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import functools
import gc
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CASES = ("shakespeare-char", "gpt2-124m", "tinystories")
PHASES = ("forward", "backward", "clip", "adamw", "zero_grad")
LAYERS = ("engine", "model", "backend", "kernels", "triton", "torch alloc", "torch other", "stub", "other")
ALLOC_FUNCS = ("empty", "zeros", "empty_strided", "empty_like", "zeros_like", "full", "tensor")
H100_BF16_PEAK = 989e12            # dense bf16 datasheet peak (models/mfu.py), for the estimate only


# ---------------------------------------------------------------------------------------------
# setting up the process


def _prepare(case: str, tiny: bool, autotune: bool = True, fast: bool = True):
    """Install the stub, patch minigrad for it, build the case. -> (gpu, state dict). fast: the
    performance layer on (fast.accelerate, as train.py --fast), else the readable step."""
    from benchmarks import fake_gpu
    gpu = fake_gpu.install()                                   # FakeGPUUnavailable: caller reports
    import torch

    from minigrad.kernels import attention, matmul
    matmul.AUTOTUNE = attention.AUTOTUNE = autotune

    import minigrad
    from benchmarks.bench_train import case_config, describe
    from minigrad.backends import triton_backend
    from minigrad import tensor_shape
    from minigrad.models.gpt import GPT
    from minigrad.training.settings import resolve_device_dtype

    triton_backend._storage_device = lambda: torch.device("cpu")
    syncs = collections.Counter()
    backend_cls = triton_backend.TritonBackend

    inside = []                      # open transfer calls: one counts once, not its inner ones

    def transfer(name, method):
        """Count calls, and the launches inside them: with host storage, the backend copies with
        a kernel where a GPU does a plain host<->device transfer (contiguous int64/fp32 data)."""
        def wrapper(self, *args, **kwargs):
            n = gpu.launches
            inside.append(name)
            try:
                return method(self, *args, **kwargs)
            finally:
                inside.pop()
                if not inside:
                    syncs[name] += 1
                    syncs["host-storage launches"] += gpu.launches - n
        return wrapper
    # .cpu() on a GPU: a sync. from_numpy is host.to(device) from pageable memory, which torch
    # makes wait for the stream (a sync too); FastOps.upload_ids goes through pinned memory and a
    # non-blocking copy on a GPU (on the stub it falls back to from_numpy, counted as itself)
    from minigrad.fast.triton_ops import TritonFastOps
    backend_cls.to_numpy = transfer("to_numpy", backend_cls.to_numpy)
    backend_cls.from_numpy = transfer("from_numpy", backend_cls.from_numpy)
    TritonFastOps.upload_ids = transfer("upload_ids", TritonFastOps.upload_ids)

    original_range = tensor_shape.value_range

    def value_range(values):                                   # runs, but the data is garbage
        original_range(values)
        return 0, 0
    for mod in list(sys.modules.values()):
        if getattr(mod, "value_range", None) is original_range:
            mod.value_range = value_range

    # Reads of device data outside to_numpy (a .item() or .tolist() on a GPU tensor is a sync too)
    for name in ("item", "tolist"):
        method = getattr(torch.Tensor, name)

        def counted(self, *args, _method=method, _name=name, **kwargs):
            syncs["torch." + _name] += 1
            return _method(self, *args, **kwargs)
        setattr(torch.Tensor, name, counted)

    empty = torch.empty

    def zeros_as_empty(*args, **kwargs):                       # see the module docstring
        syncs["torch.zeros"] += 1
        return empty(*args, **kwargs)
    torch.zeros = zeros_as_empty

    cfg, mcfg = case_config(case, "cuda", tiny)
    device, dtype = resolve_device_dtype(cfg)
    minigrad.manual_seed(1337)
    model = GPT(mcfg, device=device, dtype=dtype)
    opt = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2),
                                     decay_embeddings=cfg.decay_embeddings)
    clip_fn = None                      # the readable clip_grad_norm_
    if fast:
        from minigrad import fast as fast_layer
        model, opt = fast_layer.accelerate(model, opt)
        clip_fn = fast_layer.clip_grad_norm_
    B, T = cfg.batch_size, cfg.block_size
    ids = np.random.default_rng(1337).integers(0, mcfg.vocab_size, size=(B, T + 1))
    # host batches, as train.py passes them: the model checks their ids on the host and uploads
    # them (2 uploads per step; on the stub each is also a copy launch, counted apart)
    x = np.ascontiguousarray(ids[:, :-1])                                     # (B, T) int64
    y = np.ascontiguousarray(ids[:, 1:])                                      # (B, T) int64
    flops_per_token = 6 * model.get_num_params() + 6 * mcfg.n_layer * mcfg.n_embd * T
    return gpu, dict(model=model, opt=opt, x=x, y=y, clip=cfg.grad_clip, clip_fn=clip_fn, syncs=syncs, dtype=dtype,
                     describe=describe(case, mcfg, B), tokens=B * T, flops_per_token=flops_per_token,
                     n_params=model.get_num_params())


def _step_fn(s: dict, gpu, record: Optional[Callable] = None) -> Callable:
    """One training step; record(phase, seconds, launches) after each phase when given (the
    launch counter is read there, so record may also look at gpu.by_kernel)."""
    from minigrad.nn.utils import clip_grad_norm_
    model, opt, x, y, clip = s["model"], s["opt"], s["x"], s["y"], s["clip"]
    clip_grad_norm_ = s["clip_fn"] or clip_grad_norm_
    clock = time.perf_counter

    def step():
        last = [clock(), gpu.launches]

        def mark(phase):
            if record is not None:
                record(phase, clock() - last[0], gpu.launches - last[1])
                last[:] = clock(), gpu.launches           # record's own time is not counted
        _, loss = model(x, y, return_logits=False)       # as train.py: the loss-only forward
        mark("forward")
        loss.backward()
        mark("backward")
        if clip > 0:
            clip_grad_norm_(model.parameters(), clip)
        mark("clip")
        opt.step()
        mark("adamw")
        opt.zero_grad()
        mark("zero_grad")
    return step


# ---------------------------------------------------------------------------------------------
# measurements


def _spread(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"median": float(np.median(a)), "min": float(a.min()), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "max": float(a.max()), "n": int(a.size)}


@contextlib.contextmanager
def _gc_pauses():
    """Yields {generation: [ms of each Python GC pause]} filled while the block runs."""
    pauses: dict[int, list[float]] = collections.defaultdict(list)
    start = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            start[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(1000 * (time.perf_counter() - start[0]))
    gc.callbacks.append(on_gc)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(on_gc)


def time_steps(s: dict, gpu, steps: int) -> dict:
    """Plain (unprofiled) steps: ms/step, launches/step and transfers/step, overall and by phase
    (phase ms: the median over the steps), then one untimed step counting kernels by phase."""
    phase_ms, phase_n = collections.defaultdict(list), collections.defaultdict(list)

    def record(phase, seconds, n):
        phase_ms[phase].append(1000 * seconds)
        phase_n[phase].append(n)
    step = _step_fn(s, gpu, record)
    totals, counts = [], []                    # counts: per step, launches and transfer events
    kernels_before = collections.Counter(gpu.by_kernel)
    with _gc_pauses() as pauses:
        for _ in range(steps):
            before, t = collections.Counter(s["syncs"], launches=gpu.launches), time.perf_counter()
            step()
            totals.append(1000 * (time.perf_counter() - t))
            counts.append(collections.Counter(s["syncs"], launches=gpu.launches) - before)
    by_kernel = {k: (v - kernels_before[k]) / steps for k, v in gpu.by_kernel.items()
                 if v > kernels_before[k]}
    census = {}
    seen = [collections.Counter(gpu.by_kernel)]

    def count(phase, seconds, n):
        now = collections.Counter(gpu.by_kernel)
        census[phase] = dict((now - seen[0]).most_common())
        seen[0] = now
    _step_fn(s, gpu, count)()
    ms, last = _spread(totals), counts[-1]
    n = last["launches"]
    return {"ms": ms, "step_ms": totals, "launches": [c["launches"] for c in counts],
            "launches_per_step": n, "us_per_launch": 1000 * ms["median"] / max(1, n),
            "syncs_per_step": last["to_numpy"] + last["torch.item"] + last["torch.tolist"] + last["from_numpy"],
            "uploads_per_step": last["from_numpy"] + last["upload_ids"],
            "blocking_uploads_per_step": last["from_numpy"],
            "nonblocking_uploads_per_step": last["upload_ids"],
            "torch_zeros_per_step": last["torch.zeros"],
            "host_storage_launches_per_step": last["host-storage launches"],
            "phases": {p: {"ms": float(np.median(phase_ms[p])), "launches": phase_n[p][-1]} for p in PHASES},
            "by_kernel": dict(sorted(by_kernel.items(), key=lambda kv: -kv[1])), "by_phase_kernel": census,
            "gc": {f"gen{g}": {"collections": len(v), "ms": sum(v), "max_ms": max(v)}
                   for g, v in sorted(pauses.items())}}


def time_entry_points(s: dict, gpu, steps: int) -> dict:
    """Steps with a plain timer around torch's allocating functions and Triton's launch entry
    points (JITFunction.run, Autotuner.run, Heuristics.run; each also timed without the timed
    calls inside it; "triton launch path" counts each outermost one once; JITFunction.run also
    by kernel). Gives the torch-allocation and Triton launch-path time per step without
    cProfile's distortion (a timer costs ~0.3 us per call), the autotuner's share, and the plain
    cost of a small torch.empty (dispatcher + a cached malloc) for comparison."""
    import torch
    from triton.runtime.autotuner import Autotuner, Heuristics
    from triton.runtime.jit import JITFunction
    spent, own, calls = collections.Counter(), collections.Counter(), collections.Counter()
    clock = time.perf_counter
    stack: list[float] = []                  # time spent in timed callees, per open timed call

    jit_spent, jit_calls = collections.Counter(), collections.Counter()

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            stack.append(0.0)
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = clock() - t
                inner = stack.pop()
                spent[name] += dt
                own[name] += dt - inner
                calls[name] += 1
                if name == "JITFunction.run":                   # args[0]: the JITFunction
                    jit_spent[args[0].fn.__name__] += dt
                    jit_calls[args[0].fn.__name__] += 1
                if stack:
                    stack[-1] += dt
                elif not name.startswith("torch."):
                    spent["triton launch path"] += dt          # outermost Triton entry point
                    own["triton launch path"] += dt
                    calls["triton launch path"] += 1
        return wrapper
    saved = [(torch, name, getattr(torch, name)) for name in ALLOC_FUNCS]
    saved += [(cls, "run", cls.run) for cls in (JITFunction, Autotuner, Heuristics)]
    for owner, name, fn in saved:
        label = f"torch.{name}" if owner is torch else f"{owner.__name__}.run"
        setattr(owner, name, timed(label, fn))
    try:
        step = _step_fn(s, gpu)
        gc.collect()                      # a full GC pause (~0.1 s) inside a timed call would skew it
        t = clock()
        for _ in range(steps):
            step()
        total = clock() - t
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
    small = []
    for _ in range(5):
        t = clock()
        for _ in range(2000):
            torch.empty((16,), dtype=torch.bfloat16)
        small.append((clock() - t) / 2000 * 1e6)
    per_step = {k: {"calls": calls[k] / steps, "ms": 1000 * spent[k] / steps,
                    "us_per_call": 1e6 * spent[k] / max(1, calls[k]),
                    "self_us_per_call": 1e6 * own[k] / max(1, calls[k])} for k in sorted(calls)}
    alloc = [v for k, v in per_step.items() if k.startswith("torch.")]
    alloc_ms, alloc_calls = sum(v["ms"] for v in alloc), sum(v["calls"] for v in alloc)
    small_us = float(np.median(small))
    jit = {k: {"calls": jit_calls[k] / steps, "ms": 1000 * jit_spent[k] / steps,
               "us_per_call": 1e6 * jit_spent[k] / jit_calls[k]} for k, _ in jit_spent.most_common()}
    return {"step_ms_while_timed": 1000 * total / steps, "entry_points": per_step, "jit_by_kernel": jit,
            "alloc_calls_per_step": alloc_calls, "alloc_ms_per_step": alloc_ms, "small_empty_us": small_us,
            "alloc_excess_ms_per_step": max(0.0, alloc_ms - alloc_calls * small_us / 1000)}


@functools.lru_cache(maxsize=None)
def _package_dirs() -> tuple:
    """(folder/, layer) of the triton and torch packages this process imported: wherever they are
    installed (site-packages, a distribution's dist-packages, a folder on PYTHONPATH)."""
    import torch
    import triton
    return tuple((os.path.dirname(m.__file__).replace(os.sep, "/") + "/", layer)
                 for m, layer in ((triton, "triton"), (torch, "torch other")))


def _layer_of_file(filename: str) -> Optional[str]:
    f = filename.replace(os.sep, "/")
    repo = str(REPO).replace(os.sep, "/") + "/"
    for folder, layer in _package_dirs():      # first: a venv may live inside the repository
        if f.startswith(folder):
            return layer
    rel = f[len(repo):] if f.startswith(repo) else ""
    for prefix, layer in (("minigrad/backends/", "backend"), ("minigrad/", "engine"), ("models/", "model"),
                          ("fast/", "fast"), ("kernels/", "kernels"), ("benchmarks/fake_gpu.py", "stub")):
        if rel.startswith(prefix):
            return layer
    return None


def _layer_of(func: tuple) -> Optional[str]:
    filename, _, name = func
    if filename == "~":                                       # a builtin: maybe torch's
        if "torch" in name:
            short = name.replace("<built-in method ", "").rstrip(">").split(" ")[0]
            return "torch alloc" if short.split(".")[-1] in ALLOC_FUNCS else "torch other"
        return None
    return _layer_of_file(filename)


def group_profile(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of self time per layer. A function of no layer is charged to its callers' layers
    in proportion to the time each caller spent in it (recursively; a cycle or no caller: other)."""
    raw = stats.stats                                          # func -> (cc, nc, tt, ct, callers)
    memo: dict[tuple, dict[str, float]] = {}

    def shares(func, visiting):
        layer = _layer_of(func)
        if layer is not None:
            return {layer: 1.0}
        if func in memo:
            return memo[func]
        callers = {c: v for c, v in (raw[func][4] if func in raw else {}).items() if c not in visiting}
        total = sum(v[2] for v in callers.values())
        if total <= 0:
            return {"other": 1.0}
        out: dict[str, float] = collections.Counter()
        for caller, v in callers.items():
            for layer, frac in shares(caller, visiting | {func}).items():
                out[layer] += frac * v[2] / total
        memo[func] = dict(out)
        return memo[func]
    seconds = collections.Counter()
    for func, (_, _, tt, _, _) in raw.items():
        for layer, frac in shares(func, frozenset()).items():
            seconds[layer] += tt * frac
    return {layer: seconds.get(layer, 0.0) for layer in LAYERS}


def profile_steps(s: dict, gpu, steps: int, top: int = 15) -> dict:
    """cProfile over `steps` steps -> ms/step by layer, the profiled wall time, top functions."""
    step = _step_fn(s, gpu)
    prof = cProfile.Profile()
    gc.collect()
    t = time.perf_counter()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    wall = time.perf_counter() - t
    stats = pstats.Stats(prof)
    layers = {k: 1000 * v / steps for k, v in group_profile(stats).items()}
    stub_calls = sum(v[1] for f, v in stats.stats.items()        # calls of FakeGPU's launch closure
                     if f[0].endswith("fake_gpu.py") and f[2] == "launch")
    rows = []
    for func, (cc, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        rows.append({"function": _where(func), "layer": _layer_of(func) or "(charged to callers)",
                     "calls_per_step": nc / steps, "self_ms": 1000 * tt / steps, "cum_ms": 1000 * ct / steps,
                     "self_us_per_call": 1e6 * tt / max(nc, 1)})
    return {"layers_ms": layers, "total_ms": sum(layers.values()), "wall_ms": 1000 * wall / steps,
            "stub_launch_calls_per_step": stub_calls / steps,
            "top": rows}


def launch_ladder(repeats: int = 2000) -> dict:
    """Plain us per call of one small elementwise add at each level of the stack, of a small
    matmul at the launcher level (the plain wrapper and matmul_auto's replayed plan), and of the
    host helpers a launch uses (torch.empty, triton.cdiv): where a launch's host time goes,
    unprofiled."""
    import torch
    import triton
    import triton.language as tl

    import minigrad
    from minigrad.kernels import elementwise as ew
    from minigrad.kernels import matmul as mm
    from minigrad.kernels import matmul_auto

    @triton.jit
    def _ladder_add_kernel(out_ptr, a_ptr, b_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        total = tl.load(a_ptr + offs, mask=mask) + tl.load(b_ptr + offs, mask=mask)
        tl.store(out_ptr + offs, total, mask=mask)

    a = torch.empty((64, 384), dtype=torch.bfloat16)
    b, out = torch.empty_like(a), torch.empty_like(a)
    n = a.numel()
    backend = minigrad.get_backend("cuda")
    ta = minigrad.Tensor._wrap(a, backend)
    tb = minigrad.Tensor._wrap(b, backend)
    ta.requires_grad = True
    w = torch.empty((384, 384), dtype=torch.bfloat16)
    levels = {
        "bare Triton launch (JITFunction.run, fixed meta)":
            lambda: _ladder_add_kernel[(triton.cdiv(n, 1024),)](out, a, b, n, BLOCK=1024),
        "torch.empty (16 bf16)": lambda: torch.empty((16,), dtype=torch.bfloat16),
        "triton.cdiv on the host (a constexpr_function)": lambda: triton.cdiv(n, 1024),
        "kernels.elementwise.binary (launcher)": lambda: ew.binary("add", a, b),
        "TritonBackend.binary (wrapper)": lambda: backend.binary("add", a, b),
        "Tensor a + b (engine, records the graph)": lambda: ta + tb,
        f"kernels.matmul.matmul 64x384x384 ({'autotuned' if mm.AUTOTUNE else 'fixed config'})":
            lambda: mm.matmul(a, w),
        "kernels.matmul_auto.matmul 64x384x384 (a replayed plan)": lambda: matmul_auto.matmul(a, w),
    }
    out_us = {}
    for name, fn in levels.items():
        for _ in range(20):
            fn()                                               # compile / autotune first
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(repeats // 5):
                fn()
            samples.append((time.perf_counter() - t) / (repeats // 5) * 1e6)
        out_us[name] = float(np.median(samples))
    return out_us


# ---------------------------------------------------------------------------------------------
# report


def _where(func: tuple) -> str:
    """A profile key as a short location: kernels/matmul.py:279(matmul), triton/runtime/jit.py:..."""
    filename, line, name = func
    if filename == "~":
        return name
    f = filename.replace(os.sep, "/")
    f = f.split("/site-packages/", 1)[1] if "/site-packages/" in f else os.path.relpath(f, REPO)
    return f"{f}:{line}({name})"


def _table(header: str, rows) -> list[str]:
    """Markdown table lines: header 'a | b | c', rows of cell tuples."""
    cols = header.count("|") + 1
    return ["", f"| {header} |", "|" + "---|" * cols] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def report(r: dict) -> str:
    """The result as text and markdown tables."""
    t, ms = r["timing"], r["timing"]["ms"]
    pauses = ", ".join(f"{g} {v['collections']}x {v['ms']:.1f} ms (max {v['max_ms']:.1f})"
                       for g, v in t["gc"].items())
    lines = [f"== {r['describe']} ({r['dtype']}; fake H100 sm_90 via benchmarks/fake_gpu.py; "
             f"triton {r['triton']}, torch {r['torch']})",
             f"host time per step: median {ms['median']:.2f} ms over {ms['n']} steps "
             f"(min {ms['min']:.2f}, p10 {ms['p10']:.2f}, p90 {ms['p90']:.2f}, max {ms['max']:.2f})",
             f"kernel launches per step: {t['launches_per_step']} (distinct counts over the steps: "
             f"{sorted(set(t['launches']))}); {t['us_per_launch']:.1f} us of host time per launch",
             f"  of which {t['host_storage_launches_per_step']} only because storage is host memory "
             "(copies in to_numpy/from_numpy that a GPU does as plain transfers)",
             f"device syncs per step (to_numpy, .item(), .tolist(), blocking from_numpy uploads): "
             f"{t['syncs_per_step']}; host->device uploads: {t['uploads_per_step']} (blocking from_numpy "
             f"{t['blocking_uploads_per_step']}, pinned non-blocking upload_ids {t['nonblocking_uploads_per_step']}); "
             f"torch.zeros: {t['torch_zeros_per_step']} (on a GPU each is also a torch fill kernel, not "
             "counted above)",
             f"Python GC during the {ms['n']} steps: {pauses or 'none'} (a gen2 pause is the slow outlier "
             "step; gc.freeze() after warmup avoids it)"]
    def kernels(phase):
        census = t["by_phase_kernel"][phase].items()
        return ", ".join(f"{k.replace('_kernel', '').lstrip('_')} {n}" for k, n in census)
    lines += _table("phase | host ms | launches | us/launch | kernels launched", [
        (phase, f"{v['ms']:.2f}", v["launches"], f"{1000 * v['ms'] / max(1, v['launches']):.1f}",
         kernels(phase)) for phase, v in t["phases"].items()])
    a = r.get("timed")
    if a:
        lines += ["", f"timed entry points ({a['step_ms_while_timed']:.2f} ms/step while timed):"]
        lines += _table("entry point | calls/step | ms/step | us/call | us/call outside timed callees", [
            (k, f"{v['calls']:.0f}", f"{v['ms']:.2f}", f"{v['us_per_call']:.2f}",
             f"{v['self_us_per_call']:.2f}") for k, v in a["entry_points"].items()])
        lines += _table("Triton JITFunction.run by kernel | launches/step | ms/step | us/launch", [
            (k, f"{v['calls']:.0f}", f"{v['ms']:.2f}", f"{v['us_per_call']:.2f}")
            for k, v in a["jit_by_kernel"].items()])
        lines += ["", f"torch allocations: {a['alloc_calls_per_step']:.0f} calls, "
                  f"{a['alloc_ms_per_step']:.2f} ms/step; a small torch.empty costs {a['small_empty_us']:.2f} "
                  f"us, so ~{a['alloc_excess_ms_per_step']:.2f} ms/step is host allocation of large buffers, "
                  "which the CUDA caching allocator would not pay: discount it"]
    p = r.get("profile")
    if p:
        total = p["total_ms"] or 1.0
        lines += ["", f"cProfile over {p['steps']} steps: {p['wall_ms']:.1f} ms/step profiled wall, "
                  f"{p['total_ms']:.1f} ms/step attributed (plain: {ms['median']:.2f}); the last column "
                  "scales each share to the plain median (an estimate: cProfile slows Python code most)"]
        lines += _table("layer | profiled ms/step | share | ~plain ms/step", [
            (k, f"{v:.2f}", f"{100 * v / total:.1f}%", f"{v / total * ms['median']:.2f}")
            for k, v in p["layers_ms"].items()])
        lines += _table("function (top by self time, profiled) | layer | calls/step | self ms/step | "
                        "self us/call | cum ms/step", [
                            (x["function"], x["layer"], f"{x['calls_per_step']:.0f}", f"{x['self_ms']:.2f}",
                             f"{x['self_us_per_call']:.2f}", f"{x['cum_ms']:.2f}") for x in p["top"]])
    if r.get("ladder"):
        lines += ["", "launch ladder (plain us per call, one small op at each level):"]
        lines += [f"  {us:8.2f}  {name}" for name, us in r["ladder"].items()]
    e = r["estimate"]
    lines += ["", f"ESTIMATE, not measured: {e['flops_per_step'] / 1e12:.3f} TFLOP/step (6N + 6LCT per "
              f"token, N={r['n_params'] / 1e6:.1f}M) at 50% of an H100's 989 TFLOP/s bf16 = "
              f"{e['gpu_ms_at_50pct']:.2f} ms/step of matmul-bound GPU time; host/that = "
              f"{ms['median'] / e['gpu_ms_at_50pct']:.1f}x"]
    return "\n".join(lines)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="shakespeare-char", choices=CASES, help="train.py preset's model")
    ap.add_argument("--steps", type=int, default=30, help="plain timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, autotune)")
    ap.add_argument("--profile_steps", type=int, default=5, help="steps under cProfile (0: skip)")
    ap.add_argument("--timed_steps", type=int, default=5,
                    help="steps with torch allocations and Triton's launch path timed (0: skip)")
    ap.add_argument("--no_ladder", action="store_true", help="skip the per-level launch ladder")
    ap.add_argument("--tiny", action="store_true", help="2x2x64, T=32, B=4 (bench_train's --tiny): seconds")
    ap.add_argument("--no_autotune", action="store_true",
                    help="fixed matmul/attention configs (kernels.*.AUTOTUNE = False): far fewer compiles "
                         "on a cold Triton cache (the test uses it), but no autotuner lookups measured")
    ap.add_argument("--fast", default="true", choices=("true", "false"),
                    help="the performance layer (train.py's --fast): fused modules, multi-tensor AdamW")
    ap.add_argument("--json", default="", help="also write every number to this file")
    return ap.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if "minigrad.kernels" in sys.modules:     # decorated already, maybe for the interpreter
        print("bench_host_overhead: run it in a fresh process (the kernels were already imported)")
        return 1
    os.environ["TRITON_INTERPRET"] = "0"                       # before any kernel is decorated
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")     # Triton's default; silences 3.9's note
    os.environ["MINIGRAD_AUTOTUNE_CACHE"] = "off"              # the stub's "timings" are constants
    sys.path.insert(0, str(REPO))
    try:
        import torch
        import triton
    except ImportError as e:
        print(f"bench_host_overhead: needs torch and triton ({e}); nothing measured")
        return 0
    if torch.cuda.is_available():
        print("bench_host_overhead: a CUDA GPU is present; this tool measures host time on a stub "
              "driver for machines without one. On a GPU, time real steps with benchmarks/bench_train.py.")
        return 0
    from benchmarks.fake_gpu import FakeGPUUnavailable
    t0 = time.perf_counter()
    try:
        gpu, s = _prepare(args.case, args.tiny, not args.no_autotune, fast=args.fast == "true")
    except FakeGPUUnavailable as e:
        print(f"bench_host_overhead: cannot install the stub GPU driver here: {e}; nothing measured")
        return 0
    print(f"{s['describe']}: warming up {args.warmup} steps (compiles for sm_90, autotunes)...", flush=True)
    warm = _step_fn(s, gpu)
    for _ in range(args.warmup):
        warm()
    print(f"  warmup done in {time.perf_counter() - t0:.0f} s", flush=True)
    result = {"case": args.case + (" --tiny" if args.tiny else ""), "autotune": not args.no_autotune,
              "fast": args.fast == "true",
              "describe": s["describe"], "dtype": s["dtype"], "n_params": s["n_params"],
              "triton": triton.__version__, "torch": torch.__version__}
    result["timing"] = time_steps(s, gpu, args.steps)
    result["timed"] = time_entry_points(s, gpu, args.timed_steps) if args.timed_steps else None
    if args.profile_steps:
        result["profile"] = profile_steps(s, gpu, args.profile_steps)
        result["profile"]["steps"] = args.profile_steps
    result["ladder"] = None if args.no_ladder else launch_ladder()
    flops = s["flops_per_token"] * s["tokens"]
    result["estimate"] = {"flops_per_step": flops, "gpu_ms_at_50pct": 1000 * flops / (0.5 * H100_BF16_PEAK)}
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
