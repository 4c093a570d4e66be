"""Interchange and files: save/load, GPT-2 and tiktoken round trips, constructor checks,
corrupt-file errors, and the command line."""
from __future__ import annotations

import json

import pytest

from minigrad.tokenizer import BPETokenizer, ModelFileError
from minigrad.tokenizer.cli import main
from minigrad.tokenizer.io import escape_bytes, unescape_bytes
from tokenizer_corpora import EOT, need, sample_text


@pytest.fixture(scope="module")
def sample() -> str:
    return sample_text(100_000) + " Grüße 東京 😀 \x00\\ \t"


@pytest.fixture(scope="module")
def tok(sample) -> BPETokenizer:
    return BPETokenizer.train([sample], 700, special_tokens=[EOT, "<|pad|>"], pattern="gpt2", verbose=False)


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    d = need("gpt2")
    return BPETokenizer.from_gpt2_files(d / "vocab.json", d / "merges.txt")


def same_tokenizer(a: BPETokenizer, b: BPETokenizer, text: str) -> None:
    assert a.vocab == b.vocab
    assert a.merges == b.merges
    assert a.special_tokens == b.special_tokens
    assert a.pattern == b.pattern
    assert a.encode(text, allowed_special="all") == b.encode(text, allowed_special="all")


def test_escape_round_trip():
    for raw in [bytes(range(256)), b" the", b"\\x41", b"\\", b"a b"]:
        esc = escape_bytes(raw)
        assert " " not in esc and unescape_bytes(esc) == raw
    with pytest.raises(ValueError, match="escaped byte string"):
        unescape_bytes("a b")


def test_save_load_round_trip(tok, sample, tmp_path):
    vocab_file = tok.save(tmp_path / "t.model")
    assert vocab_file == tmp_path / "t.vocab"
    text = (tmp_path / "t.model").read_text(encoding="utf-8")
    assert text.startswith("minigrad-bpe v1\npattern ")
    readable = vocab_file.read_text(encoding="utf-8")
    assert "256 [" in readable and "(special)" in readable
    loaded = BPETokenizer.load(tmp_path / "t.model")
    same_tokenizer(tok, loaded, sample + EOT)


def test_gpt2_save_load_keeps_permuted_byte_ids(gpt2, sample, tmp_path):
    gpt2.save(tmp_path / "gpt2.model")
    loaded = BPETokenizer.load(tmp_path / "gpt2.model")
    same_tokenizer(gpt2, loaded, sample + EOT)
    assert loaded.token_id(b"!") == 0 and loaded.token_id(b"\x00") == 188


def test_gpt2_files_round_trip(tok, gpt2, sample, tmp_path):
    for t in (tok, gpt2):
        t.save_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
        back = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt",
                                            special_tokens=t.special_tokens, pattern=t.pattern)
        same_tokenizer(t, back, sample + EOT)
    # What we export for GPT-2 equals GPT-2's own files.
    src = need("gpt2")
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == json.loads(
        (src / "vocab.json").read_text(encoding="utf-8"))
    ours = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    theirs = [line for line in (src / "merges.txt").read_text(encoding="utf-8").splitlines() if line]
    assert ours[0].startswith("#version")
    assert ours[1:] == [line for line in theirs if not line.startswith("#version")]


def test_tiktoken_file_round_trip(tok, gpt2, sample, tmp_path):
    for t in (tok, gpt2):
        t.save_tiktoken_file(tmp_path / "r.tiktoken")
        back = BPETokenizer.from_tiktoken_file(tmp_path / "r.tiktoken", t.special_tokens, t.pattern)
        same_tokenizer(t, back, sample + EOT)  # merges recovered from the ranks alone


def test_constructor_from_vocab_and_merges(tok, sample):
    # The exchange form: id -> bytes (specials included) + merges + special names.
    rebuilt = BPETokenizer(tok.vocab, tok.merges, [EOT, "<|pad|>"], pattern="gpt2")
    same_tokenizer(tok, rebuilt, sample)
    # Special tokens absent from the vocab get the next ids.
    base = {i: b for i, b in tok.vocab.items() if i not in tok.special_tokens.values()}
    extra = BPETokenizer(base, tok.merges, ["<|new|>"], pattern="gpt2")
    assert extra.special_tokens == {"<|new|>": max(base) + 1}


def test_to_tiktoken(tok, sample):
    pytest.importorskip("tiktoken", reason="to_tiktoken needs tiktoken")
    enc = tok.to_tiktoken("mine")
    assert enc.name == "mine" and enc.n_vocab == tok.n_vocab
    assert enc.encode(sample, allowed_special="all") == tok.encode(sample, allowed_special="all")


def test_constructor_errors(tok):
    vocab, merges = tok.vocab, tok.merges
    no_byte = {i: b for i, b in vocab.items() if b != b"\x07"}
    with pytest.raises(ValueError, match="all 256 single bytes"):
        BPETokenizer(no_byte, None)
    with pytest.raises(ValueError, match="both map to"):
        BPETokenizer({**vocab, 10_000: vocab[300]}, merges)
    with pytest.raises(ValueError, match="grow with merge order"):
        BPETokenizer(vocab, [merges[1], merges[0]] + merges[2:], [EOT, "<|pad|>"])
    with pytest.raises(ValueError, match="not in the vocab"):
        BPETokenizer(vocab, merges + [(b"zzz", b"qqq")], [EOT, "<|pad|>"])
    with pytest.raises(ValueError, match="one merge per multi-byte token"):
        BPETokenizer(vocab, merges[:-1], [EOT, "<|pad|>"])
    with pytest.raises(ValueError, match="which the vocab uses for"):
        BPETokenizer(vocab, merges, {EOT: 300})
    with pytest.raises(TypeError, match="single str"):
        BPETokenizer(vocab, merges, EOT)
    with pytest.raises(ValueError, match="non-negative int ids"):
        BPETokenizer({**vocab, -1: b"x"}, merges)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: "hello\n" + s, "not a minigrad-bpe model file"),
        (lambda s: s.replace("minigrad-bpe v1", "minigrad-bpe v2", 1),
         "version 2; this code reads version 1 only"),
        (lambda s: "\n".join(s.split("\n")[:300]), "ends early"),
        (lambda s: s.replace("\n256 ", "\n256x ", 1), "line"),
        (lambda s: s.replace("specials 2", "specials 3", 1), "line"),
        (lambda s: s + "junk\n", "extra lines"),
        (lambda s: s.replace("\nmerges ", "\nmerge ", 1), "expected 'merges <count>'"),
    ],
)
def test_corrupt_model_files(tok, tmp_path, mutate, message):
    path = tmp_path / "t.model"
    tok.save(path)
    path.write_text(mutate(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ModelFileError, match=message):
        BPETokenizer.load(path)


def test_model_with_inconsistent_merges_is_rejected(tok, tmp_path):
    path = tmp_path / "t.model"
    tok.save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    first = lines.index(next(line for line in lines if line.startswith("merges "))) + 1
    lines[first], lines[first + 1] = lines[first + 1], lines[first]  # two merges swapped
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ModelFileError, match="does not describe a valid tokenizer"):
        BPETokenizer.load(path)
    path.write_bytes(b"\xff\xfe binary")
    with pytest.raises(ModelFileError, match="not UTF-8"):
        BPETokenizer.load(path)


def test_cli(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the cat sat on the mat " * 50, encoding="utf-8")
    model = tmp_path / "m.model"
    args = ["train", str(corpus), "--vocab-size", "265", "--special", EOT, "--output", str(model), "--quiet"]
    assert main(args) == 0
    assert model.exists() and (tmp_path / "m.vocab").exists()
    capsys.readouterr()
    assert main(["encode", "--model", str(model), "--text", f"the cat{EOT}", "--allowed-special", "all"]) == 0
    ids = capsys.readouterr().out.split()
    tok = BPETokenizer.load(model)
    assert [int(i) for i in ids] == tok.encode(f"the cat{EOT}", allowed_special="all")
    assert main(["decode", "--model", str(model), "--ids", " ".join(ids)]) == 0
    assert capsys.readouterr().out == f"the cat{EOT}"
    text_file = tmp_path / "in.txt"
    text_file.write_text("the mat the cat", encoding="utf-8")
    assert main(["encode", "--model", str(model), "--input", str(text_file)]) == 0
    assert [int(i) for i in capsys.readouterr().out.split()] == tok.encode("the mat the cat")
    assert main(["inspect", "--model", str(model), "--top", "2", "--text", "the cat"]) == 0
    assert "merges" in capsys.readouterr().out
    # Errors are one clear line, not a traceback.
    assert main(["encode", "--model", str(model), "--text", EOT]) == 1
    assert "disallowed" in capsys.readouterr().err
    assert main(["decode", "--model", str(model), "--ids", "99999"]) == 1
    assert "unknown token id 99999" in capsys.readouterr().err
    assert main(["train", str(corpus), "--vocab-size", "100", "--output", str(model), "--quiet"]) == 1
    assert "at least 256" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    assert "--allowed-special" in capsys.readouterr().out


def test_cli_gpt2_folder(capsys):
    d = need("gpt2")
    assert main(["encode", "--model", str(d), "--text", "Hello world"]) == 0
    assert capsys.readouterr().out.split() == ["15496", "995"]
