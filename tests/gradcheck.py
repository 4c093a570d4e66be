"""Finite-difference gradient checking for minigrad ops (trust level 1 in docs/DESIGN.md).

For f(x_1, ..., x_n) and a fixed random cotangent c (one per output), the scalar
L = sum_k sum(c_k * f(x)_k) has gradient dL/dx_i = the vector-Jacobian product autograd
computes from `out.backward(c)`. We compare it, entry by entry, with float64 central
differences  (L(x + h e_j) - L(x - h e_j)) / 2h  over *every* entry of every input, and
report the worst one.

Inputs are given as float64 NumPy arrays. Each may be wrapped in a `layout` that makes the
tensor the op sees non-contiguous while the perturbed variable stays the array itself:

    "contiguous"  the array itself (a leaf tensor)
    "transposed"  a leaf holding arr with its last two dims swapped, then `.transpose(-2, -1)`
    "strided"     a leaf twice as large in every dim holding arr at even positions, then
                  sliced with step 2 (the leaf's other entries must get zero gradient)

So the gradient also flows back through a Permute / Slice view, as it would in a model.

    from gradcheck import gradcheck
    gradcheck(lambda a, b: a * b, [np.random.randn(2, 3), np.random.randn(3)])

Not for integer inputs (pass those through a closure) and not at kinks (relu at 0, ties in
max, clamp at the bounds): choose inputs away from them.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import minigrad
from minigrad import Tensor

LAYOUTS = ("contiguous", "transposed", "strided")


class Spec:
    """An input array plus the layout the op receives it in (see the module docstring)."""

    def __init__(self, array, layout: str = "contiguous"):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.array = np.array(array, dtype=np.float64)
        if layout == "transposed" and self.array.ndim < 2:
            raise ValueError("the 'transposed' layout needs an input with at least 2 dims")
        self.layout = layout

    def make(self, device: str, requires_grad: bool):
        """-> (leaf tensor, the tensor the op sees)."""
        a = self.array
        if self.layout == "contiguous":
            leaf = Tensor(a, dtype="float64", device=device, requires_grad=requires_grad)
            return leaf, leaf
        if self.layout == "transposed":
            leaf = Tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2)), dtype="float64",
                          device=device, requires_grad=requires_grad)
            return leaf, leaf.transpose(-2, -1)
        big = np.full(tuple(2 * s for s in a.shape), 1234.5)   # junk between the real entries
        big[tuple(slice(None, None, 2) for _ in a.shape)] = a
        leaf = Tensor(big, dtype="float64", device=device, requires_grad=requires_grad)
        view = leaf[tuple(slice(None, None, 2) for _ in a.shape)] if a.ndim else leaf
        return leaf, view

    def grad_of(self, leaf: Tensor) -> np.ndarray:
        """The gradient w.r.t. self.array, read from the leaf; checks the 'strided' gaps are 0."""
        if leaf.grad is None:
            return np.zeros_like(self.array)
        g = leaf.grad.numpy().astype(np.float64)
        assert g.shape == leaf.shape, f"grad shape {g.shape} != leaf shape {leaf.shape}"
        if self.layout == "transposed":
            return np.swapaxes(g, -1, -2)
        if self.layout == "strided" and self.array.ndim:
            sel = tuple(slice(None, None, 2) for _ in self.array.shape)
            gaps = g.copy()
            gaps[sel] = 0
            assert not np.any(gaps), "gradient leaked into entries the strided view skips"
            return g[sel]
        return g


def _as_spec(x) -> Spec:
    return x if isinstance(x, Spec) else Spec(x)


def _outputs(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def gradcheck(fn: Callable, inputs: Sequence, *, eps: float = 1e-6, atol: float = 1e-6,
              rtol: float = 1e-5, seed: int = 0, device: str = "cpu") -> float:
    """Assert that autograd's gradient of sum(c * fn(*inputs)) matches central differences.

    fn: takes one Tensor per input, returns a Tensor or a list/tuple of Tensors (float).
    inputs: float64 arrays or `Spec`s (array + layout). Returns the worst absolute error.
    Every entry of every input is perturbed, so keep inputs to a few dozen entries.
    """
    specs = [_as_spec(x) for x in inputs]
    rng = np.random.default_rng(seed)

    # autograd side
    made = [s.make(device, True) for s in specs]
    outs = _outputs(fn(*[view for _, view in made]))
    assert outs, "fn returned no outputs"
    cots = []
    for o in outs:
        assert isinstance(o, Tensor), f"fn must return Tensors, got {type(o).__name__}"
        assert o.dtype == "float64", f"expected a float64 output, got {o.dtype}"
        cots.append(rng.standard_normal(o.shape))
    if len(outs) == 1:
        if outs[0].requires_grad:
            outs[0].backward(Tensor(cots[0], dtype="float64", device=device))
    else:
        loss = None
        for o, c in zip(outs, cots):
            if o.requires_grad:
                term = (o * Tensor(c, dtype="float64", device=device)).sum()
                loss = term if loss is None else loss + term
        if loss is not None:
            loss.backward()
    analytic = [s.grad_of(leaf) for s, (leaf, _) in zip(specs, made)]

    # finite-difference side: L as a plain float, computed without a graph
    def L() -> float:
        with minigrad.no_grad():
            res = _outputs(fn(*[s.make(device, False)[1] for s in specs]))
        return float(sum(np.sum(c * r.numpy().astype(np.float64)) for r, c in zip(res, cots)))

    worst_err, worst_fail = 0.0, None     # largest |error|; the failing entry that is worst
    for i, s in enumerate(specs):
        flat = s.array.reshape(-1)        # a view: writes go into s.array
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            lp = L()
            flat[j] = orig - eps
            lm = L()
            flat[j] = orig
            numeric = (lp - lm) / (2 * eps)
            got = float(analytic[i].reshape(-1)[j])
            err = abs(got - numeric) if np.isfinite(got) else np.inf
            worst_err = max(worst_err, err)
            excess = err - (atol + rtol * abs(numeric))
            if not excess <= 0 and (worst_fail is None or excess > worst_fail[0]):
                worst_fail = (excess, i, np.unravel_index(j, s.array.shape), got, numeric, err)
    if worst_fail is not None:
        _, i, idx, got, numeric, err = worst_fail
        raise AssertionError(
            f"gradient mismatch: input {i} (shape {specs[i].array.shape}, layout "
            f"{specs[i].layout}) entry {tuple(int(k) for k in idx)}: autograd {got!r} vs "
            f"finite differences {numeric!r} (abs err {err:.3g}, atol {atol}, rtol {rtol})")
    return worst_err
