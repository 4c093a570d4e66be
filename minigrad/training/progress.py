"""The training progress line: one self-rewriting line on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional


class ProgressBar:
    """One self-rewriting line on a terminal (a plain line every `every` iterations otherwise)
    with the loss, the learning rate, tokens/s, the MFU (when known), ms per iteration and the
    time left (ETA, at that pace), all measured since the last `restart()` (each eval restarts
    it: evals are not training time, so the ETA leaves them out)."""

    def __init__(self, total: int, live: bool, every: int, tokens_per_iter: int):
        self.total, self.live, self.every, self.tokens_per_iter = total, live, max(1, every), tokens_per_iter
        self.restart()

    def restart(self) -> None:
        self.t_last, self.iters = time.time(), 0

    def update(self, it: int, loss: float, lr: float,
               mfu: Callable[[float], Optional[float]] = lambda tokens_per_s: None) -> float:
        """Count one more iteration and show iteration `it`; returns the tokens/s since restart()."""
        self.iters += 1
        dt = time.time() - self.t_last
        tps = self.iters * self.tokens_per_iter / dt if dt > 0 else 0.0
        m = mfu(tps)
        eta = (self.total - it) * dt / self.iters                  # at the pace since restart()
        text = (f"loss {loss:.4f} | lr {lr:.2e} | {tps:,.0f} tok/s" + (f" | mfu {100 * m:.1f}%" if m else "")
                + f" | {1000 * dt / self.iters:.0f} ms/iter | ETA {duration(eta)}")
        if self.live:
            frac = it / max(1, self.total)
            bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
            sys.stderr.write(f"\r{it:>6}/{self.total} [{bar}] {text}  ")
            sys.stderr.flush()
        elif it % self.every == 0:
            print(f"iter {it}: {text}")
        return tps

    def clear(self) -> None:
        if self.live:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()


def duration(seconds: float) -> str:
    """A short human duration: 45s, 3m12s, 2h05m."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
