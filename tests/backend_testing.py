"""The Triton ("cuda") backend for tests that run it on every machine (in Triton's interpreter
when there is no GPU, see conftest.py).

A test may skip for one reason only: torch or triton is not installed (a core install,
`pip install -e .`). Any other failure to build the backend is a bug and must fail the test:
a broad `except Exception: pytest.skip(...)` once turned a broken Triton backend into silent
skips (issue 13).
"""
from __future__ import annotations

import pytest

import minigrad
from conftest import HAS_TRITON, torch  # tests/ is on sys.path; conftest tried the imports once

TORCH_TRITON_INSTALLED = torch is not None and HAS_TRITON


def cuda_backend():
    """minigrad's 'cuda' backend, or a skip when torch/triton are not installed."""
    if not TORCH_TRITON_INSTALLED:
        pytest.skip("torch/triton not installed (pip install -e '.[test]' for the Triton backend)")
    return minigrad.get_backend("cuda")
