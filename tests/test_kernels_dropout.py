"""kernels/dropout.py: the in-kernel seeded mask has the right rate, is reproducible, depends
only on the logical index (not the layout), and y / dx use it exactly."""

import kernel_testing  # noqa: E402,F401  (interpreter only when there is no CUDA; before kernels)

import pytest  # noqa: E402
import torch  # noqa: E402

from kernel_testing import DEVICE  # noqa: E402
from minigrad.kernels.dropout import dropout_bwd, dropout_fwd, seed_offset_tensor, set_seed_offset_  # noqa: E402

# per-dtype tolerances (rtol, atol) of y against x * mask / (1 - p) computed in float64
TOL = {
    torch.float32: (1e-6, 1e-6),
    torch.float64: (1e-12, 1e-12),
    torch.bfloat16: (1e-2, 1e-2),
    torch.float16: (1e-3, 1e-3),
}


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_forward_uses_its_mask(dtype, p):
    x = torch.randn(37, 61, device=DEVICE).to(dtype)
    y, mask = dropout_fwd(x, p, seed=123)
    assert y.dtype == dtype and mask.dtype == torch.bool and y.shape == x.shape
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y.double(), x.double() * mask / (1 - p), rtol=rtol, atol=atol)
    keep_rate = mask.double().mean().item()
    assert abs(keep_rate - (1 - p)) < 0.04, keep_rate       # 2257 draws: ~4 sigma


def test_mask_is_reproducible_and_layout_independent():
    x = torch.randn(40, 50, device=DEVICE)
    _, m1 = dropout_fwd(x, 0.3, seed=7)
    _, m2 = dropout_fwd(x, 0.3, seed=7)
    _, m3 = dropout_fwd(x.t().contiguous().t(), 0.3, seed=7)        # same logical tensor, strided
    _, m4 = dropout_fwd(x, 0.3, seed=8)
    _, m5 = dropout_fwd(x, 0.3, seed=2 ** 40 + 7)                    # 64-bit seeds work
    assert torch.equal(m1, m2) and torch.equal(m1, m3)
    assert (m1 != m4).double().mean() > 0.2 and (m1 != m5).double().mean() > 0.2
    xe = x[:1].expand(40, 50)                                        # expanded input
    ye, me = dropout_fwd(xe, 0.3, seed=7)
    assert torch.equal(me, m1) and torch.allclose(ye, xe * m1 / 0.7)


def test_seed_offset_is_read_on_the_device_and_added_to_the_seed():
    """The key is seed + seed_offset[0]: the CUDA-graph step rewrites the offset before each replay
    so frozen host seeds still give new masks."""
    x = torch.randn(40, 50, device=DEVICE)
    off = seed_offset_tensor(DEVICE)
    _, m0 = dropout_fwd(x, 0.3, seed=7, seed_offset=off)                  # offset 0
    assert torch.equal(m0, dropout_fwd(x, 0.3, seed=7)[1])
    set_seed_offset_(off, 2 ** 40 + 5)
    _, m1 = dropout_fwd(x, 0.3, seed=7, seed_offset=off)
    assert torch.equal(m1, dropout_fwd(x, 0.3, seed=7 + 2 ** 40 + 5)[1])
    assert (m1 != m0).double().mean() > 0.2
    with pytest.raises(ValueError, match="seed_offset must be a \\(1,\\) int64"):
        dropout_fwd(x, 0.3, seed=7, seed_offset=torch.zeros(2, dtype=torch.int64, device=DEVICE))


def test_fast_ops_add_their_seed_offset():
    """FastOps.set_dropout_seed_offset_ (the performance layer's, for CUDA graphs): the mask of
    (seed, offset) is the core backend's mask of seed + offset, on the NumPy spec and the Triton
    backend alike (each with its own generator)."""
    import numpy as np
    from minigrad.backends.numpy_backend import NumpyBackend
    from minigrad.backends.triton_backend import TritonBackend
    from minigrad.fast.ops import FastOps
    from minigrad.fast.triton_ops import TritonFastOps
    for be, ops in ((NumpyBackend(), FastOps), (TritonBackend(), TritonFastOps)):
        ops = ops(be)
        x = be.from_numpy(np.ones((30, 20), dtype=np.float32))
        plain = be.to_numpy(be.dropout_fwd(x, 0.4, 1234 + 99)[1])
        ops.set_dropout_seed_offset_(99)
        shifted = be.to_numpy(ops.dropout_fwd(x, 0.4, 1234)[1])
        np.testing.assert_array_equal(shifted, plain)
        ops.set_dropout_seed_offset_(0)
        assert (be.to_numpy(ops.dropout_fwd(x, 0.4, 1234)[1]) != plain).mean() > 0.2


def test_p_zero_and_one():
    x = torch.randn(300, device=DEVICE)
    y, m = dropout_fwd(x, 0.0, seed=1)
    assert m.all() and torch.equal(y, x)
    y, m = dropout_fwd(x, 1.0, seed=1)
    assert not m.any() and torch.equal(y, torch.zeros_like(x))
    with pytest.raises(ValueError, match="p must be"):
        dropout_fwd(x, 1.5, seed=1)


@pytest.mark.parametrize("dtype", list(TOL))
def test_backward(dtype):
    dy = torch.randn(61, 37, device=DEVICE).to(dtype).t()                 # strided dy
    mask = torch.rand(37, 61, device=DEVICE) > 0.4
    dx = dropout_bwd(dy, mask, 0.4)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(dx.double(), dy.double() * mask / 0.6, rtol=rtol, atol=atol)
    assert torch.equal(dropout_bwd(dy, mask, 1.0), torch.zeros_like(dy))
    with pytest.raises(ValueError, match="shape mismatch"):
        dropout_bwd(dy, mask.t(), 0.4)


@pytest.mark.gpu
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_realistic_size_gpu():
    x = torch.randn(8192, 3072, device="cuda", dtype=torch.bfloat16)
    y, m = dropout_fwd(x, 0.1, seed=0)
    assert abs(m.float().mean().item() - 0.9) < 1e-3
    torch.testing.assert_close(y.float(), x.float() * m / 0.9, rtol=1e-2, atol=1e-2)
    dx = dropout_bwd(y, m, 0.1)
    torch.testing.assert_close(dx.float(), y.float() * m / 0.9, rtol=1e-2, atol=1e-2)
