"""FastOps on our Triton kernels: the fused forms of the performance layer's operations.

Each method computes what its FastOps specification (fast/ops.py) computes, in fewer launches:
the bias and the activation ride in the matmul's epilogue (kernels/matmul.py), a bias gradient
in its weight gradient's matmul (the row sums of dY^T), the loss and its gradient come out of one
pass over the logits (kernels/cross_entropy.py), attention reads q, k, v in place from the fused
projection and writes its output with the heads merged, AdamW and clipping
walk every parameter from one pointer table (kernels/adamw.py, kernels/multi_tensor.py), and the
dropout seed offset lives in device memory so a CUDA graph can vary it between replays.

Like the core Triton backend, torch is storage only here: every computation is one of our kernels
(tests/test_no_torch_math.py scans this file too); CUDA graphs are torch's runtime, not math.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from minigrad.kernels import adamw as _adamw
from minigrad.kernels import attention as _attention
from minigrad.kernels import copy as _copy
from minigrad.kernels import cross_entropy as _ce
from minigrad.kernels import dropout as _dropout
from minigrad.kernels import elementwise as _ew
from minigrad.kernels import matmul_auto as _mm
from minigrad.kernels import multi_tensor as _multi

from .ops import FastOps

# MLP_ACTIVATIONS -> the matmul epilogue's activation names
_MATMUL_ACTIVATION = {"gelu": "gelu_tanh", "gelu_exact": "gelu_exact", "silu": "silu"}


class TritonFastOps(FastOps):
    def __init__(self, b):
        super().__init__(b)
        self.seed_offset_tensor: Optional[torch.Tensor] = None   # (1,) int64 once set

    @staticmethod
    def _contig(x):
        """x, or a contiguous copy made by our copy kernel (as the Triton backend's)."""
        return x if x.is_contiguous() else _copy.copy(x)

    # ------------------------------------------------------------------ matmul epilogues
    def matmul(self, a, b_):
        return _mm.matmul(a, b_)                              # plans and variant picks

    def matmul_bias(self, a, w_t, bias):
        return _mm.matmul(a, w_t, bias=bias)                  # the bias in the epilogue

    def matmul_bias_act(self, a, w_t, bias, activation):
        pre = torch.empty((a.shape[0], w_t.shape[1]), dtype=a.dtype, device=a.device)
        y = _mm.matmul(a, w_t, bias=bias, activation=_MATMUL_ACTIVATION[activation], pre_out=pre)
        return y, pre                                         # pre and y from one epilogue

    def matmul_act_grad(self, a, b_, pre, activation):
        return _mm.matmul(a, b_, activation=_MATMUL_ACTIVATION[activation], act_grad_at=pre)

    def matmul_rowsum(self, a, b_):
        if a.dim() == 2 and b_.dim() == 2 and b_.shape[1] == 0:
            return super().matmul_rowsum(a, b_)             # N == 0: no tiles to carry the sums
        rowsum = torch.empty((a.shape[0],), dtype=a.dtype, device=a.device)
        return _mm.matmul(a, b_, rowsum=rowsum), rowsum       # the row sums from the same launch

    # ------------------------------------------------------------------ loss
    def cross_entropy_fwd_bwd_(self, logits, targets, ignore_index, n_classes):
        if not logits.is_contiguous():
            raise ValueError("cross_entropy_fwd_bwd_: logits must be contiguous (they are overwritten)")
        losses, _, _ = _ce.cross_entropy_fwd_bwd(logits[:, :n_classes], self._contig(targets),
                                                 ignore_index, 1.0, out=logits)
        return losses

    # ------------------------------------------------------------------ dropout and attention
    def set_dropout_seed_offset_(self, offset):
        super().set_dropout_seed_offset_(offset)
        if self.seed_offset_tensor is None:     # created on first use: eager runs never pay for it
            self.seed_offset_tensor = _dropout.seed_offset_tensor(self.b.storage_device)
        _dropout.set_seed_offset_(self.seed_offset_tensor, offset)

    def dropout_fwd(self, x, p, seed):
        return _dropout.dropout_fwd(x, p, seed, self.seed_offset_tensor)

    def attention_fwd(self, q, k, v, causal, scale, dropout_p=0.0, seed=0):
        return _attention.attention_fwd(q, k, v, causal, scale, None, dropout_p=dropout_p, seed=seed,
                                        seed_offset=self.seed_offset_tensor)

    def attention_bwd(self, do, q, k, v, o, lse, causal, scale, dropout_p=0.0, seed=0):
        return _attention.attention_bwd(do, q, k, v, o, self._contig(lse), causal, scale, None,
                                        dropout_p=dropout_p, seed=seed,
                                        seed_offset=self.seed_offset_tensor)

    def qkv_attention_fwd(self, qkv, n_head, causal, scale, dropout_p=0.0, seed=0):
        qkv = self._contig(qkv)
        B, T, C3 = qkv.shape
        C, hs = C3 // 3, C3 // (3 * n_head)
        q, k, v = self._qkv_heads(qkv, n_head)                               # views, no copies
        y = torch.empty((B, T, C), dtype=qkv.dtype, device=qkv.device)
        # o written straight into y's (B, T, nh, hs) layout: the heads come out merged
        _, lse = _attention.attention_fwd(q, k, v, causal, scale,
                                          out=y.view(B, T, n_head, hs).permute(0, 2, 1, 3),
                                          dropout_p=dropout_p, seed=seed,
                                          seed_offset=self.seed_offset_tensor)
        return y, lse

    def qkv_attention_bwd(self, dy, qkv, y, lse, n_head, causal, scale, dropout_p=0.0, seed=0):
        qkv = self._contig(qkv)
        B, T, C3 = qkv.shape
        hs = C3 // (3 * n_head)
        q, k, v = self._qkv_heads(qkv, n_head)
        do = self._contig(dy).view(B, T, n_head, hs).permute(0, 2, 1, 3)      # (B, nh, T, hs)
        o = y.view(B, T, n_head, hs).permute(0, 2, 1, 3)
        dqkv = torch.empty((B, T, C3), dtype=qkv.dtype, device=qkv.device)
        # dq, dk, dv written into their thirds of one buffer: no split-gradient fills, copies, adds
        parts = tuple(self._qkv_heads(dqkv, n_head))
        _attention.attention_bwd(do, q, k, v, o, self._contig(lse), causal, scale, out=parts,
                                 dropout_p=dropout_p, seed=seed, seed_offset=self.seed_offset_tensor)
        return dqkv

    # ------------------------------------------------------------------ optimizer and clipping
    def adamw_hyper_(self, hyper, lr, beta1, beta2, eps, weight_decay, step):
        _adamw.adamw_hyper_(hyper, lr, beta1, beta2, eps, weight_decay, step)

    def adamw_step_multi_(self, params, grads, exp_avgs, exp_avg_sqs, hyper, masters=None):
        _adamw.adamw_step_multi_dev_(params, [self._contig(g) for g in grads], exp_avgs, exp_avg_sqs,
                                     hyper, masters)

    def clip_by_total_norm(self, xs, max_norm):
        total, _, out = _multi.clip_by_total_norm([self._contig(x) for x in xs], max_norm)
        return total, out

    def clip_by_total_norm_(self, xs, max_norm):
        total, _, _ = _multi.clip_by_total_norm(list(xs), max_norm, in_place=True)
        return total

    # ------------------------------------------------------------------ gradients and uploads
    def add_(self, dst, src):
        _ew.add_(dst, src)

    def upload_ids(self, host):
        host = np.ascontiguousarray(host, dtype=np.int64)
        device = self.b.storage_device
        if device.type != "cuda":               # the interpreter: storage is host memory already
            return self.b.from_numpy(host, "int64")
        # Pinned staging from torch's caching host allocator: a block is handed out again only
        # once the copies that read it have run (torch records an event on the stream for each
        # non-blocking copy), so a new host batch never overwrites one still in flight.
        staging = torch.empty(host.shape, dtype=torch.int64, pin_memory=True)
        np.copyto(staging.numpy(), host)
        return staging.to(device, non_blocking=True)

    # ------------------------------------------------------------------ CUDA graphs
    def cuda_graph_check(self):
        if self.b.storage_device.type != "cuda":
            raise RuntimeError("Triton's interpreter runs the kernels on the CPU: no CUDA graphs")

    def cuda_graph(self):
        self.cuda_graph_check()
        return _CudaGraph()


class _CudaGraph:
    """torch.cuda.CUDAGraph behind FastOps.cuda_graph()'s protocol (the graph API is CUDA's runtime,
    not math). Launches during capture go to torch's capture stream, which Triton's launcher uses as
    the current stream; allocations come from the graph's private pool."""

    executes_on_capture = False

    def __init__(self):
        self.graph = torch.cuda.CUDAGraph()
        self.keep: list = []

    def capture(self, fn):
        torch.cuda.synchronize()                  # warm-up work must be done before capturing
        stream = torch.cuda.current_stream()
        try:
            with torch.cuda.graph(self.graph):
                out = fn()
        finally:
            # torch.cuda.graph leaves its side stream current when capture_end raises (a failed
            # capture): everything after would run on it, unordered with the default stream
            torch.cuda.set_stream(stream)
        # the multi-tensor kernels read pointer tables: keep every one alive as long as the graph
        self.keep = _multi.live_tables()
        return out

    def replay(self):
        self.graph.replay()
