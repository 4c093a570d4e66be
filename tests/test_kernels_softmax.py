"""kernels/softmax.py against torch (the oracle): softmax / log_softmax forward and backward.

Under the interpreter (no GPU) shapes are tiny and `block_size=` forces the multi-block path.
"""
import pytest
import torch

from kernel_testing import DEVICE, gpu  # first: it sets up the interpreter
from minigrad.kernels import softmax as K

# Per-dtype tolerances (atol, rtol) for outputs stored in that dtype.
TOL = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}
DTYPES = list(TOL)


def _ref(x, dy, log):
    """torch forward and autograd backward in float64 (then cast), from the same inputs."""
    x64 = x.detach().to(torch.float64).requires_grad_(True)
    y64 = torch.log_softmax(x64, -1) if log else torch.softmax(x64, -1)
    y64.backward(dy.to(torch.float64))
    return y64.detach(), x64.grad


def _check(x, log, block_size=None, dy=None):
    dtype = x.dtype
    atol, rtol = TOL[dtype]
    if dy is None:
        dy = torch.randn(x.shape, device=x.device).to(dtype)
    fwd, bwd = (K.log_softmax_fwd, K.log_softmax_bwd) if log else (K.softmax_fwd, K.softmax_bwd)
    y = fwd(x, block_size=block_size)
    y_ref, dx_ref = _ref(x, dy, log)
    assert y.shape == x.shape and y.dtype == dtype and y.is_contiguous()
    torch.testing.assert_close(y.to(torch.float64), y_ref, atol=atol, rtol=rtol)
    # backward from the reference y cast to dtype (what the caller saved)
    dx = bwd(dy, y_ref.to(dtype), block_size=block_size)
    assert dx.shape == x.shape and dx.dtype == dtype
    scale = max(1.0, dx_ref.abs().max().item())
    torch.testing.assert_close(dx.to(torch.float64), dx_ref, atol=atol * scale * 4, rtol=rtol * 4)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,block_size", [
    ((1, 1), None),          # C = 1, N = 1
    ((7,), None),            # 1-d input
    ((3, 37), None),         # single block with a tail (BLOCK_C = 64)
    ((2, 3, 16), None),      # leading dims, exact power of two
    ((5, 100), 32),          # multi block: 4 chunks, tail of 4
    ((3, 64), 16),           # multi block, exact multiple
    ((2, 1), 1),             # C = 1 on the multi path boundary (single, block 1)
    ((4, 5), 2),             # multi block with tiny chunks
])
def test_float32_paths(shape, block_size, log):
    torch.manual_seed(0)
    x = torch.randn(shape, device=DEVICE) * 3
    _check(x, log, block_size)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [None, 16])
def test_dtypes(dtype, block_size, log):
    torch.manual_seed(1)
    x = (torch.randn(6, 50, device=DEVICE) * 2).to(dtype)
    _check(x, log, block_size)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("block_size", [None, 8])
def test_strided_inputs(block_size, log):
    torch.manual_seed(2)
    base = torch.randn(6, 40, device=DEVICE)
    _check(base[:, 3:30], log, block_size)                      # row stride 40, C = 27
    _check(base.t()[:20], log, block_size)                      # column stride 40 (transposed)
    _check(torch.randn(4, 2, 33, device=DEVICE)[:, 1], log, block_size)   # (4, 33), row stride 66
    row = torch.randn(1, 19, device=DEVICE)
    _check(row.expand(5, 19), log, block_size)                  # stride-0 rows (broadcast)
    # dy with a different layout than y
    x = torch.randn(5, 21, device=DEVICE)
    dy = torch.randn(21, 5, device=DEVICE).t()
    _check(x, log, block_size, dy=dy)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("block_size", [None, 8])
def test_masked_minus_inf(block_size, log):
    """Causal-mask style rows: some -inf entries, a whole -inf leading chunk."""
    torch.manual_seed(3)
    x = torch.randn(4, 30, device=DEVICE)
    x[0, :20] = -float("inf")        # the first 2 chunks of 8 are entirely -inf
    x[1, 5:] = -float("inf")
    x[2, ::3] = -float("inf")
    fwd = K.log_softmax_fwd if log else K.softmax_fwd
    y = fwd(x, block_size=block_size)
    ref = torch.log_softmax(x, -1) if log else torch.softmax(x, -1)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


# exp(100) overflows float32 and exp(1000) float64, exp(-1000) underflows both: only a softmax
# that subtracts the row max stays finite. With block_size=4 the second chunk of the first row
# holds the larger max, so the online path must also rescale its running sum correctly.
EXTREME = [[100.0, 0.0, -5.0, 3.0, 1.0, -1000.0, 1000.0, 998.0],
           [-1000.0, -1001.0, -999.0, -1000.0, -1002.0, -998.0, -1000.0, -1004.0],
           [1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0]]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [None, 4])
def test_extreme_logits(dtype, block_size, log):
    _check(torch.tensor(EXTREME, device=DEVICE).to(dtype), log, block_size)
    # the issue's own example: one row of 3 columns (a padded single block)
    _check(torch.tensor([[100.0, 0.0, -5.0]], device=DEVICE).to(dtype), log, block_size)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the NaNs are the point
def test_all_minus_inf_row_is_nan_like_torch():
    x = torch.full((2, 12), -float("inf"), device=DEVICE)
    for bs in (None, 4):
        assert torch.isnan(K.softmax_fwd(x, block_size=bs)).all()


def test_errors():
    x = torch.randn(3, 4, device=DEVICE)
    with pytest.raises(TypeError):
        K.softmax_fwd(torch.ones(3, 4, dtype=torch.int64, device=DEVICE))
    with pytest.raises(ValueError):
        K.softmax_fwd(torch.tensor(1.0, device=DEVICE))
    with pytest.raises(ValueError):
        K.softmax_bwd(x, torch.randn(3, 5, device=DEVICE))
    with pytest.raises(TypeError):
        K.softmax_bwd(x, x.to(torch.float16))
    with pytest.raises(ValueError):
        K.softmax_fwd(x, block_size=3)
    with pytest.raises(ValueError):   # leading dims that do not collapse
        K.softmax_fwd(torch.randn(4, 3, 5, device=DEVICE).permute(1, 0, 2))
    assert K.softmax_fwd(torch.randn(0, 5, device=DEVICE)).shape == (0, 5)


@gpu
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape", [(8 * 12 * 64, 1024), (64, 65536), (128, 50257), (33, 8192)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_realistic(shape, dtype, log):
    torch.manual_seed(0)
    x = (torch.randn(shape, device="cuda") * 4).to(dtype)
    _check(x, log)
