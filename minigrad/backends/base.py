"""The backend interface: every array operation minigrad needs, and nothing above it.

Autograd, nn, optim and the models are written once, against this class. Below it sit two
implementations: `NumpyBackend` (the readable specification, CPU) and `TritonBackend`
(our Triton kernels, GPU). A backend is an *object* carried by every Tensor, never a module
swapped at import time.

Conventions (the contract every backend honours):

- An "array" is the backend's native array: `numpy.ndarray` for NumPy, `torch.Tensor` used
  purely as storage for Triton. Arrays are never modified in place, except by `copy_`.
- dtypes are named by strings: "float32", "float64", "float16", "bfloat16", "int64", "bool".
  NumPy has no bfloat16/float16 support in this project (clear error); Triton has no float64
  kernels beyond copies (clear error).
- Shapes are tuples of ints. 0-d arrays (shape `()`) are valid everywhere.
- Broadcasting is resolved *above* this boundary: binary ops receive equal shapes (or a
  Python scalar on one side). `expand` produces a stride-0 view; its gradient (a sum) is
  computed above, with `reduce_sum`.
- Methods may return views (reshape, permute, expand, slice). Inputs may be non-contiguous
  views; a backend must handle them (or make them contiguous internally).
- Tier 3 ("fused pairs") forward methods return what their backward needs; the caller saves
  it. They are where most GPU time goes, so each is one kernel (or a few) on the GPU.

The tests wrap every backend in a checker that asserts output shapes/dtypes/types on each call
(tests/checked_backend.py).

Not here: anything that exists only for speed (a bias or an activation inside a matmul's
epilogue, a loss whose gradient overwrites its logits, multi-tensor optimizer and clipping
launches, CUDA graphs). The performance layer (fast/ops.py) adds those, each written there as
the composition of the methods below that it replaces.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

Array = Any          # np.ndarray or torch.Tensor; kept opaque above the boundary
Scalar = float | int | bool
Shape = tuple[int, ...]

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "bool")
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")

UNARY_OPS = ("neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "sign",
             "sin", "cos", "square", "reciprocal")
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
COMPARE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")


class Backend(ABC):
    """Abstract array backend. Docstrings are the contract; both backends implement all of it."""

    name: str = "abstract"     # "numpy" or "triton"
    device: str = "cpu"        # the user-facing device string: "cpu" or "cuda"

    # ------------------------------------------------------------------ tier 1: creation
    @abstractmethod
    def from_numpy(self, a, dtype: Optional[str] = None) -> Array:
        """Copy a NumPy array (or anything np.asarray takes) onto this backend.

        `dtype` (optional) converts on the way; default keeps a.dtype (float64 stays float64).
        """

    @abstractmethod
    def to_numpy(self, x: Array) -> "np.ndarray":  # noqa: F821
        """Copy to a NumPy array on the host (bfloat16/float16 come back as float32)."""

    @abstractmethod
    def empty(self, shape: Shape, dtype: str) -> Array:
        """Uninitialised array."""

    @abstractmethod
    def full(self, shape: Shape, value: Scalar, dtype: str) -> Array:
        """Array filled with `value` (zeros/ones are `full` with 0/1)."""

    @abstractmethod
    def arange(self, start: int, stop: int, step: int, dtype: str) -> Array:
        """1-d array start, start+step, ... < stop."""

    @abstractmethod
    def astype(self, x: Array, dtype: str) -> Array:
        """Cast (always a new array, even when the dtype already matches)."""

    @abstractmethod
    def shape(self, x: Array) -> Shape:
        """Shape as a tuple of ints."""

    @abstractmethod
    def dtype(self, x: Array) -> str:
        """dtype name, one of DTYPES."""

    def device_name(self) -> str:
        """What the arrays live on, in words (e.g. "NVIDIA H100 80GB HBM3"); used for MFU peaks."""
        import platform
        return platform.processor() or platform.machine() or "cpu"

    @abstractmethod
    def is_array(self, x: Any) -> bool:
        """True when x is this backend's native array type (used by the checked wrapper)."""

    def zeros(self, shape: Shape, dtype: str) -> Array:
        return self.full(shape, 0, dtype)

    def ones(self, shape: Shape, dtype: str) -> Array:
        return self.full(shape, 1, dtype)

    # ------------------------------------------------------------------ tier 2: elementwise
    @abstractmethod
    def unary(self, op: str, x: Array) -> Array:
        """y = op(x) elementwise, op in UNARY_OPS. Same shape and dtype as x.

        relu'(0) is 0; sign(0) is 0; rsqrt(x) = 1/sqrt(x); reciprocal(x) = 1/x.
        """

    @abstractmethod
    def binary(self, op: str, a: Array | Scalar, b: Array | Scalar) -> Array:
        """c = a op b elementwise, op in BINARY_OPS.

        a and b are arrays of the *same shape and dtype*, or one of them is a Python scalar
        (which takes the array's dtype). Integer arrays support add/sub/mul/maximum/minimum
        and floor division "div" is NOT defined for them (use floats). Output has the array's
        shape and dtype.
        """

    @abstractmethod
    def compare(self, op: str, a: Array | Scalar, b: Array | Scalar) -> Array:
        """Elementwise comparison, op in COMPARE_OPS; same-shape arrays or one scalar; dtype bool."""

    @abstractmethod
    def where(self, cond: Array, a: Array | Scalar, b: Array | Scalar) -> Array:
        """cond ? a : b. cond is bool; a, b arrays of cond's shape (same dtype) or scalars.

        When both a and b are scalars, the result dtype is float32 unless `a` is an int (then
        int64); callers that need another dtype pass arrays.
        """

    # ------------------------------------------------------------------ tier 2: reductions
    @abstractmethod
    def reduce_sum(self, x: Array, axes: Sequence[int], keepdim: bool) -> Array:
        """Sum over `axes` (non-negative, sorted, unique; may be empty = copy). Accumulates in
        float32 at least (float64 stays float64); output keeps x's dtype. bool/int sum to int64."""

    @abstractmethod
    def reduce_max(self, x: Array, axes: Sequence[int], keepdim: bool) -> Array:
        """Max over `axes` (every reduced axis must be non-empty)."""

    @abstractmethod
    def argmax(self, x: Array, axis: int) -> Array:
        """int64 index of the first maximum along `axis` (axis removed)."""

    # ------------------------------------------------------------------ tier 2: movement
    @abstractmethod
    def reshape(self, x: Array, shape: Shape) -> Array:
        """Same elements (row-major order), new shape; a view when the strides allow, else a copy."""

    @abstractmethod
    def permute(self, x: Array, axes: Sequence[int]) -> Array:
        """View with axes reordered (axes is a permutation of range(ndim))."""

    @abstractmethod
    def expand(self, x: Array, shape: Shape) -> Array:
        """Broadcast view (stride 0) to `shape`; x.ndim == len(shape) and each x dim is 1 or equal."""

    @abstractmethod
    def slice(self, x: Array, index: tuple) -> Array:
        """Basic indexing view: `index` is a tuple (one entry per dim of x, no Ellipsis/None)
        of ints and `slice` objects with positive step (already normalised above)."""

    @abstractmethod
    def slice_backward(self, grad: Array, shape: Shape, index: tuple) -> Array:
        """Zeros of `shape` with `grad` written into x[index] (the adjoint of `slice`)."""

    @abstractmethod
    def index_select(self, x: Array, axis: int, idx: Array) -> Array:
        """Gather along `axis` with a 1-d int64 index array: out.shape = x.shape with
        x.shape[axis] replaced by len(idx). Indices are in range (checked above)."""

    @abstractmethod
    def index_add(self, shape: Shape, axis: int, idx: Array, src: Array) -> Array:
        """The adjoint of index_select: zeros(shape) with src's slices added at idx along `axis`
        (repeated indices accumulate)."""

    @abstractmethod
    def concat(self, xs: Sequence[Array], axis: int) -> Array:
        """Concatenate same-dtype arrays along `axis`."""

    @abstractmethod
    def contiguous(self, x: Array) -> Array:
        """A row-major contiguous array with x's contents (x itself if already contiguous)."""

    @abstractmethod
    def is_contiguous(self, x: Array) -> bool:
        """True when x is row-major contiguous."""

    @abstractmethod
    def strides(self, x: Array) -> Shape:
        """x's strides in elements (not bytes), one per dim; 0 along a broadcast dim."""

    # ------------------------------------------------------------------ tier 2: matmul
    @abstractmethod
    def matmul(self, a: Array, b: Array) -> Array:
        """Batched matrix product: a (..., M, K) @ b (..., K, N) -> (..., M, N).

        Batch dims are equal (broadcasting was resolved above with `expand`). Either operand
        may be a transposed or otherwise strided view. Accumulates in float32 or better.
        """

    # ------------------------------------------------------------------ tier 3: fused pairs
    @abstractmethod
    def softmax_fwd(self, x: Array) -> Array:
        """y = softmax(x) over the last dim."""

    @abstractmethod
    def softmax_bwd(self, dy: Array, y: Array) -> Array:
        """dx = y * (dy - sum(dy * y, -1, keepdim))."""

    @abstractmethod
    def log_softmax_fwd(self, x: Array) -> Array:
        """y = x - logsumexp(x) over the last dim."""

    @abstractmethod
    def log_softmax_bwd(self, dy: Array, y: Array) -> Array:
        """dx = dy - exp(y) * sum(dy, -1, keepdim)."""

    @abstractmethod
    def layernorm_fwd(self, x: Array, weight: Optional[Array], bias: Optional[Array],
                      eps: float) -> tuple[Array, Array, Array]:
        """Normalise over the last dim C: x (..., C), weight/bias (C,) or None.

        Returns (y (..., C), mean (N,), rstd (N,)) with N = prod(leading dims); mean and
        rstd are float32 (float64 for float64 input) and are saved for backward.
        """

    @abstractmethod
    def layernorm_bwd(self, dy: Array, x: Array, weight: Optional[Array], mean: Array, rstd: Array,
                      ) -> tuple[Array, Optional[Array], Optional[Array]]:
        """Returns (dx (..., C), dweight (C,) or None, dbias (C,) or None).

        xhat = (x - mean) * rstd;  g = dy * weight
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat));  dw = sum(dy * xhat);  db = sum(dy)
        dbias is returned whenever weight is given (callers with bias=None ignore it).
        """

    @abstractmethod
    def rmsnorm_fwd(self, x: Array, weight: Optional[Array], eps: float) -> tuple[Array, Array]:
        """y = x * rstd * weight with rstd = 1/sqrt(mean(x^2) + eps). Returns (y, rstd (N,))."""

    @abstractmethod
    def rmsnorm_bwd(self, dy: Array, x: Array, weight: Optional[Array], rstd: Array,
                    ) -> tuple[Array, Optional[Array]]:
        """Returns (dx, dweight or None). xhat = x*rstd; g = dy*w; dx = rstd*(g - xhat*mean(g*xhat))."""

    @abstractmethod
    def gelu_fwd(self, x: Array, approximate: str) -> Array:
        """GELU; approximate is "none" (exact, erf) or "tanh"."""

    @abstractmethod
    def gelu_bwd(self, dy: Array, x: Array, approximate: str) -> Array:
        """dx = dy * gelu'(x)."""

    @abstractmethod
    def silu_fwd(self, x: Array) -> Array:
        """y = x * sigmoid(x)."""

    @abstractmethod
    def silu_bwd(self, dy: Array, x: Array) -> Array:
        """dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x)."""

    @abstractmethod
    def dropout_fwd(self, x: Array, p: float, seed: int) -> tuple[Array, Array]:
        """Keep each element with probability 1-p and scale kept ones by 1/(1-p).

        The mask is drawn from `seed` (on the GPU inside the kernel, never on the host): the same
        seed gives the same mask. Returns (y, mask), mask a bool array of x's shape (True = kept).
        """

    @abstractmethod
    def dropout_bwd(self, dy: Array, mask: Array, p: float) -> Array:
        """dx = dy * mask / (1-p)."""

    @abstractmethod
    def embedding_fwd(self, weight: Array, idx: Array) -> Array:
        """Gather rows: weight (V, C), idx int64 of any shape S -> (*S, C)."""

    @abstractmethod
    def embedding_bwd(self, dy: Array, idx: Array, num_embeddings: int) -> Array:
        """Scatter-add rows: dy (*S, C), idx (*S) -> dweight (V, C), repeated ids accumulate."""

    @abstractmethod
    def cross_entropy_fwd(self, logits: Array, targets: Array, ignore_index: int,
                          ) -> tuple[Array, Array]:
        """logits (N, V) float, targets (N,) int64 in [0, V) or == ignore_index.

        Returns (losses (N,) float32 (float64 for float64 logits), lse (N,) same dtype):
        losses[i] = lse[i] - logits[i, t_i], and 0 where t_i == ignore_index. The reduction
        (mean over counted targets, sum, none) is done above.
        """

    @abstractmethod
    def cross_entropy_bwd(self, dlosses: Array, logits: Array, targets: Array, lse: Array,
                          ignore_index: int) -> Array:
        """dlogits (N, V) in logits' dtype: dlosses[i] * (softmax(logits[i]) - onehot(t_i)),
        and 0 rows where t_i == ignore_index."""

    @abstractmethod
    def attention_fwd(self, q: Array, k: Array, v: Array, causal: bool, scale: float,
                      bias: Optional[Array] = None, dropout_p: float = 0.0, seed: int = 0,
                      ) -> tuple[Array, Array]:
        """Scaled dot-product attention. q (B, H, T, D), k and v (B, H, S, D).

        s = scale * q @ k^T (+ bias);  causal masks s[i, j] for j > i + (S - T) (bottom-right
        aligned, so a query block at the end of a KV cache sees the whole cache; identical to
        torch's is_causal when T == S). bias is an optional additive float array broadcastable
        view of shape (B, H, T, S) (e.g. -inf where masked), already expanded.
        p = softmax(s); o = p @ v, or with dropout_p > 0, o = (p * keep / (1 - dropout_p)) @ v
        where keep (B, H, T, S) is exactly the mask this backend's dropout_fwd draws with `seed`
        for an array of the probabilities' shape (B, H, T, S), so the fused op equals
        dropout(softmax(s)) @ v; dropout_p == 1 gives o = 0. The mask is not returned: the
        backward draws it again from the seed.
        Returns (o (B, H, T, D), lse (B, H, T) float32/float64): lse = logsumexp of masked s rows
        (of the undropped probabilities). A row with every key masked gives o = 0 (and lse = -inf).
        """

    @abstractmethod
    def attention_bwd(self, do: Array, q: Array, k: Array, v: Array, o: Array, lse: Array,
                      causal: bool, scale: float, bias: Optional[Array] = None,
                      dropout_p: float = 0.0, seed: int = 0) -> tuple[Array, Array, Array]:
        """Returns (dq, dk, dv) with the shapes of q, k, v (the bias gets no gradient); dropout_p
        and seed as given to attention_fwd (the same mask, regenerated)."""

    @abstractmethod
    def copy_(self, dst: Array, src: Array) -> None:
        """Write src into dst in place (same shape; casts to dst's dtype)."""
