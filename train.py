"""Train a small GPT on text, from a raw file to checkpoints and samples. Read it top to bottom.

    python train.py                                    # Tiny Shakespeare, char-level, minutes on a CPU
    python train.py --data=my_books/ --tokenizer=bpe   # a folder of .txt files, BPE learned on them
    python train.py --preset=shakespeare-char          # nanoGPT's GPU config
    python train.py --out_dir=out --resume             # continue the run saved in out/

Settings are the fields of `TrainConfig` (nanoGPT's names), `--name=value`; `--preset=NAME` applies
a preset (minigrad/training/presets.py) first. On a GPU (`--device=auto` finds one) the model runs on
minigrad's Triton backend in bfloat16 with fp32 master weights; on a CPU on NumPy in float32.

The step is the readable one: forward and backward over the micro-batches, clip, AdamW. `--fast`
(the default) first lets the performance layer (fast/) swap in fused modules and a multi-tensor
AdamW, and on a GPU replay the step as a CUDA graph: the same numbers in fewer launches;
`--fast=false` runs exactly the code a reader sees in minigrad/ and models/gpt.py.

Each eval (every `eval_interval` iterations and at the end) measures train and val loss on fixed
batches, logs a row (out_dir/log.jsonl, log.csv), writes ckpt_last (and ckpt_best when val
improved), prints a sample, and stops early after `patience` evals without improvement. `--resume`
continues exactly; Ctrl-C saves and prints the command that resumes; a NaN loss stops without
saving. The machinery (settings, data, checkpoints, the run folder, stops, data-parallel training
with `torchrun --nproc_per_node=N train.py`) lives in minigrad/training/.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

import minigrad
from minigrad.models import GPT, GPTConfig
from minigrad.models.sampling import sample_text
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import cosine_with_warmup
from minigrad.training.checkpoint import (CheckpointError, check_model_config, check_same_tokenizer,
                                          finished_run, restore_training_state, save_training_state)
from minigrad.training.data import DataError, fixed_batches, get_batch, prepare_data, tokenizer_to_json
from minigrad.training.distributed import setup_distributed
from minigrad.training.loss_readback import DeferredLosses
from minigrad.training.pretrained import start_from
from minigrad.training.progress import ProgressBar
from minigrad.training.run_dir import RunLog, release_run_folder, start_run
from minigrad.training.settings import resolve_device_dtype, run_length
from minigrad.training.stops import RunGuard, TrainingDiverged, resume_command, run
from minigrad.training.threads import use_threads

# the performance layer (fast/) is optional: without the folder train.py runs the readable path
fast = importlib.import_module("minigrad.fast") if importlib.util.find_spec("minigrad.fast") else None


@dataclass
class TrainConfig:
    # I/O and data
    out_dir: str = "out"                # checkpoints, log.jsonl, log.csv, loss.png
    data: str = "shakespeare"           # "shakespeare", "tinystories", a .txt file or a folder of .txt
    data_cache: str = "data"            # downloads, tokenizers and token memmaps are cached here
    tokenizer: str = "char"             # "char", "bpe" (learned on the training split), "gpt2" or a saved one's path
    bpe_pattern: str = "gpt4"           # tokenizer=bpe: how text is split before merging ("gpt4" or "gpt2")
    vocab_size: int = 8000              # for tokenizer=bpe (char and gpt2 have their own)
    gpt2_dir: str = ""                  # a folder with GPT-2's vocab.json + merges.txt (else downloaded)
    val_data: str = ""                  # validation text (a file or folder) instead of a share of --data
    val_fraction: float = 0.1           # share of the text held out for validation
    text_field: str = "text"            # .jsonl input: each line's text is under this key
    split: str = "auto"                 # "auto", "document" (whole documents) or "tail" (see training/data.py)
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
    epochs: float = 0.0                 # >0: train this many passes over the training tokens (sets max_iters)
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
    log_interval: int = 10              # progress line (and loss read-back) every N iterations
    patience: int = 0                   # stop after this many evals without a better val loss (0: never)
    sample_tokens: int = 200            # tokens printed at each eval (0: none)
    sample_prompt: str = ""             # "" starts from end-of-text (or a newline for char)
    progress: bool = True               # a live progress bar when stderr is a terminal
    plot: bool = True                   # out_dir/loss.png (needs matplotlib)
    wandb_log: bool = False             # log to Weights & Biases when wandb is installed
    wandb_project: str = "minigrad"
    # system
    device: str = "auto"                # "auto" (cuda when available), "cpu" or "cuda"
    threads: str = "auto"               # BLAS threads on the CPU: auto (1: safe on a shared machine), all, N
    fast: bool = True                   # the performance layer (fast/): fused modules, multi-tensor AdamW
    cuda_graph: bool = True             # with fast, on a GPU: capture the training step once, replay it
    dtype: str = "auto"                 # "auto" (bf16 on cuda, fp32 on cpu), "float32", "bfloat16", "float64"
    seed: int = 1337
    dist_timeout: float = 600.0         # torchrun: seconds a rank waits for the others before it exits
    resume: bool = False                # continue from out_dir/ckpt_last.safetensors
    init_from: str = "scratch"          # "scratch", "resume" (= --resume) or PATH: a HF GPT-2 folder or a checkpoint
    overwrite: bool = False             # start over in an out_dir that holds a run (replaces it)
    preset: str = ""                    # apply a preset's settings first (training/presets.py); yours win


MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias", "qkv_bias",
              "activation", "norm", "pos", "tie_weights", "pad_vocab_multiple")


def main(argv: list[str] | None = None) -> dict:
    """Train as the command line says; returns a summary (losses, steps, out_dir) for tests."""
    # the settings checked and the out_dir claimed before any work; --resume: the checkpoint and its settings
    cfg, given, out_dir, ckpt = start_run(TrainConfig, sys.argv[1:] if argv is None else argv, MODEL_KEYS)
    device, dtype = resolve_device_dtype(cfg)
    threads = use_threads(cfg.threads)                   # None: a BLAS we cannot steer
    ddp = setup_distributed(device, cfg.dist_timeout)    # torchrun: this process's rank (else a world of 1)

    # ---- fine-tuning (--init_from=PATH): the model's shape, its weights and its tokenizer come from PATH
    cfg, weights, tokenizer = start_from(cfg, given, ckpt, MODEL_KEYS)   # else (cfg, None, cfg.tokenizer)

    # ---- data: text -> documents -> train/val split -> tokenizer -> cached uint16 memmaps
    with ddp.local_rank0_first():       # one process per machine tokenises; the others read its cache
        data = prepare_data(cfg.data, tokenizer, cfg.vocab_size, cfg.val_fraction, cfg.seed, cfg.data_cache,
                            cfg.gpt2_dir or None, cfg.split, cfg.val_data, cfg.text_field, cfg.bpe_pattern)
    tok, tok_json = data.tokenizer, tokenizer_to_json(data.tokenizer)
    if ckpt is not None:
        check_same_tokenizer(ckpt, tok_json, cfg.data)
    print(f"data: {data.meta['source']} -> {len(data.train):,} train / {len(data.val):,} val tokens, "
          f"{cfg.tokenizer} tokenizer with {tok.vocab_size} tokens ({data.meta['split']} split)")
    B, T, accum = cfg.batch_size * ddp.world_size, cfg.block_size, cfg.grad_accum_steps   # B: all ranks
    tokens_per_iter = B * T * accum                  # all ranks together
    cfg = run_length(cfg, given, len(data.train), tokens_per_iter)     # --epochs: passes -> max_iters
    if ckpt is not None and finished_run(ckpt, cfg.max_iters):        # says so; nothing to train
        ddp.close()
        release_run_folder(out_dir)
        return {"out_dir": str(out_dir), "iters": ckpt.field("iter_num", int), "evals": [], "losses": {}}
    eval_sets = {s: [ddp.local_rows(x, y) for x, y in fixed_batches(arr, cfg.eval_iters, B, T, cfg.seed + i, s)]
                 for i, (s, arr) in enumerate((("train", data.train), ("val", data.val)), start=1)}

    # ---- model and optimizer
    minigrad.manual_seed(cfg.seed)
    data_rng = np.random.default_rng(cfg.seed)
    mcfg = GPTConfig(vocab_size=tok.vocab_size, **{k: getattr(cfg, k) for k in MODEL_KEYS})
    if ckpt is not None:
        check_model_config(ckpt, mcfg)                   # from the stored shapes, before allocating
    model = GPT(mcfg, device=device, dtype=dtype)
    if weights is not None:
        model.load_state_dict(weights)
    ddp.broadcast_parameters(model.parameters())         # every rank starts from rank 0's weights
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2),
                                           decay_embeddings=cfg.decay_embeddings)
    iter_num, best_val, bad_evals = 0, math.inf, 0
    if ckpt is not None:
        iter_num, best_val, bad_evals = restore_training_state(ckpt, model, optimizer, data_rng)
        print(f"resumed from {ckpt.path} at iteration {iter_num} (best val loss {best_val:.4f})")
    clip, use_fast = clip_grad_norm_, cfg.fast and fast is not None
    if cfg.fast and fast is None:
        print("note: the performance layer (fast/) is not installed: running the readable path")
    if use_fast:                        # fused modules, multi-tensor AdamW and clipping: same numbers
        model, optimizer = fast.accelerate(model, optimizer)
        clip = fast.clip_grad_norm_
    grads = ddp.gradient_reducer(model.parameters())     # averages .grad over ranks, bucket by bucket
    n_params = model.get_num_params()
    print(f"model: {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} dims, context {T}: "
          f"{n_params / 1e6:.2f}M parameters on {device} in {dtype}"
          + (f", {threads} BLAS thread{'s' * (threads != 1)}" if device == "cpu" and threads else ""))
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    device_name = minigrad.get_backend(device).device_name()     # for the MFU's peak FLOP/s

    def train_step(xs, ys) -> list:
        """One optimizer step over the micro-batches xs[i], ys[i] (B, T); returns their losses."""
        losses = []
        for micro, (x, y) in enumerate(zip(xs, ys)):
            _, loss = model(x, y, return_logits=False)
            grads.overlap_backward(micro == accum - 1)     # the last backward starts the all-reduces
            (loss / accum).backward()
            losses.append(loss)
        grads.average()                 # wait for them: every rank now holds the mean gradient
        if cfg.grad_clip > 0:
            clip(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return losses

    graphed = None                      # one CUDA-graph replay per step where it applies
    if use_fast and cfg.cuda_graph and device == "cuda" and ddp.world_size == 1:
        graphed = fast.train_step_graph(train_step, model, optimizer, accum, B, T)

    def evaluate() -> dict:
        model.eval()
        with minigrad.no_grad():
            out = {s: ddp.mean([model(x, y)[1].item() for x, y in batches])       # over all ranks
                   for s, batches in eval_sets.items()}
        model.train()
        return out

    def save(name: str, row: dict | None = None) -> None:     # the optimizer's state: for --resume only
        save_training_state(out_dir / name, model, optimizer, data_rng, name == "ckpt_last.safetensors",
                            train_config=dataclasses.asdict(cfg), model_config=mcfg.to_dict(),
                            tokenizer=tok_json, iter_num=iter_num, best_val_loss=best_val,
                            bad_evals=bad_evals, dtype=dtype, log_row=row)

    # ---- the loop: eval (and checkpoint) every eval_interval, then one optimizer step
    losses, evals = {}, []              # step -> training loss; one row per eval
    bar = ProgressBar(cfg.max_iters, cfg.progress and sys.stderr.isatty() and ddp.is_main, cfg.log_interval,
                      tokens_per_iter)
    start_iter, stopped_early = iter_num, False
    run_log = RunLog(out_dir, cfg.plot, ddp.is_main, cfg.wandb_log and cfg.wandb_project,   # log.jsonl/csv,
                     dataclasses.asdict(cfg))                    # steps.csv, loss.png (and wandb)
    guard = RunGuard(out_dir, resume_command(cfg)).start()   # Ctrl-C, NaN loss
    # a loss read makes the host wait for the GPU: read them every log_interval steps (and before
    # every checkpoint), not every step; on the CPU (or a graph's one output) every step
    pending = DeferredLosses(cfg.log_interval, immediate=device != "cuda" or graphed is not None)

    def read_losses() -> float:         # into losses, averaged over ranks, NaN stops; -> the newest
        return pending.read_into(losses, average=lambda v: ddp.mean([v]), check=guard.check_finite)

    shown_loss, tps = math.nan, 0.0
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
                   "lr": lr, "tokens_per_s": tps, "tokens": iter_num * tokens_per_iter, "time": time.time()}
            evals.append(row)
            improved = ev["val"] < best_val
            if improved:
                best_val, bad_evals = ev["val"], 0
            elif iter_num > start_iter:
                bad_evals += 1
            print(f"step {iter_num}: train loss {ev['train']:.4f}, val loss {ev['val']:.4f} "
                  f"(ppl {row['val_ppl']:.2f}){' *' if improved else ''}")
            if (iter_num > start_iter or last) and ddp.is_main:
                save("ckpt_last.safetensors", row)
                if improved:
                    save("ckpt_best.safetensors", row)
            run_log.eval(row, losses)           # after its checkpoint: a crash never logs unsaved steps
            if cfg.sample_tokens > 0 and ddp.is_main:
                print(f"---- sample ----\n{sample_text(model, tok, cfg.sample_prompt, cfg.sample_tokens, cfg.seed)}"
                      "\n----------------")
            if cfg.patience and bad_evals >= cfg.patience and not last:
                print(f"early stopping: val loss has not improved for {bad_evals} evals (best {best_val:.4f})")
                stopped_early = True
                break
            bar.restart()
        if last:
            break
        stop = ddp.agree_on_stop(guard.signum if guard.requested else 0)    # the same on every rank
        if stop:                                # Ctrl-C/SIGTERM on any rank: all save this step, stop together
            guard.signum = stop                 # and exit 128 + that signal, also where none arrived
            read_losses()
            if ddp.is_main:
                save("ckpt_last.safetensors")
            run_log.close(losses)
            raise guard.interrupted(iter_num, out_dir / "ckpt_last.safetensors")

        lr = cosine_with_warmup(iter_num, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, decay_iters)
        for group in optimizer.param_groups:
            group["lr"] = lr
        xs, ys = zip(*(ddp.local_rows(*get_batch(data.train, B, T, data_rng)) for _ in range(accum)))
        ddp.seed_dropout_for_step(cfg.seed, iter_num)   # torchrun: each rank's masks from (seed, step, rank)
        # a graph replays the whole step (every micro-batch, clip, AdamW) and returns their mean loss
        micro_losses = [graphed(np.stack(xs), np.stack(ys))] if graphed else train_step(xs, ys)
        pending.add(iter_num, micro_losses)     # device scalars, read back later
        iter_num += 1
        if pending.due(iter_num):
            shown_loss = read_losses()
        tps = bar.update(iter_num, shown_loss, lr, lambda tps: model.estimate_mfu(
            tps / ddp.world_size, device_name=device_name) if device == "cuda" else None)
    bar.clear()
    read_losses()                       # an early stop leaves none pending; this is the safety net
    guard.close()
    run_log.close(losses)               # the steps since the last eval, and loss.png once more
    ddp.close()
    release_run_folder(out_dir)
    final = evals[-1] if evals else {}
    return {"out_dir": str(out_dir), "iters": iter_num, "best_val_loss": best_val,
            "final_val_loss": final.get("val_loss"), "final_train_loss": final.get("train_loss"),
            "losses": losses, "evals": evals, "stopped_early": stopped_early, "device": device,
            "dtype": dtype, "params": n_params, "tokens_per_s": tps, "config": dataclasses.asdict(cfg)}


if __name__ == "__main__":
    run(main, errors=(DataError, CheckpointError, TrainingDiverged, ValueError, OSError))
