"""Autograd: the Function base class, grad mode, and the backward pass.

A `Function` is one differentiable op. `forward` and `backward` work on raw backend arrays
through `self.backend` (the backend interface), never on Tensors, so every op is written once
for both backends. State needed by backward is kept on the Function object itself.

`Function.apply(*inputs)` runs forward and, when grad mode is on and some input requires a
gradient, links the output to this Function (`out._ctx`), which links to its input Tensors:
that chain *is* the graph. `backward(root)` walks it in reverse topological order, found
iteratively (no recursion limit on deep graphs), checks every gradient's shape, accumulates
leaf gradients into `.grad`, and frees the graph unless `retain_graph=True`. A leaf may carry
post-accumulate-grad hooks (`register_post_accumulate_grad_hook`), called once its `.grad` is
final for the pass: data-parallel training starts gradient all-reduces from them.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable

from .dtypes import FLOATS

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    prev = is_grad_enabled()
    _state.grad_enabled = enabled
    try:
        yield
    finally:
        _state.grad_enabled = prev


class no_grad(contextlib.ContextDecorator):
    """Context manager / decorator: ops inside record no graph (inference, optimizer steps)."""

    def __enter__(self):
        self._cm = _grad_mode(False)
        self._cm.__enter__()

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        self._cm = _grad_mode(True)
        self._cm.__enter__()

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


class Function:
    """One differentiable op. Subclasses implement forward(*arrays, **kw) and backward(grad).

    backward returns one gradient array (or None) per *Tensor* input of apply, in order.
    `self.needs_input_grad[i]` says whether the i-th Tensor input needs one (skip the work if not).
    """

    backend: Any
    needs_input_grad: tuple[bool, ...]
    parents: tuple = ()
    freed = False

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        from .tensor import Tensor

        tensors = [x for x in inputs if isinstance(x, Tensor)]
        if not tensors:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor input")
        backend = tensors[0].backend
        for t in tensors[1:]:
            if t.backend is not backend:
                raise RuntimeError(
                    f"{cls.__name__}: expected all tensors on the same device, got "
                    f"{tensors[0].device!r} and {t.device!r}; move them with .to(device)")
        fn = cls()
        fn.backend = backend
        out = fn.forward(*[x.data if isinstance(x, Tensor) else x for x in inputs], **kwargs)
        # integer and bool results (e.g. a cast to int64) are not differentiable, as in torch
        requires_grad = (is_grad_enabled() and any(t.requires_grad for t in tensors)
                         and backend.dtype(out) in FLOATS)
        result = Tensor._wrap(out, backend, requires_grad=requires_grad)
        if requires_grad:
            fn.parents = tuple(tensors)
            fn.needs_input_grad = tuple(t.requires_grad for t in tensors)
            result._ctx = fn
        return result

    def __repr__(self):
        return f"<{type(self).__name__}>"


def register_post_accumulate_grad_hook(tensor, hook: Callable[[Any], None]) -> Callable[[], None]:
    """Call `hook(tensor)` each time a backward pass has finished accumulating into the leaf
    `tensor`'s .grad (torch's `Tensor.register_post_accumulate_grad_hook`); returns a function
    that removes the hook.

    A leaf is visited once per backward, after every op that consumed it, so at that moment its
    .grad holds this pass's whole contribution. Data-parallel training uses it to start the
    all-reduce of a gradient bucket while the rest of backward still runs
    (minigrad/training/distributed.py).
    """
    if tensor._ctx is not None:
        raise RuntimeError("register_post_accumulate_grad_hook: expected a leaf tensor (a parameter), "
                           f"got the output of {type(tensor._ctx).__name__}")
    hooks = tensor.__dict__.setdefault("_post_accumulate_grad_hooks", [])
    hooks.append(hook)

    def remove() -> None:
        if hook in hooks:
            hooks.remove(hook)
    return remove


def _topological_order(root) -> list:
    """Tensors reachable from root through _ctx, each after all tensors that consume it.

    Iterative depth-first search with an explicit stack (a 10k-layer graph would overflow
    Python's recursion limit with the usual recursive version).
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent in node._ctx.parents:
                if id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()            # root first, leaves last
    return order


def backward(root, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's .grad (see Tensor.backward)."""
    from .tensor import Tensor

    if not root.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad: it was made "
                           "from tensors with requires_grad=False or inside no_grad()")
    b = root.backend
    if grad is None:
        if root.numel() != 1:
            raise RuntimeError(f"backward() without a gradient needs a scalar output; got shape "
                               f"{root.shape}. Pass the gradient: y.backward(grad_of_y)")
        grad_arr = b.full(b.shape(root.data), 1.0, root.dtype)
    else:
        g = grad if isinstance(grad, Tensor) else Tensor(grad, device=root.device, dtype=root.dtype)
        if g.shape != root.shape:
            raise RuntimeError(f"backward(): gradient shape {g.shape} does not match the "
                               f"output shape {root.shape}")
        grad_arr = g.data if g.dtype == root.dtype else b.astype(g.data, root.dtype)

    grads = {id(root): grad_arr}
    with no_grad():
        for node in _topological_order(root):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._ctx is None or node._retains_grad:
                node._accumulate_grad(g)
                # this node's .grad is final for this backward: every consumer has been visited
                for hook in getattr(node, "_post_accumulate_grad_hooks", ()):
                    hook(node)
            fn = node._ctx
            if fn is None:
                continue
            if fn.freed:
                raise RuntimeError(
                    "Trying to backward through the graph a second time (or directly access "
                    "saved tensors after they have already been freed). Specify "
                    "retain_graph=True on the first backward() call if you need to do this.")
            in_grads = fn.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            if len(in_grads) != len(fn.parents):
                raise RuntimeError(f"{type(fn).__name__}.backward returned {len(in_grads)} "
                                   f"gradients for {len(fn.parents)} inputs")
            for parent, pg, needed in zip(fn.parents, in_grads, fn.needs_input_grad):
                if pg is None or not needed:
                    continue
                if tuple(b.shape(pg)) != parent.shape:
                    raise RuntimeError(f"{type(fn).__name__}.backward produced a gradient of shape "
                                       f"{tuple(b.shape(pg))} for an input of shape {parent.shape}")
                if b.dtype(pg) != parent.dtype:
                    pg = b.astype(pg, parent.dtype)
                prev = grads.get(id(parent))
                grads[id(parent)] = pg if prev is None else b.binary("add", prev, pg)
            if not retain_graph:
                fn.freed = True
                fn.__dict__ = {"freed": True, "parents": fn.parents,
                               "needs_input_grad": fn.needs_input_grad, "backend": b}
