"""A whole training run, timed: ours (train.py) or the same recipe in torch, eager or compiled.

    python -m benchmarks.bench_train_run --impl=ours --preset=shakespeare-char
    python -m benchmarks.bench_train_run --impl=torch-compile --preset=shakespeare-char
    python -m benchmarks.bench_train_run --impl=torch --preset=shakespeare-char --max_iters=50 --device=cpu

For the claim "the shakespeare-char preset reaches val loss <= 1.50 on the GPU, with its wall
time next to a torch run of the same configuration on the same GPU". Every --key=value other
than --impl and --no_write is a train.py setting (TrainConfig, presets included), passed through.

- `ours` runs train.py's main() itself (sample_tokens=0, plot and progress bar off unless given;
  out_dir a temporary folder unless given). train.py writes ckpt_last (and ckpt_best when val
  improves) at every eval and has no switch to skip that, so the saves are wrapped in a timer
  (they still happen) and reported as ckpt_s; wall_s_without_ckpt = wall_s - ckpt_s. Its
  train-only time comes from train.py's own eval log: the tokens/s of each interval between
  two evals is measured from the end of one eval to the last step before the next, so
  interval tokens / interval tokens/s is exactly the training time of that interval.
- `torch` / `torch-compile` run the same recipe with benchmarks/torch_baseline.py: the same
  config (parse_config over train.py's TrainConfig and presets), data (models.data.prepare_data), initial
  weights (our GPT's initialisation for cfg.seed, copied by name), batch stream
  (np.random.default_rng(seed) + get_batch), fixed eval batches (seeds seed+1 / seed+2),
  cosine LR schedule (minigrad.optim.cosine_with_warmup), decay/no-decay groups (our
  decay_groups with decay_embeddings), gradient accumulation, clipping, AdamW (fused on CUDA),
  bf16 autocast on CUDA (fp32 parameters), eval cadence (every eval_interval and at the end)
  and early stopping (patience). No checkpoints, no samples. Training and evals are timed apart
  (a synchronize at each boundary); the loss is read back only every log_interval steps.

Reported: wall_s (everything: data preparation from its cache, model build, compilation,
evals), train_s, ms per iteration, tokens/s (train-only), steady tokens/s (median over the
intervals after the first, i.e. without compilation/autotuning), val loss at each eval, final
and best val loss, iterations, device, versions, date. One row per implementation goes to
benchmarks/results/train-run-<device>.json (docs/DESIGN.md's fields: ours_ms / baseline_ms are ms
per training iteration; a torch row is paired with the ours row of the same settings when
there is one, in whichever order they ran). A markdown line is printed. Progress lines are
flushed as they come, so a run cut off at a time limit still shows how far it got.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import minigrad  # noqa: E402
import train  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.bench_train import device_label  # noqa: E402
from minigrad.optim import cosine_with_warmup  # noqa: E402
from minigrad.training.data import fixed_batches, get_batch, prepare_data  # noqa: E402
from minigrad.models.gpt import GPT, GPTConfig  # noqa: E402
from minigrad.training.presets import PRESETS  # noqa: E402
from minigrad.training.settings import parse_config, resolve_device_dtype  # noqa: E402
from train import MODEL_KEYS, TrainConfig  # noqa: E402

IMPLS = ("ours", "torch", "torch-compile")
DEFAULTS = ["--sample_tokens=0", "--plot=false", "--progress=false"]   # the user's settings win
TARGETS = {"shakespeare-char": 1.50}           # the val loss the preset is expected to reach
NOT_IN_CASE = {"preset", "out_dir", "data_cache", "gpt2_dir", "sample_tokens", "plot", "progress",
               "log_interval", "wandb_log", "wandb_project", "device"}


# ---------------------------------------------------------------------------------------------
# ours: train.py as it is


def run_ours(argv: list[str]) -> dict:
    """train.main(argv), timed, with its checkpoint saves timed apart."""
    saves: list[float] = []
    real_save = train.save_training_state

    def timed_save(*a, **kw):
        t = time.perf_counter()
        real_save(*a, **kw)
        saves.append(time.perf_counter() - t)

    train.save_training_state = timed_save
    try:
        t0 = time.perf_counter()
        s = train.main(argv)
        wall = time.perf_counter() - t0
    finally:
        train.save_training_state = real_save
    c = s["config"]
    tokens_per_iter = c["batch_size"] * c["block_size"] * c["grad_accum_steps"]
    intervals = []                                        # (iterations, seconds) between evals
    for prev, e in zip(s["evals"], s["evals"][1:]):
        if e["tokens_per_s"] > 0:
            n = e["step"] - prev["step"]
            intervals.append((n, n * tokens_per_iter / e["tokens_per_s"]))
    return {"iters": s["iters"], "wall_s": wall, "train_s": sum(t for _, t in intervals),
            "intervals": intervals, "ckpt_s": sum(saves), "ckpt_saves": len(saves),
            "evals": [{"step": e["step"], "train_loss": e["train_loss"], "val_loss": e["val_loss"]}
                      for e in s["evals"]],
            "device": s["device"], "dtype": s["dtype"], "params": s["params"],
            "stopped_early": s["stopped_early"]}


# ---------------------------------------------------------------------------------------------
# torch: the same recipe


def run_torch(cfg: TrainConfig, compiled: bool) -> dict:
    """train.py's loop over benchmarks/torch_baseline.py's model (see the module docstring)."""
    import torch
    import torch._dynamo  # noqa: F401  (the first optimizer imports it: seconds, not counted, as imports)

    from benchmarks.torch_baseline import TorchGPT, adamw, copy_from_minigrad
    t0 = time.perf_counter()
    device, dtype = resolve_device_dtype(cfg)
    cuda = device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True      # as nanoGPT (matters for float32 runs only)
        torch.backends.cudnn.allow_tf32 = True
    prep = prepare_data(cfg.data, cfg.tokenizer, cfg.vocab_size, cfg.val_fraction, cfg.seed,
                        cfg.data_cache, cfg.gpt2_dir or None, cfg.split)
    eval_sets = {split: fixed_batches(arr, cfg.eval_iters, cfg.batch_size, cfg.block_size, cfg.seed + i)
                 for i, (split, arr) in enumerate((("train", prep.train), ("val", prep.val)), start=1)}
    minigrad.manual_seed(cfg.seed)
    data_rng = np.random.default_rng(cfg.seed)
    mcfg = GPTConfig(vocab_size=prep.tokenizer.vocab_size, **{k: getattr(cfg, k) for k in MODEL_KEYS})
    init = GPT(mcfg)                                      # on the host: train.py's initial weights
    model = TorchGPT(mcfg).to(device)
    copy_from_minigrad(model, init)
    decay = [n for n, _ in init.decay_groups(cfg.decay_embeddings)[0]]
    n_params = init.get_num_params()
    del init
    opt = adamw(model, decay, cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device)
    torch.manual_seed(cfg.seed)                           # dropout masks
    net = torch.compile(model) if compiled else model
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if dtype == "bfloat16" else nullcontext
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.grad_accum_steps

    def to_device(a: np.ndarray):
        t = torch.from_numpy(a)
        return t.pin_memory().to(device, non_blocking=True) if cuda else t

    def sync() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def evaluate() -> dict:
        net.eval()
        with torch.no_grad(), autocast():
            out = {s: float(np.mean([net(to_device(x), to_device(y))[1].item() for x, y in batches]))
                   for s, batches in eval_sets.items()}
        net.train()
        return out

    iter_num, best_val, bad_evals, stopped_early = 0, math.inf, 0, False
    evals, intervals = [], []
    train_s = eval_s = 0.0
    mark, mark_iter = sync(), 0                           # start of the current training interval
    setup_s = mark - t0
    net.train()
    while True:
        last = iter_num >= cfg.max_iters
        if iter_num % cfg.eval_interval == 0 or last:
            now = sync()
            if iter_num > mark_iter:
                intervals.append((iter_num - mark_iter, now - mark))
            train_s += now - mark
            ev = evaluate()
            eval_s += time.perf_counter() - now
            evals.append({"step": iter_num, "train_loss": ev["train"], "val_loss": ev["val"]})
            improved = ev["val"] < best_val
            if improved:
                best_val, bad_evals = ev["val"], 0
            elif iter_num > 0:
                bad_evals += 1
            print(f"step {iter_num}: train loss {ev['train']:.4f}, val loss {ev['val']:.4f}"
                  f"{' *' if improved else ''} | train {train_s:.1f} s, evals {eval_s:.1f} s", flush=True)
            if cfg.patience and bad_evals >= cfg.patience and not last:
                print(f"early stopping: val loss has not improved for {bad_evals} evals", flush=True)
                stopped_early = True
                break
            mark, mark_iter = sync(), iter_num
        if last:
            break
        lr = cosine_with_warmup(iter_num, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, decay_iters)
        for group in opt.param_groups:
            group["lr"] = lr
        for _ in range(cfg.grad_accum_steps):
            x, y = get_batch(prep.train, cfg.batch_size, cfg.block_size, data_rng)   # (B, T) each
            with autocast():
                _, loss = net(to_device(x), to_device(y))
            (loss / cfg.grad_accum_steps).backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        iter_num += 1
        if iter_num % cfg.log_interval == 0:
            dt = time.perf_counter() - mark
            print(f"iter {iter_num}: loss {loss.item():.4f} | lr {lr:.2e} | "
                  f"{(iter_num - mark_iter) * tokens_per_iter / dt:,.0f} tok/s", flush=True)
    return {"iters": iter_num, "wall_s": time.perf_counter() - t0, "train_s": train_s,
            "eval_s": eval_s, "setup_s": setup_s, "intervals": intervals, "evals": evals,
            "device": device, "dtype": dtype, "params": n_params, "stopped_early": stopped_early}


# ---------------------------------------------------------------------------------------------
# rows


def describe(cfg: TrainConfig, given: set) -> str:
    """The run's settings in words: preset, shape, batch, iterations and every override (a
    --data path by its file name, so the same text in another folder is the same case)."""
    head = (f"{cfg.preset or 'custom'} {cfg.n_layer}x{cfg.n_head}x{cfg.n_embd} T={cfg.block_size} "
            f"B={cfg.batch_size}x{cfg.grad_accum_steps} {cfg.max_iters} iters")
    preset = PRESETS.get(cfg.preset, {})
    extra = [f"--{k}={Path(cfg.data).name if k == 'data' else getattr(cfg, k)}"
             for k in sorted(given - NOT_IN_CASE) if k not in preset or getattr(cfg, k) != preset[k]]
    return " ".join([head] + extra)


def make_row(impl: str, cfg: TrainConfig, given: set, r: dict) -> dict:
    tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.grad_accum_steps
    steady = [n * tokens_per_iter / t for n, t in r["intervals"][1:] if t > 0]
    ms_per_iter = 1000 * r["train_s"] / max(1, r["iters"])
    vals = [e["val_loss"] for e in r["evals"]]
    row = {"benchmark": "train_run", "case": f"{describe(cfg, given)} [{impl}]", "dtype": r["dtype"],
           "device": device_label(r["device"]), "impl": impl,
           "ours_ms": round(ms_per_iter, 3) if impl == "ours" else None,
           "baseline": None if impl == "ours" else impl,
           "baseline_ms": None if impl == "ours" else round(ms_per_iter, 3), "ratio": None,
           "wall_s": round(r["wall_s"], 2), "train_s": round(r["train_s"], 2),
           "tokens_per_s": round(r["iters"] * tokens_per_iter / r["train_s"], 1) if r["train_s"] else None,
           "tokens_per_s_steady": round(float(np.median(steady)), 1) if steady else None,
           "iters": r["iters"], "params": r["params"], "stopped_early": r["stopped_early"],
           "final_val_loss": vals[-1] if vals else None, "best_val_loss": min(vals) if vals else None,
           "val_losses": [[e["step"], round(e["val_loss"], 5)] for e in r["evals"]],
           "train_losses": [[e["step"], round(e["train_loss"], 5)] for e in r["evals"]]}
    if impl == "ours":
        row.update(ckpt_s=round(r["ckpt_s"], 2), ckpt_saves=r["ckpt_saves"],
                   wall_s_without_ckpt=round(r["wall_s"] - r["ckpt_s"], 2),
                   other_s=round(r["wall_s"] - r["train_s"], 2))   # evals, checkpoints, setup
    else:
        row.update(eval_s=round(r["eval_s"], 2), setup_s=round(r["setup_s"], 2))
    if cfg.preset in TARGETS and vals:
        row.update(target_val_loss=TARGETS[cfg.preset], reached_target=bool(min(vals) <= TARGETS[cfg.preset]))
    row.update(versions=common.versions_cached(), git_sha=common.git_sha_cached(), date=common.today())
    return row


def pair(row: dict, ours: dict) -> dict:
    """A torch row with the ours row of the same settings: ours_ms, ratio and the wall times."""
    out = dict(row, ours_ms=ours["ours_ms"], ours_wall_s=ours["wall_s"],
               ours_wall_s_without_ckpt=ours.get("wall_s_without_ckpt"))
    out["ratio"] = common.round_sig(out["baseline_ms"] / ours["ours_ms"]) if ours["ours_ms"] else None
    out["wall_ratio"] = common.round_sig(out["wall_s"] / ours["wall_s"]) if ours["wall_s"] else None
    return out


def paired_rows(row: dict) -> list[dict]:
    """`row` and the rows of the results file it pairs with (updated), ready for write_rows."""
    path = Path(common.results_path("train-run", row["device"]))
    existing = json.loads(path.read_text()) if path.exists() else []
    base = row["case"].rsplit(" [", 1)[0]
    same = [r for r in existing
            if r.get("case", "").rsplit(" [", 1)[0] == base and r.get("dtype") == row["dtype"]]
    if row["impl"] == "ours":
        return [row] + [pair(r, row) for r in same if r.get("impl") != "ours"]
    ours = [r for r in same if r.get("impl") == "ours"]
    return [pair(row, ours[0]) if ours else row]


def markdown(row: dict) -> str:
    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)
    ms = row["ours_ms"] if row["impl"] == "ours" else row["baseline_ms"]
    line = (f"| {row['case']} | {row['device']} | {row['iters']} | {fmt(row['wall_s'], '.1f')} | "
            f"{fmt(row['train_s'], '.1f')} | {fmt(ms, '.2f')} | {fmt(row['tokens_per_s'], ',.0f')} | "
            f"{fmt(row['final_val_loss'], '.4f')} | {fmt(row['best_val_loss'], '.4f')} |")
    head = ("| run | device | iters | wall s | train s | ms/iter | tokens/s | final val | best val |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    return head + line


def run(impl: str, settings: list[str]) -> dict:
    """One run of `impl` with train.py settings `settings` -> its result row (not yet paired)."""
    cfg, given = parse_config(TrainConfig, DEFAULTS + settings, PRESETS)
    print(f"bench_train_run: {impl}, {describe(cfg, given)}", flush=True)
    if impl == "ours":
        with tempfile.TemporaryDirectory(prefix="bench_train_run_") as tmp:
            out = [] if "out_dir" in given else [f"--out_dir={tmp}"]
            r = run_ours(DEFAULTS + out + settings)
    else:
        r = run_torch(cfg, compiled=impl == "torch-compile")
    return make_row(impl, cfg, given, r)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--impl", required=True, choices=IMPLS)
    ap.add_argument("--no_write", action="store_true", help="print only; do not write the results file")
    args, settings = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)                  # train.py's own lines too, when piped
    row = run(args.impl, settings)
    rows = paired_rows(row)
    print(json.dumps(rows[0], indent=1), flush=True)
    print("\n" + markdown(rows[0]), flush=True)
    for other in rows[1:] if row["impl"] == "ours" else rows:
        if other.get("ratio") is not None:
            print(f"\n{other['impl']} vs ours: ms/iter ratio {other['ratio']:.2f}, wall-time ratio "
                  f"{other['wall_ratio']:.2f} (above 1: ours is faster)", flush=True)
    if "reached_target" in row:
        print(f"best val loss {row['best_val_loss']:.4f}: target {row['target_val_loss']:.2f} "
              f"{'reached' if row['reached_target'] else 'NOT reached'}", flush=True)
    if not args.no_write:
        print(f"wrote {common.write_rows(rows, name='train-run')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
