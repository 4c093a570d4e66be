"""End-to-end CPU training benchmark: nanoGPT's small Shakespeare CPU run, ours vs torch eager.

    python -m benchmarks.bench_train_cpu                     # the full 2000 iterations (slow)
    python -m benchmarks.bench_train_cpu --max_iters=50      # a quick estimate
    python -m benchmarks.bench_train_cpu --threads=2         # BLAS / torch threads (default 1)

The configuration is nanoGPT's config/train_shakespeare_char.py with its README's CPU
overrides (n_layer 4, n_head 4, n_embd 128, block_size 64, batch_size 12, max_iters 2000,
lr_decay_iters 2000, dropout 0, lr 1e-3, min_lr 1e-4, warmup 100, beta2 0.99, weight decay 0.1,
grad clip 1, exact GELU (`--activation=gelu` for the tanh form), no biases, tied embeddings),
on Tiny Shakespeare, character level.

Both models start from the same weights (ours are copied into the torch model by name), see
the same batches (one seeded stream), follow the same learning-rate schedule and parameter
groups, and are trained side by side in one process, alternating chunks of `--chunk`
iterations so that a change in machine load hits both alike. The torch model is nanoGPT's
model.py in eager mode (benchmarks/torch_baseline.py: F.layer_norm,
F.scaled_dot_product_attention, F.gelu; torch's default AdamW on the CPU). A step is
forward + backward + clip + AdamW; evals are not timed. The final val loss of each is the mean
over `--final_eval_batches` fixed val batches (nanoGPT reports ~1.88 for this configuration
with its 20-batch eval).

Rows go to benchmarks/results/train-cpu.json; the markdown table is printed for docs/BENCHMARKS.md.
"""
from __future__ import annotations

import os
import sys


def _threads_from_argv(default: int = 1) -> int:
    for a in sys.argv[1:]:
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return default


# BLAS thread pools are sized when NumPy loads: set them first. One thread by default, because
# an oversubscribed OpenBLAS (a busy machine) spins and can be 5-10x slower than one thread.
_THREADS = _threads_from_argv()
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(_THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import minigrad  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from minigrad.optim import cosine_with_warmup  # noqa: E402
from minigrad.training.data import fixed_batches, get_batch, prepare_data  # noqa: E402
from minigrad.models.gpt import GPT, GPTConfig  # noqa: E402

CONFIG = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000,
              lr_decay_iters=2000, dropout=0.0, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
              beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0, eval_interval=250, eval_iters=20)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max_iters", type=int, default=CONFIG["max_iters"])
    ap.add_argument("--threads", type=int, default=_THREADS)
    ap.add_argument("--activation", default="gelu_exact", choices=("gelu_exact", "gelu"),
                    help="gelu_exact (erf, nanoGPT's nn.GELU()) or gelu (tanh approximation)")
    ap.add_argument("--chunk", type=int, default=25, help="iterations per turn when alternating")
    ap.add_argument("--final_eval_batches", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1337, help="init and batch-order seed (val batches fixed)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "tinyshakespeare.txt"))
    ap.add_argument("--data_cache", default=str(REPO / "data"))
    ap.add_argument("--no_write", action="store_true", help="print only; do not write the results file")
    args = ap.parse_args(argv)
    import torch

    from benchmarks.torch_baseline import TorchGPT, adamw, copy_from_minigrad
    torch.set_num_threads(args.threads)
    c = dict(CONFIG, max_iters=args.max_iters)
    B, T = c["batch_size"], c["block_size"]

    prep = prepare_data(args.data, "char", val_fraction=0.1, cache_dir=args.data_cache)
    mcfg = GPTConfig(block_size=T, vocab_size=prep.tokenizer.vocab_size, n_layer=c["n_layer"],
                     n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=False,
                     activation=args.activation, tie_weights=True, pad_vocab_multiple=1)
    minigrad.manual_seed(args.seed)
    ours = GPT(mcfg)
    opt = ours.configure_optimizers(c["weight_decay"], c["learning_rate"], (c["beta1"], c["beta2"]))
    theirs = TorchGPT(mcfg)
    copy_from_minigrad(theirs, ours)
    topt = adamw(theirs, [n for n, _ in ours.decay_groups()[0]], c["weight_decay"], c["learning_rate"],
                 (c["beta1"], c["beta2"]), "cpu")

    rng = np.random.default_rng(args.seed)
    batches = [get_batch(prep.train, B, T, rng) for _ in range(c["max_iters"])]   # the same for both
    val_batches = fixed_batches(prep.val, args.final_eval_batches, B, T, seed=2)

    def lr_at(it):
        return cosine_with_warmup(it, c["learning_rate"], c["min_lr"], c["warmup_iters"], c["lr_decay_iters"])

    def our_step(it):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batches[it]
        _, loss = ours(minigrad.tensor(x), minigrad.tensor(y))
        loss.backward()
        clip_grad_norm_(ours.parameters(), c["grad_clip"])
        opt.step()
        opt.zero_grad()
        return loss.item()

    def torch_step(it):
        for g in topt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batches[it]
        _, loss = theirs(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), c["grad_clip"])
        topt.step()
        topt.zero_grad(set_to_none=True)
        return loss.item()

    times = {"ours": [], "torch": []}
    losses = {"ours": [], "torch": []}
    it = 0
    t_start = time.time()
    while it < c["max_iters"]:
        end = min(it + args.chunk, c["max_iters"])
        for name, step in (("ours", our_step), ("torch", torch_step)):
            for i in range(it, end):
                t0 = time.perf_counter()
                losses[name].append(step(i))
                times[name].append(1000 * (time.perf_counter() - t0))
        it = end
        last = {k: (np.mean(losses[k][-args.chunk:]), np.median(times[k][-args.chunk:])) for k in times}
        print(f"iter {it}: loss ours {last['ours'][0]:.4f} torch {last['torch'][0]:.4f} | ms/step ours "
              f"{last['ours'][1]:.1f} torch {last['torch'][1]:.1f} | {time.time() - t_start:.0f}s", flush=True)

    ours.eval()
    with minigrad.no_grad():
        val_ours = float(np.mean([ours(x, y)[1].item() for x, y in val_batches]))
    with torch.no_grad():
        val_torch = float(np.mean([theirs(torch.from_numpy(x), torch.from_numpy(y))[1].item()
                                   for x, y in val_batches]))
    warm = slice(min(10, len(times["ours"]) - 1), None)            # skip the first steps (allocations)
    ours_ms = float(np.median(times["ours"][warm]))
    base_ms = float(np.median(times["torch"][warm]))

    from benchmarks import common
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    case = (f"shakespeare-char-cpu 4x4x128 T=64 B=12 {args.activation}, {c['max_iters']} iters, "
            f"{args.threads} thread(s)")
    row = {"benchmark": "train_cpu", "case": case, "dtype": "float32", "device": cpu,
           "ours_ms": ours_ms, "baseline": "torch-eager-cpu", "baseline_ms": base_ms,
           "ratio": base_ms / ours_ms, "final_val_loss_ours": val_ours, "final_val_loss_baseline": val_torch,
           "final_train_loss_ours": float(np.mean(losses["ours"][-50:])),
           "final_train_loss_baseline": float(np.mean(losses["torch"][-50:])),
           "tokens_per_s": B * T / (ours_ms / 1000), "baseline_tokens_per_s": B * T / (base_ms / 1000),
           "iters": c["max_iters"], "threads": args.threads,
           "versions": dict(common.versions(), numpy=np.__version__, minigrad=minigrad.__version__),
           "git_sha": common.git_sha(), "date": common.today()}
    print(json.dumps(row, indent=1))
    print("\n| case | ours ms/step | torch eager ms/step | torch/ours | val loss ours | val loss torch |")
    print("|---|---|---|---|---|---|")
    print(f"| {case} | {ours_ms:.1f} | {base_ms:.1f} | {base_ms / ours_ms:.2f} | {val_ours:.4f} "
          f"| {val_torch:.4f} |")
    if not args.no_write:
        path = Path(common.RESULTS_DIR) / "train-cpu.json"
        rows = json.loads(path.read_text()) if path.exists() else []
        rows = [r for r in rows if r.get("case") != case] + [row]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
