"""Command-line settings shared by train.py and sample.py: parse, explain, check, pick the device.

- `parse_config`: ``--name=value`` over the fields of a config dataclass (after ``--preset``),
  with `--help` from `settings_help` (each field, its default and the comment beside it).
- `validate_settings`: every setting checked against a rule *before any work* (data
  preparation, model building), so a bad value is one line naming the setting, what it must
  be and what was given, never a traceback minutes later. `TRAIN_RULES` / `SAMPLE_RULES` are
  the tables; values loaded from a checkpoint go through the same check, so a hand-edited
  file cannot smuggle in a wrong type either.
- `resolve_device_dtype`: "auto" -> cpu/cuda and the dtype; ``--device=cuda`` on a machine
  where the GPU backend cannot start is a one-line error here, not later.

Every error is a `SettingsError` (a ValueError), which both scripts print as ``error: ...``.
It does not know the scripts' config classes: they are passed in.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, get_type_hints

import minigrad


class SettingsError(ValueError):
    """A setting has a value it cannot have; the message names the setting."""


# ---------------------------------------------------------------------------------------------
# parsing


def _parse_value(name: str, text: str, typ) -> Any:
    if typ is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"--{name}: expected true or false, got {text!r}")
    try:
        if typ is int:
            try:
                return int(text.replace("_", ""), 10)   # exact, however large (a --seed keeps every digit)
            except ValueError:                           # "1e3" and "2000.0" still mean integers
                f = float(text)
                if not f.is_integer() or abs(f) >= 2 ** 53:  # beyond 2**53 a float is not exact
                    raise ValueError from None
                return int(f)
        return typ(text)
    except (ValueError, OverflowError):        # OverflowError: int(float("inf"))
        raise SettingsError(f"--{name}: expected {typ.__name__}, got {text!r}") from None


def settings_help(cls, presets: Optional[dict] = None) -> str:
    """`--help`: every field of the dataclass with its default and the comment beside it."""
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        code, _, comment = line.partition("#")
        name = code.strip().split(":")[0]
        if comment and name.isidentifier():
            comments[name] = comment.strip()
    preset = "[--preset=NAME] " if presets else ""
    lines = [f"usage: python {Path(sys.argv[0]).name} {preset}[--name=value ...]", "",
             "settings (default):"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {'--' + f.name + '=' + str(default):<30} {comments.get(f.name, '')}".rstrip())
    if presets:
        lines += ["", "presets: " + ", ".join(presets)]
    return "\n".join(lines)


def parse_config(cls, argv: list[str], presets: Optional[dict] = None):
    """`--name=value` (or `--name value`, `--flag` for true) over the fields of dataclass `cls`,
    after `--preset=NAME` from `presets` -> (config, names given explicitly). `--help` prints
    the settings and exits."""
    if any(a in ("-h", "--help") for a in argv):
        print(settings_help(cls, presets))
        raise SystemExit(0)
    types = get_type_hints(cls)
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise SettingsError(f"unexpected argument {arg!r}: settings look like --name=value")
        name, eq, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if name not in types:
            close = difflib.get_close_matches(name, types, n=3)
            hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
            raise SettingsError(f"unknown setting --{name}{hint} (the settings are the fields of "
                                f"{cls.__name__})")
        if not eq:
            if types[name] is bool and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
                value = "true"
            elif i + 1 < len(argv):
                i, value = i + 1, argv[i + 1]
            else:
                raise SettingsError(f"--{name} needs a value")
        pairs.append((name, value))
        i += 1
    cfg = cls()
    chosen = [v for k, v in pairs if k == "preset"]
    if chosen and presets is not None:
        if chosen[-1] not in presets:
            raise SettingsError(f"unknown preset {chosen[-1]!r}; presets: {', '.join(presets)}")
        cfg = dataclasses.replace(cfg, preset=chosen[-1], **presets[chosen[-1]])
    given = set()
    for name, value in pairs:
        if name != "preset" or presets is None:
            setattr(cfg, name, _parse_value(name, value, types[name]))
            given.add(name)
    return cfg, given


# ---------------------------------------------------------------------------------------------
# validation: one rule per setting


@dataclass(frozen=True)
class Rule:
    """What a setting's value must be: `ok(value)` is True for the allowed values, `expected`
    says which in words (it completes "--name must be ...")."""
    ok: Callable[[Any], bool]
    expected: str


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def int_at_least(lo: int) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= lo, f"an integer >= {lo}")


def real_in(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = True) -> Rule:
    """A finite number in the interval (open or closed at each end)."""
    def ok(v) -> bool:
        return _is_real(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    if hi == math.inf:
        words = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        words = f"a finite number in {left}{lo:g}, {hi:g}{right}"
    return Rule(ok, words)


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def _exists(path: str) -> bool:
    return Path(path).expanduser().exists()


TEXT = Rule(lambda v: isinstance(v, str), "text")
FLAG = Rule(lambda v: isinstance(v, bool), "true or false")
POSITIVE = int_at_least(1)
COUNT = int_at_least(0)          # where 0 means "off" / "none", as each setting's comment says
BY_TYPE = {bool: FLAG, str: TEXT, int: Rule(_is_int, "an integer"), float: Rule(_is_real, "a finite number")}
THREADS = Rule(lambda v: isinstance(v, str) and (v in ("auto", "all") or (v.isdigit() and int(v) >= 1)),
               "auto, all or a positive integer")
SEED = Rule(lambda v: _is_int(v) and 0 <= v < 2 ** 63, "an integer in [0, 2**63)")

# train.py's TrainConfig, field by field; a field without a rule here gets its type's rule
# (`BY_TYPE`), so a new setting is at least type-checked.
TRAIN_RULES: dict[str, Rule] = {
    "out_dir": TEXT, "data": TEXT, "data_cache": TEXT,
    "tokenizer": Rule(lambda v: isinstance(v, str) and (v in ("char", "bpe", "gpt2") or _exists(v)),
                      "char, bpe, gpt2 or the path of a saved tokenizer"),
    "bpe_pattern": one_of("gpt2", "gpt4"), "init_from": Rule(
        lambda v: isinstance(v, str) and (v in ("scratch", "resume") or _exists(v)),
        "scratch, resume or the path of a Hugging Face GPT-2 folder or a minigrad checkpoint"),
    # BPE: 256 byte tokens + <|endoftext|> at least; token ids are stored as uint16
    "vocab_size": Rule(lambda v: _is_int(v) and 257 <= v <= 65536, "an integer in [257, 65536]"),
    "gpt2_dir": TEXT, "val_fraction": real_in(0, 1, lo_open=True),
    "split": one_of("auto", "document", "tail"),
    "n_layer": POSITIVE, "n_head": POSITIVE, "n_embd": POSITIVE, "block_size": POSITIVE,
    "dropout": real_in(0, 1), "bias": FLAG, "qkv_bias": FLAG,
    "activation": one_of("gelu", "gelu_exact", "silu", "swiglu"),
    "norm": one_of("layernorm", "rmsnorm"), "pos": one_of("learned", "rope"),
    "tie_weights": FLAG, "pad_vocab_multiple": POSITIVE,
    "batch_size": POSITIVE, "grad_accum_steps": POSITIVE, "max_iters": POSITIVE, "epochs": real_in(0),
    "val_data": TEXT, "text_field": TEXT,
    "learning_rate": real_in(0), "min_lr": real_in(0), "warmup_iters": COUNT, "lr_decay_iters": COUNT,
    "weight_decay": real_in(0), "decay_embeddings": FLAG, "beta1": real_in(0, 1), "beta2": real_in(0, 1),
    "grad_clip": real_in(0),
    "eval_interval": POSITIVE, "eval_iters": POSITIVE, "log_interval": POSITIVE, "patience": COUNT,
    "sample_tokens": COUNT, "sample_prompt": TEXT, "progress": FLAG, "plot": FLAG,
    "wandb_log": FLAG, "wandb_project": TEXT,
    "device": one_of("auto", "cpu", "cuda"), "threads": THREADS,
    "dtype": one_of("auto", "float32", "bfloat16", "float64"),
    "seed": SEED, "resume": FLAG, "overwrite": FLAG, "preset": TEXT, "fast": FLAG, "cuda_graph": FLAG,
    "dist_timeout": real_in(0, lo_open=True),
}

# settings a resumed run must share with its checkpoint besides the model's (the data and its split)
DATA_SETTINGS = ("data", "val_data", "text_field", "tokenizer", "bpe_pattern", "vocab_size", "val_fraction",
                 "split", "seed")
# paths a resumed run takes from its own command line (or the defaults), never from the file
PATH_SETTINGS = ("out_dir", "data_cache", "gpt2_dir")

# sample.py's SampleConfig
SAMPLE_RULES: dict[str, Rule] = {
    "out_dir": TEXT, "ckpt": TEXT, "which": one_of("best", "last"), "hf": TEXT, "gpt2_dir": TEXT,
    "prompt": TEXT, "num_samples": POSITIVE, "max_new_tokens": POSITIVE,
    "temperature": real_in(0), "top_k": COUNT, "top_p": real_in(0, 1, lo_open=True, hi_open=False),
    "repetition_penalty": real_in(0, lo_open=True), "seed": SEED, "stream": FLAG, "use_cache": FLAG,
    "device": one_of("auto", "cpu", "cuda"), "threads": THREADS,
    "dtype": one_of("auto", "float32", "bfloat16", "float64"), "export_hf": TEXT,
}


def validate_settings(cfg, rules: dict[str, Rule]) -> None:
    """Raise SettingsError listing every field of `cfg` whose value breaks its rule, plus the
    rules between fields (heads divide the width, a BPE vocabulary fits its tokens)."""
    types = get_type_hints(type(cfg))
    bad = []
    for f in dataclasses.fields(cfg):
        rule = rules.get(f.name) or BY_TYPE.get(types.get(f.name))
        if rule is not None and not rule.ok(getattr(cfg, f.name)):
            bad.append(f"--{f.name} must be {rule.expected}, got {getattr(cfg, f.name)!r}")
    names = {f.name for f in dataclasses.fields(cfg)}

    if not bad and {"n_embd", "n_head"} <= names:
        if cfg.n_embd % cfg.n_head:
            bad.append(f"--n_embd ({cfg.n_embd}) must be a multiple of --n_head ({cfg.n_head})")
        elif getattr(cfg, "pos", "") == "rope" and (cfg.n_embd // cfg.n_head) % 2:
            bad.append(f"--pos=rope needs an even head size, got --n_embd/--n_head = "
                       f"{cfg.n_embd // cfg.n_head}")
    if bad:
        raise SettingsError("invalid setting" + ("s: " if len(bad) > 1 else ": ") + "; ".join(bad))


def command_line_rules(cfg, given: set):
    """The rules about what was typed together, checked before any work (a resumed run's saved
    settings are not held to them: a fine-tuning run keeps its --init_from PATH): --resume with
    --init_from=PATH (a new run from pretrained weights) and --epochs with --max_iters are
    SettingsErrors. Returns `cfg` with resume set for nanoGPT's spelling of it (--init_from=resume)."""
    if cfg.resume and cfg.init_from not in ("scratch", "resume"):
        raise SettingsError(f"--init_from={cfg.init_from} starts a new run from pretrained weights and --resume "
                            "continues one: give one of them")
    if {"epochs", "max_iters"} <= set(given) and cfg.epochs:
        raise SettingsError("--epochs and --max_iters both set the length of the run: give one of them")
    return dataclasses.replace(cfg, resume=cfg.resume or cfg.init_from == "resume")


def run_length(cfg, given: set, train_tokens: int, tokens_per_iter: int):
    """`cfg` with max_iters set from --epochs (passes over the training tokens, rounded up to whole
    iterations) when that is how the run's length was given; --max_iters typed on the command
    line wins over an --epochs that came from a resumed checkpoint (both typed: command_line_rules)."""
    if not cfg.epochs:
        return cfg
    if "max_iters" in given:                    # typed on a resume: it wins over the saved --epochs
        return dataclasses.replace(cfg, epochs=0.0)
    iters = max(1, math.ceil(cfg.epochs * train_tokens / tokens_per_iter))
    print(f"--epochs={cfg.epochs:g}: {cfg.epochs:g} x {train_tokens:,} training tokens at {tokens_per_iter:,} "
          f"per iteration = {iters:,} iterations")
    return dataclasses.replace(cfg, max_iters=iters)


# ---------------------------------------------------------------------------------------------
# device and dtype


def resolve_device_dtype(cfg) -> tuple[str, str]:
    """("cpu" | "cuda", "float32" | "bfloat16" | "float64") from cfg.device and cfg.dtype."""
    device = cfg.device
    if device == "auto":
        device = "cuda" if minigrad.cuda_is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise SettingsError(f"--device must be auto, cpu or cuda, got {cfg.device!r}")
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    if dtype not in ("float32", "bfloat16", "float64"):
        raise SettingsError(f"--dtype must be auto, float32, bfloat16 or float64, got {cfg.dtype!r}")
    if dtype == "bfloat16" and device == "cpu":
        print("note: bfloat16 needs the GPU backend; training in float32 on the CPU instead")
        dtype = "float32"
    if dtype == "float64" and device == "cuda":
        raise SettingsError("--dtype=float64 is for the NumPy backend only (--device=cpu)")
    if device == "cuda":
        # Start the GPU backend now: without a GPU (or torch/triton) this says so in one line
        # before any data is prepared. (Under TRITON_INTERPRET=1 it starts on the CPU: tests.)
        try:
            minigrad.get_backend("cuda")
        except (RuntimeError, ImportError) as err:
            first = str(err).split(". ")[0].rstrip(".")
            raise SettingsError(f"--device=cuda: no usable CUDA GPU here ({first}); "
                                "use --device=cpu or --device=auto") from None
    return device, dtype
