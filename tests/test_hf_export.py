"""models/hf_export.py: the HF GPT-2 layout round trip, the file read by the `safetensors`
library with HF's names and shapes, an independent HF-semantics forward (Conv1D: x @ W + b)
over the exported tensors, the "transformer." prefix variant, unsupported configs, bias-free
models exported with zero biases (every train.py preset, loaded by the real transformers), the
shape taken from the weights, and one-line errors for bad files."""
from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

import hf_testing
import minigrad
from minigrad.models import GPT, GPTConfig
from minigrad.models.hf_export import (HFFormatError, export_hf_gpt2, load_hf_gpt2, read_hf_gpt2,
                                       state_dict_shapes)
from minigrad.training.presets import PRESETS

safetensors_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402

CFG = dict(block_size=16, vocab_size=57, n_layer=2, n_head=2, n_embd=16)


def _model(dtype="float32", seed=0, **kw) -> GPT:
    minigrad.manual_seed(seed)
    model = GPT(GPTConfig(**{**CFG, **kw}), dtype=dtype)
    rng = np.random.default_rng(seed)
    # non-trivial norms and biases, so a wrong key or transpose shows in the logits
    model.load_state_dict({n: p.numpy() + rng.normal(0, 0.1, p.shape)
                           for n, p in model.named_parameters() if p.ndim == 1}, strict=False)
    return model.eval()


def _ids(seed=1, shape=(2, 9)):
    return minigrad.tensor(np.random.default_rng(seed).integers(0, CFG["vocab_size"], shape))


def _expected_keys(L: int) -> set:
    keys = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"}
    for i in range(L):
        for m in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            keys |= {f"h.{i}.{m}.weight", f"h.{i}.{m}.bias"}
    return keys


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_identical_logits(tmp_path, dtype):
    model = _model(dtype)
    path = export_hf_gpt2(model, tmp_path / "hf")
    assert path == tmp_path / "hf" / "model.safetensors"
    loaded = load_hf_gpt2(tmp_path / "hf", dtype=dtype).eval()
    assert loaded.config == model.config
    idx = _ids()
    np.testing.assert_array_equal(loaded(idx)[0].numpy(), model(idx)[0].numpy())
    # the .safetensors path works as well as the directory
    again = load_hf_gpt2(path, dtype=dtype).eval()
    np.testing.assert_array_equal(again(idx)[0].numpy(), model(idx)[0].numpy())


def test_file_has_hf_names_shapes_and_config(tmp_path):
    model = _model(ffn_hidden=40, activation="gelu_exact", norm_eps=1e-6, dropout=0.1)
    path = export_hf_gpt2(model, tmp_path / "gpt2.safetensors", eos_token_id=56)
    tensors = safetensors_numpy.load_file(str(path))         # the reference library reads it
    C, V, bs, H = 16, 57, 16, 40
    assert set(tensors) == _expected_keys(2)
    assert tensors["wte.weight"].shape == (V, C)             # true vocab rows, not 64
    assert tensors["wpe.weight"].shape == (bs, C)
    assert tensors["h.0.attn.c_attn.weight"].shape == (C, 3 * C)   # Conv1D: (in, out)
    assert tensors["h.0.attn.c_attn.bias"].shape == (3 * C,)
    assert tensors["h.1.attn.c_proj.weight"].shape == (C, C)
    assert tensors["h.0.mlp.c_fc.weight"].shape == (C, H)
    assert tensors["h.0.mlp.c_proj.weight"].shape == (H, C)
    assert tensors["ln_f.weight"].shape == (C,)
    assert all(a.dtype == np.float32 for a in tensors.values())
    params = dict(model.named_parameters())
    np.testing.assert_array_equal(tensors["h.1.mlp.c_fc.weight"],
                                  params["transformer.h.1.mlp.c_fc.weight"].numpy().T)
    np.testing.assert_array_equal(tensors["wte.weight"],
                                  params["transformer.wte.weight"].numpy()[:V])
    with safe_open(str(path), framework="np") as f:
        assert f.metadata() == {"format": "pt"}
    hf = json.loads((tmp_path / "config.json").read_text())
    assert hf["model_type"] == "gpt2" and hf["architectures"] == ["GPT2LMHeadModel"]
    assert (hf["vocab_size"], hf["n_positions"], hf["n_embd"], hf["n_layer"], hf["n_head"]) == \
        (V, bs, C, 2, 2)
    assert hf["n_inner"] == H and hf["activation_function"] == "gelu"
    assert hf["layer_norm_epsilon"] == 1e-6 and hf["resid_pdrop"] == 0.1
    assert hf["tie_word_embeddings"] is True and hf["eos_token_id"] == 56
    assert load_hf_gpt2(path).config == model.config


def _hf_gpt2_forward(t: dict, hf: dict, idx: np.ndarray) -> np.ndarray:
    """GPT-2 as HF computes it, straight from the exported tensors (float64 NumPy)."""
    t = {k: v.astype(np.float64) for k, v in t.items()}
    nh, C, eps = hf["n_head"], hf["n_embd"], hf["layer_norm_epsilon"]
    hs = C // nh

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * t[p + ".weight"] \
            + t[p + ".bias"]

    def conv1d(x, p):                                          # HF Conv1D: x @ W + b, W (in, out)
        return x @ t[p + ".weight"] + t[p + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    B, T = idx.shape
    x = t["wte.weight"][idx] + t["wpe.weight"][:T]
    mask = np.tril(np.ones((T, T), bool))
    for i in range(hf["n_layer"]):
        q, k, v = np.split(conv1d(ln(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn"), 3, axis=-1)
        q, k, v = (a.reshape(B, T, nh, hs).transpose(0, 2, 1, 3) for a in (q, k, v))
        s = np.where(mask, q @ k.transpose(0, 1, 3, 2) / math.sqrt(hs), -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        y = (p / p.sum(-1, keepdims=True)) @ v
        x = x + conv1d(y.transpose(0, 2, 1, 3).reshape(B, T, C), f"h.{i}.attn.c_proj")
        h = gelu_new(conv1d(ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc"))
        x = x + conv1d(h, f"h.{i}.mlp.c_proj")
    return ln(x, "ln_f") @ t["wte.weight"].T                    # tied lm_head


def test_exported_file_means_the_same_model_under_hf_semantics(tmp_path):
    model = _model("float64")
    path = export_hf_gpt2(model, tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    assert hf["activation_function"] == "gelu_new"
    idx = _ids(2)
    ref = _hf_gpt2_forward(safetensors_numpy.load_file(str(path)), hf, idx.numpy())
    np.testing.assert_allclose(model(idx)[0].numpy(), ref, rtol=1e-9, atol=1e-12)


def test_transformer_prefix_variant_and_mask_buffers(tmp_path):
    model = _model()
    export_hf_gpt2(model, tmp_path / "a")
    tensors = safetensors_numpy.load_file(str(tmp_path / "a" / "model.safetensors"))
    # what GPT2LMHeadModel.save_pretrained-style files look like: prefixed keys, a lm_head copy,
    # and (in older files) the causal-mask buffers
    variant = {f"transformer.{k}": v for k, v in tensors.items()}
    variant["lm_head.weight"] = tensors["wte.weight"]
    for i in range(2):
        variant[f"transformer.h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), np.float32))
        variant[f"transformer.h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    (tmp_path / "b").mkdir()
    safetensors_numpy.save_file(variant, str(tmp_path / "b" / "model.safetensors"),
                                metadata={"format": "pt"})
    (tmp_path / "b" / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    loaded = load_hf_gpt2(tmp_path / "b").eval()
    idx = _ids(3)
    np.testing.assert_array_equal(loaded(idx)[0].numpy(), model(idx)[0].numpy())


@pytest.mark.parametrize("option,kw", [
    ("pos='rope'", dict(pos="rope")),
    ("norm='rmsnorm'", dict(norm="rmsnorm")),
    ("activation='swiglu'", dict(activation="swiglu")),
    ("tie_weights=False", dict(tie_weights=False)),
])
def test_unsupported_configs_raise(tmp_path, option, kw):
    model = GPT(GPTConfig(**{**CFG, **kw}))
    with pytest.raises(ValueError, match=option.replace("(", r"\(").replace(")", r"\)")):
        export_hf_gpt2(model, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_hf_gpt2(tmp_path)
    export_hf_gpt2(_model(), tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf_gpt2(tmp_path)
    export_hf_gpt2(_model(), tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    hf["n_embd"] = 32
    hf["n_head"] = 2
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(ValueError, match="shape"):
        load_hf_gpt2(tmp_path)


@pytest.mark.parametrize("kw", [dict(), dict(bias=False), dict(bias=False, qkv_bias=True), dict(qkv_bias=True),
                                dict(pos="rope", norm="rmsnorm", activation="swiglu", bias=False),
                                dict(tie_weights=False, ffn_hidden=40, pad_vocab_multiple=1),
                                dict(norm="rmsnorm", bias=True, activation="silu")])
def test_state_dict_shapes_are_the_models_without_building_it(kw):
    cfg = GPTConfig(**{**CFG, **kw})
    assert state_dict_shapes(cfg) == {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}


# ---------------------------------------------------------------------------------------------
# models without (some) biases: GPT-2 adds a bias everywhere, so the export writes zeros there


@pytest.mark.parametrize("qkv", [False, True])
def test_bias_free_model_is_exported_with_zero_biases_and_comes_back_bias_free(tmp_path, qkv):
    model = _model("float64", bias=False, qkv_bias=qkv)        # norms (and the qkv bias) perturbed
    path = export_hf_gpt2(model, tmp_path)
    tensors = safetensors_numpy.load_file(str(path))
    assert set(tensors) == _expected_keys(2)                   # every key GPT-2 has
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.endswith("attn.c_attn.bias") and qkv:
            np.testing.assert_array_equal(value, params[f"transformer.{key}"].numpy())
            assert np.abs(value).min() > 0
        elif key.endswith(".bias"):
            assert value.shape == params[f"transformer.{key[:-5]}.weight"].shape[:1] and not value.any(), key
    hf = json.loads((tmp_path / "config.json").read_text())
    assert hf["minigrad"] == {"bias": False, "qkv_bias": qkv}
    idx = _ids(4)
    # what HF computes from the file (x @ W + 0 everywhere) is what the bias-free model computes
    ref = _hf_gpt2_forward(tensors, hf, idx.numpy())
    np.testing.assert_allclose(model(idx)[0].numpy(), ref, rtol=1e-9, atol=1e-12)
    loaded = load_hf_gpt2(tmp_path, dtype="float64").eval()
    assert loaded.config == model.config                       # bias=False (and qkv_bias) again
    assert "transformer.h.0.mlp.c_fc.bias" not in loaded.state_dict()
    np.testing.assert_array_equal(loaded(idx)[0].numpy(), model(idx)[0].numpy())


def test_bias_free_export_whose_biases_changed_loads_with_biases(tmp_path):
    """Fine-tuned in transformers, the zero biases may have moved: then the model needs them."""
    model = _model("float64", bias=False)
    path = export_hf_gpt2(model, tmp_path)
    tensors = safetensors_numpy.load_file(str(path))
    tensors["h.1.mlp.c_proj.bias"] = np.random.default_rng(5).normal(0, 0.3, 16)
    safetensors_numpy.save_file(tensors, str(path), metadata={"format": "pt"})
    hf = json.loads((tmp_path / "config.json").read_text())
    loaded = load_hf_gpt2(tmp_path, dtype="float64").eval()
    assert loaded.config.bias is True
    idx = _ids(5)
    np.testing.assert_allclose(loaded(idx)[0].numpy(), _hf_gpt2_forward(tensors, hf, idx.numpy()),
                               rtol=1e-9, atol=1e-12)
    assert not np.allclose(loaded(idx)[0].numpy(), model(idx)[0].numpy(), atol=1e-3)
    # without the "minigrad" entry (a plain GPT-2 config.json) zero biases load as biases too
    del hf["minigrad"]
    (tmp_path / "config.json").write_text(json.dumps(hf))
    export_hf_gpt2(model, tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text(json.dumps(hf))
    plain = load_hf_gpt2(tmp_path / "b", dtype="float64").eval()
    assert plain.config.bias is True
    np.testing.assert_array_equal(plain(idx)[0].numpy(), model(idx)[0].numpy())


def _preset_model(preset: str) -> GPT:
    """The model of a train.py preset (its bias, activation, tying, padding), at a tiny size, with
    weights large enough for logits of several units (so a tolerance means something)."""
    import train
    settings = dataclasses.asdict(train.TrainConfig(**PRESETS[preset]))
    kw = {k: settings[k] for k in train.MODEL_KEYS}
    kw.update(n_layer=2, n_head=2, n_embd=32, block_size=16, dropout=0.0)
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=57, **kw), dtype="float32")
    rng = np.random.default_rng(1)
    model.load_state_dict({n: (p.numpy() + rng.normal(0, 0.3, p.shape) if p.ndim == 1 else
                               p.numpy() * (50 if n.endswith("wte.weight") else 5)).astype(np.float32)
                           for n, p in model.named_parameters()}, strict=False)
    return model.eval()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_exports_and_loads_back_with_the_same_logits(tmp_path, preset):
    """Every seed preset exports (all are bias-free but gpt2-124m; hp has only the qkv bias), and
    the folder gives the original model's logits in transformers' GPT2LMHeadModel (float32) and,
    exactly, in minigrad again."""
    import torch
    tf = hf_testing.transformers()
    model = _preset_model(preset)
    export_hf_gpt2(model, tmp_path)
    ids = np.random.default_rng(2).integers(0, 57, (2, 16))
    ours = model(minigrad.tensor(ids))[0].numpy()
    assert 3 < np.abs(ours).max() < 1e3
    hf_model = tf.GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    assert next(hf_model.parameters()).dtype == torch.float32
    with torch.no_grad():
        theirs = hf_model(torch.tensor(ids)).logits.numpy()
    # float32 rounding only: logits reach ~36 here, where one float32 step is 3.8e-6, and they
    # differed by at most 7.6e-6 (the issue measured 1.2e-6 to 5.7e-6 on trained models); a
    # wrong bias, transpose or activation moves them by whole units
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=5e-5)
    back = load_hf_gpt2(tmp_path, dtype="float32", pad_vocab_multiple=model.config.pad_vocab_multiple).eval()
    assert back.config == model.config
    np.testing.assert_array_equal(back(minigrad.tensor(ids))[0].numpy(), ours)


def test_the_shape_comes_from_the_weights(tmp_path):
    """config.json with only what the weights cannot say (n_head, activation, epsilon) loads."""
    model = _model(ffn_hidden=40, activation="gelu_exact", norm_eps=1e-6)
    export_hf_gpt2(model, tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    for key in ("vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_inner"):
        del hf[key]
    (tmp_path / "config.json").write_text(json.dumps(hf))
    cfg, state = read_hf_gpt2(tmp_path)
    assert cfg == model.config
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert set(state) == set(model.state_dict())
    loaded = load_hf_gpt2(tmp_path).eval()
    idx = _ids(6)
    np.testing.assert_array_equal(loaded(idx)[0].numpy(), model(idx)[0].numpy())


def _set(key, value):
    def change(tensors, hf):
        if value is None:
            hf.pop(key, None) if key in hf else tensors.pop(key)
        elif isinstance(value, np.ndarray):
            tensors[key] = value
        else:
            hf[key] = value
    return change


def _drop_block(tensors, hf):
    for k in [k for k in tensors if k.startswith("h.0.")]:
        del tensors[k]


# (what to change in the exported file or config.json, which file the error names, its message)
BAD_FILES = [
    ("config not JSON", lambda t, h: "{not json", "config", r"not valid JSON \(.*line 1, column 2\)"),
    ("config a list", lambda t, h: "[1, 2]", "config", r"expected a JSON object of GPT2Config fields, got a list"),
    ("no n_head", _set("n_head", None), "config", r"missing 'n_head' \(the weights do not give"),
    ("n_head a string", _set("n_head", "2"), "config", r"'n_head' must be an integer >= 1, got '2'"),
    ("n_head not a divisor", _set("n_head", 3), "config", r"n_embd \(16\) must be divisible by n_head \(3\)"),
    ("vocab_size conflict", _set("vocab_size", 50), "config",
     r"vocab_size=50 conflicts with the weights in model.safetensors: wte.weight's shape gives vocab_size=57"),
    ("n_layer conflict", _set("n_layer", 3), "config", r"n_layer=3 conflicts .* h.\{i\} blocks gives n_layer=2"),
    ("n_inner conflict", _set("n_inner", 32), "config", r"n_inner=32 conflicts .* gives n_inner=64"),
    ("activation unknown", _set("activation_function", "relu2"), "config", r"unsupported activation_function 'relu2'"),
    ("model_type", _set("model_type", "llama"), "config", r"model_type='llama'; only 'gpt2' loads"),
    ("missing weight", _set("h.1.attn.c_proj.weight", None), "weights",
     r"missing weight 'h.1.attn.c_proj.weight' \(also tried 'transformer.h.1.attn.c_proj.weight'\)"),
    ("extra weight", _set("h.0.attn.rotary.weight", np.ones(4, np.float32)), "weights",
     r"unexpected weights \['h.0.attn.rotary.weight'\]"),
    ("wrong shape", _set("h.0.mlp.c_proj.weight", np.zeros((64, 8), np.float32)), "weights",
     r"'h.0.mlp.c_proj.weight' has shape \(64, 8\), the config implies \(64, 16\)"),
    ("integer weights", _set("ln_f.weight", np.ones(16, np.int64)), "weights",
     r"'ln_f.weight' has dtype int64; expected floating-point weights"),
    ("wte not a matrix", _set("wte.weight", np.zeros(57, np.float32)), "weights",
     r"'wte.weight' has shape \(57,\); expected 2 dimensions"),
    ("a block missing", _drop_block, "weights", r"blocks \[0\] are missing"),
]


@pytest.mark.parametrize("name,change,where,message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_give_one_line_naming_the_file_and_the_key(tmp_path, name, change, where, message):
    path = export_hf_gpt2(_model(), tmp_path)
    tensors = safetensors_numpy.load_file(str(path))
    hf = json.loads((tmp_path / "config.json").read_text())
    replaced = change(tensors, hf)
    if isinstance(replaced, str):
        (tmp_path / "config.json").write_text(replaced)
    else:
        (tmp_path / "config.json").write_text(json.dumps(hf))
        safetensors_numpy.save_file(tensors, str(path), metadata={"format": "pt"})
    named = tmp_path / "config.json" if where == "config" else path
    with pytest.raises(HFFormatError) as err:
        load_hf_gpt2(tmp_path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{named}: "), text
    assert re.search(message, text), text


def test_sharded_and_pytorch_bin_folders_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="only pytorch_model.bin"):
        load_hf_gpt2(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(HFFormatError, match="sharded weights"):
        load_hf_gpt2(tmp_path)
