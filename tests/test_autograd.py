"""The backward pass: graph walking, accumulation, grad modes and the errors users hit."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import minigrad
from minigrad import Tensor

DEVICE = "cpu"


def leaf(values, dtype="float64", device=DEVICE):
    return minigrad.tensor(values, dtype=dtype, device=device, requires_grad=True)


# ---------------------------------------------------------------------------- graph walking
def test_deep_chain_has_no_recursion_limit():
    x = leaf([1.0, 2.0])
    y = x
    depth = max(5000, sys.getrecursionlimit() + 1000)
    for _ in range(depth):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** depth] * 2, rtol=1e-9)


def test_deep_chain_of_mixed_ops():
    x = leaf(0.5)
    y = x
    for _ in range(2000):
        y = (y + 0.001).exp().log()         # each layer has derivative 1
        y = y.reshape(1).unsqueeze(0)[0, 0]
    y.backward()
    np.testing.assert_allclose(y.item(), 0.5 + 2.0, rtol=1e-9)
    np.testing.assert_allclose(x.grad.item(), 1.0, rtol=1e-9)


def test_diamond_graph_sums_both_paths():
    x = leaf([2.0, 3.0])
    a = x * 3.0
    b = x * x
    y = (a + b + a * b).sum()          # dy/dx = 3 + 2x + (3x^2)' = 3 + 2x + 9x^2... with a*b = 3x^3
    y.backward()
    xv = np.array([2.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * xv + 9 * xv ** 2)


def test_same_tensor_used_twice_in_one_op():
    x = leaf([1.5, -2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -4.0])
    y = leaf([1.0, 2.0])
    minigrad.cat([y, y, y]).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [3.0, 3.0])


def test_only_needed_inputs_get_grads():
    x = leaf([1.0, 2.0])
    c = minigrad.tensor([3.0, 4.0], dtype="float64")
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_unused_branch_and_grad_fn():
    x = leaf([1.0])
    y = x * 2
    assert x.is_leaf and x.grad_fn is None
    assert not y.is_leaf and y.grad_fn is not None
    _unused = x.exp()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


# ---------------------------------------------------------------------------- accumulation
def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])
    x.zero_grad_()
    assert x.grad is None


def test_grad_dtype_and_shape_match_the_leaf():
    for dtype in ("float32", "float64"):
        x = leaf(np.ones((2, 3)), dtype)
        (x * 2).sum().backward()
        assert x.grad.shape == (2, 3) and x.grad.dtype == dtype and not x.grad.requires_grad


def test_grad_through_dtype_cast_comes_back_in_leaf_dtype():
    x = leaf([1.0, 2.0], "float32")
    (x.double() * minigrad.tensor([2.0, 3.0], dtype="float64")).sum().backward()
    assert x.grad.dtype == "float32"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 3.0])


# ---------------------------------------------------------------------------- grad modes
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with minigrad.no_grad():
        y = x * 2
        assert not minigrad.is_grad_enabled()
    assert minigrad.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_as_decorator_and_enable_grad_inside():
    x = leaf([1.0])

    @minigrad.no_grad()
    def f(t):
        a = t * 2
        with minigrad.enable_grad():
            b = t * 3
        return a, b
    a, b = f(x)
    assert not a.requires_grad and b.requires_grad
    assert minigrad.is_grad_enabled()


def test_no_grad_restores_state_after_exception():
    with pytest.raises(ValueError):
        with minigrad.no_grad():
            raise ValueError("boom")
    assert minigrad.is_grad_enabled()


def test_detach_shares_data_and_cuts_graph():
    x = leaf([1.0, 2.0])
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), y.numpy())
    z = (y * d).sum()               # d is a constant: dz/dx = 2 * d
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_requires_grad_():
    x = minigrad.tensor([1.0, 2.0], dtype="float64")
    assert not x.requires_grad
    assert x.requires_grad_() is x and x.requires_grad
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    x.requires_grad_(False)
    assert not (x * 2).requires_grad
    y = leaf([1.0]) * 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.requires_grad_(False)


def test_requires_grad_on_int_or_bool_tensor_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        minigrad.tensor([1, 2, 3]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point"):
        minigrad.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        minigrad.tensor([True, False], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        minigrad.zeros(3, dtype="int64", requires_grad=True)


# ---------------------------------------------------------------------------- retain_graph
def test_retain_graph_allows_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_second_backward_without_retain_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_backward_through_freed_shared_subgraph_raises():
    x = leaf([1.0, 2.0])
    h = x * x
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 3).sum().backward()


def test_retain_graph_then_free():
    x = leaf([3.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [18.0])
    with pytest.raises(RuntimeError):
        y.backward()


# ---------------------------------------------------------------------------- non-leaves, non-scalars
def test_retain_grad_on_non_leaves():
    x = leaf([1.0, 2.0])
    h = x * 3
    h.retain_grad()
    k = h * h
    g = x * 5                      # not retained
    (k.sum() + g.sum()).backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * np.array([3.0, 6.0]))
    assert g.grad is None
    np.testing.assert_allclose(x.grad.numpy(), 3 * 2 * np.array([3.0, 6.0]) + 5)


def test_backward_non_scalar_with_explicit_gradient():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    g = np.array([[1.0, 0.5], [-1.0, 2.0]])
    y.backward(minigrad.tensor(g, dtype="float64"))
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() * g)
    x2 = leaf([1.0, 2.0])
    (x2 * 3).backward(np.array([1.0, -1.0]))        # array-likes are accepted too
    np.testing.assert_allclose(x2.grad.numpy(), [3.0, -3.0])


def test_backward_non_scalar_without_gradient_raises():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_backward_gradient_shape_mismatch_raises():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(minigrad.tensor([1.0, 2.0, 3.0], dtype="float64"))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minigrad.tensor([1.0, 2.0]).sum().backward()


def test_single_element_non_0d_backward_without_gradient():
    x = leaf([2.0])
    (x * x).backward()                 # shape (1,): a scalar in all but shape, as torch
    np.testing.assert_allclose(x.grad.numpy(), [4.0])


# ---------------------------------------------------------------------------- Function contract
def test_backward_checks_gradient_shapes_from_functions():
    class Bad(minigrad.Function):
        def forward(self, x):
            return self.backend.binary("mul", x, 2.0)

        def backward(self, g):
            return self.backend.reshape(g, (2,))

    x = leaf([[1.0, 2.0]])
    with pytest.raises(RuntimeError, match="gradient of shape"):
        Bad.apply(x).sum().backward()


def test_backward_checks_gradient_count():
    class Two(minigrad.Function):
        def forward(self, x):
            return self.backend.binary("mul", x, 2.0)

        def backward(self, g):
            return g, g

    x = leaf([1.0])
    with pytest.raises(RuntimeError, match="returned 2 gradients for 1 inputs"):
        Two.apply(x).sum().backward()


def test_custom_function():
    class Cube(minigrad.Function):
        def forward(self, x):
            self.x = x
            b = self.backend
            return b.binary("mul", b.binary("mul", x, x), x)

        def backward(self, g):
            b = self.backend
            return b.binary("mul", g, b.binary("mul", b.binary("mul", self.x, self.x), 3.0))

    x = leaf([1.0, -2.0])
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    with pytest.raises(TypeError, match="at least one Tensor"):
        Cube.apply(np.ones(2))


def test_graph_is_freed_after_backward():
    """Saved arrays are dropped after a backward without retain_graph (memory is returned)."""
    x = leaf(np.ones((3, 3)))
    y = x.exp()
    fn = y.grad_fn
    assert hasattr(fn, "y")
    y.sum().backward()
    assert fn.freed and not hasattr(fn, "y")


def test_integer_results_do_not_require_grad():
    x = leaf([1.5, -2.5])
    assert not x.long().requires_grad and not x.to(dtype="int64").requires_grad
    assert not (x > 0).requires_grad and not x.argmax().requires_grad
    y = x * 2
    assert y.requires_grad and y.double().requires_grad
