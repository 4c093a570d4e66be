"""kernels/layernorm.py (LayerNorm and RMSNorm) against torch: values, saved stats, gradients."""
import pytest
import torch

from kernel_testing import DEVICE, gpu  # first: it sets up the interpreter
from minigrad.kernels import layernorm as K

# Per-dtype tolerances (atol, rtol) for values stored in that dtype.
TOL = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (4e-3, 4e-3),
    torch.bfloat16: (3e-2, 3e-2),
}
DTYPES = list(TOL)
EPS = 1e-5


def _ref(x, weight, bias, dy, rms):
    """torch in float64: (y, mean, rstd, dx, dw, db)."""
    x64 = x.detach().to(torch.float64).requires_grad_(True)
    w64 = None if weight is None else weight.detach().to(torch.float64).requires_grad_(True)
    b64 = None if bias is None else bias.detach().to(torch.float64).requires_grad_(True)
    C = x.shape[-1]
    if rms:
        y = torch.nn.functional.rms_norm(x64, (C,), w64, eps=EPS)
        mean = None
        rstd = torch.rsqrt(x64.detach().pow(2).mean(-1) + EPS).reshape(-1)
    else:
        y = torch.nn.functional.layer_norm(x64, (C,), w64, b64, eps=EPS)
        mean = x64.detach().mean(-1).reshape(-1)
        rstd = torch.rsqrt(x64.detach().var(-1, unbiased=False) + EPS).reshape(-1)
    y.backward(dy.to(torch.float64))
    grad = lambda t: None if t is None else t.grad  # noqa: E731
    return y.detach(), mean, rstd, x64.grad, grad(w64), grad(b64)


def _close(got, ref, dtype, scale=1.0):
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(got.to(torch.float64), ref, atol=atol * scale, rtol=rtol * 4)


def _check(x, weight, bias, rms, dy=None):
    dtype = x.dtype
    stat_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    if dy is None:
        dy = torch.randn(x.shape, device=x.device).to(dtype)
    y_ref, mean_ref, rstd_ref, dx_ref, dw_ref, db_ref = _ref(x, weight, bias, dy, rms)
    if rms:
        y, rstd = K.rmsnorm_fwd(x, weight, EPS)
        mean = None
    else:
        y, mean, rstd = K.layernorm_fwd(x, weight, bias, EPS)
        assert mean.dtype == stat_dtype and mean.shape == mean_ref.shape
        torch.testing.assert_close(mean.to(torch.float64), mean_ref, atol=1e-5, rtol=1e-5)
    assert y.shape == x.shape and y.dtype == dtype
    assert rstd.dtype == stat_dtype and rstd.shape == rstd_ref.shape
    torch.testing.assert_close(rstd.to(torch.float64), rstd_ref, atol=1e-5, rtol=1e-5)
    _close(y, y_ref, dtype, scale=4)
    if rms:
        dx, dw = K.rmsnorm_bwd(dy, x, weight, rstd)
        db = None
    else:
        dx, dw, db = K.layernorm_bwd(dy, x, weight, mean, rstd)
    assert dx.shape == x.shape and dx.dtype == dtype
    _close(dx, dx_ref, dtype, scale=8)
    if weight is None:
        assert dw is None and db is None
        return
    assert dw.shape == weight.shape and dw.dtype == weight.dtype
    n = x.numel() // x.shape[-1]
    _close(dw, dw_ref, weight.dtype, scale=4 * max(1, n) ** 0.5)
    if rms:
        assert db is None
    else:
        assert db.dtype == weight.dtype
        _close(db, dy.to(torch.float64).reshape(-1, x.shape[-1]).sum(0), weight.dtype,
               scale=4 * max(1, n) ** 0.5)


def _params(C, dtype, with_weight=True, with_bias=True):
    w = (1 + 0.3 * torch.randn(C, device=DEVICE)).to(dtype) if with_weight else None
    b = (0.2 * torch.randn(C, device=DEVICE)).to(dtype) if with_bias else None
    return w, b


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 37), (2, 3, 16), (70, 8), (9, 130)])
def test_float32_shapes(shape, rms):
    torch.manual_seed(0)
    x = torch.randn(shape, device=DEVICE) * 2 + 0.5
    w, b = _params(shape[-1], torch.float32)
    _check(x, w, None if rms else b, rms)


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes(dtype, rms):
    torch.manual_seed(1)
    x = (torch.randn(10, 48, device=DEVICE) * 2).to(dtype)
    w, b = _params(48, dtype)
    _check(x, w, None if rms else b, rms)


@pytest.mark.parametrize("rms", [False, True])
def test_no_weight_and_weight_without_bias(rms):
    torch.manual_seed(2)
    x = torch.randn(6, 20, device=DEVICE)
    _check(x, None, None, rms)
    w, _ = _params(20, torch.float32)
    _check(x, w, None, rms)


@pytest.mark.parametrize("rms", [False, True])
def test_mixed_dtypes_bf16_x_fp32_weight(rms):
    torch.manual_seed(3)
    x = torch.randn(5, 24, device=DEVICE).to(torch.bfloat16)
    w, b = _params(24, torch.float32)
    _check(x, w, None if rms else b, rms)


@pytest.mark.parametrize("rms", [False, True])
def test_strided_inputs(rms):
    torch.manual_seed(4)
    base = torch.randn(8, 40, device=DEVICE)
    w, b = _params(27, torch.float32)
    _check(base[:, 3:30], w, None if rms else b, rms)                   # row stride 40
    w, b = _params(8, torch.float32)
    _check(base.t()[:12], w, None if rms else b, rms)                   # column stride 40
    x = torch.randn(4, 10, device=DEVICE)
    dy = torch.randn(10, 4, device=DEVICE).t()                          # dy transposed
    w_strided = torch.randn(20, device=DEVICE)[::2]                     # weight stride 2
    _check(x, w_strided, None, rms, dy=dy)
    w_expanded = torch.ones(1, device=DEVICE).expand(10)                # weight stride 0
    _check(x, w_expanded, None, rms)


def test_deterministic_dweight():
    torch.manual_seed(5)
    x = torch.randn(50, 33, device=DEVICE)
    dy = torch.randn(50, 33, device=DEVICE)
    w, b = _params(33, torch.float32)
    _, mean, rstd = K.layernorm_fwd(x, w, b, EPS)
    first = K.layernorm_bwd(dy, x, w, mean, rstd)
    second = K.layernorm_bwd(dy, x, w, mean, rstd)
    for a, c in zip(first, second):
        assert torch.equal(a, c)


def test_errors():
    x = torch.randn(3, 4, device=DEVICE)
    with pytest.raises(ValueError):
        K.layernorm_fwd(x, torch.ones(5, device=DEVICE), None, EPS)
    with pytest.raises(TypeError):
        K.layernorm_fwd(x.to(torch.int64), None, None, EPS)
    with pytest.raises(ValueError):
        K.rmsnorm_fwd(torch.randn(2, K.MAX_COLS + 1, device=DEVICE), None, EPS)
    _, rstd = K.rmsnorm_fwd(x, None, EPS)
    with pytest.raises(ValueError):
        K.rmsnorm_bwd(x, x, None, rstd[:2])
    y, mean, rstd = K.layernorm_fwd(torch.randn(0, 4, device=DEVICE), None, None, EPS)
    assert y.shape == (0, 4) and mean.shape == (0,)
    dx, dw, db = K.layernorm_bwd(y, y, torch.ones(4, device=DEVICE), mean, rstd)
    assert dx.shape == (0, 4) and torch.equal(dw, torch.zeros(4, device=DEVICE))


@gpu
@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("shape", [(8192, 768), (4096, 4096), (100, 32768)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_realistic(shape, dtype, rms):
    torch.manual_seed(0)
    x = torch.randn(shape, device="cuda").to(dtype)
    w, b = _params(shape[-1], dtype)
    _check(x, w, None if rms else b, rms)
