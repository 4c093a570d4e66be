"""minigrad/training/checkpoint.py: safetensors layout, atomic writes, and clear errors on bad files."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from minigrad.serialization import read_metadata
from minigrad.training.checkpoint import (Checkpoint, CheckpointError, check_shapes, load_checkpoint,
                               save_checkpoint)

META = {"train_config": {"n_layer": 2}, "model_config": {"n_embd": 8}, "tokenizer": "{}", "iter_num": 7}


def _tensors():
    rng = np.random.default_rng(0)
    return {"model.wte.weight": rng.standard_normal((5, 3)).astype(np.float32),
            "model.ln_f.bias": np.zeros(3, np.float32),
            "optim.0.exp_avg": rng.standard_normal((5, 3)),
            "optim.0.step": np.array([3], np.int64),
            "empty": np.zeros((0, 4), np.float32)}


def test_roundtrip_and_sections(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.safetensors", _tensors(), META)
    ck = load_checkpoint(path)
    for k, v in _tensors().items():
        np.testing.assert_array_equal(ck.tensors[k], v)
        assert ck.tensors[k].dtype == v.dtype
    assert ck.meta == META
    assert set(ck.section("model.")) == {"wte.weight", "ln_f.bias"}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_file_is_standard_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = save_checkpoint(tmp_path / "c.safetensors", _tensors(), META)
    loaded = st.load_file(str(path))
    np.testing.assert_array_equal(loaded["model.wte.weight"], _tensors()["model.wte.weight"])
    st.save_file({"x": np.ones(2, np.float32)}, str(tmp_path / "hf.safetensors"))
    with pytest.raises(CheckpointError, match="not a minigrad training checkpoint"):
        load_checkpoint(tmp_path / "hf.safetensors")


def test_optimizer_state_roundtrip(tmp_path):
    from minigrad.training.checkpoint import optimizer_state_dict, optimizer_tensors
    state = {"state": {0: {"step": 3, "exp_avg": np.ones((2, 2), np.float32)},
                       1: {"step": 3, "exp_avg": np.zeros(2, np.float32)}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0, 1]}]}
    tensors, info = optimizer_tensors(state)
    assert set(tensors) == {"optim.0.exp_avg", "optim.1.exp_avg"}
    path = save_checkpoint(tmp_path / "c.safetensors", tensors, dict(META, optimizer=info))
    back = optimizer_state_dict(load_checkpoint(path))
    assert back["param_groups"][0]["betas"] == [0.9, 0.99] and back["state"][1]["step"] == 3
    np.testing.assert_array_equal(back["state"][0]["exp_avg"], np.ones((2, 2)))


def test_overwrite_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.safetensors", _tensors(), META)
    before = path.read_bytes()
    import os

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": np.ones(3, np.float32)}, META)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp")) \
        and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:4], "truncated"),
    (lambda b: b[:len(b) - 10], "truncated"),
    (lambda b: b[:8] + b"{not json" + b[17:], "not valid"),
    (lambda b: b[:-4] + bytes(x ^ 0xFF for x in b[-4:]), "checksum"),
    (lambda b: struct.pack("<Q", 10 ** 12) + b[8:], "header"),
])
def test_corrupt_files_raise_clear_errors(tmp_path, damage, match):
    path = save_checkpoint(tmp_path / "ckpt_last.safetensors", _tensors(), META)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint(path)
    assert str(e.value).startswith("ckpt_last.safetensors: ")


def test_missing_file_version_and_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")
    path = save_checkpoint(tmp_path / "c.safetensors", _tensors(), {"iter_num": 1})
    with pytest.raises(CheckpointError, match="missing metadata"):
        load_checkpoint(path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = raw[8:8 + n].replace(b'"version":"2"', b'"version":"9"')
    path.write_bytes(raw[:8] + header + raw[8 + n:])
    with pytest.raises(CheckpointError, match="version '9'"):
        load_checkpoint(path)


def test_check_shapes_names_the_mismatch(tmp_path):
    ck = Checkpoint(tmp_path / "ckpt_best.safetensors", _tensors(), META)
    check_shapes(ck, {"wte.weight": (5, 3), "ln_f.bias": (3,)})
    with pytest.raises(CheckpointError, match=r"wte.weight: checkpoint \(5, 3\) vs model \(6, 3\)"):
        check_shapes(ck, {"wte.weight": (6, 3), "ln_f.bias": (3,)})
    with pytest.raises(CheckpointError, match="missing tensors"):
        check_shapes(ck, {"wte.weight": (5, 3), "ln_f.bias": (3,), "lm_head.weight": (5, 3)})


def test_a_tied_weight_is_stored_once_and_the_optimizer_state_only_in_ckpt_last(tmp_path):
    """Issue 19 item 9: wte/lm_head (one Parameter) are one tensor in the file, and ckpt_best (for
    sampling and export) carries no AdamW moments; both load back to the trained weights."""
    import train
    from minigrad.training.pretrained import read_checkpoint
    text = tmp_path / "t.txt"
    text.write_text("".join(f"line {i}: the quick brown fox\n" for i in range(400)), encoding="utf-8")
    train.main([f"--data={text}", f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'c'}",
                "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--batch_size=4",
                "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--sample_tokens=0", "--plot=false",
                "--progress=false"])
    last = load_checkpoint(tmp_path / "out" / "ckpt_last.safetensors")
    best = load_checkpoint(tmp_path / "out" / "ckpt_best.safetensors")
    for ck in (last, best):
        assert "model.lm_head.weight" not in ck.tensors and "model.transformer.wte.weight" in ck.tensors
        assert ck.meta["tied"] == {"lm_head.weight": "transformer.wte.weight"}
    assert any(k.startswith("optim.") for k in last.tensors) and "optimizer" in last.meta
    assert not any(k.startswith("optim.") for k in best.tensors) and "optimizer" not in best.meta
    model_bytes = sum(v.nbytes for k, v in best.tensors.items() if k.startswith("model."))
    assert sum(v.nbytes for v in best.tensors.values()) == model_bytes
    assert sum(v.nbytes for v in last.tensors.values()) >= 3 * model_bytes          # + exp_avg, exp_avg_sq
    pre = read_checkpoint(tmp_path / "out" / "ckpt_best.safetensors")
    assert pre.state_dict["lm_head.weight"] is pre.state_dict["transformer.wte.weight"]
    np.testing.assert_array_equal(pre.state_dict["transformer.wte.weight"], last.tensors["model.transformer.wte.weight"])


def test_a_tied_entry_naming_a_missing_tensor_is_a_checkpoint_error(tmp_path):
    from minigrad.training.checkpoint import model_state
    path = save_checkpoint(tmp_path / "ck.safetensors", _tensors(), {**META, "tied": {"lm_head.weight": "nope"}})
    with pytest.raises(CheckpointError, match=r"ck.safetensors: metadata field 'tied' is incomplete or malformed"):
        model_state(load_checkpoint(path))


def test_a_version_1_checkpoint_with_both_tied_names_still_resumes_and_samples(tmp_path, monkeypatch):
    """Version 1 files stored lm_head.weight beside transformer.wte.weight, had no 'tied' entry and
    kept the optimizer state in ckpt_best too: they load, resume and sample as before."""
    import sample
    import train
    from minigrad.training import checkpoint as C
    text = tmp_path / "t.txt"
    text.write_text("".join(f"line {i}: the quick brown fox\n" for i in range(400)), encoding="utf-8")
    args = [f"--data={text}", f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'c'}", "--n_layer=1",
            "--n_head=2", "--n_embd=16", "--block_size=16", "--batch_size=4", "--eval_interval=2",
            "--eval_iters=1", "--sample_tokens=0", "--plot=false", "--progress=false"]
    train.main([*args, "--max_iters=2"])
    for name in ("ckpt_last.safetensors", "ckpt_best.safetensors"):           # rewrite both as version 1
        ck = load_checkpoint(tmp_path / "out" / name)
        tensors = dict(ck.tensors, **{"model.lm_head.weight": ck.tensors["model.transformer.wte.weight"]})
        meta = {k: v for k, v in ck.meta.items() if k != "tied"}
        monkeypatch.setattr(C, "VERSION", 1)
        save_checkpoint(tmp_path / "out" / name, tensors, meta)
        monkeypatch.setattr(C, "VERSION", 2)
        assert read_metadata(tmp_path / "out" / name)["version"] == "1"
    assert sample.main([f"--ckpt={tmp_path / 'out' / 'ckpt_last.safetensors'}", "--max_new_tokens=5",
                        "--device=cpu", "--stream=false"], out=open(os.devnull, "w"))
    s = train.main([f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'c'}", "--resume", "--max_iters=4"])
    assert s["iters"] == 4 and read_metadata(tmp_path / "out" / "ckpt_last.safetensors")["version"] == "2"
