"""Where the tokenizer tests find their text: the shared data folder (found by conftest's
`shared_data_dir`), a skip when a file is absent, and a fallback text so that a fresh clone still
exercises everything that does not need GPT-2's files."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_data_dir  # tests/ is on sys.path

EOT = "<|endoftext|>"


def need(name: str) -> Path:
    """The shared data file or folder `name`, or skip the test when it is absent."""
    path = shared_data_dir() / name
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (set MINIGRAD_DATA to the folder holding it)")
    return path


# Used when the shared data is absent, so that a fresh clone still exercises everything that does
# not need GPT-2's files: varied words, digits, punctuation, newlines and non-ASCII text.
FALLBACK_TEXT = "".join(
    f"Line {i}: the {w} of {v} isn't what it'd seem, said {n}; {i * 37 % 1000} naïve cafés — 東京 😀!\n"
    for i, (w, v, n) in enumerate(
        zip(["king", "queen", "house", "river", "stone", "night"] * 200,
            ["morning", "evening", "battle", "garden", "letters"] * 240,
            ["ROMEO", "Juliet", "Pierre", "Natasha"] * 300)
    )
)


def sample_text(chars: int) -> str:
    """The start of Tiny Shakespeare, or FALLBACK_TEXT when the shared data is absent."""
    path = shared_data_dir() / "tinyshakespeare.txt"
    return path.read_text(encoding="utf-8")[:chars] if path.exists() else FALLBACK_TEXT[:chars]


def corpus_slices() -> list[tuple[str, str]]:
    """(name, text) for a real chunk of every shared corpus present."""
    out = []
    for name in ["tinyshakespeare.txt", "tinystories_sample.txt"]:
        path = shared_data_dir() / name
        if path.exists():
            out.append((name, path.read_text(encoding="utf-8")[:150_000]))
    for path in sorted((shared_data_dir() / "books").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        # Two slices per book: its start and its middle.
        out.append((path.name, text[:100_000] + text[len(text) // 2 : len(text) // 2 + 100_000]))
    return out
