"""Pretrained weights: one loader for a Hugging Face GPT-2 folder or a minigrad checkpoint, and
the export that writes such a folder with its tokenizer files.

    pre = load_pretrained("gpt2-small/")                # config.json + model.safetensors (+ tokenizer)
    pre = load_pretrained("out")                        # a train.py out_dir: out/ckpt_best.safetensors
    pre = load_pretrained("out/ckpt_last.safetensors")  # a checkpoint file
    config, state_dict, tokenizer = pre                 # GPTConfig, {name: np.ndarray}, tokenizer
    model = GPT(config); model.load_state_dict(state_dict)

sample.py reads `--hf` with `load_pretrained` and `--ckpt` / `out_dir` with `read_checkpoint`;
train.py's `--init_from=PATH` is meant to call `load_pretrained` and then `finetune_config`.

- A Hugging Face GPT-2 folder (or its .safetensors file, config.json beside it) is read by
  models/hf_export.py's `read_hf_gpt2`: the shape comes from the weights, config.json gives
  n_head, the activation and the norm epsilon, and a conflict between them, a missing,
  unexpected or integer weight, bad JSON or a config.json that is not an object is one line
  naming the file and the key. Its tokenizer is the first of, in the folder:
  ``minigrad_tokenizer.json`` (ours, exact), ``tokenizer.json`` (a byte-level BPE: one our
  export wrote, with its own split pattern, or HF's, e.g. GPT-2's; or our character form),
  ``vocab.json`` + ``merges.txt`` (split the GPT-2 way); else GPT-2's files from `gpt2_dir`, or
  downloaded into ``<cache_dir>/gpt2/`` (an error naming `--gpt2_dir` when that fails). Its size
  must equal the model's vocabulary.
- A minigrad checkpoint (train.py's safetensors file, or an out_dir holding
  ``ckpt_<which>.safetensors``) is checked as `--resume` checks it (a CheckpointError naming
  the file and the problem); the model config and the tokenizer come from its metadata and
  its tensors must have the shapes that config implies.

`export_pretrained` writes `model.safetensors` + `config.json` (models/hf_export.py) and the
tokenizer as ``minigrad_tokenizer.json`` (exact), ``tokenizer.json`` + ``tokenizer_config.json``
(what ``transformers.AutoTokenizer`` reads, with the tokenizer's own split pattern:
tokenizer/hf_json.py) and, for a BPE, GPT-2-style ``vocab.json`` + ``merges.txt``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Union

import numpy as np

from minigrad.models.gpt import GPT, GPTConfig
from minigrad.models.hf_export import export_hf_gpt2, read_hf_gpt2
from minigrad.serialization import read_metadata
from minigrad.tokenizer import BPETokenizer
from minigrad.tokenizer.hf_json import bpe_tokenizer_json, char_tokenizer_json, write_tokenizer_files

from .checkpoint import FORMAT, CheckpointError, check_model_config, load_checkpoint, model_state
from .data import (GPT2_PINS, GPT2_URLS, CharTokenizer, download, gpt2_files, tokenizer_from_json,
                   tokenizer_in_folder, tokenizer_to_json)

PathLike = Union[str, "os.PathLike[str]"]
HF_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
# model settings a fine-tuning run may set to another value than the pretrained model's
FREE_WHEN_FINETUNING = ("dropout",)


@dataclass
class Pretrained:
    """What `load_pretrained` returns; unpacks as ``config, state_dict, tokenizer``."""
    config: GPTConfig
    state_dict: dict[str, np.ndarray]     # minigrad's names; GPT(config).load_state_dict(...) takes it
    tokenizer: Any                         # BPETokenizer or CharTokenizer; None: none found (see gpt2_fallback)
    source: Path                           # the weights file that was read

    def __iter__(self) -> Iterator[Any]:
        return iter((self.config, self.state_dict, self.tokenizer))


def load_pretrained(path: PathLike, *, which: str = "best", gpt2_dir: Optional[str] = None,
                    cache_dir: PathLike = "data", pad_vocab_multiple: int = 64,
                    gpt2_fallback: bool = True, name: Optional[str] = None,
                    script: str = "sample.py") -> Pretrained:
    """Weights, config and tokenizer from a Hugging Face GPT-2 folder or .safetensors file, a
    minigrad checkpoint file, or a train.py out_dir (its ``ckpt_<which>.safetensors``).

    gpt2_dir / cache_dir: where GPT-2's vocab.json + merges.txt come from when an HF folder has
    no tokenizer of its own (downloaded into cache_dir/gpt2/ when gpt2_dir is not given);
    gpt2_fallback=False returns tokenizer None instead. pad_vocab_multiple: the embedding
    padding of a model read from an HF folder (a checkpoint keeps its own). name: how messages
    call the path (default: the path itself; sample.py says "--hf=DIR"). script: the program
    named in the hint when GPT-2's files cannot be found.
    """
    p = Path(path).expanduser()
    label = name or str(path)
    if p.is_dir():
        if any((p / f).is_file() for f in HF_FILES):
            return _load_hf(p, gpt2_dir, cache_dir, pad_vocab_multiple, gpt2_fallback, label, script)
        if not any(p.glob("ckpt_*.safetensors")):
            raise FileNotFoundError(f"{label}: neither a Hugging Face GPT-2 folder (config.json + "
                                    "model.safetensors) nor a train.py out_dir (ckpt_best.safetensors "
                                    "or ckpt_last.safetensors)")
        chosen = p / f"ckpt_{which}.safetensors"
        if which == "best" and not chosen.is_file() and (p / "ckpt_last.safetensors").is_file():
            print(f"note: {p} has no ckpt_best.safetensors (val loss never improved after step 0); "
                  "using ckpt_last.safetensors")
            chosen = p / "ckpt_last.safetensors"
        return read_checkpoint(chosen)
    if not p.is_file():
        raise FileNotFoundError(f"{label}: no such file or folder (expected a Hugging Face GPT-2 "
                                "folder, a minigrad checkpoint or a train.py out_dir)")
    if p.suffix != ".safetensors":
        raise ValueError(f"{label}: expected a folder or a .safetensors file")
    if read_metadata(p).get("format") == FORMAT:
        return read_checkpoint(p)
    return _load_hf(p, gpt2_dir, cache_dir, pad_vocab_multiple, gpt2_fallback, label, script)


def read_checkpoint(path: PathLike) -> Pretrained:
    """A train.py checkpoint's model config, model tensors and tokenizer (CheckpointError when the
    file is damaged or does not fit its own config)."""
    ckpt = load_checkpoint(path)
    try:
        config = GPTConfig.from_dict(ckpt.field("model_config", dict))
    except CheckpointError:
        raise
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt.path.name}: invalid model configuration: {err}") from None
    check_model_config(ckpt, config)        # before anything the config claims is allocated
    state = model_state(ckpt)
    with ckpt.reading("tokenizer"):
        tok = tokenizer_from_json(ckpt.field("tokenizer", str))
    if tok.vocab_size != config.vocab_size:     # train.py sizes the model by its tokenizer
        raise CheckpointError(f"{ckpt.path.name}: its tokenizer has {tok.vocab_size} tokens but the model's "
                              f"vocabulary has {config.vocab_size}: they do not belong together")
    return Pretrained(config, state, tok, ckpt.path)


def _load_hf(p: Path, gpt2_dir, cache_dir, pad_vocab_multiple: int, gpt2_fallback: bool, label: str,
             script: str) -> Pretrained:
    config, state = read_hf_gpt2(p, pad_vocab_multiple)
    folder = p if p.is_dir() else p.parent
    tok, source = folder_tokenizer(folder, gpt2_dir=gpt2_dir, cache_dir=cache_dir,
                                   gpt2_fallback=gpt2_fallback, script=script)
    if tok is not None and tok.vocab_size != config.vocab_size:
        raise ValueError(f"{label}: the tokenizer from {source} has {tok.vocab_size} tokens but the "
                         f"model's vocabulary has {config.vocab_size}: they do not belong together; "
                         "put the model's own tokenizer beside it (sample.py --export_hf writes "
                         "tokenizer.json and minigrad_tokenizer.json) or point --gpt2_dir at the "
                         "right vocab.json + merges.txt")
    st_path = p if p.suffix == ".safetensors" else p / "model.safetensors"
    return Pretrained(config, state, tok, st_path)


def folder_tokenizer(folder: PathLike, *, gpt2_dir: Optional[str] = None, cache_dir: PathLike = "data",
                     gpt2_fallback: bool = True, script: str = "sample.py") -> tuple[Any, Optional[Path]]:
    """(tokenizer, the file it came from) for a Hugging Face model folder, in the order of the
    module docstring; (None, None) when the folder has none and gpt2_fallback is False."""
    folder = Path(folder)
    tok, source = tokenizer_in_folder(folder)
    if tok is not None:
        return tok, source
    if gpt2_dir:
        vocab, merges = gpt2_files(gpt2_dir)
    elif gpt2_fallback:
        hint = (f"{folder} has no tokenizer (tokenizer.json, minigrad_tokenizer.json or vocab.json + "
                f"merges.txt): put the model's own there, or give {script} --gpt2_dir=DIR, a folder "
                "holding GPT-2's vocab.json and merges.txt")
        d = Path(cache_dir) / "gpt2"
        vocab, merges = (download(GPT2_URLS[n], d / n, f"GPT-2's {n}", hint, GPT2_PINS[n])
                         for n in ("vocab.json", "merges.txt"))
    else:
        return None, None
    tok = BPETokenizer.from_gpt2_files(vocab, merges)
    tok.kind = "gpt2"
    return tok, vocab.parent


def finetune_config(pre: Pretrained, settings: Mapping[str, Any], given: Iterable[str]) -> GPTConfig:
    """The model config a run that starts from `pre` trains: the pretrained config, with the
    settings in FREE_WHEN_FINETUNING (dropout) taken from `settings` when named in `given`, and a
    smaller block_size (the learned positions beyond it are dropped, as nanoGPT's
    crop_block_size: fine-tuning GPT-2 with a shorter context). Any other model setting named in
    `given` (the settings typed on the command line) must equal the pretrained model's, else a
    one-line ValueError names it."""
    config = pre.config
    given = set(given)
    changes = {}
    for key, value in settings.items():
        if key not in given or not hasattr(config, key):
            continue
        if key in FREE_WHEN_FINETUNING or (key == "block_size" and value <= config.block_size):
            changes[key] = value
        elif getattr(config, key) != value:
            raise ValueError(f"--{key}={value} conflicts with the pretrained model in {pre.source} "
                             f"({key}={getattr(config, key)!r}); leave --{key} out: the model's shape "
                             "comes from its weights" + (" (a smaller block_size is allowed)"
                                                         if key == "block_size" else ""))
    return dataclasses.replace(config, **changes) if changes else config


def start_from(cfg, given: Iterable[str], ckpt, model_keys: Iterable[str]):
    """train.py's starting point: (cfg, the weights to load or None, the tokenizer setting for
    prepare_data). With --init_from=PATH (a Hugging Face GPT-2 folder or a minigrad checkpoint,
    read by `load_pretrained`) a new run takes the model settings from PATH (as `finetune_config`
    allows: dropout, a smaller block_size, whose learned position rows beyond it are dropped),
    its weights and its tokenizer; a resumed one (`ckpt`) keeps the tokenizer its checkpoint
    holds. Otherwise nothing changes: (cfg, None, cfg.tokenizer)."""
    if cfg.init_from in ("scratch", "resume"):
        return cfg, None, cfg.tokenizer
    if ckpt is not None:
        return cfg, None, tokenizer_from_json(ckpt.field("tokenizer", str))
    pre = load_pretrained(cfg.init_from, gpt2_dir=cfg.gpt2_dir or None, cache_dir=cfg.data_cache,
                          pad_vocab_multiple=cfg.pad_vocab_multiple, name=f"--init_from={cfg.init_from}",
                          script="train.py")
    config = finetune_config(pre, dataclasses.asdict(cfg), given)
    state = dict(pre.state_dict)
    if "transformer.wpe.weight" in state:
        state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:config.block_size]   # (T, C)
    print(f"starting from {pre.source}: {config.n_layer} layers, {config.n_embd} dims, vocabulary "
          f"{config.vocab_size}, context {config.block_size}")
    return dataclasses.replace(cfg, **{k: getattr(config, k) for k in model_keys}), state, pre.tokenizer


def export_pretrained(model: GPT, tok, folder: PathLike) -> Path:
    """Write `model` in the HF GPT-2 layout (float32) into `folder` with its tokenizer files (see
    the module docstring); returns the model.safetensors path."""
    eot = tok.eot_token
    path = export_hf_gpt2(model, folder, dtype="float32", bos_token_id=eot, eos_token_id=eot)
    out = path.parent
    (out / "minigrad_tokenizer.json").write_text(tokenizer_to_json(tok), encoding="utf-8")
    if isinstance(tok, CharTokenizer):
        write_tokenizer_files(out, char_tokenizer_json(tok.chars), {}, model.config.block_size)
    else:
        tok.save_gpt2_files(out / "vocab.json", out / "merges.txt")
        write_tokenizer_files(out, bpe_tokenizer_json(tok), tok.special_tokens, model.config.block_size)
    return path
