"""float32 -> bfloat16 in kernels/helpers.py `_to_bf16_rtne`: NaN stays NaN, inf stays inf, finite
values round to nearest even (also when they round up to inf).

Two views of the same integer arithmetic:
- `_sim` repeats the kernel's lines in NumPy uint32 (wrapping like the GPU), so every bit pattern
  that matters, and a million random ones, is checked without launching anything;
- the real kernel runs (interpreter in CI, GPU when present) on the same patterns.
The oracle is torch's own float32 -> bfloat16 conversion for finite values and inf; for NaN torch
returns one canonical NaN, so there the test asks for a quiet NaN with the input's sign instead.
The old formula sent 0x7FFFFFFF to -0.0 and 0x7F800001 to inf: the kernel test fails on it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import torch

from kernel_testing import DEVICE  # first: it sets up the interpreter
from minigrad.kernels import adamw as adamw_mod
from minigrad.kernels import copy as copy_mod

U32 = np.uint32


def _sim(bits: np.ndarray) -> np.ndarray:
    """NumPy mirror of `_to_bf16_rtne`, line by line: uint32 float bits -> uint16 bf16 bits."""
    bits = bits.astype(U32)
    rounded = bits + U32(0x7FFF) + ((bits >> U32(16)) & U32(1))
    is_nan = (bits & U32(0x7FFFFFFF)) > U32(0x7F800000)
    bits = np.where(is_nan, bits | U32(0x00400000), rounded)
    return (bits >> U32(16)).astype(np.uint16)


# (float32 bits, expected bf16 bits or None for "a quiet NaN with this sign"), by hand.
CASES = [
    (0x7FFFFFFF, None),      # canonical GPU NaN: the old formula carried into the sign -> -0.0
    (0xFFFFFFFF, None),      # negative NaN: the old formula wrapped past 2**32 -> +0.0
    (0x7FC00000, None),      # the interpreter's / NumPy's quiet NaN
    (0xFFC00000, None),
    (0x7F800001, None),      # signalling NaN, payload only in the dropped bits: the old one gave inf
    (0xFF800001, None),
    (0x7F80FFFF, None),      # payload in the low half, would round up into the kept payload
    (0x7FBFFFFF, None),      # largest signalling NaN
    (0x7F800000, 0x7F80),    # +inf
    (0xFF800000, 0xFF80),    # -inf
    (0x7F7FFFFF, 0x7F80),    # max finite float32 rounds up to bf16 inf
    (0xFF7FFFFF, 0xFF80),
    (0x7F7F8000, 0x7F80),    # tie above the largest bf16 (odd 0x7F7F): to even = inf
    (0x7F7F7FFF, 0x7F7F),    # just below the tie: largest finite bf16
    (0x7F7F0000, 0x7F7F),    # largest finite bf16 itself
    (0x3F808000, 0x3F80),    # 1.00390625: tie, kept part even -> stays
    (0x3F818000, 0x3F82),    # tie, kept part odd -> rounds up to even
    (0x3F808001, 0x3F81),    # just above the tie
    (0x3F807FFF, 0x3F80),    # just below the tie
    (0xBF818000, 0xBF82),    # negative ties round the magnitude the same way
    (0x00000000, 0x0000),    # +0
    (0x80000000, 0x8000),    # -0
    (0x00000001, 0x0000),    # smallest subnormal rounds to 0
    (0x00008000, 0x0000),    # subnormal tie, even -> 0
    (0x00018000, 0x0002),    # subnormal tie, odd -> up
    (0x80008001, 0x8001),    # negative subnormal just above the tie
    (0x007FFFFF, 0x0080),    # largest subnormal rounds up to the smallest normal
    (0x00800000, 0x0080),    # smallest normal
]
BITS = np.array([c[0] for c in CASES], dtype=U32)


def _check(bits_in: np.ndarray, bits_out: np.ndarray) -> None:
    """Compare bf16 results with the oracle: torch for non-NaN, quiet NaN with the sign for NaN."""
    bits_out = bits_out.astype(np.uint16)
    x = torch.from_numpy(bits_in.view(np.float32).copy())
    nan = np.isnan(bits_in.view(np.float32))
    ref = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bits_out[~nan], ref[~nan], err_msg="finite/inf bits differ from torch")
    got_nan = bits_out[nan]
    assert ((got_nan & 0x7F80) == 0x7F80).all() and ((got_nan & 0x0040) != 0).all(), \
        f"NaN inputs must give quiet NaNs, got {[hex(b) for b in got_nan]}"
    np.testing.assert_array_equal(got_nan >> 15, bits_in[nan] >> 31, err_msg="NaN sign not kept")


def test_table_by_hand():
    """The hand-derived expectations in CASES hold for the simulation (and agree with torch)."""
    out = _sim(BITS)
    for (b, want), got in zip(CASES, out):
        if want is None:
            assert (got & 0x7F80) == 0x7F80 and (got & 0x7F) != 0, f"{b:#010x} -> {got:#06x} is not NaN"
            assert got >> 15 == b >> 31, f"{b:#010x} -> {got:#06x} lost its sign"
        else:
            assert got == want, f"{b:#010x} -> {got:#06x}, expected {want:#06x}"
    _check(BITS, out)


def test_simulation_random_bits_match_torch():
    """A million random float32 bit patterns (every exponent, NaNs included) against the oracle."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2 ** 32, size=1_000_000, dtype=np.uint64).astype(U32)
    _check(bits, _sim(bits))


def test_kernel_on_every_pattern():
    """The real kernel (copy with a cast) gives the same bits as the simulation and the oracle."""
    x = torch.from_numpy(BITS.view(np.int32).copy()).view(torch.float32).to(DEVICE)
    out = copy_mod.copy(x, torch.bfloat16).cpu().view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(out, _sim(BITS))
    _check(BITS, out)


def test_adamw_bf16_param_rounds_to_nearest_even():
    """The AdamW kernel's bf16 parameter store goes through the same rounding: param is exactly
    master.to(bfloat16) (before, the interpreter truncated), and a NaN master gives a NaN param."""
    torch.manual_seed(0)
    master = torch.randn(64, device=DEVICE)
    master[3] = float("nan")
    p = master.to(torch.bfloat16)
    grad = torch.zeros(64, device=DEVICE, dtype=torch.bfloat16)
    m, v = torch.zeros_like(master), torch.zeros_like(master)
    adamw_mod.adamw_step_(p, grad, m, v, 1e-2, 0.9, 0.95, 1e-8, 0.1, 1, master=master)
    assert torch.isnan(p[3]) and torch.isnan(master[3])
    keep = ~torch.isnan(master)
    assert torch.equal(p[keep], master[keep].to(torch.bfloat16))


def test_every_kernel_store_converts_through_cast_value():
    """No tl.store in kernels/ converts its value with a bare `.to(...)`: 16-bit stores must go
    through `_cast_value` (and so `_to_bf16_rtne`), or the interpreter truncates and NaN handling
    depends on who wrote the kernel."""
    offenders = []
    for path in sorted(Path(copy_mod.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "store" and len(node.args) >= 2):
                value = node.args[1]
                if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                        and value.func.attr == "to"):
                    offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"stores converting with .to(): {offenders}"
