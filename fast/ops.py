"""The array operations the performance layer adds to a backend, and their specification.

The core's backend contract (minigrad/backends/base.py) holds the primitives and the fused pairs a
training step is made of. The performance layer needs a few more, each of which only saves work:
a bias or an activation folded into a matmul's epilogue, a bias gradient summed inside the weight
gradient's matmul, a loss whose gradient overwrites its logits, attention read straight from the
fused q/k/v projection, one AdamW launch for every parameter, clipping in a few launches, dropout
masks that a replayed CUDA graph can vary.

`FastOps` writes each of them as the composition of core Backend methods it replaces: that body is
the specification, so the fast path runs (slowly) on any backend and the NumPy backend's results
are the reference. `TritonFastOps` (fast/triton_ops.py) does the same with our fused kernels and
is tested equal to this. `fast_ops(backend)` gives the right one for a backend.

The seed offset: a CUDA graph replays its launches with the host arguments frozen at capture, so
a dropout seed drawn on the host would give the same mask on every replay. Every dropout mask the
fast path draws (dropout, attention) uses key seed + offset, and the graphed step writes a new
offset before each replay (on the GPU the offset lives in device memory, read by the kernels).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from minigrad.backends import Backend

Array = Any

MLP_ACTIVATIONS = ("gelu", "gelu_exact", "silu")     # gelu = the tanh form (GPT-2), as in GPTConfig
HYPER_SIZE = 7                                       # AdamW's per-step scalars, see adamw_hyper_


class FastOps:
    """The performance layer's operations on one backend `b`; these bodies are the specification."""

    def __init__(self, b: Backend):
        self.b = b
        self.seed_offset = 0            # added to every dropout seed (set_dropout_seed_offset_)

    # ------------------------------------------------------------------ matmul epilogues
    def matmul(self, a: Array, b_: Array) -> Array:
        """Backend.matmul; on the GPU through the host plan cache and the per-shape variant pick
        (kernels/matmul_auto.py), which the fused Functions' backward matmuls use."""
        return self.b.matmul(a, b_)

    def matmul_bias(self, a: Array, w_t: Array, bias: Optional[Array]) -> Array:
        """a (M, K) @ w_t (K, N) + bias (N,) broadcast over the rows (bias None: a plain matmul)."""
        b = self.b
        out = self.matmul(a, w_t)
        if bias is None:
            return out
        M, N = b.shape(out)
        return b.binary("add", out, b.expand(b.reshape(bias, (1, N)), (M, N)))

    def _activation(self, x: Array, activation: str) -> Array:
        if activation == "silu":
            return self.b.silu_fwd(x)
        return self.b.gelu_fwd(x, "tanh" if activation == "gelu" else "none")

    def _activation_grad(self, dy: Array, x: Array, activation: str) -> Array:
        if activation == "silu":
            return self.b.silu_bwd(dy, x)
        return self.b.gelu_bwd(dy, x, "tanh" if activation == "gelu" else "none")

    def matmul_bias_act(self, a: Array, w_t: Array, bias: Optional[Array], activation: str,
                        ) -> tuple[Array, Array]:
        """(y, pre): pre = a @ w_t + bias, y = activation(pre), both (M, N) in a's dtype;
        activation one of MLP_ACTIVATIONS. One matmul whose epilogue writes both on the GPU."""
        pre = self.matmul_bias(a, w_t, bias)
        return self._activation(pre, activation), pre

    def matmul_act_grad(self, a: Array, b_: Array, pre: Array, activation: str) -> Array:
        """d(pre) = (a (M, K) @ b_ (K, N)) * activation'(pre): a @ b_ is the gradient with respect
        to the activation's output, pre (M, N) the saved pre-activation."""
        return self._activation_grad(self.matmul(a, b_), pre, activation)

    def matmul_rowsum(self, a: Array, b_: Array) -> tuple[Array, Array]:
        """(c, s): c = a (M, K) @ b_ (K, N), and s (M,) = a's row sums over K in a's dtype
        (Backend.reduce_sum's accumulation: float32, float64 for float64). With a = dY^T (a view
        of a Linear's output gradient dY (rows, C_out)) and b_ = X (rows, C_in), c is the weight
        gradient and s the bias gradient: on the GPU both come from one matmul, whose programs
        sum the dY^T tiles they load anyway (no column-sum launch over dY)."""
        return self.matmul(a, b_), self.b.reduce_sum(a, (1,), False)

    # ------------------------------------------------------------------ loss
    def cross_entropy_fwd_bwd_(self, logits: Array, targets: Array, ignore_index: int,
                               n_classes: int) -> Array:
        """Losses (N,) of logits (N, Vp) over their first n_classes columns (the rest is vocabulary
        padding), as Backend.cross_entropy_fwd, and the logits OVERWRITTEN with d(sum of
        losses)/d(logits): softmax - onehot in the first n_classes columns, 0 in the padding and in
        ignored rows. logits must be contiguous."""
        b = self.b
        N, Vp = b.shape(logits)
        view = b.slice(logits, (slice(None), slice(0, n_classes)))
        losses, lse = b.cross_entropy_fwd(view, targets, ignore_index)
        d = b.cross_entropy_bwd(b.full((N,), 1.0, b.dtype(losses)), view, targets, lse, ignore_index)
        b.copy_(logits, b.full((N, Vp), 0, b.dtype(logits)))
        b.copy_(b.slice(logits, (slice(None), slice(0, n_classes))), d)
        return losses

    # ------------------------------------------------------------------ dropout and attention
    def set_dropout_seed_offset_(self, offset: int) -> None:
        """From now on every mask this object draws uses key seed + offset."""
        self.seed_offset = int(offset)

    def dropout_fwd(self, x: Array, p: float, seed: int) -> tuple[Array, Array]:
        """Backend.dropout_fwd with key seed + offset: (y, mask)."""
        return self.b.dropout_fwd(x, p, seed + self.seed_offset)

    def attention_fwd(self, q: Array, k: Array, v: Array, causal: bool, scale: float,
                      dropout_p: float = 0.0, seed: int = 0) -> tuple[Array, Array]:
        """Backend.attention_fwd (no bias) with the dropout key seed + offset: (o, lse)."""
        return self.b.attention_fwd(q, k, v, causal, scale, None, dropout_p, seed + self.seed_offset)

    def attention_bwd(self, do: Array, q: Array, k: Array, v: Array, o: Array, lse: Array,
                      causal: bool, scale: float, dropout_p: float = 0.0, seed: int = 0):
        """Backend.attention_bwd (no bias) with the forward's mask: (dq, dk, dv)."""
        return self.b.attention_bwd(do, q, k, v, o, lse, causal, scale, None, dropout_p,
                                    seed + self.seed_offset)

    def _qkv_heads(self, qkv: Array, n_head: int) -> list:
        """q, k, v (B, nh, T, hs) as views of qkv (B, T, 3C)."""
        b = self.b
        B, T, C3 = b.shape(qkv)
        x = b.reshape(qkv, (B, T, 3, n_head, C3 // (3 * n_head)))           # (B, T, 3, nh, hs)
        return [b.permute(b.slice(x, (slice(None), slice(None), i)), (0, 2, 1, 3))
                for i in range(3)]                                           # (B, nh, T, hs) each

    def qkv_attention_fwd(self, qkv: Array, n_head: int, causal: bool, scale: float,
                          dropout_p: float = 0.0, seed: int = 0) -> tuple[Array, Array]:
        """qkv (B, T, 3C) = [q | k | v] along the last dim, each (B, T, n_head, hs) -> y (B, T, C)
        = attention over the heads with the heads merged back, and lse (B, n_head, T). On the GPU
        the heads are read in place and y is written in its final layout (no transposes)."""
        b = self.b
        B, T, C3 = b.shape(qkv)
        q, k, v = self._qkv_heads(qkv, n_head)
        o, lse = self.attention_fwd(q, k, v, causal, scale, dropout_p, seed)   # (B, nh, T, hs)
        y = b.contiguous(b.permute(o, (0, 2, 1, 3)))                           # (B, T, nh, hs)
        return b.reshape(y, (B, T, C3 // 3)), lse

    def qkv_attention_bwd(self, dy: Array, qkv: Array, y: Array, lse: Array, n_head: int,
                          causal: bool, scale: float, dropout_p: float = 0.0, seed: int = 0) -> Array:
        """dqkv (B, T, 3C) from dy (B, T, C), with qkv, y, lse from qkv_attention_fwd: one buffer
        (on the GPU the three gradients are written into their thirds of it)."""
        b = self.b
        B, T, C3 = b.shape(qkv)
        C, hs = C3 // 3, C3 // (3 * n_head)

        def heads(t):                                                        # (B, T, C) -> (B, nh, T, hs)
            return b.permute(b.reshape(t, (B, T, n_head, hs)), (0, 2, 1, 3))
        q, k, v = self._qkv_heads(qkv, n_head)
        grads = self.attention_bwd(heads(b.contiguous(dy)), q, k, v, heads(y), lse, causal, scale,
                                   dropout_p, seed)
        return b.concat([b.reshape(b.contiguous(b.permute(d, (0, 2, 1, 3))), (B, T, C))
                         for d in grads], 2)

    # ------------------------------------------------------------------ optimizer and clipping
    def adamw_hyper_(self, hyper: Array, lr: float, beta1: float, beta2: float, eps: float,
                     weight_decay: float, step: int) -> None:
        """Write one step's scalars into hyper (HYPER_SIZE,) float64, computed on the host in double
        precision: [1 - lr*wd, 1 - b1, b2, 1 - b2, lr / (1 - b1^step), sqrt(1 - b2^step), eps].
        Kept in device memory, they let every AdamW launch be identical from step to step (so a
        CUDA graph can replay them)."""
        if step < 1:
            raise ValueError(f"step must be >= 1 (the first update is step 1), got {step}")
        vals = np.array([1.0 - lr * weight_decay, 1.0 - beta1, beta2, 1.0 - beta2,
                         lr / (1.0 - beta1 ** step), math.sqrt(1.0 - beta2 ** step), eps])
        self.b.copy_(hyper, self.b.from_numpy(vals))

    def adamw_step_multi_(self, params: Sequence[Array], grads: Sequence[Array],
                          exp_avgs: Sequence[Array], exp_avg_sqs: Sequence[Array], hyper: Array,
                          masters: Optional[Sequence[Optional[Array]]] = None) -> None:
        """AdamW on every parameter of the parallel lists, in place, the scalars read from hyper:
            p = p * decay;  m = m + (1-b1) (g - m);  v = b2 v + (1-b2) g g
            p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
        A parameter with a master (float32) copy is updated through it and receives its rounded
        copy. (One launch per dtype for all parameters on the GPU.)"""
        b = self.b
        decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps = \
            b.to_numpy(hyper).tolist()
        masters = masters if masters is not None else [None] * len(params)
        for param, grad, m, v, master in zip(params, grads, exp_avgs, exp_avg_sqs, masters):
            p = master if master is not None else param
            if b.dtype(grad) != b.dtype(m):                  # bf16 gradients, float32 moments
                grad = b.astype(grad, b.dtype(m))
            p_new = b.binary("mul", p, decay)                                # decoupled weight decay
            b.copy_(m, b.binary("add", m, b.binary("mul", b.binary("sub", grad, m), one_minus_beta1)))
            v_new = b.binary("add", b.binary("mul", v, beta2),
                             b.binary("mul", b.binary("mul", grad, one_minus_beta2), grad))
            b.copy_(v, v_new)
            denom = b.binary("add", b.binary("div", b.unary("sqrt", v), bc2_sqrt), eps)
            b.copy_(p, b.binary("sub", p_new, b.binary("div", b.binary("mul", m, step_size), denom)))
            if master is not None:
                b.copy_(param, master)

    def clip_by_total_norm(self, xs: Sequence[Array], max_norm: float) -> tuple[Array, list]:
        """(norm, scaled): the joint L2 norm of the arrays xs as a 0-d float32 array (float64 when
        any x is float64; squares summed in that precision), and new arrays
        x * min(1, max_norm / (norm + 1e-6)) in each x's dtype (the coefficient cast to x's dtype
        first): clip_grad_norm_'s math in a few launches over all of xs on the GPU."""
        b = self.b
        acc = "float64" if any(b.dtype(x) == "float64" for x in xs) else "float32"
        total = b.full((), 0.0, acc)
        for x in xs:
            shape = b.shape(x)
            if math.prod(shape) == 0:
                continue
            a = x if b.dtype(x) == acc else b.astype(x, acc)
            part = b.reduce_sum(b.binary("mul", a, a), tuple(range(len(shape))), False)
            total = b.binary("add", total, part)
        total = b.unary("sqrt", total)
        coef = b.binary("minimum", b.binary("div", max_norm, b.binary("add", total, 1e-6)), 1.0)
        coef_as = {acc: coef}
        out = []
        for x in xs:
            dt, shape = b.dtype(x), b.shape(x)
            if dt not in coef_as:
                coef_as[dt] = b.astype(coef, dt)
            c = b.expand(b.reshape(coef_as[dt], (1,) * len(shape)), shape)
            out.append(b.binary("mul", x, c))
        return total, out

    def clip_by_total_norm_(self, xs: Sequence[Array], max_norm: float) -> Array:
        """clip_by_total_norm, the scaled values written back into xs (which must not overlap):
        the CUDA-graph step clips its fixed gradient buffers, whose addresses never change.
        Returns the norm."""
        total, scaled = self.clip_by_total_norm(xs, max_norm)
        for x, y in zip(xs, scaled):
            self.b.copy_(x, y)
        return total

    # ------------------------------------------------------------------ gradients and uploads
    def add_(self, dst: Array, src: Array) -> None:
        """dst += src in place (same shape and dtype): accumulating a gradient into a fixed
        buffer (fast/cuda_graph.py's StaticGrads)."""
        self.b.copy_(dst, self.b.binary("add", dst, src))

    def upload_ids(self, host: np.ndarray) -> Array:
        """Host token ids (any int array) as an int64 device array. On a GPU through pinned
        staging memory and a non-blocking copy: the host goes on queueing work instead of waiting
        for the GPU to drain its queue (Backend.from_numpy of pageable memory is a synchronous
        copy). The caller may reuse `host` at once."""
        return self.b.from_numpy(np.ascontiguousarray(host, dtype=np.int64), "int64")

    # ------------------------------------------------------------------ CUDA graphs
    def cuda_graph_check(self) -> None:
        """Raise (NotImplementedError or RuntimeError, saying why) unless cuda_graph() works here."""
        raise NotImplementedError(f"the {self.b.name} backend has no CUDA graphs")

    def cuda_graph(self) -> Any:
        """A new graph: capture(fn) records the launches fn makes (without running them) and
        returns fn's result; replay() runs them again on the same memory."""
        self.cuda_graph_check()


_OPS: dict[int, tuple[Backend, FastOps]] = {}


def fast_ops(backend: Backend) -> FastOps:
    """The performance layer's operations for `backend` (one object per backend, which keeps its
    dropout seed offset): TritonFastOps on the Triton backend, the specification elsewhere."""
    hit = _OPS.get(id(backend))
    if hit is None or hit[0] is not backend:
        if getattr(backend, "name", None) == "triton":
            from .triton_ops import TritonFastOps
            ops: FastOps = TritonFastOps(backend)
        else:
            ops = FastOps(backend)
        hit = _OPS[id(backend)] = (backend, ops)
    return hit[1]
