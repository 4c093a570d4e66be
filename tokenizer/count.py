"""Counting the distinct pre-tokenised chunks of a corpus, streamed and optionally in parallel.

Training needs only "which chunks occur and how often", so the corpus is reduced to a dict
chunk -> frequency before any merging. Texts and files are read as blocks (see `stream.py`),
special tokens split every block (they are removed, so no chunk and hence no merge crosses a
document boundary), and each block is counted with `regex.findall` + `Counter`. Memory is
bounded by the number of distinct chunks plus a few blocks in flight, not by the corpus size.

With ``processes > 1`` blocks go through a bounded queue to worker processes, at most two
blocks per worker waiting at any time (`Pool.imap` would read the whole input ahead), which
keeps the memory bound; each worker sends back one Counter at the end. This module does not merge anything.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import chain, repeat
from pathlib import Path

from .patterns import compile_pattern, special_token_regex
from .progress import Progress
from .stream import DEFAULT_BLOCK_CHARS, iter_blocks, iter_file_blocks

# Below this many characters of input a process pool costs more than it saves.
PARALLEL_MIN_CHARS = 2 << 20

def expand_sources(sources: "str | os.PathLike[str] | Iterable[str | os.PathLike[str]]") -> list:
    """Normalise the `train` input into a list of texts (str) and file paths (Path).

    A `str` is text, a `Path` (any os.PathLike) is a file, or a folder whose ``*.txt`` files
    are taken in sorted order. A single str or Path may be given instead of a list. A str that
    names an existing file or folder is refused or warned about (see `_check_path_strs`).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out: list = []
    for src in sources:
        if isinstance(src, str):
            out.append(src)
        elif isinstance(src, os.PathLike):
            path = Path(src)
            if path.is_dir():
                files = sorted(p for p in path.rglob("*.txt") if p.is_file())
                if not files:
                    raise ValueError(
                        f"folder {path} has no *.txt files; expected a folder of UTF-8 text files"
                    )
                out.extend(files)
            elif path.is_file():
                out.append(path)
            else:
                raise FileNotFoundError(
                    f"training input {path} does not exist (expected a text file or a folder)"
                )
        else:
            raise TypeError(
                "training inputs must be str (text) or pathlib.Path (files/folders), "
                f"got {type(src).__name__}"
            )
    _check_path_strs([src for src in out if isinstance(src, str)])
    return out


def _path_kind(text: str) -> str | None:
    """"file" or "folder" when the str `text` is the name of an existing one, else None.
    Only short one-line strings can be paths, so real corpora cost no file-system call."""
    if len(text) > 4096 or "\n" in text or "\0" in text or not text.strip():
        return None
    try:
        return "folder" if os.path.isdir(text) else "file" if os.path.isfile(text) else None
    except (OSError, ValueError):          # not a name the OS accepts: it is text
        return None


def _check_path_strs(texts: list[str]) -> None:
    """str inputs that name existing files or folders were almost surely meant as paths.

    `train("data/input.txt", ...)` would otherwise learn merges from the 14 characters of the
    path and return a useless tokenizer without a word. When every str input is such a name
    this raises (no one means a corpus made only of path names; the fix, pathlib.Path, is one
    call away, and a warning would scroll past a long training run). When real text is mixed
    in, one short document could be an accidental match ("data"), so it only warns.
    """
    named = [(t, kind) for t in texts if (kind := _path_kind(t))]
    if not named:
        return
    t, kind = named[0]
    msg = (f"training input {t!r} is a str that names an existing {kind}"
           + (f" (and {len(named) - 1} more)" if len(named) > 1 else "")
           + f"; str items are training text, so this trains on the path's {len(t)} characters. "
           f"Pass pathlib.Path({t!r}) to train on the {kind}'s contents")
    if len(named) == len(texts):
        raise ValueError(msg)
    warnings.warn(msg, stacklevel=4)


def source_size(source) -> int:
    """Size in characters (texts) or bytes (files); used for progress and the parallel switch."""
    return len(source) if isinstance(source, str) else os.path.getsize(source)


def replace_lone_surrogates(text: str) -> str:
    """`text` with each lone surrogate (U+D800..U+DFFF alone: not a character, and not encodable
    as UTF-8) replaced by U+FFFD, as encoding does too (and tiktoken), so training and encoding
    see the same characters."""
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def iter_source_blocks(sources: list, specials: frozenset[str], block_chars: int) -> Iterator[str]:
    """All blocks of all sources, in order. Blocks never span two sources."""
    for src in sources:
        if isinstance(src, str):        # files are decoded from UTF-8: they cannot hold surrogates
            yield from (replace_lone_surrogates(b) for b in iter_blocks([src], specials, block_chars))
        else:
            yield from iter_file_blocks(src, specials, block_chars)


def _count_worker(pattern: str, specials: frozenset[str], blocks, results) -> None:
    """Worker process: count every block from the `blocks` queue until None, then send the total.

    Each worker keeps one Counter for all its blocks and sends it once at the end, so the
    parent merges one Counter per worker instead of one per block.
    """
    try:
        compiled, special_re = compile_pattern(pattern), special_token_regex(specials)
        counts: Counter = Counter()
        while (block := blocks.get()) is not None:
            count_block(block, compiled, special_re, counts)
        results.put(counts)
    except BaseException as err:  # report instead of leaving the parent waiting forever
        results.put(RuntimeError(f"chunk counting failed in a worker process: {err!r}"))


def count_block(block: str, pattern, special_re, counts: Counter | None = None) -> Counter:
    """Add the chunk frequencies of one block to `counts` (a new Counter if None) and return it.

    Special tokens split the block and are dropped.
    """
    if counts is None:
        counts = Counter()
    parts = special_re.split(block) if special_re is not None else (block,)
    for part in parts:
        if part:
            counts.update(pattern.findall(part))
    return counts


def count_chunks(
    sources: list,
    pattern: str,
    specials: frozenset[str] = frozenset(),
    processes: int | None = None,
    block_chars: int = DEFAULT_BLOCK_CHARS,
    verbose: bool = False,
) -> Counter:
    """Return a Counter of chunk -> frequency over all `sources` (texts and paths).

    `processes=None` uses every CPU when the input is large enough to pay for a pool, else 1.
    """
    total = sum(source_size(s) for s in sources)
    if processes is None:
        processes = (os.cpu_count() or 1) if total >= PARALLEL_MIN_CHARS else 1
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    compiled = compile_pattern(pattern)
    special_re = special_token_regex(specials)
    blocks = iter_source_blocks(sources, specials, block_chars)
    counts: Counter = Counter()
    bar = Progress(total, "counting chunks", enabled=verbose)
    if processes == 1:
        for block in blocks:
            count_block(block, compiled, special_re, counts)
            bar.update(len(block))
    else:
        _count_parallel(blocks, pattern, specials, processes, counts, bar)
    bar.close()
    return counts


def _count_parallel(
    blocks: Iterator[str],
    pattern: str,
    specials: frozenset[str],
    processes: int,
    counts: Counter,
    bar: Progress,
) -> None:
    """Hand blocks to `processes` worker processes through a bounded queue and merge their totals."""
    # fork starts workers in milliseconds; elsewhere the platform default works, only slower.
    has_fork = "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if has_fork else None)
    todo = ctx.Queue(maxsize=2 * processes)  # at most two blocks per worker wait in memory
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_count_worker, args=(pattern, specials, todo, results), daemon=True)
        for _ in range(processes)
    ]
    for w in workers:
        w.start()

    def check_workers() -> None:
        # A worker that failed has put its error in `results`; one that was killed has not.
        try:
            part = results.get_nowait()
        except queue.Empty:
            part = None
        if isinstance(part, BaseException):
            raise part
        if part is not None:
            results_seen.append(part)
        if any(not w.is_alive() and w.exitcode not in (0, None) for w in workers):
            raise RuntimeError("a chunk-counting worker process died (out of memory?)")

    results_seen: list[Counter] = []
    try:
        for block in chain(blocks, repeat(None, processes)):  # one None tells one worker to stop
            while True:
                try:
                    todo.put(block, timeout=1.0)
                    break
                except queue.Full:
                    check_workers()
            if block is not None:
                bar.update(len(block))
        while len(results_seen) < processes:
            try:
                part = results.get(timeout=1.0)
            except queue.Empty:
                check_workers()
                continue
            if isinstance(part, BaseException):
                raise part
            results_seen.append(part)
        for part in results_seen:
            counts.update(part)
        for w in workers:
            w.join()
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
