"""minigrad.nn: modules and the functional API (filled in by nn/modules)."""
from . import functional  # noqa: F401
