"""Bad input to the library -> a clear error: one table, one row per case (issue 10).

Each row is (case, a zero-argument callable that feeds the bad input, the exception class, a
regex the message must match). The regexes ask for what a user needs to fix the call: what was
expected and what was given. `test_the_table_only_grows` keeps the number of cases from going
down. Command-line cases (train.py, sample.py) live in tests/test_bad_inputs_cli.py.

Add a row for every new bad-input check; prefer a message regex that would fail if the error
were a bare traceback from deep inside (e.g. "list index out of range").
"""
from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn
from minigrad.serialization import SafetensorsError, load_file, save_file
from minigrad.tokenizer import BPETokenizer, ModelFileError, SplitPatternError

_TMP = tempfile.TemporaryDirectory(prefix="bad_inputs_")      # removed when the process ends


def _file(name: str, data: bytes | str) -> Path:
    """A file with exactly `data` in this module's temp folder."""
    path = Path(_TMP.name) / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _st(name: str, header: str | dict, data: bytes = b"", n: int | None = None) -> Path:
    """A safetensors file from a raw header (str) or entries (dict) and data bytes."""
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    return _file(name, struct.pack("<Q", len(raw) if n is None else n) + raw + data)


def _model_file(name: str, edit: Callable[[list[str]], list[str]]) -> Path:
    """A tokenizer model file (256 byte tokens, custom pattern \\w+|\\s+|.) edited line by line."""
    path = Path(_TMP.name) / name
    BPETokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"], r"\w+|\s+|.").save(path)
    path.write_text("\n".join(edit(path.read_text(encoding="utf-8").split("\n"))), encoding="utf-8")
    return path


def _tok() -> BPETokenizer:
    return BPETokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"])


def _x() -> mg.Tensor:
    return mg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))


def _tiny_gpt():
    from minigrad.models import GPT, GPTConfig
    return GPT(GPTConfig(block_size=4, vocab_size=5, n_layer=1, n_head=1, n_embd=4))


def _param_with_grad() -> nn.Parameter:
    p = nn.Parameter(mg.ones(3))
    p.grad = mg.ones(3)
    return p


def _setitem(index):
    x = _x()
    x[index] = 1.0


F32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


class Case(NamedTuple):
    name: str
    call: Callable[[], object]
    exc: type
    match: str


CASES = [
    # ------------------------------------------------------------------ indexing
    Case("index with a float", lambda: _x()[1.9], IndexError, r"only integers.*got float 1\.9"),
    Case("index with a NumPy float", lambda: _x()[np.float64(1)], IndexError, r"got float64"),
    Case("index with a str", lambda: _x()["a"], IndexError, r"got str 'a'"),
    Case("index with a float tensor", lambda: _x()[mg.tensor([0.5])], IndexError, r"must hold integers"),
    Case("index with a float list", lambda: _x()[[0.0, 1.0]], IndexError, r"must hold integers"),
    Case("index out of bounds", lambda: _x()[5], IndexError, r"index 5 is out of bounds for dim 0 with size 2"),
    Case("index array out of range", lambda: _x()[[0, 9]], IndexError, r"values span \[0, 9\] but the size is 2"),
    Case("too many indices", lambda: _x()[0, 0, 0], IndexError, r"too many indices for a tensor of dimension 2"),
    Case("float slice bound", lambda: _x()[1.5:], TypeError, r"slice indices must be integers"),
    Case("bool mask of the wrong shape", lambda: _x()[np.array([True, False, True])], IndexError,
         r"bool mask of shape \(3,\) does not match"),
    Case("setitem with a float index", lambda: _setitem(0.5), IndexError, r"only integers"),
    # ------------------------------------------------------------------ tensors
    Case("add, shapes differ", lambda: _x() + mg.randn(4, 5), ValueError, r"\(2, 3\) and \(4, 5\) cannot be broadcast"),
    Case("matmul, inner dims differ", lambda: _x() @ mg.randn(4, 5), ValueError, r"not aligned \(3 != 4\)"),
    Case("reshape to another size", lambda: _x().reshape(7), ValueError, r"\(2, 3\) \(6 elements\) into \(7,\)"),
    Case("view of a transposed tensor", lambda: _x().T.view(6), RuntimeError,
         r"view size is not compatible .* shape \(3, 2\) with strides \(1, 3\) .*Use \.reshape\(\.\.\.\) instead"),
    Case("view of a column slice", lambda: _x()[:, :2].view(-1), RuntimeError, r"cannot be read as \(4,\) without a copy"),
    Case("cat, shapes differ", lambda: mg.cat([_x(), mg.randn(4, 5)]), ValueError, r"differ outside dim 0"),
    Case("permute, not a permutation", lambda: _x().permute(0, 0), ValueError, r"not a permutation of the 2 dims"),
    Case("transpose a missing dim", lambda: _x().transpose(0, 5), IndexError,
         r"dimension 5 out of range for a tensor with 2 dims \(expected in \[-2, 1\]\)"),
    Case("permute to a missing dim", lambda: _x().permute(0, 5), IndexError,
         r"dimension 5 out of range for a tensor with 2 dims"),
    Case("permute, too few dims", lambda: _x().permute(0), ValueError, r"\(0,\) is not a permutation of the 2 dims"),
    Case("expand to an incompatible shape", lambda: _x().expand(3, 3), ValueError, r"cannot expand shape \(2, 3\) to \(3, 3\)"),
    Case("expand, -1 in a new dim", lambda: _x().expand(-1, 2, 3), ValueError,
         r"-1 is not allowed in a new leading dim: \(-1, 2, 3\) for \(2, 3\)"),
    Case("chunk into 0 pieces", lambda: _x().chunk(0), ValueError, r"chunks must be > 0, got 0"),
    Case("sum over a missing dim", lambda: _x().sum(2), IndexError, r"dimension 2 out of range for a tensor with 2 dims"),
    Case("negative size", lambda: mg.zeros(-1), ValueError, r"negative dimension"),
    Case("randn with a float size", lambda: mg.randn(2.5), TypeError,
         r"randn: sizes must be ints, got float 2\.5 at position 0"),
    Case("zeros with a str size", lambda: mg.zeros(2, "3"), TypeError, r"zeros: sizes must be ints, got str '3' at position 1"),
    Case("full with a bool size", lambda: mg.full((True,), 1.0), TypeError, r"full: sizes must be ints, got bool True"),
    Case("reshape to a float size", lambda: _x().reshape(6.0), TypeError, r"reshape: sizes must be ints, got float 6\.0"),
    Case("reshape to negative sizes", lambda: _x().reshape(-2, -3), ValueError,
         r"negative dimension in shape \(-2, -3\) \(-1 is the only negative size allowed\)"),
    Case("arange to infinity", lambda: mg.arange(float("inf")), ValueError, r"arange: end must be a finite number, got inf"),
    Case("arange against its step", lambda: mg.arange(0, 5, -1), ValueError,
         r"the range 0 -> 5 goes against the sign of step -1"),
    Case("softmax over a missing dim", lambda: F.softmax(_x(), dim=3), IndexError,
         r"dimension 3 out of range for a tensor with 2 dims \(expected in \[-2, 1\]\)"),
    Case("log_softmax over a missing dim", lambda: F.log_softmax(_x(), dim=-3), IndexError,
         r"dimension -3 out of range .* \(expected in \[-2, 1\]\)"),
    Case("cat along a missing dim", lambda: mg.cat([_x(), _x()], dim=2), IndexError,
         r"dimension 2 out of range for a tensor with 2 dims"),
    Case("stack at a missing dim", lambda: mg.stack([_x(), _x()], dim=3), IndexError,
         r"dimension 3 out of range for inserting a dim into a tensor with 2 dims \(expected in \[-3, 2\]\)"),
    Case("cat of 0-d tensors", lambda: mg.cat([mg.tensor(1.0), mg.tensor(2.0)]), RuntimeError,
         r"zero-dimensional tensors cannot be concatenated \(use stack\)"),
    Case("split along a missing dim", lambda: _x().split(1, dim=2), IndexError, r"dimension 2 out of range"),
    Case("size of a missing dim", lambda: _x().size(2), IndexError, r"dimension 2 out of range"),
    Case("mlp with a bias of the wrong size", lambda: F.mlp(mg.zeros(2, 4), mg.zeros(8, 4), mg.zeros(3, 8),
                                                            mg.zeros(7), mg.zeros(3)),
         ValueError, r"fc_bias must have shape \(8,\), got \(7,\)"),
    Case("mlp with weights that do not chain", lambda: F.mlp(mg.zeros(2, 4), mg.zeros(8, 4), mg.zeros(3, 5)),
         ValueError, r"proj_weight \(3, 5\) \(C_out, H\) do not fit"),
    Case("size(0) of a 0-d tensor", lambda: mg.tensor(3.0).size(0), IndexError, r"size: .*0-d \(a scalar"),
    Case("stride(0) of a 0-d tensor", lambda: mg.tensor(3.0).stride(0), IndexError, r"stride: .*0-d"),
    Case("split of a 0-d tensor", lambda: mg.tensor(3.0).split(1), IndexError, r"split: .*0-d"),
    Case("narrow of a 0-d tensor", lambda: mg.tensor(3.0).narrow(0, 0, 1), IndexError, r"narrow: .*0-d"),
    Case("flatten, start after end", lambda: _x().flatten(1, 0), RuntimeError,
         r"start_dim \(1\) cannot come after end_dim \(0\)"),
    Case("dim given as a float", lambda: _x().sum(1.5), TypeError, r"dim must be an int, got float 1\.5"),
    Case("item of many elements", lambda: _x().item(), ValueError, r"one element, got shape \(2, 3\)"),
    Case("truth value of many elements", lambda: bool(_x()), RuntimeError, r"6 elements is ambiguous"),
    Case("unsupported dtype", lambda: mg.tensor([1.0], dtype="complex64"), TypeError,
         r"unsupported dtype 'complex64': expected one of"),
    Case("tensor from a str", lambda: mg.tensor("abc"), TypeError, r"cannot make a tensor from str"),
    Case("unknown device", lambda: mg.tensor([1.0], device="tpu"), ValueError, r"unknown device 'tpu': expected"),
    Case("backward of a non-scalar", lambda: (mg.randn(2, requires_grad=True) * 2).backward(), RuntimeError,
         r"needs a scalar output; got shape \(2,\)"),
    Case("backward without requires_grad", lambda: mg.randn(2).sum().backward(), RuntimeError,
         r"does not require grad"),
    # ------------------------------------------------------------------ nn
    Case("embedding id too large", lambda: F.embedding(mg.tensor([0, 5]), mg.randn(3, 4)), IndexError,
         r"token ids must be in \[0, 2\] \(num_embeddings=3\), got values in \[0, 5\]"),
    Case("embedding id negative", lambda: nn.Embedding(3, 4)(mg.tensor([-1])), IndexError,
         r"must be in \[0, 2\].*\[-1, -1\]"),
    Case("embedding float ids", lambda: F.embedding(mg.tensor([0.0]), mg.randn(3, 4)), TypeError,
         r"embedding ids must be int64, got float32"),
    Case("cross_entropy target too large", lambda: F.cross_entropy(mg.randn(2, 3), mg.tensor([0, 3])),
         IndexError, r"target class ids must be in \[0, 2\].*got values in \[0, 3\]"),
    Case("cross_entropy float targets", lambda: F.cross_entropy(mg.randn(2, 3), mg.tensor([0.0, 1.0])),
         TypeError, r"targets must be int64 class ids, got float32"),
    Case("cross_entropy rows differ", lambda: F.cross_entropy(mg.randn(2, 3), mg.tensor([0, 1, 2])),
         ValueError, r"2 rows of logits but target has shape \(3,\)"),
    Case("linear, wrong in_features", lambda: nn.Linear(3, 4)(mg.randn(2, 5)), ValueError,
         r"input has 5 features but weight is \(4, 3\)"),
    Case("layernorm, wrong last dim", lambda: nn.LayerNorm(4)(_x()), ValueError,
         r"input shape \(2, 3\) does not end with normalized_shape \(4,\)"),
    Case("dropout p > 1", lambda: F.dropout(_x(), p=1.5), ValueError, r"must be in \[0, 1\], got 1\.5"),
    Case("AdamW negative lr", lambda: mg.optim.AdamW([mg.randn(2, requires_grad=True)], lr=-1), ValueError,
         r"invalid lr: -1"),
    Case("clip_grad_norm_ negative max_norm", lambda: nn.utils.clip_grad_norm_(_param_with_grad(), -1.0),
         ValueError, r"max_norm must be >= 0 \(inf: no clipping\), got -1\.0"),
    Case("clip_grad_norm_ NaN max_norm", lambda: nn.utils.clip_grad_norm_(_param_with_grad(), float("nan")),
         ValueError, r"max_norm must be >= 0 .*got nan"),
    Case("clip_grad_norm_ NaN norm_type", lambda: nn.utils.clip_grad_norm_(_param_with_grad(), 1.0, float("nan")),
         ValueError, r"norm_type must be positive \(or inf\), got nan"),
    Case("AdamW no parameters", lambda: mg.optim.AdamW([], lr=1e-3), ValueError, r"empty parameter list"),
    # ------------------------------------------------------------------ values that do not fit (issue 20)
    Case("tensor from an int above int64", lambda: mg.tensor([2 ** 63]), OverflowError,
         r"value 9223372036854775808 does not fit int64"),
    Case("tensor from ints that NumPy makes float", lambda: mg.tensor([2 ** 63, 1]), OverflowError,
         r"value 9223372036854775808 does not fit int64"),
    Case("tensor from an int below int64", lambda: mg.tensor([[1], [-2 ** 63 - 1]]), OverflowError,
         r"value -9223372036854775809 does not fit int64"),
    Case("tensor from a uint64 array above int64", lambda: mg.tensor(np.array([2 ** 64 - 1], dtype=np.uint64)),
         OverflowError, r"does not fit int64"),
    Case("device cuda:1", lambda: mg.zeros(2, device="cuda:1"), ValueError,
         r"one GPU per process.*CUDA_VISIBLE_DEVICES"),
    Case("device gpu", lambda: mg.zeros(2, device="gpu"), ValueError, r"unknown device 'gpu': expected 'cpu' or 'cuda'"),
    Case("generate a negative number of tokens", lambda: _tiny_gpt().generate(np.zeros((1, 2), dtype=np.int64), -1),
         ValueError, r"max_new_tokens must be an integer >= 0, got -1"),
    # ------------------------------------------------------------------ safetensors
    Case("safetensors too short", lambda: load_file(_file("short.st", b"\1\2")), SafetensorsError, r"too short"),
    Case("safetensors header length absurd", lambda: load_file(_st("huge.st", "{}", n=2 ** 63)),
         SafetensorsError, r"larger than the \d+ byte limit"),
    Case("safetensors header not JSON", lambda: load_file(_st("json.st", "{nope")), SafetensorsError,
         r"not valid UTF-8 JSON"),
    Case("safetensors duplicate key", lambda: load_file(_st("dup.st", '{"x": %s, "x": %s}' % (
        json.dumps(F32), json.dumps(F32)), b"\0" * 4)), SafetensorsError, r"duplicate key 'x'"),
    Case("safetensors gap", lambda: load_file(_st("gap.st", {"x": F32, "y": {**F32, "data_offsets": [8, 12]}},
                                                  b"\0" * 12)), SafetensorsError, r"bytes 4\.\.8 belong to no tensor"),
    Case("safetensors trailing bytes", lambda: load_file(_st("trail.st", {"x": F32}, b"\0" * 5)),
         SafetensorsError, r"1 trailing data bytes"),
    Case("safetensors overlap", lambda: load_file(_st("overlap.st", {
        "x": {**F32, "shape": [2], "data_offsets": [0, 8]},
        "y": {**F32, "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)), SafetensorsError, r"overlap"),
    Case("safetensors bool shape", lambda: load_file(_st("bshape.st", {"x": {**F32, "shape": [True]}}, b"\0" * 4)),
         SafetensorsError, r"shape must be a list of non-negative ints, got \[True\]"),
    Case("safetensors unknown dtype", lambda: load_file(_st("dtype.st", {"x": {**F32, "dtype": "F7"}}, b"\0" * 4)),
         SafetensorsError, r"unsupported dtype 'F7'"),
    Case("safetensors deep nesting", lambda: load_file(_st("deep.st", "[" * 100_000)), SafetensorsError,
         r"nested too deeply"),
    Case("safetensors size mismatch", lambda: load_file(_st("size.st", {"x": {**F32, "data_offsets": [0, 3]}},
                                                            b"\0" * 3)), SafetensorsError, r"expected 4"),
    Case("safetensors path is a folder", lambda: load_file(_TMP.name), SafetensorsError,
         r"is a directory, not a regular file"),
    Case("save a non-tensor", lambda: save_file({"a": "text"}, Path(_TMP.name) / "o.st"), SafetensorsError,
         r"cannot save 'a': expected a Tensor or NumPy array, got str"),
    # ------------------------------------------------------------------ tokenizer
    Case("model file, wrong first line", lambda: BPETokenizer.load(_file("magic.model", "hello\n")),
         ModelFileError, r"expected the first line 'minigrad-bpe v1', got 'hello'"),
    Case("model file, truncated", lambda: BPETokenizer.load(_model_file("trunc.model", lambda ls: ls[:3])),
         ModelFileError, r"ends early at line 3"),
    Case("model file, other version", lambda: BPETokenizer.load(_model_file(
        "ver.model", lambda ls: [ls[0].replace("v1", "v9")] + ls[1:])), ModelFileError, r"of version 9"),
    Case("model file, catastrophic pattern", lambda: BPETokenizer.load(_model_file(
        "pat.model", lambda ls: [ls[0], 'pattern "(a|aa)+$"'] + ls[2:])), ModelFileError,
        r"split pattern '\(a\|aa\)\+\$' took longer .* backtracks catastrophically"),
    Case("model file, invalid pattern", lambda: BPETokenizer.load(_model_file(
        "inv.model", lambda ls: [ls[0], 'pattern "(unclosed"'] + ls[2:])), ModelFileError,
        r"not a valid `regex` expression"),
    Case("split pattern too long", lambda: _tok().__class__({i: bytes([i]) for i in range(256)}, [],
                                                           pattern="a" * 5000), SplitPatternError,
         r"longer than 4096 characters"),
    Case("gpt2 vocab.json not JSON", lambda: BPETokenizer.from_gpt2_files(
        _file("vocab.json", "{nope"), _file("merges.txt", "#version: 0.2\n")), ModelFileError,
        r"is not a JSON vocabulary \(expected \{token: id\}\)"),
    Case("gpt2 merges.txt bad line", lambda: BPETokenizer.from_gpt2_files(
        _file("vocab2.json", '{"a": 0}'), _file("merges2.txt", "#version: 0.2\na b c\n")), ModelFileError,
        r"line 2: expected '<left> <right>', got 'a b c'"),
    Case("tiktoken file bad line", lambda: BPETokenizer.from_tiktoken_file(_file("r.tiktoken", "!!! x\n")),
         ModelFileError, r"line 1: expected '<base64 token> <rank>'"),
    Case("decode an unknown id", lambda: _tok().decode([999]), ValueError, r"unknown token id 999"),
    Case("encode a disallowed special", lambda: _tok().encode("x<|endoftext|>"), ValueError,
         r"contains the special token '<\|endoftext\|>', which is disallowed"),
    Case("train, vocab_size too small", lambda: BPETokenizer.train(["abc"], 100, verbose=False), ValueError,
         r"vocab_size must be at least 256 .* got 100"),
    Case("train, input of another type", lambda: BPETokenizer.train([123], 300, verbose=False), TypeError,
         r"must be str \(text\) or pathlib\.Path \(files/folders\), got int"),
    Case("train, missing file", lambda: BPETokenizer.train([Path(_TMP.name) / "nope.txt"], 300, verbose=False),
         FileNotFoundError, r"nope\.txt does not exist"),
    Case("train, str that is a file path", lambda: BPETokenizer.train(str(_file("corpus.txt", "hi")), 300,
                                                                       verbose=False), ValueError,
         r"names an existing file.*pass pathlib\.Path|names an existing file.*Pass pathlib\.Path"),
    Case("vocab with an empty token", lambda: BPETokenizer({0: b""}, []), ValueError,
         r"non-negative int ids to non-empty bytes, got 0: b''"),
]

# The number of rows when this table was written; raise it when you add rows, never lower it.
MIN_CASES = 99


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_a_clear_error(case: Case):
    with pytest.raises(case.exc, match=case.match):
        case.call()


def test_the_table_only_grows():
    assert len(CASES) >= MIN_CASES, f"{len(CASES)} cases, the table had {MIN_CASES}: do not drop rows"
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"


def test_softmax_of_empty_rows_is_empty_as_torch():
    """(2, 0) and (0, 3) inputs give empty results of the same shape (it was a NumPy error)."""
    for shape in ((2, 0), (0, 3)):
        x = mg.zeros(*shape, requires_grad=True)
        for fn in (F.softmax, F.log_softmax):
            y = fn(x, dim=-1)
            assert y.shape == shape
            y.sum().backward()
            assert x.grad.shape == shape


def test_integer_settings_are_parsed_exactly():
    from minigrad.training.settings import SettingsError, _parse_value
    big = "123456789012345678901"                       # beyond float's 2**53: digits would change
    assert _parse_value("seed", big, int) == int(big)
    assert _parse_value("max_iters", "2_000", int) == 2000
    assert _parse_value("max_iters", "1e3", int) == 1000 and _parse_value("max_iters", "2000.0", int) == 2000
    with pytest.raises(SettingsError, match="expected int"):
        _parse_value("seed", "1e30", int)               # a float that large is not an exact integer
