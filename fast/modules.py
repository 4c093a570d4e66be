"""The fused modules the performance layer swaps into a GPT, each a subclass of the module it replaces.

    nn.Linear               -> FusedLinear          bias in the matmul epilogue, dW in W's layout
    models.gpt.MLP          -> FusedMLP             c_proj(act(c_fc(x))) as one Function
    CausalSelfAttention     -> FusedSelfAttention   heads read from the qkv projection in place
    nn.Dropout              -> FastDropout          masks a CUDA-graph replay can vary
    nn.Embedding            -> TrustedEmbedding     ids already checked on the host, no read-back
    models.gpt.GPT          -> FastGPT              host-checked ids, lm_head + a loss that overwrites its logits

A swap changes an instance's class to the subclass (Liger-Kernel swaps module classes the same
way): parameters, their names, state_dict() and every isinstance() check stay as they were, and
print(model) shows what runs. Each forward computes what its parent's does, in fewer launches;
where a case has no fused form (RoPE or a KV cache in attention, SwiGLU, mixed dtypes), it calls
the parent's forward. tests/test_fast_parity.py checks the swapped model against the readable one.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from minigrad import Tensor, nn
from minigrad.models import gpt

from . import functional as FF
from .ops import fast_ops


class FusedLinear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        return FF.linear(x, self.weight, self.bias)


class FusedMLP(gpt.MLP):
    def forward(self, x: Tensor) -> Tensor:
        if self.activation == "swiglu":
            return super().forward(x)
        y = FF.mlp(x, self.c_fc.weight, self.c_proj.weight, self.c_fc.bias, self.c_proj.bias,
                   activation=self.activation)                            # (B, T, C)
        return self.dropout(y)


class FusedSelfAttention(gpt.CausalSelfAttention):
    def forward(self, x: Tensor, rope: Optional[tuple] = None, kv_cache=None, layer: int = 0) -> Tensor:
        dropout_p = self.dropout if self.training else 0.0
        if rope is None and kv_cache is None:
            # one Function: heads read from qkv in place, y written with its heads merged, the
            # attention dropout applied inside the kernels
            y = FF.qkv_self_attention(self.c_attn(x), self.n_head, is_causal=True,
                                      dropout_p=dropout_p)                # (B, T, C)
            return self.resid_dropout(self.c_proj(y))
        if kv_cache is not None or dropout_p == 0.0:
            return super().forward(x, rope, kv_cache, layer)
        # RoPE in training with dropout: the parent's steps, its attention masks drawn through the
        # performance layer (whose seed offset a CUDA-graph replay changes)
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = (t.reshape(B, T, nh, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        q, k = gpt.apply_rope(q, *rope), gpt.apply_rope(k, *rope)
        y = FF.attention(q, k, v, is_causal=True, dropout_p=dropout_p)    # (B, nh, T, hs)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().reshape(B, T, C)))


class FastDropout(nn.Dropout):
    def forward(self, x: Tensor) -> Tensor:
        return FF.dropout(x, self.p, self.training)


class TrustedEmbedding(nn.Embedding):
    """An embedding inside FastGPT: its ids were checked on the host by FastGPT.forward (or are
    positions below block_size), so it skips the device read-back that F.embedding's check costs."""

    def forward(self, idx: Tensor) -> Tensor:
        return FF.embedding_unchecked(idx, self.weight)


class FastGPT(gpt.GPT):
    def forward(self, idx, targets=None, ignore_index: int = -100, last_only: bool = False,
                kv_cache=None, return_logits: bool = True):
        """GPT.forward. A training step (targets given, return_logits=False, no cache) checks its
        ids on the host, uploads host idx and targets together without waiting for the GPU, runs
        the transformer, and computes the loss and its gradient in one pass over the lm_head
        output, overwriting it (FF.linear_cross_entropy): no copy of a sliced vocabulary, no
        softmax buffer, no second pass over the logits in backward (the mean's 1/N scales the
        narrow x instead)."""
        if targets is None or return_logits or kv_cache is not None:
            return super().forward(idx, targets, ignore_index, last_only, kv_cache, return_logits)
        idx, targets = self._upload_batch(idx, targets)
        idx = self._check_idx(idx, max_len=self.config.block_size)
        B, T = idx.shape
        if not isinstance(targets, Tensor):
            targets = FF.host_ids(np.asarray(targets), self.device)
        flat = self._targets(targets, B, T).reshape(B * T)                 # (B*T,)
        if getattr(targets, "_known_range", None) is not None:             # a view: same values
            FF.with_known_range(flat, *targets._known_range)
        x = self.hidden_states(idx)                                        # (B, T, C)
        x = x.reshape(B * T, self.config.n_embd)                           # (B*T, C)
        if self.lm_head.bias is not None:          # (GPT's lm_head has none; a subclass might)
            logits = self.lm_head(x)                                       # (B*T, Vp)
            return None, FF.cross_entropy_in_place(logits, flat, self.config.vocab_size, ignore_index)
        loss = FF.linear_cross_entropy(x, self.lm_head.weight, flat, self.config.vocab_size, ignore_index)
        return None, loss

    def _upload_batch(self, idx, targets):
        """Host batches (train.py's NumPy idx and targets, integer (B, T) each) as two views of
        one device array, uploaded together without making the host wait for the GPU (FastOps.
        upload_ids: pinned memory, a non-blocking copy) and carrying their host-checked ranges.
        Anything else comes back as it is, for the checks that say what is wrong with it."""
        if isinstance(idx, Tensor) or isinstance(targets, Tensor):
            return idx, targets
        x, y = np.asarray(idx), np.asarray(targets)
        if x.ndim != 2 or x.shape != y.shape or x.size == 0 or x.dtype.kind not in "iu" \
                or y.dtype.kind not in "iu":
            return idx, targets
        backend = self.transformer.wte.weight.backend
        both = Tensor._wrap(fast_ops(backend).upload_ids(np.stack([x, y])), backend)   # (2, B, T)
        return (FF.with_known_range(both[0], int(x.min()), int(x.max())),
                FF.with_known_range(both[1], int(y.min()), int(y.max())))

    def _check_idx(self, idx, what: str = "idx", max_len: Optional[int] = None) -> Tensor:
        """GPT._check_idx, except that a Tensor carrying a range checked on the host (FF.host_ids,
        the CUDA-graph step's static batches) is trusted instead of read back from the device."""
        known = getattr(idx, "_known_range", None) if isinstance(idx, Tensor) else None
        if known is None or idx.ndim != 2 or idx.dtype != "int64" or idx.device != self.device \
                or (max_len is not None and idx.shape[1] > max_len):
            return super()._check_idx(idx, what, max_len)
        if known[0] < 0 or known[1] >= self.config.vocab_size:
            raise IndexError(f"{what}: token ids must be in [0, {self.config.vocab_size - 1}] "
                             f"(vocab_size={self.config.vocab_size}), got values in {list(known)}")
        return idx


# module class -> the fused class it becomes (the most specific match wins: see swap_modules)
SWAPS = {nn.Linear: FusedLinear, gpt.MLP: FusedMLP, gpt.CausalSelfAttention: FusedSelfAttention,
         nn.Dropout: FastDropout, nn.Embedding: TrustedEmbedding, gpt.GPT: FastGPT}


def swap_modules(model: nn.Module) -> dict[str, int]:
    """Give every module of `model` (itself included) whose class is in SWAPS its fused class, in
    place; returns how many of each fused class there are now. Modules already swapped, and
    subclasses the table does not know, are left as they are."""
    counts: dict[str, int] = {}
    for m in model.modules():
        new = SWAPS.get(type(m))
        if new is not None:
            m.__class__ = new
        if type(m) in SWAPS.values():
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    return counts
