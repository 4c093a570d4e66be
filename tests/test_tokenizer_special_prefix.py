"""Special tokens where one is a prefix of another (``<|a|>`` and ``<|a|>b``): the longest one
present in the text must win, whatever order the tokens were given in (issue 13).

A byte-only vocabulary (no merges) keeps every expected id computable by hand: ordinary text
encodes to its UTF-8 bytes. Many prefix pairs are used so that an implementation that relied on
set iteration order (which varies with PYTHONHASHSEED) would fail on at least one of them.
"""
from __future__ import annotations

import re

import pytest

from minigrad.tokenizer import BPETokenizer

BYTES = {i: bytes([i]) for i in range(256)}
PAIRS = [(f"<|s{i}|>", f"<|s{i}|>b") for i in range(16)]


def _bytes_ids(text: str) -> list[int]:
    return list(text.encode("utf-8"))


@pytest.mark.parametrize("order", ["short_first", "long_first"])
def test_longest_special_token_wins(order):
    specials = [t for pair in PAIRS for t in (pair if order == "short_first" else pair[::-1])]
    tok = BPETokenizer(BYTES, [], specials, pattern="gpt2")
    ids = tok.special_tokens
    for short, long in PAIRS:
        text = f"x{long}y{short} {short}"
        expected = _bytes_ids("x") + [ids[long]] + _bytes_ids("y") + [ids[short]] + _bytes_ids(" ") + [ids[short]]
        assert tok.encode(text, allowed_special="all") == expected, (short, long)
        assert tok.decode(expected) == text
        # only the short one allowed: the long one's text is plain bytes after the short token
        assert tok.encode(long, allowed_special={short}, disallowed_special=()) == \
            [ids[short]] + _bytes_ids("b")


def test_disallowed_error_names_the_longest_match():
    short, long = PAIRS[0]
    tok = BPETokenizer(BYTES, [], [short, long], pattern="gpt2")
    with pytest.raises(ValueError, match=f"special token '{re.escape(long)}'"):
        tok.encode(f"a {long}")
