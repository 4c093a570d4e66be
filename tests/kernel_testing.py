"""What every kernel test (tests/test_kernels_*.py) shares; import it before any kernel module.

- Without CUDA the kernels run in Triton's interpreter on torch CPU tensors. conftest.py already
  decides that before any test file is imported; repeating it here keeps a kernel test file
  importable on its own.
- `DEVICE` is where test tensors live; `gpu` marks a realistic-size test and skips it without CUDA.
- `check_compiles_for_sm90(script)` compiles GPU code paths for an H100 (sm_90) with Triton's
  bundled ptxas, no GPU needed: the interpreter never runs the compiler, so this is what catches
  GPU-only compile errors in CI. It runs in a subprocess because TRITON_INTERPRET=1 is already set
  in this process.

Each test file keeps its own per-dtype tolerance table (TOL) at its top.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if HAS_CUDA else "cpu"


def gpu(test):
    """Realistic-size test: marked `gpu` and skipped without CUDA."""
    return pytest.mark.gpu(pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")(test))


# Prepended to every sm_90 compile script: exit code 3 means this Triton lacks the compile API.
_SM90_PREAMBLE = r"""
import sys
try:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
except ImportError as e:
    print("triton compile API unavailable:", e); sys.exit(3)
"""


def check_compiles_for_sm90(script: str) -> None:
    """Run `script` (which may use triton, GPUTarget and ASTSource) in a fresh Python without
    TRITON_INTERPRET, from the repository root; skip when Triton has no compile API."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", _SM90_PREAMBLE + script], env=env, cwd=repo,
                       capture_output=True, text=True, timeout=600)
    if r.returncode == 3:
        pytest.skip(r.stdout.strip())
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
