"""Command line: ``python -m minigrad.tokenizer {train,encode,decode,inspect} ...``.

Thin wrappers over `BPETokenizer`, so that everything the CLI does can also be done (and is
tested) through the API. `--model` accepts our model file or a folder holding GPT-2's
``vocab.json`` + ``merges.txt``. Ids are read and written as whitespace-separated integers.
This module does no tokenisation of its own.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .bpe import BPETokenizer
from .io import ModelFileError, render_token


def load_model(spec: str) -> BPETokenizer:
    """Our model file, or a folder with GPT-2's vocab.json + merges.txt."""
    path = Path(spec)
    if path.is_dir():
        vocab_json, merges_txt = path / "vocab.json", path / "merges.txt"
        if not (vocab_json.is_file() and merges_txt.is_file()):
            raise SystemExit(f"error: folder {path} has no vocab.json + merges.txt (expected GPT-2's files)")
        return BPETokenizer.from_gpt2_files(vocab_json, merges_txt)
    if not path.is_file():
        raise SystemExit(f"error: model {path} does not exist (expected a .model file or a GPT-2 folder)")
    return BPETokenizer.load(path)


def _cmd_train(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    tok = BPETokenizer.train(
        [Path(p) for p in args.inputs],
        args.vocab_size,
        special_tokens=args.special,
        pattern=args.pattern,
        processes=args.processes,
        verbose=not args.quiet,
    )
    vocab_path = tok.save(args.output)
    print(
        f"trained {tok.n_vocab} tokens ({len(tok.merges)} merges, {len(tok.special_tokens)} special) "
        f"in {time.perf_counter() - start:.1f}s -> {args.output} (+ {vocab_path})",
        file=sys.stderr,
    )


def _read_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    if args.input is not None:
        return Path(args.input).read_text(encoding="utf-8")
    return sys.stdin.read()


def _cmd_encode(args: argparse.Namespace) -> None:
    tok = load_model(args.model)
    allowed = "all" if args.allowed_special == ["all"] else set(args.allowed_special or ())
    if args.input is not None and args.text is None:
        ids = tok.encode_file(args.input, allowed_special=allowed)  # streamed: files of any size
    else:
        ids = tok.encode(_read_text(args), allowed_special=allowed)
    out = sys.stdout
    line: list[str] = []
    for i in ids:
        line.append(str(i))
        if len(line) == 4096:
            out.write(" ".join(line) + " ")
            line = []
    out.write(" ".join(line) + "\n")


def _cmd_decode(args: argparse.Namespace) -> None:
    tok = load_model(args.model)
    if args.ids is not None:
        raw = args.ids
    else:
        raw = Path(args.input).read_text() if args.input else sys.stdin.read()
    try:
        ids = [int(x) for x in raw.split()]
    except ValueError as err:
        raise SystemExit(f"error: expected whitespace-separated integer ids: {err}") from None
    sys.stdout.write(tok.decode(ids))


def _cmd_inspect(args: argparse.Namespace) -> None:
    tok = load_model(args.model)
    print(f"tokens:   {tok.n_vocab} (256 bytes, {len(tok.merges)} merges, {len(tok.special_tokens)} special)")
    print(f"pattern:  {tok.pattern}")
    print(f"specials: {tok.special_tokens}")
    ranks = tok.mergeable_ranks
    for title, part in (("first merges", tok.merges[: args.top]), ("last merges", tok.merges[-args.top :])):
        print(f"{title}:")
        for a, b in part:
            print(f"  {ranks[a + b]:>7} [{render_token(a)}] + [{render_token(b)}] -> [{render_token(a + b)}]")
    if args.text is not None:
        ids = tok.encode(args.text, allowed_special="all")
        print(f"'{args.text}' -> {len(ids)} tokens:")
        print("  " + " ".join(f"[{render_token(tok.token_bytes(i))}]" for i in ids))
        print("  " + " ".join(str(i) for i in ids))


MODEL_HELP = "model file, or a folder with GPT-2's vocab.json + merges.txt"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minigrad.tokenizer",
        description="Byte-level BPE tokenizer: train, encode, decode, inspect. "
        "Ids equal tiktoken's for the same ranks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="learn a tokenizer from text files or folders", description=(
        "Learn merges from UTF-8 text files (folders: every *.txt inside). Writes OUTPUT (the model file) "
        "and OUTPUT with suffix .vocab (human-readable). Example: "
        "python -m minigrad.tokenizer train ../shared/data/books "
        "--vocab-size 8192 --special '<|endoftext|>' --output books.model"))
    p.add_argument("inputs", nargs="+", help="text files and/or folders of *.txt files")
    p.add_argument("--vocab-size", type=int, required=True,
                   help="total tokens: 256 bytes + merges + special tokens")
    p.add_argument("--special", action="append", default=[], metavar="TOKEN",
                   help="a special token such as '<|endoftext|>' (repeatable); "
                   "it splits the text and is never merged")
    p.add_argument("--pattern", default="gpt4", help="split pattern: gpt2, gpt4 (default) or a custom regex")
    p.add_argument("--processes", type=int, default=None,
                   help="processes for counting chunks (default: all CPUs)")
    p.add_argument("--output", required=True, help="model file to write, e.g. books.model")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("encode", help="text -> ids", description=(
        "Print the token ids of --text, --input FILE (streamed) or standard input, separated by spaces."))
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--text", help="the text to encode")
    p.add_argument("--input", help="a UTF-8 file to encode")
    p.add_argument("--allowed-special", nargs="*", metavar="TOKEN",
                   help="special tokens to encode as such ('all' for every one); "
                   "others in the text are an error")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("decode", help="ids -> text", description=(
        "Print the text of whitespace-separated ids from --ids, --input FILE or standard input."))
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--ids", help="ids such as '15496 995'")
    p.add_argument("--input", help="a file of ids")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("inspect", help="summary of a tokenizer", description=(
        "Show the size, pattern, special tokens, first and last merges, and optionally how --text splits."))
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--top", type=int, default=10, help="how many first/last merges to show")
    p.add_argument("--text", help="also show the tokens of this text")
    p.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, ModelFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
