"""Rank-based byte-pair merging of one chunk, exactly as tiktoken does it: the encoder's merge rule.

`encode_chunk` is the fast twin of `reference.encode_chunk` (read that one first): given the
bytes of one pre-tokenised chunk and the ranks (token bytes -> id, where a lower id means an
earlier merge), repeatedly merge the adjacent pair whose *concatenated bytes* have the lowest
rank, the leftmost such pair on ties, until no adjacent pair is a token. This is tiktoken's
`_byte_pair_merge`; with ranks = ids and ids given in merge order it gives the same ids as the
reference's "apply the merges in order" for every merges list that training produces and for
GPT-2's (tested; `reference.encode_chunk` shows a hand-made list where the two differ).

Two implementations of the same rule: a quadratic scan whose inner loop (min + index over the
pair ranks) runs in C, fastest for the short chunks of natural text, and a heap over a linked
list, O(n log n), for long chunks (a run of ten thousand spaces must not take seconds).
`recover_merges` goes the other way, from ranks alone (a tiktoken file) back to the ordered
merges list. This module knows nothing of patterns, special tokens or caches (the chunk cache
in front of `encode_chunk` lives in `bpe.py`).
"""
from __future__ import annotations

import heapq
from collections.abc import Mapping
from itertools import repeat
from operator import add

# Chunks longer than this use the heap version; below it the linear scan (in C) wins.
LONG_CHUNK = 256
# Stands for "this pair is not a token" in the scan: above every real rank.
NO_RANK = 1 << 62
# _SINGLE_BYTES[b] == bytes([b]): the one-byte parts a chunk starts from.
_SINGLE_BYTES = [bytes([b]) for b in range(256)]


def encode_chunk(piece: bytes, ranks: Mapping[bytes, int]) -> list[int]:
    """Token ids of one chunk's bytes: the same ids as `reference.encode_chunk`, computed faster.

    `ranks` maps token bytes to ids (every single byte must be in it); the reference's
    ``merges`` dict of id pairs carries the same information. Where the reference recounts
    every pair and rebuilds the list after each merge, this (1) returns a chunk that is
    already one token with a single lookup (most chunks of natural text, as in tiktoken),
    (2) keeps the rank of each adjacent pair in a list, recomputing only the two neighbours
    of a merge, and finds the lowest with C-level ``min`` (`_bpe_scan`), and (3) for chunks
    over LONG_CHUNK bytes uses a heap instead (`_bpe_heap`), O(n log n) rather than O(n^2).
    `bpe.py` puts a cache of whole chunks in front of it, so each distinct chunk is merged once.
    """
    rank = ranks.get(piece)
    if rank is not None:
        return [rank]
    if len(piece) > LONG_CHUNK:
        return _bpe_heap(piece, ranks)
    return _bpe_scan(piece, ranks)


def _bpe_scan(piece: bytes, ranks: Mapping[bytes, int]) -> list[int]:
    """`encode_chunk` by a linear scan of the pair ranks per merge (fastest for short chunks)."""
    get = ranks.get
    # Start from single bytes. Iterating bytes gives ints, and map over a table lookup builds
    # the list in C rather than slicing byte by byte in a Python loop.
    parts = list(map(_SINGLE_BYTES.__getitem__, piece))
    # pair_ranks[i] is the rank of parts[i] + parts[i + 1] (NO_RANK if it is not a token), also
    # built in C. Only the two neighbours of a merge change, and finding the lowest rank is a
    # C-level min + index, which also picks the leftmost pair on ties, as tiktoken does.
    pair_ranks = list(map(get, map(add, parts, parts[1:]), repeat(NO_RANK)))
    while pair_ranks:
        best = min(pair_ranks)
        if best == NO_RANK:
            break
        i = pair_ranks.index(best)
        parts[i] += parts[i + 1]
        del parts[i + 1]
        del pair_ranks[i]
        if i:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], NO_RANK)
        if i < len(pair_ranks):
            pair_ranks[i] = get(parts[i] + parts[i + 1], NO_RANK)
    return list(map(ranks.__getitem__, parts))


def _bpe_heap(piece: bytes, ranks: Mapping[bytes, int]) -> list[int]:
    """Same result as the quadratic scan, in O(n log n).

    Parts are spans [start, nxt[start]) of `piece`, kept as a linked list keyed by their start
    offset. The heap holds (rank, start, mid, end) for every adjacent pair ever formed; an
    entry is stale once either of its two parts has changed, which we detect by comparing the
    current spans. Popping the smallest (rank, start) among live entries is exactly "lowest
    rank, leftmost on ties".
    """
    n = len(piece)
    nxt = list(range(1, n + 1))  # nxt[start] = end of the part starting at `start`
    prv = list(range(-1, n - 1))  # prv[start] = start of the previous part, -1 for the first
    alive = [True] * n
    get = ranks.get
    heap: list[tuple[int, int, int, int]] = []
    for i in range(n - 1):
        rank = get(piece[i : i + 2])
        if rank is not None:
            heap.append((rank, i, i + 1, i + 2))
    heapq.heapify(heap)
    while heap:
        rank, start, mid, end = heapq.heappop(heap)
        if not alive[start] or nxt[start] != mid or mid >= n or not alive[mid] or nxt[mid] != end:
            continue  # stale: one of the two parts was merged with something else since
        # Merge the part at `mid` into the part at `start`.
        alive[mid] = False
        nxt[start] = end
        if end < n:
            prv[end] = start
        left = prv[start]
        if left >= 0:
            r = get(piece[left:end])
            if r is not None:
                heapq.heappush(heap, (r, left, start, end))
        if end < n:
            right_end = nxt[end]
            r = get(piece[start:right_end])
            if r is not None:
                heapq.heappush(heap, (r, start, end, right_end))
    out = []
    i = 0
    while i < n:
        out.append(ranks[piece[i : nxt[i]]])
        i = nxt[i]
    return out


def recover_merges(ranks: Mapping[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The ordered merges list implied by `ranks` (bytes -> rank), for rank files that carry none.

    A multi-byte token of rank r is the merge of the two parts that rank-based BPE produces
    on its own bytes when only tokens of rank < r may be used (the method of tiktoken's
    educational module). Raises ValueError when a token cannot be reached that way, because
    such a vocabulary cannot be expressed as merges at all.
    """
    merges: list[tuple[bytes, bytes]] = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            best_rank = None
            best_i = -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best_rank is None or r < best_rank):
                    best_rank, best_i = r, i
            if best_rank is None:
                break
            parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        if len(parts) != 2:
            raise ValueError(
                f"token {token!r} (rank {rank}) cannot be built by merging two lower-ranked tokens; "
                "expected every multi-byte token to be the merge of two earlier ones"
            )
        merges.append((parts[0], parts[1]))
    return merges
