"""Training: a hand-worked example, agreement with the reference trainer, specials, errors, streaming.

The reference trainer (`tokenizer/reference.py:train_naive`) recounts every pair of the whole
corpus before each merge, the plain way, and breaks ties the same documented way (highest
count, then the lexicographically greatest pair of byte strings). The real trainer must
produce exactly the same merges.
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.tokenizer import BPETokenizer
from minigrad.tokenizer.count import count_chunks, expand_sources
from minigrad.tokenizer.patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, resolve_pattern
from minigrad.tokenizer.reference import train_naive
from minigrad.tokenizer.train import learn_merges
from tokenizer_corpora import need, sample_text


def reference_merges(texts, num_merges: int, pattern: str, specials=()) -> list[tuple[bytes, bytes]]:
    """The package's reference trainer (`reference.train_naive`), its merges as byte pairs."""
    merges, vocab, _ = train_naive(texts, 256 + num_merges + len(specials), pattern, specials)
    return [(vocab[a], vocab[b]) for a, b in merges]  # dicts keep the order of learning


def train(texts, vocab_size, specials=(), pattern="gpt4", **kw) -> BPETokenizer:
    return BPETokenizer.train(
        texts, vocab_size, special_tokens=specials, pattern=pattern, verbose=False, **kw
    )


def test_hand_worked_example():
    # "aaabdaaabac" is one chunk (all letters). Worked by hand:
    #  pairs aa:4 ab:2 bd:1 da:1 ba:1 ac:1              -> merge (a, a):      aa a b d aa a b a c
    #  (aa,a):2 (a,b):2 ...  tie at 2: ("aa","a") > ("a","b") -> (aa, a):     aaa b d aaa b a c
    #  (aaa,b):2, the rest 1                            -> (aaa, b):          aaab d aaab a c
    #  all 1: greatest first part "d"                   -> (d, aaab):         aaab daaab a c
    #  all 1: "daaab" > "aaab" > "a"                    -> (daaab, a):        aaab daaaba c
    #  all 1: "daaaba" > "aaab"                         -> (daaaba, c):       aaab daaabac
    #  one pair left                                    -> (aaab, daaabac)
    expected = [
        (b"a", b"a"), (b"aa", b"a"), (b"aaa", b"b"), (b"d", b"aaab"),
        (b"daaab", b"a"), (b"daaaba", b"c"), (b"aaab", b"daaabac"),
    ]
    tok = train(["aaabdaaabac"], 256 + len(expected))
    assert tok.merges == expected
    assert tok.encode("aaabdaaabac") == [256 + len(expected) - 1]
    assert tok.vocab[256] == b"aa" and tok.vocab[262] == b"aaabdaaabac"
    assert reference_merges(["aaabdaaabac"], 10, GPT4_SPLIT_PATTERN) == expected


def test_frequencies_across_chunks_by_hand():
    # GPT-2 split: "ab", " ab", " ab", " ba" -> (a,b):3 ( ,a):2 ( ,b):1 (b,a):1 -> merge (a,b);
    # then " ab" = [ ][ab] twice -> ( ,ab):2, ( ,b):1 (b,a):1 -> merge ( , ab); then ( ,b) vs (b,a)
    # at 1: ("b","a") > (" ","b").
    tok = train(["ab ab ab ba"], 259, pattern="gpt2")
    assert tok.merges == [(b"a", b"b"), (b" ", b"ab"), (b"b", b"a")]


def test_special_tokens_split_training_text_and_are_never_merged():
    tok = train(["xy<|endoftext|>xy<|endoftext|>"], 257 + 1, specials=["<|endoftext|>"])
    assert tok.merges == [(b"x", b"y")]  # no pair with "<" or across the boundary exists
    assert tok.special_tokens == {"<|endoftext|>": 257}
    assert tok.eot_token == 257
    assert tok.vocab_size == 258
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="only supports 1 merges"):
            train(["xy<|endoftext|>xy"], 300, specials=["<|endoftext|>"])


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_same_merges_as_reference_trainer_on_shakespeare(pattern):
    text = sample_text(30_000)
    texts = [text[:15_000] + "<|endoftext|>" + text[15_000:]]
    tok = train(texts, 256 + 150 + 1, specials=["<|endoftext|>"], pattern=pattern)
    assert tok.merges == reference_merges(texts, 150, resolve_pattern(pattern), ["<|endoftext|>"])


@pytest.mark.parametrize("pattern, start", [("gpt2", 0), ("gpt4", 500_000)])
def test_same_merges_and_vocab_as_reference_trainer_on_tinyshakespeare(shared_data, pattern, start):
    # A larger slice of the real file (no fallback text): enough rounds that merges build on
    # merges several levels deep, with two special tokens cutting the text.
    text = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")[start : start + 40_000]
    texts = [text[:15_000] + "<|endoftext|>" + text[15_000:30_000] + "<|pad|>", text[30_000:]]
    specials = ["<|endoftext|>", "<|pad|>"]
    tok = train(texts, 256 + 200 + 2, specials=specials, pattern=pattern)
    merges, vocab, special_ids = train_naive(texts, 256 + 200 + 2, pattern, specials)
    assert len(merges) == 200
    assert tok.merges == [(vocab[a], vocab[b]) for a, b in merges]
    assert tok.vocab == vocab and tok.special_tokens == special_ids


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abc d\n", max_size=40), min_size=1, max_size=5), st.integers(1, 30))
def test_same_merges_as_reference_trainer_random(texts, num_merges):
    # A tiny alphabet makes many equal counts, so the tie-break is exercised constantly.
    counts = Counter()
    for t in texts:
        counts.update(regex.findall(GPT4_SPLIT_PATTERN, t))
    assert learn_merges(counts, num_merges) == reference_merges(texts, num_merges, GPT4_SPLIT_PATTERN)


def test_training_is_deterministic_and_parallel_equals_serial(tmp_path):
    text = sample_text(200_000)
    path = tmp_path / "a.txt"
    path.write_text(text, encoding="utf-8")
    serial = train([path], 600, processes=1)
    parallel = train([path], 600, processes=2, block_chars=10_000)
    in_memory = train([text], 600)
    assert serial.merges == parallel.merges == in_memory.merges


def test_streaming_counts_equal_whole_text_counts(tmp_path):
    text = need("books/poe_complete_works.txt").read_text(encoding="utf-8")[:300_000]
    path = tmp_path / "poe.txt"
    path.write_text(text, encoding="utf-8")
    specials = frozenset({"<|endoftext|>"})
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        whole = Counter(regex.findall(pattern, text))
        for block_chars in (1_000, 37_000):
            assert count_chunks([path], pattern, specials, processes=1, block_chars=block_chars) == whole


def test_folder_input_reads_txt_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello hello", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("world", encoding="utf-8")
    (tmp_path / "ignored.md").write_text("zzzz", encoding="utf-8")
    assert [p.name for p in expand_sources(tmp_path)] == ["a.txt", "b.txt"]
    tok = train(tmp_path, 260)
    assert len(tok.merges) == 4
    assert tok.decode(tok.encode("hello world")) == "hello world"


def test_errors():
    with pytest.raises(ValueError, match=r"at least 256 \(bytes\) \+ 2 \(special tokens\) = 258, got 257"):
        train(["abc"], 257, specials=["<a>", "<b>"])
    with pytest.raises(ValueError, match="corpus is empty"):
        train([""], 300)
    with pytest.raises(ValueError, match="corpus is empty"):
        train(["<|endoftext|><|endoftext|>"], 300, specials=["<|endoftext|>"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train([Path("/nonexistent/file.txt")], 300)
    with pytest.raises(TypeError, match="str \\(text\\) or pathlib.Path"):
        train([b"bytes"], 300)
    with pytest.raises(ValueError, match="not a valid `regex`"):
        train(["abc"], 300, pattern="(unclosed")
    with pytest.raises(ValueError, match="non-empty strings"):
        train(["abc"], 300, specials=[""])


def test_bad_file_stops_parallel_counting_cleanly(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("hello world " * 1000, encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"valid start \xff\xfe not utf-8")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        train([good, bad], 300, processes=2, block_chars=1000)


def test_progress_bar_only_when_verbose(capsys):
    BPETokenizer.train(["some text to train on, " * 20], 270, verbose=True)
    err = capsys.readouterr().err
    assert "counting chunks" in err and "merging" in err and "100.0%" in err
    train(["some text to train on, " * 20], 270)
    assert capsys.readouterr().err == ""
