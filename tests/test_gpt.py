"""models/gpt.py against an independent torch implementation (tests/torch_gpt.py), plus the
model's contracts: parameter groups, parameter counts, KV-cached generation, sampling, padded
vocabulary, input errors, MFU, config round trips, and the NumPy vs Triton backends."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
from minigrad.models import GPT, GPTConfig, KVCache
from minigrad.models.gpt import peak_flops

torch = pytest.importorskip("torch")
from backend_testing import cuda_backend  # noqa: E402  (tests/ is on sys.path)
from torch_gpt import TorchGPT, load_from_minigrad  # noqa: E402

TINY = dict(block_size=16, vocab_size=57, n_layer=2, n_head=2, n_embd=16)

# option combinations that matter (not the full product): every activation, norm, position
# scheme, bias mode and tying choice appears, in pairs that exercise different code paths
COMBOS = [
    dict(activation="gelu", norm="layernorm", pos="learned", bias=True, tie_weights=True),  # GPT-2
    dict(activation="gelu_exact", norm="layernorm", pos="learned", bias=False, tie_weights=False),
    dict(activation="silu", norm="rmsnorm", pos="rope", bias=False, tie_weights=True),
    dict(activation="swiglu", norm="rmsnorm", pos="rope", bias=False, qkv_bias=True,
         tie_weights=False),                                                             # Qwen-ish
    dict(activation="swiglu", norm="layernorm", pos="learned", bias=True, tie_weights=True,
         n_embd=32),
    dict(activation="gelu", norm="rmsnorm", pos="rope", bias=True, tie_weights=False,
         rope_theta=500.0),
    dict(activation="silu", norm="layernorm", pos="rope", bias=False, qkv_bias=True,
         tie_weights=True, vocab_size=70),
    dict(activation="gelu", norm="layernorm", pos="learned", bias=True, tie_weights=False,
         pad_vocab_multiple=1, ffn_hidden=40, vocab_size=50),
]


def _cfg(**kw) -> GPTConfig:
    return GPTConfig(**{**TINY, **kw})


def _ids(shape, high, seed=0):
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(np.int64)


def _pair(cfg: GPTConfig, dtype: str, seed: int = 0):
    """A minigrad GPT (random non-trivial norms/biases too) and the torch oracle with its weights."""
    minigrad.manual_seed(seed)
    model = GPT(cfg, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    # perturb norm weights and zero-initialised biases so they matter in the comparison
    state = {}
    for name, p in model.named_parameters():
        if p.ndim == 1:
            state[name] = p.numpy() + rng.normal(0, 0.1, p.shape)
    model.load_state_dict(state, strict=False)
    tmodel = TorchGPT(cfg).to(torch.float64 if dtype == "float64" else torch.float32)
    load_from_minigrad(tmodel, model)
    return model, tmodel


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_matches_torch_float64(combo):
    cfg = _cfg(**combo)
    model, tmodel = _pair(cfg, "float64")
    B, T = 2, 8
    idx = _ids((B, T), cfg.vocab_size, 1)
    targets = _ids((B, T), cfg.vocab_size, 2)
    targets[0, :3] = -100                                   # ignore_index rows must not count
    logits, loss = model(minigrad.tensor(idx), minigrad.tensor(targets))
    loss.backward()
    tlogits, tloss = tmodel(torch.from_numpy(idx), torch.from_numpy(targets))
    tloss.backward()

    assert logits.shape == (B, T, cfg.vocab_size)
    np.testing.assert_allclose(logits.numpy(), tlogits.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-9)
    tparams = dict(tmodel.named_parameters())
    names = [n for n, _ in model.named_parameters()]
    assert set(names) == set(tparams)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        tg = tparams[name].grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), tg, rtol=1e-9, atol=1e-12 * max(1, np.abs(tg).max()),
                                   err_msg=name)


@pytest.mark.parametrize("combo", [COMBOS[0], COMBOS[3]], ids=["gpt2", "swiglu-rope"])
def test_matches_torch_float32(combo):
    cfg = _cfg(**combo)
    model, tmodel = _pair(cfg, "float32")
    idx, targets = _ids((2, 8), cfg.vocab_size, 3), _ids((2, 8), cfg.vocab_size, 4)
    logits, loss = model(minigrad.tensor(idx), minigrad.tensor(targets))
    loss.backward()
    tlogits, tloss = tmodel(torch.from_numpy(idx), torch.from_numpy(targets))
    tloss.backward()
    np.testing.assert_allclose(logits.numpy(), tlogits.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    tparams = dict(tmodel.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=1e-3,
                                   atol=1e-5, err_msg=name)


def test_parameter_names_and_shapes():
    cfg = _cfg(activation="swiglu", bias=False, tie_weights=False, pos="rope")
    model = GPT(cfg)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    H = cfg.mlp_hidden
    assert H == 64                                          # 8/3 * 16 = 42.7 -> multiple of 64
    assert shapes["transformer.wte.weight"] == (64, 16)     # 57 padded to 64
    assert shapes["lm_head.weight"] == (64, 16)
    assert shapes["transformer.h.1.mlp.c_fc.weight"] == (2 * H, 16)
    assert shapes["transformer.h.1.mlp.c_proj.weight"] == (16, H)
    assert shapes["transformer.h.0.attn.c_attn.weight"] == (48, 16)
    assert "transformer.wpe.weight" not in shapes
    assert not any(n.endswith(".bias") for n in shapes)

    tied = GPT(_cfg())
    assert tied.lm_head.weight is tied.transformer.wte.weight
    names = [n for n, _ in tied.named_parameters()]
    assert "lm_head.weight" not in names                    # shared: listed once, as torch
    assert "transformer.h.0.attn.c_attn.bias" in names and "transformer.ln_f.bias" in names


def test_init_statistics():
    cfg = GPTConfig(block_size=32, vocab_size=300, n_layer=4, n_head=4, n_embd=64)
    minigrad.manual_seed(0)
    model = GPT(cfg)
    params = dict(model.named_parameters())
    std = lambda n: float(params[n].numpy().std())          # noqa: E731
    assert abs(std("transformer.h.0.attn.c_attn.weight") - 0.02) < 0.002
    assert abs(std("transformer.wte.weight") - 0.02) < 0.002
    assert abs(std("transformer.h.0.mlp.c_proj.weight") - 0.02 / math.sqrt(8)) < 0.001
    assert abs(std("transformer.h.3.attn.c_proj.weight") - 0.02 / math.sqrt(8)) < 0.001
    assert np.all(params["transformer.h.0.attn.c_attn.bias"].numpy() == 0)
    assert np.all(params["transformer.h.0.ln_1.weight"].numpy() == 1)


@pytest.mark.parametrize("tie", [True, False])
def test_decay_groups(tie):
    model = GPT(_cfg(tie_weights=tie))
    decay, no_decay = model.decay_groups()
    dn, nn_ = {n for n, _ in decay}, {n for n, _ in no_decay}
    all_names = {n for n, _ in model.named_parameters()}
    assert dn | nn_ == all_names and not dn & nn_
    expected_decay = {n for n in all_names if n.endswith(("c_attn.weight", "c_proj.weight",
                                                          "c_fc.weight"))}
    if not tie:
        expected_decay.add("lm_head.weight")
    assert dn == expected_decay
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
            "transformer.h.0.attn.c_attn.bias", "transformer.h.1.ln_2.bias"} <= nn_
    dn2 = {n for n, _ in model.decay_groups(decay_embeddings=True)[0]}
    assert dn2 == expected_decay | {"transformer.wte.weight", "transformer.wpe.weight"}

    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=3e-4, betas=(0.9, 0.95))
    assert isinstance(opt, minigrad.optim.AdamW)
    g0, g1 = opt.param_groups
    assert g0["weight_decay"] == 0.1 and g1["weight_decay"] == 0.0
    assert g0["lr"] == 3e-4 and tuple(g0["betas"]) == (0.9, 0.95) and g0["eps"] == 1e-8
    assert len(g0["params"]) == len(dn) and len(g1["params"]) == len(nn_)


def test_get_num_params():
    cfg = _cfg()
    model = GPT(cfg)
    C, L, Vp, bs = cfg.n_embd, cfg.n_layer, cfg.padded_vocab_size, cfg.block_size
    per_block = (2 * 2 * C) + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    total = Vp * C + bs * C + L * per_block + 2 * C
    assert model.get_num_params(non_embedding=False) == total
    assert model.get_num_params() == total - bs * C          # wpe out; tied wte stays (lm_head)
    tmodel = TorchGPT(cfg)
    assert model.get_num_params(non_embedding=False) == sum(p.numel() for p in tmodel.parameters())
    untied = GPT(_cfg(tie_weights=False))
    assert untied.get_num_params(non_embedding=False) == total + Vp * C
    assert untied.get_num_params() == total + Vp * C - bs * C - Vp * C


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_kv_cache_logits_equal_full_recompute(pos):
    cfg = _cfg(pos=pos, activation="swiglu" if pos == "rope" else "gelu")
    model, _ = _pair(cfg, "float64")
    model.eval()
    seq = _ids((2, 5), cfg.vocab_size, 5)
    cache = KVCache(cfg.n_layer)
    with minigrad.no_grad():
        logits, _ = model(minigrad.tensor(seq), kv_cache=cache, last_only=True)
        for step in range(8):
            full, _ = model(minigrad.tensor(seq), last_only=True)              # (B, 1, V)
            np.testing.assert_allclose(logits.numpy(), full.numpy(), rtol=1e-10, atol=1e-12)
            if step == 4:       # several new tokens at once against the cache (bottom-right mask)
                new = _ids((2, 3), cfg.vocab_size, 50 + step)
            else:
                new = full.numpy()[:, -1].argmax(-1)[:, None]
            seq = np.concatenate([seq, new], axis=1)
            logits, _ = model(minigrad.tensor(new), kv_cache=cache)
            logits = logits[:, -1:]
            assert cache.length == seq.shape[1]
            assert cache.k[0].shape == (2, cfg.n_head, seq.shape[1], cfg.head_size)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_generate_cache_equals_no_cache_greedy(pos):
    cfg = _cfg(pos=pos, block_size=12)
    model, _ = _pair(cfg, "float64", seed=3)
    prompt = minigrad.tensor(_ids((2, 4), cfg.vocab_size, 6))
    # 14 new tokens: runs past block_size (12), exercising the crop-and-recompute fallback
    a = model.generate(prompt, 14, temperature=0.0, use_cache=True)
    b = model.generate(prompt, 14, temperature=0.0, use_cache=False)
    assert a.shape == (2, 18) and a.dtype == "int64"
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy()[:, :4], prompt.numpy())
    # and greedy really is argmax of the full recomputation at each step
    seq = a.numpy()
    with minigrad.no_grad():
        for t in range(4, 18):
            ctx = seq[:, max(0, t - cfg.block_size):t]
            logits, _ = model.eval()(minigrad.tensor(ctx), last_only=True)
            np.testing.assert_array_equal(logits.numpy()[:, -1].argmax(-1), seq[:, t])


def test_sampling_is_deterministic_and_stream_matches():
    cfg = _cfg(pos="rope")
    model = GPT(cfg)
    prompt = minigrad.tensor(_ids((1, 3), cfg.vocab_size, 7))
    kw = dict(temperature=1.3, top_k=20, top_p=0.9, repetition_penalty=1.2)
    a = model.generate(prompt, 10, generator=1234, **kw).numpy()
    b = model.generate(prompt, 10, generator=minigrad.Generator(1234), **kw).numpy()
    np.testing.assert_array_equal(a, b)
    c = model.generate(prompt, 10, generator=99, **kw).numpy()
    assert not np.array_equal(a, c)                      # (overwhelmingly likely)
    streamed = list(model.generate_stream(prompt, 10, generator=1234, **kw))
    assert all(isinstance(t, int) for t in streamed)
    assert streamed == a[0, 3:].tolist()
    nc = model.generate(prompt, 10, generator=1234, use_cache=False, **kw).numpy()
    np.testing.assert_array_equal(a, nc)
    with pytest.raises(ValueError, match="B == 1"):
        next(model.generate_stream(minigrad.tensor(_ids((2, 3), 50)), 2))


def test_generate_leaves_modes_alone_and_stops_at_eos():
    model = GPT(_cfg(dropout=0.1))
    model.train()
    prompt = minigrad.tensor(_ids((1, 4), 57, 8))
    stream = model.generate_stream(prompt, 5, temperature=0)
    first = next(stream)
    assert model.training and minigrad.is_grad_enabled()   # nothing leaks between yields
    out = model.generate(prompt, 5, temperature=0, eos_token=first)
    assert out.shape == (1, 5) and out.numpy()[0, -1] == first
    assert list(model.generate_stream(prompt, 5, temperature=0, eos_token=first)) == [first]
    assert model.training


def test_padded_vocab_never_generated():
    cfg = _cfg(vocab_size=50, tie_weights=False)            # lm_head has 64 rows, 14 padded
    model = GPT(cfg)
    w = model.lm_head.weight.numpy().copy()
    w[50:] = 100.0                                          # padded columns would win every argmax
    model.load_state_dict({"lm_head.weight": w}, strict=False)
    prompt = minigrad.tensor(_ids((4, 3), 50, 9))
    logits, _ = model(prompt)
    assert logits.shape == (4, 3, 50)
    for temp in (0.0, 1.0, 5.0):
        out = model.generate(prompt, 12, temperature=temp, generator=0).numpy()
        assert out.max() < 50


def test_block_size_overflow_error():
    cfg = _cfg(block_size=8)
    model = GPT(cfg)
    with pytest.raises(ValueError, match="block_size"):
        model(minigrad.tensor(_ids((1, 9), 57)))
    cache = KVCache(cfg.n_layer)
    model(minigrad.tensor(_ids((1, 6), 57)), kv_cache=cache)
    with pytest.raises(ValueError, match="block_size"):
        model(minigrad.tensor(_ids((1, 3), 57)), kv_cache=cache)
    # a prompt longer than block_size is fine for generate (it is cropped)
    assert model.generate(minigrad.tensor(_ids((1, 20), 57)), 2, temperature=0).shape == (1, 22)


def test_bad_ids_errors():
    model = GPT(_cfg())                                     # vocab 57, padded 64
    with pytest.raises(IndexError, match="vocab_size=57"):
        model(minigrad.tensor([[1, 2, 57]]))                # a padded row is still out of range
    with pytest.raises(IndexError, match=r"\[-1, 2\]"):
        model(minigrad.tensor([[1, 2, -1]]))
    with pytest.raises(TypeError, match="int64"):
        model(minigrad.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(minigrad.tensor([1, 2]))
    with pytest.raises(ValueError, match="targets"):
        model(minigrad.tensor([[1, 2]]), minigrad.tensor([[1, 2, 3]]))


def test_config_errors_and_round_trip():
    with pytest.raises(ValueError, match="activation"):
        GPTConfig(activation="relu2")
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="unknown GPTConfig"):
        GPTConfig.from_dict({"n_layer": 2, "n_lyer": 3})
    cfg = _cfg(pos="rope", norm="rmsnorm", activation="swiglu")
    model = GPT(cfg)
    clone = GPT.from_config_dict(cfg.to_dict())
    assert clone.config == cfg
    clone.load_state_dict(model.state_dict())
    idx = minigrad.tensor(_ids((1, 8), 57))
    np.testing.assert_array_equal(model(idx)[0].numpy(), clone(idx)[0].numpy())


def test_last_only_and_dropout():
    model = GPT(_cfg(dropout=0.2))
    idx = minigrad.tensor(_ids((2, 8), 57, 10))
    model.eval()
    full, _ = model(idx)
    last, _ = model(idx, last_only=True)
    assert last.shape == (2, 1, 57)
    np.testing.assert_allclose(last.numpy()[:, 0], full.numpy()[:, -1], rtol=1e-5, atol=1e-6)
    model.train()
    minigrad.manual_seed(0)
    train_logits, loss = model(idx, idx)
    assert not np.allclose(train_logits.numpy(), full.numpy())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mfu():
    model = GPT(_cfg())
    cfg = model.config
    N = model.get_num_params(non_embedding=True)
    assert model.flops_per_token() == 6 * N + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
    assert model.flops_per_token(T=4) == 6 * N + 12 * cfg.n_layer * cfg.n_embd * 4
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert peak_flops("NVIDIA H200", "bfloat16") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-40GB", "bfloat16") == 312e12
    assert peak_flops("NVIDIA GeForce RTX 4090", "bfloat16") == 165.2e12
    assert peak_flops("cpu") is None and peak_flops(None) is None

    small = model                            # on cpu: no peak known unless given
    assert small.estimate_mfu(1e4) is None
    fpt = small.flops_per_token()
    assert small.estimate_mfu(1e4, peak_flops=1e12) == pytest.approx(fpt * 1e4 / 1e12)
    assert small.estimate_mfu(1e4, device_name="NVIDIA H100 80GB HBM3", dtype="bfloat16") == \
        pytest.approx(fpt * 1e4 / 989e12)


def test_cpu_vs_cuda_backend_float32():
    cuda_backend()
    cfg = GPTConfig(block_size=8, vocab_size=40, n_layer=1, n_head=2, n_embd=16,
                    pos="rope", activation="swiglu", norm="rmsnorm", bias=False, qkv_bias=True,
                    tie_weights=True)
    minigrad.manual_seed(0)
    cpu = GPT(cfg)
    gpu = GPT(cfg)
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    idx, tgt = _ids((1, 4), cfg.vocab_size, 11), _ids((1, 4), cfg.vocab_size, 12)
    _, loss_c = cpu(minigrad.tensor(idx), minigrad.tensor(tgt))
    _, loss_g = gpu(minigrad.tensor(idx, device="cuda"), minigrad.tensor(tgt, device="cuda"))
    loss_c.backward()
    loss_g.backward()
    np.testing.assert_allclose(loss_g.item(), loss_c.item(), rtol=1e-4)
    gp = dict(gpu.named_parameters())
    for name, p in cpu.named_parameters():
        np.testing.assert_allclose(gp[name].grad.numpy(), p.grad.numpy(), rtol=2e-3, atol=1e-5,
                                   err_msg=name)


def _composite_attention_forward(self, x, rope=None, kv_cache=None, layer=0):
    """CausalSelfAttention.forward as it was before attention dropout moved into the fused kernels:
    split heads, scores -> causal mask -> softmax -> F.dropout -> @ v, merge heads."""
    F = minigrad.nn.functional
    B, T, C = x.shape
    nh, hs = self.n_head, C // self.n_head
    q, k, v = (t.reshape(B, T, nh, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
    s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))                    # (B, nh, T, T)
    s = s.masked_fill(minigrad.tensor(np.triu(np.ones((T, T), dtype=bool), 1), device=x.device),
                      float("-inf"))
    probs = F.dropout(F.softmax(s, -1), self.dropout, training=self.training)
    y = (probs @ v).transpose(1, 2).contiguous().reshape(B, T, C)
    return self.resid_dropout(self.c_proj(y))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_attention_dropout_runs_fused_and_equals_the_composite(monkeypatch, device):
    """An accelerated model training with dropout takes the fused qkv attention path (dropout_p =
    config.dropout in train mode, 0 in eval) and, for one manual_seed, gives the logits, loss and
    gradients of the composite softmax -> F.dropout path: the fused kernels draw F.dropout's mask
    for the (B, nh, T, T) probabilities and the global generator advances exactly as before. The
    readable model (F.scaled_dot_product_attention with dropout_p) gives the same too."""
    if device == "cuda":
        cuda_backend()
    from minigrad import fast
    from minigrad.fast import functional as FF
    from minigrad.fast.modules import FusedSelfAttention
    minigrad.manual_seed(0)
    model = GPT(_cfg(dropout=0.3, n_layer=2, bias=False, tie_weights=False))
    model.to(device)
    readable = GPT(_cfg(dropout=0.3, n_layer=2, bias=False, tie_weights=False))
    readable.load_state_dict(model.state_dict())
    readable.to(device)
    model, _ = fast.accelerate(model)
    idx = minigrad.tensor(_ids((2, 12), 57, 3), device=device)
    tgt = minigrad.tensor(_ids((2, 12), 57, 4), device=device)
    seen = []
    fused_qkv = FF.qkv_self_attention
    monkeypatch.setattr(FF, "qkv_self_attention",
                        lambda *a, **kw: seen.append(kw["dropout_p"]) or fused_qkv(*a, **kw))

    def step(seed, model=model):
        model.zero_grad()
        minigrad.manual_seed(seed)
        logits, loss = model(idx, tgt)
        loss.backward()
        return logits.numpy(), loss.item(), {n: p.grad.numpy() for n, p in model.named_parameters()}

    model.train()
    logits, loss, grads = step(1)
    assert seen == [0.3, 0.3] and np.isfinite(loss)
    again = step(1)
    np.testing.assert_array_equal(again[0], logits)                          # reproducible
    assert not np.allclose(step(2)[0], logits)                               # the seed matters
    model.eval()
    seen.clear()
    with minigrad.no_grad():
        eval_logits, _ = model(idx, tgt)
    assert seen == [0.0, 0.0] and not np.allclose(eval_logits.numpy(), logits)
    model.train()
    r_logits, r_loss, r_grads = step(1, readable)                            # the readable model
    monkeypatch.setattr(FusedSelfAttention, "forward", _composite_attention_forward)
    seen.clear()
    c_logits, c_loss, c_grads = step(1)
    assert seen == []                                                        # really the composite
    for other_logits, other_loss, other_grads in ((c_logits, c_loss, c_grads), (r_logits, r_loss, r_grads)):
        np.testing.assert_allclose(logits, other_logits, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(loss, other_loss, rtol=1e-5)
        for name, g in grads.items():
            np.testing.assert_allclose(g, other_grads[name], rtol=1e-3, atol=1e-5, err_msg=name)
