"""Guards for the training data (minigrad/training/data.py, issue 21): boundaries that once slipped.

- The document split: with exactly MIN_DOCS_FOR_DOC_SPLIT documents (20) whole documents go to
  val; with one fewer, the tail of each document does.
- Batch sampling: every window of block_size + 1 tokens can be drawn, the last one included
  (a sampler that never picks the last window would drop the final token of the split from
  every target), and none reaches past the end.
"""
from __future__ import annotations

import numpy as np
import pytest

from minigrad.training import data as D


def _docs(n: int) -> list[str]:
    return [f"document {i}\n" + "some words on a line\n" * 20 for i in range(n)]


def test_the_threshold_is_twenty_documents():
    assert D.MIN_DOCS_FOR_DOC_SPLIT == 20            # the documented value (docs/training.md)


N_DOCS = D.MIN_DOCS_FOR_DOC_SPLIT


@pytest.mark.parametrize("n, mode", [(N_DOCS - 1, "tail"), (N_DOCS, "document"), (N_DOCS + 1, "document")])
def test_document_split_threshold_at_its_boundary(n, mode):
    docs = _docs(n)
    train, val, used = D.split_documents(docs, 0.2, seed=0, mode="auto")
    assert used == mode
    if mode == "document":                           # whole documents on each side, none shared
        assert sorted(train + val) == sorted(docs) and not set(train) & set(val)
    else:                                            # every document cut: each one's tail is val
        assert len(train) == len(val) == n
        assert [a + b for a, b in zip(train, val)] == docs


def test_document_split_threshold_through_prepare_data(tmp_path):
    """The same boundary as train.py meets it: a file of documents separated by <|endoftext|>."""
    for n, mode in ((D.MIN_DOCS_FOR_DOC_SPLIT - 1, "tail"), (D.MIN_DOCS_FOR_DOC_SPLIT, "document")):
        path = tmp_path / f"docs{n}.txt"
        path.write_text(D.ENDOFTEXT.join(_docs(n)), encoding="utf-8")
        prepared = D.prepare_data(str(path), "char", val_fraction=0.2, seed=1, cache_dir=tmp_path / "cache")
        assert prepared.meta["split"] == mode, n


@pytest.mark.parametrize("extra", [1, 2, 5])
def test_get_batch_draws_every_window_including_the_last(extra):
    """A split of block_size + extra tokens has `extra` windows, starting at 0 .. extra - 1."""
    T = 6
    data = np.arange(T + extra, dtype=np.uint16)
    rng = np.random.default_rng(0)
    starts, targets = set(), set()
    for _ in range(200):
        x, y = D.get_batch(data, 4, T, rng)
        assert x.shape == y.shape == (4, T) and x.dtype == y.dtype == np.int64
        np.testing.assert_array_equal(y, x + 1)      # targets: the next token (data[i] == i)
        assert y.max() <= len(data) - 1
        starts.update(int(s) for s in x[:, 0])
        targets.update(int(v) for v in y.ravel())
    assert starts == set(range(extra))
    assert len(data) - 1 in targets                  # the split's last token is a target


def test_get_batch_reaches_the_last_token():
    """With a single window, the batch is exactly the whole split."""
    data = np.arange(9, dtype=np.uint16) * 3
    x, y = D.get_batch(data, 3, 8, np.random.default_rng(1))
    np.testing.assert_array_equal(x, np.tile(data[:8], (3, 1)))
    np.testing.assert_array_equal(y, np.tile(data[1:], (3, 1)))
    with pytest.raises(D.DataError, match="fewer than block_size"):
        D.get_batch(data[:8], 3, 8, np.random.default_rng(1))
