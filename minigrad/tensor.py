"""Tensor: an n-d array on a backend, plus what autograd needs (requires_grad, grad, _ctx).

`tensor.data` is the raw backend array (a NumPy array on "cpu", a torch tensor used as GPU
storage on "cuda"), as in micrograd; `tensor.numpy()` copies it to the host. Every method
that computes something is a `Function` from minigrad/ops.py applied here: this
file only handles Python conveniences — broadcasting, dtype promotion, index normalisation,
torch-style signatures — and leaves the math to the ops.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from . import dtypes
from .autograd import backward as _run_backward
from .autograd import is_grad_enabled
from .backends import get_backend, normalize_device
from .dtypes import FLOATS
from .ops import Add, Cast, Clamp, Div, Expand, MatMul, Maximum, Minimum, Mul, Pow, Sub, Unary
from .tensor_shape import (MaxResult, MovementMixin, ReduceMixin, _as_index_tensor,  # noqa: F401
                           _check_index_range, _normalize_axes, broadcast_shapes, cat, dim_of_shaped,
                           normalize_dim, stack, where)

_default_device = "cpu"
_default_dtype = "float32"

def set_default_device(device: str) -> None:
    """Where new tensors go when no device= is given ('cpu' or 'cuda')."""
    global _default_device
    _default_device = normalize_device(device)


def get_default_device() -> str:
    return _default_device


def set_default_dtype(dtype) -> None:
    """dtype of tensors made from Python floats and of randn/zeros/... (float32 or float64)."""
    global _default_dtype
    _default_dtype = dtypes.canonical(dtype)


def get_default_dtype() -> str:
    return _default_dtype


_INT64 = np.iinfo(np.int64)


def _check_fits_int64(data, arr: np.ndarray) -> None:
    """OverflowError (as torch) for an integer outside int64: NumPy would make [2**63] uint64 (which
    wraps to -2**63 in int64) and [2**63, 1] float64 (losing digits)."""
    if arr.dtype.kind == "u":
        if arr.size and int(arr.max()) > _INT64.max:
            raise OverflowError(f"value {int(arr.max())} does not fit int64 (minigrad's integer type)")
        return
    if isinstance(data, np.ndarray):
        return
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool) and not _INT64.min <= v <= _INT64.max:
            raise OverflowError(f"value {v} does not fit int64 (minigrad's integer type)")


def _scalar_promotion(dtype: str, value) -> str:
    """The dtype of `tensor (dtype) op Python scalar`, as torch: a float scalar makes an int or bool
    tensor float32, an int scalar makes a bool tensor int64; otherwise the tensor's dtype wins."""
    if isinstance(value, bool):
        return dtype
    if isinstance(value, float) and dtype not in FLOATS:
        return "float32"
    if isinstance(value, int) and dtype == "bool":
        return "int64"
    return dtype


class Tensor(ReduceMixin, MovementMixin):
    __array_ufunc__ = None          # so np.float64(2) * t calls Tensor.__rmul__

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
        """Make a tensor from a nested list, a scalar, a NumPy array or another Tensor (copied)."""
        backend = get_backend(device if device is not None else
                              (data.device if isinstance(data, Tensor) else _default_device))
        if isinstance(data, Tensor):
            arr = data.numpy()
        else:
            arr = np.asarray(data)
            if arr.dtype.kind in "uOf":          # int64 is the widest integer: never wrap around
                _check_fits_int64(data, arr)
        if dtype is not None:
            dtype = dtypes.canonical(dtype)
        elif arr.dtype.kind == "f":
            dtype = "float64" if (arr.dtype == np.float64 and isinstance(data, np.ndarray)) \
                else _default_dtype
        elif arr.dtype.kind in "iu":
            dtype = "int64"
        elif arr.dtype.kind == "b":
            dtype = "bool"
        else:
            raise TypeError(f"cannot make a tensor from {type(data).__name__} with dtype {arr.dtype}")
        if dtype in ("bfloat16", "float16"):
            self.data = backend.astype(backend.from_numpy(arr, "float32"), dtype)
        else:
            self.data = backend.from_numpy(arr, dtype)
        self.backend = backend
        self.grad: Optional[Tensor] = None
        self._ctx = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, backend, requires_grad: bool = False) -> "Tensor":
        """A Tensor around an existing backend array (no copy). Used by Functions and creation."""
        t = cls.__new__(cls)
        t.data, t.backend, t.grad, t._ctx, t._retains_grad = array, backend, None, None, False
        t.requires_grad = requires_grad
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple:
        return tuple(self.backend.shape(self.data))

    @property
    def dtype(self) -> str:
        return self.backend.dtype(self.data)

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: Optional[int] = None):
        return self.shape if dim is None else self.shape[dim_of_shaped(dim, self.ndim, "size")]

    def numel(self) -> int:
        return int(math.prod(self.shape))

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        extra = f", device='{self.device}'" if self.device != "cpu" else ""
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{extra}{grad})"

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not self.dtype in FLOATS:
            raise RuntimeError(f"only floating point tensors can require gradients; this tensor "
                               f"has dtype {self.dtype}")
        if not requires_grad and not self.is_leaf:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach()")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep .grad on this non-leaf tensor after backward (leaves always keep theirs)."""
        self._retains_grad = True

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into each leaf's .grad. `gradient` is required for a
        non-scalar output (it is the vector in the vector-Jacobian product)."""
        _run_backward(self, gradient, retain_graph=retain_graph)

    def _accumulate_grad(self, g) -> None:
        if self.grad is None:
            self.grad = Tensor._wrap(g, self.backend)
        else:
            self.grad = Tensor._wrap(self.backend.binary("add", self.grad.data, g), self.backend)

    def detach(self) -> "Tensor":
        """Same data (no copy), cut from the graph."""
        return Tensor._wrap(self.data, self.backend)

    def copy_(self, src) -> "Tensor":
        """Write src's values into this tensor in place (torch's copy_): src is broadcast to this
        shape and cast to this dtype. Not recorded by autograd, so only under no_grad() for a
        tensor that requires grad (as an optimizer updates a parameter)."""
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError("copy_ into a tensor that requires grad is not differentiable: "
                               "do it under minigrad.no_grad() (as an optimizer step does)")
        src = src if isinstance(src, Tensor) else Tensor(src, device=self.device)
        if src.device != self.device:
            src = src.to(self.device)
        if src.shape != self.shape:
            src = src.detach()._broadcast_to(broadcast_shapes(src.shape, self.shape))
            if src.shape != self.shape:
                raise ValueError(f"copy_: cannot write shape {src.shape} into {self.shape}")
        self.backend.copy_(self.data, src.data)
        return self

    def zero_grad_(self, set_to_none: bool = True) -> None:
        """Drop .grad (or, with set_to_none=False, make it zeros of the same shape and dtype)."""
        if self.grad is None or set_to_none:
            self.grad = None
        else:
            b = self.grad.backend
            self.grad = Tensor._wrap(b.full(self.grad.shape, 0, self.grad.dtype), b)

    # ------------------------------------------------------------------ host / device
    def numpy(self) -> np.ndarray:
        return self.backend.to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def to(self, device_or_dtype=None, dtype=None) -> "Tensor":
        """`.to("cuda")`, `.to("cpu")`, `.to(minigrad.float64)`, `.to("cuda", "bfloat16")`.

        A device move copies through the host and is not differentiable (like a new leaf that
        keeps requires_grad); a dtype change is differentiable.
        """
        out = self
        target = device_or_dtype
        if target is not None:
            try:
                dev = normalize_device(target)
            except ValueError:
                dev = None
            if dev is None:
                dtype = target
            elif dev != self.device:
                arr = self.backend.to_numpy(self.data)
                nb = get_backend(dev)
                if self.dtype in ("bfloat16", "float16"):
                    new = nb.astype(nb.from_numpy(arr, "float32"), self.dtype)
                else:
                    new = nb.from_numpy(arr, self.dtype)
                out = Tensor._wrap(new, nb, requires_grad=self.requires_grad and self.is_leaf)
        if dtype is not None:
            dtype = dtype if dtype in dtypes.NAMES else dtypes.canonical(dtype)   # e.g. np.float32
            if dtype != out.dtype:
                out = Cast.apply(out, dtype=dtype)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def float(self) -> "Tensor":
        return self.to(dtype="float32")

    def double(self) -> "Tensor":
        return self.to(dtype="float64")

    def long(self) -> "Tensor":
        return self.to(dtype="int64")

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(dtype=other.dtype)

    # ------------------------------------------------------------------ operand plumbing
    def _operand(self, other):
        """Python numbers stay scalars (no tensor made); everything else becomes a Tensor here."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (bool, int, float)):
            return other
        if isinstance(other, np.generic):
            return other.item()
        return Tensor(other, device=self.device)

    def _binary(self, fn, other, reverse: bool = False):
        other = self._operand(other)
        a = self
        if isinstance(other, Tensor):
            if a.dtype != other.dtype:               # mixed dtypes: torch's promotion rules
                dt = dtypes.promote(a.dtype, other.dtype)
                a, other = a._as(dt), other._as(dt)
            shape = broadcast_shapes(a.shape, other.shape)
            a, other = a._broadcast_to(shape), other._broadcast_to(shape)
        else:
            if a.dtype not in FLOATS:                # e.g. an int tensor times 0.5 becomes float32
                a = a._as(_scalar_promotion(a.dtype, other))
            other = float(other) if a.dtype in FLOATS else other
        return fn.apply(other, a) if reverse else fn.apply(a, other)

    def _as(self, dtype: str) -> "Tensor":
        return self if self.dtype == dtype else Cast.apply(self, dtype=dtype)

    def _broadcast_to(self, shape: tuple) -> "Tensor":
        return self if self.shape == tuple(shape) else Expand.apply(self, shape=tuple(shape))

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, o):
        return self._binary(Add, o)

    def __radd__(self, o):
        return self._binary(Add, o, reverse=True)

    def __sub__(self, o):
        return self._binary(Sub, o)

    def __rsub__(self, o):
        return self._binary(Sub, o, reverse=True)

    def __mul__(self, o):
        return self._binary(Mul, o)

    def __rmul__(self, o):
        return self._binary(Mul, o, reverse=True)

    def __truediv__(self, o):
        x = self if self.dtype in FLOATS else self._as(_default_dtype)
        return x._binary(Div, o)

    def __rtruediv__(self, o):
        x = self if self.dtype in FLOATS else self._as(_default_dtype)
        return x._binary(Div, o, reverse=True)

    def __pow__(self, o):
        return self._binary(Pow, o)

    def __rpow__(self, o):
        return self._binary(Pow, o, reverse=True)

    def __neg__(self):
        return Unary.apply(self, op="neg")

    def __matmul__(self, o):
        return self.matmul(o)

    def __rmatmul__(self, o):
        return Tensor(o, device=self.device, dtype=self.dtype).matmul(self)

    def add(self, o):
        return self + o

    def sub(self, o):
        return self - o

    def mul(self, o):
        return self * o

    def div(self, o):
        return self / o

    def pow(self, o):
        return self ** o

    def neg(self):
        return -self

    # comparisons: results are bool tensors and carry no gradient
    def _compare(self, op: str, other):
        other = self._operand(other)
        a = self.detach()
        if isinstance(other, Tensor):
            dt = dtypes.promote(a.dtype, other.dtype)
            shape = broadcast_shapes(a.shape, other.shape)
            a = a._as(dt)._broadcast_to(shape)
            other = other.detach()._as(dt)._broadcast_to(shape)
            return Tensor._wrap(self.backend.compare(op, a.data, other.data), self.backend)
        a = a._as(_scalar_promotion(a.dtype, other))
        return Tensor._wrap(self.backend.compare(op, a.data, other), self.backend)

    def __eq__(self, o):  # noqa: D105 - elementwise, as in torch/NumPy
        return self._compare("eq", o)

    def __ne__(self, o):
        return self._compare("ne", o)

    def __lt__(self, o):
        return self._compare("lt", o)

    def __le__(self, o):
        return self._compare("le", o)

    def __gt__(self, o):
        return self._compare("gt", o)

    def __ge__(self, o):
        return self._compare("ge", o)

    __hash__ = object.__hash__

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.numel()} elements is "
                               "ambiguous; use .any() or .all()")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype != "int64" or self.numel() != 1:
            raise TypeError("only single-element integer tensors can be used as an index")
        return int(self.item())

    def logical_not(self) -> "Tensor":
        return self._compare("eq", False) if self.dtype == "bool" else self._compare("eq", 0)

    def __invert__(self):
        if self.dtype != "bool":
            raise TypeError("~ is defined for bool tensors only")
        return self.logical_not()

    def __and__(self, o):
        return (self._as("int64") * Tensor(o, device=self.device)._as("int64")) != 0

    def __or__(self, o):
        return (self._as("int64") + Tensor(o, device=self.device)._as("int64")) != 0

    def any(self) -> "Tensor":
        return self._as("int64").sum().detach() != 0

    def all(self) -> "Tensor":
        return self.logical_not().any().logical_not()

    # ------------------------------------------------------------------ unary math
    def _unary(self, op: str) -> "Tensor":
        x = self if self.dtype in FLOATS else self._as(_default_dtype)
        return Unary.apply(x, op=op)

    def exp(self):
        return self._unary("exp")

    def log(self):
        return self._unary("log")

    def sqrt(self):
        return self._unary("sqrt")

    def rsqrt(self):
        return 1.0 / self.sqrt()

    def tanh(self):
        return self._unary("tanh")

    def sigmoid(self):
        return self._unary("sigmoid")

    def relu(self):
        return Unary.apply(self, op="relu")

    def abs(self):
        return Unary.apply(self, op="abs")

    def sin(self):
        return self._unary("sin")

    def cos(self):
        return self._unary("cos")

    def square(self):
        return self * self

    def gelu(self, approximate: str = "none"):
        from .nn import functional as F
        return F.gelu(self, approximate=approximate)

    def silu(self):
        from .nn import functional as F
        return F.silu(self)

    def maximum(self, o):
        return self._binary(Maximum, o)

    def minimum(self, o):
        return self._binary(Minimum, o)

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp needs at least one of min or max")
        return Clamp.apply(self, lo=None if min is None else float(min),
                           hi=None if max is None else float(max))

    clip = clamp

    # ------------------------------------------------------------------ matmul
    def matmul(self, other) -> "Tensor":
        other = other if isinstance(other, Tensor) else Tensor(other, device=self.device)
        a, b = self, other
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs tensors with at least 1 dim; use * for scalars")
        if a.dtype != b.dtype:
            dt = dtypes.promote(a.dtype, b.dtype)
            a, b = a._as(dt), b._as(dt)
        squeeze = []
        if a.ndim == 1:
            a, squeeze = a.unsqueeze(0), squeeze + [-2]
        if b.ndim == 1:
            b, squeeze = b.unsqueeze(-1), squeeze + [-1]
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {self.shape} and {other.shape} are not aligned "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        if b.ndim == 2 and a.ndim > 2:
            # (..., M, K) @ (K, N): fold the batch dims into M, one big matmul instead of a
            # batch of small ones against an expanded weight - and in backward dW = A^T dC is
            # a single matmul rather than a batch of them followed by a sum.
            out = MatMul.apply(a.reshape(-1, a.shape[-1]), b)          # (prod(...)*M, N)
            out = out.reshape(a.shape[:-1] + (b.shape[-1],))
            return out.squeeze(-1) if squeeze else out
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = a._broadcast_to(batch + a.shape[-2:])
        b = b._broadcast_to(batch + b.shape[-2:])
        out = MatMul.apply(a, b)
        for d in squeeze:
            out = out.squeeze(d if d == -1 or len(squeeze) == 1 else -1)
        return out
