"""The readable reference (`tokenizer/reference.py`) by hand, and the fast path held equal to it.

First the reference's pieces on examples small enough to work out on paper (minbpe's and
Wikipedia's "aaabdaaabac"); the expected values are written here, not computed by the code
under test. Then the fast encoder (`BPETokenizer.encode`, `merge.encode_chunk`) against
`reference.encode` / `reference.encode_chunk`: on tokenizers we trained, on GPT-2's files, on
real text, on random text, with special tokens. The fast *trainer* against
`reference.train_naive` is in test_tokenizer_train.py.
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigrad.tokenizer import BPETokenizer, reference
from minigrad.tokenizer.merge import LONG_CHUNK, _bpe_scan, encode_chunk
from minigrad.tokenizer.reference import (encode_chunk as reference_encode_chunk, get_stats, merge,
                                          split_on_special_tokens, train_naive)
from tokenizer_corpora import EOT, corpus_slices, sample_text

A, B, C, D = 97, 98, 99, 100  # the bytes of "a", "b", "c", "d"

# ---------------------------------------------------------------------------------------------
# the reference by hand


def test_get_stats_by_hand():
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}  # minbpe's example
    # "aaabdaaabac": aa aa | ab | bd | da aa aa | ab | ba | ac
    assert get_stats(list(b"aaabdaaabac")) == {(A, A): 4, (A, B): 2, (B, D): 1, (D, A): 1,
                                               (B, A): 1, (A, C): 1}
    assert get_stats([7, 7, 7]) == {(7, 7): 2}  # overlapping pairs are all counted
    assert get_stats([]) == {} and get_stats([5]) == {}
    counts = get_stats([1, 2])
    assert get_stats([1, 2, 1], counts) is counts  # adds to the given dict
    assert counts == {(1, 2): 2, (2, 1): 1}


def test_merge_by_hand():
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]  # minbpe's example
    assert merge(list(b"aaabdaaabac"), (A, A), 256) == [256, A, B, D, 256, A, B, A, C]
    assert merge([7, 7, 7], (7, 7), 9) == [9, 7]  # left to right, non-overlapping
    assert merge([7, 7, 7, 7], (7, 7), 9) == [9, 9]
    assert merge([1, 2, 1], (2, 1), 5) == [1, 5]  # at the very end
    assert merge([1, 3, 2], (1, 2), 5) == [1, 3, 2]  # not adjacent: unchanged
    assert merge([], (1, 2), 5) == []


MERGES_AAAB = {(A, A): 256, (256, A): 257, (257, B): 258}  # aa, aaa, aaab


def test_encode_chunk_by_hand():
    # a a a b -> (a,a) has the lowest id: [aa, a, b] -> (aa,a)=257: [aaa, b] -> (aaa,b)=258
    assert reference_encode_chunk(b"aaab", MERGES_AAAB) == [258]
    # a a a a -> [aa, aa]; (aa, aa) was never learned
    assert reference_encode_chunk(b"aaaa", MERGES_AAAB) == [256, 256]
    # b a a a -> [b, aa, a] -> [b, aaa]; (b, aaa) was never learned
    assert reference_encode_chunk(b"baaa", MERGES_AAAB) == [B, 257]
    # d a a b -> [d, aa, b]: (d, aa) and (aa, b) were never learned
    assert reference_encode_chunk(b"daab", MERGES_AAAB) == [D, 256, B]
    assert reference_encode_chunk(b"", MERGES_AAAB) == [] and reference_encode_chunk(b"a", {}) == [A]


def test_where_the_two_merge_rules_differ():
    # The case the docstrings describe: merges (b,c), (a,b), (ab,c). "abc" -> [a, bc] in both;
    # the reference then stops ((a, bc) is not a learned pair), tiktoken's rule looks up the
    # joined bytes "abc", a token, and merges. Training never produces such a list.
    pairs = [(b"b", b"c"), (b"a", b"b"), (b"ab", b"c")]
    merges, vocab = reference.merges_from_pairs(pairs)
    assert merges == {(B, C): 256, (A, B): 257, (257, C): 258}
    assert reference_encode_chunk(b"abc", merges) == [A, 256]
    assert encode_chunk(b"abc", {token: i for i, token in vocab.items()}) == [258]


def test_split_on_special_tokens_by_hand():
    assert split_on_special_tokens("a<|eot|>b", ["<|eot|>"]) == ["a", "<|eot|>", "b"]
    assert split_on_special_tokens("<|eot|>", ["<|eot|>"]) == ["", "<|eot|>", ""]
    assert split_on_special_tokens("a<|eot|>b", []) == ["a<|eot|>b"]
    # one special is a prefix of another: the longer wins wherever it is present
    assert split_on_special_tokens("x<|a|>by<|a|>", ["<|a|>", "<|a|>b"]) == ["x", "<|a|>b", "y", "<|a|>", ""]


def test_train_naive_by_hand():
    # The special token cuts the text; GPT-2 split: "ab", " ab", " ab", " ba" | "ba".
    # (a,b):3 -> 256 "ab". Now [ab] [ ,ab] [ ,ab] [ ,b,a] [b,a]: ( ,ab):2 and (b,a):2 tie, and
    # the greater first token wins, b"b" > b" " -> (b,a) = 257 "ba". Then ( ,ab):2 beats
    # ( ,ba):1 -> ( ,ab) = 258 " ab". The special token comes last, 259.
    merges, vocab, specials = train_naive(["ab ab ab ba<|eot|>ba"], 256 + 3 + 1, "gpt2", ["<|eot|>"])
    assert merges == {(A, B): 256, (B, A): 257, (32, 256): 258}
    assert vocab[256] == b"ab" and vocab[257] == b"ba" and vocab[258] == b" ab"
    assert specials == {"<|eot|>": 259} and vocab[259] == b"<|eot|>"
    assert len(vocab) == 260
    # Asked for more merges than the text has pairs: stops early. "ab" is one chunk -> 1 merge.
    merges, vocab, specials = train_naive(["ab"], 300)
    assert merges == {(A, B): 256} and len(vocab) == 257 and specials == {}


def test_reference_encode_by_hand():
    merges, vocab, specials = train_naive(["ab ab ab ba<|eot|>ba"], 256 + 3 + 1, "gpt2", ["<|eot|>"])
    # chunks "ab" -> [ab]; " ba" -> [" ", ba] (( , ba) was never learned); " ab" -> [" ", ab] ->
    # [" ab"]; then the special token; then "ba" -> [ba]
    assert reference.encode("ab ba ab<|eot|>ba", merges, "gpt2", specials) == [256, 32, 257, 258, 259, 257]
    # without specials the text of the special token is ordinary bytes
    assert reference.encode("<|eot|>", merges, "gpt2") == list(b"<|eot|>")


# ---------------------------------------------------------------------------------------------
# the fast path equals the reference


@functools.lru_cache(maxsize=None)
def reference_model(tok: BPETokenizer) -> tuple[dict, dict[int, bytes], dict[str, int]]:
    """(merges, vocab, specials) in the reference's ids for `tok`'s merges and special tokens."""
    merges, vocab = reference.merges_from_pairs(tok.merges)
    specials = {s: len(vocab) + n for n, s in enumerate(tok.special_tokens)}
    vocab.update({i: s.encode("utf-8") for s, i in specials.items()})
    return merges, vocab, specials


def reference_ids(tok: BPETokenizer, text: str) -> list[int]:
    """`reference.encode` of `text` with `tok`'s merges and special tokens (all allowed), its ids
    translated to `tok`'s through the token bytes (GPT-2 numbers its 256 single bytes its own way)."""
    merges, vocab, specials = reference_model(tok)
    id_of = {token: i for i, token in tok.vocab.items()}
    return [id_of[vocab[i]] for i in reference.encode(text, merges, tok.pattern, specials)]


@pytest.fixture(scope="module")
def trained() -> dict[str, BPETokenizer]:
    """Tokenizers trained by the fast trainer, one per built-in pattern."""
    text = sample_text(100_000)
    extra = "Grüße, naïve café — 東京 日本語 😀👍🏽 ½ ２０２４年 \t\r\n" * 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fallback text supports fewer merges
        return {p: BPETokenizer.train([text, extra], 1200, [EOT, "<|pad|>"], pattern=p, verbose=False)
                for p in ("gpt2", "gpt4")}


@functools.lru_cache(maxsize=1)
def _load_gpt2(folder: Path) -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(folder / "vocab.json", folder / "merges.txt")


@pytest.fixture
def gpt2_tokenizer(shared_data) -> BPETokenizer:
    """GPT-2's tokenizer from the shared data (loaded once; the test skips when the data is absent)."""
    return _load_gpt2(shared_data / "gpt2")


def test_trained_ids_are_literally_the_references(trained):
    # A trained vocab numbers bytes 0..255 and merges from 256 like the reference: no translation.
    tok = trained["gpt4"]
    merges, vocab, specials = reference_model(tok)
    assert specials == tok.special_tokens and vocab == tok.vocab
    text = f"Hello there, naïve café 東京 {EOT} and 1234567 <|pad|>!\n\n  x"
    ids = tok.encode(text, allowed_special="all")
    assert ids == reference.encode(text, merges, "gpt4", specials)
    assert len(ids) < len(text.encode("utf-8")) - 10  # merges really happened


def test_fast_encoder_equals_reference_on_real_text(trained):
    for name, text in corpus_slices() or [("fallback", sample_text(50_000))]:
        text = text[:20_000] + EOT + text[20_000:40_000] + "<|pad|>" + text[40_000:50_000]
        for pattern, tok in trained.items():
            assert tok.encode(text, allowed_special="all") == reference_ids(tok, text), (pattern, name)


def test_gpt2_encoder_equals_reference_on_real_text(gpt2_tokenizer):
    tok = gpt2_tokenizer
    slices = corpus_slices()
    assert slices, "shared data present but no corpus found"
    for name, text in slices:
        text = text[:15_000] + EOT + text[15_000:30_000] + EOT
        assert tok.encode(text, allowed_special="all") == reference_ids(tok, text), name
    assert tok.encode("Hello world") == reference_ids(tok, "Hello world") == [15496, 995]


def test_gpt2_every_token_encodes_to_itself_in_both(gpt2_tokenizer):
    # The fast path returns a chunk that is already a token with one lookup; this is right only
    # if the reference, replaying the merges, builds that same token from its bytes. The scan
    # (no shortcut) must also agree, token by token.
    tok = gpt2_tokenizer
    merges, vocab = reference.merges_from_pairs(tok.merges)
    ranks = tok.mergeable_ranks
    for i, token in vocab.items():
        assert reference_encode_chunk(token, merges) == [i], token
        assert _bpe_scan(token, ranks) == [ranks[token]], token


LONG_TEXTS = [" " * 600 + "x", "a" * 700, "ab" * 400, "😀" * 100, "\n" * 300 + "y", "!?" * 200]


def test_long_chunks_take_the_heap_and_still_equal_the_reference(trained, shared_data):
    tokenizers = list(trained.values()) + [_load_gpt2(shared_data / "gpt2")]
    for text in LONG_TEXTS:
        for tok in tokenizers:
            chunks = reference.split_into_chunks(text, tok.pattern)
            assert max(len(c.encode("utf-8")) for c in chunks) > LONG_CHUNK  # the heap path runs
            assert tok.encode_ordinary(text) == reference_ids(tok, text), (tok.pattern[:10], text[:10])


# Text made of what tokenizers find hard: any unicode, emoji and CJK, whitespace runs, digits,
# contractions and text that nearly matches a special token.
PIECES = ["😀", "👍🏽", "东京", "e\u0301", "\r\n", "\t", "\u00a0", "'s", "'LL", "123456789", "½",
          EOT, "<|endoftext|", "|endoftext|>", "<|pad|>", "<|pad|", "<<|pad|>>"]
random_text = st.lists(
    st.one_of(st.text(max_size=10), st.sampled_from(PIECES), st.text(alphabet=" \t\n\r", max_size=40),
              st.text(alphabet="the quick brown fox", max_size=30)),
    max_size=20,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=random_text)
def test_fast_encoder_equals_reference_on_random_text(trained, text):
    for pattern, tok in trained.items():
        assert tok.encode(text, allowed_special="all") == reference_ids(tok, text), pattern
        merges = reference_model(tok)[0]
        assert tok.encode_ordinary(text) == reference.encode(text, merges, pattern), pattern


# gpt2_tokenizer is function-scoped (as shared_data is) but returns the same unchanged object.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=random_text)
def test_gpt2_encoder_equals_reference_on_random_text(gpt2_tokenizer, text):
    assert gpt2_tokenizer.encode(text, allowed_special="all") == reference_ids(gpt2_tokenizer, text)


@settings(max_examples=60, deadline=None)
@given(train_texts=st.lists(st.text(alphabet="abc d\n", min_size=1, max_size=50), min_size=1, max_size=4),
       num_merges=st.integers(1, 25),
       texts=st.lists(st.text(alphabet="abcd \n", max_size=60), max_size=5))
def test_train_then_encode_end_to_end_equals_reference(train_texts, num_merges, texts):
    # Tiny alphabets: many tied counts while training, many repeated pairs while encoding.
    merges, vocab, specials = train_naive(train_texts, 256 + num_merges + 1, "gpt4", [EOT])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny texts support fewer merges
        tok = BPETokenizer.train(train_texts, 256 + num_merges + 1, [EOT], "gpt4", verbose=False)
    assert tok.vocab == vocab and tok.special_tokens == specials
    text = EOT.join(texts)
    assert tok.encode(text, allowed_special="all") == reference.encode(text, merges, "gpt4", specials)
