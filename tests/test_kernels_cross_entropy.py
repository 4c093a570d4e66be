"""kernels/cross_entropy.py against torch.nn.functional.cross_entropy (losses, lse, dlogits)."""
import pytest
import torch

from kernel_testing import DEVICE, gpu  # first: it sets up the interpreter
from minigrad.kernels import cross_entropy as K

# Per-dtype tolerances (atol, rtol): losses/lse are float32 (computed from rounded logits,
# so exact up to float32); dlogits are stored in the logits' dtype.
TOL = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-3, 2e-3),
    torch.bfloat16: (8e-3, 2e-2),
}
DTYPES = list(TOL)
IGNORE = -100


def _ref(logits, targets, dlosses):
    """float64 torch: losses (reduction='none'), lse, dlogits by autograd."""
    x = logits.detach().to(torch.float64).requires_grad_(True)
    losses = torch.nn.functional.cross_entropy(x, targets, ignore_index=IGNORE, reduction="none")
    losses.backward(dlosses.to(torch.float64))
    return losses.detach(), torch.logsumexp(x.detach(), -1), x.grad


def _targets(n, v, n_ignored=0):
    t = torch.randint(0, v, (n,), device=DEVICE)
    if n_ignored:
        t[torch.randperm(n, device=DEVICE)[:n_ignored]] = IGNORE
    return t


def _check(logits, targets, block_size=None, dlosses=None, dx_tol=None):
    dtype = logits.dtype
    atol, rtol = dx_tol or TOL[dtype]
    stat_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    n = logits.shape[0]
    if dlosses is None:
        dlosses = torch.rand(n, device=DEVICE, dtype=stat_dtype) + 0.5
    loss_ref, lse_ref, dx_ref = _ref(logits, targets, dlosses)
    stat_tol = dict(atol=1e-10, rtol=1e-10) if dtype == torch.float64 else dict(atol=2e-5, rtol=2e-5)

    losses, lse = K.cross_entropy_fwd(logits, targets, IGNORE, block_size=block_size)
    assert losses.dtype == stat_dtype and lse.dtype == stat_dtype and losses.shape == (n,)
    torch.testing.assert_close(losses.to(torch.float64), loss_ref, **stat_tol)
    torch.testing.assert_close(lse.to(torch.float64), lse_ref, **stat_tol)

    dx = K.cross_entropy_bwd(dlosses, logits, targets, lse, IGNORE, block_size=block_size)
    assert dx.shape == logits.shape and dx.dtype == dtype
    torch.testing.assert_close(dx.to(torch.float64), dx_ref, atol=atol, rtol=rtol)

    # fused forward + backward with a uniform grad_scale (dlosses = 0.5 everywhere)
    half = torch.full((n,), 0.5, dtype=torch.float64, device=DEVICE)
    _, _, dx_half = _ref(logits, targets, half)
    l2, lse2, dx2 = K.cross_entropy_fwd_bwd(logits, targets, IGNORE, 0.5, block_size=block_size)
    torch.testing.assert_close(l2.to(torch.float64), loss_ref, **stat_tol)
    torch.testing.assert_close(lse2.to(torch.float64), lse_ref, **stat_tol)
    assert dx2.dtype == dtype
    torch.testing.assert_close(dx2.to(torch.float64), dx_half, atol=atol, rtol=rtol)


@pytest.mark.parametrize("n,v,block_size,n_ignored", [
    (1, 1, None, 0),          # V = 1: loss 0, gradient 0
    (3, 37, None, 0),         # one chunk with a tail
    (5, 100, 32, 1),          # chunked vocabulary: 4 chunks, tail of 4
    (4, 257, 64, 2),          # 50257-like tail (V = 4 * 64 + 1)
    (6, 64, 16, 0),           # exact multiple of the chunk
    (4, 10, 4, 4),            # every row ignored
])
def test_float32_paths(n, v, block_size, n_ignored):
    torch.manual_seed(0)
    logits = torch.randn(n, v, device=DEVICE) * 3
    _check(logits, _targets(n, v, n_ignored), block_size)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [None, 16])
def test_dtypes(dtype, block_size):
    torch.manual_seed(1)
    logits = (torch.randn(6, 50, device=DEVICE) * 2).to(dtype)
    _check(logits, _targets(6, 50, 1), block_size)


def test_strided_logits_targets_and_expanded_dlosses():
    torch.manual_seed(2)
    base = torch.randn(6, 80, device=DEVICE)
    t = torch.randint(0, 40, (12,), device=DEVICE)[::2]          # targets with stride 2
    _check(base[:, 5:45], t, block_size=16)                      # row stride 80, V = 40
    _check(torch.randn(30, 5, device=DEVICE).t(), _targets(5, 30), block_size=8)   # column stride 5
    dl = torch.ones(1, device=DEVICE).expand(6)                  # mean-style stride-0 dlosses
    _check(base[:, :33], _targets(6, 33, 1), block_size=8, dlosses=dl)


def test_fwd_bwd_in_place():
    torch.manual_seed(3)
    logits = torch.randn(4, 70, device=DEVICE)
    t = _targets(4, 70, 1)
    _, _, dx_ref = _ref(logits, t, torch.full((4,), 0.25, dtype=torch.float64, device=DEVICE))
    work = logits.clone()
    losses, lse, dx = K.cross_entropy_fwd_bwd(work, t, IGNORE, 0.25, out=work, block_size=16)
    assert dx.data_ptr() == work.data_ptr()
    torch.testing.assert_close(dx.to(torch.float64), dx_ref, atol=1e-6, rtol=1e-5)


def test_out_of_range_targets_are_masked():
    logits = torch.randn(3, 10, device=DEVICE)
    t = torch.tensor([10, -1, 2], device=DEVICE)
    losses, lse = K.cross_entropy_fwd(logits, t, IGNORE)
    assert torch.isnan(losses[:2]).all() and torch.isfinite(losses[2])
    dx = K.cross_entropy_bwd(torch.ones(3, device=DEVICE), logits, t, lse, IGNORE)
    torch.testing.assert_close(dx[0], torch.softmax(logits[0], -1))


def test_other_ignore_index_and_extreme_logits():
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [-float("inf"), 0.0, 1.0], [5.0, 5.0, 5.0]],
                          device=DEVICE)
    t = torch.tensor([2, 1, 0], device=DEVICE)
    losses, lse = K.cross_entropy_fwd(logits, t, ignore_index=0, block_size=2)
    ref = torch.nn.functional.cross_entropy(logits, t, ignore_index=0, reduction="none")
    torch.testing.assert_close(losses, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [None, 4])
def test_extreme_logits_every_path(dtype, block_size):
    """Forward, backward and fused forward+backward on logits whose exp overflows (100 in
    float32, 1000 in float64) or underflows: only a max-shifted log-sum-exp stays finite. With
    block_size=4 the larger max arrives in a later chunk (the online rescale)."""
    logits = torch.tensor([[100.0, 0.0, -5.0, 3.0, 1.0, -1000.0, 1000.0, 998.0],
                           [-1000.0, -1001.0, -999.0, -1000.0, -1002.0, -998.0, -1000.0, -1004.0],
                           [1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0],
                           [100.0, 0.0, -5.0, 0.0, 0.0, 0.0, 0.0, 0.0]], device=DEVICE).to(dtype)
    targets = torch.tensor([5, 2, 7, IGNORE], device=DEVICE)
    # dlogits = exp(x - lse) with |lse| ~ 1000 saved in float32 (ulp 6e-5): that bounds float32
    dx_tol = (2e-4, 2e-4) if dtype == torch.float32 else None
    _check(logits, targets, block_size, dx_tol=dx_tol)


def test_errors():
    x = torch.randn(3, 5, device=DEVICE)
    t = torch.zeros(3, dtype=torch.int64, device=DEVICE)
    with pytest.raises(ValueError):
        K.cross_entropy_fwd(x, t[:2], IGNORE)
    with pytest.raises(TypeError):
        K.cross_entropy_fwd(x, t.float(), IGNORE)
    with pytest.raises(ValueError):
        K.cross_entropy_fwd(x[None], t, IGNORE)
    _, lse = K.cross_entropy_fwd(x, t, IGNORE)
    with pytest.raises(ValueError):
        K.cross_entropy_bwd(torch.ones(2, device=DEVICE), x, t, lse, IGNORE)
    with pytest.raises(ValueError):
        K.cross_entropy_fwd_bwd(x, t, IGNORE, 1.0, out=torch.empty(3, 4, device=DEVICE))


@gpu
@pytest.mark.parametrize("v", [50257, 50304])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_realistic(v, dtype):
    torch.manual_seed(0)
    logits = (torch.randn(512, v, device="cuda") * 2).to(dtype)
    _check(logits, _targets(512, v, 17))
