"""tokenizer/hf_json.py: the tokenizer.json + tokenizer_config.json we write make the real
`transformers.AutoTokenizer` give our ids, with our split pattern (issue 19: vocab.json +
merges.txt alone made transformers re-split text the GPT-2 way), for BPEs trained on the shared
books and Tiny Shakespeare with the gpt2 and gpt4 patterns, for GPT-2's own tokenizer and for a
character tokenizer; the files read back (ours and one written by HF's `tokenizers` for GPT-2);
bad files are one-line errors naming the file and the field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import hf_testing
from minigrad.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, ModelFileError
from minigrad.tokenizer.hf_json import (bpe_tokenizer_json, char_tokenizer_json, read_tokenizer_json,
                                        write_tokenizer_files)
from minigrad.training.data import CharTokenizer

TORTURE = ["Hello   world  \n\n  x", "It's 12345 don't I'LL WE'VE", "a\r\n\r\nb\r", "  leading", "trailing   ",
           "é中文 😀 ok\u00a0nbsp", "x<|endoftext|>y  <|endoftext|>", "\t\ttabs\t", "1,234.56!!!???", "   \n", "",
           "ﬁne ｗｉｄｅ Ǆ", "<|endoftext|>"]


def _corpus(shared: Path) -> tuple[list[str], list[str]]:
    """(training texts: the first 300 kB of each book and of Tiny Shakespeare, held-out lines)."""
    files = sorted((shared / "books").glob("*.txt")) + [shared / "tinyshakespeare.txt"]
    assert len(files) >= 4
    train, lines = [], []
    for f in files:
        text = f.read_text(encoding="utf-8")
        train.append(text[:300_000])
        held = [x for x in text[300_000:].splitlines() if x.strip()]
        lines += held[:: max(1, len(held) // 800)][:800]     # ~800 lines spread over the rest
    return train, lines


def _auto(folder: Path):
    tf = hf_testing.transformers()
    return tf.AutoTokenizer.from_pretrained(str(folder))


def _hf_ids(hf_tok, text: str) -> list[int]:
    return hf_tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_trained_bpe_gives_our_ids_in_transformers(tmp_path, shared_data, pattern):
    train, lines = _corpus(shared_data)
    tok = BPETokenizer.train(train, 8000, special_tokens=["<|endoftext|>"], pattern=pattern, verbose=False)
    write_tokenizer_files(tmp_path, bpe_tokenizer_json(tok), tok.special_tokens, model_max_length=256)
    hf_tok = _auto(tmp_path)
    assert hf_tok.eos_token_id == tok.eot_token and hf_tok.model_max_length == 256
    differ = [x for x in lines if _hf_ids(hf_tok, x) != tok.encode(x)]
    assert len(lines) > 2500 and differ == [], f"{len(differ)} of {len(lines)} lines differ, e.g. {differ[:2]}"
    for text in TORTURE:
        ids = tok.encode(text, allowed_special="all")
        assert _hf_ids(hf_tok, text) == ids, text
        assert hf_tok.decode(ids) == text
    # what the export wrote before (vocab.json + merges.txt) splits the GPT-2 way in transformers:
    # with the gpt4 pattern that changes the ids of many lines
    tf = hf_testing.transformers()
    old = tmp_path / "old"
    old.mkdir()
    tok.save_gpt2_files(old / "vocab.json", old / "merges.txt")
    (old / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    legacy = tf.AutoTokenizer.from_pretrained(str(old))
    changed = sum(_hf_ids(legacy, x) != tok.encode(x) for x in lines)
    assert (changed > len(lines) // 100) if pattern == "gpt4" else changed <= len(lines) // 100
    # and the file reads back as the same tokenizer
    back = read_tokenizer_json(tmp_path / "tokenizer.json")
    assert (back.vocab, back.merges, back.special_tokens, back.pattern) == \
        (tok.vocab, tok.merges, tok.special_tokens, tok.pattern)


CUSTOM = r"""'(?i:[sdmt]|ll|ve|re)|\p{L}{1,6}+| ?\p{N}{1,2}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s*[\r\n]|\s+(?!\S)|\s"""


def test_custom_pattern_with_possessive_intervals_gives_our_ids_in_transformers(tmp_path, shared_data):
    """`tokenizers`' regex engine reads X{n,m}+ as a repeat, not as possessive: the file spells it
    (?>X{n,m}), which both engines read alike (written as it is, these lines would differ)."""
    train, lines = _corpus(shared_data)
    tok = BPETokenizer.train([t[:100_000] for t in train], 1000, special_tokens=["<|endoftext|>"],
                             pattern=CUSTOM, verbose=False)
    d = bpe_tokenizer_json(tok)
    assert d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == CUSTOM.replace(
        r"\p{L}{1,6}+", r"(?>\p{L}{1,6})").replace(r"\p{N}{1,2}+", r"(?>\p{N}{1,2})")
    write_tokenizer_files(tmp_path, d, tok.special_tokens)
    hf_tok = _auto(tmp_path)
    lines = lines[::4]
    assert all(_hf_ids(hf_tok, x) == tok.encode(x) for x in lines)
    from tokenizers import Tokenizer
    d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = CUSTOM
    as_written = Tokenizer.from_str(json.dumps(d))
    assert sum(as_written.encode(x).ids != tok.encode(x) for x in lines) > len(lines) // 10
    back = read_tokenizer_json(tmp_path / "tokenizer.json")
    assert [back.encode(x) for x in lines] == [tok.encode(x) for x in lines]


def _gpt2(shared: Path) -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(shared / "gpt2" / "vocab.json", shared / "gpt2" / "merges.txt")


def test_gpt2_tokenizer_through_our_file_and_through_hfs_own(tmp_path, shared_data):
    gpt2 = _gpt2(shared_data)
    _, lines = _corpus(shared_data)
    lines = lines[::3]
    write_tokenizer_files(tmp_path / "ours", bpe_tokenizer_json(gpt2), gpt2.special_tokens, 1024)
    hf_tok = _auto(tmp_path / "ours")
    assert all(_hf_ids(hf_tok, x) == gpt2.encode(x) for x in lines)
    assert all(_hf_ids(hf_tok, t) == gpt2.encode(t, allowed_special="all") for t in TORTURE)
    assert _hf_ids(hf_tok, "Hello world<|endoftext|>") == [15496, 995, 50256]
    # GPT-2's tokenizer.json as HF's `tokenizers` writes it (ByteLevel with GPT-2's regex)
    hf = hf_testing.save_hf_gpt2_tokenizer(shared_data / "gpt2", tmp_path / "hf.json")
    assert json.loads((tmp_path / "hf.json").read_text())["pre_tokenizer"]["use_regex"] is True
    back = read_tokenizer_json(tmp_path / "hf.json")
    assert back.pattern == GPT2_SPLIT_PATTERN and back.eot_token == 50256
    assert back.vocab == gpt2.vocab and back.merges == gpt2.merges
    assert all(back.encode(x) == hf.encode(x).ids == gpt2.encode(x) for x in lines)


def test_char_tokenizer_in_transformers(tmp_path, shared_data):
    text = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")
    tok = CharTokenizer.from_text([text])
    write_tokenizer_files(tmp_path, char_tokenizer_json(tok.chars), {}, 64)
    hf_tok = _auto(tmp_path)
    lines = text.splitlines(keepends=True)[:2000:7] + ["  two  spaces\n\n", "A"]
    for line in lines:
        ids = tok.encode(line)
        assert _hf_ids(hf_tok, line) == ids, line
        assert hf_tok.decode(ids) == line
    assert read_tokenizer_json(tmp_path / "tokenizer.json") == tok.chars
    with pytest.raises(Exception, match=r"(?i)unk|missing"):        # "é" is not a Shakespeare character
        hf_tok("café")
    with pytest.raises(ValueError, match="not in this character vocabulary"):
        tok.encode("café")


def _bpe_file(tmp_path: Path, change) -> Path:
    tok = BPETokenizer.train(["hello world, hello there " * 20], 270, special_tokens=["<|endoftext|>"],
                             verbose=False)
    d = bpe_tokenizer_json(tok)
    replaced = change(d)
    d = replaced if isinstance(replaced, str) else d
    path = tmp_path / "tokenizer.json"
    path.write_text(d if isinstance(d, str) else json.dumps(d))
    return path


BAD = [
    ("not JSON", lambda d: "{oops", r"not valid JSON"),
    ("a list", lambda d: "[]", r"expected a JSON object \(a tokenizers file\), got a list"),
    ("WordPiece", lambda d: d["model"].update(type="WordPiece"), r"model type 'WordPiece' is not supported"),
    ("normalizer", lambda d: d.update(normalizer={"type": "NFC"}), r"has a normalizer"),
    ("byte fallback", lambda d: d["model"].update(byte_fallback=True), r"model.byte_fallback=True is not supported"),
    ("prefix space", lambda d: d["pre_tokenizer"]["pretokenizers"][1].update(add_prefix_space=True),
     r"add_prefix_space=true"),
    ("Metaspace", lambda d: d.update(pre_tokenizer={"type": "Metaspace"}), r"is not byte-level"),
    ("no vocab", lambda d: d["model"].pop("vocab"), r"missing field model.'vocab'"),
    ("bad merge", lambda d: d["model"]["merges"].append("onlyone"), r"model.merges\[\d+\] is 'onlyone'"),
    ("id a string", lambda d: d["model"]["vocab"].update({"zz": "7"}), r"model.vocab\['zz'\] is '7'"),
]


@pytest.mark.parametrize("name,change,message", BAD, ids=[b[0] for b in BAD])
def test_bad_tokenizer_json_is_one_line_naming_the_file(tmp_path, name, change, message):
    path = _bpe_file(tmp_path, change)
    with pytest.raises(ModelFileError, match=message) as err:
        read_tokenizer_json(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
