"""Training a byte-level BPE: learn merges from chunk frequencies, updating pair counts incrementally.

`learn_merges` learns exactly the merges of `reference.train_naive`, which recounts every pair
of the whole corpus before each merge (read that one first; the tests hold the two equal).
What follows is how this one avoids the recounting.

The corpus is first reduced to distinct pre-tokenised chunks with their frequencies
(`count.py`). Each chunk becomes a "word": a Python str whose characters are token ids
(``chr(id)``), so bytes 0..255 start as one character each. That representation makes the
two hot operations C-speed string operations: applying a merge to a word is
``word.replace(pair, chr(new_id))`` (left to right, non-overlapping, exactly BPE's rule),
and "does this word still contain the pair" is ``pair in word``.

Per merge we only touch the words that contain the merged pair:

- `pair_counts`: pair (a 2-character str) -> total frequency-weighted count;
- `where`: pair -> list of indices of the words that held it when it was formed (a pair is
  formed exactly when the later of its two tokens is created, so it is recorded then).
  Entries are never removed eagerly; a stale or repeated index is skipped by the cheap
  ``pair in word`` test;
- a max-heap of (count, pair) with lazy invalidation. Counts of existing pairs only ever go
  down (new pairs all contain the new token), so a popped entry whose stored count is above
  the current one is pushed back with the current count, and one that matches is the true
  maximum.

Ties: among the pairs with the highest count, the lexicographically greatest pair of byte
strings ``(bytes_a, bytes_b)`` wins. The heap is a min-heap, so each token carries an
order-reversing key (``255 - byte`` per byte, then 256 as a terminator so that a proper prefix
sorts *after* its extensions). The corpus is never recounted.

This module does not read files or encode text; it returns the merges and the vocabulary.
"""
from __future__ import annotations

import contextlib
import gc
import heapq
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

from .progress import Progress


def _reverse_key(token: bytes) -> tuple[int, ...]:
    """A key whose ascending order is the *descending* lexicographic order of byte strings."""
    return tuple(255 - b for b in token) + (256,)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. The merge loop allocates hundreds of thousands of
    lists and tuples, none of them in a reference cycle; the collector would only keep
    rescanning them (about 15% of the training time, measured on the books corpus)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def learn_merges(
    chunk_counts: Mapping[str, int], num_merges: int, verbose: bool = False
) -> list[tuple[bytes, bytes]]:
    """Learn up to `num_merges` merges from chunk -> frequency; returns (left bytes, right bytes) pairs.

    Token ids are bytes 0..255 then 256, 257, ... in merge order. Stops early (with fewer
    merges) when no pair occurs any more.
    """
    with _gc_paused():
        return _learn_merges(chunk_counts, num_merges, verbose)


def _learn_merges(
    chunk_counts: Mapping[str, int], num_merges: int, verbose: bool
) -> list[tuple[bytes, bytes]]:
    words: list[str] = []
    freqs: list[int] = []
    for chunk, freq in chunk_counts.items():
        # latin-1 maps each byte b to chr(b): the UTF-8 bytes of the chunk as one char per byte.
        word = chunk.encode("utf-8").decode("latin-1")
        if len(word) >= 2 and freq > 0:
            words.append(word)
            freqs.append(freq)

    pair_counts: defaultdict[str, int] = defaultdict(int)
    # Lists, not sets: an index may appear twice (or go stale); `pair in word` filters both.
    where: dict[str, list[int]] = {}
    for idx, word in enumerate(words):
        freq = freqs[idx]
        for i in range(len(word) - 1):
            pair = word[i : i + 2]
            pair_counts[pair] += freq
            s = where.get(pair)
            if s is None:
                where[pair] = [idx]
            elif s[-1] != idx:
                s.append(idx)

    token_bytes: list[bytes] = [bytes([b]) for b in range(256)]
    keys: list[tuple[int, ...]] = [_reverse_key(t) for t in token_bytes]
    heap = [(-count, keys[ord(p[0])], keys[ord(p[1])], p) for p, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[bytes, bytes]] = []
    bar = Progress(num_merges, "merging", enabled=verbose)
    heappop, heappush = heapq.heappop, heapq.heappush
    while len(merges) < num_merges and heap:
        neg_count, key_a, key_b, pair = heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg_count:
            if count > 0:  # stale but still present: re-queue with its current count
                heappush(heap, (-count, key_a, key_b, pair))
            continue

        new_id = len(token_bytes)
        new_char = chr(new_id)
        left, right = token_bytes[ord(pair[0])], token_bytes[ord(pair[1])]
        token_bytes.append(left + right)
        keys.append(_reverse_key(left + right))
        merges.append((left, right))

        new_pairs: list[str] = []
        a, b = pair[0], pair[1]
        for idx in where.pop(pair):
            word = words[idx]
            if pair not in word:
                continue  # stale index: an earlier merge already consumed this pair here
            new_word = word.replace(pair, new_char)
            words[idx] = new_word
            freq = freqs[idx]
            last = len(new_word) - 1
            occurrences = len(word) - len(new_word)  # each replacement shortens the word by one
            # Only the pairs next to each new token C change. For an occurrence of C at j, its left
            # neighbour x had the pair (x, a) and now has (x, C); its right neighbour y had
            # (b, y) and now has (C, y). Between two adjacent C's the old pair was (b, a); the
            # right one of the two accounts for it, so it is counted once. Every pair with C is
            # new in this merge, so the first time we see one it has no `where` entry yet.
            j = new_word.find(new_char)
            while True:
                if j > 0:
                    x = new_word[j - 1]
                    pair_counts[(b if x == new_char else x) + a] -= freq
                    q = x + new_char
                    pair_counts[q] += freq
                    s = where.get(q)
                    if s is None:
                        where[q] = [idx]
                        new_pairs.append(q)
                    else:
                        s.append(idx)
                if j < last:
                    y = new_word[j + 1]
                    if y != new_char:
                        pair_counts[b + y] -= freq
                        q = new_char + y
                        pair_counts[q] += freq
                        s = where.get(q)
                        if s is None:
                            where[q] = [idx]
                            new_pairs.append(q)
                        else:
                            s.append(idx)
                occurrences -= 1
                if not occurrences:
                    break
                j = new_word.find(new_char, j + 1)
        del pair_counts[pair]
        for q in new_pairs:
            heappush(heap, (-pair_counts[q], keys[ord(q[0])], keys[ord(q[1])], q))
        bar.update(1)
    bar.close()
    return merges


def check_special_tokens(special_tokens: Sequence[str]) -> list[str]:
    """Validate special token names and drop duplicates, keeping the first occurrence's order."""
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a sequence of str, got the single str {special_tokens!r}")
    out: list[str] = []
    for tok in special_tokens:
        if not isinstance(tok, str) or not tok:
            raise ValueError(f"special tokens must be non-empty strings, got {tok!r}")
        if tok not in out:
            out.append(tok)
    return out


def train_vocab(
    chunk_counts: Mapping[str, int],
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    verbose: bool = False,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], dict[str, int]]:
    """From chunk counts to (vocab id -> bytes, merges, special token -> id).

    The vocabulary is the 256 bytes (id = byte value), then one token per merge, then the
    special tokens, so `vocab_size` counts all three.
    """
    specials = check_special_tokens(special_tokens)
    if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
        raise ValueError(
            f"vocab_size must be at least 256 (bytes) + {len(specials)} (special tokens) = "
            f"{256 + len(specials)}, got {vocab_size!r}"
        )
    if not chunk_counts:
        raise ValueError("the training corpus is empty: expected some text besides special tokens")
    num_merges = vocab_size - 256 - len(specials)
    merges = learn_merges(chunk_counts, num_merges, verbose=verbose)
    if len(merges) < num_merges:
        warnings.warn(
            f"the corpus only supports {len(merges)} merges (asked for {num_merges}); "
            f"the vocabulary has {256 + len(merges) + len(specials)} tokens instead of {vocab_size}",
            stacklevel=3,
        )
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = a + b
    special_ids = {tok: len(vocab) + i for i, tok in enumerate(specials)}
    for tok, i in special_ids.items():
        vocab[i] = tok.encode("utf-8")
    return vocab, merges, special_ids
