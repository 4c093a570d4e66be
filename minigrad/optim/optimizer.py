"""Optimizer: the base class of SGD and AdamW — param groups, per-parameter state, zero_grad,
and a state_dict that round-trips through a checkpoint (torch.optim's layout).

`state_dict()` is {"state": {index: {name: Tensor | int | float}}, "param_groups": [{hyper...,
"params": [index, ...]}]}: parameters are numbered in group order, so a checkpoint loads into
an optimizer built the same way over a freshly built model. State Tensors share memory with
the optimizer (as torch); `load_state_dict` copies them onto each parameter's device.

Not here: closures that re-evaluate the loss more than once (LBFGS), hooks, foreach/fused flags.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..tensor import Tensor


class Optimizer:
    def __init__(self, params: Iterable, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}      # Tensor hashes by identity
        self.param_groups: list[dict] = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        """Add a dict {"params": [...], hyperparameter overrides}; missing ones take the defaults."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a param group is a dict with a 'params' entry")
        group = dict(group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizers take Tensors (Parameters), got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (made by an op); pass leaves")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in ps}) != len(ps) or any(id(p) in seen for p in ps):
            raise ValueError("some parameters appear more than once in the optimizer's param "
                             "groups (each parameter must be in exactly one group)")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise TypeError(f"unknown hyperparameter(s) {sorted(unknown)} for "
                            f"{type(self).__name__}; expected some of {sorted(self.defaults)}")
        group["params"] = ps
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.zero_grad_(set_to_none)

    def step(self, closure=None):
        raise NotImplementedError

    def _params_with_grad(self, group: dict):
        for p in group["params"]:
            if p.grad is not None:
                if p.grad.shape != p.shape:
                    raise RuntimeError(f"{type(self).__name__}: gradient shape {p.grad.shape} "
                                       f"differs from the parameter's {p.shape}")
                if p.grad.device != p.device:
                    raise RuntimeError(f"{type(self).__name__}: gradient on {p.grad.device!r} "
                                       f"but parameter on {p.device!r}")
                yield p

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (v.detach() if isinstance(v, Tensor) else v)
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state (copied onto each parameter's device)."""
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict \
                or "state" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with 'state' and 'param_groups'")
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved)} parameter groups but the "
                             f"optimizer has {len(self.param_groups)}")
        id_map = {}
        for i, (mine, theirs) in enumerate(zip(self.param_groups, saved)):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(f"parameter group {i} has {len(mine['params'])} parameters but "
                                 f"the loaded state dict's has {len(theirs['params'])}")
            for p, idx in zip(mine["params"], theirs["params"]):
                id_map[int(idx)] = p
        new_state = {}
        for idx, s in state_dict["state"].items():
            p = id_map.get(int(idx))
            if p is None:
                raise ValueError(f"optimizer state for parameter index {idx} matches no parameter")
            new_state[p] = {k: self._load_state_value(p, k, v) for k, v in s.items()}
        for mine, theirs in zip(self.param_groups, saved):
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = tuple(v) if isinstance(v, list) else v
        self.state = new_state

    def _state_dtype(self, p: Tensor, key: str):
        """The dtype a floating state array of parameter p must have (None: keep as saved)."""
        return None

    def _load_state_value(self, p: Tensor, key: str, v):
        """Arrays become fresh Tensors on p's device (cast to the dtype the optimizer keeps
        them in, e.g. float32 moments of a bf16 parameter); scalars stay as they are."""
        if isinstance(v, np.ndarray):
            v = Tensor(v, dtype=_numpy_dtype(v))
        if not isinstance(v, Tensor):
            return v
        if v.ndim and v.shape != p.shape:
            raise ValueError(f"optimizer state '{key}' has shape {v.shape} but its parameter has "
                             f"shape {p.shape}")
        want = self._state_dtype(p, key) if v.dtype in ("float16", "bfloat16", "float32",
                                                        "float64") else None
        want = want or v.dtype
        b = p.backend
        if v.device != p.device:
            v = v.detach().to(p.device)
            if v.dtype == want:
                return v
        return Tensor._wrap(b.astype(v.data, want), b)              # a copy we own

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


def _numpy_dtype(a: np.ndarray) -> str:
    if a.dtype.kind == "f":
        return "float64" if a.dtype == np.float64 else "float32"
    return "bool" if a.dtype.kind == "b" else "int64"


def _check_hyper(name: str, value: float, lo: float = 0.0) -> float:
    value = float(value)
    if not value >= lo:
        raise ValueError(f"invalid {name}: {value} (must be >= {lo})")
    return value


__all__ = ["Optimizer"]
