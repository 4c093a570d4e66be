"""models/sampling.py: filters never let an excluded token through, the maths of each step, and
seeded determinism. Excluded sets are computed here independently of the implementation."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import minigrad
from minigrad.models.sampling import (apply_repetition_penalty, filter_logits, greedy, sample_from_probs,
                             sample_next, softmax, top_k_filter, top_p_filter)


def _expected_top_k(row: np.ndarray, k: int) -> set:
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))       # ties: lower id first
    return set(order[:k])


def _expected_top_p(row: np.ndarray, p: float) -> set:
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    order = sorted(range(len(row)), key=lambda i: (-probs[i], i))
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return kept


def _draw_many(logits, n, **kw):
    rng = np.random.default_rng(0)
    return np.stack([sample_next(logits, generator=rng, **kw) for _ in range(n)])   # (n, B)


def test_top_k_never_emits_excluded():
    logits = np.random.default_rng(1).normal(size=(4, 30)) * 3
    draws = _draw_many(logits, 500, top_k=5, temperature=2.0)
    for b in range(4):
        allowed = _expected_top_k(logits[b], 5)
        assert set(draws[:, b]) <= allowed
        assert len(set(draws[:, b])) > 1                 # it does sample, not argmax
    ties = np.zeros((1, 10))
    assert set(_draw_many(ties, 300, top_k=3)[:, 0]) == {0, 1, 2}
    assert np.isfinite(top_k_filter(logits, 5)).sum(axis=1).tolist() == [5] * 4
    np.testing.assert_array_equal(top_k_filter(logits, 100), logits)   # k >= V keeps all


def test_top_p_never_emits_excluded():
    logits = np.random.default_rng(2).normal(size=(4, 40)) * 2
    for p in (0.05, 0.5, 0.9):
        filtered = top_p_filter(logits, p)
        draws = _draw_many(logits, 300, top_p=p)
        for b in range(4):
            allowed = _expected_top_p(logits[b], p)
            assert set(np.flatnonzero(np.isfinite(filtered[b]))) == allowed
            assert set(draws[:, b]) <= allowed
    # a tiny top_p keeps exactly the most likely token
    assert (_draw_many(logits, 50, top_p=1e-9) == logits.argmax(1)).all()


@pytest.mark.parametrize("probs,top_p,kept", [
    ([0.5, 0.25, 0.25], 0.5, [0]),            # the first token alone reaches top_p exactly
    ([0.5, 0.25, 0.25], 0.5000001, [0, 1]),
    ([0.5, 0.25, 0.25], 0.75, [0, 1]),         # the first two reach it exactly
    ([0.25, 0.5, 0.25], 0.75, [0, 1]),         # order by probability, then the lower id
    ([0.25, 0.25, 0.25, 0.25], 0.5, [0, 1]),   # ties go to the lower ids
])
def test_top_p_boundary_keeps_the_smallest_set(probs, top_p, kept):
    """Cumulative mass that equals top_p exactly stops the set (issue 13). These probabilities
    are powers of two, so their logs, the softmax and the cumulative sums are exact in float64."""
    filtered = top_p_filter(np.log([probs]), top_p)
    assert np.flatnonzero(np.isfinite(filtered[0])).tolist() == kept
    assert set(_draw_many(np.log([probs]), 200, top_p=top_p)[:, 0]) == set(kept)


def test_top_k_and_top_p_combined():
    logits = np.random.default_rng(3).normal(size=(3, 25))
    draws = _draw_many(logits, 400, top_k=8, top_p=0.6, temperature=0.7)
    for b in range(3):
        scaled = logits[b] / 0.7
        kept = _expected_top_k(scaled, 8)
        masked = np.where(np.isin(np.arange(25), list(kept)), scaled, -np.inf)
        assert set(draws[:, b]) <= _expected_top_p(masked, 0.6)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 20)),
              elements=st.floats(-30, 30, allow_nan=False)),
       st.one_of(st.none(), st.integers(1, 25)),
       st.one_of(st.none(), st.floats(0.01, 1.0)),
       st.floats(0.1, 3.0), st.integers(0, 2 ** 32 - 1))
def test_filters_property(logits, k, p, temperature, seed):
    filtered = filter_logits(logits, temperature, k, p)
    kept = np.isfinite(filtered)
    assert kept.any(axis=1).all()                           # never empties a row
    if k is not None:
        assert (kept.sum(axis=1) <= k).all()
    for b in range(logits.shape[0]):
        allowed = set(range(logits.shape[1]))
        if k is not None:
            allowed &= _expected_top_k(logits[b] / temperature, k)
        assert set(np.flatnonzero(kept[b])) <= allowed
    rng = np.random.default_rng(seed)
    for _ in range(5):
        ids = sample_next(logits, temperature, k, p, generator=rng)
        assert kept[np.arange(len(ids)), ids].all()


def test_temperature_zero_is_argmax():
    logits = np.random.default_rng(4).normal(size=(5, 17))
    expected = logits.argmax(1)
    for kw in ({}, {"top_k": 3}, {"top_p": 0.2}):
        np.testing.assert_array_equal(sample_next(logits, temperature=0.0, **kw), expected)
    t = minigrad.tensor(logits)                             # Tensors are accepted too
    np.testing.assert_array_equal(sample_next(t, temperature=0), expected)
    np.testing.assert_array_equal(greedy([[1.0, 3.0, 3.0]]), [1])   # first of equal maxima


def test_repetition_penalty_math():
    logits = np.array([[2.0, -2.0, 1.0, 0.5, 0.0]])
    out = apply_repetition_penalty(logits, [[0, 1, 1, 4]], 2.0)
    np.testing.assert_allclose(out, [[1.0, -4.0, 1.0, 0.5, 0.0]])     # repeats counted once
    np.testing.assert_allclose(logits, [[2.0, -2.0, 1.0, 0.5, 0.0]])  # input untouched
    np.testing.assert_allclose(apply_repetition_penalty(logits, [[0, 1]], 1.0), logits)
    # per row, and it can change the greedy choice
    two = np.array([[3.0, 2.0], [3.0, 2.0]])
    pen = apply_repetition_penalty(two, [[0], [1]], 2.0)
    np.testing.assert_allclose(pen, [[1.5, 2.0], [3.0, 1.0]])
    np.testing.assert_array_equal(sample_next(two, 0.0, repetition_penalty=2.0,
                                              prev_ids=[[0], [1]]), [1, 0])


def test_inverse_cdf_frequencies_and_zero_probability():
    probs = np.array([[0.1, 0.0, 0.6, 0.3, 0.0]])
    rng = np.random.default_rng(5)
    draws = np.concatenate([sample_from_probs(probs, rng) for _ in range(20000)])
    assert not np.isin(draws, [1, 4]).any()
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq, probs[0], atol=0.015)


def test_seeded_determinism():
    logits = np.random.default_rng(6).normal(size=(3, 50))
    a = [sample_next(logits, 1.0, 10, 0.9, generator=np.random.default_rng(7)) for _ in range(3)]
    b = [sample_next(logits, 1.0, 10, 0.9, generator=np.random.default_rng(7)) for _ in range(3)]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sample_next(logits, generator=42), sample_next(logits, generator=42))
    g1, g2 = minigrad.Generator(3), minigrad.Generator(3)
    np.testing.assert_array_equal(sample_next(logits, generator=g1), sample_next(logits, generator=g2))


def test_errors():
    logits = np.zeros((1, 4))
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(logits, 0)
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(logits, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, temperature=-1)
    with pytest.raises(ValueError, match="repetition_penalty"):
        apply_repetition_penalty(logits, [[0]], 0.0)
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        softmax(np.zeros(4))
    with pytest.raises(ValueError, match="excluded"):
        softmax(np.full((1, 3), -np.inf))
    with pytest.raises(TypeError, match="generator"):
        sample_next(logits, generator="seed")
