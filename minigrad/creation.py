"""Tensor creation: tensor, zeros, ones, full, arange, randn, rand, randint, *_like, from_numpy."""
from __future__ import annotations

import math

import numpy as np

from . import dtypes
from .backends import get_backend
from .random import _rng
from .tensor_shape import parse_size
from .tensor import Tensor, get_default_device, get_default_dtype


def _make(arr_fn, shape, dtype, device, requires_grad) -> Tensor:
    backend = get_backend(device if device is not None else get_default_device())
    dtype = dtypes.canonical(dtype) if dtype is not None else get_default_dtype()
    t = Tensor._wrap(arr_fn(backend, shape, dtype), backend)
    return t.requires_grad_(True) if requires_grad else t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor copied from a list, scalar, NumPy array or Tensor."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(a: np.ndarray, device=None) -> Tensor:
    """A tensor with a's values and dtype (float64 stays float64)."""
    return Tensor(np.asarray(a), dtype=None, device=device)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(lambda b, s, d: b.full(s, 0, d), parse_size(size, "zeros"), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(lambda b, s, d: b.full(s, 1, d), parse_size(size, "ones"), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(lambda b, s, d: b.full(s, fill_value, d), parse_size((size,), "full"), dtype, device,
                 requires_grad)


def empty(*size, dtype=None, device=None) -> Tensor:
    return _make(lambda b, s, d: b.empty(s, d), parse_size(size, "empty"), dtype, device, False)


def arange(start, end=None, step=1, dtype=None, device=None) -> Tensor:
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(v):
            raise ValueError(f"arange: {name} must be a finite number, got {v!r}")
    if step == 0:
        raise ValueError("arange step must be non-zero")
    if (end - start) * step < 0:          # torch refuses what NumPy would make empty
        raise ValueError(f"arange: the range {start} -> {end} goes against the sign of step {step}")
    is_int = all(isinstance(v, int) for v in (start, end, step))
    if dtype is None:
        dtype = "int64" if is_int else get_default_dtype()
    n = max(0, math.ceil((end - start) / step))
    if is_int:
        return _make(lambda b, s, d: b.arange(start, end, step, d), (n,), dtype, device, False)
    return Tensor(np.arange(n) * step + start, dtype=dtype, device=device)


def _random(what, draw, size, generator, dtype, device, requires_grad) -> Tensor:
    shape = parse_size(size, what)
    dtype = dtypes.canonical(dtype) if dtype is not None else get_default_dtype()
    arr = draw(_rng(generator), shape)
    return Tensor(arr, dtype=dtype, device=device, requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples, drawn on the host (identical across backends for one seed)."""
    return _random("randn", lambda r, s: r.standard_normal(s), size, generator, dtype, device, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _random("rand", lambda r, s: r.random(s), size, generator, dtype, device, requires_grad)


def randint(low, high, size, generator=None, device=None) -> Tensor:
    arr = _rng(generator).integers(low, high, size=parse_size((size,), "randint"))
    return Tensor(arr.astype(np.int64), dtype="int64", device=device)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=t.device)


def randn_like(t: Tensor, generator=None) -> Tensor:
    return randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
