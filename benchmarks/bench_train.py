"""One whole training step on the GPU, side by side: ours vs torch eager vs torch.compile.

    python -m benchmarks.bench_train                                   # every case, on the GPU
    python -m benchmarks.bench_train --cases=gpt2-124m --steps=20      # one case, more steps
    python -m benchmarks.bench_train --device=cpu --tiny --no_write    # a seconds-long smoke run

Cases are the model shapes of train.py's presets (their model settings, micro-batch and block
size, dtype as train.py resolves it: bf16 on the GPU), on random token ids:

- gpt2-124m: 12 layers x 12 heads x 768, T=1024, GPT-2's vocabulary 50257 padded to 50304,
  biases, tanh GELU; micro-batch 8 x 1024 tokens (the preset's; chosen to fit easily in 80 GB
  for both implementations: weights, grads and AdamW state are ~2 GB, the rest activations;
  `--batch_size=16` for a fuller GPU);
- tinystories: 6 x 6 x 384, T=128, vocabulary 50257 -> 50304, micro-batch 32 (the preset
  accumulates 32 of them per update; here one micro-batch is one step);
- shakespeare-char: 6 x 6 x 384, T=256, 65 characters, dropout 0.2, exact GELU, micro-batch 64.

One step = forward + backward + grad-norm clip + AdamW update + zero grad, on the same batch
every step. Ours is models/gpt.py on minigrad's Triton backend (bf16 parameters, fp32 master
weights and moments in AdamW, as train.py). The baselines are benchmarks/torch_baseline.py
(nanoGPT's model.py: fp32 parameters under bf16 autocast, SDPA flash attention, fused AdamW)
in eager mode and under torch.compile (a failure to compile is reported as n/a with its error).
All three start from the same weights (ours, copied by name).

Correctness first: before timing, ours and torch eager each take two steps in eval mode
(dropout off) from the same weights on the same batch; their step-0 losses (the initial
weights) must agree within 2e-2 in bf16 (1e-4 in fp32 on the CPU), their step-1 losses (after
one clip + AdamW update) within 5e-2 (1e-3). A failed check is printed, recorded in the rows
and makes the exit status 1; the timing still runs.

Timing: `--warmup` steps (Triton/inductor compilation and autotuning happen here), then
`--steps` steps each between two CUDA events with a synchronize after each; the median is
reported. Each variant is timed with only its own model, optimizer and batch alive, and its
peak memory is torch.cuda.max_memory_allocated() after a reset (our arrays are torch CUDA
tensors too, so one counter covers all three).

Derived figures: tokens/s = B*T / median step time; FLOPs/token = 6N + 6*L*C*T, where N is
GPT.get_num_params() (non_embedding=True: every weight, the tied wte/lm_head once with its
padded rows, biases and norms, but not wpe), 6N the weight matmuls forward and backward and
6*L*C*T the causal attention scores and weighted values (half of the T x T square, which is
what a causal kernel computes; train.py's printed MFU counts the full square, 12*L*C*T, as
PaLM and nanoGPT do, so it reads a little higher). MFU = FLOPs/token * tokens/s / the device's
dense bf16 datasheet peak (models/mfu.py).

Rows (benchmarks/results/train-<device>.json): benchmark "train_step_vs_eager" (baseline
torch) and "train_step_vs_compile" (baseline torch.compile) per case, with docs/DESIGN.md's fields
plus tokens_per_s, mfu, peak_mem_gb (ours) and the baseline's. Written after each case, so a
run cut off keeps the cases it finished; a case that raises (out of memory, say) is reported
with its traceback, the others still run, and the exit status is 1. A markdown table is
printed at the end.
"""
from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import minigrad  # noqa: E402
from benchmarks import common  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from minigrad.models.gpt import GPT, GPTConfig  # noqa: E402
from minigrad.models.mfu import peak_flops  # noqa: E402
from minigrad.training.presets import PRESETS  # noqa: E402
from minigrad.training.settings import parse_config, resolve_device_dtype  # noqa: E402
from train import MODEL_KEYS, TrainConfig  # noqa: E402

CASES = {"gpt2-124m": 50257, "tinystories": 50257, "shakespeare-char": 65}   # preset -> vocab_size
TINY = ["--n_layer=2", "--n_head=2", "--n_embd=64", "--block_size=32", "--batch_size=4"]
TINY_BIG_VOCAB = 500                      # --tiny stands in for GPT-2's 50257 (still padded to 64)
TOLERANCE = {"bfloat16": (2e-2, 5e-2), "float32": (1e-4, 1e-3)}   # |loss diff| at step 0, step 1


def device_label(device: str) -> str:
    """The GPU's name for "cuda"; the CPU's model name (from /proc/cpuinfo) for "cpu"."""
    if device == "cuda":
        return common.device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def case_config(name: str, device: str, tiny: bool) -> tuple[TrainConfig, GPTConfig]:
    """train.py's config for preset `name` on `device` and the GPTConfig it would build."""
    cfg, _ = parse_config(TrainConfig, [f"--preset={name}", f"--device={device}"] + (TINY if tiny else []),
                          PRESETS)
    vocab = CASES[name]
    if tiny and vocab > 1000:
        vocab = TINY_BIG_VOCAB
    return cfg, GPTConfig(vocab_size=vocab, **{k: getattr(cfg, k) for k in MODEL_KEYS})


def describe(name: str, m: GPTConfig, B: int) -> str:
    """The case in words, e.g. 'gpt2-124m 12x12x768 T=1024 B=8 V=50257->50304 gelu bias tied'."""
    vocab = f"V={m.vocab_size}" + (f"->{m.padded_vocab_size}" if m.padded_vocab_size != m.vocab_size else "")
    extras = [m.activation] + (["bias"] if m.bias else [])
    extras += ["qkv_bias"] if m.qkv_bias and not m.bias else []
    extras += (["tied"] if m.tie_weights else []) + ([f"dropout={m.dropout}"] if m.dropout else [])
    return f"{name} {m.n_layer}x{m.n_head}x{m.n_embd} T={m.block_size} B={B} {vocab} {' '.join(extras)}"


# ---------------------------------------------------------------------------------------------
# one step of each implementation


def our_step(model: GPT, opt, x, y, clip: float) -> Callable:
    def step():
        _, loss = model(x, y)
        loss.backward()
        if clip > 0:
            clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad()
        return loss
    return step


def torch_step(net, model, opt, x, y, clip: float, bf16: bool) -> Callable:
    """`net` is `model` or torch.compile(model); clipping reads `model`'s parameters."""
    import torch
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext

    def step():
        with autocast():
            _, loss = net(x, y)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return step


def build_torch(mcfg: GPTConfig, weights: dict, decay: list[str], cfg: TrainConfig, device: str):
    """The torch baseline on `device` (fp32 parameters) from host weights, with its AdamW."""
    from benchmarks.torch_baseline import TorchGPT, adamw, copy_from_minigrad
    model = TorchGPT(mcfg).to(device)
    copy_from_minigrad(model, weights)
    opt = adamw(model, decay, cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device)
    return model, opt


# ---------------------------------------------------------------------------------------------
# timing


def fresh_memory(device: str) -> None:
    """Free what earlier variants left and restart the peak-memory counter."""
    gc.collect()
    if device == "cuda":
        import torch
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def time_steps(step: Callable, warmup: int, steps: int, device: str, label: str) -> dict:
    """Median ms of `steps` steps after `warmup`, and the peak memory since fresh_memory()."""
    import torch
    cuda = device == "cuda"
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    print(f"  {label}: {warmup} warmup steps in {time.perf_counter() - t0:.1f} s", flush=True)
    times = []
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(steps):
        if cuda:
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            step()
            times.append(1000 * (time.perf_counter() - t))
    ms = float(np.median(times))
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
    print(f"  {label}: median {ms:.2f} ms/step over {steps} steps "
          f"(min {min(times):.2f}, max {max(times):.2f})"
          + (f", peak memory {peak:.2f} GB" if peak is not None else ""), flush=True)
    return {"ms": ms, "peak_mem_gb": None if peak is None else round(peak, 3)}


def check_losses(ours: GPT, our_opt, x, y, weights, decay, mcfg, cfg, device, dtype) -> dict:
    """Two steps of ours and of torch eager in eval mode (dropout off) from the same weights on
    the same batch: their losses at step 0 and step 1 must agree within TOLERANCE[dtype]."""
    import torch
    model, opt = build_torch(mcfg, weights, decay, cfg, device)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    ours.eval()
    model.eval()
    mine = our_step(ours, our_opt, minigrad.tensor(x, device=device), minigrad.tensor(y, device=device),
                    cfg.grad_clip)
    theirs = torch_step(model, model, opt, xt, yt, cfg.grad_clip, dtype == "bfloat16")
    lo = [mine().item() for _ in range(2)]
    lt = [theirs().item() for _ in range(2)]
    ours.train()
    tol = TOLERANCE["bfloat16" if dtype == "bfloat16" else "float32"]
    diff = [abs(a - b) for a, b in zip(lo, lt)]
    ok = all(np.isfinite(lo + lt)) and diff[0] <= tol[0] and diff[1] <= tol[1]
    for i in range(2):
        print(f"  check step {i}: loss ours {lo[i]:.5f} torch {lt[i]:.5f} |diff| {diff[i]:.1e} "
              f"(tol {tol[i]:g})", flush=True)
    print(f"  check: {'ok' if ok else 'FAILED: ours and torch eager disagree'}", flush=True)
    return {"loss_check_ok": bool(ok), "loss_ours": [round(v, 6) for v in lo],
            "loss_torch": [round(v, 6) for v in lt], "loss_tolerance": list(tol)}


# ---------------------------------------------------------------------------------------------
# one case


def bench_case(name: str, args) -> list[dict]:
    import torch

    from benchmarks.torch_baseline import host_weights
    cfg, mcfg = case_config(name, args.device, args.tiny)
    device, dtype = resolve_device_dtype(cfg)
    fresh_memory(device)                                  # whatever an earlier (crashed) case left
    B, T = args.batch_size or cfg.batch_size, cfg.block_size
    case = describe(name, mcfg, B)
    print(f"\n== {case} ({device}, {dtype})", flush=True)
    ids = np.random.default_rng(args.seed).integers(0, mcfg.vocab_size, size=(B, T + 1))
    x, y = np.ascontiguousarray(ids[:, :-1]), np.ascontiguousarray(ids[:, 1:])          # (B, T) each
    bf16 = dtype == "bfloat16"

    # ours: build, snapshot the weights for the torch models, check against torch eager, time
    minigrad.manual_seed(args.seed)
    ours = GPT(mcfg, device=device, dtype=dtype)
    our_opt = ours.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2),
                                        decay_embeddings=cfg.decay_embeddings)
    n_params = ours.get_num_params()
    decay = [n for n, _ in ours.decay_groups(cfg.decay_embeddings)[0]]
    weights = host_weights(ours)
    check = check_losses(ours, our_opt, x, y, weights, decay, mcfg, cfg, device, dtype)
    fresh_memory(device)
    res = {"ours": time_steps(our_step(ours, our_opt, minigrad.tensor(x, device=device),
                                       minigrad.tensor(y, device=device), cfg.grad_clip),
                              args.warmup, args.steps, device, "ours")}
    del ours, our_opt

    # torch eager, then torch.compile, each alone in memory
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    variants = [("torch", False)] + ([("torch.compile", True)] if device == "cuda" else [])
    for label, compiled in variants:
        fresh_memory(device)
        model, opt = build_torch(mcfg, weights, decay, cfg, device)
        net = torch.compile(model) if compiled else model       # compiles lazily, at the first step
        try:
            res[label] = time_steps(torch_step(net, model, opt, xt, yt, cfg.grad_clip, bf16),
                                    args.warmup, args.steps, device, label)
        except Exception as err:              # torch.compile may fail (or memory run out): n/a, go on
            res[label] = {"ms": None, "peak_mem_gb": None, "error": f"{type(err).__name__}: {err}"[:500]}
            print(f"  {label}: n/a ({res[label]['error'].splitlines()[0]})", flush=True)
        del model, opt, net
        if compiled:
            torch._dynamo.reset()                         # compiled graphs keep the parameters alive
    fresh_memory(device)

    flops_per_token = 6 * n_params + 6 * mcfg.n_layer * mcfg.n_embd * T
    peak = peak_flops(device_label(device), "bfloat16") if device == "cuda" else None

    def perf(ms: Optional[float]) -> dict:
        if ms is None:
            return {"tokens_per_s": None, "tflops": None, "mfu": None}
        tps = B * T / (ms / 1000)
        return {"tokens_per_s": common.round_sig(tps, 6), "tflops": flops_per_token * tps / 1e12,
                "mfu": None if peak is None else round(flops_per_token * tps / peak, 4)}

    mine = perf(res["ours"]["ms"])
    rows = []
    for bench, label in (("train_step_vs_eager", "torch"), ("train_step_vs_compile", "torch.compile")):
        if label not in res:
            continue
        base = res[label]
        theirs = perf(base["ms"])
        row = common.make_row(
            bench, case, dtype, res["ours"]["ms"], label, base["ms"], tflops=mine["tflops"],
            pct_of_peak=None if mine["mfu"] is None else 100 * mine["mfu"],
            peak=None if peak is None else f"datasheet dense bf16 {peak / 1e12:.0f} TFLOP/s (models/mfu.py)",
            tokens_per_s=mine["tokens_per_s"], mfu=mine["mfu"], peak_mem_gb=res["ours"]["peak_mem_gb"],
            baseline_tokens_per_s=theirs["tokens_per_s"], baseline_mfu=theirs["mfu"],
            baseline_peak_mem_gb=base["peak_mem_gb"], baseline_error=base.get("error"),
            flops_per_token=flops_per_token, params=n_params, batch_size=B, block_size=T,
            warmup=args.warmup, steps=args.steps, **check)
        row["device"] = device_label(device)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# report


def markdown(rows: list[dict]) -> str:
    """One line per case and implementation: ms/step, tokens/s, MFU, peak memory, ratio."""
    def fmt(v, spec, scale=1.0, unit=""):
        return "n/a" if v is None else format(scale * v, spec) + unit

    def line(case, impl, ms, tps, mfu, mem, ratio):
        return (f"| {case} | {impl} | {fmt(ms, '.2f')} | {fmt(tps, ',.0f')} | {fmt(mfu, '.1f', 100, '%')} | "
                f"{fmt(mem, '.2f')} | {fmt(ratio, '.2f')} |")
    out = ["| case | impl | ms/step | tokens/s | MFU | peak mem GB | baseline ms / ours ms |",
           "|---|---|---|---|---|---|---|"]
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        r0 = mine[0]
        out.append(line(case, "ours", r0["ours_ms"], r0["tokens_per_s"], r0["mfu"], r0["peak_mem_gb"], 1.0))
        for r in mine:
            out.append(line(case, r["baseline"], r["baseline_ms"], r["baseline_tokens_per_s"],
                            r["baseline_mfu"], r["baseline_peak_mem_gb"], r["ratio"]))
    return "\n".join(out)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--batch_size", type=int, default=0, help="micro-batch for every case (0: the preset's)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, autotuning)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                    help="cuda (default) or cpu for a smoke run (NumPy backend, fp32, no torch.compile)")
    ap.add_argument("--tiny", action="store_true", help=f"tiny shapes ({' '.join(TINY)}) that run in seconds")
    ap.add_argument("--seed", type=int, default=1337, help="weights and token ids")
    ap.add_argument("--no_write", action="store_true", help="print only; do not write the results file")
    args = ap.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    return args


def run(args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """Every case of `args` -> (rows, cases that crashed). Rows are written after each case
    (unless --no_write); a case that raises (out of memory, say) is reported and skipped, so the
    others still run. The table is printed at the end."""
    rows: list[dict] = []
    crashed: list[str] = []
    for name in args.cases:
        try:
            case_rows = bench_case(name, args)
        except Exception:
            traceback.print_exc()
            print(f"  case {name} FAILED (see the traceback above); going on", flush=True)
            crashed.append(name)
            continue
        rows += case_rows
        if not args.no_write:
            print(f"  wrote {common.write_rows(case_rows, name='train')}", flush=True)
    print("\n" + markdown(rows), flush=True)
    return rows, crashed


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not common.require_cuda("bench_train"):
        return 0
    rows, crashed = run(args)
    failed = sorted({r["case"] for r in rows if not r["loss_check_ok"]})
    if failed:
        print(f"\nloss check FAILED for: {failed}")
    if crashed:
        print(f"\ncrashed: {crashed}")
    return 1 if failed or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
