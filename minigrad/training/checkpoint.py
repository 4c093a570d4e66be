"""Training checkpoints: one safetensors file, written atomically, checked when read.

A checkpoint (``ckpt_best.safetensors`` / ``ckpt_last.safetensors`` in ``out_dir``) is a
plain safetensors file, so any safetensors reader can open it:

- tensors: ``model.<parameter name>`` (float32, also when training ran in bfloat16: the
  values are exact; a weight shared by two names stored once, the metadata's ``tied`` naming
  the other) and, in ckpt_last, ``optim.<param index>.<state name>`` (AdamW's ``exp_avg``,
  ``exp_avg_sq`` and, for bfloat16 parameters, the fp32 ``master`` weights);
- ``__metadata__`` (string -> string, as the format requires): ``format`` ("minigrad-checkpoint"),
  ``version``, ``checksum`` (BLAKE2b of the tensor bytes), ``meta_checksum`` (BLAKE2b of every
  other metadata entry, ``checksum`` included, so the metadata is bound to its tensors) and one
  JSON string per entry of the `meta` dict given to `save_checkpoint` (train.py stores its train
  config, the model config, the tokenizer, the optimizer's hyperparameters and step counts, the
  iteration, the best val loss and the RNG states).

Files written before ``meta_checksum`` existed still load: their tensors are verified, and a
warning says their metadata cannot be (resuming from one writes a fully checked file). The
tensor checksum is unchanged, so older readers still read newer files.

Bytes on disk are minigrad/serialization.py's job (its `save_file` writes a temp file in the
same folder, fsyncs it and renames it over the target, so a crash leaves the old checkpoint or
the new one, never half of one). This file adds what makes it a *training* checkpoint: the
format tag and version, the checksum, the required entries and, through `check_shapes`, the
tensor shapes a model expects. Any problem is a `CheckpointError` that starts with the file's
name. Tensors here are NumPy arrays; `optimizer_tensors` / `optimizer_state_dict` convert an
optimizer's state_dict() to and from them. The last section is a training run's state: what
train.py saves (`save_training_state`) and what `--resume` restores (`resume_settings`,
`restore_training_state`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, get_type_hints

import numpy as np

import minigrad
from minigrad.serialization import SafetensorsError, load_numpy_file, read_metadata, save_file

FORMAT = "minigrad-checkpoint"
VERSION = 2          # 2: a tied weight stored once ('tied' metadata); ckpt_best without optimizer state
READABLE_VERSIONS = (1, 2)   # version 1 files (every tensor under each name) still load
REQUIRED_META = ("train_config", "model_config", "tokenizer", "iter_num")
_RESERVED = ("format", "version", "checksum", "meta_checksum")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, of another version, or does not fit the model."""


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def section(self, prefix: str) -> dict[str, np.ndarray]:
        """The tensors whose names start with `prefix` (e.g. "model."), prefix removed."""
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def field(self, name: str, kind: "type | tuple[type, ...]" = object) -> Any:
        """meta[name], which must be a `kind`; else a CheckpointError naming the field."""
        if name not in self.meta:
            raise CheckpointError(f"{self.path.name}: missing metadata field {name!r}; expected a "
                                  "checkpoint written by train.py")
        value = self.meta[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            raise CheckpointError(f"{self.path.name}: metadata field {name!r} should be "
                                  f"{' or '.join(k.__name__ for k in kinds)}, got {repr(value)[:60]}")
        return value

    @contextmanager
    def reading(self, name: str) -> Iterator[None]:
        """Turn a KeyError/TypeError/ValueError raised while using meta[name] (e.g. the RNG state
        missing a stream) into a CheckpointError naming the file and the field."""
        try:
            yield
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise CheckpointError(f"{self.path.name}: metadata field {name!r} is incomplete or "
                                  f"malformed ({type(err).__name__}: {err})") from None


def _checksum(tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _meta_checksum(md: Mapping[str, str]) -> str:
    """BLAKE2b over every metadata entry but itself (lengths included: no two dicts collide)."""
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(md):
        if k != "meta_checksum":
            key, value = k.encode(), md[k].encode()
            h.update(f"{len(key)}:{len(value)};".encode() + key + value)
    return h.hexdigest()


def save_checkpoint(path: "str | os.PathLike[str]", tensors: Mapping[str, np.ndarray],
                    meta: Mapping[str, Any]) -> Path:
    """Write `tensors` (name -> NumPy array) and `meta` (each value JSON-encoded), atomically."""
    path = Path(path)
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    md = {"format": FORMAT, "version": str(VERSION), "checksum": _checksum(tensors)}
    for k, v in meta.items():
        if k in _RESERVED:
            raise ValueError(f"metadata key {k!r} is reserved")
        md[k] = json.dumps(v)
    md["meta_checksum"] = _meta_checksum(md)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path, metadata=md)
    return path


def load_checkpoint(path: "str | os.PathLike[str]", required: tuple = REQUIRED_META) -> Checkpoint:
    """Read and check a checkpoint written by `save_checkpoint`."""
    path = Path(path)

    def fail(msg: str) -> CheckpointError:
        return CheckpointError(f"{path.name}: {msg} (file: {path})")

    if not path.is_file():
        raise fail("no such checkpoint file")
    try:
        md = read_metadata(path)
        if md.get("format") != FORMAT:
            raise fail(f"not a minigrad training checkpoint (metadata format={md.get('format')!r}, "
                       f"expected {FORMAT!r}); a Hugging Face GPT-2 export is read with "
                       "sample.py --hf=FILE instead")
        if md.get("version") not in [str(v) for v in READABLE_VERSIONS]:
            raise fail(f"checkpoint format version {md.get('version')!r}; this code reads versions "
                       f"{', '.join(map(str, READABLE_VERSIONS))} (a newer minigrad wrote it?)")
        tensors = load_numpy_file(path)
    except (SafetensorsError, OSError) as err:
        msg = str(err).replace(f"{path}: ", "")
        raise fail(f"corrupt or truncated: {msg}") from None
    if md.get("checksum") != _checksum(tensors):
        raise fail("corrupt: the tensor data does not match the checksum written with it")
    if "meta_checksum" not in md:
        warnings.warn(f"{path.name}: written before checkpoints checksummed their metadata: the "
                      "tensors are verified, the config/tokenizer/optimizer metadata is not; "
                      "resuming from it writes a fully checked checkpoint", stacklevel=2)
    elif md["meta_checksum"] != _meta_checksum(md):
        raise fail("corrupt: the metadata (config, tokenizer, optimizer settings) does not match "
                   "the checksum written with it")
    meta = {}
    for k, v in md.items():
        if k in _RESERVED:
            continue
        try:
            meta[k] = json.loads(v)
        except (json.JSONDecodeError, RecursionError):
            raise fail(f"corrupt metadata entry {k!r}: not JSON") from None
    missing = [k for k in required if k not in meta]
    if missing:
        raise fail(f"missing metadata {missing}; expected a checkpoint written by train.py")
    return Checkpoint(path, tensors, meta)


def model_state(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    """The model's tensors by state_dict name. A weight shared by two names (GPT's tied wte and
    lm_head) is stored once; the checkpoint's ``tied`` entry (alias -> stored name) brings it
    back under each of its names."""
    state = ckpt.section("model.")
    with ckpt.reading("tied"):
        for alias, stored in dict(ckpt.meta.get("tied", {})).items():
            state[alias] = state[stored]
    return state


def check_shapes(ckpt: Checkpoint, expected: Mapping[str, tuple]) -> None:
    """Raise CheckpointError unless the model's tensors are exactly `expected` (name -> shape)."""
    have = {k: tuple(v.shape) for k, v in model_state(ckpt).items()}
    missing = sorted(set(expected) - set(have))
    extra = sorted(set(have) - set(expected))
    wrong = [f"{k}: checkpoint {have[k]} vs model {tuple(expected[k])}" for k in sorted(expected)
             if k in have and have[k] != tuple(expected[k])]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected tensors {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if wrong:
            parts.append("shape mismatch " + "; ".join(wrong[:5]))
        raise CheckpointError(f"{ckpt.path.name}: does not match the model configuration: " + ", ".join(parts))


def check_model_config(ckpt: Checkpoint, config) -> None:
    """Before any model is built: the checkpoint holds exactly the tensors a GPT of `config` has.
    A file whose config claims a huge model (n_layer 10**6, n_embd 10**6) fails here at once, from
    the stored shapes, instead of after minutes of allocating it. The layer count is compared
    first, so even the list of expected shapes is never built for an absurd one."""
    from minigrad.models.hf_export import state_dict_shapes
    layers = {k.split(".")[3] for k in ckpt.tensors if k.startswith("model.transformer.h.")}
    if len(layers) != config.n_layer:
        raise CheckpointError(f"{ckpt.path.name}: does not match the model configuration: it says "
                              f"n_layer={config.n_layer} but holds the weights of {len(layers)} layers")
    check_shapes(ckpt, state_dict_shapes(config))


def _host(t) -> np.ndarray:
    """A Tensor or array as a NumPy array; bfloat16/float16 widened to float32 (exactly)."""
    a = t.numpy() if hasattr(t, "numpy") and not isinstance(t, np.ndarray) else np.asarray(t)
    return a.astype(np.float32) if a.dtype == np.float16 else a


def model_tensors(state_dict: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A module's state_dict(keep_vars=True) as ``model.<name>`` NumPy arrays (float32 or float64),
    each shared Parameter once: returns (tensors, tied) where tied maps a later name of a shared
    Parameter to the first (GPT's lm_head.weight -> transformer.wte.weight)."""
    tensors, tied, first = {}, {}, {}
    for k, v in state_dict.items():
        if id(v) in first:
            tied[k] = first[id(v)]
        else:
            first[id(v)] = k
            tensors[f"model.{k}"] = _host(v)
    return tensors, tied


def optimizer_tensors(state: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """An optimizer's state_dict() -> (``optim.<i>.<name>`` arrays, the JSON-able rest)."""
    tensors, scalars = {}, {}
    for idx, s in state["state"].items():
        for k, v in s.items():
            if hasattr(v, "numpy") or isinstance(v, np.ndarray):
                tensors[f"optim.{idx}.{k}"] = _host(v)
            else:
                scalars.setdefault(str(idx), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state_dict(ckpt: Checkpoint) -> dict:
    """Inverse of `optimizer_tensors`: the dict an optimizer's load_state_dict() takes."""
    info = ckpt.meta.get("optimizer")
    if not isinstance(info, dict) or "param_groups" not in info:
        raise CheckpointError(f"{ckpt.path.name}: has no optimizer state (metadata 'optimizer')")
    state: dict[int, dict] = {}
    for idx, s in info.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(s)
    for name, arr in ckpt.section("optim.").items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = arr
    return {"state": state, "param_groups": info["param_groups"]}


# ---------------------------------------------------------------------------------------------
# a training run's state: what train.py saves and what --resume restores


def rng_state(data_rng: np.random.Generator) -> dict:
    """Every random stream a run draws from: minigrad's (init, dropout), the batch sampler's and
    Python's, as JSON-able values (so a resumed run draws what the uninterrupted one would)."""
    py = random.getstate()
    return {"minigrad": minigrad.get_rng_state(), "data": data_rng.bit_generator.state,
            "python": [py[0], list(py[1]), py[2]]}


def set_rng_state(state: dict, data_rng: np.random.Generator) -> None:
    minigrad.set_rng_state(state["minigrad"])
    data_rng.bit_generator.state = state["data"]
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_training_state(path: Path, model, optimizer, data_rng: np.random.Generator,
                        with_optimizer: bool = True, **meta) -> None:
    """ckpt_last / ckpt_best: the model's weights (a tied weight once), the RNG states and `meta`
    (train.py's config, the model config, the tokenizer, the iteration, the best val loss, ...),
    and with_optimizer the optimizer's state: AdamW's two moments are twice the model's size, and
    only a resume needs them (train.py keeps them in ckpt_last only)."""
    tensors, tied = model_tensors(model.state_dict(keep_vars=True))    # the Parameters: ties visible
    meta = dict(meta, tied=tied, rng=rng_state(data_rng), minigrad_version=minigrad.__version__)
    if with_optimizer:
        otensors, meta["optimizer"] = optimizer_tensors(optimizer.state_dict())
        tensors.update(otensors)
    save_checkpoint(path, tensors, meta)


def resume_settings(ckpt: Checkpoint, cfg, given: set, fixed: Sequence[str],
                    from_command_line: Sequence[str]):
    """The settings a resumed run continues with: the checkpoint's, except those given on the
    command line (`given`) and the paths (`from_command_line`: a file never chooses where a run
    writes or what it reads). A `fixed` setting (the model, the data) given with another value
    than the checkpoint's is a CheckpointError."""
    cls = type(cfg)
    saved = cls(**{k: v for k, v in ckpt.field("train_config", dict).items() if k in get_type_hints(cls)})
    clash = [f"{k}={getattr(saved, k)!r} in the checkpoint but --{k}={getattr(cfg, k)!r}"
             for k in sorted(given & set(fixed)) if getattr(cfg, k) != getattr(saved, k)]
    if clash:
        raise CheckpointError(f"{ckpt.path.name}: cannot resume with a different model or data: "
                              + "; ".join(clash))
    return dataclasses.replace(saved, **{k: getattr(cfg, k)
                                         for k in given | {"resume"} | set(from_command_line)})


MAX_ITERATION = 10 ** 12          # far beyond any run; a larger iter_num is a damaged file


def run_position(ckpt: Checkpoint) -> tuple[int, float, int]:
    """(iteration, best val loss, evals without improvement) of a training checkpoint, each checked
    for a value a run can have (the checksums prove a file unchanged, not sensible)."""
    it = ckpt.field("iter_num", int)
    best = float(ckpt.field("best_val_loss", (int, float)))
    bad = ckpt.meta.get("bad_evals", 0)
    problems = []
    if not 0 <= it <= MAX_ITERATION:
        problems.append(f"iter_num {it} (expected 0..{MAX_ITERATION})")
    if math.isnan(best) or best < 0:
        problems.append(f"best_val_loss {best} (expected a loss >= 0, or inf before any eval)")
    if isinstance(bad, bool) or not isinstance(bad, int) or not 0 <= bad <= MAX_ITERATION:
        problems.append(f"bad_evals {bad!r} (expected an integer >= 0)")
    if problems:
        raise CheckpointError(f"{ckpt.path.name}: impossible training state: {'; '.join(problems)}")
    return it, best, bad


def finished_run(ckpt: Checkpoint, max_iters: int) -> bool:
    """True (and says so) when the checkpoint already holds max_iters iterations: nothing to do."""
    done = run_position(ckpt)[0]
    if done < max_iters:
        return False
    print(f"{ckpt.path.name} is at iteration {done}, and --max_iters={max_iters}: nothing left to "
          f"train. To continue, resume with a larger --max_iters (e.g. --max_iters={done + max(1, max_iters)})")
    return True


def check_same_tokenizer(ckpt: Checkpoint, tokenizer_json: str, data: str) -> None:
    """A resumed run must rebuild the checkpoint's tokenizer from its data (else ids mean other text)."""
    if tokenizer_json != ckpt.field("tokenizer", str):
        raise CheckpointError(f"{ckpt.path.name}: the tokenizer built from --data={data} differs from "
                              "the checkpoint's; resume needs the same data and tokenizer settings")


def restore_training_state(ckpt: Checkpoint, model, optimizer, data_rng: np.random.Generator
                           ) -> tuple[int, float, int]:
    """Load the weights, optimizer state and RNG states saved by save_training_state; returns
    (iteration, best val loss, evals without improvement)."""
    check_shapes(ckpt, {k: v.shape for k, v in model.state_dict().items()})
    model.load_state_dict(model_state(ckpt))
    with ckpt.reading("optimizer"):
        optimizer.load_state_dict(optimizer_state_dict(ckpt))
    position = run_position(ckpt)
    with ckpt.reading("rng"):
        set_rng_state(ckpt.field("rng", dict), data_rng)
    return position
