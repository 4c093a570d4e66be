"""BPETokenizer: a byte-level BPE that encodes exactly like tiktoken, plus its interchange forms.

Encoding text is: find special tokens (those allowed), split the text between them with the
pre-tokenisation regex into chunks, and turn each chunk into ids with the merge rule,
`merge.encode_chunk` (tiktoken's algorithm; a token's rank is its id), which gives the same ids
as the readable `reference.encode_chunk`. A per-chunk cache (str -> ids, `_ChunkCache`; emptied
when it reaches `cache_size` entries, so memory stays bounded) keeps pure Python fast without
changing any result: `encode_chunk` runs only on a miss. With the built-in patterns, the text
is first cut at spaces with `str.split` and whole words are cached too (`_WordCache`), which
avoids the regex on text already seen.

A tokenizer is defined by the form most BPE tooling exchanges: ``vocab`` (id -> bytes,
special tokens included as their UTF-8 bytes), ``merges`` (ordered byte pairs) and the special
tokens. The constructor checks that these agree with rank-based encoding: every single byte
is a token, every merge (a, b) produces the token a+b with an id above both parts, merge
results have increasing ids, and every multi-byte token is a merge result. Vocabularies
whose single bytes are not ids 0..255 in byte order (GPT-2's) are fine.

Training lives in `train.py`/`count.py`, file formats in `io.py`, stream cutting in
`stream.py`; this file only glues them to the class.
"""
from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Literal

from . import io as _io
from .count import count_chunks, expand_sources, replace_lone_surrogates
from .merge import encode_chunk, recover_merges
from .patterns import SPACE_SPLIT_SAFE, compile_pattern, resolve_pattern, special_token_regex
from .stream import DEFAULT_BLOCK_CHARS, iter_blocks, read_pieces
from .train import check_special_tokens, train_vocab

ENDOFTEXT = "<|endoftext|>"
DEFAULT_CACHE_SIZE = 1 << 16


class BPETokenizer:
    """Byte-level BPE tokenizer; ids equal tiktoken's for the same ranks, pattern and specials.

    Args:
        vocab: id -> token bytes. Special tokens may be included (as their UTF-8 bytes).
        merges: ordered (left, right) byte pairs; None derives them from the ranks (ids), as
            needed for tiktoken rank files.
        special_tokens: names (found in `vocab` by their bytes, or else given the next free
            ids in order) or a dict name -> id.
        pattern: "gpt2", "gpt4" or a custom `regex` split pattern (time-limited on every split,
            see patterns.py; a catastrophic one raises patterns.SplitPatternError).
        cache_size: number of distinct chunks whose ids are remembered.
    """

    def __init__(
        self,
        vocab: Mapping[int, bytes],
        merges: Sequence[tuple[bytes, bytes]] | None,
        special_tokens: Iterable[str] | Mapping[str, int] = (),
        pattern: str = "gpt4",
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ):
        self._pattern_str = resolve_pattern(pattern)
        self._pattern = compile_pattern(self._pattern_str)
        vocab = dict(vocab)
        for i, tok in vocab.items():
            if not isinstance(i, int) or i < 0 or not isinstance(tok, (bytes, bytearray)) or not tok:
                raise ValueError(
                    f"vocab must map non-negative int ids to non-empty bytes, got {i!r}: {tok!r}"
                )
        by_bytes: dict[bytes, int] = {}
        for i in sorted(vocab):
            tok = bytes(vocab[i])
            if tok in by_bytes:
                raise ValueError(
                    f"vocab ids {by_bytes[tok]} and {i} both map to {tok!r}; expected distinct tokens"
                )
            by_bytes[tok] = i

        # Special tokens: explicit ids, or the id of the same bytes in the vocab, or the next free id.
        self._special: dict[str, int] = {}
        if isinstance(special_tokens, Mapping):
            items = list(special_tokens.items())
        else:
            items = [(tok, None) for tok in check_special_tokens(special_tokens)]
        next_id = max(vocab, default=-1) + 1
        for tok, i in items:
            if not isinstance(tok, str) or not tok:
                raise ValueError(f"special tokens must be non-empty strings, got {tok!r}")
            raw = tok.encode("utf-8")
            if i is None:
                i = by_bytes.get(raw)
                if i is None:
                    i, next_id = next_id, next_id + 1
            elif i in vocab and vocab[i] != raw:
                raise ValueError(
                    f"special token {tok!r} was given id {i}, which the vocab uses for {vocab[i]!r}"
                )
            elif raw in by_bytes and by_bytes[raw] != i:
                raise ValueError(
                    f"special token {tok!r} was given id {i}, "
                    f"but the vocab has its bytes at id {by_bytes[raw]}"
                )
            if i in self._special.values():
                raise ValueError(f"two special tokens share id {i}")
            self._special[tok] = i
            vocab[i] = raw
            next_id = max(next_id, i + 1)
        special_ids = set(self._special.values())

        # Mergeable ranks: every non-special token, rank = id.
        self._ranks: dict[bytes, int] = {bytes(tok): i for i, tok in vocab.items() if i not in special_ids}
        missing = [b for b in range(256) if bytes([b]) not in self._ranks]
        if missing:
            raise ValueError(
                f"a byte-level vocab must contain all 256 single bytes as tokens; missing {len(missing)}, "
                f"e.g. {bytes(missing[:5])!r}"
            )
        self._merges = recover_merges(self._ranks) if merges is None else self._check_merges(merges)
        self._decoder: dict[int, bytes] = {i: bytes(tok) for i, tok in vocab.items()}
        self._n_vocab = max(self._decoder) + 1
        self._special_set = frozenset(self._special)
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._cache = _ChunkCache(self._ranks, cache_size)
        # The word-level fast path is proven only for the built-in patterns (see _WordCache).
        self._words = (
            _WordCache(self._pattern, self._cache, 2 * cache_size) if self._pattern_str in SPACE_SPLIT_SAFE else None
        )

    def _check_merges(self, merges: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        ranks = self._ranks
        out: list[tuple[bytes, bytes]] = []
        last = -1
        for n, pair in enumerate(merges):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"merge {n} must be a pair (left bytes, right bytes), got {pair!r}")
            a, b = bytes(pair[0]), bytes(pair[1])
            for part in (a, b, a + b):
                if part not in ranks:
                    raise ValueError(f"merge {n} ({a!r}, {b!r}) uses {part!r}, which is not in the vocab")
            rank = ranks[a + b]
            if rank <= max(ranks[a], ranks[b]) or rank <= last:
                raise ValueError(
                    f"merge {n} ({a!r}, {b!r}) gives id {rank}; expected ids that grow with merge order and "
                    f"exceed both parts' ids ({ranks[a]}, {ranks[b]}, previous merge {last}) so that "
                    "rank-based encoding applies the merges in order"
                )
            last = rank
            out.append((a, b))
        if len(out) != len(ranks) - 256:
            results = {a + b for a, b in out}
            orphan = next(t for t in ranks if len(t) > 1 and t not in results)
            raise ValueError(
                f"the vocab has {len(ranks) - 256} multi-byte tokens but {len(out)} merges; "
                f"expected one merge per multi-byte token (e.g. no merge produces {orphan!r})"
            )
        return out

    # ------------------------------------------------------------------------------------------
    # construction from training and files

    @classmethod
    def train(
        cls,
        texts_or_paths: "str | os.PathLike[str] | Iterable[str | os.PathLike[str]]",
        vocab_size: int,
        special_tokens: Sequence[str] = (),
        pattern: str = "gpt4",
        *,
        processes: int | None = None,
        verbose: bool = True,
        block_chars: int = DEFAULT_BLOCK_CHARS,
    ) -> "BPETokenizer":
        """Learn a tokenizer of `vocab_size` tokens (256 bytes + merges + specials).

        `texts_or_paths`: str items are text; pathlib.Path items are UTF-8 files (streamed in
        blocks of `block_chars`) or folders of ``*.txt`` files. A str that names an existing
        file or folder raises ValueError (it would train on the path's characters; pass a Path),
        or warns when other str items are real text. Special tokens split the text and
        are never part of a merge. `processes` counts chunks in parallel (None: all CPUs when
        the input is over a few MB). `verbose` draws progress bars on stderr.
        """
        specials = check_special_tokens(special_tokens)
        pattern_str = resolve_pattern(pattern)
        if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
            raise ValueError(
                f"vocab_size must be at least 256 (bytes) + {len(specials)} (special tokens) = "
                f"{256 + len(specials)}, got {vocab_size!r}"
            )
        sources = expand_sources(texts_or_paths)
        counts = count_chunks(sources, pattern_str, frozenset(specials), processes, block_chars, verbose)
        vocab, merges, special_ids = train_vocab(counts, vocab_size, specials, verbose)
        return cls(vocab, merges, special_ids, pattern_str)

    @classmethod
    def from_gpt2_files(
        cls,
        vocab_json: "str | os.PathLike[str]",
        merges_txt: "str | os.PathLike[str]",
        special_tokens: Iterable[str] | Mapping[str, int] = (ENDOFTEXT,),
        pattern: str = "gpt2",
    ) -> "BPETokenizer":
        """GPT-2's ``vocab.json`` + ``merges.txt``. Listed special tokens take their vocab.json ids."""
        vocab, merges = _io.read_gpt2_files(vocab_json, merges_txt)
        return cls(vocab, merges, special_tokens, pattern)

    @classmethod
    def from_tiktoken_file(
        cls,
        path: "str | os.PathLike[str]",
        special_tokens: Mapping[str, int] | Iterable[str] = (),
        pattern: str = "gpt4",
    ) -> "BPETokenizer":
        """A tiktoken rank file (``<base64 token> <rank>`` lines); the merges are derived from the ranks."""
        ranks = _io.read_tiktoken_ranks(path)
        return cls({r: tok for tok, r in ranks.items()}, None, special_tokens, pattern)

    @classmethod
    def load(cls, path: "str | os.PathLike[str]") -> "BPETokenizer":
        """Load a model file written by `save` (raises io.ModelFileError if corrupt or of another version)."""
        pattern, vocab, merges, specials = _io.read_model(path)
        try:
            return cls(vocab, merges, specials, pattern)
        except ValueError as err:
            raise _io.ModelFileError(
                f"{path}: the file parses but does not describe a valid tokenizer: {err}"
            ) from err

    def save(self, path: "str | os.PathLike[str]") -> Path:
        """Write the model file at `path` and a human-readable ``.vocab`` beside it.

        Returns the .vocab path (`path` with its suffix replaced by ``.vocab``).
        """
        path = Path(path)
        _io.write_model(path, self._pattern_str, self._decoder, self._merges, self._special)
        vocab_path = path.with_suffix(".vocab")
        if vocab_path == path:  # never overwrite the model file itself
            vocab_path = path.with_name(path.name + ".vocab")
        _io.write_vocab_file(vocab_path, self._decoder, self._merges, self._special)
        return vocab_path

    def save_gpt2_files(
        self, vocab_json: "str | os.PathLike[str]", merges_txt: "str | os.PathLike[str]"
    ) -> None:
        """Write GPT-2-style ``vocab.json`` + ``merges.txt`` (special tokens go into vocab.json)."""
        _io.write_gpt2_files(vocab_json, merges_txt, self._decoder, self._merges)

    def save_tiktoken_file(self, path: "str | os.PathLike[str]") -> None:
        """Write the mergeable ranks as a tiktoken rank file (special tokens are not part of it)."""
        _io.write_tiktoken_ranks(path, self._ranks)

    def to_tiktoken(self, name: str = "minigrad-bpe"):
        """A `tiktoken.Encoding` with the same ranks, pattern and special tokens (needs tiktoken)."""
        try:
            import tiktoken
        except ImportError as err:
            raise ImportError(
                "to_tiktoken() needs the optional package tiktoken (pip install tiktoken)"
            ) from err
        return tiktoken.Encoding(
            name,
            pat_str=self._pattern_str,
            mergeable_ranks=dict(self._ranks),
            special_tokens=dict(self._special),
        )

    # ------------------------------------------------------------------------------------------
    # what the tokenizer is

    @property
    def vocab(self) -> dict[int, bytes]:
        """id -> token bytes, special tokens included (a copy)."""
        return dict(self._decoder)

    @property
    def merges(self) -> list[tuple[bytes, bytes]]:
        """The merges in order (a copy)."""
        return list(self._merges)

    @property
    def mergeable_ranks(self) -> dict[bytes, int]:
        """token bytes -> rank (= id) for every non-special token, as tiktoken calls it (a copy)."""
        return dict(self._ranks)

    @property
    def special_tokens(self) -> dict[str, int]:
        """special token -> id (a copy)."""
        return dict(self._special)

    @property
    def pattern(self) -> str:
        """The split regex."""
        return self._pattern_str

    @property
    def n_vocab(self) -> int:
        """Largest id + 1, as in tiktoken (equal to the number of tokens when ids have no gaps)."""
        return self._n_vocab

    vocab_size = n_vocab

    @property
    def eot_token(self) -> int | None:
        """The id of ``<|endoftext|>``, or None if it is not a special token here."""
        return self._special.get(ENDOFTEXT)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token id (special tokens: their UTF-8 bytes)."""
        try:
            return self._decoder[token_id]
        except (KeyError, TypeError):
            raise ValueError(self._unknown_id_message(token_id)) from None

    def token_id(self, token: bytes | str) -> int:
        """The id of one token given as bytes or str (a special token by its name)."""
        if isinstance(token, str):
            if token in self._special:
                return self._special[token]
            token = token.encode("utf-8")
        try:
            return self._ranks[bytes(token)]
        except KeyError:
            raise ValueError(f"{token!r} is not a single token of this vocabulary") from None

    # tiktoken's names for the same lookups
    decode_single_token_bytes = token_bytes
    encode_single_token = token_id

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(n_vocab={self.n_vocab}, merges={len(self._merges)}, "
            f"special_tokens={self._special}, pattern={self._pattern_str[:40]!r}...)"
        )

    # ------------------------------------------------------------------------------------------
    # encoding

    def _encode_ordinary_into(self, text: str, out: list[int]) -> None:
        if self._words is None:
            # Custom pattern: split with the regex. Hits are C-level dict lookups end to end
            # (map + chain); a miss calls _ChunkCache.__missing__.
            out += chain.from_iterable(map(self._cache.__getitem__, self._pattern.findall(text)))
            return
        # Built-in pattern: split at spaces with str.split (C, ~6x faster than any `regex`
        # findall, whose cost per match is ~175 ns even for a trivial pattern) and look the
        # words up in the word cache; see _WordCache for why this gives exactly the regex's chunks.
        words = text.split(" ")
        id_lists = list(map(self._words.__getitem__, words))
        # The first word has no space before it, so its cached ids (those of " " + word) do not
        # apply: mark it like a bad word, which makes it part of a glued piece below.
        id_lists[0] = None
        n = len(words)
        i = 0
        while True:
            try:
                i = id_lists.index(None, i)  # the next piece to glue (a C-level scan)
            except ValueError:
                break
            # The piece starts at word i and runs through the next good word (or the last word):
            # its own end is then a safe cut.
            j = i + 1
            while j < n and id_lists[j] is None:
                j += 1
            j = min(j, n - 1)
            piece = " ".join(words[i : j + 1])
            id_lists[i] = self._words.encode_piece(" " + piece if i else piece)
            id_lists[i + 1 : j + 1] = [()] * (j - i)
            i = j + 1
        out += chain.from_iterable(id_lists)

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, treating special-token text as ordinary text."""
        out: list[int] = []
        try:
            self._encode_ordinary_into(text, out)
        except UnicodeEncodeError:
            # Lone surrogates cannot be UTF-8; replace them as tiktoken does.
            out = []
            self._encode_ordinary_into(replace_lone_surrogates(text), out)
        return out

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Token ids of `text`, with tiktoken's rules for special tokens.

        Special tokens in `allowed_special` ("all" for every one) become their ids. Text equal
        to a special token in `disallowed_special` raises ValueError; by default that is every
        special token not allowed. Pass ``disallowed_special=()`` to encode such text as ordinary text.
        """
        allowed = self._special_set if allowed_special == "all" else frozenset(allowed_special)
        if disallowed_special == "all":
            disallowed = self._special_set - allowed
        else:
            disallowed = frozenset(disallowed_special)
        if disallowed:
            match = special_token_regex(disallowed).search(text)
            if match is not None:
                raise ValueError(
                    f"the text contains the special token {match.group()!r}, which is disallowed. "
                    f"Pass allowed_special={{{match.group()!r}}} (or 'all') to encode it as a special token, "
                    "or disallowed_special=() to encode it as ordinary text."
                )
        allowed &= self._special_set
        if not allowed:
            return self.encode_ordinary(text)
        try:
            return self._encode_with_specials(text, allowed)
        except UnicodeEncodeError:
            return self._encode_with_specials(replace_lone_surrogates(text), allowed)

    def _encode_with_specials(self, text: str, allowed: frozenset[str]) -> list[int]:
        out: list[int] = []
        start = 0
        for match in special_token_regex(allowed).finditer(text):
            self._encode_ordinary_into(text[start : match.start()], out)
            out.append(self._special[match.group()])
            start = match.end()
        self._encode_ordinary_into(text[start:], out)
        return out

    def encode_batch(self, texts: Iterable[str], **kwargs) -> list[list[int]]:
        """`encode` each text (same keyword arguments)."""
        return [self.encode(text, **kwargs) for text in texts]

    def encode_iterable(
        self, iterable: Iterable[str], *, block_chars: int = DEFAULT_BLOCK_CHARS, **kwargs
    ) -> Iterator[int]:
        """Yield the ids of the concatenated strings of `iterable`, reading it block by block.

        The ids equal ``encode("".join(iterable), **kwargs)``; memory stays bounded by the block
        size (see `stream.py` for the one assumption on the split pattern this relies on).
        """
        for block in iter_blocks(iterable, self._special_set, block_chars):
            yield from self.encode(block, **kwargs)

    def encode_file(
        self, path: "str | os.PathLike[str]", *, block_chars: int = DEFAULT_BLOCK_CHARS, **kwargs
    ) -> Iterator[int]:
        """Yield the ids of a UTF-8 text file, streamed (see `encode_iterable`)."""
        return self.encode_iterable(read_pieces(path, block_chars), block_chars=block_chars, **kwargs)

    # ------------------------------------------------------------------------------------------
    # decoding

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of a sequence of ids. Unknown ids raise ValueError."""
        decoder = self._decoder
        if not isinstance(ids, (list, tuple)):
            ids = list(ids)  # a generator could not be scanned again for the error message
        try:
            return b"".join([decoder[i] for i in ids])
        except (KeyError, TypeError):
            bad = next(i for i in ids if not _hashable(i) or i not in decoder)
            raise ValueError(self._unknown_id_message(bad)) from None

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """The text of a sequence of ids; invalid UTF-8 becomes U+FFFD, as in tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def _unknown_id_message(self, token_id) -> str:
        return f"unknown token id {token_id!r}: expected an int id of this vocabulary (0..{self.n_vocab - 1})"


class _ChunkCache(dict):
    """chunk (str) -> its token ids; a missing chunk is encoded (`merge.encode_chunk`), stored and returned.

    Being a dict subclass with `__missing__` lets a hit stay a C-level lookup. When it holds
    `max_size` chunks it is emptied (cheaper than LRU bookkeeping, and the frequent chunks come
    back within a few lines of text), so memory stays bounded on any input.
    """

    def __init__(self, ranks: dict[bytes, int], max_size: int):
        super().__init__()
        self.ranks = ranks
        self.max_size = max_size

    def __missing__(self, chunk: str) -> list[int]:
        ids = encode_chunk(chunk.encode("utf-8"), self.ranks)  # the merge rule
        if len(self) >= self.max_size:
            self.clear()
        if self.max_size:
            self[chunk] = ids
        return ids


class _WordCache(dict):
    """word -> the token ids of " " + word, for text split with ``str.split(" ")``.

    Why this is exact (built-in patterns only, `patterns.SPACE_SPLIT_SAFE`): no chunk of the
    GPT-2 or GPT-4 pattern contains a non-whitespace character followed by a space, and the
    patterns use no look-behind. So wherever a space follows a non-whitespace character, the
    text can be cut before that space and both sides split on their own give the same chunks
    as the whole text (the same argument as `patterns.safe_cut`, which cuts only after letters).
    A word that ends with a non-whitespace character is "good": the cut after it is safe, and
    the piece " " + word can be encoded alone and cached. A "bad" word (empty, from two spaces
    in a row, or ending with whitespace, like "line\\n" before an indented line) maps to None;
    the caller then encodes it glued to the words that follow, up to the next good word.
    ``str.isspace`` is a superset of the regex's ``\\s`` (it adds U+001C..U+001F), so a
    word is never wrongly taken as good: at worst a safe cut is not used.

    Misses go through the chunk cache, so each distinct chunk is merged once. Bounded like
    `_ChunkCache`: emptied when it holds `max_size` words (the tokenizer gives it twice its
    chunk `cache_size`, as text has about twice as many distinct words as distinct chunks).
    """

    def __init__(self, pattern, chunks: "_ChunkCache", max_size: int):
        super().__init__()
        self.findall = pattern.findall
        self.chunks = chunks
        self.max_size = max_size

    def __missing__(self, word: str) -> list[int] | None:
        if not word or word[-1].isspace():
            ids = None
        elif word.isascii() and word.isalpha():
            # The commonest case: " " + ASCII letters is one chunk for both patterns (a letter
            # run with its leading space), so skip the regex.
            ids = self.chunks[" " + word]
        else:
            ids = self.encode_piece(" " + word)
        if len(self) >= self.max_size:
            self.clear()
        if self.max_size:
            self[word] = ids
        return ids

    def encode_piece(self, piece: str) -> list[int]:
        """Ids of a piece of text split with the regex (not cached at this level)."""
        return list(chain.from_iterable(map(self.chunks.__getitem__, self.findall(piece))))


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True

