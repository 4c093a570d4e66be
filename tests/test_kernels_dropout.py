"""kernels/dropout.py: the in-kernel seeded mask has the right rate, is reproducible, depends
only on the logical index (not the layout), and y / dx use it exactly. `philox_keep` rebuilds
the mask on the host with a NumPy Philox 4x32-10 (the rule in kernels/dropout.py's docstring:
element (row, j) of (R, S) uses output j % 4 of counter row * ceil(S/4) + j // 4);
tests/test_kernels_attention.py checks the fused attention dropout against it too."""

import kernel_testing  # noqa: E402,F401  (interpreter only when there is no CUDA; before kernels)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from kernel_testing import DEVICE  # noqa: E402
from minigrad.kernels import dropout as DROP  # noqa: E402
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


# ---------------------------------------------------------------- the Philox mapping, on the host
_M32 = np.uint64(0xFFFFFFFF)


def _philox4x32_10(counters: np.ndarray, key: int) -> list:
    """Philox 4x32-10 (Salmon et al. 2011, the standard constants) as Triton's tl.randint4x runs
    it: counter words (counter low, counter high, 0, 0), key words (key low, key high). Written
    from the paper's round function, not from Triton's code; returns the four uint32 outputs."""
    c = [counters.astype(np.uint64) & _M32, counters.astype(np.uint64) >> np.uint64(32),
         np.zeros_like(counters, dtype=np.uint64), np.zeros_like(counters, dtype=np.uint64)]
    k0, k1 = np.uint64(key & 0xFFFFFFFF), np.uint64((key >> 32) & 0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]          # 64-bit products: (high, low) 32-bit halves
        p2 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p2 >> np.uint64(32)) ^ c[1] ^ k0, p2 & _M32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & _M32]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & _M32, (k1 + np.uint64(0xBB67AE85)) & _M32
    return [w.astype(np.uint32) for w in c]


def _uniform(bits: np.ndarray) -> np.ndarray:
    """uint32 -> float32 in [0, 1) as tl.rand converts it: as int32, negatives flipped (~x),
    times 4.6566127342e-10 in float32."""
    x = bits.view(np.int32)
    x = np.where(x < 0, ~x, x)
    return x.astype(np.float32) * np.float32(4.6566127342e-10)


def philox_keep(shape, p: float, seed: int) -> np.ndarray:
    """The specification of the mask for a tensor of `shape`: element (row, j) of its (R, S) view
    (S the last dim, 1 for 0-d; row the row-major index over the other dims) is kept iff output
    j % 4 of Philox(seed, row * ceil(S/4) + j // 4), as a uniform, is >= p."""
    shape = tuple(shape)
    S = shape[-1] if shape else 1
    R = int(np.prod(shape, dtype=np.int64)) // S
    row, j = np.divmod(np.arange(R * S, dtype=np.int64), S)
    words = _philox4x32_10(row * ((S + 3) // 4) + j // 4, seed)
    u = np.choose(j % 4, [_uniform(w) for w in words])
    return (u >= np.float32(2.0 if p >= 1 else p)).reshape(shape)


def test_philox_reference_matches_the_published_test_vector():
    """Random123's known-answer vector for philox4x32-10, counter = key = 0 (Salmon et al.)."""
    words = _philox4x32_10(np.zeros(1, dtype=np.uint64), 0)
    assert [int(w[0]) for w in words] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize("shape", [(5, 13), (3, 2, 37), (4, 16), (2, 3), (300,), (6, 1), ()],
                         ids=lambda s: "x".join(map(str, s)) or "scalar")
def test_mask_is_output_j_mod_4_of_counter_row_groups(shape):
    """The kernel's mask equals the host-side Philox rule exactly: S not a multiple of 4 (13, 37,
    3: rows end inside a group of four, whose unused outputs are skipped), S a multiple of 4,
    one row, S = 1, a 0-d tensor."""
    x = torch.randn(shape, device=DEVICE)
    for seed, p in ((1234, 0.3), (2 ** 40 + 7, 0.5)):                  # a key wider than 32 bits too
        _, mask = dropout_fwd(x, p, seed=seed)
        np.testing.assert_array_equal(mask.cpu().numpy(), philox_keep(shape, p, seed), err_msg=str(seed))


def test_mask_of_strided_inputs_and_int64_counters_follows_the_rule(monkeypatch):
    """Transposed, sliced and expanded views (the RANK/stride path), and the int64 index path:
    the mask is that of the logical shape."""
    base = torch.randn(37, 13, device=DEVICE)
    want = philox_keep((13, 37), 0.4, 99)
    for view in (base.t(), torch.randn(13, 74, device=DEVICE)[:, ::2], base[:1, :1].expand(13, 37)):
        np.testing.assert_array_equal(dropout_fwd(view, 0.4, seed=99)[1].cpu().numpy(), want)
    monkeypatch.setattr(DROP, "needs_int64", lambda *args: True)
    np.testing.assert_array_equal(dropout_fwd(base.t(), 0.4, seed=99)[1].cpu().numpy(), want)
    np.testing.assert_array_equal(dropout_fwd(base.t().contiguous(), 0.4, seed=99)[1].cpu().numpy(), want)


def test_shared_rows_agree_and_rate_is_binomial():
    """Rows are independent of how many there are: (R, S) and (R', S) masks agree on their shared
    rows (a counter never depends on R). The kept fraction of 60,000 draws is 1 - p within 5
    binomial standard deviations, also per output position j % 4 (all four outputs are used)."""
    p, S = 0.3, 75
    m_small = dropout_fwd(torch.ones(40, S, device=DEVICE), p, seed=5)[1]
    m_big = dropout_fwd(torch.ones(800, S, device=DEVICE), p, seed=5)[1]
    assert torch.equal(m_big[:40], m_small)
    kept = m_big.double()
    sigma = ((p * (1 - p)) / kept.numel()) ** 0.5
    assert abs(kept.mean().item() - (1 - p)) < 5 * sigma
    for k in range(4):
        column = kept[:, k::4]
        assert abs(column.mean().item() - (1 - p)) < 5 * ((p * (1 - p)) / column.numel()) ** 0.5, k
