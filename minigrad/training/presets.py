"""train.py's named presets: the seed projects and the classic anchors, `--preset=NAME`.

A preset is a dict of TrainConfig settings applied before the command line's (which win). Each
one's source and expected result are in the README ("Presets"); sizes that take hours on a CPU
say so there.
"""
from __future__ import annotations

from typing import Any

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
        eval_interval=200, patience=5),        # a small corpus overfits early: stop when val stalls
    # GPT-2 small (124M) for throughput work: nanoGPT's train_gpt2.py hyperparameters
    "gpt2-124m": dict(
        tokenizer="gpt2", n_layer=12, n_head=12, n_embd=768, block_size=1024, bias=True,
        pad_vocab_multiple=64, dtype="bfloat16", batch_size=8, grad_accum_steps=8,
        max_iters=600000, lr_decay_iters=600000, learning_rate=6e-4, min_lr=6e-5,
        warmup_iters=2000, beta2=0.95, eval_interval=1000, eval_iters=20, sample_tokens=0),
}
