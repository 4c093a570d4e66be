"""Training data for train.py: find text, split it, tokenise it once, cache it, cut batches.

The path from a `--data` setting to the arrays a training step reads:

1. `resolve_sources(data, cache_dir, val_data)`: "shakespeare" (Tiny Shakespeare, downloaded on
   first use), "tinystories" (TinyStories' train + valid files, downloaded on first use), a path
   to one text file, or a path to a folder of ``*.txt`` / ``*.jsonl`` files (like a shelf of
   books). `val_data` (a file or folder) names the validation text when it comes separately.
2. `read_documents` + `split_documents`: documents are the files of a folder, or the pieces of
   a file separated by ``<|endoftext|>``, or a whole plain file, or the lines of a ``.jsonl``
   file (the string under `text_field` of each JSON object). The validation split never
   shares a document with the training split:
   - with many documents (>= `MIN_DOCS_FOR_DOC_SPLIT`), whole documents go to val, chosen by
     a seeded hash of their index, so no document straddles the split;
   - with few (one plain file, a handful of books), the tail `val_fraction` of *each*
     document, cut at a line boundary, is val: one contiguous piece, so no window of text is
     in both splits.
   - TinyStories comes with its own valid file, which is used as val as it is; so is
     `val_data` (and then val_fraction plays no part).
3. `build_tokenizer`: "char" (one id per distinct character of the corpus), "bpe" (our
   byte-level BPE trained on the *training* split only, cached), or "gpt2" (GPT-2's
   vocab.json + merges.txt from `gpt2_dir`, downloaded on first use otherwise).
4. `prepare_data`: token ids of each split written once as uint16 memmaps under
   ``<cache_dir>/tokens/<key>/{train,val}.bin`` (with ``tokenizer.json`` and ``meta.json``),
   where the key hashes the files' bytes, the tokenizer settings and the split settings, so a
   second run with the same settings only hashes the files and maps the token files.
5. `get_batch` / `fixed_batches`: random (B, T) windows of a split, x and y = x shifted by one.

It knows nothing of minigrad: it returns NumPy arrays. Downloads are checked (complete, not an
HTML page, the released file's size and SHA-256 where known: minigrad/training/download.py), and every
failure is a `DataError` that says how to point train.py at local files (``--data=PATH``,
``--gpt2_dir``). Text that is not UTF-8 is decoded with U+FFFD for each bad byte and a warning
that counts them; a file with more than `MAX_BAD_BYTE_FRACTION` of them is refused as binary.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..serialization import atomic_write
from .download import DownloadError, Pin
from .download import download as _download

ENDOFTEXT = "<|endoftext|>"

TINY_SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                        "tinyshakespeare/input.txt")
# the released file (1,115,394 ASCII bytes, 65 distinct characters; nanoGPT's 301,966 + 36,059
# GPT-2 tokens for its 90/10 split, which this file reproduces)
TINY_SHAKESPEARE_PIN = Pin(1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")
TINYSTORIES_URLS = {
    "train": "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-train.txt",
    "val": "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt",
}
# GPT-2's own files: encoder.json is Hugging Face's vocab.json, vocab.bpe is its merges.txt.
# These URLs and SHA-256s are the ones tiktoken pins for its "gpt2" encoding.
GPT2_URLS = {
    "vocab.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
    "merges.txt": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
}
GPT2_PINS = {
    "vocab.json": Pin(1_042_301, "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "merges.txt": Pin(456_318, "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
                      header=b"#version: 0.2\n"),
}
# Text with more bytes that are not UTF-8 than this share is not text (a binary file, or a
# wrong encoding such as UTF-16); below it, each bad byte becomes U+FFFD with a warning.
MAX_BAD_BYTE_FRACTION = 0.01

MIN_DOCS_FOR_DOC_SPLIT = 20          # fewer documents than this: split each one's tail instead
TOKENIZERS = ("char", "bpe", "gpt2")
TEXT_SUFFIXES = (".txt", ".jsonl")   # in a folder: plain text, and JSON lines with a text field
CACHE_VERSION = 2                    # bump when the token files' meaning changes


class DataError(RuntimeError):
    """Data cannot be found, downloaded, read or tokenised; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# downloads


def download(url: str, dest: Path, what: str, hint: str, expect: Optional[Pin] = None) -> Path:
    """Fetch `url` into `dest` unless a valid copy is cached: complete, not an HTML page, and the
    size and SHA-256 of `expect` when given (minigrad/training/download.py). Written to a temp file and
    renamed, so a partial download never looks finished.

    `hint` is appended to the error when the download fails, e.g. how to use local files.
    """
    try:
        return _download(url, dest, what, hint, expect)
    except DownloadError as err:
        raise DataError(str(err)) from None


# ---------------------------------------------------------------------------------------------
# sources and documents


@dataclass
class Sources:
    """Where the text comes from. `val_files` is set only when the corpus has its own val split."""
    name: str                              # what to call it in messages
    files: list[Path]                      # training text (or all text, to be split)
    val_files: Optional[list[Path]] = None


def resolve_sources(data: str, cache_dir: "str | os.PathLike[str]" = "data", val_data: str = "") -> Sources:
    """The files behind a `--data` value (downloading the named datasets on first use), and
    behind `--val_data` when given (a file or folder of validation text, used as it is)."""
    cache_dir = Path(cache_dir)
    local = ("point train.py at local text instead: --data=PATH (a .txt file or a folder of .txt "
             "files), e.g. `make train DATA=path/to/text.txt`")
    if data in ("shakespeare", "tinyshakespeare", "shakespeare_char"):
        path = download(TINY_SHAKESPEARE_URL, cache_dir / "tinyshakespeare.txt", "Tiny Shakespeare", local,
                        TINY_SHAKESPEARE_PIN)
        src = Sources("Tiny Shakespeare", [path])
    elif data == "tinystories":
        train = download(TINYSTORIES_URLS["train"], cache_dir / "TinyStories-train.txt",
                         "TinyStories (train, ~1.9 GB)", local)
        val = download(TINYSTORIES_URLS["val"], cache_dir / "TinyStories-valid.txt",
                       "TinyStories (valid)", local)
        src = Sources("TinyStories", [train], [val])
    else:
        src = Sources(str(Path(data).expanduser()), local_files(data, "--data"))
    if val_data:
        src.val_files = local_files(val_data, "--val_data")
    return src


def local_files(where: str, flag: str) -> list[Path]:
    """A text file, or the text files (TEXT_SUFFIXES) under a folder, sorted; else a DataError."""
    path = Path(where).expanduser()
    kinds = "a .txt or .jsonl file, or a folder of them"
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{flag}={where}: the folder has no .txt or .jsonl files; expected {kinds}")
        return files
    if path.is_file():
        return [path]
    known = " and not a known dataset name ('shakespeare', 'tinystories')" if flag == "--data" else ""
    raise DataError(f"{flag}={where}: no such file or folder{known}; expected {kinds}")


_BAD_BYTE = re.compile("[\udc80-\udcff]")      # how surrogateescape decodes each non-UTF-8 byte


def read_text(path: Path) -> str:
    """The text of a UTF-8 file. Each byte that is not UTF-8 becomes U+FFFD and a warning counts
    them; more than MAX_BAD_BYTE_FRACTION of them (or NUL characters, which text never has) is a
    DataError: that is a binary file, not text."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from err
    bad = 0
    if _BAD_BYTE.search(text):
        text, bad = _BAD_BYTE.subn("\ufffd", text)
    nul = text.count("\0")
    if text and (bad + nul) / len(text) > MAX_BAD_BYTE_FRACTION:
        raise DataError(f"{path}: this looks like a binary file, not UTF-8 text ({bad:,} bytes that are not "
                        f"UTF-8 and {nul:,} NUL characters in {len(text):,}); expected .txt files of text")
    if bad:
        print(f"warning: {path}: {bad:,} bytes are not valid UTF-8; each was replaced by U+FFFD",
              file=sys.stderr)
    return text


def read_documents(files: Sequence[Path], text_field: str = "text") -> list[str]:
    """One document per file, except that ``<|endoftext|>`` separates documents within a file,
    and that each line of a ``.jsonl`` file is a document: its `text_field` string."""
    docs: list[str] = []
    for f in files:
        text = read_text(f)
        if Path(f).suffix == ".jsonl":
            docs += [d for d in jsonl_documents(text, f, text_field) if d.strip()]
        elif ENDOFTEXT in text:
            docs += [p.strip("\n") for p in text.split(ENDOFTEXT) if p.strip()]
        elif text.strip():
            docs.append(text)
    return docs


def jsonl_documents(text: str, path: Path, field: str) -> list[str]:
    """The `field` string of each line of a JSON-lines file (the form dataset dumps take)."""
    docs = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: not a JSON line ({err.msg}); expected one JSON object per "
                            f"line, with the text under {field!r}") from None
        if not isinstance(row, dict) or not isinstance(row.get(field), str):
            has = f"keys {sorted(row)[:8]}" if isinstance(row, dict) else f"a {type(row).__name__}"
            raise DataError(f"{path}:{n}: expected a JSON object with a text field {field!r}, got "
                            f"{has}; name the field with --text_field=NAME")
        docs.append(row[field])
    return docs


def _tail_split(doc: str, val_fraction: float) -> tuple[str, str]:
    """Cut one document so the last ~val_fraction of it (from a line start) is val."""
    cut = int(len(doc) * (1.0 - val_fraction))
    nl = doc.rfind("\n", 0, cut + 1)
    if nl > 0 and cut - nl < max(1000, len(doc) // 20):   # a nearby line start; else cut mid-line
        cut = nl + 1
    return doc[:cut], doc[cut:]


def _doc_in_val(index: int, seed: int, val_fraction: float) -> bool:
    h = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0 ** 64 < val_fraction


def split_documents(docs: Sequence[str], val_fraction: float, seed: int = 0,
                    mode: str = "auto") -> tuple[list[str], list[str], str]:
    """Train and val documents plus the mode used ('document' or 'tail'); see the module docstring.

    `mode`: 'auto' (document split with enough documents, tail split otherwise), 'document' or 'tail'.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if mode not in ("auto", "document", "tail"):
        raise DataError(f"split must be 'auto', 'document' or 'tail', got {mode!r}")
    if mode == "auto":
        mode = "document" if len(docs) >= MIN_DOCS_FOR_DOC_SPLIT else "tail"
    if val_fraction == 0.0:
        return list(docs), [], mode
    if mode == "tail":
        pairs = [_tail_split(d, val_fraction) for d in docs]
        return [a for a, _ in pairs if a], [b for _, b in pairs if b], mode
    train, val = [], []
    for i, d in enumerate(docs):
        (val if _doc_in_val(i, seed, val_fraction) else train).append(d)
    if not val or not train:                 # tiny corpora: make sure both splits exist
        train, val = list(docs[:-1]), [docs[-1]]
    return train, val, mode


# ---------------------------------------------------------------------------------------------
# tokenizers


class CharTokenizer:
    """One id per distinct character (nanoGPT's shakespeare_char), ids in sorted character order."""

    kind = "char"

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if len(self.stoi) != len(self.chars):
            raise ValueError("CharTokenizer: characters must be distinct")

    @classmethod
    def from_text(cls, texts: Sequence[str]) -> "CharTokenizer":
        chars: set[str] = set()
        for t in texts:
            chars.update(t)
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    n_vocab = vocab_size

    @property
    def eot_token(self) -> None:
        return None

    def encode(self, text: str, **_) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in this character vocabulary "
                             f"({len(self.chars)} characters)") from None

    encode_ordinary = encode

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "chars": "".join(self.chars)})


def tokenizer_to_json(tok) -> str:
    """A tokenizer as one JSON string (for checkpoints): char vocab, or our BPE model file text."""
    if isinstance(tok, CharTokenizer):
        return tok.to_json()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tok.model"
        tok.save(path)
        text = path.read_text(encoding="utf-8")
    return json.dumps({"kind": getattr(tok, "kind", "bpe"), "model": text})


def tokenizer_from_json(s: str):
    """Inverse of `tokenizer_to_json`."""
    from minigrad.tokenizer import BPETokenizer
    d = json.loads(s)
    if d.get("kind") == "char":
        return CharTokenizer(list(d["chars"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tok.model"
        path.write_text(d["model"], encoding="utf-8")
        tok = BPETokenizer.load(path)
    tok.kind = d.get("kind", "bpe")
    return tok


def tokenizer_in_folder(folder: Path) -> tuple[object, Optional[Path]]:
    """(tokenizer, the file it came from) saved in `folder`: the first of minigrad_tokenizer.json
    (exact, any kind), tokenizer.json (ours or Hugging Face's byte-level BPE, or our character
    form), vocab.json + merges.txt (GPT-2's form); (None, None) when it holds none of them."""
    for name in ("minigrad_tokenizer.json", "tokenizer.json", "vocab.json"):
        if (folder / name).is_file() and (name != "vocab.json" or (folder / "merges.txt").is_file()):
            return load_tokenizer(folder / name), folder / name
    return None, None


def load_tokenizer(path: "str | os.PathLike[str]"):
    """A saved tokenizer, with `.kind` set: a folder (see `tokenizer_in_folder`), our BPE model
    file (``python -m tokenizer train``, ``BPETokenizer.save``: any name but .json), a JSON file in
    train.py's form (``minigrad_tokenizer.json``, a token cache's tokenizer.json) or a Hugging Face
    ``tokenizer.json``, or GPT-2's ``vocab.json`` (its ``merges.txt`` beside it). Raises
    ModelFileError (a ValueError) naming the file when it is none of these."""
    from minigrad.tokenizer import BPETokenizer, ModelFileError
    from minigrad.tokenizer.hf_json import read_tokenizer_json
    path = Path(path).expanduser()
    if path.is_dir():
        tok, _ = tokenizer_in_folder(path)
        if tok is None:
            raise ModelFileError(f"{path}: holds no tokenizer (minigrad_tokenizer.json, tokenizer.json, or "
                                 "vocab.json + merges.txt)")
        return tok
    if not path.is_file():
        raise ModelFileError(f"{path}: no such tokenizer file or folder")
    if path.name == "vocab.json":
        tok = BPETokenizer.from_gpt2_files(path, path.with_name("merges.txt"))
        tok.kind = "gpt2"
        return tok
    if path.suffix != ".json":
        tok = BPETokenizer.load(path)
        tok.kind = "bpe"
        return tok
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path}: not valid JSON ({err})") from None
    if isinstance(d, dict) and "kind" in d:                        # train.py's own form
        try:
            return tokenizer_from_json(json.dumps(d))
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{path}: not a minigrad tokenizer file ({type(err).__name__}: {err})") from None
    tok = read_tokenizer_json(path)                                 # a tokenizers-library file
    if isinstance(tok, list):
        return CharTokenizer(tok)
    tok.kind = "bpe"
    return tok


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def gpt2_files(gpt2_dir: Optional[str], cache_dir: "str | os.PathLike[str]" = "data") -> tuple[Path, Path]:
    """(vocab.json, merges.txt): from `gpt2_dir` when given, else downloaded into <cache>/gpt2/."""
    hint = ("point train.py at local copies with --gpt2_dir=DIR (a folder holding GPT-2's vocab.json "
            "and merges.txt), or use --tokenizer=bpe or --tokenizer=char")
    if gpt2_dir:
        d = Path(gpt2_dir).expanduser()
        vocab, merges = d / "vocab.json", d / "merges.txt"
        missing = [p.name for p in (vocab, merges) if not p.is_file()]
        if missing:
            raise DataError(f"--gpt2_dir={gpt2_dir}: missing {', '.join(missing)}; expected GPT-2's "
                            "vocab.json and merges.txt there")
        return vocab, merges
    d = Path(cache_dir) / "gpt2"
    return tuple(download(GPT2_URLS[name], d / name, f"GPT-2's {name}", hint, GPT2_PINS[name])
                 for name in ("vocab.json", "merges.txt"))


def build_tokenizer(kind: str, train_docs: Sequence[str], all_docs: Sequence[str], vocab_size: int,
                    gpt2_dir: Optional[str] = None, cache_dir: "str | os.PathLike[str]" = "data",
                    pattern: str = "gpt4"):
    """A tokenizer of `kind` ('char', 'bpe', 'gpt2') with `.kind` set.

    'bpe' learns `vocab_size` tokens (``<|endoftext|>`` included) from `train_docs` only, splitting
    text with `pattern` ('gpt4' or 'gpt2': tokenizer/patterns.py), and caches the model file
    under <cache>/tokenizers/. 'char' takes its characters from
    `all_docs` (both splits), so validation text never holds an unknown character.
    """
    from minigrad.tokenizer import BPETokenizer
    if kind == "char":
        return CharTokenizer.from_text(all_docs)
    if kind == "gpt2":
        vocab, merges = gpt2_files(gpt2_dir, cache_dir)
        tok = BPETokenizer.from_gpt2_files(vocab, merges)
        tok.kind = "gpt2"
        return tok
    if kind == "bpe":
        key = _sha("bpe", vocab_size, pattern, *train_docs)
        path = Path(cache_dir) / "tokenizers" / f"bpe-{vocab_size}-{pattern}-{key}.model"
        if path.is_file():
            tok = BPETokenizer.load(path)
        else:
            print(f"training a BPE tokenizer with {vocab_size} tokens on the training split")
            tok = BPETokenizer.train(list(train_docs), vocab_size, special_tokens=[ENDOFTEXT],
                                     pattern=pattern, verbose=False)
            _save_bpe_model(tok, path)
        tok.kind = "bpe"
        return tok
    raise DataError(f"tokenizer must be one of {TOKENIZERS}, got {kind!r}")


def _save_bpe_model(tok, path: Path) -> None:
    """Save the model file and its readable .vocab in a temp folder beside `path`, then move both in:
    a full disk or a kill leaves neither a half-written model nor temp files behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-") as tmp:
            vocab = tok.save(Path(tmp) / path.name)
            os.replace(vocab, path.with_suffix(".vocab"))
            os.replace(Path(tmp) / path.name, path)
    except OSError as err:
        raise _write_error(path, err) from None


def encode_documents(tok, docs: Sequence[str]) -> np.ndarray:
    """Token ids of `docs` as uint16, with the end-of-text token between documents when it exists."""
    if tok.vocab_size > 65536:
        raise DataError(f"vocab_size {tok.vocab_size} does not fit the uint16 token files (max 65536)")
    eot = tok.eot_token
    chunks = []
    for i, d in enumerate(docs):
        if i and eot is not None:
            chunks.append(np.array([eot], dtype=np.uint16))
        chunks.append(np.asarray(tok.encode_ordinary(d), dtype=np.uint16))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint16)


# ---------------------------------------------------------------------------------------------
# the whole preparation, cached


@dataclass
class PreparedData:
    train: np.ndarray            # uint16 memmap of the training tokens
    val: np.ndarray              # uint16 memmap of the validation tokens (may be empty)
    tokenizer: object
    cache_path: Path             # the folder holding train.bin, val.bin, meta.json
    meta: dict


def _write_error(path: Path, err: OSError) -> DataError:
    return DataError(f"cannot write {path}: {err.strerror or err}; free space on that disk or point "
                     "--data_cache at another folder")


def _write_cache_file(path: Path, write_fn) -> None:
    """Write one cache file atomically; on failure (a full disk) no temp file is left behind."""
    try:
        atomic_write(path, write_fn)
    except OSError as err:
        raise _write_error(path, err) from None


def _write_bin(path: Path, ids: np.ndarray) -> None:
    _write_cache_file(path, lambda f: f.write(np.ascontiguousarray(ids, dtype=np.uint16).tobytes()))


def _write_text(path: Path, text: str) -> None:
    _write_cache_file(path, lambda f: f.write(text.encode("utf-8")))


def _memmap(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype=np.uint16, mode="r")


def _hash_files(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _ready_tokenizer(tokenizer):
    """None for a kind to build ('char', 'bpe', 'gpt2'); else the tokenizer object given, or the
    one saved at the path given (a DataError naming --tokenizer when it cannot be read)."""
    if not isinstance(tokenizer, str):
        return tokenizer
    if tokenizer in TOKENIZERS:
        return None
    try:
        return load_tokenizer(tokenizer)
    except (ValueError, OSError) as err:             # ModelFileError is a ValueError
        raise DataError(f"--tokenizer={tokenizer}: {err}; expected char, bpe, gpt2 or the path of a saved "
                        "tokenizer (a model file from `python -m tokenizer train`, a tokenizer.json, or a "
                        "folder holding one)") from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(out: Path) -> Optional[tuple[object, dict]]:
    """(tokenizer, meta) of a finished token cache whose files agree with its meta.json, else None.

    A cache is trusted only after checking what it claims: each .bin holds exactly the number
    of tokens meta.json says, tokenizer.json has the SHA-256 recorded when it was written, and
    no token id is outside the tokenizer's vocabulary. A damaged cache (a truncated copy, an
    edited file, random bytes) is rebuilt from the text, with a note saying why.
    """
    meta_path = out / "meta.json"
    if not meta_path.is_file():
        return None                                     # never finished: build it
    try:
        problem, cached = None, _checked_cache(out)
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:   # JSONDecodeError: ValueError
        problem, cached = (f"meta.json has no {err}" if isinstance(err, KeyError) else str(err)), None
    if problem is not None:
        print(f"note: the token cache {out} does not match its meta.json ({problem}); rebuilding it",
              file=sys.stderr)
    return cached


def _checked_cache(out: Path) -> tuple[object, dict]:
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("meta.json is not a JSON object")
    for split in ("train", "val"):
        size, want = (out / f"{split}.bin").stat().st_size, int(meta[f"{split}_tokens"]) * 2
        if size != want:
            raise ValueError(f"{split}.bin has {size:,} bytes, expected {want:,}")
    tok_json = (out / "tokenizer.json").read_text(encoding="utf-8")
    if _sha256(tok_json) != meta["tokenizer_sha256"]:
        raise ValueError("tokenizer.json changed since the cache was written")
    tok = tokenizer_from_json(tok_json)
    for split in ("train", "val"):
        ids = _memmap(out / f"{split}.bin")
        if ids.size and int(ids.max()) >= tok.vocab_size:
            raise ValueError(f"{split}.bin holds token id {int(ids.max())}, outside the tokenizer's "
                             f"{tok.vocab_size} tokens")
    return tok, meta


def prepare_data(data: str, tokenizer="char", vocab_size: int = 8000, val_fraction: float = 0.1,
                 seed: int = 1337, cache_dir: "str | os.PathLike[str]" = "data",
                 gpt2_dir: Optional[str] = None, split: str = "auto", val_data: str = "",
                 text_field: str = "text", bpe_pattern: str = "gpt4") -> PreparedData:
    """Resolve, read, split, tokenise and cache `data`; returns memmaps and the tokenizer.

    `tokenizer`: a kind ('char', 'bpe' with `vocab_size` and `bpe_pattern`, 'gpt2'), the path of
    a saved tokenizer (`load_tokenizer`), or a tokenizer object (a pretrained model's).
    `val_data` (a file or folder) is the validation text as it is, instead of a share of `data`;
    `text_field` names the text of each line of a ``.jsonl`` file.
    The cache key is computed before any text is read (the files' bytes, the tokenizer kind and
    size or GPT-2's files, the split settings), so a second run only hashes the files and maps
    ``train.bin`` / ``val.bin``; the tokenizer comes back from ``tokenizer.json`` beside them.
    """
    ready = _ready_tokenizer(tokenizer)              # a saved or given tokenizer: nothing to build
    cache_dir = Path(cache_dir)
    src = resolve_sources(data, cache_dir, val_data)
    all_files = src.files + (src.val_files or [])
    if ready is not None:
        tok_id: tuple = ("ready", _sha256(tokenizer_to_json(ready)))
    elif tokenizer == "gpt2":
        tok_id = ("gpt2", _hash_files(gpt2_files(gpt2_dir, cache_dir)))
    else:
        tok_id = (tokenizer, (vocab_size, bpe_pattern) if tokenizer == "bpe" else "")
    key = _sha(CACHE_VERSION, _hash_files(all_files), len(src.files), *tok_id, split, val_fraction, seed,
               text_field)
    out = cache_dir / "tokens" / key
    train_bin, val_bin, tok_path, meta_path = (out / "train.bin", out / "val.bin", out / "tokenizer.json",
                                               out / "meta.json")
    cached = _read_cache(out)
    if cached is None:
        docs = read_documents(src.files, text_field)
        if not docs:
            raise DataError(f"--data={data}: no text found in {[str(f) for f in src.files]}")
        if src.val_files is not None:
            train_docs, val_docs, mode = docs, read_documents(src.val_files, text_field), "given"
            if not val_docs:
                raise DataError(f"no validation text found in {[str(f) for f in src.val_files]}")
        else:
            train_docs, val_docs, mode = split_documents(docs, val_fraction, seed, split)
        tok = ready or build_tokenizer(tokenizer, train_docs, list(train_docs) + list(val_docs), vocab_size,
                                       gpt2_dir, cache_dir, bpe_pattern)
        out.mkdir(parents=True, exist_ok=True)
        meta_path.unlink(missing_ok=True)                # unfinished until meta.json is back
        train_ids = encode_documents(tok, train_docs)
        val_ids = encode_documents(tok, val_docs)
        tok_json = tokenizer_to_json(tok)
        _write_bin(train_bin, train_ids)
        _write_bin(val_bin, val_ids)
        _write_text(tok_path, tok_json)
        meta = {"data": data, "source": src.name, "tokenizer": getattr(tok, "kind", "bpe"),
                "vocab_size": tok.vocab_size,
                "split": mode, "val_fraction": val_fraction, "train_docs": len(train_docs),
                "val_docs": len(val_docs), "train_tokens": int(train_ids.size), "val_tokens": int(val_ids.size),
                "tokenizer_sha256": _sha256(tok_json)}
        _write_text(meta_path, json.dumps(meta, indent=1))      # written last: marks the cache done
        cached = tok, meta
    tok, meta = cached
    return PreparedData(_memmap(train_bin), _memmap(val_bin), tok, out, meta)


# ---------------------------------------------------------------------------------------------
# batches


SHORT_SPLIT_ADVICE = {
    "train": "use more text, a smaller --block_size or a smaller --val_fraction",
    "val": "use more text, a smaller --block_size or a larger --val_fraction (or more --val_data)",
}


def get_batch(data: np.ndarray, batch_size: int, block_size: int,
              rng: np.random.Generator, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """`batch_size` random windows of `block_size + 1` tokens: x = (B, T) int64, y = x shifted by one."""
    if len(data) <= block_size:
        raise DataError(f"the {split} split has {len(data)} tokens, fewer than block_size + 1 = "
                        f"{block_size + 1}; {SHORT_SPLIT_ADVICE.get(split, SHORT_SPLIT_ADVICE['train'])}")
    ix = rng.integers(0, len(data) - block_size, size=batch_size)
    x = np.stack([np.asarray(data[i:i + block_size], dtype=np.int64) for i in ix])          # (B, T)
    y = np.stack([np.asarray(data[i + 1:i + 1 + block_size], dtype=np.int64) for i in ix])  # (B, T)
    return x, y


def fixed_batches(data: np.ndarray, n: int, batch_size: int, block_size: int,
                  seed: int = 0, split: str = "train") -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` batches drawn once with their own seed, so every eval sees the same windows."""
    rng = np.random.default_rng(seed)
    return [get_batch(data, batch_size, block_size, rng, split) for _ in range(n)]
