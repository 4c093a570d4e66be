"""Scalar index entries behave like torch: floats are refused, bools add a dim.

Before, every scalar went through int(), so `x[1.9]` quietly meant `x[1]` and `x[True]` meant
`x[1]`. torch (and NumPy) are the oracle for the shapes and values.
"""
import numpy as np
import pytest
import torch

import minigrad

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


@pytest.mark.parametrize("index", [1.9, np.float64(1.0), np.float32(0.0), 1 + 0j, (0, 2.0), (Ellipsis, 0.5)],
                         ids=repr)
def test_float_scalar_index_raises_like_torch(index):
    with pytest.raises(IndexError):                 # the oracle agrees it is an error
        torch.from_numpy(X)[index]
    with pytest.raises(IndexError, match=r"only integers.*got (float|complex)"):
        minigrad.tensor(X)[index]
    x = minigrad.tensor(X)
    with pytest.raises(IndexError, match=r"only integers"):
        x[index] = 1.0
    np.testing.assert_array_equal(x.numpy(), X)        # nothing was written


@pytest.mark.parametrize("index", [np.array([1.0]), [0.0], minigrad.tensor([1.0])], ids=repr)
def test_float_index_arrays_raise_index_error(index):
    with pytest.raises(IndexError, match="must hold integers"):
        minigrad.tensor(X)[index]


@pytest.mark.parametrize("index", [True, False, (True, 1), (0, False), (Ellipsis, True), (None, False, 1),
                                   np.True_], ids=repr)
def test_bool_scalar_adds_a_dim(index):
    want = X[index]                                  # NumPy; torch agrees for Python bools
    if not isinstance(index, np.bool_):
        assert tuple(torch.from_numpy(X)[index].shape) == want.shape
    got = minigrad.tensor(X)[index]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


def test_bool_scalar_setitem_and_gradient():
    x = minigrad.tensor(X.copy())
    x[False] = -1.0                                  # selects nothing
    np.testing.assert_array_equal(x.numpy(), X)
    x[True] = -1.0                                   # selects everything
    assert (x.numpy() == -1.0).all()
    w = minigrad.tensor(X, requires_grad=True)
    (w[True].sum() * 2 + w[False].sum()).backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full_like(X, 2.0))


def test_empty_list_is_an_empty_selection():
    got = minigrad.tensor(X)[[]]
    assert got.shape == X[[]].shape == (0, 3, 4)
