"""A plain PyTorch implementation of models/gpt.py's architecture: the oracle for tests/test_gpt.py.

Written independently of minigrad (it only reads the config's fields), with the same parameter
names, so `load_from_minigrad` can copy a minigrad GPT's weights in by name. It is deliberately
unoptimised and literal: explicit masks, explicit norms, no fused kernels.

Conventions it must share with models/gpt.py (and that the test therefore checks):
- padded vocab = vocab_size rounded up to pad_vocab_multiple; logits are sliced to vocab_size;
- activation "gelu" is the tanh approximation (GPT-2), "gelu_exact" the erf form;
- SwiGLU: c_fc is one fused Linear(C, 2H) whose output halves are (gate, up): silu(gate) * up;
- RoPE: rotate-half (GPT-NeoX / HF Llama) form over the whole head dim, theta^(-2i/hs);
- pre-norm blocks, no bias on lm_head, RMSNorm has a weight and no bias.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _round_up(n: int, m: int) -> int:
    return ((n + m - 1) // m) * m if m > 1 else n


class TorchNorm(nn.Module):
    def __init__(self, cfg, C: int, bias: bool):
        super().__init__()
        self.kind, self.eps = cfg.norm, cfg.norm_eps
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if (bias and cfg.norm == "layernorm") else None

    def forward(self, x):
        if self.kind == "layernorm":
            mu = x.mean(-1, keepdim=True)
            var = ((x - mu) ** 2).mean(-1, keepdim=True)
            y = (x - mu) / torch.sqrt(var + self.eps) * self.weight
            return y + self.bias if self.bias is not None else y
        rms = torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)
        return x / rms * self.weight


def rope_tables(T: int, hs: int, theta: float, start: int = 0):
    inv = 1.0 / theta ** (np.arange(0, hs, 2, dtype=np.float64) / hs)          # (hs/2,)
    ang = np.outer(np.arange(start, start + T, dtype=np.float64), inv)         # (T, hs/2)
    ang = np.concatenate([ang, ang], axis=-1)                                  # (T, hs)
    return torch.from_numpy(np.cos(ang)), torch.from_numpy(np.sin(ang))


def apply_rope(x, cos, sin):
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos.to(x.dtype) + rot * sin.to(x.dtype)


class TorchAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg.n_embd
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(C, 3 * C, bias=cfg.bias or cfg.qkv_bias)
        self.c_proj = nn.Linear(C, C, bias=cfg.bias)
        self.rope = cfg.pos == "rope"
        self.theta = cfg.rope_theta

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.rope:
            cos, sin = rope_tables(T, hs, self.theta)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class TorchMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, act = cfg.n_embd, cfg.activation
        self.act = act
        if act == "swiglu":
            H = cfg.ffn_hidden or _round_up(int(2 * cfg.mlp_ratio * C / 3), 64)
            self.c_fc = nn.Linear(C, 2 * H, bias=cfg.bias)
        else:
            H = cfg.ffn_hidden or cfg.mlp_ratio * C
            self.c_fc = nn.Linear(C, H, bias=cfg.bias)
        self.c_proj = nn.Linear(H, C, bias=cfg.bias)

    def forward(self, x):
        h = self.c_fc(x)
        if self.act == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        elif self.act == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif self.act == "gelu_exact":
            h = F.gelu(h)
        else:
            h = F.silu(h)
        return self.c_proj(h)


class TorchBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = TorchNorm(cfg, cfg.n_embd, cfg.bias)
        self.attn = TorchAttention(cfg)
        self.ln_2 = TorchNorm(cfg, cfg.n_embd, cfg.bias)
        self.mlp = TorchMLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        Vp = _round_up(cfg.vocab_size, cfg.pad_vocab_multiple)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(Vp, cfg.n_embd),
            h=nn.ModuleList([TorchBlock(cfg) for _ in range(cfg.n_layer)]),
            ln_f=TorchNorm(cfg, cfg.n_embd, cfg.bias),
        ))
        if cfg.pos == "learned":
            self.transformer["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, Vp, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx, targets=None, ignore_index: int = -100):
        B, T = idx.shape
        x = self.transformer.wte(idx)
        if self.cfg.pos == "learned":
            x = x + self.transformer.wpe(torch.arange(T))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))[..., :self.cfg.vocab_size]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=ignore_index)
        return logits, loss


def load_from_minigrad(tmodel: TorchGPT, model) -> None:
    """Copy every parameter of a minigrad GPT into tmodel by name (dtype follows tmodel)."""
    own = dict(tmodel.named_parameters())
    theirs = dict(model.named_parameters())
    if set(own) != set(theirs):
        raise AssertionError(f"parameter names differ: only torch {sorted(set(own) - set(theirs))}, "
                             f"only minigrad {sorted(set(theirs) - set(own))}")
    with torch.no_grad():
        for name, p in own.items():
            src = torch.from_numpy(np.ascontiguousarray(theirs[name].numpy()))
            if tuple(src.shape) != tuple(p.shape):
                raise AssertionError(f"{name}: minigrad {tuple(src.shape)} vs torch {tuple(p.shape)}")
            p.copy_(src.to(p.dtype))
