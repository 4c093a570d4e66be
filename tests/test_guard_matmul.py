"""Guards for the matmul's host caches and its epilogues on every variant (issue 21): bugs that
once survived the suite.

- The launch-plan cache of kernels/matmul_auto.py (key: kernels/matmul_plan.py `plan_key`): the
  same shapes called back to back with different a / b layouts, bias layouts (contiguous, [::2],
  [::3], none), out layouts (none, contiguous, transposed, padded rows, column stride 2), AUX
  modes ("pre", "grad") and AUX layouts, with and without a's row sums (`rowsum=`, float32 or
  float64), every call checked, on the variants a plan is kept for.
  A key that forgot the strides of out, the bias or the AUX operand, or the AUX mode, replays
  another call's launch: wrong values, or writes outside the view (every view lives inside a
  buffer four times its size, so a wrong replay stays in bounds and is seen, never a crash).
- The multi-tensor chunk-table cache (kernels/multi_tensor.py): the same tensors at several
  chunk sizes back to back, the tables themselves and clipping's norm and output.
- The epilogues on every variant (classic, persistent, split-K with 2, 3 and 5 splits), with a
  strided bias (what F.linear(x, w, b[::2]) passes) at K = 64, a multiple of BLOCK_K (16 in the
  interpreter) that 3 and 5 splits do not divide into whole blocks; and split-K at GPT-2's
  K = 8192. In bfloat16, compared *exactly*: each stored value must be the round-to-nearest-even
  of the float64 value of its definition, up to a window that only covers float32's own
  arithmetic error (`_assert_rounds_to`). For the "pre" epilogue the definition is
  act(pre as stored), so an activation applied to the unrounded float32 accumulator is off by
  whole bfloat16 ulps in many elements; a bfloat16 tolerance would hide it (it is the *more*
  accurate act(a @ b + bias)), hence the exact comparison, and the test checks that its data can
  tell the two apart. The row sums (`rowsum=`, a bias gradient from its weight gradient's launch) on
  every variant likewise: each the one bfloat16 rounding of the float64 sum.
- The epilogue's own operands beyond int32 offsets: a bias or AUX view whose elements lie 2**31
  elements apart while a, b and c are small (in a subprocess: a wrong offset crashes).
Expected values are float64 NumPy written here (activations and their derivatives from their
definitions, the derivatives checked against finite differences).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from kernel_testing import DEVICE  # noqa: E402  (first: it sets up the interpreter)
from minigrad.kernels import matmul as K  # noqa: E402
from minigrad.kernels import matmul_auto as AUTO  # noqa: E402
from minigrad.kernels import matmul_plan as PLAN  # noqa: E402
from minigrad.kernels import multi_tensor as MT  # noqa: E402

BF16 = torch.bfloat16
GELU_K = math.sqrt(2.0 / math.pi)
_erf = np.vectorize(math.erf, otypes=[float])


@pytest.fixture(autouse=True)
def fixed_config_ieee(monkeypatch):
    """Fixed tiles (16x16x16 in the interpreter) and IEEE float32, as tests/test_kernels_matmul.py."""
    monkeypatch.setattr(K, "AUTOTUNE", False)
    monkeypatch.setattr(K, "ALLOW_TF32", False)


# ------------------------------------------------------------------ float64 definitions
def act(x: np.ndarray, name) -> np.ndarray:
    if name is None:
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name in ("gelu", "gelu_tanh"):
        return 0.5 * x * (1.0 + np.tanh(GELU_K * (x + 0.044715 * x ** 3)))
    if name == "gelu_exact":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    raise ValueError(name)


def act_grad(x: np.ndarray, name) -> np.ndarray:
    """act'(x) from the definitions above."""
    if name == "relu":
        return (x > 0).astype(float)
    if name == "silu":
        s = 1.0 / (1.0 + np.exp(-x))
        return s * (1.0 + x * (1.0 - s))
    if name in ("gelu", "gelu_tanh"):
        t = np.tanh(GELU_K * (x + 0.044715 * x ** 3))
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K * (1.0 + 3 * 0.044715 * x * x)
    if name == "gelu_exact":
        return 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    raise ValueError(name)


ACTIVATIONS = ["relu", "silu", "gelu", "gelu_exact"]


def test_reference_derivatives_match_finite_differences():
    x = np.linspace(-5.0, 5.0, 101) + 0.013               # no point at exactly 0 (relu's kink)
    h = 1e-6
    for name in ACTIVATIONS:
        fd = (act(x + h, name) - act(x - h, name)) / (2 * h)
        np.testing.assert_allclose(act_grad(x, name), fd, rtol=1e-6, atol=1e-8, err_msg=name)
    assert act(np.array([1.0]), "gelu")[0] == pytest.approx(0.8411919906, abs=1e-9)         # by hand
    assert act(np.array([1.0]), "gelu_exact")[0] == pytest.approx(0.8413447461, abs=1e-9)


# ------------------------------------------------------------------ exact bfloat16 comparison
def rne_bf16(x: np.ndarray) -> np.ndarray:
    """float64 -> the nearest bfloat16 value (8 significant bits, ties to even), as float64, in one
    rounding (torch's float64 -> bfloat16 goes through float32: two roundings)."""
    m, e = np.frexp(np.asarray(x, dtype=np.float64))     # x = m * 2**e, 0.5 <= |m| < 1
    return np.ldexp(np.rint(np.ldexp(m, 8)), e - 8)      # np.rint: half to even


def test_rne_bf16_by_hand():
    one_ulp = 2.0 ** -7                                   # bfloat16 ulp in [1, 2)
    assert rne_bf16(np.array([1.0 + one_ulp / 2]))[0] == 1.0                     # tie -> even
    assert rne_bf16(np.array([1.0 + 1.5 * one_ulp]))[0] == 1.0 + 2 * one_ulp     # tie -> even
    assert rne_bf16(np.array([1.0 + one_ulp / 2 + 1e-9]))[0] == 1.0 + one_ulp
    assert rne_bf16(np.array([-3.0e-7]))[0] == torch.tensor(-3.0e-7, dtype=BF16).item()
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)      # float32 -> bf16:
    assert np.array_equal(rne_bf16(x.astype(np.float64)),                      # torch agrees (one
                          torch.from_numpy(x).to(BF16).double().numpy())       # rounding there)


def _assert_rounds_to(got: torch.Tensor, exact: np.ndarray, window: np.ndarray, what: str) -> None:
    """Every element of the bfloat16 `got` is the bfloat16 rounding of some value within `window`
    of `exact` (float64): i.e. rne(exact - window) <= got <= rne(exact + window). The window is the
    float32 arithmetic's error bound; where exact is not that close to a rounding boundary this is
    one value, an exact comparison."""
    assert got.dtype == BF16
    g = got.double().cpu().numpy()
    lo, hi = rne_bf16(exact - window), rne_bf16(exact + window)
    bad = ~((lo <= g) & (g <= hi))
    if bad.any():
        idx = np.argwhere(bad)[:5]
        rows = [f"{tuple(i)}: got {g[tuple(i)]!r}, expected rne of {exact[tuple(i)]!r} "
                f"(+- {window[tuple(i)]:.2e}) = {rne_bf16(exact[tuple(i)])!r}" for i in idx]
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} elements are not the bfloat16 rounding "
                    f"of their definition:\n  " + "\n  ".join(rows))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.double().cpu().numpy()


def _bf16(rng, *shape, scale=1.0) -> torch.Tensor:
    return torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32)).to(BF16).to(DEVICE)


def _acc_window(a: np.ndarray, b: np.ndarray, bias=None) -> np.ndarray:
    """Error bound of a float32 a @ b (+ bias), K terms in any order: K * 2**-24 * (|a| @ |b|
    + |bias|), doubled for the split-K workspace sums and the bias add."""
    s = np.abs(a) @ np.abs(b) + (0.0 if bias is None else np.abs(bias))
    return 2.0 * (a.shape[1] + 2) * 2.0 ** -24 * s


def _act_window(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Error bound of a float32 activation y = act(x) at an exact float32 x: a few ulps of y, and
    ulps of 1 times |x| where 0.5 * x * (1 + erf) or x * sigmoid cancel (gelu at negative x)."""
    return 2.0 ** -14 * np.abs(y) + 2.0 ** -21 * np.abs(x)


# ------------------------------------------------------------------ the epilogues on every variant
VARIANTS = [("classic", None), ("persistent", None), ("splitk", 2), ("splitk", 3), ("splitk", 5)]
M_, K_, N_ = 20, 64, 18        # K = 4 blocks of 16: 3 and 5 splits are not whole blocks of K / S


def _variant_id(v):
    return v[0] if v[1] is None else f"{v[0]}{v[1]}"


def _operands(seed: int, k: int = K_):
    """x (M, K), W (N, K) used as W^T (a Linear), and a bias read with stride 2 (b[::2])."""
    rng = np.random.default_rng(seed)
    x = _bf16(rng, M_, k)
    w = _bf16(rng, N_, k, scale=1.5 / math.sqrt(k))      # pre-activations ~ N(0, 1.5^2): |x| < ~6
    bias_buf = _bf16(rng, 2 * N_, scale=0.5)
    bias = bias_buf[::2]
    assert bias.stride() == (2,) and not torch.equal(bias, bias_buf[:N_])
    return x, w.t(), bias


@pytest.mark.parametrize("variant", VARIANTS, ids=_variant_id)
def test_bias_activation_epilogue_every_variant(variant):
    """c = round(act(x @ W^T + b)): one rounding, bias read with its stride, every K block."""
    x, wt, bias = _operands(1)
    a64, b64, bias64 = _np(x), _np(wt), _np(bias)
    p64 = a64 @ b64 + bias64
    wp = _acc_window(a64, b64, bias64)
    for activation in (None, *ACTIVATIONS):
        c = K.matmul(x, wt, bias, activation, variant=variant[0], split_k=variant[1])
        y64 = act(p64, activation)
        # |act'| <= 1.13 for every activation here
        _assert_rounds_to(c, y64, 1.2 * wp + _act_window(p64, y64), f"{variant} {activation}")


@pytest.mark.parametrize("variant", VARIANTS, ids=_variant_id)
def test_pre_out_epilogue_every_variant_activation_of_the_stored_value(variant):
    """pre_out: pre = round(x @ W^T + b), c = round(act(pre as stored)), compared exactly. The
    data must be able to see an activation of the unrounded accumulator: checked first."""
    x, wt, bias = _operands(2)
    a64, b64, bias64 = _np(x), _np(wt), _np(bias)
    p64 = a64 @ b64 + bias64
    wp = _acc_window(a64, b64, bias64)
    for activation in ACTIVATIONS:
        buf = torch.full((M_ + 3, N_ + 5), float("nan"), dtype=BF16, device=DEVICE)
        pre = buf[2:2 + M_, 3:3 + N_]                                  # a strided pre_out view
        c = K.matmul(x, wt, bias, activation, pre_out=pre, variant=variant[0], split_k=variant[1])
        _assert_rounds_to(pre, p64, wp, f"{variant} {activation}: pre_out")
        outside = buf.clone()
        outside[2:2 + M_, 3:3 + N_] = float("nan")
        assert torch.isnan(outside).all(), "pre_out wrote outside its view"
        stored = _np(pre)
        want = act(stored, activation)
        _assert_rounds_to(c, want, _act_window(stored, want), f"{variant} {activation}: act(pre_out)")
        if activation != "relu":      # relu commutes with rounding: there the two agree
            # what an activation of the unrounded accumulator gives, up to float32's error
            unrounded = act(p64, activation)
            wu = 1.2 * wp + _act_window(p64, unrounded)
            lo_u, hi_u = rne_bf16(unrounded - wu), rne_bf16(unrounded + wu)
            lo, hi = rne_bf16(want - _act_window(stored, want)), rne_bf16(want + _act_window(stored, want))
            tells_apart = (hi_u < lo) | (hi < lo_u)
            assert tells_apart.sum() >= 10, (activation, int(tells_apart.sum()))


@pytest.mark.parametrize("variant", VARIANTS, ids=_variant_id)
def test_act_grad_epilogue_every_variant(variant):
    """act_grad_at (no bias): c = round((dy @ W2) * act'(pre)), pre a strided view."""
    rng = np.random.default_rng(3)
    dy = _bf16(rng, M_, K_)
    w2 = _bf16(rng, K_, N_, scale=1.0 / math.sqrt(K_))
    buf = _bf16(rng, N_ + 4, M_ + 2, scale=1.5)
    pre = buf[1:1 + N_, 2:2 + M_].t()                                 # (M, N), transposed and offset
    g64 = _np(dy) @ _np(w2)
    wg = _acc_window(_np(dy), _np(w2))
    for activation in ACTIVATIONS:
        c = K.matmul(dy, w2, None, activation, act_grad_at=pre, variant=variant[0], split_k=variant[1])
        d64 = act_grad(_np(pre), activation)
        want = g64 * d64
        window = 1.2 * wg + np.abs(g64) * (2.0 ** -12 * np.abs(d64) + 2.0 ** -20)
        _assert_rounds_to(c, want, window, f"{variant} {activation}: act_grad_at")


@pytest.mark.parametrize("variant", VARIANTS, ids=_variant_id)
def test_rowsum_every_variant_rounds_once(variant):
    """rowsum (bfloat16) of a = dY^T (a transposed view, as a weight gradient reads it): each value
    the bfloat16 rounding of the float64 row sum, up to float32's accumulation error (one rounding
    of a float32 accumulator, never a bfloat16 running sum); c unchanged by asking for it."""
    rng = np.random.default_rng(8)
    dy = _bf16(rng, K_, M_, scale=4.0)                                # (rows, C_out): a = dy^T
    x = _bf16(rng, K_, N_)
    a = dy.t()
    rs = torch.full((M_,), float("nan"), dtype=BF16, device=DEVICE)
    c = K.matmul(a, x, rowsum=rs, variant=variant[0], split_k=variant[1])
    s64 = _np(a).sum(axis=1)
    window = 2.0 * (K_ + 2) * 2.0 ** -24 * np.abs(_np(a)).sum(axis=1)
    _assert_rounds_to(rs, s64, window, f"{variant} rowsum")
    assert torch.equal(c, K.matmul(a, x, variant=variant[0], split_k=variant[1]))


@pytest.mark.parametrize("k,splits", [(64, (2, 3, 4, 5, 7)), (48, (2,)), (80, (3,))])
def test_splitk_slices_are_whole_k_blocks(k, splits):
    """K a multiple of BLOCK_K (16 here): every split count, including those that do not divide
    the K blocks (the slices must still be whole blocks: no K tail is compiled in)."""
    x, wt, bias = _operands(4, k)
    p64 = _np(x) @ _np(wt) + _np(bias)
    wp = _acc_window(_np(x), _np(wt), _np(bias))
    for s in splits:
        c = K.matmul(x, wt, bias, "gelu", variant="splitk", split_k=s)
        y = act(p64, "gelu")
        _assert_rounds_to(c, y, 1.2 * wp + _act_window(p64, y), f"K={k} split_k={s}")


@pytest.mark.parametrize("split_k", [3, 7])
def test_splitk_at_gpt2_k(split_k):
    """GPT-2's weight gradient dW = X^T @ dY has K = 8192 tokens: 512 blocks of 16, which 3 and 7
    splits do not divide. float32, a transposed a (X^T), a strided bias, checked in float64."""
    rng = np.random.default_rng(5)
    X = torch.from_numpy(rng.standard_normal((8192, 16)).astype(np.float32)).to(DEVICE)
    dY = torch.from_numpy(rng.standard_normal((8192, 18)).astype(np.float32)).to(DEVICE)
    bias = torch.from_numpy(rng.standard_normal(36).astype(np.float32)).to(DEVICE)[::2]
    c = K.matmul(X.t(), dY, bias, variant="splitk", split_k=split_k)
    want = _np(X).T @ _np(dY) + _np(bias)
    np.testing.assert_allclose(_np(c), want, rtol=1e-5, atol=1e-3)


def test_fast_linear_with_a_strided_bias():
    """F.linear(x, w, b[::2]) of the performance layer puts the strided bias view in the matmul's
    epilogue (no copy); then a contiguous bias of the same shape (the plan cache must not mix
    them up)."""
    import minigrad
    from backend_testing import cuda_backend   # tests/ is on sys.path
    from minigrad.fast import functional as FF
    cuda_backend()
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((5, 12)), rng.standard_normal((7, 12)), rng.standard_normal(14)
    t = lambda a: minigrad.tensor(a, dtype="float32", device="cuda")   # noqa: E731
    for bias_np, bias in ((b[::2], t(b)[::2]), (b[:7], t(b[:7])), (b[1::2], t(b)[1::2])):
        y = FF.linear(t(x), t(w), bias)
        np.testing.assert_allclose(y.numpy(), x @ w.T + bias_np, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ 64-bit offsets of the epilogue operands
_BIG_OPERAND_SCRIPT = r"""
import sys
import torch
from minigrad.kernels import matmul as K
K.AUTOTUNE = False
dev = "cuda" if torch.cuda.is_available() else "cpu"
operand = sys.argv[1]
g = torch.Generator().manual_seed(0)
M, KD, N, W = 3, 16, 3, 2 ** 30
a = torch.randn(M, KD, generator=g).to(torch.bfloat16).to(dev)
b = torch.randn(KD, N, generator=g).to(torch.bfloat16).to(dev)
s = a.double() @ b.double()
# 4 GiB of bfloat16, never touched but for the elements of the view (virtual memory on the CPU)
big = torch.empty(2 * W + N, dtype=torch.bfloat16, device=dev)
for variant, split_k in (("classic", None), ("persistent", None), ("splitk", 2)):
    print("running", operand, variant, flush=True)
    if operand == "aux":
        pre = big.as_strided((M, N), (W, 1))           # pre[2] starts at element 2**31
        c = K.matmul(a, b, None, "relu", pre_out=pre, variant=variant, split_k=split_k)
        err = [(pre.double() - s).abs().max().item(), (c.double() - s.relu()).abs().max().item()]
        c = K.matmul(a, b, None, "relu", act_grad_at=pre, variant=variant, split_k=split_k)
        err.append((c.double() - s * (pre.double() > 0)).abs().max().item())
    else:
        bias = big.as_strided((N,), (W,))              # bias[2] is element 2**31
        bias.copy_(torch.tensor([1.0, -2.0, 3.0]))
        c = K.matmul(a, b, bias, variant=variant, split_k=split_k)
        err = [(c.double() - s - bias.double()).abs().max().item()]
    assert max(err) < 0.05, (operand, variant, err)
print("ok")
"""


@pytest.mark.parametrize("operand", ["aux", "bias"])
def test_epilogue_operands_beyond_int32_offsets(operand):
    """A bias or AUX operand whose elements lie 2**31 elements apart, with a, b and c small: its
    offsets (offs_n * stride_bias, offs_m * stride_auxm) must be computed in 64 bits, as a, b and
    c's are when they are that large (INDEX_64). The 4 GiB buffer is only reserved, not touched,
    on the CPU; a wrong offset is a write or read 4 GiB before it (a crash), so it runs in a
    subprocess, every variant in turn."""
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-c", _BIG_OPERAND_SCRIPT, operand],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (
        f"exit status {r.returncode} (-11: a segmentation fault) after:\n{r.stdout[-2000:]}\n"
        f"{r.stderr[-2000:]}")


# ------------------------------------------------------------------ the plan cache
PM, PK, PN = 20, 24, 18


def _input(rng, layout: str, rows: int, cols: int) -> torch.Tensor:
    """A (rows, cols) float32 operand stored row-major, transposed, or with padded rows."""
    def data(*shape):                 # entries ~ N(0, 0.25): products of K = 24 stay ~ N(0, 1.5)
        return torch.from_numpy((0.5 * rng.standard_normal(shape)).astype(np.float32)).to(DEVICE)
    if layout == "rows":
        return data(rows, cols)
    if layout == "cols":
        return data(cols, rows).t()
    assert layout == "padded"
    return data(rows, cols + 5)[:, :cols]


def _view(buf: torch.Tensor, layout: str, rows: int, cols: int) -> torch.Tensor:
    """A (rows, cols) view over `buf` (4 * rows * cols elements): whatever strides a wrong plan
    replays on any of these views, it stays inside buf."""
    if layout == "rows":
        return buf[:rows * cols].view(rows, cols)
    if layout == "cols":
        return buf[:rows * cols].view(cols, rows).t()
    grid = buf.view(2 * rows, 2 * cols)
    if layout == "padded":
        return grid[1:rows + 1, 2:cols + 2]
    assert layout == "strided"
    return grid[:rows, ::2]


def _bias(rng, layout):
    """A (PN,) bias: contiguous, or every 2nd / 3rd of a buffer; all inside a 3 * PN buffer."""
    if layout is None:
        return None
    buf = torch.from_numpy(rng.standard_normal(3 * PN).astype(np.float32)).to(DEVICE)
    return {"contig": buf[:PN], "stride2": buf[::2][:PN], "stride3": buf[1::3]}[layout]


BASE = dict(a="rows", b="rows", bias="contig", out=None, act=None, aux=None, rowsum=None)
PLAN_CASES = [dict(BASE)] + [dict(BASE, **change) for change in [
    dict(a="cols"), dict(a="padded"), dict(b="cols"), dict(b="padded"),
    dict(bias=None), dict(bias="stride2"), dict(bias="stride3"),
    dict(out="rows"), dict(out="cols"), dict(out="padded"), dict(out="strided"),
    dict(act="gelu"), dict(act="silu"),
    # the AUX modes and layouts (no bias: "grad" takes none, so "pre" and "grad" differ in the mode only)
    dict(act="gelu", bias=None, aux=("pre", "rows")), dict(act="gelu", bias=None, aux=("pre", "cols")),
    dict(act="gelu", bias=None, aux=("pre", "padded")), dict(act="gelu", bias=None, aux=("grad", "rows")),
    dict(act="gelu", bias=None, aux=("grad", "cols")), dict(act="gelu", bias=None, aux=("grad", "padded")),
    dict(act="gelu", bias="stride2", aux=("pre", "rows")), dict(act="gelu", aux=("pre", "rows")),
    dict(act="gelu", bias="stride2", aux=("pre", "strided"), out="cols"),
    # a's row sums (a bias gradient's): asked for or not, their dtype, with the layouts and epilogues
    dict(rowsum="float32"), dict(rowsum="float64"), dict(a="cols", rowsum="float32"),
    dict(out="cols", rowsum="float32"), dict(act="gelu", bias=None, aux=("grad", "rows"), rowsum="float32"),
    dict(act="gelu", bias="stride2", aux=("pre", "rows"), rowsum="float32"),
]]


def _plan_call(case: dict, variant, seed: int) -> None:
    """One AUTO.matmul call of `case` on fresh data, every output (and the buffers around the
    views it writes) checked against float64 NumPy."""
    rng = np.random.default_rng(seed)
    a, b = _input(rng, case["a"], PM, PK), _input(rng, case["b"], PK, PN)
    bias = _bias(rng, case["bias"])
    out_buf = out = pre_buf = pre = grad_at = rs = None
    if case["rowsum"] is not None:                # a (PM,) view inside a NaN buffer three times its size
        rs_buf = torch.full((3 * PM,), float("nan"), dtype=getattr(torch, case["rowsum"]), device=DEVICE)
        rs = rs_buf[PM:2 * PM]
    if case["out"] is not None:
        out_buf = torch.full((4 * PM * PN,), float("nan"), device=DEVICE)
        out = _view(out_buf, case["out"], PM, PN)
    if case["aux"] is not None:
        mode, layout = case["aux"]
        if mode == "pre":
            pre_buf = torch.full((4 * PM * PN,), float("nan"), device=DEVICE)
            pre = _view(pre_buf, layout, PM, PN)
        else:
            grad_at = _view(torch.from_numpy(rng.standard_normal(4 * PM * PN).astype(np.float32)).to(DEVICE),
                            layout, PM, PN)
    c = AUTO.matmul(a, b, bias, case["act"], out, pre_out=pre, act_grad_at=grad_at, rowsum=rs,
                    variant=variant)
    what = f"{variant} {case}"
    if rs is not None:
        np.testing.assert_allclose(_np(rs), _np(a).sum(axis=1), rtol=1e-5, atol=1e-5, err_msg=what)
        assert torch.isnan(rs_buf[:PM]).all() and torch.isnan(rs_buf[2 * PM:]).all(), f"{what}: rowsum"
    s = _np(a) @ _np(b) + (0.0 if bias is None else _np(bias))
    tol = dict(rtol=1e-4, atol=1e-4, err_msg=what)
    if grad_at is not None:
        want = s * act_grad(_np(grad_at), case["act"])
    elif pre is not None:
        np.testing.assert_allclose(_np(pre), s, **tol)
        want = act(_np(pre), case["act"])
    else:
        want = act(s, case["act"])
    np.testing.assert_allclose(_np(c), want, **tol)
    for buf, view in ((out_buf, out), (pre_buf, pre)):
        if buf is not None:
            assert c is not None and view.shape == (PM, PN)
            written = torch.zeros_like(buf, dtype=torch.bool)
            _view(written, case["out"] if view is out else case["aux"][1], PM, PN).fill_(True)
            assert torch.isnan(buf[~written]).all(), f"{what}: written outside the view"
    if out is not None:
        assert c.data_ptr() == out.data_ptr()


@pytest.mark.parametrize("variant", [None, "classic", "persistent"])
def test_plan_cache_keeps_layouts_and_aux_modes_apart(monkeypatch, variant):
    """The same shapes with one thing changed at a time (a, b, bias, out, activation, AUX mode
    and AUX layout), back to back, then again in reverse order (replays of each plan after the
    others): every result right, one plan per signature, every repeat replayed."""
    monkeypatch.setattr(PLAN, "_PLANS", {})
    slow, real = [], K.check_operands
    monkeypatch.setattr(K, "check_operands", lambda *args: (slow.append(1), real(*args))[1])
    assert len({repr(sorted(c.items())) for c in PLAN_CASES}) == len(PLAN_CASES)
    for i, case in enumerate(PLAN_CASES + PLAN_CASES[::-1]):
        _plan_call(case, variant, seed=i)
    assert len(slow) == len(PLAN_CASES), "a signature was replayed from another's plan, or not kept"
    assert len(PLAN._PLANS) == len(PLAN_CASES)


# ------------------------------------------------------------------ the multi-tensor chunk tables
CHUNKS = (1024, 2048, 4096, 1024, 3072, 2048, 1024)


def test_chunk_tables_are_kept_per_chunk_size(monkeypatch):
    """pointer_table with the same addresses and sizes at several chunk sizes, back to back."""
    monkeypatch.setattr(MT, "_TABLES", OrderedDict())
    monkeypatch.setattr(MT, "_CHUNKS", OrderedDict())
    numels = [3000, 1024, 5000, 7]
    rows = [((1 << 20) * (i + 1), n) for i, n in enumerate(numels)]     # addresses are only keys here
    for chunk in CHUNKS:
        table, chunks, n_chunks = MT.pointer_table(rows, numels, chunk, torch.device(DEVICE))
        want = [[t, s] for t, n in enumerate(numels) for s in range(0, n, chunk)]
        assert chunks.tolist() == want and n_chunks == len(want), chunk
        assert table.tolist() == [list(r) for r in rows]


def test_clip_with_changing_chunk_sizes(monkeypatch):
    """clip_by_total_norm on the same gradients at several chunk sizes, back to back: the norm and
    every scaled gradient against float64 NumPy each time."""
    monkeypatch.setattr(MT, "_TABLES", OrderedDict())
    monkeypatch.setattr(MT, "_CHUNKS", OrderedDict())
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (3000, 1024, 5000, 7)]
    xs = [torch.from_numpy(a).to(DEVICE) for a in arrays]
    norm = math.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for a in arrays))
    max_norm = norm / 3.0
    coef = max_norm / (norm + 1e-6)
    for chunk in CHUNKS:
        total, c, out = MT.clip_by_total_norm(xs, max_norm, chunk=chunk)
        assert float(total) == pytest.approx(norm, rel=1e-5), chunk
        assert float(c) == pytest.approx(coef, rel=1e-5), chunk
        for a, o in zip(arrays, out):
            np.testing.assert_allclose(o.cpu().numpy(), a.astype(np.float64) * coef, rtol=1e-5, atol=1e-6,
                                       err_msg=f"chunk {chunk}")
