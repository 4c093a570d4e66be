"""a's row sums from the matmul that reads a (`rowsum=` of kernels/matmul.py and matmul_auto.py,
`FastOps.matmul_rowsum`): a Linear's bias gradient db = dY^T 1 from its weight gradient's launch
dW = dY^T X, instead of a column-sum launch over dY.

Checked against torch (float64 sums of the same inputs; the oracle) under the interpreter, whose
16x16x16 tiles make small shapes hit several tile rows and columns, M/K tails, and, for the
persistent kernel, programs that walk several tiles (3 programs):
- every dtype the kernels take, every variant that can compute them (classic, persistent through
  TMA and through pointers, split-K with uneven and empty splits), a transposed a = g.t() of a
  contiguous g (the real use), K == 0, nothing written outside rowsum;
- c is the same bits with and without rowsum, with every epilogue (bias + activation, pre_out,
  act_grad_at, out=);
- matmul_auto: the variant timing launches every candidate with the row sums and keys its pick
  on them; a plan kept for a call without rowsum is never replayed for one with it (or back);
- FastOps.matmul_rowsum: the NumPy specification by hand, the Triton override against it, and
  its dtype against Backend.reduce_sum's (what Linear.backward uses today);
- bad arguments give clear errors.
"""
import numpy as np
import pytest
import torch

from kernel_testing import DEVICE  # first: it sets up the interpreter
from minigrad.kernels import matmul as K
from minigrad.kernels import matmul_auto as AUTO
from minigrad.kernels import matmul_persistent as MP
from minigrad.kernels import matmul_plan as PLAN
from minigrad.kernels import matmul_splitk as MS

F32, BF16, F16, F64 = torch.float32, torch.bfloat16, torch.float16, torch.float64
# Row sums (atol, rtol) against float64 sums of the same inputs: float32 (float64) accumulation
# of K terms, then one rounding to rowsum's dtype (half an ulp: 2**-9 for bfloat16, 2**-12 for
# float16; twice that allowed, the interpreter's float32 -> bfloat16 truncates).
RS_TOL = {F64: (1e-12, 1e-12), F32: (1e-5, 1e-5), F16: (1e-3, 2.0 ** -10), BF16: (1e-2, 2.0 ** -7)}
# (variant, split_k) each dtype can take (float64: the classic kernel only)
VARIANTS = [("classic", None), ("persistent", None), ("splitk", 2), ("splitk", 3), ("splitk", 4)]
DTYPE_VARIANTS = [(dt, v) for dt in (F32, BF16, F16) for v in VARIANTS] + [(F64, ("classic", None))]


@pytest.fixture(autouse=True)
def fixed_config_ieee(monkeypatch):
    """Fixed tiles (16x16x16 in the interpreter) and IEEE float32, as tests/test_kernels_matmul.py."""
    monkeypatch.setattr(K, "AUTOTUNE", False)
    monkeypatch.setattr(K, "ALLOW_TF32", False)


def _rand(*shape, dtype=F32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F32).to(dtype).to(DEVICE)


def _grad_operands(M, K_, N, dtype, seed=0):
    """a = g.t() (M, K) of a contiguous g (K, M), as dY^T of a Linear's dY (rows, C_out); b (K, N)."""
    g = _rand(K_, M, dtype=dtype, seed=seed)
    return g.t(), _rand(K_, N, dtype=dtype, seed=seed + 1)


def _rowsum_buffer(M, dtype):
    """(rowsum, buf): a contiguous (M,) view into a NaN-filled buffer with 3 elements either side."""
    buf = torch.full((M + 6,), float("nan"), dtype=dtype, device=DEVICE)
    return buf[3:3 + M], buf


def _check_rowsum(rs, buf, a, tol_dtype=None):
    atol, rtol = RS_TOL[tol_dtype or rs.dtype]
    want = a.double().sum(1)                      # = a.float().sum(1) up to float32's own error
    torch.testing.assert_close(rs.double(), want, atol=atol, rtol=rtol)
    assert torch.isnan(buf[:3]).all() and torch.isnan(buf[-3:]).all(), "rowsum written outside its view"


def _run(a, b, variant, **kw):
    return K.matmul(a, b, variant=variant[0], split_k=variant[1], **kw)


@pytest.mark.parametrize("dtype,variant", DTYPE_VARIANTS, ids=lambda x: str(x))
def test_rowsum_every_dtype_and_variant(dtype, variant):
    """M = 37, K = 101, N = 19: tails everywhere (split-K 4: the 7 K blocks make an empty split);
    c is the same bits as without rowsum."""
    a, b = _grad_operands(37, 101, 19, dtype)
    rs, buf = _rowsum_buffer(37, dtype)
    c = _run(a, b, variant, rowsum=rs)
    _check_rowsum(rs, buf, a)
    assert torch.equal(c, _run(a, b, variant))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda x: str(x))
def test_rowsum_in_float32_for_bfloat16_inputs(variant):
    """A float32 rowsum for bfloat16 operands keeps the float32 accumulator unrounded."""
    a, b = _grad_operands(40, 64, 33, BF16, seed=3)                 # K a multiple of BLOCK_K
    rs, buf = _rowsum_buffer(40, F32)
    _run(a, b, variant, rowsum=rs)
    _check_rowsum(rs, buf, a)


@pytest.mark.parametrize("tma", [True, False])
@pytest.mark.parametrize("dtype", [F32, BF16])
def test_persistent_rowsum_through_tma_and_pointers(monkeypatch, dtype, tma):
    """a = g.t() with 16-byte rows (TMA-readable) or not; 3 programs walk 4 x 3 tiles, so c's first
    column of tiles is spread over programs that also compute other columns."""
    monkeypatch.setattr(MP, "USE_TMA", tma)
    a, b = _grad_operands(64, 72, 40, dtype, seed=5)
    assert MP.tma_plan(a[None, None], b[None, None], False)[0] is tma
    rs, buf = _rowsum_buffer(64, dtype)
    bias = _rand(40, dtype=dtype, seed=9)
    c = K.matmul(a, b, bias, "gelu", rowsum=rs, variant="persistent")
    _check_rowsum(rs, buf, a)
    assert torch.equal(c, K.matmul(a, b, bias, "gelu", variant="persistent"))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda x: str(x))
def test_rowsum_with_every_epilogue_leaves_c_alone(variant):
    """bias + activation, pre_out, act_grad_at and a strided out=: the same c (and pre) bits as
    without rowsum, and the row sums right each time."""
    M, K_, N = 33, 50, 29
    a, b = _grad_operands(M, K_, N, F32, seed=7)
    bias = _rand(2 * N, seed=8)[::2]
    for kw in (dict(bias=bias, activation="relu"), dict(bias=bias, activation="gelu", pre="pre_out"),
               dict(activation="silu", pre="act_grad_at"), dict(out=True)):
        kw = dict(kw)
        extra = {}
        if kw.pop("out", False):
            extra["out"] = lambda: torch.full((N, M + 2), 7.0, device=DEVICE)[:, 1:1 + M].t()
        mode = kw.pop("pre", None)
        if mode == "pre_out":
            extra[mode] = lambda: torch.full((M, N), float("nan"), device=DEVICE)
        elif mode == "act_grad_at":
            at = _rand(M, N, seed=10)
            extra[mode] = lambda: at
        runs = []
        for rowsum in (True, False):
            made = {k: f() for k, f in extra.items()}
            rs, buf = _rowsum_buffer(M, F32)
            c = _run(a, b, variant, **kw, **made, rowsum=rs if rowsum else None)
            if rowsum:
                _check_rowsum(rs, buf, a)
            else:
                assert torch.isnan(buf).all()
            if "out" in made:
                assert c.data_ptr() == made["out"].data_ptr()
            runs.append([c] + ([made["pre_out"]] if mode == "pre_out" else []))
        for x, y in zip(*runs):
            assert torch.equal(x, y), (variant, kw, mode)


@pytest.mark.parametrize("variant", [("classic", None), ("persistent", None), ("splitk", 2)], ids=str)
def test_rowsum_of_an_empty_k_is_zero(variant):
    a, b = _rand(5, 0), _rand(0, 7)
    rs, buf = _rowsum_buffer(5, F32)
    c = _run(a, b, variant, rowsum=rs)
    assert torch.equal(rs, torch.zeros(5, device=DEVICE)) and torch.equal(c, torch.zeros(5, 7, device=DEVICE))
    assert K.matmul(_rand(0, 4), _rand(4, 3), rowsum=torch.empty(0, device=DEVICE)).shape == (0, 3)


def test_rowsum_at_a_long_k():
    """GPT-2's weight gradients have K = 8192 rows: the float32 running sums stay accurate."""
    a, b = _grad_operands(18, 8192, 20, F32, seed=11)
    for variant in (("classic", None), ("splitk", 3)):
        rs, buf = _rowsum_buffer(18, F32)
        _run(a, b, variant, rowsum=rs)
        _check_rowsum(rs, buf, a)


def test_splitk_rowsum_is_deterministic():
    a, b = _grad_operands(40, 150, 18, BF16, seed=12)
    runs = []
    for _ in range(2):
        rs = torch.empty(40, dtype=F32, device=DEVICE)
        K.matmul(a, b, rowsum=rs, variant="splitk", split_k=3)
        runs.append(rs)
    assert torch.equal(*runs)


# ---------------------------------------------------------------------------- matmul_auto
def test_variant_timing_launches_every_candidate_with_the_row_sums(monkeypatch):
    """With autotuning on, _pick_variant times classic, persistent and split-K with the row sums
    (each candidate must write them right) and keeps that pick apart from the same shape without."""
    monkeypatch.setattr(K, "AUTOTUNE", True)
    monkeypatch.setattr(K, "tile_config", lambda dtype: None)

    def launch_tuned(tuner, kernel, grid, args, meta, derived=None, per_call=None):
        cfg = K._fixed_config(F32)
        extra = dict(derived(cfg), **cfg)
        kernel[grid](*args, **meta, **extra)
        return extra
    for module in (K, MP, MS):
        monkeypatch.setattr(module, "launch_tuned", launch_tuned)
    monkeypatch.setattr(AUTO, "_CHOSEN", {})
    monkeypatch.setattr(AUTO, "TUNE_CACHE", type("NoCache", (), {"get": lambda s, k: None,
                                                                 "put": lambda s, k, v: None})())
    monkeypatch.setattr(PLAN, "_PLANS", {})
    launched, real_launch = [], K.launch

    def launch(variant, split_k, c4, a4, b4, bias, aux, meta, cfg, rowsum=None):
        if rowsum is not None:
            rowsum.fill_(float("nan"))
        launched.append((variant, split_k, meta["ROWSUM"]))
        out = real_launch(variant, split_k, c4, a4, b4, bias, aux, meta, cfg, rowsum)
        if rowsum is not None:                                   # every candidate's row sums
            torch.testing.assert_close(rowsum.double(), a4[0, 0].double().sum(1), atol=1e-4, rtol=1e-5)
        return out
    monkeypatch.setattr(K, "launch", launch)
    fake_ms = {"classic": 3.0, "persistent": 2.0, "splitk": 1.0}
    monkeypatch.setattr(AUTO.triton.testing, "do_bench", lambda fn, **kw: (fn(), fake_ms[launched[-1][0]])[1])
    a, b = _grad_operands(20, 512, 18, F32, seed=13)             # 8 K blocks of 64: split-K 2 is a candidate
    assert MS.split_candidates(20, 18, 512, MP.num_programs(a.device)) == [2]
    rs = torch.empty(20, device=DEVICE)
    c = AUTO.matmul(a, b, rowsum=rs)
    assert {v for v, _, r in launched if r} == {"classic", "persistent", "splitk"}
    assert all(r for _, _, r in launched) and launched[-1][:2] == ("splitk", 2)
    torch.testing.assert_close(rs.double(), a.double().sum(1), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(c.double(), a.double() @ b.double(), atol=1e-4, rtol=1e-4)
    n = len(launched)
    AUTO.matmul(a, b)                                            # no rowsum: timed on its own
    assert len(launched) > n + 2 and not any(r for _, _, r in launched[n:])


@pytest.mark.parametrize("variant", [None, "classic", "persistent"])
def test_plans_with_and_without_rowsum_are_kept_apart(monkeypatch, variant):
    """The same shapes and layouts without, with (float32, then bfloat16 row sums), and again without
    rowsum, back to back and repeated: one full host path per signature, every replay right, and a
    call without rowsum never writes into the last call's rowsum buffer."""
    monkeypatch.setattr(PLAN, "_PLANS", {})
    slow, real = [], K.check_operands
    monkeypatch.setattr(K, "check_operands", lambda *args: (slow.append(1), real(*args))[1])
    M = 24
    last_buf = None
    for i, rs_dtype in enumerate([None, F32, BF16, None, F32, BF16, None]):
        a, b = _grad_operands(M, 40, 20, F32, seed=20 + i)
        rs = buf = None
        if rs_dtype is not None:
            rs, buf = _rowsum_buffer(M, rs_dtype)
        elif last_buf is not None:
            last_buf.fill_(float("nan"))
        c = AUTO.matmul(a, b, rowsum=rs, variant=variant)
        torch.testing.assert_close(c.double(), a.double() @ b.double(), atol=1e-4, rtol=1e-4)
        if rs is not None:
            _check_rowsum(rs, buf, a, tol_dtype=rs_dtype)
            last_buf = buf
        else:
            assert last_buf is None or torch.isnan(last_buf).all(), "a plan wrote an old rowsum"
    assert len(slow) == 3 and len(PLAN._PLANS) == 3


# ---------------------------------------------------------------------------- FastOps
def test_fast_ops_spec_by_hand_and_triton_override_agree():
    """FastOps.matmul_rowsum on NumPy (the specification) is (a @ b, a.sum(1)); TritonFastOps gives
    the same from one launch, for a transposed view a = g^T as Linear.backward would pass."""
    from checked_backend import CheckedBackend
    from minigrad.backends.numpy_backend import NumpyBackend
    from minigrad.backends.triton_backend import TritonBackend
    from minigrad.fast.ops import FastOps, fast_ops
    nb = FastOps(CheckedBackend(NumpyBackend()))
    tb = fast_ops(CheckedBackend(TritonBackend()))
    assert type(tb).__name__ == "TritonFastOps"
    rng = np.random.default_rng(14)
    for dtype in ("float64", "float32"):
        g = rng.standard_normal((45, 21)).astype(dtype)              # dY (rows, C_out)
        x = rng.standard_normal((45, 17)).astype(dtype)              # X (rows, C_in)
        c, s = nb.matmul_rowsum(g.T, x)
        np.testing.assert_allclose(c, g.T @ x, rtol=1e-12 if dtype == "float64" else 1e-5, atol=1e-5)
        np.testing.assert_allclose(s, g.sum(0), rtol=1e-12 if dtype == "float64" else 1e-5, atol=1e-5)
        assert c.dtype == s.dtype == np.dtype(dtype) and s.shape == (21,)
        up, down = tb.b.from_numpy, tb.b.to_numpy
        ct, st = tb.matmul_rowsum(tb.b.permute(up(g), (1, 0)), up(x))
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(down(ct), c, **tol)
        np.testing.assert_allclose(down(st), s, **tol)


def test_triton_fast_ops_row_sums_have_reduce_sums_dtype():
    """bfloat16 in, bfloat16 row sums out (float32 accumulation), as Backend.reduce_sum(dY, (0,))
    gives the bias gradient today; N == 0 falls back to the specification."""
    from minigrad.backends.triton_backend import TritonBackend
    from minigrad.fast.ops import fast_ops
    tb = fast_ops(TritonBackend())
    g, x = _rand(45, 21, dtype=BF16, seed=15), _rand(45, 17, dtype=BF16, seed=16)
    c, s = tb.matmul_rowsum(g.t(), x)
    db = tb.b.reduce_sum(g, (0,), False)
    assert s.dtype == db.dtype == BF16 and c.dtype == BF16 and s.shape == db.shape == (21,)
    torch.testing.assert_close(s.double(), g.double().sum(0), atol=1e-2, rtol=2.0 ** -7)
    torch.testing.assert_close(s.double(), db.double(), atol=1e-2, rtol=2.0 ** -7)
    c0, s0 = tb.matmul_rowsum(g.t(), x[:, :0])
    assert c0.shape == (21, 0) and s0.dtype == BF16
    torch.testing.assert_close(s0.double(), db.double(), atol=1e-2, rtol=2.0 ** -7)


# ---------------------------------------------------------------------------- bad inputs
def test_bad_rowsum_arguments():
    a, b = _rand(4, 5), _rand(5, 3)
    for mm in (K.matmul, AUTO.matmul):
        with pytest.raises(ValueError, match=r"rowsum must have shape \(4,\)"):
            mm(a, b, rowsum=torch.empty(3, device=DEVICE))
        with pytest.raises(ValueError, match=r"rowsum must have shape \(4,\)"):
            mm(a, b, rowsum=torch.empty(4, 1, device=DEVICE))
        with pytest.raises(TypeError, match="rowsum must be float32/bfloat16/float16/float64"):
            mm(a, b, rowsum=torch.empty(4, dtype=torch.int32, device=DEVICE))
        with pytest.raises(ValueError, match="rowsum must be on"):
            mm(a, b, rowsum=torch.empty(4, device="meta"))
        with pytest.raises(ValueError, match="rowsum must be contiguous"):
            mm(a, b, rowsum=torch.empty(8, device=DEVICE)[::2])
        with pytest.raises(TypeError, match="rowsum must be a torch tensor"):
            mm(a, b, rowsum=[0.0] * 4)
        with pytest.raises(ValueError, match=r"rowsum works on one \(M, K\) @ \(K, N\) matrix"):
            mm(_rand(2, 4, 5), _rand(2, 5, 3), rowsum=torch.empty(4, device=DEVICE))
        with pytest.raises(ValueError, match="rowsum needs N > 0"):
            mm(a, b[:, :0], rowsum=torch.empty(4, device=DEVICE))
