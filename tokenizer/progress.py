"""A tiny text progress bar on stderr, so training does not need tqdm.

Redraws at most ten times a second on one line (carriage return), shows done/total, the
percentage, the elapsed time and a rate, and prints nothing at all when disabled (tests,
`verbose=False`). It does not estimate remaining time beyond the simple rate.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Progress of `total` units of work; call `update(n)` as work is done and `close()` at the end."""

    def __init__(
        self, total: int, desc: str, enabled: bool = True, unit: str = "", stream: TextIO | None = None
    ):
        self.total = max(int(total), 0)
        self.desc = desc
        self.enabled = enabled
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self._start
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        width = 30
        filled = int(frac * width)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        line = (
            f"\r{self.desc}: [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}% "
            f"{self.done}/{self.total}{self.unit} {elapsed:6.1f}s {rate:,.0f}{self.unit}/s"
        )
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
