"""kernels/attention.py against torch (the oracle): values, lse and gradients.

Reference: torch.nn.functional.scaled_dot_product_attention in float64 on the same (rounded)
inputs, with an explicit bottom-right causal mask when T != S (and the additive bias folded into
the mask), differentiated by autograd; lse from torch.logsumexp of the masked scores.
Under the interpreter the kernels use 16x16 blocks, so T/S of 17..40 already cover multi-block,
tail, diagonal and fully-masked-row paths. q/k/v are non-contiguous views of a packed
(B, T, 3, H, D) tensor, as a GPT produces them. GPU-marked tests run realistic sizes.

Dropout: the reference rebuilds the fused kernels' mask as its specification says, the mask
kernels/dropout.py draws for a (B, H, T, S) tensor with the same seed, and differentiates
scores -> softmax -> * mask / (1 - p) -> @ v in float64.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from kernel_testing import DEVICE, check_compiles_for_sm90, gpu  # first: it sets up the interpreter
from minigrad.kernels import attention as A
from minigrad.kernels import dropout as DROP
from test_kernels_dropout import philox_keep   # the host-side Philox rule of the dropout mask

ON_GPU = DEVICE == "cuda"
# Per-dtype tolerances (atol, rtol) for o / gradients stored in that dtype. float32 multiplies in
# IEEE float32 by default (kernels/attention.py ALLOW_TF32 = False), on the GPU as in the interpreter;
# with TF32 allowed (ALLOW_TF32 = True or MINIGRAD_TF32=1) a GPU needs TF32_TOL instead.
TF32_TOL = (2e-2, 1e-2)
TOL = {
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (6e-2, 3e-2),
}
LSE_TOL = (1e-4, 1e-4)      # lse is float32 whatever the input dtype (relative to the scores)


@pytest.fixture(autouse=True)
def fixed_config(monkeypatch):
    monkeypatch.setattr(A, "AUTOTUNE", False)


def _qkv(B, H, T, S, D, dtype):
    """q (B, H, T, D) and k, v (B, H, S, D) as permuted views of packed (B, L, H, D) buffers."""
    q = torch.randn(B, T, H, D, device=DEVICE).to(dtype).permute(0, 2, 1, 3)
    kv = torch.randn(B, S, 2, H, D, device=DEVICE).to(dtype)
    k, v = kv[:, :, 0].permute(0, 2, 1, 3), kv[:, :, 1].permute(0, 2, 1, 3)
    return q, k, v


def _mask(T, S, causal, bias):
    """Additive float64 mask (T, S) or (B, H, T, S): bottom-right causal (-inf) plus bias."""
    m = torch.zeros(T, S, dtype=torch.float64, device=DEVICE)
    if causal:
        i = torch.arange(T, device=DEVICE)[:, None]
        j = torch.arange(S, device=DEVICE)[None, :]
        m = m.masked_fill(j > i + (S - T), float("-inf"))
    return m if bias is None else m + bias.double()


def _ref(q, k, v, do, causal, scale, bias=None):
    q64, k64, v64 = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    T, S = q.shape[2], k.shape[2]
    mask = _mask(T, S, causal, bias)
    o = F.scaled_dot_product_attention(q64, k64, v64, attn_mask=mask, scale=scale)
    o.backward(do.double())
    lse = torch.logsumexp(scale * q64.detach() @ k64.detach().transpose(-1, -2) + mask, -1)
    return o.detach(), lse, q64.grad, k64.grad, v64.grad


def _check(B, H, T, S, D, causal, dtype=torch.float32, bias=None, scale=None):
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    q, k, v = _qkv(B, H, T, S, D, dtype)
    do = torch.randn(B, T, H, D, device=DEVICE).to(dtype).permute(0, 2, 1, 3)   # non-contiguous
    o, lse = A.attention_fwd(q, k, v, causal, scale, bias)
    assert o.shape == q.shape and o.dtype == dtype and o.is_contiguous()
    assert lse.shape == (B, H, T) and lse.dtype == torch.float32
    ro, rlse, rdq, rdk, rdv = _ref(q, k, v, do, causal, scale, bias)
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(o.double(), ro, atol=atol, rtol=rtol)
    torch.testing.assert_close(lse.double(), rlse, atol=LSE_TOL[0], rtol=LSE_TOL[1])  # -inf == -inf
    dq, dk, dv = A.attention_bwd(do, q, k, v, o, lse, causal, scale, bias)
    for got, want, name in ((dq, rdq, "dq"), (dk, rdk, "dk"), (dv, rdv, "dv")):
        assert got.shape == want.shape and got.dtype == dtype, name
        assert torch.isfinite(got).all(), f"{name} has non-finite values"
        torch.testing.assert_close(got.double(), want, atol=2 * atol, rtol=2 * rtol, msg=name)
    return o, lse, dq, dk, dv


# (B, H, T, S, D): multi-block with tails, T == 1, T < S (KV cache: bottom-right causal),
# T > S (leading rows fully masked under causal), padded head dims 48 and 80.
SHAPES = [
    (1, 2, 33, 33, 32),
    (2, 1, 1, 1, 16),
    (1, 1, 1, 40, 32),
    (1, 1, 20, 37, 48),
    (1, 1, 37, 20, 16),
    (1, 2, 24, 24, 64),
    (1, 1, 17, 29, 80),
]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_float32(shape, causal):
    _check(*shape, causal)


def test_head_dim_128_tiny():
    _check(1, 1, 18, 18, 128, True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [True, False])
def test_half_precisions(dtype, causal):
    _check(1, 2, 33, 21, 32, causal, dtype)


@pytest.mark.parametrize("causal", [True, False])
def test_bias_expanded(causal):
    B, H, T, S, D = 2, 2, 19, 35, 32
    bias = torch.randn(1, H, T, S, device=DEVICE).expand(B, H, T, S)        # stride 0 over B
    _check(B, H, T, S, D, causal, bias=bias)


def test_bias_masks_whole_rows():
    # rows 0 and 5 see no key at all (bias -inf everywhere): o = 0, lse = -inf, no NaN anywhere
    B, H, T, S, D = 1, 1, 20, 20, 16
    bias = torch.zeros(T, S, device=DEVICE)
    bias[0] = float("-inf")
    bias[5] = float("-inf")
    bias[7, 3:] = float("-inf")
    bias = bias.expand(B, H, T, S)
    o, lse, dq, dk, dv = _check(B, H, T, S, D, False, bias=bias)
    assert (o[:, :, [0, 5]] == 0).all() and torch.isneginf(lse[:, :, [0, 5]]).all()
    assert (dq[:, :, [0, 5]] == 0).all()


def test_causal_t_greater_than_s_zero_rows():
    o, lse, dq, _, _ = _check(1, 1, 37, 20, 16, True)
    assert (o[:, :, :17] == 0).all() and torch.isneginf(lse[:, :, :17]).all()
    assert (dq[:, :, :17] == 0).all()


@pytest.mark.parametrize("blocks", [(32, 16), (16, 32)], ids=["BM32xBN16", "BM16xBN32"])
@pytest.mark.parametrize("T,S", [(45, 45), (23, 50), (50, 23)])
def test_unequal_block_sizes(monkeypatch, blocks, T, S):
    # The GPU uses BLOCK_M != BLOCK_N (e.g. dk/dv 32x128, dq 128x32): the causal range
    # arithmetic (which blocks are skipped, mask-free or masked) must not assume square blocks.
    bm, bn = blocks
    monkeypatch.setattr(A, "_fixed", lambda kind, d_pad, itemsize: dict(
        BLOCK_M=bm, BLOCK_N=bn, num_warps=4, num_stages=1))
    _check(1, 1, T, S, 16, True)
    _check_dropout(1, 1, T, S, 16, True)        # the regenerated mask follows the same ranges


def test_non_default_scale():
    _check(1, 1, 17, 17, 32, True, scale=0.3)


def test_expanded_do_and_o_views():
    # the gradient of a sum arrives as a stride-0 expanded view; o may be any view too
    B, H, T, S, D = 1, 2, 20, 20, 16
    q, k, v = _qkv(B, H, T, S, D, torch.float32)
    o, lse = A.attention_fwd(q, k, v, True, 0.25)
    do = torch.ones(1, 1, 1, 1, device=DEVICE).expand(B, H, T, D)
    o_view = torch.empty(B, T, H, D, device=DEVICE).permute(0, 2, 1, 3)
    o_view.copy_(o)
    _, _, rdq, rdk, rdv = _ref(q, k, v, do, True, 0.25)
    for got, want in zip(A.attention_bwd(do, q, k, v, o_view, lse, True, 0.25), (rdq, rdk, rdv)):
        torch.testing.assert_close(got.double(), want, atol=2e-4, rtol=2e-4)


def test_bad_inputs():
    q, k, v = _qkv(1, 2, 8, 8, 16, torch.float32)
    with pytest.raises(TypeError, match="share a dtype"):
        A.attention_fwd(q, k.half(), v, True, 0.25)
    with pytest.raises(TypeError, match="float32"):
        A.attention_fwd(q.double(), k.double(), v.double(), True, 0.25)
    with pytest.raises(ValueError, match="expected k and v"):
        A.attention_fwd(q, k[:, :1], v, True, 0.25)
    with pytest.raises(ValueError, match="bias"):
        A.attention_fwd(q, k, v, True, 0.25, bias=torch.zeros(1, 2, 8, 7, device=DEVICE))
    o, lse = A.attention_fwd(q, k, v, True, 0.25)
    with pytest.raises(ValueError, match="lse"):
        A.attention_bwd(o, q, k, v, o, lse[..., :4], True, 0.25)


# ---------------------------------------------------------------------------- dropout
def _keep(B, H, T, S, p, seed):
    """The specification of the fused mask: what kernels/dropout.py keeps of a (B, H, T, S)
    tensor (the attention probabilities) with this seed."""
    _, keep = DROP.dropout_fwd(torch.ones(B, H, T, S, device=DEVICE), p, seed)
    return keep


def _ref_dropout(q, k, v, do, causal, scale, keep, p, bias=None):
    """float64 torch autograd through scores -> softmax -> (* keep / (1 - p)) -> @ v. Rows that
    see no key give p = 0 (softmax over a finite stand-in row, times 0: no NaN in the grads)."""
    q64, k64, v64 = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    s = scale * q64 @ k64.transpose(-1, -2) + _mask(q.shape[2], k.shape[2], causal, bias)
    seen = torch.isfinite(s).any(-1, keepdim=True)
    probs = torch.softmax(torch.where(seen, s, 0.0), -1) * seen
    o = (probs * keep * (0.0 if p == 1 else 1.0 / (1.0 - p))) @ v64
    o.backward(do.double())
    return o.detach(), torch.logsumexp(s.detach(), -1), q64.grad, k64.grad, v64.grad


def _check_dropout(B, H, T, S, D, causal, p=0.3, seed=1234, dtype=torch.float32, bias=None):
    scale = 1.0 / math.sqrt(D)
    q, k, v = _qkv(B, H, T, S, D, dtype)
    do = torch.randn(B, T, H, D, device=DEVICE).to(dtype).permute(0, 2, 1, 3)
    o, lse = A.attention_fwd(q, k, v, causal, scale, bias, dropout_p=p, seed=seed)
    ro, rlse, rdq, rdk, rdv = _ref_dropout(q, k, v, do, causal, scale, _keep(B, H, T, S, p, seed), p, bias)
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(o.double(), ro, atol=atol, rtol=rtol)
    # the softmax statistics are those of the undropped probabilities
    torch.testing.assert_close(lse.double(), rlse, atol=LSE_TOL[0], rtol=LSE_TOL[1])
    dq, dk, dv = A.attention_bwd(do, q, k, v, o, lse, causal, scale, bias, dropout_p=p, seed=seed)
    for got, want, name in ((dq, rdq, "dq"), (dk, rdk, "dk"), (dv, rdv, "dv")):
        assert got.dtype == dtype and torch.isfinite(got).all(), name
        torch.testing.assert_close(got.double(), want, atol=2 * atol, rtol=2 * rtol, msg=name)
    return o, lse, dq, dk, dv


# (B, H, T, S, D): multi-block with tails, T < S, T > S (fully masked rows), padded head dims
DROPOUT_SHAPES = [(1, 2, 33, 33, 32), (1, 1, 20, 37, 48), (1, 1, 37, 20, 16), (2, 1, 17, 29, 80)]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", DROPOUT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dropout_float32(shape, causal):
    _check_dropout(*shape, causal)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dropout_half_precisions(dtype):
    _check_dropout(1, 2, 33, 21, 32, True, p=0.2, dtype=dtype)


def test_dropout_with_bias():
    B, H, T, S, D = 2, 2, 19, 35, 32
    _check_dropout(B, H, T, S, D, False, p=0.5, seed=7,
                   bias=torch.randn(1, H, T, S, device=DEVICE).expand(B, H, T, S))


def test_dropout_p_one_gives_zeros_without_nan():
    """p == 1 drops every probability: o = 0 and every gradient 0 (no inf scale, no NaN), while
    lse is still the undropped one."""
    o, lse, dq, dk, dv = _check_dropout(1, 2, 20, 20, 16, True, p=1.0)
    for t in (o, dq, dk, dv):
        assert (t == 0).all()
    assert torch.isfinite(lse).all()


def _revealed_mask(B, H, T, S, p, seed):
    """Run the kernel where its output shows the mask: q = 0 (uniform p = 1/S) and v = I (S = D),
    so o[b, h, i, j] = keep[b, h, i, j] / (S (1 - p))."""
    q = torch.zeros(B, H, T, S, device=DEVICE)
    eye = torch.eye(S, device=DEVICE).expand(B, H, S, S)
    o, _ = A.attention_fwd(q, eye, eye, False, 1.0, dropout_p=p, seed=seed)
    kept = o != 0
    torch.testing.assert_close(o[kept], torch.full_like(o[kept], 1.0 / (S * (1 - p))))
    return kept


def test_dropout_mask_rate_seed_and_spec():
    B, H, T, S, p = 2, 2, 40, 64, 0.3
    kept = _revealed_mask(B, H, T, S, p, seed=5)
    assert torch.equal(kept, _keep(B, H, T, S, p, 5))          # exactly kernels/dropout.py's mask
    assert abs(kept.float().mean().item() - (1 - p)) < 0.03      # 10240 draws: std 0.0045
    assert torch.equal(_revealed_mask(B, H, T, S, p, seed=5), kept)      # reproducible
    other = _revealed_mask(B, H, T, S, p, seed=6)
    assert (other != kept).float().mean().item() > 0.2           # 2 p (1 - p) = 0.42 expected


@pytest.mark.parametrize("S", [13, 37])
def test_dropout_mask_is_the_philox_rule_for_any_key_count(S):
    """S not a multiple of 4 (a row's last Philox call serves fewer than 4 keys): the fused mask
    is the host-side rule (output j % 4 of counter row * ceil(S/4) + j // 4, row = (b*H + h)*T + i),
    kernels/dropout.py's mask of a contiguous (B, H, T, S) tensor, and its mask of a strided one
    (a (B, H, S, T) buffer transposed), all with the same seed."""
    B, H, T, p, seed = 1, 2, 21, 0.4, 77
    kept = _revealed_mask(B, H, T, S, p, seed)
    assert torch.equal(kept.cpu(), torch.from_numpy(philox_keep((B, H, T, S), p, seed)))
    assert torch.equal(kept, _keep(B, H, T, S, p, seed))
    _, strided = DROP.dropout_fwd(torch.ones(B, H, S, T, device=DEVICE).transpose(-1, -2), p, seed)
    assert torch.equal(kept, strided)
    _check_dropout(B, H, T, S, 16, True, p=p, seed=seed)      # backward kernels: the same mask


@pytest.mark.parametrize("blocks", [(16, 32), (32, 64), (64, 16)], ids=lambda b: "x".join(map(str, b)))
def test_dropout_mask_does_not_depend_on_tile_sizes(monkeypatch, blocks):
    """Keys are drawn in groups of 4 per Philox call inside each (BLOCK_M, BLOCK_N) tile: the mask,
    in the forward and as the two backward kernels regenerate it, is the same for other tiles."""
    bm, bn = blocks
    monkeypatch.setattr(A, "_fixed", lambda kind, d_pad, itemsize: dict(BLOCK_M=bm, BLOCK_N=bn,
                                                                         num_warps=4, num_stages=1))
    B, H, T, S, p, seed = 1, 1, 40, 37, 0.3, 3
    assert torch.equal(_revealed_mask(B, H, T, S, p, seed).cpu(),
                       torch.from_numpy(philox_keep((B, H, T, S), p, seed)))
    _check_dropout(1, 2, 23, 70, 32, True, p=p, seed=seed)


def test_dropout_int64_counters_draw_the_same_mask(monkeypatch):
    """INDEX64 (chosen when B*H*T*S nears 2**31) forms the counters in int64: for counters below
    2**32 Philox gets the same words, so the mask is unchanged. Forced here on a small shape."""
    kept = _revealed_mask(1, 2, 24, 32, 0.4, seed=9)
    monkeypatch.setattr(A, "INT32_LIMIT", 100)
    assert A._meta(torch.zeros(1), 32, False, None, 0.4, 1, 2, 24, 32)["INDEX64"]
    assert torch.equal(_revealed_mask(1, 2, 24, 32, 0.4, seed=9), kept)
    _check_dropout(1, 2, 24, 32, 32, True, p=0.4, seed=9)


def test_dropout_seed_offset_read_on_the_device():
    """seed_offset (the CUDA-graph step's per-replay offset) is added to the seed in all three
    kernels: the mask and the gradients are those of seed + offset."""
    B, H, T, S, p, seed, shift = 1, 2, 24, 32, 0.4, 9, 2 ** 33 + 11
    off = DROP.seed_offset_tensor(DEVICE)
    DROP.set_seed_offset_(off, shift)
    q = torch.zeros(B, H, T, S, device=DEVICE)
    eye = torch.eye(S, device=DEVICE).expand(B, H, S, S)
    o, _ = A.attention_fwd(q, eye, eye, False, 1.0, dropout_p=p, seed=seed, seed_offset=off)
    assert torch.equal(o != 0, _keep(B, H, T, S, p, seed + shift))
    q, k, v = _qkv(B, H, T, S, 16, torch.float32)
    do = torch.randn(B, H, T, 16, device=DEVICE)
    o, lse = A.attention_fwd(q, k, v, True, 0.25, dropout_p=p, seed=seed, seed_offset=off)
    grads = A.attention_bwd(do, q, k, v, o, lse, True, 0.25, dropout_p=p, seed=seed, seed_offset=off)
    ref = _ref_dropout(q, k, v, do, True, 0.25, _keep(B, H, T, S, p, seed + shift), p)
    torch.testing.assert_close(o.double(), ref[0], atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, ref[2:]):
        torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=2e-5)
    with pytest.raises(ValueError, match="seed_offset must be"):
        A.attention_fwd(q, k, v, True, 0.25, dropout_p=p, seed=seed, seed_offset=off.int())


def test_dropout_gradients_reproducible_and_seed_dependent():
    B, H, T, S, D = 1, 2, 20, 20, 16
    q, k, v = _qkv(B, H, T, S, D, torch.float32)
    do = torch.randn(B, H, T, D, device=DEVICE)

    def run(seed):
        o, lse = A.attention_fwd(q, k, v, True, 0.25, dropout_p=0.5, seed=seed)
        return (o, *A.attention_bwd(do, q, k, v, o, lse, True, 0.25, dropout_p=0.5, seed=seed))
    a, b, c = run(3), run(3), run(4)
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and not torch.equal(x, z)


def test_launch_tuned_keeps_the_seed_out_of_the_signature():
    """A new dropout seed every step must not re-run the autotuner (kernels.helpers.launch_tuned's
    per_call arguments reach the kernel but not the signature)."""
    from types import SimpleNamespace

    from minigrad.kernels.helpers import launch_tuned

    calls = []

    class Launchable:
        def __init__(self, name, best=None):
            self.name, self.best_config = name, best

        def __getitem__(self, grid):
            return lambda *args, **kw: calls.append((self.name, kw))

    tuner = Launchable("tuner", SimpleNamespace(kwargs={"BLOCK_M": 64}, num_warps=8, num_stages=3))
    kernel = Launchable("kernel")
    x = torch.empty(2)
    for seed in (11, 12, 13):
        launch_tuned(tuner, kernel, None, (x, 96, 0.1), {"HAS_DROPOUT": True}, per_call={"seed": seed})
    assert [c[0] for c in calls] == ["tuner", "kernel", "kernel"]
    assert [c[1]["seed"] for c in calls] == [11, 12, 13]


def test_dropout_bad_arguments():
    q, k, v = _qkv(1, 1, 8, 8, 16, torch.float32)
    with pytest.raises(ValueError, match="dropout_p"):
        A.attention_fwd(q, k, v, True, 0.25, dropout_p=1.5)
    with pytest.raises(ValueError, match="seed"):
        A.attention_fwd(q, k, v, True, 0.25, dropout_p=0.1, seed=-1)


# Compiles the GPU code path for an H100 (sm_90), no GPU needed (see kernel_testing).
_SM90_SCRIPT = r"""
from minigrad.kernels import attention as A
unit = {"stride_qd", "stride_kd", "stride_vd", "stride_od", "stride_dod", "stride_dkd", "stride_dqd"}
cases = [(A._attention_fwd_kernel, (128, 64, 4, 3)), (A._attention_bwd_dkdv_kernel, (32, 128, 4, 3)),
         (A._attention_bwd_dq_kernel, (128, 32, 4, 3))]
short = A._fixed("short", 64, 2)                  # decoding's fixed forward config (T <= SHORT_QUERY)
cases.append((A._attention_fwd_kernel, (short["BLOCK_M"], short["BLOCK_N"], short["num_warps"],
                                        short["num_stages"])))
for fn, (bm, bn, w, st) in cases:
    # (D, causal, bias, dropout, int64 dropout counters, device seed offset, dtype, DOT): the dropout
    # variants compile Philox in; the offset is the CUDA-graph step's; float32 multiplies in IEEE
    # (the default) or TF32
    for D, causal, bias, drop, i64, off, dt, dot in [(64, True, True, False, False, False, "bf16", "tf32"),
                                                   (80, False, False, False, False, False, "bf16", "tf32"),
                                                   (64, True, False, True, False, True, "bf16", "tf32"),
                                                   (80, False, True, True, True, False, "bf16", "tf32"),
                                                   (64, True, False, False, False, False, "fp32", "ieee"),
                                                   (64, True, False, False, False, False, "fp32", "tf32")]:
        if (bm == 16 and (drop or bias or dt == "fp32")) or (dot == "tf32" and dt == "fp32"
                                                         and fn is not A._attention_fwd_kernel):
            continue                 # the short config: one plain case; TF32's control: the forward
        d_pad = max(16, triton.next_power_of_2(D))
        const = dict(CAUSAL=causal, HAS_BIAS=bias, HAS_DROPOUT=drop, HAS_SEED_OFFSET=off, INDEX64=i64, DOT=dot,
                     D_PAD=d_pad, EVEN_D=d_pad == D, BLOCK_M=bm, BLOCK_N=bn,
                     **{u: 1 for u in unit if u in fn.arg_names})
        sig, attrs = {}, {}
        for i, name in enumerate(fn.arg_names):
            if name in const:
                sig[name] = "constexpr"
            elif name.endswith("_ptr"):
                f32 = name in ("lse_ptr", "delta_ptr")
                ty = "*i64" if name == "seed_offset_ptr" else "*fp32" if f32 else "*" + dt
                sig[name], attrs[(i,)] = ty, [["tt.divisibility", 16]]
            elif "scale" in name or name == "dropout_p":
                sig[name] = "fp32"
            else:
                sig[name] = "i32"
                if name.startswith("stride") and "bias" not in name:
                    attrs[(i,)] = [["tt.divisibility", 16]]
        k = triton.compile(ASTSource(fn, sig, const, attrs), target=GPUTarget("cuda", 90, 32),
                           options={"num_warps": w, "num_stages": st})
        assert k.metadata.shared <= 232448, (fn.__name__, k.metadata.shared)
        if dt == "fp32":   # IEEE float32 must not use TF32 tensor-core instructions; TF32 must
            assert ("tf32" in k.asm["ptx"]) == (dot == "tf32"), (fn.__name__, dot)
        if drop:   # one Philox call per 4 scores: at most 20 high multiplies (10 rounds) per call, per
            # thread bm * bn / 4 / (32 w) calls in each of the two inner loops (masked, mask-free);
            # one call per score measured ~15 per score, 3x over this bound
            calls = 2 * bm * bn // 4 // (32 * w)
            muls = k.asm["ptx"].count("mul.hi.u32") + k.asm["ptx"].count("mul.wide.u32")
            assert muls <= 20 * calls, (fn.__name__, D, muls, calls)
            print("  Philox multiplies per thread:", muls, "for", calls, "calls")
        print(fn.__name__, D, dt, dot, "dropout" if drop else "", "ok, shared memory", k.metadata.shared)
"""


def test_gpu_code_path_compiles_for_sm90():
    check_compiles_for_sm90(_SM90_SCRIPT)


# ---------------------------------------------------------------------------- GPU, realistic sizes
def _gpu_vs_sdpa(B, H, T, D, dtype, causal=True, autotune=True, monkeypatch=None):
    if autotune:
        monkeypatch.setattr(A, "AUTOTUNE", True)
    q, k, v = _qkv(B, H, T, T, D, dtype)
    do = torch.randn(B, H, T, D, device=DEVICE, dtype=dtype)
    scale = 1.0 / math.sqrt(D)
    o, lse = A.attention_fwd(q, k, v, causal, scale)
    dq, dk, dv = A.attention_bwd(do, q, k, v, o, lse, causal, scale)
    qr, kr, vr = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    ro = F.scaled_dot_product_attention(qr, kr, vr, is_causal=causal, scale=scale)
    ro.backward(do)
    torch.testing.assert_close(o, ro, atol=2e-2, rtol=2e-2)
    for got, want in ((dq, qr.grad), (dk, kr.grad), (dv, vr.grad)):
        torch.testing.assert_close(got, want, atol=5e-2, rtol=5e-2)


@gpu
def test_gpu_gpt2_bf16(monkeypatch):
    _gpu_vs_sdpa(8, 12, 1024, 64, torch.bfloat16, monkeypatch=monkeypatch)


@gpu
@pytest.mark.parametrize("D", [128, 80])
def test_gpu_head_dims_fp16(monkeypatch, D):
    _gpu_vs_sdpa(2, 8, 1000, D, torch.float16, causal=True, monkeypatch=monkeypatch)


@gpu
def test_gpu_kv_cache_and_bias_fixed_config():
    _check(2, 4, 100, 333, 64, True, torch.bfloat16,
           bias=torch.randn(1, 1, 100, 333, device=DEVICE).expand(2, 4, 100, 333))


@gpu
@pytest.mark.parametrize("causal", [True, False])
def test_gpu_dropout_autotuned(monkeypatch, causal):
    # the autotuned launch (seed passed per call, outside the tuning signature) on a real GPU
    monkeypatch.setattr(A, "AUTOTUNE", True)
    _check_dropout(2, 4, 256, 200, 64, causal, p=0.1, seed=99, dtype=torch.bfloat16)
    _check_dropout(2, 4, 256, 200, 64, causal, p=0.1, seed=100, dtype=torch.bfloat16)
