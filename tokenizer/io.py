"""File formats: our versioned model file, the readable .vocab, GPT-2's files, tiktoken rank files.

Everything here converts between files and plain data (``vocab: dict[int, bytes]``,
``merges: list[tuple[bytes, bytes]]``, ``special_tokens: dict[str, int]``, a pattern string);
building and validating a tokenizer from that data is `bpe.py`'s job, so this module imports
nothing else from the package.

Our model file (``*.model``), version 1, UTF-8 text, one item per line::

    minigrad-bpe v1
    pattern "<the split regex as a JSON string>"
    specials <N>
    <id> "<special token as a JSON string>"        (N lines)
    bytes 256
    <id> <byte>                                     (256 lines: the id of each single byte)
    merges <M>
    <id> <left> <right>                             (M lines, in merge order)

A byte string is written with every printable ASCII character except backslash as itself,
a backslash as ``\\\\`` and every other byte as ``\\xHH``: ``" the"`` is ``\\x20the``, so a line
splits on spaces. Ids are explicit so that vocabularies whose single bytes are not ids 0..255
in byte order (GPT-2's) round-trip. Loading checks the header, the version, every count and
every line, and names the line of any problem.

The ``.vocab`` file written next to it is for people only (never read back): one line per id
with the token rendered as text, and for merged tokens the two parts it was merged from.

GPT-2's ``vocab.json`` maps token strings to ids, where a token's bytes are spelt with GPT-2's
printable ``bytes_to_unicode`` alphabet; ``merges.txt`` lists one merge per line in that
alphabet after an optional ``#version`` line. A tiktoken rank file has one
``<base64 of the token bytes> <rank>`` per line and no special tokens.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import functools
import json
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

MAGIC = "minigrad-bpe"
VERSION = 1

PathLike = "str | os.PathLike[str]"


class ModelFileError(ValueError):
    """A model, vocab or rank file is corrupt, truncated or of an unsupported version."""


# ---------------------------------------------------------------------------------------------
# byte strings as readable, space-free text

_ESCAPE_TABLE = [chr(b) if 0x21 <= b <= 0x7E and b != 0x5C else f"\\x{b:02x}" for b in range(256)]
_ESCAPE_TABLE[0x5C] = "\\\\"
_ESCAPED = re.compile(r"(?:\\x[0-9a-f]{2}|\\\\|[!-\[\]-~])+")


def escape_bytes(token: bytes) -> str:
    """Printable ASCII (but backslash) as itself, backslash as two, anything else as \\xHH."""
    return "".join(_ESCAPE_TABLE[b] for b in token)


def unescape_bytes(text: str) -> bytes:
    """Inverse of `escape_bytes`; raises ValueError on anything `escape_bytes` cannot produce."""
    if not _ESCAPED.fullmatch(text):
        raise ValueError(f"expected an escaped byte string like 'ab\\x20c', got {text!r}")
    return codecs.escape_decode(text.encode("ascii"))[0]


# ---------------------------------------------------------------------------------------------
# our model file


def write_model(
    path: PathLike,
    pattern: str,
    vocab: Mapping[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Mapping[str, int],
) -> None:
    """Write the versioned model file described in the module docstring."""
    ranks = {tok: i for i, tok in vocab.items()}
    lines = [f"{MAGIC} v{VERSION}", f"pattern {json.dumps(pattern)}", f"specials {len(special_tokens)}"]
    lines += [f"{i} {json.dumps(tok)}" for tok, i in sorted(special_tokens.items(), key=lambda kv: kv[1])]
    lines.append("bytes 256")
    lines += [f"{ranks[bytes([b])]} {escape_bytes(bytes([b]))}" for b in range(256)]
    lines.append(f"merges {len(merges)}")
    lines += [f"{ranks[a + b]} {escape_bytes(a)} {escape_bytes(b)}" for a, b in merges]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_model(path: PathLike) -> tuple[str, dict[int, bytes], list[tuple[bytes, bytes]], dict[str, int]]:
    """Read a model file; returns (pattern, vocab id -> bytes incl. specials, merges, specials)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise ModelFileError(f"{path} is not a {MAGIC} model file (not UTF-8 text: {err})") from err
    if lines and lines[-1] == "":
        lines.pop()
    reader = _LineReader(path, lines)

    header = reader.next("the header")
    match = re.fullmatch(rf"{MAGIC} v(\d+)", header)
    if match is None:
        raise ModelFileError(
            f"{path} is not a {MAGIC} model file: expected the first line '{MAGIC} v{VERSION}', "
            f"got {header[:80]!r}"
        )
    if int(match.group(1)) != VERSION:
        raise ModelFileError(
            f"{path} is a {MAGIC} model file of version {match.group(1)}; "
            f"this code reads version {VERSION} only"
        )

    pattern = reader.json_field("pattern")
    if not isinstance(pattern, str):
        reader.fail("expected the pattern as a JSON string")
    vocab: dict[int, bytes] = {}
    specials: dict[str, int] = {}
    for _ in range(reader.count("specials")):
        i, rest = reader.id_and_rest()
        try:
            tok = json.loads(rest)
        except json.JSONDecodeError:
            tok = None
        if not isinstance(tok, str) or not tok:
            reader.fail("expected '<id> \"<special token>\"'")
        specials[tok] = i
        reader.add(vocab, i, tok.encode("utf-8"))
    if reader.count("bytes") != 256:
        reader.fail("expected 'bytes 256'")
    for _ in range(256):
        i, rest = reader.id_and_rest()
        token = reader.unescape(rest)
        if len(token) != 1:
            reader.fail(f"expected a single byte, got {len(token)} bytes")
        reader.add(vocab, i, token)
    merges: list[tuple[bytes, bytes]] = []
    for _ in range(reader.count("merges")):
        i, rest = reader.id_and_rest()
        parts = rest.split(" ")
        if len(parts) != 2:
            reader.fail("expected '<id> <left> <right>'")
        left, right = reader.unescape(parts[0]), reader.unescape(parts[1])
        merges.append((left, right))
        reader.add(vocab, i, left + right)
    if reader.pos != len(lines):
        reader.fail("unexpected extra lines after the last merge")
    return pattern, vocab, merges, specials


class _LineReader:
    """Walks the model file's lines, turning every problem into a ModelFileError with its line."""

    def __init__(self, path: Path, lines: list[str]):
        self.path, self.lines, self.pos = path, lines, 0

    def fail(self, what: str) -> None:
        line = self.lines[self.pos - 1] if 0 < self.pos <= len(self.lines) else ""
        raise ModelFileError(f"{self.path}, line {self.pos}: {what}; got {line[:80]!r} (corrupt model file?)")

    def next(self, what: str) -> str:
        if self.pos >= len(self.lines):
            raise ModelFileError(
                f"{self.path} ends early at line {self.pos}: expected {what} (truncated model file?)"
            )
        self.pos += 1
        return self.lines[self.pos - 1]

    def json_field(self, name: str):
        line = self.next(f"the '{name}' line")
        if not line.startswith(name + " "):
            self.fail(f"expected '{name} <JSON>'")
        try:
            return json.loads(line[len(name) + 1 :])
        except json.JSONDecodeError:
            self.fail(f"expected '{name} <JSON>'")

    def count(self, name: str) -> int:
        line = self.next(f"the '{name} <count>' line")
        match = re.fullmatch(rf"{name} (\d+)", line)
        if match is None:
            self.fail(f"expected '{name} <count>'")
        return int(match.group(1))

    def id_and_rest(self) -> tuple[int, str]:
        line = self.next("another entry")
        match = re.fullmatch(r"(\d+) (.+)", line)
        if match is None:
            self.fail("expected '<id> ...'")
        return int(match.group(1)), match.group(2)

    def unescape(self, text: str) -> bytes:
        try:
            return unescape_bytes(text)
        except ValueError as err:
            self.fail(str(err))

    def add(self, vocab: dict[int, bytes], i: int, token: bytes) -> None:
        if i in vocab:
            self.fail(f"id {i} appears twice")
        vocab[i] = token


# ---------------------------------------------------------------------------------------------
# the human-readable .vocab file


def render_token(token: bytes) -> str:
    """Bytes as text for people: invalid UTF-8 shown as U+FFFD, control characters escaped."""
    text = token.decode("utf-8", errors="replace")
    return "".join(ch if unicodedata.category(ch)[0] != "C" else f"\\u{ord(ch):04x}" for ch in text)


def write_vocab_file(
    path: PathLike,
    vocab: Mapping[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Mapping[str, int],
) -> None:
    """One line per id: ``<id> [token]``, plus ``<- [left][right]`` for merged tokens."""
    ranks = {tok: i for i, tok in vocab.items()}
    parts_of = {ranks[a + b]: (a, b) for a, b in merges}
    special_ids = set(special_tokens.values())
    lines = ["# minigrad-bpe vocabulary, for reading only: <id> [token] (<- [left][right] for merged tokens)"]
    for i in sorted(vocab):
        line = f"{i} [{render_token(vocab[i])}]"
        if i in special_ids:
            line += " (special)"
        elif i in parts_of:
            a, b = parts_of[i]
            line += f" <- [{render_token(a)}][{render_token(b)}]"
        lines.append(line)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# GPT-2's vocab.json + merges.txt


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character (printable bytes map to themselves)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    chars = keep[:]
    shift = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + shift)
            shift += 1
    return dict(zip(keep, map(chr, chars)))


@functools.lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _gpt2_decode(text: str, where: str) -> bytes:
    table = _unicode_to_bytes()
    try:
        return bytes(table[c] for c in text)
    except KeyError as err:
        raise ModelFileError(
            f"{where}: {text!r} has a character outside GPT-2's byte alphabet: {err}"
        ) from None


def _gpt2_encode(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def read_gpt2_files(
    vocab_json: PathLike, merges_txt: PathLike
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Read GPT-2's files; returns (vocab id -> bytes, special tokens included as their bytes, merges)."""
    try:
        encoder = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(
            f"{vocab_json} is not a JSON vocabulary (expected {{token: id}}): {err}"
        ) from err
    if not isinstance(encoder, dict) or not all(isinstance(v, int) for v in encoder.values()):
        raise ModelFileError(f"{vocab_json}: expected a JSON object mapping token strings to integer ids")
    vocab: dict[int, bytes] = {}
    for text, i in encoder.items():
        if i in vocab:
            raise ModelFileError(f"{vocab_json}: id {i} is used twice")
        vocab[i] = _gpt2_decode(text, str(vocab_json))
    merges: list[tuple[bytes, bytes]] = []
    with open(merges_txt, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (lineno == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ModelFileError(
                    f"{merges_txt}, line {lineno}: expected '<left> <right>', got {line[:80]!r}"
                )
            where = f"{merges_txt}, line {lineno}"
            merges.append((_gpt2_decode(parts[0], where), _gpt2_decode(parts[1], where)))
    return vocab, merges


def write_gpt2_files(
    vocab_json: PathLike,
    merges_txt: PathLike,
    vocab: Mapping[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
) -> None:
    """Write GPT-2-style files (special tokens belong in `vocab` as their UTF-8 bytes)."""
    encoder = {_gpt2_encode(tok): i for i, tok in sorted(vocab.items())}
    if len(encoder) != len(vocab):
        raise ValueError("two ids share the same bytes; GPT-2's vocab.json cannot express that")
    Path(vocab_json).write_text(json.dumps(encoder, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{_gpt2_encode(a)} {_gpt2_encode(b)}" for a, b in merges]
    Path(merges_txt).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# tiktoken rank files


def read_tiktoken_ranks(path: PathLike) -> dict[bytes, int]:
    """Read ``<base64 token> <rank>`` lines into bytes -> rank."""
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError
                token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
            except (ValueError, binascii.Error):
                raise ModelFileError(
                    f"{path}, line {lineno}: expected '<base64 token> <rank>', got {line[:80]!r}"
                ) from None
            if token in ranks:
                raise ModelFileError(f"{path}, line {lineno}: token {token!r} appears twice")
            ranks[token] = rank
    return ranks


def write_tiktoken_ranks(path: PathLike, ranks: Mapping[bytes, int]) -> None:
    """Write bytes -> rank as tiktoken's ``<base64 token> <rank>`` lines, by rank."""
    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    lines = [f"{base64.b64encode(tok).decode('ascii')} {r}" for tok, r in by_rank]
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")
