"""Hugging Face's tokenizer files: ``tokenizer.json`` + ``tokenizer_config.json``, written and read.

GPT-2's ``vocab.json`` + ``merges.txt`` hold a byte-level BPE's tokens and merges but not its
split rule: a reader of those files (HF's GPT2Tokenizer) splits text with GPT-2's regex, so a
tokenizer trained with the "gpt4" (or a custom) pattern gets other ids there. ``tokenizer.json``,
the format of the `tokenizers` library that ``transformers.AutoTokenizer`` reads, holds all of it:

- ``model``: BPE, the vocabulary in GPT-2's printable byte alphabet (`io.bytes_to_unicode`, as
  in vocab.json, special tokens included) and the merges in order as ``"left right"`` strings
  (the form every `tokenizers` version reads);
- ``pre_tokenizer``: a Sequence of Split(our regex, "Isolated": every match is a chunk, as in
  our encoder) and ByteLevel(add_prefix_space=false, use_regex=false: bytes to the alphabet,
  no second split);
- ``added_tokens``: the special tokens (special, not normalized), matched before the split,
  as ``encode(text, allowed_special="all")`` does;
- ``decoder``: ByteLevel; no normalizer, no post-processor (nothing is added to the ids).

The `tokenizers` library runs the Split regex in its own engine, Oniguruma with Ruby's syntax,
which reads our patterns' ``\\p{L}``, ``(?i:...)``, look-ahead and ``?+ *+ ++`` possessive
quantifiers as `regex` does, but not ``X{n,m}+``: Ruby takes that as a repeat of ``X{n,m}``, so
GPT-4's ``\\p{N}{1,3}+`` would match a number of any length there ("1918" one chunk instead of
"191" + "8"). `onig_pattern` writes each such quantifier as the atomic group ``(?>X{n,m})``,
which means the same in both engines; reading maps the built-in patterns back to their names'
strings. tests/test_hf_tokenizer_json.py compares ids on real text and on custom patterns.

A character-level tokenizer (one id per character) is a WordLevel model over single
characters: the pre-tokenizer splits every character off (``[\\s\\S]``), the Fuse decoder joins
them. A character outside the vocabulary is an error in `tokenizers` (its ``<unk>`` token does
not exist), as in ours.

``tokenizer_config.json`` names the class that loads ``tokenizer.json`` as it is
(PreTrainedTokenizerFast: no GPT-2-specific re-splitting), the context length, the end-of-text
token as bos/eos, and turns off the clean-up of spaces that would change decoded text.

Reading (`read_tokenizer_json`) takes the files written here and HF's own byte-level BPE files,
such as GPT-2's (a ByteLevel pre-tokenizer with use_regex=true, which is GPT-2's split: read as
the "gpt2" pattern). Anything else (a normalizer, WordPiece or Unigram, byte fallback, a prefix
space) is a ModelFileError naming the file and the field. Standard library + regex only.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import regex

from .bpe import ENDOFTEXT, BPETokenizer
from .io import ModelFileError, _gpt2_decode, _gpt2_encode
from .patterns import BUILTIN_PATTERNS, GPT2_SPLIT_PATTERN

CHAR_SPLIT = r"[\s\S]"                   # every character alone: the char tokenizer's pre-tokenizer
CHAR_UNK = "<unk>"                      # WordLevel needs an unk name; it is not in the vocabulary


_POSSESSIVE_INTERVAL = regex.compile(r"\{\d+(?:,\d*)?\}\+")
_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}              # \xHH, \uHHHH, \UHHHHHHHH


def _atom_end(p: str, i: int) -> int:
    """End of the regex atom that starts at p[i]: an escape, a [...] set, a (...) group or one
    character. (Quantifiers and other syntax count as one-character atoms: only the atom in
    front of a ``{n,m}+`` matters here.)"""
    n = len(p)
    if p[i] == "\\":
        if i + 2 < n and p[i + 1] in "pPN" and p[i + 2] == "{":
            close = p.find("}", i + 2)
            return n if close < 0 else close + 1
        return min(n, i + _ESCAPE_LENGTH.get(p[i + 1] if i + 1 < n else "", 2))
    if p[i] == "[":
        j = i + 1
        j += j < n and p[j] == "^"
        j += j < n and p[j] == "]"                              # a leading ] is a literal
        while j < n and p[j] != "]":
            if p[j] == "[" and p.startswith("[:", j):           # a POSIX class [:alpha:]
                close = p.find(":]", j + 2)
                j = n if close < 0 else close + 2
            else:
                j += 2 if p[j] == "\\" else 1
        return min(n, j + 1)
    if p[i] == "(":
        j = i + 1
        while j < n and p[j] != ")":
            j = _atom_end(p, j)
        return min(n, j + 1)
    return i + 1


def onig_pattern(pattern: str) -> str:
    """`pattern` with every possessive interval ``X{n,m}+`` written as ``(?>X{n,m})``, the form
    with the same meaning in `regex` and in the `tokenizers` library's Oniguruma (see the module
    docstring); anything else is left as it is."""
    out, i = [], 0
    while i < len(pattern):
        j = _atom_end(pattern, i)
        atom = pattern[i:j]
        if atom.startswith("(") and atom.endswith(")") and len(atom) > 1:
            atom = "(" + onig_pattern(atom[1:-1]) + ")"
        m = _POSSESSIVE_INTERVAL.match(pattern, j)
        if m:
            out.append(f"(?>{atom}{m.group()[:-1]})")
            i = m.end()
        else:
            out.append(atom)
            i = j
    return "".join(out)


def _added_token(token_id: int, content: str) -> dict:
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True}


def bpe_tokenizer_json(tok: BPETokenizer) -> dict:
    """The ``tokenizer.json`` contents for a byte-level BPE (see the module docstring)."""
    vocab = {_gpt2_encode(token): i for i, token in sorted(tok.vocab.items())}   # bytes are distinct
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token(i, s) for s, i in sorted(tok.special_tokens.items(),
                                                                key=lambda kv: kv[1])],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": onig_pattern(tok.pattern)}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": False,
                  "byte_fallback": False, "vocab": vocab,
                  "merges": [f"{_gpt2_encode(a)} {_gpt2_encode(b)}" for a, b in tok.merges]},
    }


def char_tokenizer_json(chars: Sequence[str]) -> dict:
    """The ``tokenizer.json`` contents for a character tokenizer: id i is ``chars[i]``."""
    if any(not isinstance(c, str) or len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
        raise ValueError("a character tokenizer needs distinct single characters")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": CHAR_SPLIT}, "behavior": "Isolated",
                          "invert": False},
        "post_processor": None,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": {c: i for i, c in enumerate(chars)},
                  "unk_token": CHAR_UNK},
    }


def tokenizer_config_json(special_tokens: Mapping[str, int], model_max_length: Optional[int] = None) -> dict:
    """The ``tokenizer_config.json`` contents that make ``AutoTokenizer`` load tokenizer.json as
    it is; ``<|endoftext|>`` (when a special token) is the bos and eos token, as in GPT-2."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {str(i): {k: v for k, v in _added_token(i, s).items() if k != "id"}
                                 for s, i in sorted(special_tokens.items(), key=lambda kv: kv[1])},
    }
    if model_max_length is not None:
        config["model_max_length"] = int(model_max_length)
    if ENDOFTEXT in special_tokens:
        config["bos_token"] = config["eos_token"] = ENDOFTEXT
    return config


def write_tokenizer_files(folder: "str | os.PathLike[str]", tokenizer_json: dict,
                          special_tokens: Mapping[str, int],
                          model_max_length: Optional[int] = None) -> list[Path]:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` into `folder`; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "tokenizer.json", folder / "tokenizer_config.json"]
    paths[0].write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    paths[1].write_text(json.dumps(tokenizer_config_json(special_tokens, model_max_length), indent=2)
                        + "\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------
# reading


def _fail(path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}")


def _get(d: Any, key: str, path, where: str, kind: "type | tuple[type, ...]"):
    """d[key], which must be of `kind`; a ModelFileError naming the file and the field otherwise."""
    if not isinstance(d, dict) or key not in d:
        raise _fail(path, f"missing field {where}{key!r}")
    value = d[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int,))):
        raise _fail(path, f"field {where}{key!r} has the wrong type ({type(value).__name__})")
    return value


def _split_pattern(pre: Any, path) -> str:
    """Our split pattern from a pre_tokenizer: Split + ByteLevel(no regex), or ByteLevel(regex)."""
    if not isinstance(pre, dict):
        raise _fail(path, "field 'pre_tokenizer' must be an object (a byte-level pre-tokenizer)")
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise _fail(path, "field 'pre_tokenizer.pretokenizers' must be a list of objects")
    types = [s.get("type") for s in steps]
    byte_level = [s for s in steps if s.get("type") == "ByteLevel"]
    if len(byte_level) != 1 or types[-1] != "ByteLevel":
        raise _fail(path, f"pre_tokenizer {types} is not byte-level (expected Split then ByteLevel, "
                          "or ByteLevel alone, as GPT-2's)")
    if byte_level[0].get("add_prefix_space"):
        raise _fail(path, "pre_tokenizer ByteLevel has add_prefix_space=true, which this tokenizer "
                          "does not do")
    if types == ["ByteLevel"]:
        if byte_level[0].get("use_regex", True) is False:
            raise _fail(path, "pre_tokenizer ByteLevel has use_regex=false and no Split: no split rule")
        return GPT2_SPLIT_PATTERN                                   # HF's ByteLevel regex is GPT-2's
    if types != ["Split", "ByteLevel"] or byte_level[0].get("use_regex", True) is not False:
        raise _fail(path, f"pre_tokenizer {types} is not one this tokenizer can follow (expected "
                          "Split then ByteLevel with use_regex=false)")
    split = steps[0]
    pattern = split.get("pattern")
    if not (isinstance(pattern, dict) and isinstance(pattern.get("Regex"), str)):
        raise _fail(path, "pre_tokenizer Split must have a {'Regex': ...} pattern")
    if split.get("behavior") != "Isolated" or split.get("invert"):
        raise _fail(path, f"pre_tokenizer Split has behavior={split.get('behavior')!r}, "
                          f"invert={split.get('invert')!r}; expected 'Isolated' and false")
    builtin = {onig_pattern(p): p for p in BUILTIN_PATTERNS.values()}
    return builtin.get(pattern["Regex"], pattern["Regex"])     # the built-in strings: unguarded


def read_tokenizer_json(path: "str | os.PathLike[str]") -> Union[BPETokenizer, list]:
    """A byte-level BPE ``tokenizer.json`` as a BPETokenizer (special tokens from added_tokens), or,
    for the character form that `char_tokenizer_json` writes, the list of characters in id order.

    Raises ModelFileError naming the file and the field for bad JSON and for anything this
    tokenizer cannot reproduce exactly (see the module docstring)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(path, f"not valid JSON ({err})") from None
    if not isinstance(d, dict):
        raise _fail(path, f"expected a JSON object (a tokenizers file), got a {type(d).__name__}")
    model = _get(d, "model", path, "", dict)
    kind = model.get("type")
    if d.get("normalizer") is not None:
        raise _fail(path, "has a normalizer, which this tokenizer does not apply")
    if kind == "WordLevel":
        return _read_char_form(d, model, path)
    if kind != "BPE":
        raise _fail(path, f"model type {kind!r} is not supported (expected 'BPE', or the "
                          "WordLevel character form)")
    for flag in ("byte_fallback", "continuing_subword_prefix", "end_of_word_suffix", "dropout"):
        if model.get(flag):
            raise _fail(path, f"model.{flag}={model[flag]!r} is not supported by this tokenizer")
    pattern = _split_pattern(d.get("pre_tokenizer"), path)
    vocab_json = _get(model, "vocab", path, "model.", dict)
    vocab: dict[int, bytes] = {}
    for text, i in vocab_json.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise _fail(path, f"model.vocab[{text!r}] is {i!r}; expected a non-negative integer id")
        if i in vocab:
            raise _fail(path, f"model.vocab uses id {i} twice")
        vocab[i] = _gpt2_decode(text, f"{path}, model.vocab")
    merges: list[tuple[bytes, bytes]] = []
    for n, m in enumerate(_get(model, "merges", path, "model.", list)):
        parts = m.split(" ") if isinstance(m, str) else m
        if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) and p for p in parts)):
            raise _fail(path, f"model.merges[{n}] is {m!r}; expected 'left right' or [left, right]")
        where = f"{path}, model.merges[{n}]"
        merges.append((_gpt2_decode(parts[0], where), _gpt2_decode(parts[1], where)))
    specials: dict[str, int] = {}
    for n, t in enumerate(_get(d, "added_tokens", path, "", list) if "added_tokens" in d else []):
        content = _get(t, "content", path, f"added_tokens[{n}].", str)
        specials[content] = _get(t, "id", path, f"added_tokens[{n}].", int)
    try:
        return BPETokenizer(vocab, merges, specials, pattern)
    except ValueError as err:
        raise _fail(path, f"does not describe a valid byte-level BPE: {err}") from None


def _read_char_form(d: dict, model: dict, path) -> list:
    pre = d.get("pre_tokenizer")
    if not (isinstance(pre, dict) and pre.get("type") == "Split"
            and pre.get("pattern") == {"Regex": CHAR_SPLIT}):
        raise _fail(path, "a WordLevel model is read only in the character form this project writes "
                          f"(pre_tokenizer Split on {CHAR_SPLIT!r})")
    if d.get("added_tokens"):
        raise _fail(path, "the character form has no added tokens")
    vocab = _get(model, "vocab", path, "model.", dict)
    chars = sorted(vocab, key=lambda c: vocab[c])
    if any(not isinstance(vocab[c], int) or isinstance(vocab[c], bool) for c in chars) or \
            [vocab[c] for c in chars] != list(range(len(chars))) or any(len(c) != 1 for c in chars):
        raise _fail(path, "model.vocab must map single characters to the ids 0..N-1")
    return chars
