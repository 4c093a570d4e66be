"""Parameter initialisation in place, torch.nn.init's names: normal_, uniform_, zeros_, ...

Every random value is drawn on the host from minigrad's NumPy generator (minigrad.random)
and then copied into the tensor's array, so the NumPy and Triton backends start from
*identical* weights after the same `minigrad.manual_seed`. Values are drawn in float64 and
rounded once to the tensor's dtype (bfloat16 on the GPU goes through float32).

Not here: orthogonal_, sparse_, dirac_ and friends (no model here uses them).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import dtypes
from ..random import Generator, _rng
from ..tensor import Tensor


def _fill(t: Tensor, values) -> Tensor:
    """Write host values (broadcast to t's shape) into t's array in place."""
    if not isinstance(t, Tensor):
        raise TypeError(f"init functions take a Tensor, got {type(t).__name__}")
    arr = np.broadcast_to(np.asarray(values), t.shape)
    host_dtype = "float64" if t.dtype == "float64" else (
        "float32" if dtypes.is_floating(t.dtype) else t.dtype)
    b = t.backend
    b.copy_(t.data, b.from_numpy(np.array(arr, order="C"), host_dtype))
    return t


def _check_float(t: Tensor, what: str) -> None:
    if not dtypes.is_floating(t.dtype):
        raise TypeError(f"{what} needs a floating point tensor, got {t.dtype}")


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator: Optional[Generator] = None) -> Tensor:
    """Fill with U(a, b)."""
    _check_float(t, "uniform_")
    return _fill(t, _rng(generator).uniform(a, b, size=t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: Optional[Generator] = None) -> Tensor:
    """Fill with N(mean, std^2)."""
    _check_float(t, "normal_")
    return _fill(t, _rng(generator).normal(mean, std, size=t.shape))


def trunc_normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: Optional[Generator] = None) -> Tensor:
    """N(mean, std^2) restricted to [a, b] (resampling the values that fall outside)."""
    _check_float(t, "trunc_normal_")
    rng = _rng(generator)
    vals = rng.normal(mean, std, size=t.shape)
    bad = (vals < a) | (vals > b)
    while bad.any():
        vals[bad] = rng.normal(mean, std, size=int(bad.sum()))
        bad = (vals < a) | (vals > b)
    return _fill(t, vals)


def constant_(t: Tensor, val: float) -> Tensor:
    return _fill(t, val)


def zeros_(t: Tensor) -> Tensor:
    return _fill(t, 0)


def ones_(t: Tensor) -> Tensor:
    return _fill(t, 1)


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """torch.nn.init.calculate_gain for the common cases."""
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(t: Tensor) -> tuple[int, int]:
    """fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (weight is (out, in, ...))."""
    if t.ndim < 2:
        raise ValueError(f"fan in/out need a tensor with at least 2 dims, got shape {t.shape}")
    receptive = math.prod(t.shape[2:])
    return t.shape[1] * receptive, t.shape[0] * receptive


def xavier_uniform_(t: Tensor, gain: float = 1.0, generator: Optional[Generator] = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, generator)


def xavier_normal_(t: Tensor, gain: float = 1.0, generator: Optional[Generator] = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _fan(t: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: Optional[Generator] = None) -> Tensor:
    """U(-bound, bound), bound = gain * sqrt(3 / fan). With a=sqrt(5) (torch's Linear default)
    this is U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(t, mode))
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: Optional[Generator] = None) -> Tensor:
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode))
    return normal_(t, 0.0, std, generator)


__all__ = ["uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "calculate_gain",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]
