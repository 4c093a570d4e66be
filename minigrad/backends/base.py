"""The backend interface: every array operation minigrad needs, and nothing above it.

Autograd, nn, optim and the models are written once, against this class. Below it sit two
implementations: `NumpyBackend` (the readable specification, CPU) and `TritonBackend`
(our Triton kernels, GPU). A backend is an *object* carried by every Tensor, never a module
swapped at import time.

Conventions (the contract every backend honours):

- An "array" is the backend's native array: `numpy.ndarray` for NumPy, `torch.Tensor` used
  purely as storage for Triton. Arrays are never modified in place, except by the methods
  whose names end in `_` (e.g. `adamw_step_`, `copy_`).
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

`CheckedBackend` wraps any backend and asserts output shapes/dtypes/types on each call;
the tests turn it on.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

import numpy as np

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

    def sum_squares(self, x: Array) -> Array:
        """sum(x * x) over every element, as a 0-d array: float32 for float32 and 16-bit x (the
        squares are taken and summed in float32), float64 for float64. The squared L2 norm that
        gradient clipping needs per gradient; a backend may fuse it into one read of x (this
        default, the specification, takes a cast, a multiply and a sum)."""
        acc = "float64" if self.dtype(x) == "float64" else "float32"
        a = x if self.dtype(x) == acc else self.astype(x, acc)
        return self.reduce_sum(self.binary("mul", a, a), tuple(range(len(self.shape(x)))), False)

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

    def matmul_bias(self, a: Array, b: Array, bias: Optional[Array]) -> Array:
        """a (M, K) @ b (K, N) + bias (N,) broadcast over the rows (bias None: a plain matmul).
        A backend may add the bias in the matmul's epilogue; this default is the specification."""
        out = self.matmul(a, b)
        if bias is None:
            return out
        M, N = self.shape(out)
        return self.binary("add", out, self.expand(self.reshape(bias, (1, N)), (M, N)))

    # An MLP's activation inside its two matmuls (minigrad/ops/matmul.py MLP): the forward's first
    # matmul also returns the pre-activation, the backward's matmul applies the activation's derivative.
    # A backend may do both in the matmul's epilogue (no activation kernels, no (M, N) round trip);
    # these defaults, built from the methods above, are the specification.
    MLP_ACTIVATIONS = ("gelu", "gelu_exact", "silu")     # gelu = the tanh form (GPT-2), as in GPTConfig

    def _activation_fwd(self, x: Array, activation: str) -> Array:
        if activation == "silu":
            return self.silu_fwd(x)
        return self.gelu_fwd(x, "tanh" if activation == "gelu" else "none")

    def _activation_bwd(self, dy: Array, x: Array, activation: str) -> Array:
        if activation == "silu":
            return self.silu_bwd(dy, x)
        return self.gelu_bwd(dy, x, "tanh" if activation == "gelu" else "none")

    def matmul_bias_act(self, a: Array, b: Array, bias: Optional[Array], activation: str,
                        ) -> tuple[Array, Array]:
        """(y, pre): pre = a (M, K) @ b (K, N) + bias (as matmul_bias), y = activation(pre), both
        (M, N) in a's dtype; activation one of MLP_ACTIVATIONS."""
        pre = self.matmul_bias(a, b, bias)
        return self._activation_fwd(pre, activation), pre

    def matmul_act_grad(self, a: Array, b: Array, pre: Array, activation: str) -> Array:
        """d(pre) = (a (M, K) @ b (K, N)) * activation'(pre): a @ b is the gradient with respect to
        the activation's output y = activation(pre), pre (M, N) the saved pre-activation."""
        return self._activation_bwd(self.matmul(a, b), pre, activation)

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

        The mask is drawn from `seed` + the backend's dropout seed offset (0 unless
        `set_dropout_seed_offset_` was called; on the GPU inside the kernel, never on the host).
        Returns (y, mask) where mask is a bool array of x's shape (True = kept).
        """

    @abstractmethod
    def set_dropout_seed_offset_(self, offset: int) -> None:
        """From now on every dropout mask of this backend (dropout_fwd, attention with dropout)
        is drawn from key seed + offset. On the GPU the offset lives in device memory and the
        kernels read it when they run, so a captured CUDA graph, whose host seeds are frozen,
        draws new masks on each replay after a new offset (models/cuda_graph.py)."""

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

    def cross_entropy_fwd_bwd_(self, logits: Array, targets: Array, ignore_index: int,
                               n_classes: int) -> Array:
        """Losses and their gradient in one pass, the gradient written over the logits.

        logits (N, Vp) contiguous, the classes in its first n_classes <= Vp columns (the rest is
        vocabulary padding); targets (N,) int64. Returns losses (N,) as cross_entropy_fwd over
        logits[:, :n_classes], and overwrites logits with d(sum of losses)/d(logits):
        softmax - onehot in the first n_classes columns, 0 in the padding and in ignored rows.
        This default (fwd, bwd, then copies) is the specification."""
        N, Vp = self.shape(logits)
        view = self.slice(logits, (slice(None), slice(0, n_classes)))
        losses, lse = self.cross_entropy_fwd(view, targets, ignore_index)
        d = self.cross_entropy_bwd(self.full((N,), 1.0, self.dtype(losses)), view, targets, lse,
                                   ignore_index)
        self.copy_(logits, self.full((N, Vp), 0, self.dtype(logits)))
        self.copy_(self.slice(logits, (slice(None), slice(0, n_classes))), d)
        return losses

    # Self-attention straight from a fused qkv projection (B, T, 3C): the q, k, v heads are views
    # of it, the output comes back with its heads merged (B, T, C), and the backward returns one
    # (B, T, 3C) gradient. A backend can write those layouts directly (no transposes, no split
    # gradients to zero-fill and add); these defaults, built from the methods above, are the spec.
    def _qkv_heads(self, qkv: Array, n_head: int) -> list:
        B, T, C3 = self.shape(qkv)
        x = self.reshape(qkv, (B, T, 3, n_head, C3 // (3 * n_head)))         # (B, T, 3, nh, hs)
        return [self.permute(self.slice(x, (slice(None), slice(None), i)), (0, 2, 1, 3))
                for i in range(3)]                                           # (B, nh, T, hs) each

    def qkv_attention_fwd(self, qkv: Array, n_head: int, causal: bool, scale: float,
                          dropout_p: float = 0.0, seed: int = 0) -> tuple[Array, Array]:
        """qkv (B, T, 3C) = [q | k | v] along the last dim, each (B, T, n_head, hs) -> y (B, T, C)
        = attention over the heads with the heads merged back, and lse (B, n_head, T) float32.
        Dropout as attention_fwd's, on the (B, n_head, T, T) probabilities."""
        B, T, C3 = self.shape(qkv)
        q, k, v = self._qkv_heads(qkv, n_head)
        o, lse = self.attention_fwd(q, k, v, causal, scale, None, dropout_p, seed)   # (B, nh, T, hs)
        y = self.contiguous(self.permute(o, (0, 2, 1, 3)))                   # (B, T, nh, hs)
        return self.reshape(y, (B, T, C3 // 3)), lse

    def qkv_attention_bwd(self, dy: Array, qkv: Array, y: Array, lse: Array, n_head: int,
                          causal: bool, scale: float, dropout_p: float = 0.0, seed: int = 0) -> Array:
        """dqkv (B, T, 3C) from dy (B, T, C), with qkv, y, lse from qkv_attention_fwd (and its
        dropout_p and seed)."""
        B, T, C3 = self.shape(qkv)
        C, hs = C3 // 3, C3 // (3 * n_head)

        def heads(t):                                                        # (B, T, C) -> (B, nh, T, hs)
            return self.permute(self.reshape(t, (B, T, n_head, hs)), (0, 2, 1, 3))
        q, k, v = self._qkv_heads(qkv, n_head)
        grads = self.attention_bwd(heads(self.contiguous(dy)), q, k, v, heads(y), lse, causal, scale,
                                   None, dropout_p, seed)
        return self.concat([self.reshape(self.contiguous(self.permute(d, (0, 2, 1, 3))), (B, T, C))
                            for d in grads], 2)

    @abstractmethod
    def adamw_step_(self, param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array,
                    lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                    step: int, master: Optional[Array] = None) -> None:
        """One AdamW update of one parameter, in place (torch.optim.AdamW semantics).

        p -= lr * wd * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
        p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
        When `master` (float32) is given, the update is applied to master and param (e.g.
        bfloat16) receives its rounded copy. exp_avg/exp_avg_sq are float32 (or float64).
        """

    # The multi-tensor optimizer path (one launch for many parameters). The step's scalars live
    # in a small device array `hyper` so the update launches are identical every step (a CUDA
    # graph can replay them); only adamw_hyper_ takes the step's values as arguments.
    HYPER_SIZE = 7

    def adamw_hyper_(self, hyper: Array, lr: float, beta1: float, beta2: float, eps: float,
                     weight_decay: float, step: int) -> None:
        """Write one step's scalars into hyper (HYPER_SIZE,) float64, computed on the host in
        double precision: [1 - lr*wd, 1 - b1, b2, 1 - b2, lr / (1 - b1^step),
        sqrt(1 - b2^step), eps]. This default uploads them (from_numpy + copy_)."""
        if step < 1:
            raise ValueError(f"step must be >= 1 (the first update is step 1), got {step}")
        vals = np.array([1.0 - lr * weight_decay, 1.0 - beta1, beta2, 1.0 - beta2,
                         lr / (1.0 - beta1 ** step), math.sqrt(1.0 - beta2 ** step), eps])
        self.copy_(hyper, self.from_numpy(vals))

    def adamw_step_multi_(self, params: Sequence[Array], grads: Sequence[Array],
                          exp_avgs: Sequence[Array], exp_avg_sqs: Sequence[Array], hyper: Array,
                          masters: Optional[Sequence[Optional[Array]]] = None) -> None:
        """adamw_step_ of every parameter of the parallel lists, in place, with the scalars read
        from hyper (written by adamw_hyper_):
            p = p * decay;  m = m + (1-b1) (g - m);  v = b2 v + (1-b2) g^2
            p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
        masters: None or a list with None entries; a parameter with a master (float32) copy is
        updated through it, as in adamw_step_."""
        raise NotImplementedError(f"{type(self).__name__} has no adamw_step_multi_")

    def clip_by_total_norm(self, xs: Sequence[Array], max_norm: float) -> tuple[Array, list]:
        """(norm, scaled): the joint L2 norm of the arrays xs, as a 0-d float32 array (float64
        when any x is float64; squares summed in that precision), and new arrays
        x * min(1, max_norm / (norm + 1e-6)) in each x's dtype (the coefficient is cast to x's
        dtype first). torch.nn.utils.clip_grad_norm_'s math; this default is the
        specification (a backend may do it in a few launches over all of xs)."""
        acc = "float64" if any(self.dtype(x) == "float64" for x in xs) else "float32"
        total = self.full((), 0.0, acc)
        for x in xs:
            if math.prod(self.shape(x)) == 0:
                continue
            part = self.sum_squares(x)
            total = self.binary("add", total, part if self.dtype(part) == acc else self.astype(part, acc))
        total = self.unary("sqrt", total)
        coef = self.binary("minimum", self.binary("div", max_norm, self.binary("add", total, 1e-6)), 1.0)
        coef_as = {acc: coef}
        out = []
        for x in xs:
            dt, shape = self.dtype(x), self.shape(x)
            if dt not in coef_as:
                coef_as[dt] = self.astype(coef, dt)
            c = self.expand(self.reshape(coef_as[dt], (1,) * len(shape)), shape)
            out.append(self.binary("mul", x, c))
        return total, out

    # CUDA graphs (models/cuda_graph.py): runtime, not math; only a backend on a GPU has them.
    def cuda_graph_check(self) -> None:
        """Raise (NotImplementedError or RuntimeError, saying why) unless cuda_graph() works here."""
        raise NotImplementedError(f"the {self.name} backend has no CUDA graphs")

    def cuda_graph(self) -> Any:
        """A new graph: capture(fn) records the launches fn makes (without running them) and
        returns fn's result; replay() runs them again on the same memory;
        executes_on_capture = False."""
        raise NotImplementedError(f"the {self.name} backend has no CUDA graphs")

    @abstractmethod
    def copy_(self, dst: Array, src: Array) -> None:
        """Write src into dst in place (same shape; casts to dst's dtype)."""
