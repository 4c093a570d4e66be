"""Pre-tokenisation split patterns for the byte-level BPE tokenizer.

A split pattern is a `regex` (not `re`) expression whose matches are the "chunks" BPE works
inside: merges never cross a chunk boundary. Two patterns are built in, exactly as tiktoken
ships them, so that our chunks (and therefore our token ids) equal tiktoken's:

- ``"gpt2"``: GPT-2's pattern (tiktoken's ``r50k_base`` form, equivalent to the original
  GPT-2 release but faster thanks to possessive quantifiers);
- ``"gpt4"``: GPT-4's ``cl100k_base`` pattern (case-insensitive contractions, digits in
  groups of at most three, newlines kept with the preceding punctuation).

Any other string is taken as a custom pattern. Such a pattern may come from a tokenizer file or
a checkpoint, i.e. from someone else, and a backtracking regex can take exponential time
(``(a|aa)+$`` on 40 a's runs for hours), so a custom pattern is *guarded*: it must be at most
MAX_PATTERN_CHARS long, it is probed once on awkward text when loaded, and every split with it
runs under a time budget (the `regex` module's ``timeout=``) that grows with the text. Running
out of time raises `SplitPatternError` naming the pattern, never a hang. The built-in patterns,
by name or by their exact strings (as written into existing files), are trusted and unguarded.

This module also defines the one assumption streaming relies on (see `safe_cut`). It does not
encode or train anything.
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

# Custom patterns only: the split budget of one findall call is CUSTOM_TIMEOUT_S +
# CUSTOM_TIMEOUT_PER_CHAR_S * len(text). A sane pattern costs well under 0.2 us per character
# (a chunk every ~4 characters at ~175 ns per match), so this leaves >10x headroom, while an
# exponential one runs out within a second. (The regex module overshoots its timeout by up to
# ~3x on a busy machine; the bound still holds.)
CUSTOM_TIMEOUT_S = 0.5
CUSTOM_TIMEOUT_PER_CHAR_S = 2e-6
PROBE_TIMEOUT_S = 0.25
MAX_PATTERN_CHARS = 4096
# Runs of one character class ended by a character that breaks the run: what makes nested or
# overlapping quantifiers (``(a|aa)+$``, ``(\w+\s?)+$``) backtrack through every split of the run.
PROBE_TEXT = "".join(c * 40 + end for c in ("a", " ", "1", ".", "\n", "é", "ab")
                     for end in ("\x00", "!", " x")) + "Hello, world! It's 2024.\r\n\n  end"


class SplitPatternError(ValueError):
    """A split pattern that is invalid, too long, or too slow (catastrophic backtracking)."""


def _show(pattern: str) -> str:
    """The pattern for an error message (a hostile one may be long)."""
    return repr(pattern) if len(pattern) <= 120 else repr(pattern[:120]) + f"... ({len(pattern)} chars)"


class GuardedPattern:
    """A compiled custom split pattern whose `findall` runs under a time budget.

    Has the one method the tokenizer uses on a compiled pattern (`findall`), so callers need
    not know whether a pattern is built-in or guarded.
    """

    __slots__ = ("pattern", "_re")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._re = regex.compile(pattern)

    def findall(self, text: str, timeout: float | None = None) -> list:
        """regex findall; SplitPatternError when it takes longer than `timeout` (default: the
        budget for len(text) characters)."""
        if timeout is None:
            timeout = CUSTOM_TIMEOUT_S + CUSTOM_TIMEOUT_PER_CHAR_S * len(text)
        try:
            if self._re.groups:      # findall would return the groups' text: chunks are whole matches
                return [m[0] for m in self._re.finditer(text, timeout=timeout)]
            return self._re.findall(text, timeout=timeout)
        except TimeoutError:
            raise SplitPatternError(
                f"the custom split pattern {_show(self.pattern)} took longer than {timeout:.2g} s on "
                f"{len(text)} characters: it backtracks catastrophically (nested or overlapping "
                "quantifiers such as (a|aa)+). Use a built-in pattern ('gpt2', 'gpt4') or rewrite it "
                "with possessive quantifiers / atomic groups"
            ) from None

    def __reduce__(self):
        return (GuardedPattern, (self.pattern,))

    def __repr__(self) -> str:
        return f"GuardedPattern({_show(self.pattern)})"


# Patterns in which no chunk contains a non-whitespace character followed by a space (and with
# no look-behind), so that encoding may cut the text before any such space: see
# `bpe._WordCache`. Checked by tests/test_tokenizer_encode.py; a custom pattern is not assumed to.
SPACE_SPLIT_SAFE = frozenset(BUILTIN_PATTERNS.values())


def resolve_pattern(pattern: str) -> str:
    """Return the pattern string for a built-in name ("gpt2", "gpt4") or a custom pattern.

    A custom pattern is compiled and probed here (see the module doc) so that a typo or a
    catastrophic regex fails now, with the pattern in the message (SplitPatternError, a
    ValueError), rather than hanging or failing deep inside training or encoding.
    """
    if not isinstance(pattern, str) or not pattern:
        raise SplitPatternError(f"pattern must be 'gpt2', 'gpt4' or a non-empty regex string, got {pattern!r}")
    resolved = BUILTIN_PATTERNS.get(pattern, pattern)
    if resolved in SPACE_SPLIT_SAFE:
        return resolved
    if len(resolved) > MAX_PATTERN_CHARS:
        raise SplitPatternError(f"the custom split pattern {_show(resolved)} is longer than "
                                f"{MAX_PATTERN_CHARS} characters; use 'gpt2', 'gpt4' or a shorter regex")
    try:
        guarded = compile_pattern(resolved)
    except regex.error as err:
        raise SplitPatternError(f"the split pattern {_show(pattern)} is not a valid `regex` expression: "
                                f"{err}") from err
    guarded.findall(PROBE_TEXT, timeout=PROBE_TIMEOUT_S)
    return resolved


@functools.lru_cache(maxsize=32)
def compile_pattern(pattern: str) -> "regex.Pattern[str] | GuardedPattern":
    """Compile (and memoise) a split pattern: a plain regex for the built-in patterns, a
    GuardedPattern (time-limited findall) for any other."""
    if pattern in SPACE_SPLIT_SAFE:
        return regex.compile(pattern)
    return GuardedPattern(pattern)


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
