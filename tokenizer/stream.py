"""Cutting a stream of text into blocks that can be pre-tokenised independently.

Training on files larger than memory and streaming encode both read text piece by piece and
hand out blocks of roughly `block_chars` characters, each cut at a point no chunk of the
split pattern crosses (see `patterns.safe_cut` for the exact assumption). Memory is bounded
by the block size, unless the text has no safe cut for a long stretch (megabytes without a
letter followed by a space, as in CJK text), in which case the block grows until one appears
or the text ends.

This module only cuts text; it neither counts nor encodes.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .patterns import safe_cut

# Small enough that a block, its list of chunks and its ids stay a few MB, and that blocks
# spread evenly over counting processes; large enough that per-block overhead is negligible.
DEFAULT_BLOCK_CHARS = 1 << 18


def iter_blocks(
    pieces: Iterable[str], specials: frozenset[str] = frozenset(), block_chars: int = DEFAULT_BLOCK_CHARS
) -> Iterator[str]:
    """Re-cut an iterable of strings into blocks that split the concatenated text safely.

    Concatenating the yielded blocks gives back exactly the concatenated input.
    """
    if block_chars < 1:
        raise ValueError(f"block_chars must be positive, got {block_chars}")
    buffer: list[str] = []
    size = 0
    threshold = block_chars
    for piece in pieces:
        if not isinstance(piece, str):
            raise TypeError(f"expected an iterable of str, got an element of type {type(piece).__name__}")
        buffer.append(piece)
        size += len(piece)
        if size < threshold:
            continue
        text = "".join(buffer)
        cut = safe_cut(text, specials)
        if cut == 0:
            # No safe cut yet: keep reading, and do not rescan the same text on every piece.
            buffer, threshold = [text], 2 * size
            continue
        yield text[:cut]
        rest = text[cut:]
        buffer, size, threshold = [rest], len(rest), block_chars
    text = "".join(buffer)
    if text:
        yield text


def read_pieces(path: str | os.PathLike, read_chars: int = DEFAULT_BLOCK_CHARS) -> Iterator[str]:
    """Read a UTF-8 text file in pieces of `read_chars` characters (never the whole file at once).

    Newlines are kept as they are in the file (no "\\r\\n" translation), so that the text we
    tokenise is byte for byte the file's text.
    """
    with open(path, encoding="utf-8", newline="") as f:
        while True:
            try:
                piece = f.read(read_chars)
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{os.fspath(path)} is not UTF-8 text ({err}); expected a UTF-8 text file"
                ) from err
            if not piece:
                return
            yield piece


def iter_file_blocks(
    path: str | os.PathLike, specials: frozenset[str] = frozenset(), block_chars: int = DEFAULT_BLOCK_CHARS
) -> Iterator[str]:
    """Blocks of one text file, safe to pre-tokenise independently."""
    return iter_blocks(read_pieces(path, block_chars), specials, block_chars)
