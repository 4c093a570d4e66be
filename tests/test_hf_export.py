"""models/hf_export.py: the HF GPT-2 layout round trip, the file read by the `safetensors`
library with HF's names and shapes, an independent HF-semantics forward (Conv1D: x @ W + b)
over the exported tensors, the "transformer." prefix variant, and unsupported configs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import minigrad
from minigrad.models import GPT, GPTConfig
from minigrad.models.hf_export import export_hf_gpt2, load_hf_gpt2

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
    ("bias=False", dict(bias=False)),
    ("bias=False with qkv_bias=True", dict(bias=False, qkv_bias=True)),
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
