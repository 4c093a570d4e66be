"""Encoding: identical ids to tiktoken (GPT-2's files and a tokenizer we trained), round trips,
special-token rules, streaming, the cache bound and decode errors.

tiktoken is the oracle: we build a `tiktoken.Encoding` from the same ranks, pattern and
special tokens and compare over real chunks of every shared corpus and over hypothesis text
made of the hard cases (emoji, CJK, combining marks, control characters, long whitespace
runs, text that nearly matches a special token).
"""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.tokenizer import BPETokenizer
from minigrad.tokenizer.merge import LONG_CHUNK, _bpe_heap, _bpe_scan
from tokenizer_corpora import EOT, corpus_slices, need, sample_text, shared_data_dir

tiktoken = pytest.importorskip("tiktoken", reason="tiktoken is the oracle for these tests")


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    gpt2_dir = need("gpt2")
    return BPETokenizer.from_gpt2_files(gpt2_dir / "vocab.json", gpt2_dir / "merges.txt")


@pytest.fixture(scope="module")
def trained() -> dict[str, BPETokenizer]:
    """Tokenizers we trained, one per built-in pattern (on Shakespeare + a unicode-rich text)."""
    text = sample_text(300_000)
    extra = "Grüße, naïve café — 東京 日本語 😀👍🏽 ½ ２０２４年 \t\r\n" * 50
    with warnings.catch_warnings():
        # The small fallback text (no shared data) supports fewer merges than asked: fine here.
        warnings.simplefilter("ignore", UserWarning)
        return {
            p: BPETokenizer.train([text, extra], 2000, [EOT, "<|pad|>"], pattern=p, verbose=False)
            for p in ("gpt2", "gpt4")
        }


def all_tokenizers(gpt2, trained):
    found = [("gpt2-files", gpt2)] if gpt2 is not None else []
    return found + [(f"trained-{p}", t) for p, t in trained.items()]


@pytest.fixture(scope="module")
def gpt2_or_none() -> BPETokenizer | None:
    """GPT-2's tokenizer if its files are present: the tests over all tokenizers still run without it."""
    gpt2_dir = shared_data_dir() / "gpt2"
    if not (gpt2_dir / "vocab.json").exists():
        return None
    return BPETokenizer.from_gpt2_files(gpt2_dir / "vocab.json", gpt2_dir / "merges.txt")


# ---------------------------------------------------------------------------------------------
# tiktoken parity


def test_gpt2_known_ids(gpt2):
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.eot_token == 50256 and gpt2.n_vocab == 50257
    assert gpt2.encode(EOT, allowed_special="all") == [50256]
    assert gpt2.encode(EOT, disallowed_special=()) == [27, 91, 437, 1659, 5239, 91, 29]


@pytest.mark.parametrize("which", ["gpt2-files", "trained-gpt2", "trained-gpt4"])
def test_identical_to_tiktoken_on_shared_corpora(gpt2_or_none, trained, which):
    tok = dict(all_tokenizers(gpt2_or_none, trained)).get(which)
    if tok is None:
        pytest.skip(f"shared data {shared_data_dir() / 'gpt2'} is absent")
    enc = tok.to_tiktoken()
    slices = corpus_slices()
    if not slices:
        pytest.skip(f"no shared corpus under {shared_data_dir()}")
    for name, text in slices:
        ours = tok.encode_ordinary(text)
        assert ours == enc.encode_ordinary(text), f"{which} differs from tiktoken on {name}"
        assert tok.decode(ours) == text
        with_specials = text[:5000] + EOT + text[5000:10000] + EOT
        expected = enc.encode(with_specials, allowed_special="all")
        assert tok.encode(with_specials, allowed_special="all") == expected


NEAR_SPECIAL = [EOT, "<|endoftext|", "|endoftext|>", "<|endoftext|>>", "<<|endoftext|>", "<|endoftex|>",
                "<|EndOfText|>", "<|pad|>", "<|pad|", "<|endoftext|><|pad|>"]
# Emoji (with ZWJ sequences and flags), CJK, combining marks, control and odd space characters.
HARD_PIECES = [
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "中文字符", "日本語の", "한국어",
    "e\u0301", "\u0300\u0301\u0302", "a\u0308\u0323",
    "\x00", "\x07", "\x1b[0m", "\r\n", "\t", "\u00a0", "\u2028", "\u3000", "\ufeff", "\u200b",
    "'s", "'LL", "'Re", "123456789", "١٢٣", "½", "…", "   ", "\n\n\n", " \n ", "\ufffd",
]

hard_text = st.lists(
    st.one_of(
        st.text(max_size=12),  # any unicode (hypothesis leaves out lone surrogates)
        st.sampled_from(HARD_PIECES + NEAR_SPECIAL),
        st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u3000", max_size=300),  # long whitespace runs
        st.text(alphabet=st.characters(categories=["Mn", "Me", "Cc", "Cf", "So", "Lo", "Nd"]), max_size=12),
    ),
    max_size=25,
).map("".join)


@pytest.fixture(scope="module")
def encodings(gpt2_or_none, trained):
    return [(name, tok, tok.to_tiktoken()) for name, tok in all_tokenizers(gpt2_or_none, trained)]


@settings(max_examples=200, deadline=None)
@given(text=hard_text)
def test_identical_to_tiktoken_on_hard_unicode(encodings, text):
    for name, tok, enc in encodings:
        assert tok.encode_ordinary(text) == enc.encode_ordinary(text), name
        assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all"), name
        allowed = {EOT}
        disallowed = ()
        assert tok.encode(text, allowed_special=allowed, disallowed_special=disallowed) == enc.encode(
            text, allowed_special=allowed, disallowed_special=disallowed
        ), name


@settings(max_examples=200, deadline=None)
@given(text=hard_text)
def test_decode_encode_round_trip(encodings, text):
    for name, tok, _ in encodings:
        assert tok.decode(tok.encode_ordinary(text)) == text, name
        assert tok.decode(tok.encode(text, allowed_special="all")) == text, name


def test_long_runs_match_tiktoken(encodings):
    # Chunks far longer than LONG_CHUNK take the heap path; tiktoken is the oracle.
    texts = [" " * 5000 + "x", "a" * 3000, "\n" * 2000 + "y", "9" * 999, "😀" * 700, "ab" * 2000,
             "!?" * 1500]
    for name, tok, enc in encodings:
        for text in texts:
            assert tok.encode_ordinary(text) == enc.encode_ordinary(text), (name, text[:10])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2, max_size=LONG_CHUNK))
def test_heap_merge_equals_scan_merge(gpt2, piece):
    assert _bpe_heap(piece, gpt2._ranks) == _bpe_scan(piece, gpt2._ranks)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ab \n", max_size=LONG_CHUNK))
def test_heap_merge_equals_scan_merge_repetitive(trained, text):
    ranks = trained["gpt4"]._ranks
    piece = text.encode()
    if len(piece) >= 2:
        assert _bpe_heap(piece, ranks) == _bpe_scan(piece, ranks)


# ---------------------------------------------------------------------------------------------
# special tokens


def test_special_token_rules(trained):
    tok = trained["gpt4"]
    eot, pad = tok.special_tokens[EOT], tok.special_tokens["<|pad|>"]
    text = f"a{EOT}b<|pad|>c"
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>', which is disallowed"):
        tok.encode(text)
    with pytest.raises(ValueError, match=r"'<\|pad\|>', which is disallowed"):
        tok.encode(text, allowed_special={EOT})
    ids = tok.encode(text, allowed_special="all")
    assert eot in ids and pad in ids
    only_eot = tok.encode(text, allowed_special={EOT}, disallowed_special=())
    assert eot in only_eot and pad not in only_eot
    assert tok.encode(text, disallowed_special=()) == tok.encode_ordinary(text)
    assert eot not in tok.encode_ordinary(text)
    assert tok.decode(ids) == text
    assert tok.token_bytes(eot) == EOT.encode() and tok.token_id(EOT) == eot


def test_encode_batch(trained):
    tok = trained["gpt2"]
    texts = ["hello", f"x{EOT}", ""]
    expected = [tok.encode(t, allowed_special="all") for t in texts]
    assert tok.encode_batch(texts, allowed_special="all") == expected


def test_lone_surrogates_are_replaced_like_tiktoken(gpt2):
    enc = gpt2.to_tiktoken()
    text = "a\ud800b"
    assert gpt2.encode(text) == enc.encode(text) == gpt2.encode("a\ufffdb")


# ---------------------------------------------------------------------------------------------
# streaming and the cache


@settings(max_examples=50, deadline=None)
@given(text=hard_text, cuts=st.lists(st.integers(0, 400), max_size=8), block=st.integers(1, 64))
def test_encode_iterable_equals_encode(trained, text, cuts, block):
    tok = trained["gpt4"]
    text = text + " word next " + text
    bounds = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0] + bounds, bounds + [len(text)])]
    for kw in ({}, {"allowed_special": "all"}):
        expected = tok.encode(text, disallowed_special=(), **kw)
        assert list(tok.encode_iterable(pieces, block_chars=block, disallowed_special=(), **kw)) == expected


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_encode_file_streams_and_equals_encode(trained, tmp_path, pattern):
    tok = trained[pattern]
    text = need("books/poe_complete_works.txt").read_text(encoding="utf-8")[:200_000]
    path = tmp_path / "poe.txt"
    path.write_text(text, encoding="utf-8")
    assert list(tok.encode_file(path, block_chars=3000)) == tok.encode(text)


def test_cache_stays_bounded_and_results_unchanged(trained):
    tok = trained["gpt4"]
    small = BPETokenizer(tok.vocab, tok.merges, tok.special_tokens, tok.pattern, cache_size=50)
    none = BPETokenizer(tok.vocab, tok.merges, tok.special_tokens, tok.pattern, cache_size=0)
    text = sample_text(50_000)
    assert small.encode(text) == none.encode(text) == tok.encode(text)
    assert len(small._cache) <= 50 and len(none._cache) == 0


# ---------------------------------------------------------------------------------------------
# decoding


def test_decode_errors_and_replacement(gpt2):
    with pytest.raises(ValueError, match=r"unknown token id 50257: expected an int id .* \(0..50256\)"):
        gpt2.decode([1, 50257])
    with pytest.raises(ValueError, match="unknown token id -1"):
        gpt2.decode([-1])
    with pytest.raises(ValueError, match="unknown token id 50300"):
        gpt2.decode(i for i in [1, 2, 50300])  # a generator works too, error included
    with pytest.raises(ValueError, match="unknown token id 'a'"):
        gpt2.decode(["a"])
    with pytest.raises(ValueError, match="unknown token id"):
        gpt2.token_bytes(10**9)
    # A token holding half of a UTF-8 character decodes to U+FFFD, like tiktoken.
    enc = gpt2.to_tiktoken()
    ids = gpt2.encode("😀")
    assert gpt2.decode(ids[:1]) == enc.decode(ids[:1]) and "\ufffd" in gpt2.decode(ids[:1])
    assert gpt2.decode_bytes(ids) == "😀".encode()
    assert gpt2.decode([]) == ""


# ---------------------------------------------------------------------------------------------
# the word-level fast path (str.split(" ") + word cache) against the plain regex split


@settings(max_examples=200, deadline=None)
@given(text=hard_text)
def test_word_split_path_equals_regex_path(trained, text):
    # Wrapping the pattern in a group keeps its matches but makes it "custom", so that tokenizer
    # takes the regex-only path; the built-in one takes the word path.
    for tok in trained.values():
        assert tok._words is not None
        plain = BPETokenizer(tok.vocab, tok.merges, tok.special_tokens, f"(?:{tok.pattern})")
        assert plain._words is None
        for t in (text, " " + text, text + "  x", "a  \n  b " + text + " \t "):
            assert tok.encode_ordinary(t) == plain.encode_ordinary(t)


def test_isspace_covers_regex_whitespace():
    # _WordCache relies on str.isspace being true for every character the patterns' \s matches.
    import regex
    ws = regex.compile(r"\s")
    assert not [c for c in map(chr, range(0x110000)) if ws.match(c) and not c.isspace()]
