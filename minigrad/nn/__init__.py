"""minigrad.nn: modules (Module, Parameter, layers, containers), init, utils and the functional API."""
from . import functional  # noqa: F401
from . import init, utils  # noqa: F401
from .layers import (GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ModuleDict, ModuleList,
                     ReLU, RMSNorm, Sequential, SiLU, Tanh)
from .module import Module, Parameter

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Linear", "Embedding", "LayerNorm",
           "RMSNorm", "Dropout", "GELU", "SiLU", "ReLU", "Tanh", "Identity", "Sequential",
           "ModuleList", "ModuleDict"]
