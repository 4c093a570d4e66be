"""The token cache is checked before it is trusted, and a failed write leaves nothing behind.

Each case damages a finished cache the way a user's disk or hands do (a truncated copy, an edited
tokenizer, random bytes, a broken meta.json) and asserts that prepare_data notices, says so, and
rebuilds exactly what a fresh preparation writes. Disk-full is simulated by failing the fsync of
the temp file, after its bytes were written: the moment a real ENOSPC shows up.
"""
import errno
import json
import os

import numpy as np
import pytest

from minigrad.training import data as D


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("".join(f"to be or not to be, line {i}\n" for i in range(300)), encoding="utf-8")
    return f


def _prepare(corpus, cache):
    return D.prepare_data(str(corpus), "char", val_fraction=0.1, cache_dir=cache)


def _snapshot(p):
    return (np.array(p.train).tobytes(), np.array(p.val).tobytes(), D.tokenizer_to_json(p.tokenizer))


def _truncate_train(folder):
    path = folder / "train.bin"
    path.write_bytes(path.read_bytes()[:1000])


def _swap_two_characters(folder):
    path = folder / "tokenizer.json"
    d = json.loads(path.read_text())
    chars = list(d["chars"])
    chars[1], chars[2] = chars[2], chars[1]
    d["chars"] = "".join(chars)
    path.write_text(json.dumps(d))


def _random_bytes(folder):
    path = folder / "train.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


def _broken_meta(folder):
    (folder / "meta.json").write_text('{"train_tokens": 12,')


def _meta_is_a_list(folder):
    (folder / "meta.json").write_text("[1, 2]")


def _meta_without_sha(folder):
    path = folder / "meta.json"
    meta = json.loads(path.read_text())
    del meta["tokenizer_sha256"]
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, why", [
    (_truncate_train, "train.bin has 1,000 bytes"),
    (_swap_two_characters, "tokenizer.json changed"),
    (_random_bytes, "outside the tokenizer"),
    (_broken_meta, "Expecting"),
    (_meta_is_a_list, "not a JSON object"),
    (_meta_without_sha, "meta.json has no 'tokenizer_sha256'"),
])
def test_a_damaged_cache_is_noticed_and_rebuilt(corpus, tmp_path, capsys, damage, why):
    fresh = _snapshot(_prepare(corpus, tmp_path / "fresh"))
    first = _prepare(corpus, tmp_path / "cache")
    damage(first.cache_path)
    capsys.readouterr()
    again = _prepare(corpus, tmp_path / "cache")
    err = capsys.readouterr().err
    assert "does not match its meta.json" in err and why in err and str(first.cache_path) in err
    assert _snapshot(again) == fresh
    capsys.readouterr()
    _prepare(corpus, tmp_path / "cache")                     # the rebuilt cache is trusted again
    assert "rebuilding" not in capsys.readouterr().err


def test_a_sound_cache_is_used_without_a_note(corpus, tmp_path, capsys):
    _prepare(corpus, tmp_path / "cache")
    capsys.readouterr()
    _prepare(corpus, tmp_path / "cache")
    assert capsys.readouterr().err == ""


def _fail_fsync_with_enospc(monkeypatch, after=0):
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)
    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("after", [0, 1, 2, 3])     # train.bin, val.bin, tokenizer.json, meta.json
def test_disk_full_while_caching_names_the_file_and_leaves_no_temp_files(corpus, tmp_path, monkeypatch, after):
    cache = tmp_path / "cache"
    _fail_fsync_with_enospc(monkeypatch, after)
    with pytest.raises(D.DataError) as info:
        _prepare(corpus, cache)
    msg = str(info.value)
    assert "No space left on device" in msg and str(cache / "tokens") in msg and "--data_cache" in msg
    assert [p.name for p in cache.rglob("*") if "tmp" in p.name] == []
    assert not list(cache.rglob("meta.json"))                  # never marked done
    monkeypatch.undo()
    fresh = _snapshot(_prepare(corpus, tmp_path / "fresh"))
    assert _snapshot(_prepare(corpus, cache)) == fresh          # the retry builds the whole cache


def test_disk_full_while_saving_a_bpe_model_leaves_no_temp_files(tmp_path, monkeypatch):
    text = "".join(f"the quick brown fox {i} jumps over the lazy dog\n" for i in range(100))
    from minigrad.tokenizer import BPETokenizer

    def save_then_fail(self, path):
        path.write_text("half a model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(BPETokenizer, "save", save_then_fail)
    with pytest.raises(D.DataError, match=r"cannot write .*bpe-300-.*\.model: No space left on device"):
        D.build_tokenizer("bpe", [text], [text], 300, cache_dir=tmp_path)
    assert [p.name for p in (tmp_path / "tokenizers").iterdir()] == []
