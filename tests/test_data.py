"""minigrad/training/data.py: sources, document splits without leaks, tokenizers, cached memmaps, batches.

No test touches the network: downloads are pointed at an unreachable address.
"""
from __future__ import annotations

import numpy as np
import pytest

from minigrad.training import data as D


def _write(p, text):
    p.write_text(text, encoding="utf-8")
    return p


def test_resolve_file_folder_and_missing(tmp_path):
    f = _write(tmp_path / "a.txt", "hello\n")
    assert D.resolve_sources(str(f), tmp_path).files == [f]
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    _write(shelf / "b.txt", "b\n")
    _write(shelf / "a.txt", "a\n")
    (shelf / "notes.md").write_text("ignored")
    assert [p.name for p in D.resolve_sources(str(shelf), tmp_path).files] == ["a.txt", "b.txt"]
    with pytest.raises(D.DataError, match="no such file or folder"):
        D.resolve_sources(str(tmp_path / "nope.txt"), tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DataError, match="no .txt or .jsonl files"):
        D.resolve_sources(str(empty), tmp_path)


UNREACHABLE = "http://127.0.0.1:9/unreachable.txt"     # port 9 (discard): refused at once


def test_offline_shakespeare_names_data_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "TINY_SHAKESPEARE_URL", UNREACHABLE)
    with pytest.raises(D.DataError) as e:
        D.resolve_sources("shakespeare", tmp_path)
    msg = str(e.value)
    assert "--data=PATH" in msg and "make train DATA=" in msg and "Tiny Shakespeare" in msg
    assert not list(tmp_path.glob("*.part"))            # no half-written download is left behind


def test_offline_tinystories_and_gpt2_name_their_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "TINYSTORIES_URLS", {"train": UNREACHABLE, "val": UNREACHABLE})
    with pytest.raises(D.DataError, match="--data=PATH"):
        D.resolve_sources("tinystories", tmp_path)
    monkeypatch.setattr(D, "GPT2_URLS", {"vocab.json": UNREACHABLE, "merges.txt": UNREACHABLE})
    with pytest.raises(D.DataError, match="--gpt2_dir"):
        D.gpt2_files(None, tmp_path)
    with pytest.raises(D.DataError, match="missing vocab.json"):
        D.gpt2_files(str(tmp_path), tmp_path)


def test_cached_download_is_used_without_network(tmp_path, monkeypatch):
    import hashlib
    monkeypatch.setattr(D, "TINY_SHAKESPEARE_URL", UNREACHABLE)
    body = b"First Citizen:\n"                   # a cache that matches the (patched) released file
    monkeypatch.setattr(D, "TINY_SHAKESPEARE_PIN", D.Pin(len(body), hashlib.sha256(body).hexdigest()))
    (tmp_path / "tinyshakespeare.txt").write_bytes(body)
    assert D.resolve_sources("shakespeare", tmp_path).files == [tmp_path / "tinyshakespeare.txt"]


def test_documents_split_on_endoftext(tmp_path):
    f = _write(tmp_path / "s.txt", "one\n<|endoftext|>\ntwo\n<|endoftext|>three")
    assert D.read_documents([f]) == ["one", "two", "three"]


def test_tail_split_is_contiguous_at_a_line_boundary():
    doc = "".join(f"line {i}\n" for i in range(1000))
    train, val, mode = D.split_documents([doc], 0.1)
    assert mode == "tail" and train[0] + val[0] == doc
    assert val[0].startswith("line ") and train[0].endswith("\n")
    assert abs(len(val[0]) / len(doc) - 0.1) < 0.01


def test_document_split_keeps_documents_whole_and_is_deterministic():
    docs = [f"story {i} " * (i % 7 + 1) for i in range(400)]
    train, val, mode = D.split_documents(docs, 0.2, seed=3)
    assert mode == "document"
    assert sorted(train + val) == sorted(docs) and not set(train) & set(val)
    assert 0.12 < len(val) / len(docs) < 0.28
    assert D.split_documents(docs, 0.2, seed=3)[:2] == (train, val)
    assert D.split_documents(docs, 0.2, seed=4)[1] != val
    # a handful of books: each book's tail goes to val
    books = ["a\n" * 500, "b\n" * 500, "c\n" * 500]
    train, val, mode = D.split_documents(books, 0.2)
    assert mode == "tail" and len(train) == len(val) == 3
    with pytest.raises(D.DataError, match="val_fraction"):
        D.split_documents(books, 1.5)


def test_char_tokenizer_roundtrip_and_json():
    tok = D.CharTokenizer.from_text(["hello", "world!"])
    ids = tok.encode("hello world!".replace(" ", ""))
    assert tok.decode(ids) == "helloworld!" and tok.vocab_size == len(set("helloworld!"))
    tok2 = D.tokenizer_from_json(D.tokenizer_to_json(tok))
    assert tok2.chars == tok.chars
    with pytest.raises(ValueError, match="not in this character vocabulary"):
        tok.encode("?")


def test_bpe_trained_on_train_split_is_cached_and_serialisable(tmp_path):
    text = "".join(f"the quick brown fox {i} jumps over the lazy dog {i * 7}\n" for i in range(300))
    tok = D.build_tokenizer("bpe", [text], [text], 300, cache_dir=tmp_path)
    assert tok.vocab_size == 300 and tok.eot_token is not None
    assert len(list((tmp_path / "tokenizers").glob("*.model"))) == 1
    again = D.build_tokenizer("bpe", [text], [text], 300, cache_dir=tmp_path)
    assert again.encode_ordinary(text[:100]) == tok.encode_ordinary(text[:100])
    back = D.tokenizer_from_json(D.tokenizer_to_json(tok))
    assert back.kind == "bpe" and back.encode_ordinary(text) == tok.encode_ordinary(text)
    with pytest.raises(D.DataError, match="tokenizer must be one of"):
        D.build_tokenizer("word", [text], [text], 300, cache_dir=tmp_path)


def test_prepare_data_writes_memmaps_once(tmp_path, monkeypatch):
    f = _write(tmp_path / "t.txt", "".join(f"to be or not to be, line {i}\n" for i in range(300)))
    cache = tmp_path / "cache"
    p = D.prepare_data(str(f), "char", val_fraction=0.1, cache_dir=cache)
    assert isinstance(p.train, np.memmap) and p.train.dtype == np.uint16
    assert p.tokenizer.decode(p.train[:12]) == "to be or not"
    text = f.read_text()
    assert p.tokenizer.decode(p.train) + p.tokenizer.decode(p.val) == text
    mtime = (p.cache_path / "train.bin").stat().st_mtime_ns
    def no_reading(*a):
        raise AssertionError("a cached preparation must not read the documents again")
    monkeypatch.setattr(D, "read_documents", no_reading)
    p2 = D.prepare_data(str(f), "char", val_fraction=0.1, cache_dir=cache)
    assert p2.tokenizer.chars == p.tokenizer.chars
    monkeypatch.undo()
    assert p2.cache_path == p.cache_path and (p.cache_path / "train.bin").stat().st_mtime_ns == mtime
    p3 = D.prepare_data(str(f), "char", val_fraction=0.2, cache_dir=cache)   # other settings: other key
    assert p3.cache_path != p.cache_path and len(p3.val) > len(p.val)


def test_prepare_folder_with_bpe_puts_eot_between_documents(tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    for i in range(3):
        _write(shelf / f"{i}.txt", "".join(f"book {i} line {j}\n" for j in range(200)))
    p = D.prepare_data(str(shelf), "bpe", vocab_size=300, val_fraction=0.2, cache_dir=tmp_path / "c")
    eot = p.tokenizer.eot_token
    assert int((np.asarray(p.train) == eot).sum()) == 2 and int((np.asarray(p.val) == eot).sum()) == 2
    assert p.meta["split"] == "tail"


def test_gpt2_tokenizer_from_local_dir(tmp_path, shared_data):
    f = _write(tmp_path / "t.txt", "Hello world, hello GPT-2.\n" * 20)
    p = D.prepare_data(str(f), "gpt2", gpt2_dir=str(shared_data / "gpt2"), cache_dir=tmp_path / "c")
    assert p.tokenizer.vocab_size == 50257 and p.tokenizer.kind == "gpt2"
    assert p.train[:2].tolist() == [15496, 995]          # "Hello", " world" in GPT-2's vocabulary


def test_batches_are_shifted_windows_and_seeded():
    data = np.arange(100, dtype=np.uint16)
    x, y = D.get_batch(data, 4, 8, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)
    a = D.fixed_batches(data, 3, 4, 8, seed=5)
    b = D.fixed_batches(data, 3, 4, 8, seed=5)
    assert all((xa == xb).all() for (xa, _), (xb, _) in zip(a, b))
    with pytest.raises(D.DataError, match="block_size"):
        D.get_batch(data[:5], 2, 8, np.random.default_rng(0))


def test_non_utf8_bytes_are_counted_and_a_binary_file_refused(tmp_path, capsys):
    good = "héllo wörld\n" * 100                              # 1,200 characters of real UTF-8
    p = tmp_path / "latin1.txt"
    p.write_bytes(good.encode("utf-8") + b"caf\xe9 \xff\n")   # two stray bytes (Latin-1 é, 0xFF)
    text = D.read_text(p)
    assert text == good + "caf\ufffd \ufffd\n"
    assert "2 bytes are not valid UTF-8" in capsys.readouterr().err
    clean = _write(tmp_path / "clean.txt", good)
    assert D.read_text(clean) == good and capsys.readouterr().err == ""
    blob = tmp_path / "model.bin"
    blob.write_bytes(bytes(range(256)) * 40)                # 128 of every 256 bytes are not UTF-8
    with pytest.raises(D.DataError, match="looks like a binary file"):
        D.read_text(blob)
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("plain ascii text\n".encode("utf-16"))  # valid bytes, but NUL every other one
    with pytest.raises(D.DataError, match="looks like a binary file"):
        D.read_text(utf16)
