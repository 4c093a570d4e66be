"""GPT: a decoder-only transformer on minigrad, written to read like nanoGPT's model.py.

    config = GPTConfig(block_size=256, vocab_size=50257, n_layer=6, n_head=6, n_embd=384)
    model = GPT(config)
    logits, loss = model(idx, targets)          # idx, targets: int64 (B, T)
    out = model.generate(idx, max_new_tokens=100, temperature=0.8, top_k=200)

What it is: pre-norm blocks (x + attn(norm(x)), x + mlp(norm(x))), causal self-attention
through minigrad's fused F.scaled_dot_product_attention, GPT-2 parameter names
(transformer.wte / wpe / h.{i}.ln_1 / attn.c_attn / attn.c_proj / ln_2 / mlp.c_fc / mlp.c_proj /
ln_f, lm_head), weight tying, nanoGPT's scaled residual init, decay/no-decay parameter groups,
an MFU estimate and KV-cached generation. The options cover GPT-2 and modern small models:
GELU/SiLU/SwiGLU, LayerNorm/RMSNorm, learned positions/RoPE, biases on/off/qkv-only.

Decisions worth knowing (see the README, "The GPT model"):
- Padded vocabulary: wte and lm_head have `padded_vocab_size` rows (vocab_size rounded up to
  pad_vocab_multiple, for matmul-friendly shapes), but forward() returns logits sliced to the
  TRUE vocab_size, (B, T, vocab_size). So the loss and sampling never see the padded columns
  and a padded id can never be generated (nanoGPT instead keeps them and relies on training to
  push them down). Their rows get no gradient from the loss.
- activation "gelu" is GPT-2's tanh approximation (HF "gelu_new"); "gelu_exact" is the erf form
  (torch's nn.GELU() default, which nanoGPT uses).
- SwiGLU: mlp.c_fc is ONE fused Linear(C, 2H); the first H outputs are the gate, the last H the
  up projection: c_proj(silu(gate) * up). H = ffn_hidden, or 2/3 * mlp_ratio * C rounded up to a
  multiple of 64 (8/3 C for mlp_ratio 4, as Llama).
- RoPE: the rotate-half form of GPT-NeoX / HF Llama over the whole head dim, frequencies
  theta^(-2i/hs); cos/sin tables are computed on the host in float64 and cast to the model dtype.
- KV cache and generation: models/generate.py (GPT.generate and generate_stream come from its
  Generation mixin).

Not here: multi-query/grouped attention, sliding windows, mixture of experts, loading OpenAI's
GPT-2 checkpoints (models/hf_export.py reads and writes the HF GPT-2 layout), and anything that
is only faster: the performance layer (fast/modules.py) swaps in fused subclasses of these
modules (one-Function attention and MLP, a loss that overwrites its logits), tested equal.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

import minigrad
from minigrad import Tensor, nn
from minigrad.nn import functional as F
from minigrad.nn import init
from minigrad.tensor_shape import value_range

from .mfu import GPU_PEAK_FLOPS, _peak, peak_flops  # noqa: F401  (re-exported)
from .generate import Generation, KVCache

_ACTIVATIONS = ("gelu", "gelu_exact", "silu", "swiglu")
_NORMS = ("layernorm", "rmsnorm")
_POSITIONS = ("learned", "rope")


def _round_up(n: int, multiple: int) -> int:
    return ((n + multiple - 1) // multiple) * multiple if multiple > 1 else n


@dataclass
class GPTConfig:
    block_size: int = 1024          # longest sequence (context length)
    vocab_size: int = 50257         # true vocabulary; see padded_vocab_size
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0            # embedding, attention-probability and residual dropout
    bias: bool = True               # biases in every Linear and LayerNorm (GPT-2); False = none...
    qkv_bias: bool = False          # ...except, when True, attn.c_attn's (Qwen-style)
    activation: str = "gelu"        # "gelu" (tanh approx, GPT-2) | "gelu_exact" | "silu" | "swiglu"
    norm: str = "layernorm"         # "layernorm" | "rmsnorm"
    pos: str = "learned"            # "learned" (wpe) | "rope"
    rope_theta: float = 10000.0
    tie_weights: bool = True        # lm_head.weight is transformer.wte.weight
    pad_vocab_multiple: int = 64    # wte/lm_head rows = vocab_size rounded up to this
    norm_eps: float = 1e-5
    mlp_ratio: int = 4              # MLP hidden = mlp_ratio * n_embd (swiglu: 2/3 of that, /64)
    ffn_hidden: Optional[int] = None  # explicit MLP hidden size (overrides mlp_ratio)

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "mlp_ratio",
                     "pad_vocab_multiple"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GPTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"GPTConfig.activation must be one of {_ACTIVATIONS}, got "
                             f"{self.activation!r}")
        if self.norm not in _NORMS:
            raise ValueError(f"GPTConfig.norm must be one of {_NORMS}, got {self.norm!r}")
        if self.pos not in _POSITIONS:
            raise ValueError(f"GPTConfig.pos must be one of {_POSITIONS}, got {self.pos!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"RoPE needs an even head size, got n_embd/n_head = "
                             f"{self.n_embd // self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.ffn_hidden is not None and int(self.ffn_hidden) < 1:
            raise ValueError(f"GPTConfig.ffn_hidden must be >= 1 or None, got {self.ffn_hidden}")

    @property
    def padded_vocab_size(self) -> int:
        return _round_up(self.vocab_size, self.pad_vocab_multiple)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        """H: the width of the MLP's hidden activation (for SwiGLU, of each of gate and up)."""
        if self.ffn_hidden is not None:
            return int(self.ffn_hidden)
        if self.activation == "swiglu":
            return _round_up(int(2 * self.mlp_ratio * self.n_embd / 3), 64)
        return self.mlp_ratio * self.n_embd

    def to_dict(self) -> dict:
        """Plain JSON-able dict of the fields (for checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)


def rope_tables(n_pos: int, head_size: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin (n_pos, head_size) in float64 for the rotate-half form: angle[p, i] =
    p * theta^(-2 (i mod hs/2) / hs), i.e. the hs/2 frequencies repeated for both halves."""
    inv_freq = 1.0 / theta ** (np.arange(0, head_size, 2, dtype=np.float64) / head_size)  # (hs/2,)
    ang = np.outer(np.arange(n_pos, dtype=np.float64), inv_freq)         # (n_pos, hs/2)
    ang = np.concatenate([ang, ang], axis=-1)                            # (n_pos, hs)
    return np.cos(ang), np.sin(ang)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, nh, T, hs) by position: x * cos + rotate_half(x) * sin, with cos/sin (T, hs)
    and rotate_half(x) = cat(-x2, x1) where x1, x2 are the two halves of the head dim."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]                                      # (B, nh, T, hs/2) each
    rotated = minigrad.cat([-x2, x1], dim=-1)                            # (B, nh, T, hs)
    return x * cos + rotated * sin


def _norm(config: GPTConfig, device, dtype) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps, device=device, dtype=dtype)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias, device=device,
                        dtype=dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, device=None, dtype=None):
        super().__init__()
        C = config.n_embd
        # q, k, v projections for all heads in one matmul
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias or config.qkv_bias, device=device,
                                dtype=dtype)
        self.c_proj = nn.Linear(C, C, bias=config.bias, device=device, dtype=dtype)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, C, config.dropout

    def forward(self, x: Tensor, rope: Optional[tuple] = None, kv_cache: Optional[KVCache] = None,
                layer: int = 0) -> Tensor:
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        # q, k, v for all heads at once, then split into heads: (B, T, C) -> (B, nh, T, hs)
        q, k, v = self.c_attn(x).split(C, dim=2)                         # (B, T, C) each
        q = q.reshape(B, T, nh, hs).transpose(1, 2)                      # (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2)                      # (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2)                      # (B, nh, T, hs)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)                          # (B, nh, S, hs), S >= T
        # causal self-attention, softmax(q k^T / sqrt(hs)) v, in one fused op; with a KV cache the
        # mask is aligned bottom-right: query t (of T) sees keys j <= t + S - T
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().reshape(B, T, C)              # re-assemble the heads
        return self.resid_dropout(self.c_proj(y))                        # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig, device=None, dtype=None):
        super().__init__()
        C, H = config.n_embd, config.mlp_hidden
        self.activation, self.hidden = config.activation, H
        width = 2 * H if config.activation == "swiglu" else H           # swiglu: gate and up fused
        self.c_fc = nn.Linear(C, width, bias=config.bias, device=device, dtype=dtype)
        self.act = _activation(config.activation)
        self.c_proj = nn.Linear(H, C, bias=config.bias, device=device, dtype=dtype)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.activation == "swiglu":
            gate, up = self.c_fc(x).split(self.hidden, dim=-1)           # (B, T, H) each
            return self.dropout(self.c_proj(self.act(gate) * up))        # (B, T, C)
        x = self.c_fc(x)                                                 # (B, T, H)
        x = self.act(x)                                                  # GELU (or SiLU)
        x = self.c_proj(x)                                               # (B, T, C)
        return self.dropout(x)


def _activation(name: str) -> nn.Module:
    """"gelu" is GPT-2's tanh approximation, "gelu_exact" the erf form, swiglu gates with SiLU."""
    if name == "gelu":
        return nn.GELU(approximate="tanh")
    return nn.GELU() if name == "gelu_exact" else nn.SiLU()


class Block(nn.Module):
    def __init__(self, config: GPTConfig, device=None, dtype=None):
        super().__init__()
        self.ln_1 = _norm(config, device, dtype)
        self.attn = CausalSelfAttention(config, device, dtype)
        self.ln_2 = _norm(config, device, dtype)
        self.mlp = MLP(config, device, dtype)

    def forward(self, x: Tensor, rope=None, kv_cache: Optional[KVCache] = None, layer: int = 0):
        x = x + self.attn(self.ln_1(x), rope, kv_cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(Generation, nn.Module):
    def __init__(self, config: GPTConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        Vp, C = config.padded_vocab_size, config.n_embd
        modules = dict(wte=nn.Embedding(Vp, C, device=device, dtype=dtype))
        if config.pos == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, C, device=device, dtype=dtype)
        modules["drop"] = nn.Dropout(config.dropout)
        modules["h"] = nn.ModuleList([Block(config, device, dtype) for _ in range(config.n_layer)])
        modules["ln_f"] = _norm(config, device, dtype)
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(C, Vp, bias=False, device=device, dtype=dtype)
        if config.tie_weights:
            # one Parameter under two names: the input embedding is the output projection
            self.lm_head.weight = self.transformer.wte.weight
        self._rope_cache: dict = {}
        self._init_weights()

    # ------------------------------------------------------------------ construction
    def _init_weights(self) -> None:
        """N(0, 0.02) for Linear and Embedding weights, N(0, 0.02/sqrt(2 n_layer)) for the
        c_proj weights that write into the residual stream (GPT-2's scaled init), zero biases,
        norms at weight 1 / bias 0 (their constructors' default)."""
        std = 0.02
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                s = std / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj") else std
                if not (m is self.lm_head and self.config.tie_weights):   # tied: init as wte
                    init.normal_(m.weight, 0.0, s)
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                init.normal_(m.weight, 0.0, std)

    @classmethod
    def from_config_dict(cls, d: dict, device=None, dtype=None) -> "GPT":
        """A freshly initialised GPT from GPTConfig.to_dict() output (e.g. from a checkpoint)."""
        return cls(GPTConfig.from_dict(d), device=device, dtype=dtype)

    @property
    def device(self) -> str:
        return self.transformer.wte.weight.device

    @property
    def dtype(self) -> str:
        return self.transformer.wte.weight.dtype

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (a tied weight counted once, padded rows included).

        non_embedding=True leaves out the lookup-only tables, as nanoGPT: wpe, and wte when it is
        not tied (a tied wte is also the lm_head matmul, so it stays in)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            if self.config.pos == "learned":
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_weights:
                n -= self.transformer.wte.weight.numel()
        return n

    # ------------------------------------------------------------------ forward
    def _check_idx(self, idx, what: str = "idx", max_len: Optional[int] = None) -> Tensor:
        """idx as an int64 (B, T) Tensor on the model's device, its ids checked against the
        vocabulary: host ids (a NumPy array, as train.py's batches) on the host before the
        upload, a Tensor's by reading them back from the device."""
        host = None
        if not isinstance(idx, Tensor):
            host = np.asarray(idx)
            if host.dtype.kind not in "iu":
                raise TypeError(f"{what} must hold integer token ids, got dtype {host.dtype}")
            idx = Tensor(host.astype(np.int64, copy=False), device=self.device)
        if idx.dtype != "int64":
            raise TypeError(f"{what} must be an int64 tensor of token ids, got {idx.dtype}")
        if idx.ndim != 2:
            raise ValueError(f"{what} must have shape (B, T), got shape {idx.shape}")
        if idx.shape[0] == 0 or idx.shape[1] == 0:
            raise ValueError(f"{what} must be non-empty, got shape {idx.shape}")
        if max_len is not None and idx.shape[1] > max_len:
            raise ValueError(f"cannot forward a sequence of length {idx.shape[1]}: block_size is "
                             f"only {max_len} (GPTConfig.block_size={self.config.block_size})")
        if idx.device != self.device:
            raise ValueError(f"{what} is on '{idx.device}' but the model is on '{self.device}'")
        lo, hi = (int(host.min()), int(host.max())) if host is not None else value_range(idx)
        if lo < 0 or hi >= self.config.vocab_size:
            raise IndexError(f"{what}: token ids must be in [0, {self.config.vocab_size - 1}] "
                             f"(vocab_size={self.config.vocab_size}), got values in [{lo}, {hi}]")
        return idx

    def _rope(self, start: int, T: int) -> tuple[Tensor, Tensor]:
        """cos, sin (T, hs) for absolute positions start..start+T-1, in the model's dtype."""
        key = (self.device, self.dtype)
        if key not in self._rope_cache:
            cos, sin = rope_tables(self.config.block_size, self.config.head_size,
                                   self.config.rope_theta)
            self._rope_cache = {key: tuple(Tensor(a, device=self.device, dtype=self.dtype)
                                           for a in (cos, sin))}
        cos, sin = self._rope_cache[key]                                 # (block_size, hs)
        return cos[start:start + T], sin[start:start + T]                # (T, hs)

    def forward(self, idx, targets=None, ignore_index: int = -100, last_only: bool = False,
                kv_cache: Optional[KVCache] = None,
                return_logits: bool = True) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """idx int64 (B, T), T <= block_size -> (logits, loss).

        logits: (B, T, vocab_size) — the TRUE vocab: the padded columns are sliced off, so they
        can never be sampled or enter the loss. last_only=True (ignored when targets are given)
        returns (B, 1, vocab_size) for the last position only, skipping the lm_head matmul for
        the others (what generation needs). loss: mean cross-entropy over targets (B, T) that
        are != ignore_index, or None without targets. return_logits=False (with targets: a
        training step) returns (None, loss).

        kv_cache: decode with a KVCache — idx holds the T new tokens at absolute positions
        kv_cache.length .. kv_cache.length + T - 1; their keys/values are appended to the cache.
        """
        start = kv_cache.length if kv_cache is not None else 0
        idx = self._check_idx(idx, max_len=self.config.block_size - start)
        B, T = idx.shape
        V = self.config.vocab_size
        x = self.hidden_states(idx, kv_cache)                            # (B, T, C)
        if targets is None and last_only:
            x = x[:, -1:, :]                                             # (B, 1, C)
        logits = self.lm_head(x)                                         # (B, T, Vp)
        if self.config.padded_vocab_size != V:
            logits = logits[..., :V]                                     # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(B * T, V), self._targets(targets, B, T).reshape(B * T),
                               ignore_index=ignore_index)
        return (logits if return_logits else None), loss

    def hidden_states(self, idx: Tensor, kv_cache: Optional[KVCache] = None) -> Tensor:
        """The transformer itself: ids (B, T) (checked by forward) -> the final hidden states
        (B, T, C), one per position, that lm_head turns into logits. With a kv_cache the positions
        continue from kv_cache.length and the new keys and values are appended to it."""
        B, T = idx.shape
        start = kv_cache.length if kv_cache is not None else 0
        x = self.transformer.wte(idx)                                    # (B, T, C) token embeddings
        if self.config.pos == "learned":
            # row p of wpe embeds position p: positions start..start+T-1 are T rows of it
            x = x + self.transformer.wpe.weight.narrow(0, start, T)      # + (T, C) position embeddings
        rope = self._rope(start, T) if self.config.pos == "rope" else None
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, rope, kv_cache, i)                              # (B, T, C)
        if kv_cache is not None:
            kv_cache.length += T
        return self.transformer.ln_f(x)                                  # (B, T, C)

    def _targets(self, targets, B: int, T: int) -> Tensor:
        """targets (B, T): a Tensor, or host ids uploaded here (F.cross_entropy checks the ids)."""
        if not isinstance(targets, Tensor):
            arr = np.asarray(targets)
            if arr.dtype.kind not in "iu":
                raise TypeError(f"targets must hold integer token ids, got dtype {arr.dtype}")
            targets = Tensor(arr.astype(np.int64, copy=False), device=self.device)
        if tuple(targets.shape) != (B, T):
            raise ValueError(f"targets must have the shape of idx {(B, T)}, got {targets.shape}")
        return targets

    # ------------------------------------------------------------------ optimizer
    def decay_groups(self, decay_embeddings: bool = False) -> tuple[list, list]:
        """([(name, param)] with weight decay, [(name, param)] without).

        Decay: the 2-d matmul weights (every Linear's weight; an untied lm_head too). No decay:
        norm weights/biases, every bias, and the embedding tables (wte, wpe) unless
        decay_embeddings. A tied wte/lm_head weight counts as an embedding."""
        embeddings = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        matmul = {id(m.weight) for m in self.modules() if isinstance(m, nn.Linear)}
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if id(p) in embeddings:
                (decay if decay_embeddings else no_decay).append((name, p))
            elif id(p) in matmul and p.ndim == 2:
                decay.append((name, p))
            else:
                no_decay.append((name, p))
        return decay, no_decay

    def configure_optimizers(self, weight_decay: float, learning_rate: float,
                             betas: tuple = (0.9, 0.95), eps: float = 1e-8,
                             decay_embeddings: bool = False):
        """AdamW over two parameter groups: decay (weight_decay) and no decay (0.0); see
        decay_groups for which parameter goes where."""
        decay, no_decay = self.decay_groups(decay_embeddings)
        groups = [{"params": [p for _, p in decay], "weight_decay": weight_decay},
                  {"params": [p for _, p in no_decay], "weight_decay": 0.0}]
        return minigrad.optim.AdamW(groups, lr=learning_rate, betas=tuple(betas), eps=eps)

    # ------------------------------------------------------------------ MFU
    def flops_per_token(self, T: Optional[int] = None) -> float:
        """Training FLOPs per token (forward + backward), PaLM appendix B / nanoGPT:
        6 N + 12 L C T, with N = get_num_params(non_embedding=True), L layers, C = n_embd
        (= n_head * head_size) and T the sequence length (default block_size). 6N is the
        weight matmuls (2 forward + 4 backward per weight); 12 L C T the attention scores and
        the weighted sum of values, counted over the full T x T square as PaLM and nanoGPT do
        (a causal kernel does about half of that work)."""
        cfg = self.config
        T = cfg.block_size if T is None else T
        return 6 * self.get_num_params(non_embedding=True) + 12 * cfg.n_layer * cfg.n_embd * T

    def estimate_mfu(self, tokens_per_second: float, peak_flops: Optional[float] = None,
                     device_name: Optional[str] = None, dtype: Optional[str] = None,
                     T: Optional[int] = None) -> Optional[float]:
        """Model FLOPs utilisation in [0, 1]: flops_per_token(T) * tokens_per_second / peak.

        peak_flops (FLOP/s) overrides the table; otherwise the peak of `device_name` (e.g.
        "NVIDIA H100 80GB HBM3") for `dtype` (default: the model's; float32 -> TF32 peak) from
        GPU_PEAK_FLOPS. Returns None when no peak is known (CPU, unknown GPU): pass peak_flops.
        """
        if peak_flops is None:
            peak_flops = _peak(device_name, dtype or self.dtype, self.device)
            if peak_flops is None:
                return None
        return self.flops_per_token(T) * tokens_per_second / peak_flops
