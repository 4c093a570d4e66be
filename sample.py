"""Sample text from a trained GPT, and convert it to and from the Hugging Face GPT-2 layout.

    python sample.py --out_dir=out                         # ckpt_best.safetensors in out/
    python sample.py --ckpt=out/ckpt_last.safetensors --prompt="ROMEO:" --num_samples=3
    python sample.py --out_dir=out --prompt=FILE:prompt.txt --temperature=0.7 --top_p=0.9
    python sample.py --out_dir=out --export_hf=out/hf      # model.safetensors + config.json + tokenizer
    python sample.py --hf=out/hf --prompt="Once upon"      # sample from such an export

Settings are the fields of `SampleConfig`, as `--name=value` (the sampling names match
train.py's). Tokens are printed as they are sampled (`--stream`, on by default), with the KV
cache (`--use_cache`); a sample ends at `max_new_tokens` or at the end-of-text token. A fixed
`--seed` gives the same text every time.

The Hugging Face GPT-2 layout (what `GPT2LMHeadModel.from_pretrained` reads) can express
learned positions, LayerNorm, tied embeddings and the activations gelu / gelu_exact / silu;
biases a model does not have (`bias=false`, or only the qkv bias) are written as zeros, the
same function. Other models (RoPE, RMSNorm, SwiGLU, untied) are refused with a message naming
the option (models/hf_export.py). The export folder also gets the tokenizer:
`minigrad_tokenizer.json` (exact, any kind), `tokenizer.json` + `tokenizer_config.json` (what
`transformers.AutoTokenizer` reads, with the tokenizer's own split pattern) and, for BPE kinds,
GPT-2-style `vocab.json` + `merges.txt`. `--hf` reads the first of minigrad_tokenizer.json,
tokenizer.json (ours or HF's, e.g. GPT-2's), vocab.json + merges.txt in the folder, else GPT-2's
files from `--gpt2_dir` (or downloaded). Loading and export live in
minigrad/training/pretrained.py (`load_pretrained`, `read_checkpoint`, `export_pretrained`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import minigrad
from minigrad.training.checkpoint import CheckpointError
from minigrad.training.data import CharTokenizer, DataError
from minigrad.training.pretrained import export_pretrained, load_pretrained, read_checkpoint
from minigrad.models.gpt import GPT
from minigrad.training.settings import (SAMPLE_RULES, SettingsError, parse_config, resolve_device_dtype,
                                       validate_settings)
from minigrad.training.threads import use_threads


@dataclass
class SampleConfig:
    out_dir: str = "out"                # where train.py wrote its checkpoints
    ckpt: str = ""                      # a checkpoint file (overrides out_dir/which)
    which: str = "best"                 # "best" or "last" checkpoint of out_dir
    hf: str = ""                        # load a Hugging Face GPT-2 export (folder or .safetensors) instead
    gpt2_dir: str = ""                  # GPT-2 vocab.json + merges.txt for an --hf file without a tokenizer
    prompt: str = ""                    # text, or FILE:path to read it from a file; "" = end-of-text
    num_samples: int = 1
    max_new_tokens: int = 500
    temperature: float = 0.8            # 0 = greedy
    top_k: int = 200                    # 0 = off
    top_p: float = 1.0                  # 1.0 = off
    repetition_penalty: float = 1.0     # 1.0 = off
    seed: int = 1337
    stream: bool = True                 # print each token as it is sampled
    use_cache: bool = True              # KV cache
    device: str = "auto"
    threads: str = "auto"               # CPU threads of NumPy's matrix products (as train.py's)
    dtype: str = "auto"
    export_hf: str = ""                 # write the model in the HF GPT-2 layout to this folder and exit


def load_model(cfg: SampleConfig, device: str, dtype: str) -> tuple[GPT, object]:
    """(model in eval mode, tokenizer) from --hf, --ckpt or out_dir/ckpt_<which>.safetensors."""
    if cfg.hf:
        pre = load_pretrained(cfg.hf, gpt2_dir=cfg.gpt2_dir or None, name=f"--hf={cfg.hf}")
    else:
        pre = read_checkpoint(cfg.ckpt) if cfg.ckpt else load_pretrained(cfg.out_dir, which=cfg.which,
                                                                         name=f"--out_dir={cfg.out_dir}")
    model = GPT(pre.config, device=device, dtype=dtype)
    model.load_state_dict(pre.state_dict)
    return model.eval(), pre.tokenizer


def export(model: GPT, tok, folder: str) -> Path:
    """The HF GPT-2 layout in `folder`, plus the tokenizer files (see the module docstring)."""
    return export_pretrained(model, tok, folder)


MAX_PROMPT_BYTES = 16 * 2 ** 20     # a prompt file is text to continue, not a corpus (or /dev/zero)


def read_prompt(cfg: SampleConfig) -> str:
    """--prompt as given, or the text of the file --prompt=FILE:path names (a regular UTF-8 file)."""
    if not cfg.prompt.startswith("FILE:"):
        return cfg.prompt
    path = Path(cfg.prompt[5:])
    if not path.is_file():
        raise ValueError(f"--prompt=FILE:{path}: " + ("not a regular file" if path.exists() else "no such file")
                         + "; expected a text file to continue")
    if path.stat().st_size > MAX_PROMPT_BYTES:
        raise ValueError(f"--prompt=FILE:{path}: {path.stat().st_size:,} bytes, more than a prompt's "
                         f"{MAX_PROMPT_BYTES:,} (the model sees only its last block_size tokens)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--prompt=FILE:{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def main(argv: Optional[list[str]] = None, out=None) -> list[str]:
    """Sample (or export) as the command line says; returns the generated texts (prompt excluded)."""
    cfg, _ = parse_config(SampleConfig, sys.argv[1:] if argv is None else list(argv))
    validate_settings(cfg, SAMPLE_RULES)
    if cfg.hf and cfg.ckpt:
        raise SettingsError("--hf and --ckpt both name the model to sample: give one of them")
    out = out or sys.stdout
    device, dtype = resolve_device_dtype(cfg)
    use_threads(cfg.threads)
    model, tok = load_model(cfg, device, dtype)
    if cfg.export_hf:
        path = export(model, tok, cfg.export_hf)
        print(f"exported to {path} (+ config.json and tokenizer files beside it)", file=out)
        return []

    text = read_prompt(cfg)
    if text:
        ids = tok.encode(text) if isinstance(tok, CharTokenizer) else tok.encode(text, allowed_special="all")
    elif tok.eot_token is not None:
        ids = [tok.eot_token]
    else:
        ids = tok.encode("\n") if "\n" in tok.stoi else [0]
    eos = tok.eot_token
    generator = minigrad.Generator(cfg.seed)
    kwargs = dict(temperature=cfg.temperature, top_k=cfg.top_k or None,
                  top_p=cfg.top_p if cfg.top_p < 1.0 else None, repetition_penalty=cfg.repetition_penalty,
                  eos_token=eos, generator=generator, use_cache=cfg.use_cache)
    samples = []
    for _ in range(cfg.num_samples):
        new: list[int] = []
        printed = ""
        if cfg.stream:
            out.write(text)
        for t in model.generate_stream([ids], cfg.max_new_tokens, **kwargs):
            if t == eos:
                break
            new.append(t)
            if cfg.stream:                          # print the text once its bytes are complete
                so_far = tok.decode(new)
                if not so_far.endswith("\ufffd"):
                    out.write(so_far[len(printed):])
                    out.flush()
                    printed = so_far
        sample = tok.decode(new)
        if cfg.stream:
            out.write(sample[len(printed):] + "\n---------------\n")
        else:
            out.write(text + sample + "\n---------------\n")
        samples.append(sample)
    return samples


if __name__ == "__main__":
    try:
        main()
    except (CheckpointError, DataError, ValueError, OSError) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        sys.exit(130)
