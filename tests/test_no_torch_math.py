"""No torch math in kernels/ or the Triton backend: torch is storage only (docs/DESIGN.md).

The scan parses each file and walks its syntax tree (so comments and docstrings never trip it),
skipping the bodies of @triton.jit / @triton.autotune / @triton.heuristics functions (Triton
code, where `.to(tl.float32)` and `tl.sum` are the point). Outside them it fails on:

- calls to `torch.<name>` other than the allocation / transfer / metadata allow-list
  (torch.matmul, torch.cat, torch.where, torch.softmax, torch.exp, ... are all refused);
- anything from torch.nn / torch.nn.functional (`F.gelu`, `F.softmax`, ...);
- method calls that compute or copy: `.sum(`, `.mean(`, `.max(`, `.exp(`, `.contiguous(`,
  `.clone(`, `.float(`, `.add_(`, `.copy_(`, `.fill_(`, `.matmul(`, ... ;
- `.to(...)` with a dtype (`.to(torch.float32)`, `.to(dtype=...)`); `.to(device)` is a transfer
  and is allowed;
- the `@` operator.
It cannot see `a + b` on tensors (Python arithmetic on ints looks the same); review catches that.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = sorted((REPO / "kernels").glob("*.py")) + [REPO / "minigrad" / "backends" / "triton_backend.py",
                                                    REPO / "fast" / "triton_ops.py"]

# torch.<...> calls that allocate, transfer, make views or query the device: allowed
ALLOWED_TORCH_CALLS = {
    "torch.empty", "torch.empty_like", "torch.empty_strided", "torch.zeros", "torch.from_numpy",
    "torch.tensor", "torch.device", "torch.is_tensor", "torch.finfo", "torch.iinfo",
}
ALLOWED_TORCH_PREFIXES = ("torch.cuda.",)
# method names that run torch math or data copies on a tensor
FORBIDDEN_METHODS = {
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "cumsum", "norm",
    "var", "std", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "softmax", "log_softmax",
    "relu", "gelu", "silu", "abs", "neg", "pow", "square", "reciprocal", "sin", "cos", "sign",
    "add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_", "addcmul_", "addcdiv_", "lerp_",
    "clamp", "clamp_", "where", "masked_fill", "masked_fill_", "maximum", "minimum",
    "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum",
    "contiguous", "clone", "float", "half", "double", "bfloat16", "long",
    "copy_", "fill_", "zero_", "normal_", "uniform_", "bernoulli_",
    "cat", "stack", "gather", "scatter", "scatter_add", "scatter_add_", "index_select",
    "index_add", "index_add_", "index_put_", "masked_select", "nonzero", "topk", "cumprod",
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not",
}
# receivers whose same-named functions are not torch math (host scalars, triton helpers)
NEUTRAL_RECEIVERS = {"tl", "triton", "math", "np", "numpy", "builtins", "libdevice"}
TRITON_DECORATORS = {"jit", "autotune", "heuristics"}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _is_triton_function(fn: ast.AST) -> bool:
    for dec in getattr(fn, "decorator_list", []):
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = _dotted(target) or ""
        if name.split(".")[-1] in TRITON_DECORATORS and name.split(".")[0] in ("triton", "jit",
                                                                                 "autotune", "heuristics"):
            return True
    return False


def _mentions_dtype(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        name = _dotted(sub) if isinstance(sub, ast.Attribute) else None
        if name and name.startswith("torch.") and name.split(".")[-1] in {
                "float32", "float64", "float16", "bfloat16", "int64", "int32", "bool", "float",
                "double", "half", "long", "int8", "uint8", "int16"}:
            return True
    return False


def _is_kernels(module: str) -> bool:
    return module.split(".")[:2] == ["minigrad", "kernels"]


def _kernel_module_aliases(tree: ast.AST) -> set[str]:
    """Names bound to our own kernel modules (`from minigrad.kernels import matmul as _mm`, or
    `from . import copy` inside kernels/): calling `_mm.matmul(...)` runs our kernel, not torch."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or _is_kernels(node.module or "")):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if _is_kernels(a.name) and a.asname)
    return names


class _Scanner(ast.NodeVisitor):
    def __init__(self, neutral: set[str]):
        self.problems: list[tuple[int, str]] = []
        self.neutral = NEUTRAL_RECEIVERS | neutral

    def flag(self, node, what):
        self.problems.append((node.lineno, what))

    def visit_FunctionDef(self, node):
        if not _is_triton_function(node):
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name.startswith("torch.nn"):
                self.flag(node, f"import {alias.name}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        if (node.module or "").startswith("torch.nn") or (
                node.module == "torch" and any(a.name in ("nn", "functional") for a in node.names)):
            self.flag(node, f"from {node.module} import ...")
        self.generic_visit(node)

    def visit_Attribute(self, node):
        name = _dotted(node)
        if name and (name.startswith("F.") or name.startswith("torch.nn.")
                     or name.startswith("torch.functional")):
            self.flag(node, name)
        self.generic_visit(node)

    def visit_BinOp(self, node):
        if isinstance(node.op, ast.MatMult):
            self.flag(node, "the @ operator")
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Attribute):
            name = _dotted(func)
            receiver = name.split(".")[0] if name else None
            if name and name.startswith("torch."):
                if name not in ALLOWED_TORCH_CALLS and not name.startswith(ALLOWED_TORCH_PREFIXES):
                    self.flag(node, f"{name}(...)")
            elif receiver in self.neutral:
                pass
            elif func.attr in FORBIDDEN_METHODS:
                self.flag(node, f".{func.attr}(...)")
            elif func.attr == "to" and (any(_mentions_dtype(a) for a in node.args)
                                        or any(k.arg == "dtype" for k in node.keywords)):
                self.flag(node, ".to(<dtype>) (casts are our kernels)")
        self.generic_visit(node)


def scan_source(source: str) -> list[tuple[int, str]]:
    """(line, what) for every forbidden torch use in `source` (empty list = clean)."""
    tree = ast.parse(source)
    scanner = _Scanner(_kernel_module_aliases(tree))
    scanner.visit(tree)
    return scanner.problems


# ----------------------------------------------------------------------------- the scanner bites
BAD_SNIPPETS = [
    "import torch\ndef f(a, b):\n    return torch.matmul(a, b)\n",
    "def f(a, b):\n    return a @ b\n",
    "def f(x):\n    return x.sum(-1)\n",
    "import torch.nn.functional as F\n",
    "def f(x):\n    return F.gelu(x)\n",
    "def f(x):\n    return x.contiguous()\n",
    "import torch\ndef f(x):\n    return x.to(torch.float32)\n",
    "def f(x, d):\n    return x.to(dtype=d)\n",
    "import torch\ndef f(a, b):\n    return torch.cat([a, b])\n",
    "import torch\ndef f(c, a, b):\n    return torch.where(c, a, b)\n",
    "def f(x):\n    return x.float()\n",
    "def f(d, s):\n    d.copy_(s)\n",
    "import torch\ndef f(x):\n    return torch.nn.functional.softmax(x, -1)\n",
]
GOOD_SNIPPETS = [
    "import torch\ndef f(n):\n    return torch.empty((n,), dtype=torch.float32, device='cuda')\n",
    "def f(x):\n    return x.permute(1, 0).view(-1)\n",
    "def f(x, dev):\n    return x.to(dev)\n",
    '"""Docstring mentioning torch.matmul and .sum( is fine."""\n# so is x.contiguous() here\n',
    "import triton\nimport triton.language as tl\n@triton.jit\ndef k(p):\n"
    "    x = tl.load(p).to(tl.float32)\n    tl.store(p, tl.sum(x, 0))\n",
    "import math\ndef f(x):\n    return math.sqrt(x) + max(1, 2)\n",
    "from minigrad.kernels import matmul as _mm\ndef f(a, b):\n    return _mm.matmul(a, b)\n",
]


@pytest.mark.parametrize("source", BAD_SNIPPETS)
def test_scanner_flags_torch_math(source):
    assert scan_source(source), f"scanner missed forbidden code:\n{source}"


@pytest.mark.parametrize("source", GOOD_SNIPPETS)
def test_scanner_allows_storage_calls(source):
    assert scan_source(source) == [], source


# ----------------------------------------------------------------------------- the real files
@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(REPO)))
def test_no_torch_math_in_kernels_and_triton_backend(path):
    problems = scan_source(path.read_text())
    listing = "\n".join(f"  {path.relative_to(REPO)}:{line}: {what}" for line, what in problems)
    assert not problems, ("torch is storage only here; use our kernels instead of:\n" + listing)
