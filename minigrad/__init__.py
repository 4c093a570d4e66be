"""minigrad: a tensor and autograd engine from scratch, with torch's names and semantics.

    import minigrad
    x = minigrad.randn(3, 4, requires_grad=True)
    y = (x @ x.T).sum()
    y.backward()            # x.grad now holds dy/dx

Arrays live on a backend: "cpu" is the NumPy reference, "cuda" runs our Triton kernels
(loaded on first use: `import minigrad` imports neither torch nor triton).
"""
import os as _os

# The repository keeps kernels/, models/ and tokenizer/ beside this folder, and setup.py installs
# them inside it, so they are imported as minigrad.kernels, minigrad.models, minigrad.tokenizer
# either way and an installed minigrad claims no generic top-level name. In a checkout that is not
# installed (PYTHONPATH=.), this makes Python look for minigrad's subpackages in the repository
# root too. Nothing is imported here: it only extends the search path of this package.
_REPO = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "kernels")) \
        and _os.path.isfile(_os.path.join(_REPO, "kernels", "__init__.py")):
    __path__.append(_REPO)

from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .backends import cuda_is_available, get_backend
from .creation import (arange, empty, from_numpy, full, full_like, ones, ones_like, rand, randint,
                       randn, randn_like, tensor, zeros, zeros_like)
from .dtypes import bfloat16, float16, float32, float64, int64
from .dtypes import bool_ as bool  # noqa: A001 - torch spells it minigrad.bool too
from .random import Generator, get_rng_state, manual_seed, set_rng_state
from .tensor import (Tensor, broadcast_shapes, cat, get_default_device, get_default_dtype,
                     set_default_device, set_default_dtype, stack, where)

from . import nn, optim  # noqa: E402  (after Tensor exists)
from .serialization import load, save  # noqa: E402
from .draw import draw_dot  # noqa: E402

__version__ = "0.1.0"


def exp(x):
    return x.exp()


def log(x):
    return x.log()


def sqrt(x):
    return x.sqrt()


def tanh(x):
    return x.tanh()


def maximum(a, b):
    return a.maximum(b)


def minimum(a, b):
    return a.minimum(b)


def clamp(x, min=None, max=None):  # noqa: A002
    return x.clamp(min, max)


def matmul(a, b):
    return a.matmul(b)


def softmax(x, dim=-1):
    return x.softmax(dim)


def sum(x, dim=None, keepdim=False):  # noqa: A001
    return x.sum(dim, keepdim)


def mean(x, dim=None, keepdim=False):
    return x.mean(dim, keepdim)


def split(x, split_size_or_sections, dim=0):
    return x.split(split_size_or_sections, dim)


def chunk(x, chunks, dim=0):
    return x.chunk(chunks, dim)


def reshape(x, shape):
    return x.reshape(shape)


def permute(x, dims):
    return x.permute(dims)


def transpose(x, dim0, dim1):
    return x.transpose(dim0, dim1)


def unsqueeze(x, dim):
    return x.unsqueeze(dim)


def squeeze(x, dim=None):
    return x.squeeze(dim)


def argmax(x, dim=None, keepdim=False):
    return x.argmax(dim, keepdim)
