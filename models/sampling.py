"""Next-token sampling: pure functions on one step's logits (B, V).

The pipeline `sample_next` applies, in this order (the order Hugging Face uses):

1. repetition penalty (CTRL, Keskar et al. 2019): for every id already in a row's context,
   a positive logit is divided by the penalty and a negative one multiplied by it;
2. temperature: logits / temperature (a temperature so small that this overflows shifts each
   row by its max first: it then samples like greedy); temperature == 0 means greedy argmax;
3. top-k: keep exactly the k largest logits (ties broken toward the lower id), -inf the rest;
4. top-p (nucleus): keep the smallest set of most-likely tokens whose cumulative probability
   reaches top_p; the most likely token is always kept;
5. draw one id per row by inverse-CDF sampling with a NumPy Generator.

Sampling happens on the host in float64: one step's logits are small (B x V numbers), so the
copy is cheap next to the forward pass, and host-side draws are identical on every backend for
one seed. A token whose logit is -inf after filtering has probability exactly 0 and is never
drawn (the inverse CDF only lands where the CDF rises).

Inputs may be minigrad Tensors or NumPy arrays; every function returns a new float64 NumPy
array and leaves its input alone. This file does not run the model (see models/gpt.py).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np


def as_numpy_logits(logits) -> np.ndarray:
    """A (B, V) float64 copy of `logits` (a minigrad Tensor, NumPy array or nested list)."""
    arr = logits.numpy() if hasattr(logits, "numpy") and not isinstance(logits, np.ndarray) \
        else np.asarray(logits)
    arr = np.array(arr, dtype=np.float64, copy=True)
    if arr.ndim != 2:
        raise ValueError(f"expected logits of shape (B, V), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError("logits have an empty vocabulary dimension (V == 0)")
    return arr


def apply_repetition_penalty(logits, prev_ids, penalty: float) -> np.ndarray:
    """CTRL repetition penalty. logits (B, V); prev_ids (B, S) ids already in each row's context.

    For each id in prev_ids[b] (counted once however often it occurs): logit > 0 -> logit /
    penalty, logit <= 0 -> logit * penalty. penalty == 1 is the identity; penalty > 1 makes
    repeats less likely.
    """
    out = as_numpy_logits(logits)
    if penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty}")
    if penalty == 1.0 or prev_ids is None:
        return out
    ids = prev_ids.numpy() if hasattr(prev_ids, "numpy") and not isinstance(prev_ids, np.ndarray) \
        else np.asarray(prev_ids)
    ids = np.asarray(ids, dtype=np.int64).reshape(out.shape[0], -1)     # (B, S)
    B, V = out.shape
    for b in range(B):
        seen = np.unique(ids[b])
        seen = seen[(seen >= 0) & (seen < V)]          # ids outside the logits (e.g. padding) skip
        vals = out[b, seen]
        out[b, seen] = np.where(vals > 0, vals / penalty, vals * penalty)
    return out


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """logits / temperature (temperature > 0; use greedy() for temperature 0).

    A temperature so small that the division overflows (1e-300) would send the largest logits to
    +inf, and the softmax to inf - inf = nan. Then each row is shifted by its max first, which
    changes no probability but keeps every result <= 0: the other logits go to -inf, and it
    samples like greedy. (Only then: a shift rounds, and can make two nearly equal logits equal.)"""
    if temperature <= 0:
        raise ValueError(f"apply_temperature needs temperature > 0, got {temperature} "
                         "(temperature 0 means greedy: use greedy())")
    x = as_numpy_logits(logits)
    with np.errstate(over="ignore"):
        out = x / float(temperature)
        if np.isposinf(out).any() and not np.isposinf(x).any():         # the division overflowed
            m = x.max(axis=-1, keepdims=True)                           # (B, 1)
            out = (x - np.where(np.isfinite(m), m, 0.0)) / float(temperature)
    return out


def top_k_filter(logits, k: Optional[int]) -> np.ndarray:
    """Keep the k largest logits of each row (exactly k: ties go to the lower id), -inf the rest.

    k None or k >= V keeps everything.
    """
    out = as_numpy_logits(logits)
    if k is None:
        return out
    k = int(k)
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    V = out.shape[1]
    if k >= V:
        return out
    # a stable descending sort: among equal logits the lower id comes first
    order = np.argsort(-out, axis=1, kind="stable")                     # (B, V)
    drop = order[:, k:]                                                 # (B, V - k)
    np.put_along_axis(out, drop, -np.inf, axis=1)
    return out


def softmax(logits) -> np.ndarray:
    """Row softmax in float64; rows that are all -inf raise (nothing could be sampled)."""
    x = as_numpy_logits(logits)
    m = x.max(axis=1, keepdims=True)                                    # (B, 1)
    if not np.all(np.isfinite(m)):
        raise ValueError("every token of a row was excluded (all logits -inf or nan)")
    e = np.exp(x - m)
    return e / e.sum(axis=1, keepdims=True)


def top_p_filter(logits, top_p: Optional[float]) -> np.ndarray:
    """Nucleus filtering: keep the smallest set of most-likely tokens whose cumulative probability
    is >= top_p (ties in probability broken toward the lower id), -inf the rest.

    A token is kept when the probability mass strictly before it (in descending order) is still
    below top_p, so the most likely token is always kept. top_p None or >= 1 keeps everything.
    """
    out = as_numpy_logits(logits)
    if top_p is None or top_p >= 1.0:
        return out
    if top_p <= 0.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    probs = softmax(out)                                                # (B, V)
    order = np.argsort(-probs, axis=1, kind="stable")                   # (B, V)
    sorted_p = np.take_along_axis(probs, order, axis=1)                 # (B, V)
    mass_before = np.cumsum(sorted_p, axis=1) - sorted_p                # exclusive cumsum
    keep_sorted = (mass_before < top_p) & (sorted_p > 0)
    keep_sorted[:, 0] = True
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    out[~keep] = -np.inf
    return out


def greedy(logits) -> np.ndarray:
    """argmax of each row -> (B,) int64 (the lowest id among equal maxima)."""
    x = as_numpy_logits(logits)
    if np.isnan(x).any():
        raise ValueError("logits contain nan")
    return np.argmax(x, axis=1).astype(np.int64)


def sample_from_probs(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of probs (B, V) by inverse CDF -> (B,) int64.

    The CDF only rises at tokens with probability > 0, and the uniform draw u is scaled into
    [0, cdf[-1]), so a zero-probability token can never be returned (not even by rounding).
    """
    probs = np.asarray(probs, dtype=np.float64)
    cdf = np.cumsum(probs, axis=1)                                      # (B, V)
    u = rng.random(probs.shape[0]) * cdf[:, -1]                         # (B,) in [0, total)
    out = np.empty(probs.shape[0], dtype=np.int64)
    for b in range(probs.shape[0]):
        # first index whose cdf exceeds u: cdf jumps there, so its probability is > 0
        out[b] = np.searchsorted(cdf[b], u[b], side="right")
    return out


def to_numpy_rng(generator=None) -> np.random.Generator:
    """A NumPy Generator from: None (minigrad's global generator), an int seed, a
    minigrad.Generator, or a numpy Generator (used as is)."""
    if generator is None:
        from minigrad.random import default_generator
        return default_generator().rng
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)):
        return np.random.default_rng(int(generator))
    if hasattr(generator, "rng") and isinstance(generator.rng, np.random.Generator):
        return generator.rng
    raise TypeError(f"generator must be None, an int seed, a minigrad.Generator or a "
                    f"numpy.random.Generator, got {type(generator).__name__}")


def filter_logits(logits, temperature: float = 1.0, top_k: Optional[int] = None,
                  top_p: Optional[float] = None, repetition_penalty: float = 1.0,
                  prev_ids=None) -> np.ndarray:
    """Steps 1-4 of the pipeline (temperature must be > 0 here): the logits sample_next draws
    from, with excluded tokens at -inf. (B, V) -> (B, V) float64."""
    x = apply_repetition_penalty(logits, prev_ids, repetition_penalty)
    x = apply_temperature(x, temperature)
    x = top_k_filter(x, top_k)
    return top_p_filter(x, top_p)


def sample_next(logits, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, repetition_penalty: float = 1.0,
                prev_ids: Optional[Union[np.ndarray, Sequence]] = None,
                generator=None) -> np.ndarray:
    """Pick the next id of each row of logits (B, V) -> (B,) int64 NumPy array.

    temperature 0 -> greedy argmax (after the repetition penalty; top_k/top_p do not change
    the argmax). generator: see to_numpy_rng.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return greedy(apply_repetition_penalty(logits, prev_ids, repetition_penalty))
    x = filter_logits(logits, temperature, top_k, top_p, repetition_penalty, prev_ids)
    return sample_from_probs(softmax(x), to_numpy_rng(generator))


def sample_text(model, tok, prompt: str, max_new_tokens: int, seed: int) -> str:
    """A short sample of `model` for a human to read during training: `prompt` (or, when empty,
    end-of-text, else a newline) continued at temperature 0.8, top_k 200, from `seed` (its own
    generator, so training's random streams are untouched). tok: any tokenizer with encode,
    decode and eot_token (train.py's)."""
    import minigrad

    if prompt:
        ids = tok.encode(prompt)
    elif tok.eot_token is not None:
        ids = [tok.eot_token]
    else:
        ids = tok.encode("\n") if "\n" in getattr(tok, "stoi", {}) else [0]
    idx = minigrad.tensor([ids], dtype="int64", device=model.device)
    out = model.generate(idx, max_new_tokens, temperature=0.8, top_k=200,
                         eos_token=tok.eot_token, generator=minigrad.Generator(seed))
    return tok.decode(out.numpy()[0, len(ids):].tolist())
