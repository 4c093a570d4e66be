"""kernels/reduce.py against torch (the oracle) in the interpreter.

Covers every subset of axes with and without keepdim on contiguous, transposed, sliced and
expanded views; inner and outer reductions; the two-pass column split (long rows); int64 and
bool sums; 16-bit inputs with float32 accumulation; argmax ties and -inf rows.
"""
import itertools

import kernel_testing  # noqa: E402,F401  (interpreter only when there is no CUDA; before kernels)

import pytest  # noqa: E402
import torch  # noqa: E402

from kernel_testing import DEVICE  # noqa: E402
from minigrad.kernels import reduce as red  # noqa: E402

# per-dtype tolerances (rtol, atol) against a float64 torch reference
TOL = {
    torch.float32: (1e-5, 1e-5),
    torch.float64: (1e-12, 1e-12),
    torch.bfloat16: (1e-2, 5e-2),
    torch.float16: (2e-3, 1e-2),
}


def _views(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 33, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    return [
        ("contiguous", x),
        ("transposed", x.transpose(0, 2)),
        ("sliced", x[:, 1:4, ::2]),
        ("expanded", x[:, :1].expand(4, 9, 33)),
    ]


def _close(out, ref, dtype):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out.double(), ref.double(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_sum_and_max_every_axes_subset(dtype, keepdim):
    for name, x in _views(dtype):
        for r in range(4):
            for axes in itertools.combinations(range(3), r):
                s = red.reduce_sum(x, axes, keepdim)
                m = red.reduce_max(x, axes, keepdim)
                assert s.dtype == dtype and m.dtype == dtype
                ref_s = x.double().sum(dim=axes, keepdim=keepdim) if axes else x.double()
                ref_m = x.amax(dim=axes, keepdim=keepdim) if axes else x
                assert s.shape == ref_s.shape and m.shape == ref_m.shape, (name, axes)
                _close(s, ref_s, dtype)
                assert torch.equal(m, ref_m), (name, axes)


@pytest.mark.parametrize("shape,axes", [((3, 5000), [1]), ((3, 5000), [0, 1]), ((5000, 3), [0]),
                                        ((2, 700, 3), [0, 1]), ((1,), [0]), ((1, 1), [0, 1])])
def test_long_reductions_use_two_passes(shape, axes):
    x = torch.randn(shape, device=DEVICE)
    _close(red.reduce_sum(x, axes), x.double().sum(dim=axes), torch.float32)
    assert torch.equal(red.reduce_max(x, axes), x.amax(dim=axes))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_column_sums_take_one_launch_when_columns_fill_the_grid(dtype, monkeypatch):
    """A bias gradient, dy (N, C) summed over N, is one launch when C is wide enough for the
    interpreter's COL_SINGLE_PASS programs of COL_MIN_BLOCK_R columns (before: the column split,
    two); a narrow C still splits N in two passes."""
    launches = []
    real = red._launch_reduce
    monkeypatch.setattr(red, "_launch_reduce", lambda *a: launches.append(a) or real(*a))
    g = torch.Generator().manual_seed(5)
    wide = torch.randn(300, 48, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    narrow = torch.randn(600, 5, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    for x, n_launches in ((wide, 1), (wide[:, ::2], 1), (narrow, 2)):
        launches.clear()
        _close(red.reduce_sum(x, [0]), x.double().sum(0), dtype)
        assert len(launches) == n_launches, (tuple(x.shape), x.stride())


def test_max_propagates_nan():
    x = torch.randn(4, 3000, device=DEVICE)
    x[1, 2500] = float("nan")
    x[3, 7] = float("nan")
    torch.testing.assert_close(red.reduce_max(x, [1]), x.amax(1), equal_nan=True)     # two passes
    torch.testing.assert_close(red.reduce_max(x[:, :40], [1]), x[:, :40].amax(1), equal_nan=True)
    assert torch.isnan(red.reduce_max(x, [0, 1]))


def test_16bit_accumulates_in_float32():
    x = torch.full((4096,), 0.01, dtype=torch.bfloat16, device=DEVICE)
    # a bf16 running sum would stall far below 4096 * 0.01 = 41
    _close(red.reduce_sum(x, [0]), x.double().sum(), torch.bfloat16)
    xh = torch.randn(7, 300, dtype=torch.float16, device=DEVICE)
    _close(red.reduce_sum(xh, [1]), xh.double().sum(1), torch.float16)


def test_int_and_bool():
    x = torch.randint(-2 ** 40, 2 ** 40, (6, 70), device=DEVICE)
    assert torch.equal(red.reduce_sum(x, [0]), x.sum(0))
    assert torch.equal(red.reduce_sum(x, [0, 1], keepdim=True), x.sum((0, 1), keepdim=True))
    assert torch.equal(red.reduce_max(x.t(), [1]), x.amax(0))
    b = x > 0
    s = red.reduce_sum(b, [1])
    assert s.dtype == torch.int64 and torch.equal(s, b.sum(1))
    assert torch.equal(red.reduce_max(b, [0]), b.amax(0))


def test_empty_cases():
    assert torch.equal(red.reduce_sum(torch.zeros(3, 0, device=DEVICE), [1]), torch.zeros(3, device=DEVICE))
    assert red.reduce_sum(torch.zeros(0, 4, device=DEVICE), [1]).shape == (0,)
    s = red.reduce_sum(torch.tensor(2.5, device=DEVICE), [])
    assert s.shape == () and float(s) == 2.5
    with pytest.raises(ValueError, match="empty"):
        red.reduce_max(torch.zeros(3, 0, device=DEVICE), [1])
    with pytest.raises(ValueError, match="out of range"):
        red.reduce_sum(torch.zeros(3, device=DEVICE), [1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_argmax(dtype):
    for name, x in _views(dtype if dtype != torch.int64 else torch.float32):
        x = (x * 3).to(dtype) if dtype == torch.int64 else x     # int64: many ties
        for axis in range(3):
            assert torch.equal(red.argmax(x, axis), x.argmax(axis)), (name, axis)
    long = torch.randn(3, 5000, device=DEVICE).to(dtype if dtype != torch.int64 else torch.float32)
    assert torch.equal(red.argmax(long, 1), long.argmax(1))


def test_argmax_ties_and_neg_inf():
    t = torch.tensor([[1.0, 3.0, 3.0, 2.0], [float("-inf")] * 4, [0.0, 0.0, 5.0, 5.0]], device=DEVICE)
    assert red.argmax(t, 1).tolist() == [1, 0, 2]
    assert red.argmax(t, 0).tolist() == [0, 0, 2, 2]


@pytest.mark.gpu
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_realistic_sizes_gpu(dtype):
    x = torch.randn(8192, 3072, device="cuda", dtype=dtype)
    _close(red.reduce_sum(x, [0]), x.double().sum(0), dtype)            # bias gradient
    _close(red.reduce_sum(x, [1], keepdim=True), x.double().sum(1, keepdim=True), dtype)
    torch.testing.assert_close(red.reduce_sum(x, [0, 1]).double(), x.double().sum(), rtol=1e-3, atol=1.0)
    assert torch.equal(red.reduce_max(x, [1]), x.amax(1))
    logits = torch.randn(64, 50257, device="cuda", dtype=dtype)
    assert torch.equal(red.argmax(logits, 1), logits.argmax(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(), (1,), (37,), (4, 5, 33), (3, 5000)])     # (3, 5000): two passes
def test_sum_squares(dtype, shape):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    out = red.sum_squares(x)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert out.shape == () and out.dtype == acc
    ref = (x.double() ** 2).sum()                 # squares of the stored 16-bit values, exactly
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert abs(out.double().item() - ref.item()) <= tol * max(1.0, ref.item())


def test_sum_squares_of_views_and_empty():
    x = torch.randn(40, 7, dtype=torch.float32, device=DEVICE)
    for v in (x.t(), x[::3], x[:, 2:5]):
        assert abs(red.sum_squares(v).item() - (v.double() ** 2).sum().item()) < 1e-4
    assert red.sum_squares(torch.empty(0, 3, device=DEVICE)).item() == 0.0
    with pytest.raises(TypeError, match="float"):
        red.sum_squares(torch.ones(3, dtype=torch.int64, device=DEVICE))
