"""Backends: where arrays live and how operations on them run.

`get_backend("cpu")` is the NumPy reference; `get_backend("cuda")` is the Triton backend,
imported on first use (so `import minigrad` never imports torch or triton). Under
`TRITON_INTERPRET=1` on a machine without CUDA, "cuda" still means the Triton backend, with
torch CPU tensors as storage: the kernels run in Triton's interpreter (that is how CI tests them).
"""
from __future__ import annotations

from .base import Backend
from .numpy_backend import NumpyBackend

_BACKENDS: dict[str, Backend] = {}
_WRAPPER = None


def normalize_device(device) -> str:
    """'cpu', 'cuda', 'cuda:0', a Backend or a Tensor's device string -> 'cpu' or 'cuda'.

    A process uses one GPU, the current CUDA device (torchrun gives each rank its own), so
    'cuda:1' is an error rather than a silent 'cuda', as is anything torch would not accept."""
    if isinstance(device, Backend):
        return device.device
    name = str(device).lower()
    if name == "cpu":
        return "cpu"
    if name in ("cuda", "cuda:0"):
        return "cuda"
    if name.startswith("cuda:"):
        raise ValueError(f"device {device!r}: minigrad uses one GPU per process, 'cuda' (the current "
                         "device); choose it with CUDA_VISIBLE_DEVICES, or one per rank with torchrun")
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def get_backend(device="cpu") -> Backend:
    """The (shared) backend object for a device."""
    if isinstance(device, Backend):
        return device
    name = normalize_device(device)
    if name not in _BACKENDS:
        if name == "cpu":
            backend: Backend = NumpyBackend()
        else:
            try:
                from .triton_backend import TritonBackend
            except ImportError as e:
                raise ImportError(
                    f"device 'cuda' needs torch and triton ({e}); install them with "
                    "`pip install minigrad[gpu]`") from e
            backend = TritonBackend()
        if _WRAPPER is not None:
            backend = _WRAPPER(backend)
        _BACKENDS[name] = backend
    return _BACKENDS[name]


def cuda_is_available() -> bool:
    """True when a real CUDA GPU and torch+triton are usable (never imports torch if absent)."""
    import importlib.util
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
        return False
    import torch
    return bool(torch.cuda.is_available())


def wrap_backends(wrapper=None) -> None:
    """From now on get_backend returns wrapper(backend) (None: the backends themselves). The tests
    wrap every backend in a checker that asserts the shape and dtype of each call's result
    (tests/checked_backend.py)."""
    global _WRAPPER
    _WRAPPER = wrapper
    _BACKENDS.clear()


__all__ = ["Backend", "NumpyBackend", "get_backend", "normalize_device", "cuda_is_available",
           "wrap_backends"]
