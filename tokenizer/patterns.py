"""Pre-tokenisation split patterns for the byte-level BPE tokenizer.

A split pattern is a `regex` (not `re`) expression whose matches are the "chunks" BPE works
inside: merges never cross a chunk boundary. Two patterns are built in, exactly as tiktoken
ships them, so that our chunks (and therefore our token ids) equal tiktoken's:

- ``"gpt2"``: GPT-2's pattern (tiktoken's ``r50k_base`` form, equivalent to the original
  GPT-2 release but faster thanks to possessive quantifiers);
- ``"gpt4"``: GPT-4's ``cl100k_base`` pattern (case-insensitive contractions, digits in
  groups of at most three, newlines kept with the preceding punctuation).

Any other string is taken as a custom pattern. This module also defines the one assumption
streaming relies on (see `safe_cut`). It does not encode or train anything.
"""
from __future__ import annotations

import functools

import regex

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

BUILTIN_PATTERNS: dict[str, str] = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}

# Patterns in which no chunk contains a non-whitespace character followed by a space (and with
# no look-behind), so that encoding may cut the text before any such space: see
# `bpe._WordCache`. Checked by tests/test_tokenizer_encode.py; a custom pattern is not assumed to.
SPACE_SPLIT_SAFE = frozenset(BUILTIN_PATTERNS.values())


def resolve_pattern(pattern: str) -> str:
    """Return the pattern string for a built-in name ("gpt2", "gpt4") or a custom pattern.

    A custom pattern is compiled once here so that a typo fails now, with the pattern in the
    message, rather than deep inside training or encoding.
    """
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be 'gpt2', 'gpt4' or a non-empty regex string, got {pattern!r}")
    resolved = BUILTIN_PATTERNS.get(pattern, pattern)
    try:
        compile_pattern(resolved)
    except regex.error as err:
        raise ValueError(f"the split pattern {pattern!r} is not a valid `regex` expression: {err}") from err
    return resolved


@functools.lru_cache(maxsize=32)
def compile_pattern(pattern: str) -> "regex.Pattern[str]":
    """Compile (and memoise) a split pattern."""
    return regex.compile(pattern)


@functools.lru_cache(maxsize=32)
def special_token_regex(tokens: frozenset[str]) -> "regex.Pattern[str] | None":
    """A regex matching any of `tokens` literally, or None when there are none.

    Longer tokens come first so that when one special token is a prefix of another
    (``<|a|>`` and ``<|a|>x``) the longer one wins, independently of set iteration order.
    """
    if not tokens:
        return None
    ordered = sorted(tokens, key=lambda t: (-len(t), t))
    return regex.compile("|".join(regex.escape(t) for t in ordered))


def safe_cut(text: str, specials: frozenset[str] = frozenset()) -> int:
    """Largest index `i` such that ``text[:i]`` and ``text[i:]`` can be pre-tokenised apart.

    Streaming (training on files larger than memory, `encode_iterable`, `encode_file`) reads
    text in blocks and must not cut a chunk in two. We cut only between a letter and a
    following space, as in ``"word| next"``. The assumption, which holds for the GPT-2 and
    GPT-4 patterns (and tiktoken's o200k one), is:

        no chunk of the split pattern contains a letter immediately followed by a space, and
        the pattern uses no look-behind.

    Then the chunk before the cut ends at the letter whether or not text follows (a run of
    letters stops at the space or at the end alike), and the chunks from the space on do not
    depend on what came before. A custom pattern that breaks this (say ``[^\\n]+``) would see
    different chunks near block boundaries when streamed; the in-memory `encode` is
    unaffected. A cut never falls inside one of the `specials`. Returns 0 when there is no
    safe cut (the caller then reads more text).
    """
    special_re = special_token_regex(frozenset(specials))
    width = max((len(t) for t in specials), default=0)
    pos = len(text)
    while True:
        cut = text.rfind(" ", 1, pos)
        if cut < 1:
            return 0
        if text[cut - 1].isalpha():  # str.isalpha is exactly the Unicode letter classes, \p{L}
            # A special token containing "x y" must not be cut in two: only the window such a
            # token could span, bounded by the longest special, needs a look.
            if special_re is None or not any(
                m.start() < cut < m.end()
                for m in special_re.finditer(text, max(0, cut - width), min(len(text), cut + width))
            ):
                return cut
        pos = cut
