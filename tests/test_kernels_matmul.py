"""kernels/matmul.py and kernels/matmul_auto.py against torch.matmul (the oracle, in float64 on
the same inputs).

Under the interpreter (no GPU) the kernel uses 16x16x16 tiles, so small shapes already hit the
multi-tile, M/N-tail and K-tail paths. Covered: sizes 1, tails (17, 33, 65), transposed and
sliced operands, batched with contiguous / stride-0 / non-collapsible batch dims, the bias +
activation epilogue, its pre-activation / activation-derivative modes (the fused MLP), `out=`,
K == 0, float64's FMA path, bad input; the split between the plain wrapper (the classic kernel
only, no plan cache, no variant picking) and matmul_auto (variant timing, plan replay).
GPU-marked tests run realistic sizes with autotuning.
"""
import pytest
import torch
import torch.nn.functional as F

from kernel_testing import DEVICE, check_compiles_for_sm90, gpu  # first: it sets up the interpreter
from minigrad.kernels import matmul as K
from minigrad.kernels import matmul_auto as AUTO
from minigrad.kernels import matmul_persistent as MP
from minigrad.kernels import matmul_plan as PLAN
from minigrad.kernels import matmul_splitk as MS

# Per-dtype tolerances (atol, rtol) of c against float64 torch on the same (rounded) inputs.
# bfloat16 is loose also because the interpreter truncates (not rounds) float32 -> bfloat16.
TOL = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-4),      # IEEE float32 (the default; the fixture makes sure)
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 2e-2),
}
TF32_TOL = (2e-2, 1e-2)               # float32 through TF32 tensor cores (ALLOW_TF32 or MINIGRAD_TF32=1)


@pytest.fixture(autouse=True)
def fixed_config_ieee(monkeypatch):
    """Tests use the fixed tile config and IEEE float32 unless a test says otherwise."""
    monkeypatch.setattr(K, "AUTOTUNE", False)
    monkeypatch.setattr(K, "ALLOW_TF32", False)


def _rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, device=DEVICE, dtype=torch.float32).to(dtype)


def _ref(a, b, bias=None, activation=None):
    c = torch.matmul(a.double(), b.double())
    if bias is not None:
        c = c + bias.double()
    return _activation(c, activation)


def _activation(c, activation):
    if activation == "relu":
        c = F.relu(c)
    elif activation == "silu":
        c = F.silu(c)
    elif activation in ("gelu", "gelu_tanh"):
        c = F.gelu(c, approximate="tanh")
    elif activation == "gelu_exact":
        c = F.gelu(c)
    return c


def _check(c, a, b, bias=None, activation=None, tol=None):
    atol, rtol = tol or TOL[a.dtype]
    assert c.dtype == a.dtype
    assert c.shape == (*a.shape[:-2], a.shape[-2], b.shape[-1])
    torch.testing.assert_close(c.double(), _ref(a, b, bias, activation), atol=atol, rtol=rtol)


@pytest.mark.parametrize("M,N,K_", [(1, 1, 1), (17, 33, 65), (33, 17, 16), (16, 32, 48), (65, 1, 17)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tails_and_sizes(M, N, K_, dtype):
    a, b = _rand(M, K_, dtype=dtype), _rand(K_, N, dtype=dtype)
    _check(K.matmul(a, b), a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precisions(dtype):
    a, b = _rand(33, 40, dtype=dtype), _rand(40, 18, dtype=dtype)
    _check(K.matmul(a, b), a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_transposed_and_sliced_views(dtype):
    x, y = _rand(40, 19, dtype=dtype), _rand(23, 40, dtype=dtype)   # stored (K, M) and (N, K)
    a, b = x.t(), y.t()                                             # a (19, 40), b (40, 23)
    assert not a.is_contiguous() and not b.is_contiguous()
    _check(K.matmul(a, b), a, b)
    big = _rand(50, 70, dtype=dtype)
    a2 = big[3:20, 1:61:2]                                          # (17, 30), column stride 2
    b2 = big[10:40, 5:35].t()                                       # (30, 30), transposed slice
    _check(K.matmul(a2, b2), a2, b2)


def test_batched_contiguous_and_expanded():
    a = _rand(2, 3, 17, 20)
    b = _rand(2, 3, 20, 18)
    _check(K.matmul(a, b), a, b)
    w = _rand(20, 18).expand(2, 3, 20, 18)                          # stride-0 batch dims
    _check(K.matmul(a, w), a, w)
    a1 = _rand(1, 20).expand(4, 5, 20).unsqueeze(1)                 # (4, 1, 5, 20), M stride 0 too
    b1 = _rand(4, 1, 20, 7)
    _check(K.matmul(a1, b1), a1, b1)


def test_batch_dims_that_do_not_collapse():
    # (2, 4, 3) batch: a is permuted, b sliced in N, c contiguous -> 3 batch dims stay separate
    a = _rand(2, 3, 4, 9, 8).permute(0, 2, 1, 3, 4)
    b = _rand(2, 4, 3, 8, 12)[..., :5]
    c_strides = torch.empty(2, 4, 3, 9, 5).stride()[:-2]
    assert len(K._collapse_batch(a.shape[:-2], [a.stride()[:-2], b.stride()[:-2], c_strides])) == 3
    _check(K.matmul(a, b), a, b)


def test_attention_style_transposed_batch():
    # q @ k^T with q, k (B, H, T, D) views of a (B, T, H, D) tensor: both batch dims strided
    x = _rand(2, 17, 3, 16)
    q = x.permute(0, 2, 1, 3)                                       # (2, 3, 17, 16)
    kT = x.permute(0, 2, 3, 1)                                      # (2, 3, 16, 17)
    _check(K.matmul(q, kT), q, kT)


@pytest.mark.parametrize("activation", [None, "relu", "silu", "gelu", "gelu_tanh", "gelu_exact"])
def test_bias_activation_epilogue(activation):
    a, b, bias = _rand(19, 24), _rand(24, 33), _rand(33)
    _check(K.matmul(a, b, bias=bias, activation=activation), a, b, bias, activation)


def test_bias_activation_bf16_batched():
    dtype = torch.bfloat16
    a, b, bias = _rand(2, 18, 32, dtype=dtype), _rand(2, 32, 20, dtype=dtype), _rand(20, dtype=dtype)
    _check(K.matmul(a, b, bias=bias, activation="gelu"), a, b, bias, "gelu")


def test_bias_activation_float64():
    f64 = torch.float64
    a, b, bias = _rand(9, 20, dtype=f64), _rand(20, 5, dtype=f64), _rand(5, dtype=f64)
    _check(K.matmul(a, b, bias=bias, activation="gelu_exact"), a, b, bias, "gelu_exact")


def test_out_argument_strided():
    a, b = _rand(17, 20), _rand(20, 9)
    buf = torch.full((17, 30), 7.0, device=DEVICE)
    out = buf[:, 3:12]                                              # non-contiguous destination
    c = K.matmul(a, b, out=out)
    assert c.data_ptr() == out.data_ptr()
    _check(c, a, b)
    assert (buf[:, :3] == 7).all() and (buf[:, 12:] == 7).all()    # nothing written outside


def test_k_zero_gives_activation_of_bias():
    a, b, bias = _rand(5, 0), _rand(0, 7), _rand(7)
    c = K.matmul(a, b, bias=bias, activation="relu")
    torch.testing.assert_close(c, F.relu(bias).expand(5, 7))
    assert K.matmul(_rand(0, 4), _rand(4, 3)).shape == (0, 3)


def test_bad_inputs():
    a = _rand(4, 5)
    with pytest.raises(TypeError, match="share a dtype"):
        K.matmul(a, _rand(5, 3, dtype=torch.float16))
    with pytest.raises(ValueError, match="shape mismatch"):
        K.matmul(a, _rand(4, 3))
    with pytest.raises(ValueError, match="shape mismatch"):
        K.matmul(_rand(2, 4, 5), _rand(3, 5, 3))
    with pytest.raises(ValueError, match="activation"):
        K.matmul(a, _rand(5, 3), activation="tanh")
    with pytest.raises(ValueError, match="bias"):
        K.matmul(a, _rand(5, 3), bias=_rand(4))
    with pytest.raises(TypeError, match="float32"):
        K.matmul(a.to(torch.int64), _rand(5, 3).to(torch.int64))
    with pytest.raises(ValueError, match="stride-0"):
        K.matmul(a, _rand(5, 3), out=_rand(1, 3).expand(4, 3))


# ---------------------------------------------------- persistent and split-K variants (interpreter)
# Under the interpreter a persistent launch has 3 programs (matmul_persistent.INTERPRET_PROGRAMS),
# so every case below with more than 3 tiles of 16x16 makes programs walk several tiles.
@pytest.mark.parametrize("dtype,tma", [(torch.float32, True), (torch.bfloat16, True), (torch.float32, False)])
def test_persistent_ragged_transposed_epilogue(monkeypatch, dtype, tma):
    monkeypatch.setattr(MP, "USE_TMA", tma)
    # a = X^T and b = W^T views (the weight-gradient / Linear layouts), M, N, K off the 16-grid
    a = _rand(40, 24, dtype=dtype).t()                              # (24, 40), stride (1, 24)
    b = _rand(33, 40, dtype=dtype).t()                              # (40, 33), stride (1, 40)
    bias = _rand(33, dtype=dtype)
    assert MP.tma_plan(a[None, None], b[None, None], False) == (tma, tma, tma)
    _check(K.matmul(a, b, bias=bias, activation="gelu", variant="persistent"), a, b, bias, "gelu")


def test_persistent_row_major_tma_and_batched_pointers():
    a, b = _rand(17, 32), _rand(32, 40)                             # row-major, TMA-readable
    assert MP.tma_plan(a[None, None], b[None, None], False) == (True, False, False)
    _check(K.matmul(a, b, variant="persistent"), a, b)
    a3, b3 = _rand(2, 9, 20), _rand(2, 20, 18)                      # batched: pointer path
    assert MP.tma_plan(a3[None], b3[None], False)[0] is False
    bias = _rand(18)
    _check(K.matmul(a3, b3, bias=bias, activation="relu", variant="persistent"), a3, b3, bias, "relu")


def test_tma_layout_rules():
    x = _rand(8, 12)
    assert MP._tma_layout(x) is False and MP._tma_layout(x.t()) is True
    assert MP._tma_layout(_rand(8, 6)) is None                      # row stride 24 bytes: not 16-aligned
    assert MP._tma_layout(x[:, 1:9]) is None                        # base 4 bytes past an aligned one
    assert MP._tma_layout(x[:, ::2]) is None                        # no unit stride


@pytest.mark.parametrize("dtype,split_k,activation", [(torch.float32, 3, "silu"), (torch.bfloat16, 4, None)])
def test_splitk_uneven_splits_transposed_a(dtype, split_k, activation):
    # K = 70: 5 blocks of 16 with a tail; S = 3 gives blocks (2, 2, 1 + tail), S = 4 leaves the last
    # split empty (its partial must be zeros). a = X^T as in a weight gradient.
    a = _rand(70, 20, dtype=dtype).t()                              # (20, 70)
    b = _rand(70, 18, dtype=dtype)
    bias = _rand(18, dtype=dtype)
    c = K.matmul(a, b, bias=bias, activation=activation, variant="splitk", split_k=split_k)
    _check(c, a, b, bias, activation)


def test_splitk_default_split_and_strided_out():
    a, b = _rand(9, 40), _rand(40, 7)
    buf = torch.full((9, 12), 5.0, device=DEVICE)
    c = K.matmul(a, b, out=buf[:, 2:9], variant="splitk")
    _check(c, a, b)
    assert (buf[:, :2] == 5).all() and (buf[:, 9:] == 5).all()     # nothing written outside


def test_splitk_is_deterministic():
    """The reduction sums the splits in a fixed order: bitwise-equal results across runs."""
    a, b = _rand(48, 18).t(), _rand(48, 10)
    c1 = K.matmul(a, b, variant="splitk", split_k=3)
    c2 = K.matmul(a, b, variant="splitk", split_k=3)
    assert torch.equal(c1, c2)


def test_split_candidates_at_gpt2_shapes():
    # 132 SMs (H100/H200), 128x128 tiles, K = 8192 = 128 blocks of 64. Model, in K-block times:
    # rounds * (128 / S + 4) + 0.8 * 8 * S * M * N / 1e6 (hand-computed, docs/perf-notes.md).
    # dW 768x768 (36 tiles): S=3 one round -> 46.7 + 11.3 = 58.0; S=7 two -> 44.6 + 26.4 = 71.0;
    # S=6 two -> 50.7 + 22.6 = 73.3; S=2 75.5; S=4 87.1.
    assert MS.split_candidates(768, 768, 8192, 132) == [3, 7, 6]
    # dW 768x2304 (108 tiles): S=2 158.6 < S=3 174.0 < S=4 189.3 < S=6 194.6
    assert MS.split_candidates(768, 2304, 8192, 132) == [2, 3, 4]
    # dW 768x3072 and 3072x768 (144 tiles): S=3 232.0 < S=2 234.2 < S=4 240.4 < S=5 253.1
    assert MS.split_candidates(768, 3072, 8192, 132) == [3, 2, 4]
    assert MS.split_candidates(3072, 768, 8192, 132) == [3, 2, 4]
    assert MS.split_candidates(8192, 2304, 768, 132) == []          # 1152 tiles: 8.7 waves already
    assert MS.split_candidates(768, 768, 256, 132) == []            # 4 K blocks: too short to split


def test_autotuner_picks_the_fastest_variant_once(monkeypatch):
    """matmul_auto._pick_variant times classic, persistent and each split-K candidate once per key
    and remembers the fastest (no GPU needed: launches and timings are stand-ins)."""
    fake_ms = {("classic", None): 3.0, ("persistent", None): 2.0, ("splitk", 3): 4.0,
               ("splitk", 7): 1.0, ("splitk", 6): 1.5}
    ran = []
    monkeypatch.setattr(K, "launch", lambda v, s, *args: ran.append((v, s)))
    monkeypatch.setattr(AUTO.triton.testing, "do_bench", lambda fn, **kw: (fn(), fake_ms[ran[-1]])[1])
    monkeypatch.setattr(MP, "num_programs", lambda device: 132)
    monkeypatch.setattr(AUTO, "_CHOSEN", {})
    a, b, c = torch.empty(8192, 768).t(), torch.empty(8192, 768), torch.empty(768, 768)   # dW = X^T @ dY
    views = [t[None, None] for t in (c, a, b)]
    meta = dict(HAS_BIAS=False, ACTIVATION="none")
    assert AUTO._pick_variant(*views, None, None, meta) == ("splitk", 7)
    assert set(ran) == set(fake_ms)                                 # every candidate was tried
    n = len(ran)
    assert AUTO._pick_variant(*views, None, None, meta) == ("splitk", 7) and len(ran) == n   # remembered
    # batched: split-K is not a candidate, persistent wins
    views = [t.expand(2, 1, *t.shape) for t in (c, a, b)]
    assert AUTO._pick_variant(*views, None, None, meta) == ("persistent", None)


def test_variant_bad_inputs():
    a, b = _rand(4, 5), _rand(5, 3)
    for mm in (K.matmul, AUTO.matmul):
        with pytest.raises(ValueError, match="unknown matmul variant"):
            mm(a, b, variant="fast")
        with pytest.raises(ValueError, match="float64"):
            mm(a.double(), b.double(), variant="persistent")
        with pytest.raises(ValueError, match="batch dims"):
            mm(_rand(2, 4, 5), _rand(2, 5, 3), variant="splitk")
        with pytest.raises(ValueError, match="split_k is for"):
            mm(a, b, split_k=2)
        with pytest.raises(ValueError, match="positive int"):
            mm(a, b, variant="splitk", split_k=0)
    with pytest.raises(ValueError, match="unknown matmul variant None"):
        K.matmul(a, b, variant=None)                              # the plain wrapper never picks


# ------------------------------------------- the plain wrapper and matmul_auto, with autotuning on
class _LaunchLog:
    """Stands in for a kernel object: records each launch by name, then runs the real kernel."""

    def __init__(self, kernel, name: str, log: list):
        self.kernel, self.name, self.log = kernel, name, log

    def __getitem__(self, grid):
        self.log.append(self.name)
        return self.kernel[grid]


def _as_if_autotuning(monkeypatch) -> list:
    """The GPU's code path under the interpreter: AUTOTUNE on (tile_config -> None), the autotuner
    replaced by one direct launch with the fixed tiles (launch_tuned's return value included), and
    every matmul kernel launch logged by name ("classic", "persistent", "splitk_partial", ...)."""
    monkeypatch.setattr(K, "AUTOTUNE", True)
    monkeypatch.setattr(K, "tile_config", lambda dtype: None)

    def launch_tuned(tuner, kernel, grid, args, meta, derived=None, per_call=None):
        cfg = K._fixed_config(torch.float32)
        extra = dict(derived(cfg), **cfg)
        kernel[grid](*args, **meta, **extra)
        return extra
    for module in (K, MP, MS):
        monkeypatch.setattr(module, "launch_tuned", launch_tuned)
    log: list = []
    for module, attr, name in ((K, "_matmul_fwd_kernel", "classic"),
                               (MP, "_matmul_persistent_kernel", "persistent"),
                               (MS, "_matmul_splitk_partial_kernel", "splitk_partial"),
                               (MS, "_matmul_splitk_reduce_kernel", "splitk_reduce")):
        monkeypatch.setattr(module, attr, _LaunchLog(getattr(module, attr), name, log))
    return log


def test_plain_matmul_launches_only_the_classic_kernel(monkeypatch):
    """kernels.matmul.matmul is check -> allocate -> launch: with autotuning on (where matmul_auto
    would time the variants) it launches the classic kernel once per call, repeated signatures
    included, and never consults a variant picker or the plan cache."""
    log = _as_if_autotuning(monkeypatch)
    monkeypatch.setattr(AUTO, "_pick_variant", lambda *args: pytest.fail("the plain wrapper picked"))
    monkeypatch.setattr(PLAN, "lookup", lambda key: pytest.fail("the plain wrapper looked up a plan"))
    monkeypatch.setattr(PLAN, "remember", lambda *args: pytest.fail("the plain wrapper kept a plan"))
    for _ in range(3):                                            # one signature, three calls
        a, w, bias = _rand(19, 24), _rand(21, 24), _rand(21)
        _check(K.matmul(a, w.t(), bias, "gelu"), a, w.t(), bias, "gelu")
    a3, b3 = _rand(2, 9, 20), _rand(2, 20, 18)
    _check(K.matmul(a3, b3), a3, b3)
    assert log == ["classic"] * 4
    x, dy = _rand(40, 9), _rand(40, 7)                            # a dW-shaped call: still classic
    _check(K.matmul(x.t(), dy), x.t(), dy)
    assert log == ["classic"] * 5


def test_matmul_auto_picks_a_variant_and_replays_its_launch(monkeypatch):
    """matmul_auto with autotuning on: the first call of a shape asks _pick_variant and launches
    the variant it names; the second call of the signature replays that launch (no checks, no
    picking); a forced variant is honoured; split-K (two launches) is never replayed."""
    log = _as_if_autotuning(monkeypatch)
    monkeypatch.setattr(PLAN, "_PLANS", {})                       # plans made here stay here
    picks = []
    monkeypatch.setattr(AUTO, "_pick_variant", lambda *args: (picks.append(1), ("persistent", None))[1])
    slow = _count_slow_paths(monkeypatch)
    for i in range(2):
        a, w, bias = _rand(19, 24), _rand(21, 24), _rand(21)
        _check(AUTO.matmul(a, w.t(), bias, "gelu"), a, w.t(), bias, "gelu")
        assert log == ["persistent"] * (i + 1) and len(picks) == 1 and len(slow) == 1
    a, b = _rand(17, 32), _rand(32, 9)
    _check(AUTO.matmul(a, b, variant="classic"), a, b)            # forced: no picking
    assert log[-1] == "classic" and len(picks) == 1
    for _ in range(2):
        x, dy = _rand(40, 9), _rand(40, 7)
        _check(AUTO.matmul(x.t(), dy, variant="splitk", split_k=2), x.t(), dy)
    assert log[-4:] == ["splitk_partial", "splitk_reduce"] * 2 and len(slow) == 4


# ---------------------------------------------------------------------------- MLP epilogues
def _act_grad_ref(dy, pre, activation):
    """dy * act'(pre) by torch autograd in float64 (an independent derivative)."""
    x = pre.double().requires_grad_()
    _activation(x, activation).backward(dy.double())
    return x.grad


@pytest.mark.parametrize("variant", K.VARIANTS)
@pytest.mark.parametrize("activation", ["gelu", "gelu_exact", "silu", "relu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pre_out_and_act_grad_epilogues(variant, activation, dtype):
    """pre_out: the pre-activation a @ b + bias lands there and c = act(pre) of that rounded
    value; act_grad_at: c = (a @ b) * act'(pre). Both against float64 torch, tails on M/N/K."""
    a, w, bias = _rand(37, 50, dtype=dtype), _rand(29, 50, dtype=dtype), _rand(29, dtype=dtype)
    pre = torch.full((37, 29), float("nan"), dtype=dtype, device=DEVICE)
    c = K.matmul(a, w.t(), bias, activation, pre_out=pre, variant=variant)
    _check(pre, a, w.t(), bias)                                            # the pre-activation
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(c.double(), _activation(pre.double(), activation), atol=atol, rtol=rtol)
    dy, w2 = _rand(37, 61, dtype=dtype), _rand(61, 29, dtype=dtype)
    g = K.matmul(dy, w2, None, activation, act_grad_at=pre, variant=variant)
    expected = _act_grad_ref(dy.double() @ w2.double(), pre, activation)
    scale = expected.abs().max().item()
    torch.testing.assert_close(g.double(), expected, atol=atol * scale, rtol=rtol)


def test_aux_epilogue_bad_inputs():
    a, b = _rand(4, 5), _rand(5, 3)
    pre = torch.empty(4, 3, device=DEVICE)
    with pytest.raises(ValueError, match="needs an activation"):
        K.matmul(a, b, pre_out=pre)
    with pytest.raises(ValueError, match="not both"):
        K.matmul(a, b, activation="gelu", pre_out=pre, act_grad_at=pre)
    with pytest.raises(ValueError, match="takes no bias"):
        K.matmul(a, b, _rand(3), "gelu", act_grad_at=pre)
    with pytest.raises(ValueError, match=r"pre_out must be \(4, 3\) torch.float32"):
        K.matmul(a, b, activation="gelu", pre_out=torch.empty(3, 4, device=DEVICE))
    with pytest.raises(ValueError, match=r"act_grad_at must be"):
        K.matmul(a, b, activation="gelu", act_grad_at=pre.to(torch.float64))
    with pytest.raises(ValueError, match="one \\(M, K\\) @ \\(K, N\\) matrix"):
        K.matmul(_rand(2, 4, 5), _rand(2, 5, 3), activation="gelu", pre_out=pre)
    with pytest.raises(ValueError, match="stride-0"):
        K.matmul(a, b, activation="gelu", pre_out=torch.empty(1, 3, device=DEVICE).expand(4, 3))


# ---------------------------------------------------------------------------- host fast path
def _count_slow_paths(monkeypatch) -> list:
    """Count matmul_auto calls that go through the full host path (kernels.matmul.check_operands)."""
    calls, real = [], K.check_operands
    monkeypatch.setattr(K, "check_operands", lambda *args: (calls.append(1), real(*args))[1])
    return calls


def test_repeated_signature_replays_the_remembered_launch(monkeypatch):
    """matmul_auto: the second call of a signature skips the host planning (kernels/matmul_plan.py)
    and still computes the new inputs' product, epilogue included."""
    PLAN.clear()
    slow = _count_slow_paths(monkeypatch)
    for activation in (None, "gelu"):
        for i in range(3):
            a, w, bias = _rand(19, 24), _rand(21, 24), _rand(21)
            _check(AUTO.matmul(a, w.t(), bias, activation), a, w.t(), bias, activation)
    assert len(slow) == 2                       # one full path per signature
    pre = torch.empty(19, 21, device=DEVICE)
    for i in range(2):
        a, w, bias = _rand(19, 24), _rand(21, 24), _rand(21)
        c = AUTO.matmul(a, w.t(), bias, "silu", pre_out=pre)
        _check(pre, a, w.t(), bias)
        torch.testing.assert_close(c.double(), _activation(pre.double(), "silu"), atol=1e-5, rtol=1e-5)
    assert len(slow) == 3


def test_any_change_of_signature_takes_the_full_path(monkeypatch):
    """Strides, dtype, epilogue, out, alignment and the module switches are all in the key: each
    variation below is planned afresh (and is right), none reuses another's launch."""
    PLAN.clear()
    slow = _count_slow_paths(monkeypatch)
    base = _rand(40, 17)
    w = _rand(17, 24)
    variants = [
        lambda: (base[:33], w),                                   # the first call
        lambda: (base[:33], w.t().contiguous().t()),              # same shape, transposed b
        lambda: (base[:33].double(), w.double()),                 # dtype
        lambda: (base[1:34], w),                                  # a 4-byte-offset a (alignment)
    ]
    for make in variants:
        a, b = make()
        _check(AUTO.matmul(a, b), a, b)
    assert len(slow) == len(variants)
    a, b = variants[0]()
    out = torch.empty(24, 33, device=DEVICE).t()                  # an out= view: another key
    AUTO.matmul(a, b, out=out)
    _check(out, a, b)
    monkeypatch.setattr(K, "ALLOW_TF32", True)                    # a switch: another key
    AUTO.matmul(a, b)
    assert len(slow) == len(variants) + 2
    AUTO.matmul(a, b)                                                # and now it is remembered
    assert len(slow) == len(variants) + 2


def test_fast_path_keeps_the_checks_and_skips_split_k(monkeypatch):
    PLAN.clear()
    a, b, pre = _rand(8, 5), _rand(5, 3), torch.empty(8, 3, device=DEVICE)
    AUTO.matmul(a, b, activation="gelu", pre_out=pre)               # planned
    with pytest.raises(ValueError, match="not both"):
        AUTO.matmul(a, b, activation="gelu", pre_out=pre, act_grad_at=pre)
    with pytest.raises(TypeError, match="bias must be a torch tensor"):
        AUTO.matmul(a, b, bias=[0.0, 1.0, 2.0])
    slow = _count_slow_paths(monkeypatch)
    for _ in range(2):                                            # two launches: never a plan
        AUTO.matmul(_rand(16, 64), _rand(64, 16), variant="splitk", split_k=2)
    assert len(slow) == 2


# Compiles the GPU code path for an H100 (sm_90), no GPU needed (see kernel_testing).
_SM90_SCRIPT = r"""
from minigrad.kernels import matmul as M
fn = M._matmul_fwd_kernel
unit = {"stride_ak", "stride_bn", "stride_cn"}        # specialised to 1 at run time
# the weight gradient dW = dY^T X with a = dY^T (unit stride along M) and its bias gradient (ROWSUM)
unit_dw = {"stride_am", "stride_bn", "stride_cn"}
# the MLP's epilogues: "pre" (store the pre-activation too) and "grad" (activation derivative)
for dt, (bm, bn, bk, w, st), act, aux, rowsum in [
        ("bf16", (128, 256, 64, 8, 3), "gelu_tanh", "none", False),
        ("bf16", (128, 256, 64, 8, 3), "gelu_tanh", "pre", False),
        ("bf16", (128, 256, 64, 8, 3), "gelu_tanh", "grad", False),
        ("fp32", (128, 128, 32, 8, 3), "gelu_exact", "grad", False),
        ("fp64", (32, 32, 8, 4, 2), "silu", "grad", False),
        ("bf16", (128, 128, 64, 8, 3), "none", "none", True),          # the fixed 16-bit config
        ("bf16", (128, 256, 64, 8, 3), "none", "none", True),
        ("fp32", (128, 128, 32, 8, 3), "gelu_tanh", "pre", True),
        ("fp64", (32, 32, 8, 4, 2), "none", "none", True)]:
    const = dict(HAS_BIAS=aux != "grad", ACTIVATION=act, AUX=aux, ROWSUM=rowsum, FP64_FMA=dt == "fp64",
                 DOT_PRECISION="ieee" if dt == "fp32" else "tf32",      # float32's default: IEEE
                 UPCAST_DOT=False, INDEX_64=False, EVEN_K=False,
                 BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, **{u: 1 for u in (unit_dw if rowsum else unit)})
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in const:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name], attrs[(i,)] = "*" + dt, [["tt.divisibility", 16]]
        else:
            sig[name], attrs[(i,)] = "i32", [["tt.divisibility", 16]]
    k = triton.compile(ASTSource(fn, sig, const, attrs), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": w, "num_stages": st})
    if dt == "fp32":                  # IEEE float32: no TF32 tensor-core instruction
        assert "tf32" not in k.asm["ptx"], "float32 compiled with TF32"
    print(dt, aux, "rowsum" if rowsum else "", "ok, shared memory", k.metadata.shared)
"""


def test_gpu_code_path_compiles_for_sm90():
    check_compiles_for_sm90(_SM90_SCRIPT)


# ---------------------------------------------------------------------------- GPU, realistic sizes
@gpu
def test_gpu_large_bf16_autotuned(monkeypatch):
    monkeypatch.setattr(K, "AUTOTUNE", True)
    a, b = _rand(4096, 4096, dtype=torch.bfloat16), _rand(4096, 4096, dtype=torch.bfloat16)
    c = K.matmul(a, b)
    torch.testing.assert_close(c.float(), torch.matmul(a, b).float(), atol=0.25, rtol=2e-2)


@gpu
@pytest.mark.parametrize("transpose", ["none", "a", "b", "both"])
def test_gpu_gpt2_shapes_layouts(monkeypatch, transpose):
    monkeypatch.setattr(K, "AUTOTUNE", True)
    x, w = _rand(8192, 768, dtype=torch.bfloat16), _rand(768, 2304, dtype=torch.bfloat16)
    a = x.t().contiguous().t() if transpose in ("a", "both") else x
    b = w.t().contiguous().t() if transpose in ("b", "both") else w
    bias = _rand(2304, dtype=torch.bfloat16)
    ref = F.gelu(torch.matmul(a.float(), b.float()) + bias.float(), approximate="tanh")
    for mm in (K.matmul, AUTO.matmul):
        c = mm(a, b, bias=bias, activation="gelu")
        torch.testing.assert_close(c.float(), ref, atol=0.1, rtol=2e-2)


@gpu
def test_gpu_float32_tf32_and_float64(monkeypatch):
    monkeypatch.setattr(K, "ALLOW_TF32", True)
    a, b = _rand(1000, 520), _rand(520, 777)
    _check(K.matmul(a, b), a, b, tol=TF32_TOL)
    a64, b64 = a.double()[:300], b.double()[:, :200]
    _check(K.matmul(a64, b64), a64, b64)


def test_launch_tuned_asks_the_autotuner_once_per_signature():
    """kernels.helpers.launch_tuned: the autotuner runs on the first launch of each signature; later
    launches call the plain kernel with the autotuner's best config (+ derived constexprs)."""
    from types import SimpleNamespace

    from minigrad.kernels.helpers import launch_tuned

    calls = []

    class Launchable:
        def __init__(self, name, best=None):
            self.name, self.best_config = name, best

        def __getitem__(self, grid):
            return lambda *args, **kw: calls.append((self.name, args, kw))

    best = SimpleNamespace(kwargs={"BLOCK_K": 32, "BLOCK_M": 64}, num_warps=4, num_stages=3)
    tuner, kernel = Launchable("tuner", best), Launchable("kernel")
    x = torch.empty(2, dtype=torch.bfloat16)
    derived = lambda cfg: {"EVEN_K": 96 % cfg["BLOCK_K"] == 0}  # noqa: E731
    launch_tuned(tuner, kernel, None, (x, 96, 1), {"ACT": "none"}, derived)
    launch_tuned(tuner, kernel, None, (x, 96, 1), {"ACT": "none"}, derived)
    assert [c[0] for c in calls] == ["tuner", "kernel"]
    assert calls[1][2] == {"ACT": "none", "EVEN_K": True, "BLOCK_K": 32, "BLOCK_M": 64,
                           "num_warps": 4, "num_stages": 3}
    # any change of an int argument, a dtype or a meta-parameter is a new signature
    launch_tuned(tuner, kernel, None, (x, 97, 1), {"ACT": "none"}, derived)
    launch_tuned(tuner, kernel, None, (x.float(), 96, 1), {"ACT": "none"}, derived)
    launch_tuned(tuner, kernel, None, (x, 96, 1), {"ACT": "gelu"}, derived)
    assert [c[0] for c in calls[2:]] == ["tuner", "tuner", "tuner"]


@gpu
@pytest.mark.parametrize("N", [768, 2304, 3072])
def test_gpu_weight_gradient_variants(monkeypatch, N):
    """dW = X^T @ dY at GPT-2's shapes through every variant and matmul_auto's pick."""
    monkeypatch.setattr(K, "AUTOTUNE", True)
    x, dy = _rand(8192, 768, dtype=torch.bfloat16), _rand(8192, N, dtype=torch.bfloat16)
    ref = torch.matmul(x.t().float(), dy.float())
    for variant, split_k in [("classic", None), ("persistent", None), ("splitk", 3)]:
        c = K.matmul(x.t(), dy, variant=variant, split_k=split_k)
        torch.testing.assert_close(c.float(), ref, atol=1.0, rtol=2e-2)
    for _ in range(2):                                            # timed pick, then a replayed plan
        torch.testing.assert_close(AUTO.matmul(x.t(), dy).float(), ref, atol=1.0, rtol=2e-2)


@gpu
def test_gpu_splitk_is_deterministic_at_weight_gradient_size():
    x, dy = _rand(8192, 768, dtype=torch.bfloat16), _rand(8192, 768, dtype=torch.bfloat16)
    runs = [K.matmul(x.t(), dy, variant="splitk", split_k=4) for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])
