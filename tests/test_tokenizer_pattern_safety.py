"""A split pattern from a file or checkpoint cannot hang us; a str path is not training text.

`(a|aa)+$` is a textbook catastrophic regex: on 40 a's and a non-a it tries every way to split
the run (Fibonacci(40) ~ 1e8 paths). Before the guard, loading or using such a pattern hung.
The brief's `(a+)+$` is shown too: the `regex` module recognises and defuses that one, so it is
accepted and fast, which is the point of probing rather than refusing by the look of a pattern.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from minigrad.training.data import tokenizer_from_json, tokenizer_to_json
from minigrad.tokenizer import BPETokenizer, ModelFileError, SplitPatternError
from minigrad.tokenizer import patterns
from minigrad.tokenizer.patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, resolve_pattern

CATASTROPHIC = r"(a|aa)+$"
# Passes the load-time probe (it has no q's) but backtracks on a run of q's: only the per-call
# budget can catch it.
LATENT = r"(?:q|qq)+$|\s+|[^q\s]+|q"


def _bytes_vocab():
    return {i: bytes([i]) for i in range(256)}


@pytest.fixture
def tight_budget(monkeypatch):
    """Small time budgets so a refused pattern costs a fraction of a second here."""
    monkeypatch.setattr(patterns, "PROBE_TIMEOUT_S", 0.05)
    monkeypatch.setattr(patterns, "CUSTOM_TIMEOUT_S", 0.05)


def test_builtin_names_and_exact_strings_are_trusted():
    assert resolve_pattern("gpt2") == GPT2_SPLIT_PATTERN
    assert resolve_pattern(GPT4_SPLIT_PATTERN) == GPT4_SPLIT_PATTERN
    tok = BPETokenizer(_bytes_vocab(), [], pattern=GPT2_SPLIT_PATTERN)   # as read from an old file
    assert tok.encode("hi there") == list(b"hi there")
    assert not isinstance(patterns.compile_pattern(GPT2_SPLIT_PATTERN), patterns.GuardedPattern)


def test_catastrophic_pattern_is_refused_at_load(tight_budget):
    start = time.monotonic()
    with pytest.raises(SplitPatternError, match=r"custom split pattern '\(a\|aa\)\+\$' took longer"):
        BPETokenizer(_bytes_vocab(), [], pattern=CATASTROPHIC)
    assert time.monotonic() - start < 5


def test_catastrophic_pattern_from_a_model_file(tmp_path, tight_budget):
    path = tmp_path / "t.model"
    BPETokenizer(_bytes_vocab(), [], pattern=r"\w+|\s+|.").save(path)
    text = path.read_text(encoding="utf-8").replace(json.dumps(r"\w+|\s+|."), json.dumps(CATASTROPHIC))
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelFileError, match="backtracks catastrophically"):
        BPETokenizer.load(path)


def test_catastrophic_pattern_from_checkpoint_json(tight_budget):
    """models.data.tokenizer_from_json (how train.py/sample.py restore a tokenizer from a
    checkpoint) goes through the same check."""
    good = tokenizer_to_json(BPETokenizer(_bytes_vocab(), [], pattern=r"\w+|\s+|."))
    d = json.loads(good)
    d["model"] = d["model"].replace(json.dumps(r"\w+|\s+|."), json.dumps(CATASTROPHIC))
    with pytest.raises(ValueError, match=r"\(a\|aa\)\+\$"):
        tokenizer_from_json(json.dumps(d))


def test_latent_catastrophe_hits_the_per_call_budget(tight_budget):
    tok = BPETokenizer(_bytes_vocab(), [], pattern=LATENT)          # probe passes
    assert tok.encode("ab q c") == list(b"ab q c")
    start = time.monotonic()
    with pytest.raises(SplitPatternError, match=r"\(\?:q\|qq\)\+\$.* on 41 characters"):
        tok.encode("q" * 40 + "!")
    assert time.monotonic() - start < 5
    with pytest.raises(SplitPatternError, match="took longer"):      # training splits too
        BPETokenizer.train(["q" * 40 + "!"], vocab_size=260, pattern=LATENT, verbose=False)


def test_brief_example_is_defused_by_regex():
    """(a+)+$ on 'a'*40+'b' would be exponential in a naive engine; `regex` handles it, so the
    guard lets it through and it splits as expected."""
    tok = BPETokenizer(_bytes_vocab(), [], pattern=r"(?:a+)+$|[^a]+|a+")
    assert tok.decode(tok.encode("a" * 40 + "b")) == "a" * 40 + "b"


def test_overlong_and_invalid_patterns():
    with pytest.raises(SplitPatternError, match="longer than 4096 characters"):
        resolve_pattern("a" * 5000)
    with pytest.raises(SplitPatternError, match="not a valid `regex` expression"):
        resolve_pattern("(unclosed")
    with pytest.raises(ValueError, match="non-empty regex string"):
        resolve_pattern("")


def test_capturing_groups_still_split_into_whole_matches():
    """findall would return only the groups' text (silently dropping the rest); chunks are whole
    matches, as in tiktoken."""
    tok = BPETokenizer(_bytes_vocab(), [], pattern=r"(\w)+|(\s)+|.")
    assert patterns.compile_pattern(r"(\w)+|(\s)+|.").findall("ab  c!") == ["ab", "  ", "c", "!"]
    assert tok.decode(tok.encode("ab  c!")) == "ab  c!"


def test_guarded_pattern_pickles():
    import pickle
    g = patterns.compile_pattern(r"\w+|\s+")
    assert isinstance(g, patterns.GuardedPattern)
    assert pickle.loads(pickle.dumps(g)).findall("a b") == ["a", " ", "b"]


# ----------------------------------------------------------------------------- str that is a path
@pytest.mark.parametrize("as_list", [False, True])
def test_train_refuses_a_str_naming_a_file(tmp_path, as_list):
    f = tmp_path / "input.txt"
    f.write_text("hello world " * 50, encoding="utf-8")
    arg = [str(f)] if as_list else str(f)
    with pytest.raises(ValueError, match=r"names an existing file.*pathlib\.Path"):
        BPETokenizer.train(arg, vocab_size=260, verbose=False)
    tok = BPETokenizer.train(Path(f), vocab_size=260, verbose=False)       # the fix works
    # it learned from the file's text, not from the characters of its path
    assert all(tok.token_bytes(i) in b"hello world hello world" for i in range(256, 260))


def test_train_refuses_a_str_naming_a_folder(tmp_path):
    with pytest.raises(ValueError, match="names an existing folder"):
        BPETokenizer.train([str(tmp_path)], vocab_size=260, verbose=False)


def test_text_that_is_not_a_path_still_trains(tmp_path):
    tok = BPETokenizer.train(["no such file.txt", "x" * 10_000, "line\nbreak"], vocab_size=258,
                             verbose=False)
    assert tok.n_vocab == 258


def test_a_path_among_real_text_only_warns(tmp_path):
    """A corpus of short documents may contain one that happens to be a path ("data"): warn."""
    f = tmp_path / "notes.txt"
    f.write_text("x", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"names an existing file.*pathlib\.Path"):
        tok = BPETokenizer.train(["some real text here", str(f)], vocab_size=257, verbose=False)
    assert tok.n_vocab == 257
