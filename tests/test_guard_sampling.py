"""Guards for next-token sampling (models/sampling.py, issue 21): boundaries that once slipped.

- Inverse-CDF sampling never returns a token of probability 0, also when the uniform draw lands
  exactly on a step of the CDF (u = 0, u = a cumulative probability, the largest u below 1): a
  searchsorted on the wrong side returns the zero-probability token at the left edge there. A
  stub generator feeds those exact draws; many real draws check the frequencies.
- The repetition penalty skips ids outside the logits: negative (padding) ids must not wrap
  around to the last tokens, ids >= V must not fail.
Expected values are worked out by hand here.
"""
from __future__ import annotations

import numpy as np
import pytest

from minigrad.models import sampling as S

# zero-probability tokens at both edges and in the middle; cdf = [0, 0, .25, .25, 1, 1, 1]
PROBS = np.array([[0.0, 0.0, 0.25, 0.0, 0.75, 0.0, 0.0]])


class FixedDraws:
    """A stand-in for numpy's Generator whose random() returns the given values in [0, 1)."""

    def __init__(self, values):
        self.values = list(values)

    def random(self, n):
        out, self.values = self.values[:n], self.values[n:]
        return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("u, token", [
    (0.0, 2),                               # the very first draw: token 2 owns [0, 0.25)
    (np.nextafter(0.25, 0.0), 2),
    (0.25, 4),                              # exactly on the step: token 4 owns [0.25, 1)
    (0.5, 4),
    (np.nextafter(1.0, 0.0), 4),            # the largest draw below 1
])
def test_boundary_draws_land_on_the_token_that_owns_them(u, token):
    assert S.sample_from_probs(PROBS, FixedDraws([u])).tolist() == [token]


def test_a_batch_of_boundary_draws_with_unnormalised_rows():
    """Rows that sum to 2 (the draw is scaled by the total): the same boundaries, per row."""
    probs = np.array([[0.0, 1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 2.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0, 1.5]])
    # u * total: row 0 -> 0.0 (token 1), row 1 -> 1.0 (token 2), row 2 -> 0.5 (token 4: 0.5 is its start)
    assert S.sample_from_probs(probs, FixedDraws([0.0, 0.5, 0.25])).tolist() == [1, 2, 4]


def test_many_draws_never_return_a_zero_probability_token():
    rng = np.random.default_rng(0)
    probs = np.repeat(PROBS, 4000, axis=0)
    draws = S.sample_from_probs(probs, rng)
    counts = np.bincount(draws, minlength=7)
    assert counts[[0, 1, 3, 5, 6]].sum() == 0
    assert abs(counts[2] / len(draws) - 0.25) < 0.02      # 4000 draws: std 0.007
    # through sample_next: -inf logits are the zero-probability tokens
    logits = np.log(np.where(PROBS > 0, PROBS, 1.0)) + np.where(PROBS > 0, 0.0, -np.inf)
    got = {int(S.sample_next(logits, generator=seed)[0]) for seed in range(300)}
    assert got == {2, 4}


def test_repetition_penalty_ignores_padding_ids():
    logits = np.array([[2.0, -1.0, 0.5, 3.0, -2.0]])                 # V = 5
    # ids -1 and -5 would wrap to tokens 4 and 0 if they were not skipped; 5 and 99 are past V
    out = S.apply_repetition_penalty(logits, np.array([[-1, -5, 1, 3, 5, 99, -1]]), 2.0)
    np.testing.assert_array_equal(out, [[2.0, -2.0, 0.5, 1.5, -2.0]])  # only ids 1 and 3: by hand
    np.testing.assert_array_equal(logits, [[2.0, -1.0, 0.5, 3.0, -2.0]])   # the input is left alone


def test_repetition_penalty_per_row_with_padding():
    logits = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    prev = np.array([[-1, -1, 0], [2, -3, -2]])                        # left-padded contexts
    out = S.apply_repetition_penalty(logits, prev, 4.0)
    np.testing.assert_array_equal(out, [[0.25, 1.0, 1.0], [-1.0, -1.0, -4.0]])
    # greedy after the penalty (temperature 0) goes through the same rule
    assert S.sample_next(np.array([[1.0, 0.9, 0.0]]), temperature=0, repetition_penalty=2.0,
                         prev_ids=np.array([[-3, -2]])).tolist() == [0]
