"""The user-facing Tensor API: creation, properties, dtypes, comparisons, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import Tensor

DEVICE = "cpu"


# ---------------------------------------------------------------------------- creation
def test_tensor_from_lists_scalars_and_arrays():
    t = minigrad.tensor([[1.0, 2.0], [3.0, 4.0]], device=DEVICE)
    assert t.shape == (2, 2) and t.dtype == "float32" and t.device == "cpu"
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert minigrad.tensor(3).dtype == "int64" and minigrad.tensor(3).shape == ()
    assert minigrad.tensor(2.5).dtype == "float32"
    assert minigrad.tensor([True, False]).dtype == "bool"
    assert minigrad.tensor(np.arange(3)).dtype == "int64"
    assert minigrad.tensor(np.zeros(2)).dtype == "float64"               # float64 arrays stay float64
    assert minigrad.tensor(np.zeros(2, dtype=np.float32)).dtype == "float32"
    assert minigrad.tensor([1, 2], dtype=minigrad.float64).dtype == "float64"
    assert minigrad.tensor([1, 2], dtype=np.float32).dtype == "float32"
    assert minigrad.tensor([1.5], dtype="double").dtype == "float64"
    assert minigrad.tensor([]).shape == (0,)


def test_tensor_copies_its_input():
    a = np.ones(3)
    t = minigrad.tensor(a)
    a[0] = 5
    assert t.tolist() == [1.0, 1.0, 1.0]
    u = minigrad.tensor(t)
    assert u.tolist() == t.tolist() and u.data is not t.data


def test_from_numpy_and_numpy_roundtrip():
    for dt in (np.float32, np.float64, np.int64, np.bool_):
        a = (np.arange(6).reshape(2, 3) % 2).astype(dt)
        t = minigrad.from_numpy(a)
        assert t.dtype == {np.float32: "float32", np.float64: "float64", np.int64: "int64",
                           np.bool_: "bool"}[dt]
        back = t.numpy()
        assert back.dtype == dt and back.shape == (2, 3)
        np.testing.assert_array_equal(back, a)
        back[0, 0] = 1            # .numpy() is a copy: the tensor is unchanged
        np.testing.assert_array_equal(t.numpy(), a)


def test_zeros_ones_full_empty():
    assert minigrad.zeros(2, 3).tolist() == [[0, 0, 0], [0, 0, 0]]
    assert minigrad.zeros((2, 3)).shape == (2, 3)
    assert minigrad.ones([4]).tolist() == [1, 1, 1, 1] and minigrad.ones(4).dtype == "float32"
    f = minigrad.full((2, 2), 7.5, dtype="float64")
    assert f.dtype == "float64" and f.tolist() == [[7.5, 7.5], [7.5, 7.5]]
    assert minigrad.full((3,), 2, dtype="int64").tolist() == [2, 2, 2]
    assert minigrad.empty(2, 5).shape == (2, 5)
    assert minigrad.zeros(0, 3).shape == (0, 3)
    z = minigrad.zeros(2, requires_grad=True)
    assert z.requires_grad and z.is_leaf
    with pytest.raises(ValueError, match="negative"):
        minigrad.zeros(-1, 2)


def test_sizes_accept_any_int_and_nothing_else():
    """Sizes are parsed once (shapes.parse_size): NumPy ints and 1-element int64 tensors are ints,
    as in torch; a float is a TypeError, never truncated (randn(2.5) was silently shape (2,))."""
    assert minigrad.randn(np.int64(2), 3).shape == (2, 3)
    assert minigrad.zeros(minigrad.tensor(2)).shape == (2,)
    assert minigrad.zeros(2, 3).reshape(np.int32(3), -1).shape == (3, 2)
    assert minigrad.zeros(()).shape == ()
    for make in (lambda: minigrad.randn(2.5), lambda: minigrad.rand((2, 1.0)), lambda: minigrad.empty(2.0),
                 lambda: minigrad.zeros(minigrad.tensor(2.0)), lambda: minigrad.zeros(2).expand(2.0)):
        with pytest.raises(TypeError, match="sizes must be ints"):
            make()


def test_like_constructors():
    x = minigrad.tensor(np.ones((2, 3)))           # float64
    for t, val in ((minigrad.zeros_like(x), 0), (minigrad.ones_like(x), 1), (minigrad.full_like(x, 4), 4)):
        assert t.shape == (2, 3) and t.dtype == "float64" and np.all(t.numpy() == val)
    assert minigrad.zeros_like(x, dtype="float32").dtype == "float32"
    r = minigrad.randn_like(x)
    assert r.shape == (2, 3) and r.dtype == "float64"


def test_arange():
    assert minigrad.arange(5).tolist() == [0, 1, 2, 3, 4] and minigrad.arange(5).dtype == "int64"
    assert minigrad.arange(2, 8, 3).tolist() == [2, 5]
    assert minigrad.arange(5, 0, -2).tolist() == [5, 3, 1]
    a = minigrad.arange(0, 1, 0.25)
    assert a.dtype == "float32"
    np.testing.assert_allclose(a.numpy(), [0, 0.25, 0.5, 0.75])
    assert minigrad.arange(3, dtype="float64").dtype == "float64"
    assert minigrad.arange(0).shape == (0,)
    with pytest.raises(ValueError):
        minigrad.arange(0, 3, 0)


def test_randn_rand_reproducible_with_manual_seed():
    minigrad.manual_seed(42)
    a, b = minigrad.randn(3, 4), minigrad.rand(5)
    minigrad.manual_seed(42)
    a2, b2 = minigrad.randn(3, 4), minigrad.rand(5)
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    np.testing.assert_array_equal(b.numpy(), b2.numpy())
    assert not np.array_equal(a.numpy(), minigrad.randn(3, 4).numpy())       # the stream moves on
    assert a.dtype == "float32" and minigrad.randn(2, dtype="float64").dtype == "float64"
    assert np.all((b.numpy() >= 0) & (b.numpy() < 1))
    big = minigrad.randn(20000).numpy()
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1) < 0.05


def test_generator_reproducible_and_independent_of_global():
    g1, g2 = minigrad.Generator(7), minigrad.Generator(7)
    minigrad.manual_seed(0)
    x = minigrad.randn(4, generator=g1)
    minigrad.randn(10)                               # global draws do not touch g2
    y = minigrad.randn(4, generator=g2)
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    g1.manual_seed(7)
    np.testing.assert_array_equal(minigrad.rand(3, generator=g1).numpy(),
                                  minigrad.rand(3, generator=minigrad.Generator(7)).numpy())
    state = minigrad.get_rng_state()
    r1 = minigrad.rand(3)
    minigrad.set_rng_state(state)
    np.testing.assert_array_equal(minigrad.rand(3).numpy(), r1.numpy())


def test_randint():
    minigrad.manual_seed(1)
    r = minigrad.randint(0, 5, (100,))
    assert r.dtype == "int64" and r.shape == (100,)
    assert r.numpy().min() >= 0 and r.numpy().max() < 5


# ---------------------------------------------------------------------------- properties
def test_shape_dtype_device_item_tolist():
    t = minigrad.tensor([[1.0, 2.0, 3.0]], dtype="float64")
    assert t.shape == (1, 3) and t.size() == (1, 3) and t.size(1) == 3
    assert t.ndim == 2 and t.dim() == 2 and t.numel() == 3 and len(t) == 1
    assert t.dtype == minigrad.float64 and t.device == "cpu"
    assert t[0, 1].item() == 2.0 and isinstance(t[0, 1].item(), float)
    assert isinstance(minigrad.tensor(3).item(), int)
    assert isinstance(minigrad.tensor(True).item(), bool)
    assert minigrad.tensor([[4.0]]).item() == 4.0
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert minigrad.tensor(5).tolist() == 5
    assert float(minigrad.tensor([2.5])) == 2.5 and int(minigrad.tensor(3)) == 3
    with pytest.raises(TypeError):
        len(minigrad.tensor(1.0))
    assert "tensor(" in repr(t)


def test_to_dtype_and_casts():
    t = minigrad.tensor([1.7, -2.2])
    assert t.to(minigrad.float64).dtype == "float64" and t.double().dtype == "float64"
    assert t.long().tolist() == [1, -2]
    assert t.to("cpu") is t
    assert t.to("cpu", dtype="float64").dtype == "float64"
    assert t.type_as(minigrad.tensor(np.zeros(1))).dtype == "float64"
    assert minigrad.tensor([1, 2]).float().dtype == "float32"


# ---------------------------------------------------------------------------- dtype promotion
@pytest.mark.parametrize("a,b,expected", [
    ("float32", "float64", "float64"),
    ("float64", "float32", "float64"),
    ("int64", "float32", "float32"),
    ("int64", "float64", "float64"),
    ("bool", "int64", "int64"),
    ("bool", "float32", "float32"),
    ("int64", "int64", "int64"),
])
def test_dtype_promotion_between_tensors(a, b, expected):
    x = minigrad.ones(2, dtype=a)
    y = minigrad.ones(2, dtype=b)
    for r in (x + y, x * y, x - y, minigrad.maximum(x, y)):
        assert r.dtype == expected
    assert minigrad.cat([x, y]).dtype == expected


def test_dtype_promotion_with_python_scalars():
    i = minigrad.tensor([1, 2])
    f32 = minigrad.tensor([1.0, 2.0])
    f64 = minigrad.tensor(np.array([1.0, 2.0]))
    assert (i + 1).dtype == "int64" and (i * 3).tolist() == [3, 6]
    assert (i + 1.5).dtype == "float32" and (i + 1.5).tolist() == [2.5, 3.5]
    assert (1.5 * i).dtype == "float32"
    assert (i / 2).dtype == "float32" and (i / 2).tolist() == [0.5, 1.0]
    assert (f32 * 2).dtype == "float32" and (f64 * 2.5).dtype == "float64"
    assert (f32 + np.float64(1.0)).dtype == "float32"          # a scalar never widens a tensor
    assert (2 ** f32).dtype == "float32"
    assert (i.sum()).dtype == "int64" and minigrad.tensor([True, True]).sum().item() == 2
    assert i.exp().dtype == "float32"


def test_where_promotes_with_scalars():
    c = minigrad.tensor([True, False])
    r = minigrad.where(c, minigrad.tensor([1, 2]), 0.5)
    assert r.dtype == "float32" and r.tolist() == [1.0, 0.5]
    assert minigrad.where(c, minigrad.tensor([1, 2]), 7).dtype == "int64"
    assert minigrad.where(c, minigrad.tensor(np.ones(2)), 0).dtype == "float64"


def test_matmul_promotes():
    a = minigrad.ones(2, 3, dtype="float32")
    b = minigrad.ones(3, 2, dtype="float64")
    assert (a @ b).dtype == "float64"


# ---------------------------------------------------------------------------- comparisons
@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparisons_return_bool_without_grad(op):
    x = minigrad.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    y = minigrad.tensor([2.0, 2.0, 2.0], dtype="float64", requires_grad=True)
    fn = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
          "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]
    for r, ref in ((fn(x, y), fn(x.numpy(), y.numpy())), (fn(x, 2.0), fn(x.numpy(), 2.0)),
                   (fn(x, minigrad.tensor([[2.0], [0.0]])), fn(x.numpy(), np.array([[2.0], [0.0]])))):
        assert r.dtype == "bool" and not r.requires_grad and r.grad_fn is None
        np.testing.assert_array_equal(r.numpy(), ref)


def test_bool_logic():
    a = minigrad.tensor([True, False, True])
    b = minigrad.tensor([True, True, False])
    assert (a & b).tolist() == [True, False, False]
    assert (a | b).tolist() == [True, True, True]
    assert (~a).tolist() == [False, True, False]
    assert a.any().item() and not a.all().item()
    assert minigrad.tensor([0, 2]).any().item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(a)
    assert bool(minigrad.tensor([1.0]) > 0)


def test_argmax():
    x = minigrad.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]])
    assert x.argmax().item() == 3
    assert x.argmax(1).tolist() == [1, 0] and x.argmax(1).dtype == "int64"
    assert x.argmax(0, keepdim=True).shape == (1, 3)
    assert minigrad.argmax(x, -1).tolist() == [1, 0]
    assert x.max(1).indices.tolist() == [1, 0] and x.min(1).indices.tolist() == [0, 1]


def test_setitem_outside_autograd():
    x = minigrad.zeros(3, 4)
    x[1] = 5.0
    x[:, 0] = minigrad.tensor([1.0, 2.0, 3.0])
    x[2, 3] = -1.0
    ref = np.zeros((3, 4), dtype=np.float32)
    ref[1] = 5
    ref[:, 0] = [1, 2, 3]
    ref[2, 3] = -1
    np.testing.assert_array_equal(x.numpy(), ref)
    w = minigrad.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w[0] = 1.0
    with minigrad.no_grad():
        w[0] = 1.0
    assert w.tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------- clear errors
def test_reshape_to_wrong_size():
    x = minigrad.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError):
        x.reshape(-1, 4)
    with pytest.raises(ValueError, match="only one"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError):
        x.view(7)


def test_matmul_misaligned():
    with pytest.raises(ValueError, match="not aligned"):
        minigrad.zeros(2, 3) @ minigrad.zeros(2, 3)
    with pytest.raises(ValueError, match="not aligned"):
        minigrad.zeros(3) @ minigrad.zeros(4)
    with pytest.raises(ValueError):
        minigrad.zeros(2, 2, 3) @ minigrad.zeros(3, 3, 2)      # batch dims do not broadcast
    with pytest.raises(ValueError, match="at least 1 dim"):
        minigrad.tensor(2.0) @ minigrad.zeros(2)


def test_broadcast_failure():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        minigrad.zeros(2, 3) + minigrad.zeros(4)
    with pytest.raises(ValueError, match="broadcast"):
        minigrad.where(minigrad.tensor([True, False]), minigrad.zeros(3), 0.0)
    with pytest.raises(ValueError):
        minigrad.zeros(2, 3).expand(4, 3)
    with pytest.raises(ValueError, match="differ"):
        minigrad.cat([minigrad.zeros(2, 3), minigrad.zeros(3, 2)], 0)
    with pytest.raises(ValueError, match="one shape"):
        minigrad.stack([minigrad.zeros(2), minigrad.zeros(3)])


def test_out_of_range_index():
    x = minigrad.zeros(3, 4)
    with pytest.raises(IndexError, match="out of bounds"):
        x[3]
    with pytest.raises(IndexError, match="out of bounds"):
        x[0, -5]
    with pytest.raises(IndexError, match="out of range"):
        x[[0, 3]]
    with pytest.raises(IndexError, match="out of range"):
        x[:, minigrad.tensor([-5])]
    with pytest.raises(IndexError, match="too many"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="out of range"):
        x.index_select(0, minigrad.tensor([0, 9]))
    with pytest.raises(IndexError):
        x.sum(2)
    with pytest.raises(IndexError, match="must hold integers"):     # like torch
        x[minigrad.tensor([0.0, 1.0])]


def test_bool_mask_shape_mismatch():
    x = minigrad.zeros(3, 4)
    with pytest.raises(IndexError):
        x[minigrad.tensor([True, False])]
    with pytest.raises(IndexError):
        x[minigrad.tensor([[True, False], [False, True]])]


def test_embedding_id_out_of_range():
    w = minigrad.zeros(5, 3)
    with pytest.raises(IndexError, match=r"\[0, 4\]"):
        F.embedding(minigrad.tensor([0, 5]), w)
    with pytest.raises(IndexError):
        F.embedding(minigrad.tensor([-1]), w)
    with pytest.raises(TypeError, match="int64"):
        F.embedding(minigrad.tensor([0.0]), w)


def test_cross_entropy_bad_targets():
    logits = minigrad.zeros(3, 4)
    with pytest.raises(IndexError, match=r"\[0, 3\]"):
        F.cross_entropy(logits, minigrad.tensor([0, 4, 1]))
    with pytest.raises(IndexError):
        F.cross_entropy(logits, minigrad.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="rows"):
        F.cross_entropy(logits, minigrad.tensor([0, 1]))
    with pytest.raises(TypeError, match="int64"):
        F.cross_entropy(logits, minigrad.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, minigrad.tensor([0, 1, 2]), reduction="avg")
    # ignore_index rows are allowed and skipped; all ignored -> nan (as torch)
    assert F.cross_entropy(logits, minigrad.tensor([0, -100, 1])).item() == pytest.approx(np.log(4))
    assert np.isnan(F.cross_entropy(logits, minigrad.tensor([-100, -100, -100])).item())


def test_functional_shape_errors():
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(minigrad.zeros(2, 3), (4,))
    with pytest.raises(ValueError, match="weight"):
        F.layer_norm(minigrad.zeros(2, 3), (3,), minigrad.ones(4))
    with pytest.raises(ValueError, match="features"):
        F.linear(minigrad.zeros(2, 3), minigrad.zeros(4, 5))
    with pytest.raises(ValueError):
        F.scaled_dot_product_attention(minigrad.zeros(1, 2, 4), minigrad.zeros(1, 3, 5),
                                       minigrad.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="attn_mask"):
        F.scaled_dot_product_attention(minigrad.zeros(1, 2, 4), minigrad.zeros(1, 3, 4),
                                       minigrad.zeros(1, 3, 4), attn_mask=minigrad.zeros(2, 2))
    with pytest.raises(ValueError):
        F.dropout(minigrad.zeros(2), p=1.5)
    with pytest.raises(ValueError):
        F.gelu(minigrad.zeros(2), approximate="fast")
    with pytest.raises(TypeError, match="floating"):
        F.softmax(minigrad.tensor([1, 2]), -1)


def test_other_clear_errors():
    with pytest.raises(ValueError, match="permutation"):
        minigrad.zeros(2, 3).permute(0, 0)
    with pytest.raises(ValueError, match="sum to"):
        minigrad.zeros(5).split([2, 2])
    with pytest.raises(ValueError, match="clamp"):
        minigrad.zeros(2).clamp()
    with pytest.raises(TypeError, match="mean"):
        minigrad.tensor([1, 2]).mean()
    with pytest.raises(TypeError, match="dtype"):
        minigrad.zeros(2, dtype="complex64")
    with pytest.raises(TypeError, match="bool"):
        minigrad.where(minigrad.tensor([1, 0]), 1.0, 0.0)
    with pytest.raises(ValueError, match="device"):
        minigrad.zeros(2, device="tpu")
    with pytest.raises(ValueError, match="empty"):
        minigrad.zeros(0, 3).amax(0)
