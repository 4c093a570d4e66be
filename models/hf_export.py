"""Export a GPT to the Hugging Face GPT-2 layout (safetensors + config.json) and load it back.

    path = export_hf_gpt2(model, "out/hf")      # out/hf/model.safetensors + out/hf/config.json
    model2 = load_hf_gpt2("out/hf")             # or the .safetensors path itself
    config, state_dict = read_hf_gpt2("out/hf") # the same, without building the model

The layout is the one `GPT2LMHeadModel.from_pretrained` reads: keys `wte.weight`, `wpe.weight`,
`h.{i}.ln_1.weight/bias`, `h.{i}.attn.c_attn.weight/bias`, `h.{i}.attn.c_proj.weight/bias`,
`h.{i}.ln_2.weight/bias`, `h.{i}.mlp.c_fc.weight/bias`, `h.{i}.mlp.c_proj.weight/bias`,
`ln_f.weight/bias` (no lm_head: it is tied to wte). HF's GPT-2 uses Conv1D, whose weight is
(in_features, out_features), so every Linear weight is written transposed. Only the TRUE
vocabulary's rows of wte are written (our padded rows are dropped); loading pads them back
with zeros. Files are written and read with minigrad's own safetensors code.

What the layout can express, and so what export accepts: learned positions, LayerNorm, tied
embeddings, and an activation HF's GPT-2 knows under `activation_function`: "gelu" (ours: tanh
approximation) -> "gelu_new", "gelu_exact" -> "gelu", "silu" -> "silu". RoPE, RMSNorm, SwiGLU
and untied weights raise a ValueError naming the option. GPT-2 has a bias in every Linear and
LayerNorm; a model without some of them (bias=False, or bias=False with qkv_bias=True) is
written with zero biases there, which is the same function (x @ W + 0, LayerNorm + 0), and
config.json records what the model had in an extra entry, ``"minigrad": {"bias": false,
"qkv_bias": ...}`` (transformers keeps unknown entries and ignores them).

Loading (`read_hf_gpt2`, `load_hf_gpt2`) takes the model's shape from the weights: vocab_size
and n_embd from wte, n_positions from wpe, n_layer from the h.{i} blocks, the MLP width from
c_fc; config.json supplies n_head, the activation and the norm epsilon, and any shape it also
states must agree with the weights. With the "minigrad" entry and those biases still exactly
zero the model comes back bias-free (bias=False, qkv_bias as recorded, or True when the qkv
biases are no longer zero); a bias-free model whose biases became non-zero (fine-tuned in
transformers) or an export without the entry loads with bias=True, computing the same
function. The loader also accepts the "transformer."-prefixed keys that `save_pretrained`
writes, ignores the causal-mask buffers (`attn.bias`, `attn.masked_bias`) older files carry,
and reads an untied `lm_head.weight` when the config says tie_word_embeddings=false. Every
problem with the files (bad JSON, a config.json that is not an object, missing, unexpected or
integer weights, a shape that conflicts with another) is an HFFormatError (a ValueError) of
one line naming the file and the key.

Not here: downloading checkpoints, sharded files, tokenizers (minigrad/training/pretrained.py
adds those files), other HF architectures.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Optional, Union

import numpy as np

import minigrad
from minigrad import serialization

from .gpt import GPT, GPTConfig

_ACT_TO_HF = {"gelu": "gelu_new", "gelu_exact": "gelu", "silu": "silu"}
_ACT_FROM_HF = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
                "gelu": "gelu_exact", "silu": "silu", "swish": "silu"}
_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")   # weights stored (in, out)
_MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")                   # HF causal-mask buffers
_FILENAME = "model.safetensors"
META_KEY = "minigrad"           # config.json entry: the biases the exported model really had


class HFFormatError(ValueError):
    """A Hugging Face GPT-2 file or config.json that cannot be read as this GPT (the message
    names the file and the key)."""


def unsupported_options(config: GPTConfig) -> list[str]:
    """The config's options the HF GPT-2 layout cannot express ([] if it can be exported)."""
    problems = []
    if config.pos != "learned":
        problems.append(f"pos={config.pos!r} (GPT-2 has learned positions: needs 'learned')")
    if config.norm != "layernorm":
        problems.append(f"norm={config.norm!r} (GPT-2 uses LayerNorm: needs 'layernorm')")
    if config.activation not in _ACT_TO_HF:
        problems.append(f"activation={config.activation!r} (GPT-2's MLP has one activation: "
                        f"needs one of {sorted(_ACT_TO_HF)})")
    if not config.tie_weights:
        problems.append("tie_weights=False (the GPT-2 layout stores no lm_head: needs tied weights)")
    return problems


def state_dict_shapes(config: GPTConfig) -> dict[str, tuple]:
    """Name -> shape of every entry of ``GPT(config).state_dict()``, without building the model
    (initialising GPT-2 124M takes ~10 s on a CPU). Tested equal to the real state_dict."""
    C, Vp, H = config.n_embd, config.padded_vocab_size, config.mlp_hidden
    shapes: dict[str, tuple] = {"transformer.wte.weight": (Vp, C)}
    if config.pos == "learned":
        shapes["transformer.wpe.weight"] = (config.block_size, C)

    def norm(name: str) -> None:
        shapes[f"{name}.weight"] = (C,)
        if config.bias and config.norm == "layernorm":       # RMSNorm has no bias
            shapes[f"{name}.bias"] = (C,)

    def linear(name: str, n_out: int, n_in: int, bias: bool) -> None:
        shapes[f"{name}.weight"] = (n_out, n_in)             # (out, in), as torch's Linear
        if bias:
            shapes[f"{name}.bias"] = (n_out,)

    width = 2 * H if config.activation == "swiglu" else H     # swiglu: gate and up fused
    for i in range(config.n_layer):
        p = f"transformer.h.{i}"
        norm(f"{p}.ln_1")
        linear(f"{p}.attn.c_attn", 3 * C, C, config.bias or config.qkv_bias)
        linear(f"{p}.attn.c_proj", C, C, config.bias)
        norm(f"{p}.ln_2")
        linear(f"{p}.mlp.c_fc", width, C, config.bias)
        linear(f"{p}.mlp.c_proj", C, H, config.bias)
    norm("transformer.ln_f")
    shapes["lm_head.weight"] = (Vp, C)
    return shapes


def _paths(path: Union[str, Path]) -> tuple[Path, Path]:
    """(safetensors file, config.json) for a directory or a .safetensors file path."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return p, p.parent / "config.json"
    return p / _FILENAME, p / "config.json"


def _hf_key(name: str) -> str:
    return name[len("transformer."):] if name.startswith("transformer.") else name


def _is_conv1d_weight(key: str) -> bool:
    return key.endswith(".weight") and any(f".{m}." in f".{key}" for m in _CONV1D)


def hf_config(config: GPTConfig, dtype: str = "float32", bos_token_id: Optional[int] = None,
              eos_token_id: Optional[int] = None) -> dict:
    """The GPT2Config dict (config.json contents) for an exportable GPTConfig."""
    C = config.n_embd
    out = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": C,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None if config.mlp_hidden == 4 * C else config.mlp_hidden,
        "activation_function": _ACT_TO_HF[config.activation],
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "use_cache": True,
        "torch_dtype": dtype,
    }
    if not config.bias:
        out[META_KEY] = {"bias": False, "qkv_bias": bool(config.qkv_bias)}
    return out


def export_hf_gpt2(model: GPT, path: Union[str, Path], dtype: Optional[str] = None,
                   bos_token_id: Optional[int] = None,
                   eos_token_id: Optional[int] = None) -> Path:
    """Write `model` in the HF GPT-2 layout. path: a directory (gets model.safetensors and
    config.json) or a file ending in .safetensors (config.json goes beside it). dtype: cast the
    weights (e.g. "float32", "bfloat16"); default: the model's. Biases the model does not have
    are written as zeros (see the module docstring). Returns the safetensors path.
    Raises ValueError naming every option the layout cannot express."""
    cfg = model.config
    problems = unsupported_options(cfg)
    if problems:
        raise ValueError("this GPT cannot be exported in the Hugging Face GPT-2 layout: "
                         + "; ".join(problems))
    dtype = dtype or model.dtype
    own = model.state_dict()
    tensors = {}
    # every entry of GPT-2's layout, in its order: the model's own, or a zero bias it lacks
    for name, shape in state_dict_shapes(dataclasses.replace(cfg, bias=True)).items():
        if name == "lm_head.weight":
            continue                                            # tied to wte: not stored
        key = _hf_key(name)
        if name not in own:                                     # bias=False: GPT-2 adds 0 here
            tensors[key] = minigrad.zeros(*shape, dtype=dtype, device=model.device)
            continue
        p = own[name]
        t = p.to(dtype=dtype) if p.dtype != dtype else p
        if key == "wte.weight":
            t = t[:cfg.vocab_size]                              # (V, C): the true vocab only
        elif _is_conv1d_weight(key):
            t = t.transpose(0, 1)                               # (out, in) -> Conv1D's (in, out)
        tensors[key] = t.contiguous()
    st_path, cfg_path = _paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    serialization.save_file(tensors, st_path, metadata={"format": "pt"})
    cfg_path.write_text(json.dumps(hf_config(cfg, dtype, bos_token_id, eos_token_id), indent=2)
                        + "\n")
    return st_path


# ---------------------------------------------------------------------------------------------
# reading


def _int(hf: dict, key: str, where: str, minimum: int = 1) -> int:
    v = hf[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise HFFormatError(f"{where}: {key!r} must be an integer >= {minimum}, got {v!r}")
    return v


def _number(hf: dict, key: str, where: str, default: float) -> float:
    v = hf.get(key, default)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
        raise HFFormatError(f"{where}: {key!r} must be a finite number >= 0, got {v!r}")
    return float(v)


def config_from_hf(hf: dict, pad_vocab_multiple: int = 64, where: str = "config.json") -> GPTConfig:
    """GPTConfig from a GPT2Config dict (config.json). `where` names the file in errors.
    (The bias fields are those of HF's GPT-2, bias=True; `read_hf_gpt2` sets them from the
    weights and the "minigrad" entry.)"""
    if not isinstance(hf, dict):
        raise HFFormatError(f"{where}: expected a JSON object of GPT2Config fields, got a "
                            f"{type(hf).__name__}")
    if hf.get("model_type", "gpt2") != "gpt2":
        raise HFFormatError(f"{where}: model_type={hf.get('model_type')!r}; only 'gpt2' loads")
    act = hf.get("activation_function", "gelu_new")
    if act not in _ACT_FROM_HF:
        raise HFFormatError(f"{where}: unsupported activation_function {act!r}; supported: "
                            f"{sorted(_ACT_FROM_HF)}")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf.get(flag):
            raise HFFormatError(f"{where}: {flag}=true, which this GPT does not implement")
    if hf.get("scale_attn_weights", True) is False:
        raise HFFormatError(f"{where}: scale_attn_weights=false, which this GPT does not "
                            "implement (it always scales by 1/sqrt(head_size))")
    for key in ("n_embd", "n_positions", "vocab_size", "n_layer", "n_head"):
        if key not in hf:
            raise HFFormatError(f"{where}: missing {key!r}")
    C = _int(hf, "n_embd", where)
    n_inner = hf.get("n_inner")
    if n_inner is not None:
        n_inner = _int(hf, "n_inner", where)
    tie = hf.get("tie_word_embeddings", True)
    if not isinstance(tie, bool):
        raise HFFormatError(f"{where}: 'tie_word_embeddings' must be true or false, got {tie!r}")
    try:
        return GPTConfig(block_size=_int(hf, "n_positions", where),
                         vocab_size=_int(hf, "vocab_size", where),
                         n_layer=_int(hf, "n_layer", where), n_head=_int(hf, "n_head", where),
                         n_embd=C, dropout=_number(hf, "resid_pdrop", where, 0.0), bias=True,
                         activation=_ACT_FROM_HF[act], norm="layernorm", pos="learned",
                         tie_weights=tie, pad_vocab_multiple=pad_vocab_multiple,
                         norm_eps=_number(hf, "layer_norm_epsilon", where, 1e-5),
                         ffn_hidden=None if n_inner in (None, 4 * C) else n_inner)
    except ValueError as err:
        raise HFFormatError(f"{where}: {err}") from None


def _read_config_json(cfg_path: Path) -> dict:
    try:
        hf = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise HFFormatError(f"{cfg_path}: not valid JSON ({err.msg} at line {err.lineno}, "
                            f"column {err.colno})") from None
    except UnicodeDecodeError:
        raise HFFormatError(f"{cfg_path}: not UTF-8 text (expected a JSON object)") from None
    if not isinstance(hf, dict):
        raise HFFormatError(f"{cfg_path}: expected a JSON object of GPT2Config fields, got a "
                            f"{type(hf).__name__}")
    return hf


def _read_weights(st_path: Path) -> dict[str, np.ndarray]:
    """The file's weights by HF key (prefix removed, mask buffers dropped), floating only."""
    weights: dict[str, np.ndarray] = {}
    for key, arr in serialization.load_numpy_file(st_path).items():
        k = _hf_key(key)
        if k.endswith(_MASK_BUFFERS) and k.startswith("h."):
            continue                                            # causal-mask buffers, not weights
        if k in weights:
            raise HFFormatError(f"{st_path}: {k!r} is stored twice (with and without the "
                                "'transformer.' prefix)")
        if arr.dtype.kind != "f":
            raise HFFormatError(f"{st_path}: {key!r} has dtype {arr.dtype}; expected "
                                "floating-point weights")
        weights[k] = arr
    return weights


def _weight(weights: dict, key: str, st_path: Path, ndim: int) -> np.ndarray:
    if key not in weights:
        raise HFFormatError(f"{st_path}: missing weight {key!r} (also tried 'transformer.{key}')")
    arr = weights[key]
    if arr.ndim != ndim:
        raise HFFormatError(f"{st_path}: {key!r} has shape {arr.shape}; expected {ndim} dimensions")
    return arr


def _shape_from_weights(weights: dict, st_path: Path) -> dict[str, int]:
    """vocab_size, n_embd, n_positions, n_layer and n_inner as the weights say them."""
    V, C = _weight(weights, "wte.weight", st_path, 2).shape
    P = _weight(weights, "wpe.weight", st_path, 2).shape[0]
    layers = {int(m.group(1)) for k in weights if (m := re.match(r"h\.(\d+)\.", k))}
    if not layers:
        raise HFFormatError(f"{st_path}: no transformer blocks (expected keys 'h.0.ln_1.weight', ...)")
    L = max(layers) + 1
    gaps = sorted(set(range(L)) - layers)
    if gaps:
        raise HFFormatError(f"{st_path}: blocks {gaps} are missing (found h.0 to h.{L - 1})")
    H = _weight(weights, "h.0.mlp.c_fc.weight", st_path, 2).shape[1]      # Conv1D: (C, H)
    return {"vocab_size": V, "n_embd": C, "n_positions": P, "n_layer": L, "n_inner": H}


def _merge_shapes(hf: dict, shape: dict, cfg_path: Path, st_path: Path) -> dict:
    """config.json with the weights' shape filled in; a value it states must agree."""
    hf = dict(hf)

    def conflict(key: str, stated, evidence: str, value: int) -> HFFormatError:
        return HFFormatError(f"{cfg_path}: {key}={stated!r} conflicts with the weights in "
                             f"{st_path.name}: {evidence} gives {key}={value}")

    evidence = {"vocab_size": "wte.weight's shape", "n_embd": "wte.weight's shape",
                "n_positions": "wpe.weight's shape", "n_layer": "the number of h.{i} blocks"}
    for key, why in evidence.items():
        if key in hf and hf[key] != shape[key]:
            raise conflict(key, hf[key], why, shape[key])
        hf[key] = shape[key]
    C, H = shape["n_embd"], shape["n_inner"]
    if "n_inner" in hf and (4 * C if hf["n_inner"] is None else hf["n_inner"]) != H:
        raise conflict("n_inner", hf["n_inner"], "h.0.mlp.c_fc.weight's shape", H)   # null: 4*n_embd
    hf["n_inner"] = None if H == 4 * C else H
    return hf


def _recover_bias_free(cfg: GPTConfig, hf: dict, weights: dict) -> GPTConfig:
    """bias=False (and qkv_bias) when config.json's "minigrad" entry says the model had no biases
    and the biases the export added are still exactly zero; otherwise cfg unchanged."""
    meta = hf.get(META_KEY)
    if not (isinstance(meta, dict) and meta.get("bias") is False):
        return cfg
    qkv = [k for k in weights if k.endswith("attn.c_attn.bias")]
    others = [k for k in weights if k.endswith(".bias") and k not in qkv]
    if any(np.any(weights[k]) for k in others):
        return cfg                               # changed since the export: keep the biases
    qkv_bias = meta.get("qkv_bias") is True or any(np.any(weights[k]) for k in qkv)
    return dataclasses.replace(cfg, bias=False, qkv_bias=qkv_bias)


def read_hf_gpt2(path: Union[str, Path], pad_vocab_multiple: int = 64
                 ) -> tuple[GPTConfig, dict[str, np.ndarray]]:
    """(GPTConfig, state_dict of NumPy arrays under minigrad's names) from a HF GPT-2
    safetensors file (or a directory holding model.safetensors) with its config.json beside it.
    The shape comes from the weights (see the module docstring); `GPT(config).load_state_dict(
    state_dict)` then gives the model. Raises FileNotFoundError for missing files and
    HFFormatError for everything else wrong with them."""
    st_path, cfg_path = _paths(path)
    if not st_path.is_file():
        folder = st_path.parent
        if (folder / "model.safetensors.index.json").is_file():
            raise HFFormatError(f"{folder}: sharded weights (model.safetensors.index.json) are not "
                                "supported; save the model as one model.safetensors")
        if (folder / "pytorch_model.bin").is_file():
            raise FileNotFoundError(f"no safetensors file at {st_path} (only pytorch_model.bin: save "
                                    "the model again with save_pretrained, which writes safetensors)")
        raise FileNotFoundError(f"no safetensors file at {st_path}")
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no config.json beside {st_path} (expected {cfg_path}): the "
                                "GPT-2 weights alone do not give n_head")
    hf = _read_config_json(cfg_path)
    if "n_head" not in hf:
        raise HFFormatError(f"{cfg_path}: missing 'n_head' (the weights do not give the number "
                            "of attention heads)")
    weights = _read_weights(st_path)
    hf = _merge_shapes(hf, _shape_from_weights(weights, st_path), cfg_path, st_path)
    cfg = _recover_bias_free(config_from_hf(hf, pad_vocab_multiple, str(cfg_path)), hf, weights)
    expected = state_dict_shapes(cfg)
    state, V, Vp = {}, cfg.vocab_size, cfg.padded_vocab_size
    for name, shape in expected.items():
        key = _hf_key(name)
        if key == "lm_head.weight" and cfg.tie_weights:
            continue
        arr = _weight(weights, key, st_path, len(shape))
        conv1d, embedding = _is_conv1d_weight(key), key in ("wte.weight", "lm_head.weight")
        want = shape[::-1] if conv1d else (V,) + shape[1:] if embedding else shape   # as stored
        if arr.shape != want:
            raise HFFormatError(f"{st_path}: {key!r} has shape {arr.shape}, the config implies {want}")
        weights.pop(key)
        if conv1d:
            arr = arr.T                                         # Conv1D (in, out) -> (out, in)
        if embedding:
            arr = np.concatenate([arr, np.zeros((Vp - V, arr.shape[1]), arr.dtype)])  # (Vp, C)
        state[name] = np.ascontiguousarray(arr)
    if cfg.tie_weights:
        weights.pop("lm_head.weight", None)                     # tied: a copy of wte
        state["lm_head.weight"] = state["transformer.wte.weight"]
    if not cfg.bias:                                            # the zeros the export added
        for key in [k for k in weights if k.endswith(".bias")]:
            weights.pop(key)
    if weights:
        raise HFFormatError(f"{st_path}: unexpected weights {sorted(weights)[:5]}"
                            f"{' ...' if len(weights) > 5 else ''} (not part of a GPT-2 of this shape)")
    return cfg, state


def load_hf_gpt2(path: Union[str, Path], device=None, dtype=None,
                 pad_vocab_multiple: int = 64) -> GPT:
    """A GPT from a HF GPT-2 safetensors file (or a directory holding model.safetensors) with
    its config.json beside it (`read_hf_gpt2`). Keys may carry the "transformer." prefix.
    dtype: the model's dtype (default: minigrad's default dtype); device: where it lives. A
    model exported bias-free comes back bias-free while its zero biases are untouched, else with
    bias=True (the same function)."""
    cfg, state = read_hf_gpt2(path, pad_vocab_multiple)
    model = GPT(cfg, device=device, dtype=dtype)
    model.load_state_dict(state)
    return model

