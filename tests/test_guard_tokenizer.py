"""Guards for BPE encoding (tokenizer/bpe.py, issue 21): rules that once slipped through.

- allowed_special: every form of it (the "all" string, sets, lists, tuples, frozensets, names that
  are not special tokens here, special tokens that are prefixes of others) against tiktoken built
  from the same ranks, pattern and special tokens; disallowed specials raise.
- The word cache's rule for words that end in whitespace: text is cut at spaces and " " + word is
  cached only when the word ends with a non-whitespace character; a word ending in whitespace
  (newline, tab, form feed, no-break space, ideographic space, ...) must be encoded together with
  what follows, since the regex joins its whitespace with the next space (e.g. "\\n \\n" or
  "\\t " as one chunk). tiktoken, which splits with the regex itself, is the oracle; the
  tokenizer is trained on such text so that those whitespace chunks are single tokens.
"""
from __future__ import annotations

import numpy as np
import pytest

from minigrad.tokenizer import BPETokenizer

tiktoken = pytest.importorskip("tiktoken", reason="tiktoken is the oracle for these tests")

EOT, PAD, END = "<|endoftext|>", "<|pad|>", "<|end|>"
# pieces whose whitespace the regex joins across the cut at a space
PIECES = ["a", "bc", "king", "x\n", "y\t", "z\r\n", "\nz", "\tw", "\n", "\t", "\n\n", "\r\n", "7\x0b", "\x0c",
          "q\u3000", "\u3000r", "s\xa0", "\xa0t", "u\u2028", "\u2028", "v\x85", "\x1cm", "n\x1f", "o\u2003",
          "", "!", "'s", "12", "é\t"]


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(PIECES, size=rng.integers(2, 12))) for _ in range(n)]


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def tok(request) -> BPETokenizer:
    corpus = _texts(400, seed=1) + ["the king said \n \n and \t \t then \n\n  \t\n" * 20]
    t = BPETokenizer.train(corpus, 420, special_tokens=[EOT, PAD, END], pattern=request.param, verbose=False)
    for ws in ("\n \n", "\t ", " \n", "\n\n"):     # the joined chunks are tokens: a wrong cut shows
        assert ws.encode() in t.mergeable_ranks, ws
    return t


def test_words_ending_in_whitespace_encode_as_the_regex_splits(tok):
    enc = tok.to_tiktoken()
    by_hand = ["x\n \nb", "a\t \tb", "q\u3000 \u3000r", "s\xa0 \xa0t", "7\x0b \x0cz", "the\n  \n king",
               "v\x85 \nz", "n\x1f \x1cm", " x\n \n", "x\n\t \t\ny"]
    for text in _texts(600, seed=2) + by_hand:
        assert tok.encode_ordinary(text) == enc.encode_ordinary(text), repr(text)
        assert tok.decode(tok.encode_ordinary(text)) == text


def test_words_ending_in_whitespace_after_the_cache_is_warm(tok):
    """The same words met again (now cached) in other neighbourhoods give the regex's ids too."""
    enc = tok.to_tiktoken()
    warm = " ".join(PIECES)
    tok.encode_ordinary(warm)
    for text in ("y\t \tw", "y\t king", "x\n \nz", "x\n king", "q\u3000 \u3000r q\u3000 king"):
        assert tok.encode_ordinary(warm + " " + text) == enc.encode_ordinary(warm + " " + text), repr(text)


TEXT = f"a{EOT}b {PAD}c{END}d {EOT}{EOT} x<|endof{END}"


@pytest.mark.parametrize("allowed", ["all", {EOT}, {PAD}, {END}, {EOT, PAD}, {EOT, PAD, END},
                                     frozenset({END, EOT}), [PAD], (END, EOT), set(), {"<|nope|>"},
                                     {"<|nope|>", PAD}, {"a", EOT}], ids=repr)
def test_allowed_special_matches_tiktoken(tok, allowed):
    enc = tok.to_tiktoken()
    want = enc.encode(TEXT, allowed_special=allowed if isinstance(allowed, str) else set(allowed),
                      disallowed_special=())
    assert tok.encode(TEXT, allowed_special=allowed, disallowed_special=()) == want
    named = set(tok.special_tokens) if allowed == "all" else set(allowed) & set(tok.special_tokens)
    assert [i for i in want if i in tok.special_tokens.values()] == \
        [tok.special_tokens[s] for s in (EOT, PAD, END, EOT, EOT, END) if s in named]


@pytest.mark.parametrize("allowed, refused", [(set(), EOT), ({EOT}, PAD), ({EOT, PAD}, END),
                                              ({"<|nope|>"}, EOT), ([EOT, END], PAD)], ids=repr)
def test_specials_not_allowed_are_refused_by_default(tok, allowed, refused):
    name = refused.replace("|", "[|]")
    with pytest.raises(ValueError, match=rf"special token '{name}', which is disallowed"):
        tok.encode(TEXT, allowed_special=allowed)
    with pytest.raises(ValueError):
        tok.to_tiktoken().encode(TEXT, allowed_special=set(allowed))


def test_allowed_specials_by_hand(tok):
    """Specials become their own ids, everything between them is ordinary text."""
    eot, pad = tok.special_tokens[EOT], tok.special_tokens[PAD]
    text = f"ab{EOT}c{PAD}{END}"
    ids = tok.encode(text, allowed_special={EOT, PAD}, disallowed_special=())
    plain = tok.encode_ordinary
    assert ids == plain("ab") + [eot] + plain("c") + [pad] + plain(END)
    assert tok.encode(text, allowed_special="all") == \
        tok.encode_ordinary("ab") + [eot] + tok.encode_ordinary("c") + [pad, tok.special_tokens[END]]
