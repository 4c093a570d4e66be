"""Bad input to train.py and sample.py: one row per case -> the error class and its message.

Each row is a case a new user (or a hostile file) can produce. The expected message names what
was wrong (the setting, the checkpoint field, the file), so the rows can only be added to. Settings
errors must come before any work: the data cache stays untouched. A few rows run the scripts as
a user does (a subprocess) to check the exit code and that stderr is one line, not a traceback.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import pytest

import sample
import train
from minigrad.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minigrad.training.data import DataError
from minigrad.training.settings import SettingsError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8", "--batch_size=2",
        "--eval_iters=1", "--sample_tokens=0", "--plot=false", "--progress=false", "--max_iters=2",
        "--eval_interval=2", "--bias=true"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A folder with tiny.txt, a finished tiny run in out/ (bias on: exportable), its cache and
    its Hugging Face export in hf/."""
    root = tmp_path_factory.mktemp("cli")
    words = "the king and queen of a small land went to see old friends by the sea".split()
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8)) for i in range(300)]
    (root / "tiny.txt").write_text("\n".join(lines), encoding="utf-8")
    train.main([f"--data={root / 'tiny.txt'}", f"--out_dir={root / 'out'}", f"--data_cache={root / 'cache'}",
                *TINY])
    sample.main([f"--out_dir={root / 'out'}", f"--export_hf={root / 'hf'}", "--device=cpu"])
    return root


@dataclass
class Env:
    run: Path            # the shared finished run (read only)
    tmp: Path            # this case's own folder

    def out_copy(self, **meta_changes) -> Path:
        """A copy of the run's out/ whose ckpt_last has these metadata changes (None: removed)."""
        out = self.tmp / "out"
        shutil.copytree(self.run / "out", out)
        ck = out / "ckpt_last.safetensors"
        c = load_checkpoint(ck)
        meta = {k: v for k, v in {**c.meta, **meta_changes}.items() if v is not None}
        save_checkpoint(ck, c.tensors, meta)
        return out


Argv = Union[list, Callable[[Env], list]]


@dataclass
class Case:
    name: str
    script: str          # "train" or "sample"
    argv: Argv           # settings given, or a function of the Env that prepares files first
    error: type
    match: str           # a regex the message must contain


def _train(*settings: str) -> Callable[[Env], list]:
    """A fresh train.py run on the tiny text with these settings appended (they win)."""
    return lambda e: [f"--data={e.run / 'tiny.txt'}", f"--out_dir={e.tmp / 'o'}",
                      f"--data_cache={e.tmp / 'cache'}", *TINY, *settings]


def _resume(**meta_changes) -> Callable[[Env], list]:
    """Resume a copy of the finished run with its checkpoint's metadata changed; --max_iters=4
    asks for more steps (a finished run with nothing left to train is not read further)."""
    return lambda e: [f"--out_dir={e.out_copy(**meta_changes)}", "--resume", "--max_iters=4",
                      f"--data_cache={e.run / 'cache'}", "--device=cpu"]


def _saved(e: Env, name: str):
    """The finished run's ckpt_last metadata entry `name` (to change one field of it)."""
    return load_checkpoint(e.run / "out" / "ckpt_last.safetensors").meta[name]


def _sample(*settings: str) -> Callable[[Env], list]:
    return lambda e: [f"--out_dir={e.run / 'out'}", "--device=cpu", "--max_new_tokens=2", *settings]


def _file(e: Env, name: str, content: bytes) -> Path:
    p = e.tmp / name
    p.write_bytes(content)
    return p


def _sparse(e: Env, size: int) -> Path:
    p = e.tmp / "big.txt"
    with open(p, "wb") as f:
        f.truncate(size)
    return p


def _hf_with_other_tokenizer(e: Env) -> list:
    hf = e.tmp / "hf"
    shutil.copytree(e.run / "hf", hf)
    (hf / "minigrad_tokenizer.json").write_text(json.dumps({"kind": "char", "chars": "abc"}))
    return [f"--hf={hf}", "--device=cpu", "--max_new_tokens=2"]


S = SettingsError
CASES = [
    # ---- train.py settings: each named, before any data preparation
    Case("batch_size 0", "train", _train("--batch_size=0"), S, r"--batch_size must be an integer >= 1, got 0"),
    Case("grad_accum_steps 0", "train", _train("--grad_accum_steps=0"), S, r"--grad_accum_steps must be"),
    Case("eval_interval 0", "train", _train("--eval_interval=0"), S, r"--eval_interval must be an integer >= 1"),
    Case("eval_iters -1", "train", _train("--eval_iters=-1"), S, r"--eval_iters must be an integer >= 1"),
    Case("max_iters 0", "train", _train("--max_iters=0"), S, r"--max_iters must be an integer >= 1"),
    Case("log_interval 0", "train", _train("--log_interval=0"), S, r"--log_interval must be"),
    Case("patience -1", "train", _train("--patience=-1"), S, r"--patience must be an integer >= 0"),
    Case("learning_rate nan", "train", _train("--learning_rate=nan"), S, r"--learning_rate must be a finite"),
    Case("learning_rate inf", "train", _train("--learning_rate=inf"), S, r"--learning_rate must be a finite"),
    Case("learning_rate < 0", "train", _train("--learning_rate=-1e-3"), S, r"--learning_rate must be .* >= 0"),
    Case("min_lr nan", "train", _train("--min_lr=nan"), S, r"--min_lr must be a finite number"),
    Case("grad_clip < 0", "train", _train("--grad_clip=-1"), S, r"--grad_clip must be a finite number >= 0"),
    Case("dist_timeout = 0", "train", _train("--dist_timeout=0"), S, r"--dist_timeout must be a finite number > 0"),
    Case("cuda_graph not a flag", "train", _train("--cuda_graph=maybe"), S, r"--cuda_graph: expected true or false"),
    Case("warmup_iters < 0", "train", _train("--warmup_iters=-5"), S, r"--warmup_iters must be an integer >= 0"),
    Case("lr_decay_iters < 0", "train", _train("--lr_decay_iters=-1"), S, r"--lr_decay_iters must be"),
    Case("weight_decay inf", "train", _train("--weight_decay=inf"), S, r"--weight_decay must be a finite"),
    Case("beta2 = 1", "train", _train("--beta2=1"), S, r"--beta2 must be a finite number in \[0, 1\)"),
    Case("seed < 0", "train", _train("--seed=-1"), S, r"--seed must be an integer in \[0, 2\*\*63\)"),
    Case("dropout 1", "train", _train("--dropout=1"), S, r"--dropout must be a finite number in \[0, 1\)"),
    Case("dropout < 0", "train", _train("--dropout=-0.1"), S, r"--dropout must be"),
    Case("val_fraction 0", "train", _train("--val_fraction=0"), S, r"--val_fraction must be .* \(0, 1\)"),
    Case("val_fraction 1", "train", _train("--val_fraction=1"), S, r"--val_fraction must be .* \(0, 1\)"),
    Case("block_size 0", "train", _train("--block_size=0"), S, r"--block_size must be an integer >= 1"),
    Case("n_layer 0", "train", _train("--n_layer=0"), S, r"--n_layer must be an integer >= 1"),
    Case("n_head 0", "train", _train("--n_head=0"), S, r"--n_head must be an integer >= 1"),
    Case("n_embd 0", "train", _train("--n_embd=0"), S, r"--n_embd must be an integer >= 1"),
    Case("n_embd % n_head", "train", _train("--n_embd=30", "--n_head=4"), S,
         r"--n_embd \(30\) must be a multiple of --n_head \(4\)"),
    Case("rope odd head", "train", _train("--pos=rope", "--n_embd=12", "--n_head=4"), S, r"even head size"),
    Case("bpe vocab too small", "train", _train("--tokenizer=bpe", "--vocab_size=100"), S,
         r"--vocab_size must be an integer in \[257, 65536\], got 100"),
    Case("bpe vocab too large", "train", _train("--tokenizer=bpe", "--vocab_size=70000"), S, r"--vocab_size"),
    Case("two bad settings", "train", _train("--batch_size=0", "--seed=-2"), S,
         r"invalid settings: --batch_size .*; --seed"),
    Case("unknown tokenizer", "train", _train("--tokenizer=word"), S,
         r"--tokenizer must be char, bpe, gpt2 or the path of a saved tokenizer, got 'word'"),
    Case("tokenizer file that is none", "train", lambda e: _train(f"--tokenizer={_file(e, 'tok.model', b'junk')}")(e),
         DataError, r"--tokenizer=.*tok.model: .*; expected char, bpe, gpt2 or the path of a saved tokenizer"),
    Case("threads 0", "train", _train("--threads=0"), S, r"--threads must be auto, all or a positive integer, got '0'"),
    Case("epochs negative", "train", _train("--epochs=-1"), S, r"--epochs must be a finite number >= 0, got -1.0"),
    Case("epochs and max_iters", "train", _train("--epochs=1", "--max_iters=5"), S,
         r"--epochs and --max_iters both set the length of the run: give one of them"),
    Case("val_data missing", "train", _train("--val_data=/nonexistent/val.txt"), DataError,
         r"--val_data=/nonexistent/val.txt: no such file or folder; expected a .txt or .jsonl file"),
    Case("jsonl without the text field", "train",
         lambda e: _train("--data=" + str(_file(e, "d.jsonl", b'{"body": "x"}')))(e), DataError,
         r"d.jsonl:1: expected a JSON object with a text field 'text', got keys \['body'\]; name the field "
         r"with --text_field=NAME"),
    Case("sample threads", "sample", _sample("--threads=many"), S, r"--threads must be auto, all or a positive"),
    Case("bpe_pattern unknown", "train", _train("--bpe_pattern=gpt3"), S, r"--bpe_pattern must be one of 'gpt2', 'gpt4'"),
    Case("init_from missing path", "train", _train("--init_from=/nonexistent/gpt2"), S,
         r"--init_from must be scratch, resume or the path of a Hugging Face GPT-2 folder or a minigrad checkpoint"),
    Case("init_from a folder of neither", "train", lambda e: _train(f"--init_from={e.tmp}")(e), FileNotFoundError,
         r"neither a Hugging Face GPT-2 folder .* nor a train.py out_dir"),
    Case("init_from with resume", "train", lambda e: _train(f"--init_from={e.run / 'out'}", "--resume")(e), S,
         r"--init_from=.* starts a new run from pretrained weights and --resume continues one: give one of them"),
    Case("init_from conflicting shape", "train", lambda e: _train(f"--init_from={e.run / 'out'}", "--n_layer=2")(e),
         ValueError, r"--n_layer=2 conflicts with the pretrained model .* \(n_layer=1\); leave --n_layer out"),
    Case("unknown device", "train", _train("--device=tpu"), S, r"--device must be one of 'auto', 'cpu'"),
    Case("not a number", "train", _train("--max_iters=lots"), S, r"--max_iters: expected int, got 'lots'"),
    Case("infinite int", "train", _train("--max_iters=inf"), S, r"--max_iters: expected int, got 'inf'"),
    Case("unknown setting", "train", _train("--lr=1"), S, r"unknown setting --lr"),
    # ---- train.py files
    Case("out_dir is a file", "train", lambda e: _train(f"--out_dir={_file(e, 'f', b'x')}")(e), S,
         r"--out_dir=.* is a file, expected a folder"),
    Case("out_dir below a file", "train", lambda e: _train(f"--out_dir={_file(e, 'f', b'x') / 'sub'}")(e), S,
         r"--out_dir=.* is not a writable folder"),
    Case("binary training data", "train",
         lambda e: _train(f"--data={_file(e, 'blob.txt', bytes(range(256)) * 64)}")(e), DataError,
         r"blob.txt: this looks like a binary file"),
    Case("data missing", "train", _train("--data=/nonexistent/text.txt"), DataError, r"no such file or folder"),
    # ---- train.py --resume with a damaged or incomplete checkpoint: CheckpointError naming the field
    Case("no checkpoint", "train", lambda e: [f"--out_dir={e.tmp}", "--resume"], CheckpointError,
         r"no such checkpoint file"),
    Case("ckpt without rng", "train", _resume(rng=None), CheckpointError, r"missing metadata field 'rng'"),
    Case("ckpt without best_val_loss", "train", _resume(best_val_loss=None), CheckpointError,
         r"missing metadata field 'best_val_loss'"),
    Case("ckpt without iter_num", "train", _resume(iter_num=None), CheckpointError,
         r"missing metadata \['iter_num'\]"),
    Case("ckpt without train_config", "train", _resume(train_config=None), CheckpointError,
         r"missing metadata \['train_config'\]"),
    Case("ckpt without optimizer", "train", _resume(optimizer=None), CheckpointError,
         r"no optimizer state \(metadata 'optimizer'\)"),
    Case("ckpt iter_num a string", "train", _resume(iter_num="7"), CheckpointError,
         r"metadata field 'iter_num' should be int, got '7'"),
    Case("ckpt rng incomplete", "train", _resume(rng={"minigrad": None}), CheckpointError,
         r"metadata field 'rng' is incomplete or malformed"),
    Case("ckpt iter_num negative", "train", _resume(iter_num=-5), CheckpointError,
         r"impossible training state: iter_num -5"),
    Case("ckpt iter_num absurd", "train", _resume(iter_num=10 ** 30), CheckpointError,
         r"impossible training state: iter_num 1000000000000000000000000000000"),
    Case("ckpt best_val_loss NaN", "train", _resume(best_val_loss=float("nan")), CheckpointError,
         r"impossible training state: best_val_loss nan"),
    Case("ckpt bad_evals negative", "train", _resume(bad_evals=-1), CheckpointError,
         r"impossible training state: bad_evals -1"),
    Case("ckpt train_config wrong type", "train",
         lambda e: _resume(train_config={**load_checkpoint(e.run / "out" / "ckpt_last.safetensors")
                                         .meta["train_config"], "batch_size": "many"})(e),
         SettingsError, r"--batch_size must be an integer >= 1, got 'many'"),
    Case("ckpt claims a million layers", "train",
         lambda e: _resume(train_config={**_saved(e, "train_config"), "n_layer": 10 ** 6})(e),
         CheckpointError, r"says n_layer=1000000 but holds the weights of 1 layers"),
    Case("ckpt claims n_embd 10**6", "train",
         lambda e: _resume(train_config={**_saved(e, "train_config"), "n_embd": 10 ** 6})(e),
         CheckpointError, r"shape mismatch .*transformer.h.0.attn.c_attn.bias: checkpoint \(48,\) vs model "
                          r"\(3000000,\)"),
    # ---- sample.py settings
    Case("top_p 0", "sample", _sample("--top_p=0"), S, r"--top_p must be a finite number in \(0, 1\], got 0.0"),
    Case("top_p > 1", "sample", _sample("--top_p=1.5"), S, r"--top_p must be"),
    Case("temperature < 0", "sample", _sample("--temperature=-1"), S, r"--temperature must be a finite number >= 0"),
    Case("temperature nan", "sample", _sample("--temperature=nan"), S, r"--temperature must be a finite"),
    Case("top_k < 0", "sample", _sample("--top_k=-1"), S, r"--top_k must be an integer >= 0"),
    Case("num_samples 0", "sample", _sample("--num_samples=0"), S, r"--num_samples must be an integer >= 1"),
    Case("max_new_tokens 0", "sample", _sample("--max_new_tokens=0"), S, r"--max_new_tokens must be"),
    Case("repetition_penalty 0", "sample", _sample("--repetition_penalty=0"), S,
         r"--repetition_penalty must be a finite number > 0"),
    Case("which", "sample", _sample("--which=middle"), S, r"--which must be one of 'best', 'last'"),
    Case("sample seed < 0", "sample", _sample("--seed=-3"), S, r"--seed must be"),
    # ---- sample.py files
    Case("hf tokenizer of another model", "sample", _hf_with_other_tokenizer, ValueError,
         r"--hf=.*minigrad_tokenizer.json has 3 tokens but the model's vocabulary has \d+"),
    Case("ckpt without model_config", "sample",
         lambda e: [f"--ckpt={e.out_copy(model_config=None) / 'ckpt_last.safetensors'}", "--device=cpu"],
         CheckpointError, r"missing metadata \['model_config'\]"),
    Case("ckpt tokenizer not a string", "sample",
         lambda e: [f"--ckpt={e.out_copy(tokenizer={'kind': 'char'}) / 'ckpt_last.safetensors'}",
                    "--device=cpu"], CheckpointError, r"metadata field 'tokenizer' should be str"),
    Case("ckpt claims a 10**9 vocabulary", "sample",
         lambda e: [f"--ckpt={e.out_copy(model_config={**_saved(e, 'model_config'), 'vocab_size': 10 ** 9}) / 'ckpt_last.safetensors'}",
                    "--device=cpu"],
         CheckpointError, r"shape mismatch .*transformer.wte.weight: checkpoint \(\d+, 16\) vs model \(1000000000, 16\)"),
    Case("ckpt tokenizer smaller than the model", "sample",
         lambda e: [f"--ckpt={e.out_copy(tokenizer=json.dumps({'kind': 'char', 'chars': 'abc'})) / 'ckpt_last.safetensors'}",
                    "--device=cpu"],
         CheckpointError, r"its tokenizer has 3 tokens but the model's vocabulary has \d+: they do not belong together"),
    Case("prompt file missing", "sample", _sample("--prompt=FILE:/nonexistent/prompt.txt"), ValueError,
         r"--prompt=FILE:/nonexistent/prompt.txt: no such file; expected a text file to continue"),
    Case("prompt file is a device", "sample", _sample("--prompt=FILE:/dev/zero"), ValueError,
         r"--prompt=FILE:/dev/zero: not a regular file"),
    Case("prompt file too large", "sample", lambda e: _sample(f"--prompt=FILE:{_sparse(e, 17 * 2 ** 20)}")(e),
         ValueError, r"17,825,792 bytes, more than a prompt's 16,777,216"),
    Case("prompt file not UTF-8", "sample", lambda e: _sample("--prompt=FILE:" + str(_file(e, "p.txt", b"ab\xff")))(e),
         ValueError, r"not UTF-8 text \(invalid start byte at byte 2\)"),
    Case("hf and ckpt both", "sample",
         lambda e: _sample(f"--hf={e.run / 'hf'}", f"--ckpt={e.run / 'out' / 'ckpt_last.safetensors'}")(e),
         S, r"--hf and --ckpt both name the model to sample: give one of them"),
    Case("resume into a missing out_dir", "train",
         lambda e: [f"--out_dir={e.tmp / 'missing'}", "--resume", f"--data_cache={e.tmp / 'cache'}"],
         S, r"--resume: --out_dir=.*missing does not exist, so there is no run to continue"),
    Case("val split shorter than a block", "train", _train("--val_fraction=0.0001", "--block_size=64"),
         DataError, r"the val split has \d+ tokens, fewer than block_size \+ 1 = 65; use more text, a smaller "
                    r"--block_size or a larger --val_fraction"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_a_clear_error(case: Case, run: Path, tmp_path: Path):
    env = Env(run, tmp_path)
    argv = case.argv(env) if callable(case.argv) else list(case.argv)
    main = train.main if case.script == "train" else (lambda a: sample.main(a, out=open(os.devnull, "w")))
    with pytest.raises(case.error, match=case.match):
        main(argv)
    if case.error is SettingsError and case.script == "train":
        assert not (tmp_path / "cache").exists()            # refused before any data preparation


@pytest.mark.parametrize("script", ["train", "sample"])
def test_cuda_without_a_gpu_is_one_clear_error(script, run, tmp_path):
    """--device=cuda where the GPU backend cannot start: the real backend constructor without the
    Triton interpreter (what a machine without a GPU sees), run as a user does. In a process of its
    own: kernels first imported without TRITON_INTERPRET are compiled for a GPU, and in this test
    process every later test on the Triton backend would find no GPU driver (issue 21)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    env = Env(run, tmp_path)
    argv = _train("--device=cuda")(env) if script == "train" else _sample("--device=cuda")(env)
    environ = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, f"{script}.py", *argv], cwd=REPO, env=environ, capture_output=True,
                       text=True, timeout=120)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert re.match(r"^error: --device=cuda: no usable CUDA GPU here \(TritonBackend needs a CUDA GPU.*\); "
                    r"use --device=cpu or --device=auto$", lines[0]), lines[0]
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("script, argv, match", [
    ("train.py", ["--batch_size=0"], r"^error: invalid setting: --batch_size must be an integer >= 1, got 0$"),
    ("sample.py", ["--top_p=0"], r"^error: invalid setting: --top_p must be a finite number in \(0, 1\]"),
])
def test_scripts_exit_1_with_one_line(script, argv, match, run, tmp_path):
    """As a user runs them: exit code 1 and a single `error:` line on stderr (no traceback)."""
    base = [f"--data={run / 'tiny.txt'}", f"--out_dir={tmp_path / 'o'}", f"--data_cache={tmp_path / 'c'}"] \
        if script == "train.py" else [f"--out_dir={run / 'out'}"]
    r = subprocess.run([sys.executable, script, *base, *argv], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1, r.stderr
    assert len(lines) == 1 and re.search(match, lines[0]), r.stderr
    assert not (tmp_path / "c").exists()


def test_a_subnormal_temperature_samples_like_greedy(run):
    """Temperature 1e-310 divides the logits into overflow; shifted by their max first, every
    token but the best goes to -inf: the greedy sample, not an error about the logits."""
    def sample_with(t):
        return sample.main([f"--out_dir={run / 'out'}", "--device=cpu", "--max_new_tokens=12", "--stream=false",
                            f"--temperature={t}"], out=open(os.devnull, "w"))
    assert sample_with("1e-310") == sample_with("0")


def test_a_failed_resume_creates_no_folder(run, tmp_path):
    with pytest.raises(SettingsError):
        train.main([f"--out_dir={tmp_path / 'missing'}", "--resume"])
    assert not (tmp_path / "missing").exists()
