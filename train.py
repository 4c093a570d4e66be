"""Train a small GPT on text, from a raw file to checkpoints and samples. Read it top to bottom.

    python train.py                                    # Tiny Shakespeare, char-level, minutes on a CPU
    python train.py --data=my_books/ --tokenizer=bpe   # a folder of .txt files, BPE learned on them
    python train.py --preset=shakespeare-char          # nanoGPT's GPU config
    python train.py --out_dir=out --resume             # continue the run saved in out/

Settings are the fields of `TrainConfig` (nanoGPT's names), each settable as `--name=value`;
`--preset=NAME` first applies one of PRESETS, then the explicit settings win. On a GPU
(`--device=auto` finds one) the model runs on minigrad's Triton backend in bfloat16 with fp32
master weights in AdamW; on a CPU it runs on the NumPy backend in float32.

Each eval (every `eval_interval` iterations and at the end) measures the loss on fixed train
and val batches, appends one JSON line to out_dir/log.jsonl (and a row to log.csv), writes
ckpt_last.safetensors (and ckpt_best.safetensors when val improved), prints a sample, and
stops early after `patience` evals without improvement. `--resume` continues from
ckpt_last exactly: same weights, optimizer moments, data order and dropout masks.
Ctrl-C saves ckpt_last at the current step and prints the command that resumes (exit 130); a
NaN or infinite loss stops the run without saving (models/stops.py). Settings are checked
before any work (models/settings.py).

Data-parallel training on several GPUs or machines: `torchrun --nproc_per_node=N train.py ...`
(models/distributed.py; README "Multi-GPU and multi-node"). What it deliberately does not do:
model or pipeline parallelism, torch.compile-like graph capture, multiple data loaders. The
pieces live elsewhere: models/data.py (text -> token memmaps -> batches), models/checkpoint.py
(the checkpoint file), models/gpt.py (the model).
"""
from __future__ import annotations

import csv
import dataclasses
import gc
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, get_type_hints

import numpy as np

import minigrad
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import cosine_with_warmup
from minigrad.models.checkpoint import (CheckpointError, check_shapes, load_checkpoint, model_tensors,
                               optimizer_state_dict, optimizer_tensors, save_checkpoint)
from minigrad.models.cuda_graph import train_step_graph
from minigrad.models.data import DataError, fixed_batches, get_batch, prepare_data, tokenizer_to_json
from minigrad.models.distributed import DistributedError, setup_distributed
from minigrad.models.gpt import GPT, GPTConfig
from minigrad.models.loss_readback import DeferredLosses
from minigrad.models.run_dir import prepare_out_dir, read_log
from minigrad.models.settings import TRAIN_RULES, parse_config, resolve_device_dtype, validate_settings
from minigrad.models.stops import RunGuard, TrainingDiverged, TrainingInterrupted, resume_command


@dataclass
class TrainConfig:
    # I/O and data
    out_dir: str = "out"                # checkpoints, log.jsonl, log.csv, loss.png
    data: str = "shakespeare"           # "shakespeare", "tinystories", a .txt file or a folder of .txt
    data_cache: str = "data"            # downloads, tokenizers and token memmaps are cached here
    tokenizer: str = "char"             # "char", "bpe" (learned on the training split) or "gpt2"
    vocab_size: int = 8000              # for tokenizer=bpe (char and gpt2 have their own)
    gpt2_dir: str = ""                  # a folder with GPT-2's vocab.json + merges.txt (else downloaded)
    val_fraction: float = 0.1           # share of the text held out for validation
    split: str = "auto"                 # "auto", "document" (whole documents) or "tail" (see models/data.py)
    # model (see models/gpt.py's GPTConfig)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64                # context length
    dropout: float = 0.0
    bias: bool = False
    qkv_bias: bool = False
    activation: str = "gelu"            # "gelu" (tanh approx), "gelu_exact", "silu", "swiglu"
    norm: str = "layernorm"             # "layernorm" or "rmsnorm"
    pos: str = "learned"                # "learned" or "rope"
    tie_weights: bool = True
    pad_vocab_multiple: int = 1         # round the embedding rows up (64 suits GPU matmuls)
    # optimisation
    batch_size: int = 12
    grad_accum_steps: int = 1           # per rank: a step sees batch_size * grad_accum_steps * ranks sequences
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4                # the cosine decays to this floor
    warmup_iters: int = 100
    lr_decay_iters: int = 0             # 0: decay over max_iters
    weight_decay: float = 0.1
    decay_embeddings: bool = True       # weight decay on wte/wpe too, as nanoGPT (all 2-d weights)
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0              # 0: no clipping
    # evaluation, logging, samples
    eval_interval: int = 250
    eval_iters: int = 20                # batches per split per eval (fixed: drawn once)
    log_interval: int = 10              # progress line every N iterations
    patience: int = 0                   # stop after this many evals without a better val loss (0: never)
    sample_tokens: int = 200            # tokens printed at each eval (0: none)
    sample_prompt: str = ""             # "" starts from end-of-text (or a newline for char)
    progress: bool = True               # a live progress bar when stderr is a terminal
    plot: bool = True                   # out_dir/loss.png (needs matplotlib)
    wandb_log: bool = False             # log to Weights & Biases when wandb is installed
    wandb_project: str = "minigrad"
    # system
    device: str = "auto"                # "auto" (cuda when available), "cpu" or "cuda"
    cuda_graph: bool = True             # on a GPU: capture the training step once, replay it (models/cuda_graph.py)
    dtype: str = "auto"                 # "auto" (bf16 on cuda, fp32 on cpu), "float32", "bfloat16", "float64"
    seed: int = 1337
    dist_timeout: float = 600.0         # torchrun: seconds a rank waits for the others before it exits
    resume: bool = False                # continue from out_dir/ckpt_last.safetensors
    preset: str = ""                    # the preset this config came from (informational)


# Presets: the seed projects and the classic anchors. "source" and "expected" are documented in
# the README; sizes that take hours on a CPU say so there.
PRESETS: dict[str, dict[str, Any]] = {
    # nanoGPT's config/train_shakespeare_char.py (a GPU run: val loss ~1.47 after 5000 iters)
    "shakespeare-char": dict(
        data="shakespeare", tokenizer="char", n_layer=6, n_head=6, n_embd=384, block_size=256,
        dropout=0.2, batch_size=64, max_iters=5000, lr_decay_iters=5000, learning_rate=1e-3,
        min_lr=1e-4, beta2=0.99, warmup_iters=100, eval_interval=250, eval_iters=200,
        activation="gelu_exact"),
    # the same with nanoGPT README's CPU overrides (val loss ~1.88 after 2000 iters)
    "shakespeare-char-cpu": dict(
        data="shakespeare", tokenizer="char", n_layer=4, n_head=4, n_embd=128, block_size=64,
        dropout=0.0, batch_size=12, max_iters=2000, lr_decay_iters=2000, learning_rate=1e-3,
        min_lr=1e-4, beta2=0.99, warmup_iters=100, eval_interval=250, eval_iters=20,
        activation="gelu_exact"),
    # "got"-like: a shelf of books, BPE 8000, SiLU, 80/20 split
    "books": dict(
        tokenizer="bpe", vocab_size=8000, n_layer=3, n_head=4, n_embd=256, block_size=256,
        activation="silu", val_fraction=0.2, dropout=0.1, batch_size=32, max_iters=5000,
        learning_rate=6e-4, min_lr=6e-5, warmup_iters=200, eval_interval=250),
    # "hp"-like: GPT-2's vocabulary, qkv bias, early stopping
    "hp": dict(
        tokenizer="gpt2", n_layer=4, n_head=4, n_embd=256, block_size=128, qkv_bias=True,
        pad_vocab_multiple=64, dropout=0.1, batch_size=32, max_iters=5000, learning_rate=6e-4,
        min_lr=6e-5, warmup_iters=200, eval_interval=200, patience=5),
    # TinyStories: 6x6x384, GPT-2 vocab, tied weights, bf16, effective batch 32 x 32
    "tinystories": dict(
        data="tinystories", tokenizer="gpt2", n_layer=6, n_head=6, n_embd=384, block_size=128,
        tie_weights=True, pad_vocab_multiple=64, dtype="bfloat16", batch_size=32,
        grad_accum_steps=32, max_iters=5000, learning_rate=6e-4, min_lr=6e-5, warmup_iters=200,
        beta2=0.95, eval_interval=250, eval_iters=50),
    # "valyrian"-like: a tiny BPE (~500 tokens) on a small constructed language, heavy dropout
    "valyrian": dict(
        tokenizer="bpe", vocab_size=500, n_layer=4, n_head=4, n_embd=128, block_size=64,
        dropout=0.2, batch_size=32, max_iters=3000, learning_rate=1e-3, min_lr=1e-4,
        eval_interval=200),
    # GPT-2 small (124M) for throughput work: nanoGPT's train_gpt2.py hyperparameters
    "gpt2-124m": dict(
        tokenizer="gpt2", n_layer=12, n_head=12, n_embd=768, block_size=1024, bias=True,
        pad_vocab_multiple=64, dtype="bfloat16", batch_size=8, grad_accum_steps=8,
        max_iters=600000, lr_decay_iters=600000, learning_rate=6e-4, min_lr=6e-5,
        warmup_iters=2000, beta2=0.95, eval_interval=1000, eval_iters=20, sample_tokens=0),
}

MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias", "qkv_bias",
              "activation", "norm", "pos", "tie_weights", "pad_vocab_multiple")
# settings a resumed run must share with its checkpoint (the model and the data it saw)
FIXED_ON_RESUME = MODEL_KEYS + ("data", "tokenizer", "vocab_size", "val_fraction", "split")
# paths a resumed run takes from its own command line (or the defaults), never from the file:
# a checkpoint must not choose where a run writes or which files it reads besides its data
FROM_COMMAND_LINE = ("out_dir", "data_cache", "gpt2_dir")


# Settings are parsed, explained (--help) and checked in models/settings.py (shared with
# sample.py): parse_config, settings_help, validate_settings, resolve_device_dtype.


# ---------------------------------------------------------------------------------------------
# small helpers: RNG state, progress bar, logs, plot


def rng_state(data_rng: np.random.Generator) -> dict:
    py = random.getstate()
    return {"minigrad": minigrad.get_rng_state(), "data": data_rng.bit_generator.state,
            "python": [py[0], list(py[1]), py[2]]}


def set_rng_state(state: dict, data_rng: np.random.Generator) -> None:
    minigrad.set_rng_state(state["minigrad"])
    data_rng.bit_generator.state = state["data"]
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


class ProgressBar:
    """One self-rewriting line on a terminal; a plain line every `every` iterations otherwise."""

    def __init__(self, total: int, live: bool, every: int):
        self.total, self.live, self.every, self.t0 = total, live, max(1, every), time.time()

    def update(self, it: int, text: str) -> None:
        if self.live:
            frac = it / max(1, self.total)
            bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
            sys.stderr.write(f"\r{it:>6}/{self.total} [{bar}] {text}  ")
            sys.stderr.flush()
        elif it % self.every == 0:
            print(f"iter {it}: {text}")

    def clear(self) -> None:
        if self.live:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()


def append_logs(out_dir: Path, row: dict) -> None:
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    path = out_dir / "log.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def plot_losses(out_dir: Path) -> Optional[Path]:
    """out_dir/loss.png: train/val loss and val perplexity per eval (None without matplotlib)."""
    rows = read_log(out_dir)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(steps, [r["train_loss"] for r in rows], label="train")
    a.plot(steps, [r["val_loss"] for r in rows], label="val")
    a.set_xlabel("iteration"), a.set_ylabel("cross-entropy loss"), a.legend(), a.grid(alpha=0.3)
    b.plot(steps, [r["val_ppl"] for r in rows], color="C1")
    b.set_xlabel("iteration"), b.set_ylabel("val perplexity"), b.set_yscale("log"), b.grid(alpha=0.3)
    fig.suptitle(str(out_dir))
    fig.tight_layout()
    path = out_dir / "loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sample_text(model: GPT, tok, cfg: TrainConfig, device: str, seed: int) -> str:
    """A short sample from a fixed seed (its own generator: training's RNG streams are untouched)."""
    if cfg.sample_prompt:
        ids = tok.encode(cfg.sample_prompt)
    elif tok.eot_token is not None:
        ids = [tok.eot_token]
    else:
        ids = tok.encode("\n") if "\n" in getattr(tok, "stoi", {}) else [0]
    idx = minigrad.tensor([ids], dtype="int64", device=device)
    out = model.generate(idx, cfg.sample_tokens, temperature=0.8, top_k=200,
                         eos_token=tok.eot_token, generator=minigrad.Generator(seed))
    return tok.decode(out.numpy()[0, len(ids):].tolist())


# ---------------------------------------------------------------------------------------------
# the run


def main(argv: Optional[list[str]] = None) -> dict:
    """Train as the command line says; returns a summary (losses, steps, out_dir) for tests."""
    cfg, given = parse_config(TrainConfig, sys.argv[1:] if argv is None else list(argv), PRESETS)
    validate_settings(cfg, TRAIN_RULES)
    out_dir = prepare_out_dir(cfg.out_dir)      # writable, crash debris removed: before any work
    ckpt = None
    if cfg.resume:
        ckpt = load_checkpoint(out_dir / "ckpt_last.safetensors")
        saved = TrainConfig(**{k: v for k, v in ckpt.field("train_config", dict).items()
                               if k in get_type_hints(TrainConfig)})
        clash = [f"{k}={getattr(saved, k)!r} in the checkpoint but --{k}={getattr(cfg, k)!r}"
                 for k in sorted(given & set(FIXED_ON_RESUME)) if getattr(cfg, k) != getattr(saved, k)]
        if clash:
            raise CheckpointError(f"{ckpt.path.name}: cannot resume with a different model or data: "
                                  + "; ".join(clash))
        cfg = dataclasses.replace(saved, **{k: getattr(cfg, k) for k in given | {"resume"}
                                            | set(FROM_COMMAND_LINE)})
        validate_settings(cfg, TRAIN_RULES)         # the file's values pass the same checks
    device, dtype = resolve_device_dtype(cfg)
    ddp = setup_distributed(device, cfg.dist_timeout)    # torchrun: this process's rank (else a world of 1)

    # ---- data: text -> documents -> train/val split -> tokenizer -> cached uint16 memmaps
    with ddp.local_rank0_first():       # one process per machine tokenises; the others read its cache
        prep = prepare_data(cfg.data, cfg.tokenizer, cfg.vocab_size, cfg.val_fraction, cfg.seed,
                            cfg.data_cache, cfg.gpt2_dir or None, cfg.split)
    tok = prep.tokenizer
    tok_json = tokenizer_to_json(tok)
    if ckpt is not None and tok_json != ckpt.field("tokenizer", str):
        raise CheckpointError(f"{ckpt.path.name}: the tokenizer built from --data={cfg.data} differs from "
                              "the checkpoint's; resume needs the same data and tokenizer settings")
    print(f"data: {prep.meta['source']} -> {len(prep.train):,} train / {len(prep.val):,} val tokens, "
          f"{cfg.tokenizer} tokenizer with {tok.vocab_size} tokens ({prep.meta['split']} split)")
    # every batch is the global one (batch_size rows per rank); each rank keeps its own rows
    global_batch = cfg.batch_size * ddp.world_size
    eval_sets = {split: [ddp.local_rows(x, y) for x, y in
                         fixed_batches(arr, cfg.eval_iters, global_batch, cfg.block_size, cfg.seed + i)]
                 for i, (split, arr) in enumerate((("train", prep.train), ("val", prep.val)), start=1)}

    # ---- model and optimizer
    minigrad.manual_seed(cfg.seed)
    data_rng = np.random.default_rng(cfg.seed)
    mcfg = GPTConfig(vocab_size=tok.vocab_size, **{k: getattr(cfg, k) for k in MODEL_KEYS})
    model = GPT(mcfg, device=device, dtype=dtype)
    ddp.broadcast_parameters(model.parameters())         # every rank starts from rank 0's weights
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2),
                                           decay_embeddings=cfg.decay_embeddings)
    iter_num, best_val, bad_evals = 0, math.inf, 0
    if ckpt is not None:
        check_shapes(ckpt, {k: v.shape for k, v in model.state_dict().items()})
        model.load_state_dict(ckpt.section("model."))
        with ckpt.reading("optimizer"):
            optimizer.load_state_dict(optimizer_state_dict(ckpt))
        iter_num, best_val = ckpt.field("iter_num", int), float(ckpt.field("best_val_loss", (int, float)))
        bad_evals = int(ckpt.meta.get("bad_evals", 0))
        with ckpt.reading("rng"):
            set_rng_state(ckpt.field("rng", dict), data_rng)
        print(f"resumed from {ckpt.path} at iteration {iter_num} (best val loss {best_val:.4f})")
    ddp.seed_dropout_per_rank()
    grads = ddp.gradient_reducer(model.parameters())     # averages .grad over ranks, bucket by bucket
    n_params = model.get_num_params()
    print(f"model: {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} dims, context {cfg.block_size}: "
          f"{n_params / 1e6:.2f}M parameters on {device} in {dtype}")
    tokens_per_iter = global_batch * cfg.block_size * cfg.grad_accum_steps     # all ranks together
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    device_name = minigrad.get_backend(device).device_name()     # for the MFU's peak FLOP/s

    wandb = None
    if cfg.wandb_log and ddp.is_main:
        try:
            import wandb
            wandb.init(project=cfg.wandb_project, name=out_dir.name, config=dataclasses.asdict(cfg),
                       resume="allow")
        except ImportError:
            print("note: --wandb_log=true but wandb is not installed; logging to log.jsonl only")
            wandb = None

    def evaluate() -> dict:
        model.eval()
        with minigrad.no_grad():
            out = {s: ddp.mean([model(x, y)[1].item() for x, y in batches])       # over all ranks
                   for s, batches in eval_sets.items()}
        model.train()
        return out

    def save(path_name: str) -> None:
        otensors, oinfo = optimizer_tensors(optimizer.state_dict())
        meta = {"train_config": dataclasses.asdict(cfg), "model_config": mcfg.to_dict(),
                "tokenizer": tok_json, "optimizer": oinfo, "iter_num": iter_num,
                "best_val_loss": best_val, "bad_evals": bad_evals, "rng": rng_state(data_rng),
                "dtype": dtype, "minigrad_version": minigrad.__version__}
        save_checkpoint(out_dir / path_name, {**model_tensors(model.state_dict()), **otensors}, meta)

    # Everything alive now (model, optimizer state, data, eval batches) lives for the whole run:
    # freezing it keeps Python's full garbage collections from re-scanning it. Without this a
    # ~100 ms pause hits every ~60 GPU steps (docs/perf-notes.md).
    gc.freeze()

    # ---- the loop: eval (and checkpoint) every eval_interval, then one optimizer step
    losses: dict[int, float] = {}
    evals: list[dict] = []
    bar = ProgressBar(cfg.max_iters, cfg.progress and sys.stderr.isatty() and ddp.is_main, cfg.log_interval)
    start_iter, stopped_early = iter_num, False
    guard = RunGuard(out_dir, resume_command(cfg, FROM_COMMAND_LINE)).start()   # Ctrl-C, NaN loss
    # one CUDA graph replay per step where it applies (one process, a GPU), else None
    graph_step = (train_step_graph(model, optimizer, cfg.grad_clip, cfg.grad_accum_steps, cfg.batch_size,
                                   cfg.block_size) if cfg.cuda_graph and device == "cuda" and ddp.world_size == 1
                  else None)
    # step losses stay on the device until read in a batch: no host sync inside a step on a GPU
    pending = DeferredLosses(cfg.log_interval, immediate=device != "cuda" or graph_step is not None)

    def read_losses() -> float:
        """Read the pending steps' losses (one device sync), average over ranks, stop on NaN;
        returns the newest (NaN when none was pending)."""
        newest = math.nan
        for step, value in pending.read():
            losses[step] = newest = ddp.mean([value])       # the global batch's loss
            guard.check_finite(step, newest)
        return newest

    shown_loss = math.nan               # the newest loss read back, for the progress line
    t_last, tok_since, tps = time.time(), 0, 0.0
    model.train()
    while True:
        last = iter_num >= cfg.max_iters
        if (iter_num % cfg.eval_interval == 0 or last) and not (ckpt is not None and iter_num == start_iter):
            bar.clear()
            read_losses()               # every step's loss is checked before a checkpoint is written
            ev = evaluate()
            guard.check_finite(iter_num, ev["train"] + ev["val"], "eval loss")   # never save NaN weights
            lr = cosine_with_warmup(iter_num, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, decay_iters)
            row = {"step": iter_num, "train_loss": ev["train"], "val_loss": ev["val"],
                   "val_ppl": math.exp(min(ev["val"], 50.0)), "train_ppl": math.exp(min(ev["train"], 50.0)),
                   "lr": lr, "tokens_per_s": tps, "tokens": iter_num * tokens_per_iter,
                   "time": time.time()}
            evals.append(row)
            if wandb is not None:
                wandb.log(row, step=iter_num)
            improved = ev["val"] < best_val
            if improved:
                best_val, bad_evals = ev["val"], 0
            elif iter_num > start_iter:
                bad_evals += 1
            print(f"step {iter_num}: train loss {ev['train']:.4f}, val loss {ev['val']:.4f} "
                  f"(ppl {row['val_ppl']:.2f}){' *' if improved else ''}")
            if (iter_num > start_iter or last) and ddp.is_main:
                save("ckpt_last.safetensors")
                if improved:
                    save("ckpt_best.safetensors")
            if ddp.is_main:
                append_logs(out_dir, row)       # after its checkpoint: a crash never logs unsaved steps
            if cfg.sample_tokens > 0 and ddp.is_main:
                text = sample_text(model, tok, cfg, device, cfg.seed)
                print(f"---- sample ----\n{text}\n----------------")
            if cfg.patience and bad_evals >= cfg.patience and not last:
                print(f"early stopping: val loss has not improved for {bad_evals} evals (best {best_val:.4f})")
                stopped_early = True
                break
            t_last = time.time()
            tok_since = 0
        if last:
            break
        if ddp.any(guard.requested):            # Ctrl-C on any rank: all save this step, stop together
            read_losses()
            if ddp.is_main:
                save("ckpt_last.safetensors")
            raise guard.interrupted(iter_num, out_dir / "ckpt_last.safetensors")

        lr = cosine_with_warmup(iter_num, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, decay_iters)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro_losses = []               # device scalars, read back later (DeferredLosses)
        if graph_step is not None:      # forward, backward, clip and AdamW of every micro-batch: one replay
            xs, ys = zip(*(get_batch(prep.train, global_batch, cfg.block_size, data_rng)
                           for _ in range(cfg.grad_accum_steps)))
            micro_losses.append(graph_step(np.stack(xs), np.stack(ys)))     # their mean
        for micro in range(cfg.grad_accum_steps if graph_step is None else 0):
            x, y = ddp.local_rows(*get_batch(prep.train, global_batch, cfg.block_size, data_rng))  # (B, T) each
            # NumPy ids: checked on the host (no read-back); the loss-only forward skips the logits
            _, loss = model(x, y, return_logits=False)
            grads.overlap_backward(micro == cfg.grad_accum_steps - 1)   # the last backward starts all-reduces
            (loss / cfg.grad_accum_steps).backward()
            micro_losses.append(loss)
        grads.average()                 # wait for them: every rank now holds the mean gradient
        if cfg.grad_clip > 0 and graph_step is None:
            clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if graph_step is None:
            optimizer.step()
            optimizer.zero_grad()
        pending.add(iter_num, micro_losses)
        iter_num += 1
        if pending.due(iter_num):
            shown_loss = read_losses()

        tok_since += tokens_per_iter
        dt = time.time() - t_last
        tps = tok_since / dt if dt > 0 else 0.0
        mfu = model.estimate_mfu(tps / ddp.world_size, device_name=device_name) if device == "cuda" else None
        bar.update(iter_num, f"loss {shown_loss:.4f} | lr {lr:.2e} | {tps:,.0f} tok/s"
                   + (f" | mfu {100 * mfu:.1f}%" if mfu else "")
                   + f" | {1000 * dt / max(1, tok_since // tokens_per_iter):.0f} ms/iter")
    bar.clear()
    read_losses()                       # an early stop leaves none pending; this is the safety net
    guard.close()
    gc.unfreeze()                       # main() may be called again in this process (tests)
    if cfg.plot and ddp.is_main:
        plot_losses(out_dir)
    if wandb is not None:
        wandb.finish()
    ddp.close()
    final = evals[-1] if evals else {}
    return {"out_dir": str(out_dir), "iters": iter_num, "best_val_loss": best_val,
            "final_val_loss": final.get("val_loss"), "final_train_loss": final.get("train_loss"),
            "losses": losses, "evals": evals, "stopped_early": stopped_early, "device": device,
            "dtype": dtype, "params": n_params, "tokens_per_s": tps, "config": dataclasses.asdict(cfg)}


if __name__ == "__main__":
    try:
        main()
    except TrainingInterrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        print("\ninterrupted without saving (Ctrl-C before the training loop, or a second Ctrl-C)",
              file=sys.stderr)
        sys.exit(TrainingInterrupted.exit_code)
    except DistributedError as err:
        # The process group is broken (a peer died or stalled). Interpreter shutdown would tear
        # down gloo/NCCL with a stalled peer still connected, which can abort the process
        # (std::terminate, exit -6) after this message: say it, flush, leave without teardown.
        print(f"error: {err}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    except (DataError, CheckpointError, TrainingDiverged, ValueError, OSError) as err:
        sys.exit(f"error: {err}")
