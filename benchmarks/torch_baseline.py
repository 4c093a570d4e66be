"""The torch baseline GPT for the training benchmarks: nanoGPT's model.py, eager and idiomatic.

    model = TorchGPT(config).to(device)          # config: models/gpt.py's GPTConfig
    copy_from_minigrad(model, our_gpt)           # the same weights, copied by parameter name
    optimizer = adamw(model, decay_names, weight_decay, lr, betas, device)
    with torch.autocast("cuda", torch.bfloat16):
        logits, loss = model(idx, targets)       # logits (B, T, vocab_size), as our GPT

This is the *fast* baseline a torch user would write, not a literal oracle (that is
tests/torch_gpt.py): F.layer_norm / F.rms_norm, F.scaled_dot_product_attention(is_causal=True)
(FlashAttention on a GPU, dropout_p while training), F.gelu / F.silu, fused AdamW on CUDA and
bf16 autocast over fp32 parameters (the usual torch mixed precision; our GPT instead stores
bf16 parameters with fp32 master copies in its AdamW). It follows our GPT's conventions so that
weights copy over by name and the losses agree:

- parameter names are models/gpt.py's (GPT-2's), a tied lm_head is transformer.wte.weight;
- wte/lm_head have padded_vocab_size rows, but logits are sliced to the true vocab_size, so
  the padded columns never enter the loss (nanoGPT keeps them; our GPT does not);
- dropout as nanoGPT: on the embeddings, on the attention probabilities (SDPA's dropout_p, in
  training only), on each block's attention and MLP outputs;
- activation "gelu" is the tanh approximation, "gelu_exact" the erf form, "swiglu" one fused
  c_fc whose first half is the gate: c_proj(silu(gate) * up).

Not here: RoPE (no preset uses it; asking for it is a clear error), generation, its own
weight init (weights always come from our GPT, so both start from the same point).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Norm(nn.Module):
    """LayerNorm (optional bias) or RMSNorm (weight only), as models/gpt.py's _norm."""

    def __init__(self, cfg, bias: bool):
        super().__init__()
        self.kind, self.eps = cfg.norm, cfg.norm_eps
        self.weight = nn.Parameter(torch.ones(cfg.n_embd))
        self.bias = nn.Parameter(torch.zeros(cfg.n_embd)) if bias and cfg.norm == "layernorm" else None

    def forward(self, x):
        if self.kind == "rmsnorm":
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg.n_embd
        self.c_attn = nn.Linear(C, 3 * C, bias=cfg.bias or cfg.qkv_bias)
        self.c_proj = nn.Linear(C, C, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.n_head, self.dropout = cfg.n_head, cfg.dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)                          # (B, T, C) each
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)                  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H = cfg.mlp_hidden
        self.activation, self.hidden = cfg.activation, H
        width = 2 * H if cfg.activation == "swiglu" else H              # swiglu: gate and up fused
        self.c_fc = nn.Linear(cfg.n_embd, width, bias=cfg.bias)
        self.c_proj = nn.Linear(H, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        h = self.c_fc(x)                                                  # (B, T, H) or (B, T, 2H)
        if self.activation == "swiglu":
            gate, up = h.split(self.hidden, dim=-1)                       # (B, T, H) each
            h = F.silu(gate) * up
        elif self.activation == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif self.activation == "gelu_exact":
            h = F.gelu(h)
        else:
            h = F.silu(h)
        return self.dropout(self.c_proj(h))                               # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn = Norm(cfg, cfg.bias), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = Norm(cfg, cfg.bias), MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    """nanoGPT's GPT over a models/gpt.py GPTConfig; forward(idx, targets) -> (logits, loss)."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.pos != "learned":
            raise ValueError(f"the torch baseline implements learned positions only, got pos={cfg.pos!r}")
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.padded_vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=Norm(cfg, cfg.bias)))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx, targets=None):
        """idx, targets: int64 (B, T) -> logits (B, T, vocab_size), mean cross-entropy or None."""
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)                          # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))                   # (B, T, Vp)
        V = self.config.vocab_size
        if logits.size(-1) != V:
            logits = logits[..., :V]                                      # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
        return logits, loss


def host_weights(minigrad_model) -> dict[str, np.ndarray]:
    """{name: float32/float64 array} of a minigrad model's parameters (bf16 arrives as float32):
    a host snapshot to build torch models from after the minigrad model is gone."""
    return {name: np.ascontiguousarray(p.numpy()) for name, p in minigrad_model.named_parameters()}


def copy_from_minigrad(torch_model: nn.Module, source) -> None:
    """Copy every parameter of a minigrad GPT (or its `host_weights` snapshot) into
    `torch_model` by name, to its device and dtype. Raises when the names or shapes differ, so a
    silent half-copy cannot happen."""
    own = dict(torch_model.named_parameters())
    theirs = source if isinstance(source, dict) else host_weights(source)
    if set(own) != set(theirs):
        raise ValueError(f"parameter names differ: torch only {sorted(set(own) - set(theirs))}, "
                         f"minigrad only {sorted(set(theirs) - set(own))}")
    with torch.no_grad():
        for name, p in own.items():
            src = theirs[name]
            if src.shape != tuple(p.shape):
                raise ValueError(f"{name}: minigrad shape {src.shape} but torch {tuple(p.shape)}")
            p.copy_(torch.from_numpy(src))


def adamw(model: nn.Module, decay_names: Iterable[str], weight_decay: float, lr: float,
          betas: tuple, device: str) -> torch.optim.AdamW:
    """torch AdamW over our GPT's two groups (the names in `decay_names` get weight decay, the
    rest none; see GPT.decay_groups). Fused on CUDA (the fastest torch has), torch's default
    implementation on the CPU."""
    decay = set(decay_names)
    params = dict(model.named_parameters())
    groups = [{"params": [p for n, p in params.items() if n in decay], "weight_decay": weight_decay},
              {"params": [p for n, p in params.items() if n not in decay], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True if device == "cuda" else None)
