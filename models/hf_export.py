"""Export a GPT to the Hugging Face GPT-2 layout (safetensors + config.json) and load it back.

    path = export_hf_gpt2(model, "out/hf")      # out/hf/model.safetensors + out/hf/config.json
    model2 = load_hf_gpt2("out/hf")             # or the .safetensors path itself

The layout is the one `GPT2LMHeadModel.from_pretrained` reads: keys `wte.weight`, `wpe.weight`,
`h.{i}.ln_1.weight/bias`, `h.{i}.attn.c_attn.weight/bias`, `h.{i}.attn.c_proj.weight/bias`,
`h.{i}.ln_2.weight/bias`, `h.{i}.mlp.c_fc.weight/bias`, `h.{i}.mlp.c_proj.weight/bias`,
`ln_f.weight/bias` (no lm_head: it is tied to wte). HF's GPT-2 uses Conv1D, whose weight is
(in_features, out_features), so every Linear weight is written transposed. Only the TRUE
vocabulary's rows of wte are written (our padded rows are dropped); loading pads them back
with zeros. Files are written and read with minigrad's own safetensors code.

What the layout can express, and so what export accepts: learned positions, LayerNorm,
biases everywhere, tied embeddings, and an activation HF's GPT-2 knows under
`activation_function`: "gelu" (ours: tanh approximation) -> "gelu_new", "gelu_exact" -> "gelu",
"silu" -> "silu". RoPE, RMSNorm, SwiGLU, bias=False (or qkv-only biases) and untied weights
raise a ValueError naming the option. The loader also accepts the "transformer."-prefixed
keys that `save_pretrained` writes, ignores the causal-mask buffers (`attn.bias`,
`attn.masked_bias`) older files carry, and reads an untied `lm_head.weight` when the config
says tie_word_embeddings=false.

Not here: downloading checkpoints, sharded files, tokenizers, other HF architectures.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from minigrad import serialization

from .gpt import GPT, GPTConfig

_ACT_TO_HF = {"gelu": "gelu_new", "gelu_exact": "gelu", "silu": "silu"}
_ACT_FROM_HF = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
                "gelu": "gelu_exact", "silu": "silu", "swish": "silu"}
_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")   # weights stored (in, out)
_MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")                   # HF causal-mask buffers
_FILENAME = "model.safetensors"


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
    if not config.bias:
        problems.append("bias=False" + (" with qkv_bias=True" if config.qkv_bias else "")
                        + " (GPT-2 has a bias in every Linear and LayerNorm: needs bias=True)")
    if not config.tie_weights:
        problems.append("tie_weights=False (the GPT-2 layout stores no lm_head: needs tied weights)")
    return problems


def _paths(path: Union[str, Path]) -> tuple[Path, Path]:
    """(safetensors file, config.json) for a directory or a .safetensors file path."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return p, p.parent / "config.json"
    return p / _FILENAME, p / "config.json"


def hf_config(config: GPTConfig, dtype: str = "float32", bos_token_id: Optional[int] = None,
              eos_token_id: Optional[int] = None) -> dict:
    """The GPT2Config dict (config.json contents) for an exportable GPTConfig."""
    C = config.n_embd
    return {
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


def export_hf_gpt2(model: GPT, path: Union[str, Path], dtype: Optional[str] = None,
                   bos_token_id: Optional[int] = None,
                   eos_token_id: Optional[int] = None) -> Path:
    """Write `model` in the HF GPT-2 layout. path: a directory (gets model.safetensors and
    config.json) or a file ending in .safetensors (config.json goes beside it). dtype: cast the
    weights (e.g. "float32", "bfloat16"); default: the model's. Returns the safetensors path.
    Raises ValueError naming every option the layout cannot express."""
    cfg = model.config
    problems = unsupported_options(cfg)
    if problems:
        raise ValueError("this GPT cannot be exported in the Hugging Face GPT-2 layout: "
                         + "; ".join(problems))
    dtype = dtype or model.dtype
    tensors = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight":
            continue                                            # tied to wte: not stored
        key = name[len("transformer."):] if name.startswith("transformer.") else name
        t = p.to(dtype=dtype) if p.dtype != dtype else p
        if key == "wte.weight":
            t = t[:cfg.vocab_size]                              # (V, C): the true vocab only
        elif key.endswith(".weight") and any(f".{m}." in f".{key}" for m in _CONV1D):
            t = t.transpose(0, 1)                               # (out, in) -> Conv1D's (in, out)
        tensors[key] = t.contiguous()
    st_path, cfg_path = _paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    serialization.save_file(tensors, st_path, metadata={"format": "pt"})
    cfg_path.write_text(json.dumps(hf_config(cfg, dtype, bos_token_id, eos_token_id), indent=2)
                        + "\n")
    return st_path


def config_from_hf(hf: dict, pad_vocab_multiple: int = 64) -> GPTConfig:
    """GPTConfig from a GPT2Config dict (config.json)."""
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"config.json has model_type={hf.get('model_type')!r}; only 'gpt2' loads")
    act = hf.get("activation_function", "gelu_new")
    if act not in _ACT_FROM_HF:
        raise ValueError(f"unsupported activation_function {act!r} in config.json; supported: "
                         f"{sorted(_ACT_FROM_HF)}")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf.get(flag):
            raise ValueError(f"config.json sets {flag}=true, which this GPT does not implement")
    if hf.get("scale_attn_weights", True) is False:
        raise ValueError("config.json sets scale_attn_weights=false, which this GPT does not "
                         "implement (it always scales by 1/sqrt(head_size))")
    C = int(hf["n_embd"])
    n_inner = hf.get("n_inner")
    return GPTConfig(block_size=int(hf["n_positions"]), vocab_size=int(hf["vocab_size"]),
                     n_layer=int(hf["n_layer"]), n_head=int(hf["n_head"]), n_embd=C,
                     dropout=float(hf.get("resid_pdrop", 0.0)), bias=True,
                     activation=_ACT_FROM_HF[act], norm="layernorm", pos="learned",
                     tie_weights=bool(hf.get("tie_word_embeddings", True)),
                     pad_vocab_multiple=pad_vocab_multiple,
                     norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                     ffn_hidden=None if n_inner in (None, 4 * C) else int(n_inner))


def load_hf_gpt2(path: Union[str, Path], device=None, dtype=None,
                 pad_vocab_multiple: int = 64) -> GPT:
    """A GPT from a HF GPT-2 safetensors file (or a directory holding model.safetensors) with
    its config.json beside it. Keys may carry the "transformer." prefix. dtype: the model's
    dtype (default: minigrad's default dtype); device: where it lives."""
    st_path, cfg_path = _paths(path)
    if not st_path.is_file():
        raise FileNotFoundError(f"no safetensors file at {st_path}")
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no config.json beside {st_path} (expected {cfg_path}): the "
                                "GPT-2 weights alone do not give n_head")
    cfg = config_from_hf(json.loads(cfg_path.read_text()), pad_vocab_multiple)
    raw = serialization.load_numpy_file(st_path)
    weights: dict[str, np.ndarray] = {}
    for key, arr in raw.items():
        k = key[len("transformer."):] if key.startswith("transformer.") else key
        if k.endswith(_MASK_BUFFERS) and k.startswith("h."):
            continue                                            # causal-mask buffers, not weights
        weights[k] = arr
    model = GPT(cfg, device=device, dtype=dtype)
    own = {n: p for n, p in model.state_dict().items()}
    state, C, V, Vp = {}, cfg.n_embd, cfg.vocab_size, cfg.padded_vocab_size
    for name, p in own.items():
        key = name[len("transformer."):] if name.startswith("transformer.") else name
        if key == "lm_head.weight" and cfg.tie_weights:
            continue
        if key not in weights:
            raise KeyError(f"{st_path}: missing weight {key!r} (also tried 'transformer.{key}')")
        arr = weights.pop(key)
        if key.endswith(".weight") and any(f".{m}." in f".{key}" for m in _CONV1D):
            arr = arr.T                                         # Conv1D (in, out) -> (out, in)
        if key in ("wte.weight", "lm_head.weight"):
            if arr.shape != (V, C):
                raise ValueError(f"{st_path}: {key} has shape {arr.shape}, expected "
                                 f"(vocab_size={V}, n_embd={C})")
            arr = np.concatenate([arr, np.zeros((Vp - V, C), arr.dtype)])   # pad to (Vp, C)
        if arr.shape != p.shape:
            raise ValueError(f"{st_path}: {key} has shape {arr.shape} (after the Conv1D "
                             f"transpose), the config implies {p.shape}")
        state[name] = np.ascontiguousarray(arr)
    if cfg.tie_weights:
        weights.pop("lm_head.weight", None)                     # tied: a copy of wte
        state["lm_head.weight"] = state["transformer.wte.weight"]
    if weights:
        raise KeyError(f"{st_path}: unexpected weights {sorted(weights)}")
    model.load_state_dict(state)
    return model
