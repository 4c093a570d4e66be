"""kernels/embedding.py against torch: embedding fwd/bwd, index_select, index_add."""
import pytest
import torch

from kernel_testing import DEVICE, gpu  # first: it sets up the interpreter
from minigrad.kernels import embedding as K

# Per-dtype tolerances (atol, rtol) for scatter-add results (gathers must be exact).
TOL = {
    torch.float64: (1e-12, 1e-12),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}
DTYPES = list(TOL)


def _ref_embedding(weight, idx, dy):
    w = weight.detach().to(torch.float64).requires_grad_(True)
    out = torch.nn.functional.embedding(idx, w)
    out.backward(dy.to(torch.float64))
    return out.detach(), w.grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idx_shape,V,C", [((1,), 1, 1), ((2, 5), 7, 33), ((3, 4), 5, 600), ((), 4, 3),
                                           ((40,), 3, 8)])
def test_embedding(idx_shape, V, C, dtype):
    torch.manual_seed(0)
    weight = torch.randn(V, C, device=DEVICE).to(dtype)
    idx = torch.randint(0, V, idx_shape, device=DEVICE)       # many repeats when V is small
    dy = torch.randn(*idx_shape, C, device=DEVICE).to(dtype)
    out_ref, dw_ref = _ref_embedding(weight, idx, dy)
    out = K.embedding_fwd(weight, idx)
    assert out.shape == (*idx_shape, C) and out.dtype == dtype
    assert torch.equal(out.to(torch.float64), out_ref)
    dw = K.embedding_bwd(dy, idx, V)
    assert dw.shape == (V, C) and dw.dtype == dtype
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(dw.to(torch.float64), dw_ref, atol=atol * 8, rtol=rtol)
    dw32 = K.embedding_bwd(dy, idx, V, out_dtype=torch.float32)
    assert dw32.dtype == torch.float32
    torch.testing.assert_close(dw32.to(torch.float64), dw_ref, atol=1e-5, rtol=1e-5)


def test_embedding_strided_and_unused_rows():
    torch.manual_seed(1)
    base = torch.randn(10, 50, device=DEVICE)
    weight = base[:, 5:37]                                       # row stride 50
    idx = torch.tensor([[0, 9, 9], [3, 3, 3]], device=DEVICE)
    dy = torch.randn(3, 2, 32, device=DEVICE).transpose(0, 1)    # (2, 3, 32), strides (32, 64, 1)
    assert torch.equal(K.embedding_fwd(weight, idx), weight[idx])
    assert torch.equal(K.embedding_fwd(base.t(), idx), base.t()[idx])          # column stride
    with pytest.raises(ValueError):
        K.embedding_bwd(dy, idx, 10)                             # leading dims don't collapse
    dy = torch.randn(2, 3, 64, device=DEVICE)[..., ::2]          # column stride 2
    _, dw_ref = _ref_embedding(weight, idx, dy)
    dw = K.embedding_bwd(dy, idx, 10)
    torch.testing.assert_close(dw.to(torch.float64), dw_ref)
    assert (dw[[1, 2, 4, 5, 6, 7, 8]] == 0).all()                # unused rows stay zero


def test_embedding_out_of_range_ids_are_masked():
    weight = torch.randn(4, 3, device=DEVICE)
    idx = torch.tensor([0, 4, -1, 2], device=DEVICE)
    out = K.embedding_fwd(weight, idx)
    assert torch.equal(out[1], torch.zeros(3, device=DEVICE)) and torch.equal(out[3], weight[2])
    dw = K.embedding_bwd(torch.ones(4, 3, device=DEVICE), idx, 4)
    assert torch.equal(dw.sum(1), torch.tensor([3.0, 0.0, 3.0, 0.0], device=DEVICE))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((4, 6), 1), ((3, 5, 7), 1), ((3, 5, 7), -1),
                                        ((2, 3, 4, 5), 0), ((6, 1), 1)])
def test_index_select_and_add(shape, axis, dtype):
    torch.manual_seed(2)
    x = torch.randn(shape, device=DEVICE).to(dtype)
    n = shape[axis]
    idx = torch.randint(0, n, (n + 3,), device=DEVICE)          # repeated indices
    out = K.index_select(x, axis, idx)
    assert torch.equal(out, torch.index_select(x, axis, idx))
    src = torch.randn(out.shape, device=DEVICE).to(dtype)
    got = K.index_add(shape, axis, idx, src)
    ref = torch.zeros(shape, dtype=torch.float64, device=DEVICE).index_add_(axis, idx, src.to(torch.float64))
    assert got.shape == shape and got.dtype == dtype
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(got.to(torch.float64), ref, atol=atol * 8, rtol=rtol)


def test_index_select_strided_and_empty():
    torch.manual_seed(3)
    x = torch.randn(6, 8, 5, device=DEVICE).permute(2, 0, 1)    # (5, 6, 8), axis 1: outer stride 1
    idx = torch.tensor([5, 0, 0], device=DEVICE)
    assert torch.equal(K.index_select(x, 1, idx), torch.index_select(x, 1, idx))
    src = torch.randn(5, 8, 3, device=DEVICE).transpose(1, 2)    # (5, 3, 8), strides (24, 1, 3)
    ref = torch.zeros(5, 6, 8, device=DEVICE).index_add_(1, idx, src)
    torch.testing.assert_close(K.index_add((5, 6, 8), 1, idx, src), ref)
    empty = torch.tensor([], dtype=torch.int64, device=DEVICE)
    assert K.index_select(x, 1, empty).shape == (5, 0, 8)
    assert torch.equal(K.index_add((5, 6, 8), 1, empty, torch.empty(5, 0, 8, device=DEVICE)),
                       torch.zeros(5, 6, 8, device=DEVICE))


def test_errors():
    w = torch.randn(4, 3, device=DEVICE)
    with pytest.raises(TypeError):
        K.embedding_fwd(w, torch.zeros(2, device=DEVICE))                  # float ids
    with pytest.raises(ValueError):
        K.embedding_fwd(w[0], torch.zeros(2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(ValueError):
        K.embedding_bwd(torch.randn(3, 3, device=DEVICE), torch.zeros(2, dtype=torch.int64, device=DEVICE), 4)
    with pytest.raises(ValueError):
        K.index_select(w, 2, torch.zeros(2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(ValueError):
        K.index_add((4, 3), 0, torch.zeros(2, dtype=torch.int64, device=DEVICE), torch.randn(3, 3, device=DEVICE))


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_realistic(dtype):
    torch.manual_seed(0)
    weight = torch.randn(50304, 768, device="cuda").to(dtype)
    idx = torch.randint(0, 50304, (8, 1024), device="cuda")
    idx[:, :100] = 7                                              # a heavily repeated token
    dy = torch.randn(8, 1024, 768, device="cuda").to(dtype)
    out_ref, dw_ref = _ref_embedding(weight, idx, dy)
    assert torch.equal(K.embedding_fwd(weight, idx).to(torch.float64), out_ref)
    dw = K.embedding_bwd(dy, idx, 50304, out_dtype=torch.float32)
    torch.testing.assert_close(dw.to(torch.float64), dw_ref, atol=1e-4, rtol=1e-5)
