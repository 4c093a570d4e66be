"""Byte-level BPE the plain way: the readable reference that the fast tokenizer is tested against.

Read this file first. It is minbpe's algorithm (Karpathy's `basic.py` and `regex.py`), written
out with no caches and no tricks. Four functions hold the idea:

- `get_stats(ids)`: how often each adjacent pair of ids occurs;
- `merge(ids, pair, idx)`: replace every occurrence of `pair` with the new id `idx`;
- `train_naive(texts, vocab_size, ...)`: split the text into chunks, then repeatedly count all
  pairs, merge the most frequent one everywhere, and record it as a new token;
- `encode_chunk(chunk_bytes, merges)`: turn one chunk into ids by applying the learned merges,
  lowest id (earliest learned) first.

Around them, `encode` runs a whole text (special tokens, then the regex split, then
`encode_chunk` per chunk) and `merges_from_pairs` loads any tokenizer's merges (GPT-2's too).

Ids here are minbpe's: byte b is id b (0..255), the i-th merge creates id 256 + i, and special
tokens come after the merges. `merges` maps a pair of ids to the id it creates and keeps the
order in which the merges were learned (a dict remembers insertion order).

What the real tokenizer does differently, and why it still gives the same answers:

- `train.py:learn_merges` learns the same merges, in the same order (the tests check this):
  it counts each distinct chunk once (with its frequency) and updates the pair counts only
  where a merge changed something, instead of recounting the whole corpus every round.
- `merge.py:encode_chunk` gives the same ids as `encode_chunk` here, behind a cache of
  whole chunks (`bpe.py`). It follows tiktoken's form of the rule (merge the adjacent pair
  whose *joined bytes* have the lowest id); see `encode_chunk` below for when the two forms agree.

Ties: when several pairs are equally frequent, minbpe's ``max(stats, key=stats.get)`` takes
the pair it saw first, which depends on the order of the text. The fast trainer never sees
that order (it counts distinct chunks), so both trainers use an order-free rule instead: the
pair whose first token's bytes are greatest wins, then the one whose second token's bytes are
greatest (ordinary `bytes` comparison, where a prefix sorts before its extensions).

This module does not stream files, use several processes, replace lone surrogates (text
must be valid UTF-8), or check its inputs; it is slow on purpose (every round rescans all
the text). Use `BPETokenizer` for real work.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import regex

from .patterns import BUILTIN_PATTERNS

Pair = tuple[int, int]


def get_stats(ids: Sequence[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """Count every adjacent pair of `ids`: ``[1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}``.

    Pass `counts` to add to an existing count (training sums the pairs of all chunks this way).
    Pairs never span two chunks: each chunk is counted on its own.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):  # consecutive elements
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: Pair, idx: int) -> list[int]:
    """Replace each occurrence of `pair` in `ids` by `idx`, scanning left to right.

    ``merge([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4]``. Occurrences that overlap are taken
    left first: ``merge([7, 7, 7], (7, 7), 9) -> [9, 7]``.
    """
    new_ids = []
    i = 0
    while i < len(ids):
        # Not at the last position, and the pair matches here: take both, emit the new id.
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            new_ids.append(idx)
            i += 2
        else:
            new_ids.append(ids[i])
            i += 1
    return new_ids


def encode_chunk(chunk_bytes: bytes, merges: dict[Pair, int]) -> list[int]:
    """The ids of one chunk: start from its bytes, then keep merging the pair with the lowest id.

    The lowest id is the merge learned first, so this replays training's merges in order on
    this one chunk. It stops when no adjacent pair is in `merges`.

    The fast path (`merge.py:encode_chunk`, tiktoken's rule) instead merges the adjacent pair
    whose joined bytes form the token with the lowest id. The two differ only when a token can
    also be built from a pair of parts other than the one it was learned from; that does not
    happen with the merges training produces nor with GPT-2's (both are tested). A hand-made
    list can do it: with merges (b, c), (a, b), (ab, c), the chunk "abc" becomes [a, bc] here
    but [abc] in tiktoken.
    """
    ids = list(chunk_bytes)  # byte b is id b
    while len(ids) >= 2:
        stats = get_stats(ids)
        # The pair that was merged earliest in training; pairs never merged count as infinity.
        pair = min(stats, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break  # nothing left to merge
        ids = merge(ids, pair, merges[pair])
    return ids


def split_on_special_tokens(text: str, special_tokens: Iterable[str]) -> list[str]:
    """Cut `text` at the special tokens, keeping them: ``"a<|eot|>b" -> ["a", "<|eot|>", "b"]``.

    The pieces at odd positions are the special tokens. Longer tokens are tried first, so
    that when one special token is a prefix of another the longer one wins.
    """
    specials = sorted(special_tokens, key=len, reverse=True)
    if not specials:
        return [text]
    # A capturing group makes regex.split keep the separators (the special tokens) in the list.
    return regex.split("(" + "|".join(regex.escape(s) for s in specials) + ")", text)


def split_into_chunks(text: str, pattern: str) -> list[str]:
    """The pre-tokenisation chunks of `text`: merges never cross from one chunk to the next.

    `pattern` is "gpt2", "gpt4" or a regex. Chunks are whole matches, as in the fast path.
    """
    pattern = BUILTIN_PATTERNS.get(pattern, pattern)
    return [match.group() for match in regex.finditer(pattern, text)]


def train_naive(
    texts: Iterable[str], vocab_size: int, pattern: str = "gpt4", special_tokens: Sequence[str] = ()
) -> tuple[dict[Pair, int], dict[int, bytes], dict[str, int]]:
    """Learn `vocab_size` tokens (256 bytes + merges + special tokens); returns (merges, vocab, specials).

    `merges`: (id, id) -> new id, in the order learned; `vocab`: id -> bytes for every id,
    special tokens included; `specials`: special token -> id. Stops early (fewer merges) when
    no pair is left. Special tokens cut the text and are never part of a merge.
    """
    # 1. Split: special tokens first (they are dropped for training), then the regex chunks.
    #    Each chunk becomes the list of its UTF-8 byte values.
    chunks: list[list[int]] = []
    for text in texts:
        for piece in split_on_special_tokens(text, special_tokens)[0::2]:  # even: ordinary text
            chunks += [list(chunk.encode("utf-8")) for chunk in split_into_chunks(piece, pattern)]

    vocab = {idx: bytes([idx]) for idx in range(256)}
    merges: dict[Pair, int] = {}
    num_merges = vocab_size - 256 - len(special_tokens)
    for i in range(num_merges):
        # 2. Count every adjacent pair over all chunks (from scratch, every round).
        stats: dict[Pair, int] = {}
        for chunk_ids in chunks:
            get_stats(chunk_ids, stats)
        if not stats:
            break  # every chunk is a single token: nothing left to merge
        # 3. The most frequent pair; ties go to the greatest (first bytes, second bytes), the
        #    rule the fast trainer uses too (see the module docstring).
        pair = max(stats, key=lambda p: (stats[p], vocab[p[0]], vocab[p[1]]))
        # 4. It becomes a new token, and every chunk is rewritten with it.
        idx = 256 + i
        chunks = [merge(chunk_ids, pair, idx) for chunk_ids in chunks]
        merges[pair] = idx
        vocab[idx] = vocab[pair[0]] + vocab[pair[1]]

    specials = {token: len(vocab) + n for n, token in enumerate(special_tokens)}
    for token, idx in specials.items():
        vocab[idx] = token.encode("utf-8")
    return merges, vocab, specials


def encode(
    text: str, merges: dict[Pair, int], pattern: str = "gpt4", specials: dict[str, int] | None = None
) -> list[int]:
    """The ids of `text`: special tokens (all allowed) become their ids, the rest goes chunk by
    chunk through `encode_chunk`. Like minbpe's ``RegexTokenizer.encode(text, "all")``."""
    specials = specials or {}
    ids: list[int] = []
    for n, piece in enumerate(split_on_special_tokens(text, specials)):
        if n % 2:  # odd positions hold the special tokens
            ids.append(specials[piece])
            continue
        for chunk in split_into_chunks(piece, pattern):
            ids += encode_chunk(chunk.encode("utf-8"), merges)
    return ids


def merges_from_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> tuple[dict[Pair, int], dict[int, bytes]]:
    """(merges, vocab) in this module's ids from a merges list of byte pairs, such as
    `BPETokenizer.merges` or GPT-2's merges.txt, so that any tokenizer can be run here.

    The i-th pair becomes id 256 + i. (GPT-2's own vocab.json orders the 256 single bytes
    differently, so its ids differ from ours for bytes; the tokens' bytes are the same.)
    """
    vocab = {idx: bytes([idx]) for idx in range(256)}
    id_of = {token: idx for idx, token in vocab.items()}
    merges: dict[Pair, int] = {}
    for i, (left, right) in enumerate(pairs):
        idx = 256 + i
        merges[(id_of[left], id_of[right])] = idx
        vocab[idx] = left + right
        id_of[left + right] = idx
    return merges, vocab
