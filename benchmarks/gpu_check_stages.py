"""The stages of benchmarks/gpu_check.py, one per process: python -m benchmarks.gpu_check_stages STAGE --out=DIR.

    env      versions, the GPU, where minigrad imports from, the Triton cache
    kernels  every kernel family against the NumPy specification (benchmarks/gpu_check_kernels.py)
    gpt2     GPT-2 124M: our eager step, our CUDA-graph step, torch eager from the same weights
    dropout  shakespeare-char with dropout 0.2: the CUDA-graph step against the eager one
    perf     matmul vs cuBLAS and attention vs SDPA at GPT-2 / shakespeare-char shapes
    items    issue 18's slow items timed against what they replaced (benchmarks/gpu_check_items.py)

Every check appends one JSON row to DIR/results.jsonl as soon as it is known (and prints it), so a
stage killed by its timeout leaves what it finished. The exit status is 1 when a check failed or
the stage raised (the traceback is a row too). --dry_run: the same code on the CPU (Triton's
interpreter, tiny models, a fake graph that records by running, torch on the CPU); its timings
mean nothing.

What each comparison allows, and why (bf16 on the GPU; float32 in the dry run, far tighter):
- gpt2, our graph vs our eager step: the same kernels on the same numbers, so the per-step
  losses agree to bf16 noise (|diff| <= 0.05; the embedding backward's atomics are the only
  order-dependent sums). A wrong lr or a missed bias correction in the replayed AdamW moves the
  loss by far more within a few steps at lr 6e-4.
- gpt2, ours vs torch: the same weights and batches, torch under bf16 autocast over float32
  parameters, ours bf16 parameters with float32 master weights in AdamW: step 0 within 0.02 (as
  benchmarks/bench_train.py), every step within 0.15, both falling by more than 1.0 in 20 steps.
- dropout, graph vs eager: the graph draws new masks per replay from a device seed offset, the
  eager step from host seeds: different masks, so only the statistics agree: after the same
  steps the val losses (dropout off) within 0.1, and both below the starting val loss by 0.3.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CARRY_DATA = REPO / ".gpu_carry" / "data"
SEED = 1337


class Report:
    """Rows of one stage, appended to OUT/results.jsonl as they come."""

    def __init__(self, out: str, stage: str):
        self.path, self.stage, self.failed = Path(out) / "results.jsonl", stage, []

    def row(self, **row) -> None:
        line = json.dumps({"stage": self.stage, **row}, default=str)
        with open(self.path, "a") as f:
            f.write(line + "\n")
        print(line, flush=True)

    def check(self, name: str, ok: bool, **details) -> bool:
        self.row(check=name, ok=bool(ok), **details)
        if not ok:
            self.failed.append(name)
        return bool(ok)


def _sync() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------- env
def stage_env(rep: Report, dry: bool) -> None:
    import torch
    import triton

    import minigrad
    info = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
            "numpy": np.__version__, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "triton": triton.__version__, "minigrad": minigrad.__file__,
            **{k: os.environ.get(k) for k in ("TRITON_CACHE_DIR", "MINIGRAD_AUTOTUNE", "TRITON_INTERPRET",
                                                "MINIGRAD_TF32", "PYTHONPATH")}}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap,"
                              "clocks.max.sm", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=15)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        info["nvidia_smi"] = f"unavailable ({type(e).__name__})"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                    memory_gb=round(props.total_memory / 2 ** 30, 1))
    info["data"] = sorted(p.name for p in CARRY_DATA.iterdir()) if CARRY_DATA.exists() else "absent"
    rep.row(env=info)
    rep.check("minigrad imports from this checkout", str(Path(minigrad.__file__).resolve()).startswith(str(REPO)))
    cache = os.environ.get("TRITON_CACHE_DIR") or ""
    rep.check("TRITON_CACHE_DIR is outside the carried folder", not cache.startswith(str(REPO / ".gpu_carry")),
              cache=cache)
    if not dry:
        rep.check("torch sees a CUDA GPU", torch.cuda.is_available())
        rep.check("the Triton backend runs on it", minigrad.get_backend("cuda").storage_device.type == "cuda")


# ------------------------------------------------------------------------------ shared training
class FakeGraph:
    """The dry run's stand-in for a CUDA graph: capture runs the step (recording nothing), each
    replay runs it again and writes the result into the captured output's memory."""
    executes_on_capture = True

    def capture(self, fn):
        self.fn = fn
        self.out = fn()
        return self.out

    def replay(self):
        self.out.backend.copy_(self.out.data, self.fn().data)


def _case(name: str, dry: bool):
    """(train.py's TrainConfig for the preset, its GPTConfig, micro-batch B, dtype)."""
    from benchmarks.bench_train import case_config
    cfg, mcfg = case_config(name, "cuda", False)
    if dry:
        # few programs per launch: the interpreter runs a grid's programs one after another
        mcfg = dataclasses.replace(mcfg, n_layer=1, n_head=2, n_embd=16, block_size=8,
                                   vocab_size=60 if mcfg.vocab_size > 100 else mcfg.vocab_size)
        return cfg, mcfg, 2, "float32"
    return cfg, mcfg, cfg.batch_size, "bfloat16"


def _tokens(kind: str, V: int, dry: bool) -> tuple[np.ndarray, str]:
    """A token stream for the case: the carried data (.gpu_carry/data, gpu_check --prepare), or a
    synthetic one (a random sequence of 997 tokens repeated: learnable, so losses still fall)."""
    if not dry and kind == "gpt2" and (CARRY_DATA / "gpt2_tokens.npy").exists():
        return np.load(CARRY_DATA / "gpt2_tokens.npy").astype(np.int64), "tinyshakespeare as GPT-2 tokens"
    if not dry and kind == "char" and (CARRY_DATA / "tinyshakespeare.txt").exists():
        text = (CARRY_DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
        chars = sorted(set(text))
        if len(chars) <= V:
            table = {c: i for i, c in enumerate(chars)}
            return np.array([table[c] for c in text], np.int64), f"tinyshakespeare, {len(chars)} characters"
    rng = np.random.default_rng(7)
    return np.tile(rng.integers(0, V, 997), 400), "synthetic (a random 997-token sequence, repeated)"


def _batches(stream: np.ndarray, n: int, B: int, T: int, seed: int) -> list:
    from minigrad.training.data import fixed_batches
    return fixed_batches(stream, n, B, T, seed)


def _lrs(cfg, steps: int, warmup: int) -> list[float]:
    from minigrad.optim import cosine_with_warmup
    return [cosine_with_warmup(i, cfg.learning_rate, cfg.learning_rate / 10, warmup, steps) for i in range(steps)]


def _build_ours(mcfg, cfg, dtype: str):
    import minigrad
    from minigrad import fast
    from minigrad.models.gpt import GPT
    minigrad.manual_seed(SEED)
    model = GPT(mcfg, device="cuda", dtype=dtype)
    opt = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2),
                                     decay_embeddings=cfg.decay_embeddings)
    model, opt = fast.accelerate(model, opt)
    return model, opt


def _train_ours(mcfg, cfg, dtype, batches, lrs, warm: int, graphed: bool, dry: bool, rep: Report, label: str,
                start: Optional[list] = None):
    """Train from the seed's weights on `batches`: (model, per-step losses, ms/iter after `warm`
    steps, the GraphedStep or None). train.py's train_step (one micro-batch), clipping at 1.0.
    start: a list that receives the starting weights on the host and their decay-group names."""
    from minigrad import fast
    model, opt = _build_ours(mcfg, cfg, dtype)
    if start is not None:
        from benchmarks.torch_baseline import host_weights
        start += [host_weights(model), [n for n, _ in model.decay_groups(cfg.decay_embeddings)[0]]]
    model.train()
    B, T = batches[0][0].shape

    def train_step(xs, ys):
        losses = []
        for x, y in zip(xs, ys):
            _, loss = model(x, y, return_logits=False)
            loss.backward()
            losses.append(loss)
        if cfg.grad_clip > 0:
            fast.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return losses

    runner, notes = None, []
    if graphed:
        runner = fast.train_step_graph(train_step, model, opt, 1, B, T, log=notes.append,
                                       make_graph=FakeGraph if dry else None)
        if runner is None:
            raise RuntimeError(f"train_step_graph refused: {notes}")
    losses, t0 = [], time.perf_counter()
    for i, ((x, y), lr) in enumerate(zip(batches, lrs)):
        if i == warm:
            _sync()
            t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr
        if runner is not None:
            losses.append(runner(x[None], y[None]) * 1.0)      # a copy: the next replay overwrites it
        else:
            losses.append(train_step([x], [y])[0].detach())
    _sync()
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(batches) - warm)
    values = [float(v.item()) for v in losses]
    if graphed:
        rep.check(f"{label}: captured, no 'capture failed'", runner.graph is not None and runner.failed is None
                  and not any("capture failed" in n for n in notes), failed=runner.failed, notes=notes)
    return model, values, ms, runner


def _train_torch(mcfg, cfg, weights, decay_names, batches, lrs, warm: int, dry: bool):
    import torch

    from benchmarks.torch_baseline import TorchGPT, adamw, copy_from_minigrad
    device = "cpu" if dry else "cuda"
    torch.manual_seed(SEED)
    model = TorchGPT(mcfg).to(device)
    copy_from_minigrad(model, weights)
    model.train()
    opt = adamw(model, decay_names, cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device)
    losses, t0 = [], time.perf_counter()
    for i, ((x, y), lr) in enumerate(zip(batches, lrs)):
        if i == warm:
            _sync()
            t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not dry):
            _, loss = model(xt, yt)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    _sync()
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(batches) - warm)
    return [float(v) for v in losses], ms


def _free() -> None:
    import gc

    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------- gpt2
def stage_gpt2(rep: Report, dry: bool) -> None:
    import minigrad
    cfg, mcfg, B, dtype = _case("gpt2-124m", dry)
    steps, warm = (4, 2) if dry else (20, 5)
    stream, source = _tokens("gpt2", mcfg.vocab_size, dry)
    batches = _batches(stream, steps, B, mcfg.block_size, SEED)
    lrs = _lrs(cfg, steps, 1 if dry else 5)
    rep.row(case=f"{mcfg.n_layer}x{mcfg.n_head}x{mcfg.n_embd} T={mcfg.block_size} B={B} V={mcfg.vocab_size} "
                 f"{dtype}", data=source, steps=steps, lrs=lrs)
    device_name = minigrad.get_backend("cuda").device_name()
    tokens = B * mcfg.block_size

    start: list = []
    model, eager, ms_eager, _ = _train_ours(mcfg, cfg, dtype, batches, lrs, warm, False, dry, rep, "eager", start)
    mfu = model.estimate_mfu(tokens / ms_eager * 1000, device_name=device_name)
    rep.row(run="ours eager", losses=eager, ms_per_iter=round(ms_eager, 3), mfu=mfu)
    del model
    _free()
    model, graph, ms_graph, _ = _train_ours(mcfg, cfg, dtype, batches, lrs, warm, True, dry, rep, "graph")
    mfu_graph = model.estimate_mfu(tokens / ms_graph * 1000, device_name=device_name)
    rep.row(run="ours CUDA graph", losses=graph, ms_per_iter=round(ms_graph, 3), mfu=mfu_graph)
    del model
    _free()
    weights, decay = start                                   # the seed's weights, for torch
    ref, ms_torch = _train_torch(mcfg, cfg, weights, decay, batches, lrs, warm, dry)
    rep.row(run="torch eager (bf16 autocast)" if not dry else "torch eager (CPU, float32)", losses=ref,
            ms_per_iter=round(ms_torch, 3))

    tol_graph, tol0, tol_all = (1e-4, 1e-4, 1e-3) if dry else (0.05, 0.02, 0.15)
    diff_graph = float(np.max(np.abs(np.subtract(graph, eager))))
    diff_torch = np.abs(np.subtract(eager, ref))
    finite = all(np.isfinite(eager + graph + ref))
    rep.check("every loss is finite", finite)
    rep.check("graph == eager per step", diff_graph <= tol_graph, max_abs_diff=diff_graph, tol=tol_graph)
    rep.check("ours == torch at step 0 (same weights)", float(diff_torch[0]) <= tol0,
              diff=float(diff_torch[0]), tol=tol0)
    rep.check("ours ~ torch at every step", float(diff_torch.max()) <= tol_all,
              max_abs_diff=float(diff_torch.max()), tol=tol_all)
    if not dry:
        rep.check("the losses fall (> 1.0 in 20 steps)", eager[0] - eager[-1] > 1.0 and ref[0] - ref[-1] > 1.0,
                  ours=[eager[0], eager[-1]], torch=[ref[0], ref[-1]])
    rep.row(summary="gpt2 ms/iter", eager=round(ms_eager, 2), graph=round(ms_graph, 2), torch=round(ms_torch, 2),
            mfu_eager=mfu, mfu_graph=mfu_graph, speedup_graph=round(ms_eager / ms_graph, 3))


# ------------------------------------------------------------------------------------- dropout
def stage_dropout(rep: Report, dry: bool) -> None:
    import minigrad
    cfg, mcfg, B, dtype = _case("shakespeare-char", dry)
    steps, warm = (4, 2) if dry else (60, 10)
    stream, source = _tokens("char", mcfg.vocab_size, dry)
    split = int(0.9 * len(stream))
    batches = _batches(stream[:split], steps, B, mcfg.block_size, SEED)
    val = _batches(stream[split:], 1 if dry else 8, B, mcfg.block_size, SEED + 1)
    lrs = _lrs(cfg, steps, 1 if dry else 5)
    rep.row(case=f"{mcfg.n_layer}x{mcfg.n_head}x{mcfg.n_embd} T={mcfg.block_size} B={B} V={mcfg.vocab_size} "
                 f"dropout={mcfg.dropout} {dtype}", data=source, steps=steps)

    def val_loss(model) -> float:
        model.eval()
        with minigrad.no_grad():
            out = float(np.mean([model(x, y)[1].item() for x, y in val]))
        model.train()
        return out

    start, _ = _build_ours(mcfg, cfg, dtype)
    v0 = val_loss(start)
    del start
    results = {}
    for graphed in (False, True):
        label = "graph" if graphed else "eager"
        model, losses, ms, _ = _train_ours(mcfg, cfg, dtype, batches, lrs, warm, graphed, dry, rep, f"dropout {label}")
        results[label] = (val_loss(model), losses, ms)
        rep.row(run=f"ours {label} (dropout {mcfg.dropout})", losses=losses, val_loss=results[label][0],
                ms_per_iter=round(ms, 3))
        del model
        _free()
    (ve, le, mse), (vg, lg, msg) = results["eager"], results["graph"]
    rep.check("every loss is finite", all(np.isfinite(le + lg + [ve, vg, v0])))
    if not dry:
        rep.check("graph and eager reach the same val loss (within 0.1)", abs(ve - vg) <= 0.1,
                  val_start=v0, val_eager=ve, val_graph=vg)
        rep.check("both learn (val loss down by > 0.3)", v0 - ve > 0.3 and v0 - vg > 0.3,
                  val_start=v0, val_eager=ve, val_graph=vg)
        tail = 10
        rep.check("their last training losses agree on average (within 0.1)",
                  abs(np.mean(le[-tail:]) - np.mean(lg[-tail:])) <= 0.1,
                  eager=float(np.mean(le[-tail:])), graph=float(np.mean(lg[-tail:])))
    rep.row(summary="shakespeare-char ms/iter", eager=round(mse, 2), graph=round(msg, 2),
            speedup_graph=round(mse / msg, 3))


# ---------------------------------------------------------------------------------------- perf
def _time(fn, dry: bool) -> float:
    """Median ms of fn (triton.testing.do_bench on the GPU; a plain timer in the dry run)."""
    if dry:
        fn()
        t = time.perf_counter()
        fn()
        return 1000 * (time.perf_counter() - t)
    import triton.testing
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def stage_perf(rep: Report, dry: bool) -> None:
    import torch
    import torch.nn.functional as F

    from minigrad.kernels import attention as A
    from minigrad.kernels import matmul_auto
    device = "cpu" if dry else "cuda"
    dt = torch.float32 if dry else torch.bfloat16
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).to(dt)

    mm = [("fwd qkv (8192, 768) @ (768, 2304)", 8192, 768, 2304, False),
          ("fwd mlp.proj (8192, 3072) @ (3072, 768)", 8192, 3072, 768, False),
          ("dW c_fc x^T (768, 8192) @ dy (8192, 3072)", 768, 8192, 3072, True)]
    if dry:
        mm = [(name, 32, 24, 40, t) for name, _, _, _, t in mm]
    for name, M, K, N, transposed in mm:
        a = rand(K, M).t() if transposed else rand(M, K)              # x^T: a transposed view
        b = rand(K, N)
        ours = matmul_auto.matmul(a, b)
        ref = a @ b
        err = float((ours.float() - ref.float()).abs().max() / ref.float().abs().max())
        ok = rep.check(f"matmul {name}: ours == cuBLAS (relative to max |c|)", err <= (1e-5 if dry else 2e-2),
                       rel_err=err)
        if ok:
            t_ours, t_ref = _time(lambda: matmul_auto.matmul(a, b), dry), _time(lambda: a @ b, dry)
            rep.row(benchmark="matmul", case=name, dtype=str(dt), ours_ms=t_ours, baseline="cublas" if not dry
                    else "torch cpu", baseline_ms=t_ref, ratio=t_ref / t_ours,
                    tflops=2 * M * N * K / t_ours / 1e9, config="fixed (MINIGRAD_AUTOTUNE=0)", dry_run=dry)
    att = [(8, 12, 1024, 64), (64, 6, 256, 64)] if not dry else [(1, 2, 16, 16)]
    for Bq, H, T, D in att:
        q, k, v, do = rand(Bq, H, T, D), rand(Bq, H, T, D), rand(Bq, H, T, D), rand(Bq, H, T, D)
        scale = D ** -0.5
        o, lse = A.attention_fwd(q, k, v, True, scale)
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        err = float((o.float() - ref.float()).abs().max())
        case = f"causal B={Bq} H={H} T={T} D={D}"
        ok = rep.check(f"attention {case}: ours == SDPA", err <= (1e-4 if dry else 2e-2), max_abs_err=err)
        if not ok:
            continue
        flops = 2 * 2 * Bq * H * T * T * D / 2                       # causal: half the square

        def ours_fb():
            o2, l2 = A.attention_fwd(q, k, v, True, scale)
            A.attention_bwd(do, q, k, v, o2, l2, True, scale)
        qr, kr, vr = (t.detach().clone().requires_grad_(True) for t in (q, k, v))

        def sdpa_fb():
            F.scaled_dot_product_attention(qr, kr, vr, is_causal=True).backward(do)
        for what, f_ours, f_ref, fl in (("fwd", lambda: A.attention_fwd(q, k, v, True, scale),
                                         lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), flops),
                                        ("fwd+bwd", ours_fb, sdpa_fb, 3.5 * flops)):
            t_ours, t_ref = _time(f_ours, dry), _time(f_ref, dry)
            rep.row(benchmark="attention", case=f"{case} {what}", dtype=str(dt), ours_ms=t_ours,
                    baseline="sdpa" if not dry else "torch cpu", baseline_ms=t_ref, ratio=t_ref / t_ours,
                    tflops=fl / t_ours / 1e9, config="fixed (MINIGRAD_AUTOTUNE=0)", dry_run=dry)


def stage_kernels(rep: Report, dry: bool) -> None:
    from benchmarks import gpu_check_kernels
    gpu_check_kernels.run(rep, dry)


def stage_items(rep: Report, dry: bool) -> None:
    from benchmarks import gpu_check_items
    gpu_check_items.run(rep, dry)


STAGES = {"env": stage_env, "kernels": stage_kernels, "gpt2": stage_gpt2, "dropout": stage_dropout,
          "perf": stage_perf, "items": stage_items}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--dry_run", action="store_true")
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rep = Report(args.out, args.stage)
    t0 = time.perf_counter()
    try:
        STAGES[args.stage](rep, args.dry_run)
    except Exception:                                   # noqa: BLE001 - reported as a failed check
        rep.check(f"{args.stage} ran to the end", False, error=traceback.format_exc()[-4000:])
    rep.row(stage_done=round(time.perf_counter() - t0, 1), failed=rep.failed)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
