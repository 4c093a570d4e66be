"""Module and Parameter: the containers that hold a model's weights, as in torch.nn.

A `Module` registers what is assigned to it: a `Parameter` goes to `_parameters`, a `Module`
to `_modules`, and `register_buffer` adds non-trainable state (e.g. a causal mask or RoPE
tables) that still travels with `to()` and `state_dict()`. Everything else is a plain
attribute. Names are dotted paths ("h.0.attn.c_attn.weight"), as torch's, so checkpoints
line up with torch's names.

Not here: hooks, `register_forward_pre_hook`, `_load_from_state_dict` overrides, and
parametrizations — minigrad's models do not need them.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Callable, Iterator, Optional

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..backends import normalize_device
from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable; requires_grad=True by default.

    `Parameter(t)` wraps t's array itself (no copy), as torch's: writes to one show in the other.
    """

    def __init__(self, data: Optional[Tensor] = None, requires_grad: bool = True):
        if data is None:
            data = Tensor(np.zeros((0,), dtype=np.float32))
        elif not isinstance(data, Tensor):
            data = Tensor(data)
        self.data, self.backend = data.data, data.backend
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def _to_tensor_on(value, device: str) -> Tensor:
    """A state_dict entry (Tensor or NumPy array) as a Tensor on `device` (no copy if already there)."""
    if isinstance(value, Tensor):
        return value if value.device == device else value.detach().to(device)
    return Tensor(np.asarray(value), device=device)


class Module:
    """Base class of every layer and model. Subclasses set attributes in __init__ (after
    calling super().__init__()) and define forward(); call the module, not forward."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def _check_init(self, what: str):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() is called "
                                 f"(call super().__init__() first in {type(self).__name__})")

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_init("parameters")
            self._register("_parameters", name, value)
        elif isinstance(value, Module):
            self._check_init("submodules")
            self._register("_modules", name, value)
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to parameter '{name}' "
                                "(expected a minigrad.nn.Parameter or None)")
            d["_parameters"][name] = None
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to submodule '{name}' "
                                "(expected a Module or None)")
            d["_modules"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} to buffer '{name}' "
                                "(expected a Tensor or None)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def _register(self, registry: str, name: str, value) -> None:
        """Put `name` in one registry, dropping it from the others and from plain attributes.
        Re-assigning within the same registry keeps its position (as a dict does)."""
        d = self.__dict__
        d.pop(name, None)
        for reg in ("_parameters", "_modules", "_buffers"):
            if reg != registry:
                d[reg].pop(name, None)
        d["_non_persistent_buffers"].discard(name)
        d[registry][name] = value

    def __getattr__(self, name: str):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for reg in ("_parameters", "_buffers", "_modules"):
            if reg in d and name in d[reg]:
                return d[reg][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for reg in ("_parameters", "_buffers", "_modules"):
            if name in d.get(reg, {}):
                del d[reg][name]
                d["_non_persistent_buffers"].discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter('{name}'): expected a Parameter or None, got "
                            f"{type(param).__name__}")
        self._check_init("parameters")
        self._register("_parameters", name, param)

    def register_buffer(self, name: str, tensor: Optional[Tensor], persistent: bool = True) -> None:
        """Non-trainable state moved by to(); in state_dict() unless persistent=False."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer('{name}'): expected a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._check_init("buffers")
        self._register("_buffers", name, tensor)
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module('{name}'): expected a Module, got {type(module).__name__}")
        self._check_init("submodules")
        self._register("_modules", name, module)

    register_module = add_module

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: Optional[set] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for self and every descendant, each module once by default."""
        stack = [(prefix, self)]
        memo = set() if memo is None else memo
        while stack:                                     # pre-order, children in insertion order
            name, m = stack.pop()
            if remove_duplicate:
                if id(m) in memo:
                    continue
                memo.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for mod_name, m in mods:
            for k, v in getattr(m, registry).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mod_name}.{k}" if mod_name else k), v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter); a shared (tied) Parameter appears once, under its first name."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """fn(m) for every submodule (children first) and then self, as torch (used for init)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's .grad (set_to_none=False zeroes it instead)."""
        for p in self.parameters():
            p.zero_grad_(set_to_none)

    def num_parameters(self) -> int:
        """Number of scalars in the (deduplicated) parameters."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ device / dtype
    def to(self, device_or_dtype=None, dtype=None) -> "Module":
        """Move/cast parameters and buffers in place: `.to("cuda")`, `.to(minigrad.bfloat16)`,
        `.to("cuda", "bfloat16")`. Each Parameter keeps its identity (its .data and .backend
        are rebound), so optimizers built before the move still hold the right objects.
        dtype casts apply to floating point tensors only, as torch."""
        device = None
        if device_or_dtype is not None:
            try:
                device = normalize_device(device_or_dtype)
            except ValueError:
                if dtype is not None:
                    raise ValueError(f"to(): {device_or_dtype!r} is not a device") from None
                dtype = device_or_dtype
        dtype = dtypes.canonical(dtype) if dtype is not None else None

        def convert(t: Tensor) -> Tensor:
            out = t.detach()
            if device is not None and out.device != device:
                out = out.to(device)
            if dtype is not None and dtypes.is_floating(out.dtype) and out.dtype != dtype:
                out = out.to(dtype=dtype)
            return out

        with no_grad():
            for p in self.parameters():
                new = convert(p)
                if new.data is not p.data:
                    p.data, p.backend = new.data, new.backend
                if p.grad is not None:
                    p.grad = convert(p.grad)
            for m in self.modules():
                for k, buf in m._buffers.items():
                    if buf is not None:
                        new = convert(buf)
                        if new.data is not buf.data:
                            m._buffers[k] = new
        return self

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self) -> "Module":
        return self.to("cuda")

    def float(self) -> "Module":
        return self.to(dtype="float32")

    def double(self) -> "Module":
        return self.to(dtype="float64")

    def half(self) -> "Module":
        return self.to(dtype="float16")

    def bfloat16(self) -> "Module":
        return self.to(dtype="bfloat16")

    # ------------------------------------------------------------------ state dict
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """name -> Tensor for every parameter and persistent buffer.

        Like torch, tied parameters appear under each of their names, and the Tensors share
        memory with the module (detached unless keep_vars=True): copy them to keep a snapshot.
        """
        out: OrderedDict[str, Tensor] = OrderedDict()
        self._collect_state(out, prefix, keep_vars)
        return out

    def _collect_state(self, out, prefix: str, keep_vars: bool) -> None:
        for k, p in self._parameters.items():
            if p is not None:
                out[prefix + k] = p if keep_vars else p.detach()
        for k, b in self._buffers.items():
            if b is not None and k not in self._non_persistent_buffers:
                out[prefix + k] = b if keep_vars else b.detach()
        for k, m in self._modules.items():
            if m is not None:
                m._collect_state(out, prefix + k + ".", keep_vars)

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values (Tensors or NumPy arrays, any device) into this module's parameters and
        persistent buffers, in place. Floating values are cast to the destination's floating
        dtype (an fp32 checkpoint loads into a bf16 model); float <-> int/bool is an error.

        strict=True: missing or unexpected keys are an error listing all of them. Shape and
        dtype-kind mismatches are always an error naming the key and both shapes/dtypes.
        Returns (missing_keys, unexpected_keys).
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict expects a dict of name -> Tensor, got "
                            f"{type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        for k, dst in own.items():
            if k not in state_dict:
                continue
            src = state_dict[k]
            if not isinstance(src, (Tensor, np.ndarray)):
                errors.append(f"value for '{k}' is a {type(src).__name__}, expected a Tensor or "
                              "NumPy array")
                continue
            src_shape = tuple(src.shape)
            if src_shape != dst.shape:
                errors.append(f"size mismatch for {k}: copying a param with shape {src_shape} "
                              f"from checkpoint, the shape in current model is {dst.shape}")
                continue
            src_dtype = src.dtype if isinstance(src, Tensor) else _numpy_dtype_name(src)
            if dtypes.is_floating(src_dtype) != dtypes.is_floating(dst.dtype) or (
                    not dtypes.is_floating(dst.dtype) and src_dtype != dst.dtype):
                errors.append(f"dtype mismatch for {k}: checkpoint has {src_dtype}, the model "
                              f"has {dst.dtype}")
        if strict and (missing or unexpected):
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with no_grad():
            for k, dst in own.items():
                if k in state_dict:
                    src = _to_tensor_on(state_dict[k], dst.device)
                    if src.data is not dst.data:
                        dst.backend.copy_(dst.data, src.data)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """One line of constructor arguments shown by repr (override in layers)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        lines = []
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (f"\n  {extra}" if extra else "")
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _numpy_dtype_name(a: np.ndarray) -> str:
    k = a.dtype.kind
    if k == "f":
        return {2: "float16", 4: "float32"}.get(a.dtype.itemsize, "float64")
    if k in "iu":
        return "int64"
    if k == "b":
        return "bool"
    raise TypeError(f"unsupported NumPy dtype {a.dtype} in state_dict")


__all__ = ["Module", "Parameter", "IncompatibleKeys"]
