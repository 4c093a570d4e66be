"""The training progress line: one self-rewriting line on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """One self-rewriting line on a terminal; a plain line every `every` iterations otherwise."""

    def __init__(self, total: int, live: bool, every: int):
        self.total, self.live, self.every, self.t0 = total, live, max(1, every), time.time()

    def update(self, it: int, text: str) -> None:
        if self.live:
            frac = it / max(1, self.total)
            bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
            sys.stderr.write(f"\r{it:>6}/{self.total} [{bar}] {text}  ")
            sys.stderr.flush()
        elif it % self.every == 0:
            print(f"iter {it}: {text}")

    def clear(self) -> None:
        if self.live:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()
