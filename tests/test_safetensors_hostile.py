"""Hostile safetensors files get a clear SafetensorsError, never a hang, a raw traceback or a
silently different reading (issue 10).

Each file is built byte by byte here. Where the `safetensors` library is installed it serves as
an independent oracle for the layout rules (it also refuses gaps, trailing bytes and overlap).
"""
from __future__ import annotations

import json
import os
import stat
import struct
import threading

import numpy as np
import pytest

from minigrad.serialization import SafetensorsError, load, load_file, load_numpy_file, read_metadata, save

F32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


def _raw(path, header: bytes | str, data: bytes = b"", n: int | None = None):
    header = header.encode() if isinstance(header, str) else header
    path.write_bytes(struct.pack("<Q", len(header) if n is None else n) + header + data)
    return path


def _entries(path, entries: dict, data: bytes = b""):
    return _raw(path, json.dumps(entries), data)


def _loaders():
    return [load_file, load_numpy_file, read_metadata, load]


# (case, builder(path) -> path, regex the message must match)
CASES = [
    ("duplicate tensor name",
     lambda p: _raw(p, '{"x": %s, "x": %s}' % (json.dumps(F32), json.dumps(F32)), b"\0" * 4),
     r"duplicate key 'x' in the header JSON"),
    ("duplicate field in an entry",
     lambda p: _raw(p, '{"x": {"dtype": "F32", "dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}',
                    b"\0" * 4), r"duplicate key 'dtype'"),
    ("duplicate metadata key",
     lambda p: _raw(p, '{"__metadata__": {"a": "1", "a": "2"}}'), r"duplicate key 'a'"),
    ("gap between tensors",
     lambda p: _entries(p, {"x": F32, "y": {**F32, "data_offsets": [8, 12]}}, b"\0" * 12),
     r"data bytes 4\.\.8 belong to no tensor"),
    ("gap before the first tensor",
     lambda p: _entries(p, {"x": {**F32, "data_offsets": [4, 8]}}, b"\0" * 8),
     r"data bytes 0\.\.4 belong to no tensor"),
    ("trailing bytes",
     lambda p: _entries(p, {"x": F32}, b"\0" * 8), r"4 trailing data bytes after the last tensor"),
    ("trailing bytes, no tensors",
     lambda p: _raw(p, "{}", b"hidden"), r"6 trailing data bytes"),
    ("overlap",
     lambda p: _entries(p, {"x": {**F32, "shape": [2], "data_offsets": [0, 8]},
                            "y": {**F32, "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
     r"tensors 'x' and 'y' overlap"),
    ("empty tensor inside another",
     lambda p: _entries(p, {"x": {**F32, "shape": [2], "data_offsets": [0, 8]},
                            "z": {**F32, "shape": [0], "data_offsets": [4, 4]}}, b"\0" * 8), r"overlap"),
    ("shape holds a bool", lambda p: _entries(p, {"x": {**F32, "shape": [True]}}, b"\0" * 4),
     r"shape must be a list of non-negative ints, got \[True\]"),
    ("shape holds a float", lambda p: _entries(p, {"x": {**F32, "shape": [1.0]}}, b"\0" * 4),
     r"non-negative ints, got \[1\.0\]"),
    ("shape holds a negative", lambda p: _entries(p, {"x": {**F32, "shape": [-1]}}, b"\0" * 4),
     r"non-negative ints"),
    ("shape holds a string", lambda p: _entries(p, {"x": {**F32, "shape": ["1"]}}, b"\0" * 4),
     r"non-negative ints"),
    ("shape is not a list", lambda p: _entries(p, {"x": {**F32, "shape": 1}}, b"\0" * 4),
     r"non-negative ints, got 1"),
    ("offsets hold a bool", lambda p: _entries(p, {"x": {**F32, "data_offsets": [False, 4]}}, b"\0" * 4),
     r"data_offsets must be \[begin, end\]"),
    ("unknown dtype", lambda p: _entries(p, {"x": {**F32, "dtype": "Q7"}}, b"\0" * 4),
     r"unsupported dtype 'Q7' \(supported: "),
    ("dtype is a list", lambda p: _entries(p, {"x": {**F32, "dtype": ["F32"]}}, b"\0" * 4),
     r"unsupported dtype \['F32'\]"),
    ("dtype is null", lambda p: _entries(p, {"x": {**F32, "dtype": None}}, b"\0" * 4),
     r"unsupported dtype None"),
    ("header length 2**63", lambda p: _raw(p, "{}", n=2 ** 63), r"larger than the \d+ byte limit"),
    ("header length past the end", lambda p: _raw(p, "{}", n=64), r"runs past the end of the file"),
    ("deeply nested header", lambda p: _raw(p, "[" * 100_000), r"nested too deeply"),
    ("deeply nested entry",
     lambda p: _raw(p, '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"), r"nested too deeply"),
]


@pytest.mark.parametrize("case,build,match", CASES, ids=[c[0] for c in CASES])
def test_hostile_header_is_a_clear_error(tmp_path, case, build, match):
    path = build(tmp_path / "bad.safetensors")
    for loader in _loaders():
        with pytest.raises(SafetensorsError, match=match) as e:
            loader(path)
        assert str(path) in str(e.value)                       # the message names the file


@pytest.mark.parametrize("case", ["gap between tensors", "gap before the first tensor", "trailing bytes",
                                  "overlap", "empty tensor inside another"])
def test_library_refuses_the_same_layouts(tmp_path, case):
    """The reference implementation agrees these layouts are invalid (so refusing is not us
    being stricter than the format)."""
    st = pytest.importorskip("safetensors.numpy")
    build = {c[0]: c[1] for c in CASES}[case]
    with pytest.raises(Exception):
        st.load_file(str(build(tmp_path / "bad.safetensors")))


def test_valid_layouts_still_load(tmp_path):
    """Empty tensors at a shared offset and back-to-back tensors are fine (the tiling rule)."""
    path = _entries(tmp_path / "ok.safetensors",
                    {"e1": {**F32, "shape": [0], "data_offsets": [0, 0]},
                     "x": F32,
                     "e2": {**F32, "shape": [0, 3], "data_offsets": [4, 4]},
                     "y": {"dtype": "I8", "shape": [2], "data_offsets": [4, 6]}},
                    struct.pack("<f", 1.5) + bytes([7, 255]))
    out = load_numpy_file(path)
    assert out["x"].tolist() == [1.5] and out["y"].tolist() == [7, -1]
    assert out["e1"].shape == (0,) and out["e2"].shape == (0, 3)


def test_deeply_nested_tree_metadata(tmp_path):
    """The nested-checkpoint description in __metadata__ is JSON too: same treatment."""
    path = tmp_path / "ck.safetensors"
    save({"a": [1, 2]}, path)                                  # a nested save writes minigrad.tree
    header = {"__metadata__": {"minigrad.tree": "[" * 100_000}}
    _entries(path, header)
    with pytest.raises(SafetensorsError, match="minigrad.tree metadata is nested too deeply"):
        load(path)


def _refused_without_hanging(path, match):
    """Call every loader on `path` in a thread: a blocking open() would hang the test run, so
    after 10 s the FIFO (if it is one) gets a writer to unblock it and the test fails."""
    errors = []

    def run():
        for loader in _loaders():
            try:
                loader(path)
                errors.append(f"{loader.__name__} accepted it")
            except SafetensorsError as e:
                errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():
        if stat.S_ISFIFO(os.stat(path).st_mode):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail(f"reading {path} blocked")
    assert len(errors) == len(_loaders())
    for e in errors:
        assert isinstance(e, SafetensorsError), e
        assert str(path) in str(e) and match in str(e), e


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")
def test_fifo_is_refused_before_reading(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    _refused_without_hanging(fifo, "is a FIFO (named pipe), not a regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_file_is_refused():
    _refused_without_hanging("/dev/zero", "is a character device, not a regular file")


def test_directory_is_refused(tmp_path):
    _refused_without_hanging(tmp_path, "is a directory, not a regular file")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nope.safetensors")


def test_numpy_bf16_bits_match_kernel_rounding():
    """The host-side bf16 encoder (used when saving) keeps NaN NaN too, including the GPU's
    canonical 0x7FFFFFFF, and rounds ties to even."""
    from minigrad.serialization import float32_to_bfloat16_bits
    bits = np.array([0x7FFFFFFF, 0xFFFFFFFF, 0x7F800001, 0x3F818000, 0x7F7FFFFF], np.uint32)
    out = float32_to_bfloat16_bits(bits.view(np.float32))
    assert ((out[:3] & 0x7F80) == 0x7F80).all() and ((out[:3] & 0x7F) != 0).all()   # NaN
    assert out[3] == 0x3F82 and out[4] == 0x7F80
