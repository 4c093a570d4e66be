"""minigrad.serialization: our safetensors writer/reader against the `safetensors` library in
both directions, bf16 bits, nested save()/load(), atomic writes, and clear errors on corrupt
files."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import minigrad
import minigrad.nn as nn
from backend_testing import cuda_backend  # tests/ is on sys.path
from minigrad.serialization import (SafetensorsError, bfloat16_bits_to_float32,
                                    float32_to_bfloat16_bits, load, load_file, load_numpy_file,
                                    read_metadata, save, save_file)

st_numpy = pytest.importorskip("safetensors.numpy")


def _sample():
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((3, 4)).astype(np.float32),
            "d": rng.standard_normal((2, 2, 2)),                       # float64
            "i": np.arange(-3, 4, dtype=np.int64),
            "b": np.array([True, False, True]),
            "s": np.array(2.5, dtype=np.float32),                      # 0-d
            "e": np.zeros((0, 5), dtype=np.float32)}                   # empty


def test_ours_reads_with_safetensors_library(tmp_path):
    path = tmp_path / "ours.safetensors"
    arrays = _sample()
    tensors = {k: minigrad.from_numpy(v) for k, v in arrays.items()}
    save_file(tensors, path, metadata={"format": "pt", "note": "hi"})
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert (8 + n) % 8 == 0 and raw[8:8 + n].decode().endswith(("}", " "))
    back = st_numpy.load_file(str(path))
    assert set(back) == set(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"format": "pt", "note": "hi"}
    assert read_metadata(path) == {"format": "pt", "note": "hi"}


def test_safetensors_library_file_reads_with_ours(tmp_path):
    path = tmp_path / "theirs.safetensors"
    arrays = _sample()
    arrays["i32"] = np.array([1, -2, 3], dtype=np.int32)
    arrays["u8"] = np.array([0, 255], dtype=np.uint8)
    st_numpy.save_file(arrays, str(path), metadata={"k": "v"})
    raw = load_numpy_file(path)
    tens = load_file(path)
    assert read_metadata(path) == {"k": "v"}
    for k, v in arrays.items():
        np.testing.assert_array_equal(raw[k], v)
        np.testing.assert_array_equal(tens[k].numpy(), v)
    assert tens["d"].dtype == "float64" and tens["w"].dtype == "float32"
    assert tens["i"].dtype == "int64" and tens["i32"].dtype == "int64" and tens["b"].dtype == "bool"
    assert tens["s"].shape == () and tens["e"].shape == (0, 5)


def test_bf16_and_f16_from_torch_files(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "bf16.safetensors"
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    st_torch.save_file({"bf": x.bfloat16(), "hf": x.half(), "f": x}, str(path))
    raw = load_numpy_file(path)
    np.testing.assert_array_equal(raw["bf"], x.bfloat16().float().numpy())   # exact: bit shift
    np.testing.assert_array_equal(raw["hf"], x.half().numpy())
    cpu = load_file(path)                       # the NumPy backend has no half types: float32
    assert cpu["bf"].dtype == "float32" and cpu["hf"].dtype == "float32"
    np.testing.assert_array_equal(cpu["bf"].numpy(), x.bfloat16().float().numpy())
    # and our bf16 encoder rounds like torch (nearest even), so torch reads back what we mean
    vals = np.concatenate([x.numpy().ravel(), [0.0, -0.0, np.inf, -np.inf, 1 + 2 ** -8,
                                               1 + 3 * 2 ** -8, 3.4e38]]).astype(np.float32)
    bits = float32_to_bfloat16_bits(vals)
    np.testing.assert_array_equal(bits.view(np.int16),
                                  torch.from_numpy(vals).bfloat16().view(torch.int16).numpy())
    assert np.isnan(bfloat16_bits_to_float32(float32_to_bfloat16_bits(np.array([np.nan], np.float32))))


def test_bf16_tensors_round_trip_on_cuda_backend(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    cuda_backend()                                              # bf16 needs the Triton backend
    t = minigrad.randn(4, 3, dtype="bfloat16", device="cuda")
    path = tmp_path / "ours_bf16.safetensors"
    save_file({"t": t}, path)
    theirs = st_torch.load_file(str(path))
    assert theirs["t"].dtype == torch.bfloat16
    np.testing.assert_array_equal(theirs["t"].float().numpy(), t.numpy())
    back = load_file(path, device="cuda")["t"]
    assert back.dtype == "bfloat16" and back.device == "cuda"
    np.testing.assert_array_equal(back.numpy(), t.numpy())


def test_model_state_dict_round_trip(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 4)
            self.body = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8))
            self.head = nn.Linear(4, 11, bias=False)
            self.head.weight = self.emb.weight

    minigrad.manual_seed(0)
    a = Net()
    path = tmp_path / "model.safetensors"
    save(a.state_dict(), path)                                  # flat: a plain safetensors file
    assert set(st_numpy.load_file(str(path))) == set(a.state_dict())
    minigrad.manual_seed(1)
    b = Net()
    b.load_state_dict(load(path))
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)
    assert b.head.weight is b.emb.weight


def test_nested_save_load(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    w = minigrad.randn(3, 2)
    obj = {"model": {"w": w, "tied": w}, "opt": {"state": {0: {"step": 4, "m": minigrad.zeros(3)}},
                                                   "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.95),
                                                                     "params": [0]}]},
           "iter": 7, "best": float("inf"), "name": "run/1", "none": None, "arr": np.arange(3)}
    save(obj, path, metadata={"user": "x"})
    back = load(path)
    assert back["iter"] == 7 and back["best"] == float("inf") and back["name"] == "run/1"
    assert back["none"] is None
    assert back["opt"]["state"][0]["step"] == 4                 # int keys survive
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.95)  # tuples too
    np.testing.assert_array_equal(back["model"]["w"].numpy(), w.numpy())
    assert back["model"]["tied"] is back["model"]["w"]          # stored once
    np.testing.assert_array_equal(back["arr"].numpy(), np.arange(3))
    md = read_metadata(path)
    assert md["user"] == "x" and "minigrad.tree" in md
    assert len(st_numpy.load_file(str(path))) == 3              # valid safetensors; w stored once
    with pytest.raises(TypeError, match="cannot store a set at 'bad'"):
        save({"bad": {1, 2}}, tmp_path / "x.safetensors")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "ck.safetensors"
    save_file({"a": np.ones(3, np.float32)}, path)
    before = path.read_bytes()
    with pytest.raises(SafetensorsError, match="cannot save 'bad'"):
        save_file({"a": np.zeros(3, np.float32), "bad": "not a tensor"}, path)
    assert path.read_bytes() == before                          # untouched
    assert os.listdir(tmp_path) == ["ck.safetensors"]           # no temp file left behind
    with pytest.raises(SafetensorsError, match="metadata must map strings to strings"):
        save_file({"a": np.zeros(1)}, path, metadata={"n": 1})
    with pytest.raises(SafetensorsError, match="complex"):
        save_file({"c": np.zeros(2, np.complex64)}, path)


def _write_raw(path, header: bytes, data: bytes = b"", n=None):
    n = len(header) if n is None else n
    path.write_bytes(struct.pack("<Q", n) + header + data)


def _header(entries: dict) -> bytes:
    return json.dumps(entries).encode()


@pytest.mark.parametrize("case,match", [
    ("short", "too short"),
    ("header_past_end", "runs past the end of the file"),
    ("huge_header", "larger than the"),
    ("bad_json", "not valid UTF-8 JSON"),
    ("not_object", "must be a JSON object"),
    ("bad_dtype", "unsupported dtype 'F8_E4M3'"),
    ("offsets_out_of_range", "run past the end of the data"),
    ("size_mismatch", "expected 24"),
    ("bad_shape", "non-negative ints"),
    ("bad_offsets", "data_offsets must be"),
    ("reversed_offsets", "invalid data_offsets"),
    ("overlap", "overlap"),
    ("bad_metadata", "__metadata__ must map strings"),
    ("truncated", "run past the end of the data"),
    ("65_dims", "65 dimensions, more than the 64"),
    ("huge_extent", "more elements than any array can hold"),
])
def test_corrupt_files_give_clear_errors(tmp_path, case, match):
    path = tmp_path / f"{case}.safetensors"
    ok = {"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    if case == "short":
        path.write_bytes(b"\x01\x02")
    elif case == "header_past_end":
        _write_raw(path, b"{}", n=1000)
    elif case == "huge_header":
        _write_raw(path, b"{}", n=2 ** 40)
    elif case == "bad_json":
        _write_raw(path, b"{not json")
    elif case == "not_object":
        _write_raw(path, b"[1, 2]")
    elif case == "bad_dtype":
        _write_raw(path, _header({"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}),
                   b"\0")
    elif case == "offsets_out_of_range":
        _write_raw(path, _header(ok), b"\0" * 10)
    elif case == "size_mismatch":
        _write_raw(path, _header({"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}),
                   b"\0" * 24)
    elif case == "bad_shape":
        _write_raw(path, _header({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}))
    elif case == "bad_offsets":
        _write_raw(path, _header({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}), b"\0" * 4)
    elif case == "reversed_offsets":
        _write_raw(path, _header({"x": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}), b"\0" * 4)
    elif case == "overlap":
        _write_raw(path, _header({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}),
                   b"\0" * 12)
    elif case == "bad_metadata":
        _write_raw(path, _header({"__metadata__": {"a": 1}}))
    elif case == "65_dims":                                    # NumPy's limit is 64
        _write_raw(path, _header({"x": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}), b"\0" * 4)
    elif case == "huge_extent":                                # zero elements, yet no index fits
        _write_raw(path, _header({"x": {"dtype": "F32", "shape": [2 ** 70, 0], "data_offsets": [0, 0]}}))
    elif case == "truncated":                                  # a real file cut short
        save_file({"a": np.ones((10, 10), np.float32), "b": np.ones(5)}, path)
        path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(SafetensorsError, match=match) as e:
        load_file(path)
    assert str(path) in str(e.value)                           # the message names the file
    with pytest.raises(SafetensorsError):
        load(path)


def test_a_tensor_larger_than_memory_is_refused_with_its_size(tmp_path):
    # a valid, sparse file whose one tensor is twice this machine's memory: refused before any
    # read (which would be a bare MemoryError, or the OOM killer), naming file, tensor and size
    from minigrad.serialization import _physical_memory
    ram = _physical_memory()
    assert ram is not None                      # Linux, as CI: the check is active
    n = (2 * ram) // 4
    path = tmp_path / "huge.safetensors"
    header = _header({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}})
    _write_raw(path, header)
    with open(path, "r+b") as f:
        f.truncate(8 + len(header) + 4 * n)     # sparse: no disk space used
    for loader in (load_file, load_numpy_file, load):
        with pytest.raises(MemoryError, match=r"tensor 'w': shape \[\d+\] of F32 needs [\d,.]+ GiB, more "
                                              r"than this machine's [\d,.]+ GiB of memory") as e:
            loader(path)
        assert str(path) in str(e.value)


def test_load_device_default_and_top_level_export(tmp_path):
    path = tmp_path / "t.safetensors"
    save({"a": minigrad.ones(2)}, path)
    assert load(path)["a"].device == minigrad.get_default_device()
    assert minigrad.save is save and minigrad.load is load
