"""TritonBackend: the backend interface served by our Triton kernels (kernels/), on the GPU.

Storage is a torch tensor, used only as memory: torch allocates, keeps shape/stride metadata,
makes zero-copy views (permute, expand, slice, reshape-as-view) and moves bytes between host
and device. Every computation on data, including copies that change layout or dtype, is a
Triton kernel of ours. No torch math appears here (tests/test_no_torch_math.py scans this file).

Where it runs
    - a CUDA GPU when torch sees one (storage on "cuda");
    - otherwise, only when TRITON_INTERPRET=1 was set before the kernels were imported, Triton's
      CPU interpreter with torch CPU tensors as storage (how CI tests every kernel; slow).
    - anything else raises a clear error at construction.

What it deliberately does not do
    float64 is supported where the kernels support it (copies, elementwise, reductions,
    matmul, norms, softmax, cross-entropy) but not in attention; float16/bfloat16 compute in
    float32. Inputs a kernel cannot read in place (e.g. leading dims that do not collapse to
    one row stride) are first made contiguous with our copy kernel.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

try:
    import torch
    import triton  # noqa: F401  (imported for the clear error below)
except ImportError as e:                                   # pragma: no cover - core install
    raise ImportError(f"the Triton backend needs torch and triton ({e}); install them with "
                      "`pip install minigrad[gpu]`") from e

from minigrad.kernels import attention as _attention
from minigrad.kernels import copy as _copy
from minigrad.kernels import cross_entropy as _ce
from minigrad.kernels import dropout as _dropout
from minigrad.kernels import elementwise as _ew
from minigrad.kernels import embedding as _emb
from minigrad.kernels import layernorm as _ln
from minigrad.kernels import matmul as _mm
from minigrad.kernels import reduce as _red
from minigrad.kernels import softmax as _sm

from .base import BINARY_OPS, COMPARE_OPS, DTYPES, UNARY_OPS, Backend

_TORCH_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _TORCH_DTYPES.items()}
_HALF = (torch.float16, torch.bfloat16)


def _torch_dtype(dtype: str) -> torch.dtype:
    try:
        return _TORCH_DTYPES[dtype]
    except KeyError:
        raise TypeError(f"unknown dtype {dtype!r}; expected one of {DTYPES}") from None


def _default_dtype(a: np.ndarray) -> str:
    """NumpyBackend's rule: float64 stays float64, other floats -> float32, ints -> int64."""
    kind = a.dtype.kind
    if kind == "f":
        return "float64" if a.dtype == np.float64 else "float32"
    if kind in "iu":
        return "int64"
    if kind == "b":
        return "bool"
    raise TypeError(f"cannot make a tensor from a NumPy array of dtype {a.dtype}")


def _storage_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("TRITON_INTERPRET") == "1":
        return torch.device("cpu")
    raise RuntimeError(
        "TritonBackend needs a CUDA GPU (torch.cuda.is_available() is False here). To run the "
        "Triton kernels on the CPU in Triton's interpreter instead (slow; for tests), set the "
        "environment variable TRITON_INTERPRET=1 before importing minigrad's kernels.")


class TritonBackend(Backend):
    name = "triton"
    device = "cuda"

    def __init__(self):
        self.storage_device = _storage_device()

    def device_name(self) -> str:
        if self.storage_device.type == "cuda":
            return torch.cuda.get_device_name(self.storage_device)
        return "cpu (Triton interpreter)"

    # ------------------------------------------------------------------ helpers
    def _rows(self, x):
        """x, or a contiguous copy when its leading dims do not collapse to one row stride
        (what the row kernels: softmax, norms, cross-entropy, embedding need)."""
        if x.dim() <= 1 or x.is_contiguous():
            return x
        sizes, _ = _copy.collapse_dims(tuple(x.shape[:-1]), [x.stride()[:-1]])
        return x if len(sizes) == 1 else _copy.copy(x)

    def _contig(self, x):
        return x if x.is_contiguous() else _copy.copy(x)

    # ------------------------------------------------------------------ tier 1: creation
    def from_numpy(self, a, dtype: Optional[str] = None):
        a = np.asarray(a)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")                           # host-side layout only, no math
        target = _torch_dtype(dtype if dtype is not None else _default_dtype(a))
        if a.dtype.kind not in "fiub":
            raise TypeError(f"cannot make a tensor from a NumPy array of dtype {a.dtype}")
        host = torch.from_numpy(a)                          # shares a's memory
        if self.storage_device.type == "cuda":
            dev = host.to(self.storage_device)              # host -> device copy (new memory)
            return dev if dev.dtype == target else _copy.copy(dev, target)
        return _copy.copy(host, target)                     # interpreter: our kernel copies (and casts)

    def to_numpy(self, x):
        if x.dtype in _HALF:
            x = _copy.copy(x, torch.float32)
        elif self.storage_device.type == "cpu" or not x.is_contiguous():
            x = _copy.copy(x)                               # fresh memory the caller may keep
        return x.cpu().numpy()                              # device -> host copy

    def empty(self, shape, dtype):
        return torch.empty(tuple(shape), dtype=_torch_dtype(dtype), device=self.storage_device)

    def full(self, shape, value, dtype):
        return _ew.fill(tuple(shape), value, _torch_dtype(dtype), self.storage_device)

    def arange(self, start, stop, step, dtype):
        return _ew.arange(int(start), int(stop), int(step), _torch_dtype(dtype), self.storage_device)

    def astype(self, x, dtype):
        return _ew.cast(x, _torch_dtype(dtype))

    def shape(self, x):
        return tuple(x.shape)

    def dtype(self, x):
        return _DTYPE_NAMES[x.dtype]

    def is_array(self, x):
        return isinstance(x, torch.Tensor)

    # ------------------------------------------------------------------ tier 2: elementwise
    def unary(self, op, x):
        if op not in UNARY_OPS:
            raise ValueError(f"unknown unary op {op!r}; expected one of {UNARY_OPS}")
        return _ew.unary(op, x)

    def binary(self, op, a, b):
        if op not in BINARY_OPS:
            raise ValueError(f"unknown binary op {op!r}; expected one of {BINARY_OPS}")
        return _ew.binary(op, a, b)

    def compare(self, op, a, b):
        if op not in COMPARE_OPS:
            raise ValueError(f"unknown compare op {op!r}; expected one of {COMPARE_OPS}")
        return _ew.compare(op, a, b)

    def where(self, cond, a, b):
        return _ew.where(cond, a, b)

    # ------------------------------------------------------------------ tier 2: reductions
    def reduce_sum(self, x, axes, keepdim):
        return _red.reduce_sum(x, axes, keepdim)

    def reduce_max(self, x, axes, keepdim):
        return _red.reduce_max(x, axes, keepdim)

    def argmax(self, x, axis):
        return _red.argmax(x, axis)

    # ------------------------------------------------------------------ tier 2: movement
    def reshape(self, x, shape):
        shape = tuple(shape)
        try:
            return x.view(shape)                            # a view whenever strides allow
        except RuntimeError:
            return _copy.copy(x).view(shape)

    def permute(self, x, axes):
        return x.permute(tuple(axes))                       # a tuple: () is a 0-d tensor's

    def expand(self, x, shape):
        return x.expand(tuple(shape))

    def slice(self, x, index):
        return x[tuple(index)]                              # basic indexing: a view

    def slice_backward(self, grad, shape, index):
        out = _ew.fill(tuple(shape), 0, grad.dtype, grad.device)
        _copy.copy_into(out[tuple(index)], grad)
        return out

    def index_select(self, x, axis, idx):
        if x.dtype == torch.int64:
            # a gather only moves bits: read int64 as float64 of the same width (zero-copy)
            return _emb.index_select(x.view(torch.float64), axis, idx).view(torch.int64)
        return _emb.index_select(x, axis, idx)

    def index_add(self, shape, axis, idx, src):
        return _emb.index_add(tuple(shape), axis, idx, src)

    def concat(self, xs, axis):
        xs = list(xs)
        if not xs:
            raise ValueError("concat needs at least one array")
        first = xs[0]
        nd = first.dim()
        axis = axis + nd if axis < 0 else axis
        for x in xs[1:]:
            if x.dtype != first.dtype:
                raise TypeError(f"concat: dtype mismatch {first.dtype} vs {x.dtype}")
            if x.dim() != nd or any(x.shape[d] != first.shape[d] for d in range(nd) if d != axis):
                raise ValueError(f"concat along axis {axis}: shapes {tuple(first.shape)} and "
                                 f"{tuple(x.shape)} differ off that axis")
        shape = list(first.shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = torch.empty(shape, dtype=first.dtype, device=first.device)
        offset = 0
        for x in xs:
            n = x.shape[axis]
            if n:
                _copy.copy_into(out.narrow(axis, offset, n), x)
            offset += n
        return out

    def contiguous(self, x):
        return self._contig(x)

    def is_contiguous(self, x):
        return bool(x.is_contiguous())

    def strides(self, x):
        return tuple(x.stride())

    # ------------------------------------------------------------------ tier 2: matmul
    def matmul(self, a, b):
        return _mm.matmul(a, b)

    # ------------------------------------------------------------------ tier 3: softmax family
    def softmax_fwd(self, x):
        return _sm.softmax_fwd(self._rows(x))

    def softmax_bwd(self, dy, y):
        return _sm.softmax_bwd(self._rows(dy), self._rows(y))

    def log_softmax_fwd(self, x):
        return _sm.log_softmax_fwd(self._rows(x))

    def log_softmax_bwd(self, dy, y):
        return _sm.log_softmax_bwd(self._rows(dy), self._rows(y))

    # ------------------------------------------------------------------ tier 3: norms
    def layernorm_fwd(self, x, weight, bias, eps):
        return _ln.layernorm_fwd(self._rows(x), weight, bias, eps)

    def layernorm_bwd(self, dy, x, weight, mean, rstd):
        return _ln.layernorm_bwd(self._rows(dy), self._rows(x), weight, mean, rstd)

    def rmsnorm_fwd(self, x, weight, eps):
        return _ln.rmsnorm_fwd(self._rows(x), weight, eps)

    def rmsnorm_bwd(self, dy, x, weight, rstd):
        return _ln.rmsnorm_bwd(self._rows(dy), self._rows(x), weight, rstd)

    # ------------------------------------------------------------------ tier 3: activations
    def gelu_fwd(self, x, approximate):
        return _ew.gelu_fwd(x, approximate)

    def gelu_bwd(self, dy, x, approximate):
        return _ew.gelu_bwd(dy, x, approximate)

    def silu_fwd(self, x):
        return _ew.silu_fwd(x)

    def silu_bwd(self, dy, x):
        return _ew.silu_bwd(dy, x)

    def dropout_fwd(self, x, p, seed):
        return _dropout.dropout_fwd(x, p, seed)

    def dropout_bwd(self, dy, mask, p):
        return _dropout.dropout_bwd(dy, mask, p)

    # ------------------------------------------------------------------ tier 3: embedding, loss
    # The kernels read idx as one flat run of ids: a sliced prompt such as idx[:, -block_size:]
    # is not one, so it is made contiguous first (it is small).
    def embedding_fwd(self, weight, idx):
        idx = self._contig(idx)
        if weight.dtype == torch.int64:
            return _emb.embedding_fwd(weight.view(torch.float64), idx).view(torch.int64)
        return _emb.embedding_fwd(weight, idx)

    def embedding_bwd(self, dy, idx, num_embeddings):
        return _emb.embedding_bwd(self._rows(dy), self._contig(idx), num_embeddings)

    def cross_entropy_fwd(self, logits, targets, ignore_index):
        return _ce.cross_entropy_fwd(logits, targets, ignore_index)

    def cross_entropy_bwd(self, dlosses, logits, targets, lse, ignore_index):
        return _ce.cross_entropy_bwd(dlosses, logits, targets, lse, ignore_index)

    # ------------------------------------------------------------------ tier 3: attention
    def attention_fwd(self, q, k, v, causal, scale, bias=None, dropout_p=0.0, seed=0):
        return _attention.attention_fwd(q, k, v, causal, scale, bias, dropout_p=dropout_p, seed=seed)

    def attention_bwd(self, do, q, k, v, o, lse, causal, scale, bias=None, dropout_p=0.0, seed=0):
        return _attention.attention_bwd(do, q, k, v, o, self._contig(lse), causal, scale, bias,
                                        dropout_p=dropout_p, seed=seed)

    def copy_(self, dst, src):
        _copy.copy_into(dst, src)
