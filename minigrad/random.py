"""Random numbers: all drawn on the host from a NumPy generator, then copied to the device.

Drawing on the host means the NumPy and Triton backends start from *identical* weights for
the same seed, which is what lets the tests compare them number for number. Dropout is the
exception: its mask is drawn by the backend (in-kernel on the GPU) from a seed taken here.
"""
from __future__ import annotations

import numpy as np


class Generator:
    """A seedable source of random numbers (torch.Generator's role)."""

    def __init__(self, seed: int | None = None):
        self.manual_seed(seed)

    def manual_seed(self, seed: int | None) -> "Generator":
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        return self

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def integers(self, low: int, high: int, size=None):
        return self.rng.integers(low, high, size=size)


_default = Generator(0)


def default_generator() -> Generator:
    return _default


def manual_seed(seed: int) -> Generator:
    """Seed minigrad's global generator (parameter init, randn/rand, dropout seeds)."""
    return _default.manual_seed(seed)


def get_rng_state() -> dict:
    return _default.get_state()


def set_rng_state(state: dict) -> None:
    _default.set_state(state)


def _rng(generator) -> np.random.Generator:
    return (generator or _default).rng
