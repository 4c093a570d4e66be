"""Generating text with a language model: KV-cached decoding and the sampling loop.

    out = model.generate(idx, max_new_tokens=100, temperature=0.8, top_k=200)   # (B, T + n) ids
    for token in model.generate_stream(prompt_ids, 100): ...                     # one id at a time

`Generation` is a mixin of models/gpt.py's GPT: it needs a model whose forward takes
(idx, last_only=True, kv_cache=KVCache) and returns the next-token logits (B, 1, V), plus its
`config` (block_size, n_layer), `device` and `_check_idx`. Each step's logits come back to the host
and are sampled there (models/sampling.py: temperature, top-k, top-p, repetition penalty).

KV cache: per layer k, v (B, nh, S, hs), extended with minigrad.cat each step; the new token's
query attends to all S cached keys through is_causal=True's bottom-right alignment. Past
block_size tokens the cache is dropped and each step recomputes from the last block_size tokens
(the absolute positions a model was trained on end at block_size).
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

import minigrad
from minigrad import Tensor

from .sampling import sample_next, to_numpy_rng


class KVCache:
    """Keys and values of the tokens seen so far: per layer (B, nh, S, hs), S = self.length."""

    def __init__(self, n_layer: int):
        self.k: list[Optional[Tensor]] = [None] * n_layer
        self.v: list[Optional[Tensor]] = [None] * n_layer
        self.length = 0

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's k, v (B, nh, T, hs) to the layer's cache; return the full ones."""
        if self.k[layer] is not None:
            k = minigrad.cat([self.k[layer], k], dim=2)                  # (B, nh, S + T, hs)
            v = minigrad.cat([self.v[layer], v], dim=2)                  # (B, nh, S + T, hs)
        self.k[layer], self.v[layer] = k, v
        return k, v


class Generation:
    def _on_device(self, idx):
        """A prompt Tensor on another device is copied to the model's (prompts are small)."""
        return idx.to(self.device) if isinstance(idx, Tensor) and idx.device != self.device else idx

    def _next_logits(self, seq: np.ndarray, cache: Optional[KVCache], use_cache: bool):
        """Logits (B, V) float64 for the token after seq (B, S); returns them and the cache.

        With the cache: it holds every token of seq but the last (just sampled), so one token is
        forwarded. When the cache is empty or full (block_size tokens), the last block_size
        tokens of seq are forwarded afresh into a new cache."""
        bs = self.config.block_size
        if use_cache and cache is not None and cache.length + 1 <= bs:
            new = Tensor(seq[:, -1:], device=self.device)                # (B, 1)
            logits, _ = self(new, kv_cache=cache)                        # (B, 1, V)
        else:
            cache = KVCache(self.config.n_layer) if use_cache else None
            ctx = Tensor(np.ascontiguousarray(seq[:, -bs:]), device=self.device)  # (B, <=bs)
            logits, _ = self(ctx, last_only=True, kv_cache=cache)        # (B, 1, V)
        return logits.reshape(logits.shape[0], logits.shape[-1]).numpy().astype(np.float64), cache

    def _generate_steps(self, idx, max_new_tokens: int, temperature: float, top_k, top_p,
                        repetition_penalty: float, eos_token, generator,
                        use_cache: bool) -> Iterator[np.ndarray]:
        """Yield the next ids (B,) int64 once per step. Grad mode and train/eval are switched
        per step, never across a yield, so the caller's code between steps is unaffected."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
                or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        idx = self._check_idx(self._on_device(idx), "prompt")
        seq = idx.numpy().astype(np.int64)                               # (B, T0) on the host
        rng = to_numpy_rng(generator)
        finished = np.zeros(seq.shape[0], dtype=bool)
        cache = None
        for _ in range(int(max_new_tokens)):
            was_training = self.training
            self.eval()
            try:
                with minigrad.no_grad():
                    logits, cache = self._next_logits(seq, cache, use_cache)  # (B, V)
            finally:
                self.train(was_training)
            nxt = sample_next(logits, temperature, top_k, top_p, repetition_penalty,
                              prev_ids=seq, generator=rng)               # (B,)
            if eos_token is not None:
                nxt = np.where(finished, eos_token, nxt)                 # finished rows pad with eos
                finished |= nxt == eos_token
            seq = np.concatenate([seq, nxt[:, None]], axis=1)            # (B, S + 1)
            yield nxt
            if eos_token is not None and finished.all():
                return

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 repetition_penalty: float = 1.0, eos_token: Optional[int] = None,
                 generator=None, use_cache: bool = True) -> Tensor:
        """Continue each prompt of idx int64 (B, T) by up to max_new_tokens sampled ids and return
        the full ids (B, T + n) on the model's device.

        temperature 0 = greedy; top_k / top_p / repetition_penalty: see models/sampling.py (the
        penalty applies to every id already in the row: prompt and generated so far, as CTRL/HF).
        Each step's logits (B, vocab_size) are copied to the host and sampled there.
        eos_token: a row that emits it is finished (it then repeats eos_token); generation stops
        early once every row is. generator: None (minigrad's global generator), an int seed, a
        minigrad.Generator or a numpy Generator. Runs in eval mode without a graph; prompts
        longer than block_size are conditioned on their last block_size tokens.
        """
        idx = self._check_idx(self._on_device(idx), "prompt")
        steps = list(self._generate_steps(idx, max_new_tokens, temperature, top_k, top_p,
                                          repetition_penalty, eos_token, generator, use_cache))
        if not steps:
            return idx
        new = np.stack(steps, axis=1)                                    # (B, n)
        return minigrad.cat([idx, Tensor(new, device=self.device)], dim=1)  # (B, T + n)

    def generate_stream(self, idx, max_new_tokens: int, temperature: float = 1.0,
                        top_k: Optional[int] = None, top_p: Optional[float] = None,
                        repetition_penalty: float = 1.0, eos_token: Optional[int] = None,
                        generator=None, use_cache: bool = True) -> Iterator[int]:
        """Like generate for one prompt (B == 1), yielding each new token id (a Python int) as
        soon as it is sampled; the eos_token, if emitted, is yielded and then the stream ends."""
        if not isinstance(idx, Tensor):
            idx = np.asarray(idx)
            idx = idx[None] if idx.ndim == 1 else idx
        if idx.shape[0] != 1:
            raise ValueError(f"generate_stream takes one prompt (B == 1), got batch size "
                             f"{idx.shape[0]}; use generate() for batches")
        for nxt in self._generate_steps(idx, max_new_tokens, temperature, top_k, top_p,
                                        repetition_penalty, eos_token, generator, use_cache):
            yield int(nxt[0])
