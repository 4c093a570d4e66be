"""The dependency arrows of docs/DESIGN.md, enforced.

    tokenizer/   knows nothing of minigrad (nor of kernels, torch, triton)
    kernels/     knows nothing of minigrad
    minigrad/    the engine: imports nothing from kernels/, torch or triton, except
                 minigrad/backends/triton_backend.py (loaded on first use of device "cuda"), and
                 nothing of the model, the tokenizer or the run-time machinery
    minigrad/training/  the run-time machinery (settings, data, checkpoints, ...): the engine,
                 the tokenizer and torch.distributed, never the kernels
    models/      the engine only
    fast/        the performance layer: the engine, the kernels, the models
    the core (minigrad/, models/, kernels/, tokenizer/) never imports the performance layer;
    only train.py, sample.py, benchmarks and tests do.
    `import minigrad` imports neither torch nor triton.
    nothing imports a generic top-level name: kernels/, models/ and tokenizer/ are imported as
    minigrad.kernels, minigrad.models, minigrad.tokenizer (setup.py installs them there).

Import statements are found with `ast`, so imports inside functions count too; relative
imports are resolved to absolute module names before checking, and each name is mapped to the
repository folder ("part") it lives in.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Lazy imports that are deliberate, each with its reason. Keep this list short.
ALLOWED = {
    # cuda_is_available() imports torch only after importlib.util.find_spec says torch and
    # triton are installed, and only when called: `import minigrad` stays torch-free (checked below).
    ("minigrad/backends/__init__.py", "torch"),
}


# repository folders installed inside minigrad (setup.py's PARTS): kernels/x.py is minigrad.kernels.x
PARTS = ("kernels", "models", "tokenizer", "fast")
# minigrad's own subpackage that is not the engine
TRAINING = "training"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts and parts[0] in PARTS:
        parts = ["minigrad"] + parts
    return ".".join(parts)


def imported_modules(path: Path) -> set:
    """Absolute names of every module imported anywhere in the file (including `from x import y`
    as both x and x.y, since y may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:                       # relative: climb level - 1 packages
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    raise AssertionError(f"{path}: relative import beyond the top level")
                base = parts[:len(parts) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _top(name: str) -> str:
    """The repository part a module belongs to: minigrad.kernels.matmul -> "kernels",
    minigrad.nn -> "minigrad"; anything else -> its top-level package (torch, numpy, ...)."""
    parts = name.split(".")
    if parts[0] == "minigrad" and len(parts) > 1 and parts[1] in PARTS + (TRAINING,):
        return parts[1]
    return parts[0]


def _files(folder: str) -> list:
    files = sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def _violations(folder: str, forbidden: set, skip=(), skip_under=()) -> list:
    out = []
    for f in _files(folder):
        rel = f.relative_to(REPO).as_posix()
        if rel in skip or rel.startswith(tuple(skip_under)):
            continue
        for name in sorted(imported_modules(f)):
            if _top(name) in forbidden and (rel, _top(name)) not in ALLOWED:
                out.append(f"{rel} imports {name}")
    return sorted(set(out))


def test_import_minigrad_does_not_import_torch_or_triton():
    code = ("import sys, minigrad, minigrad.nn.functional, minigrad.optim, minigrad.backends; "
            "x = minigrad.randn(2, 3, requires_grad=True); (x * x).sum().backward(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton') "
            "or m.startswith('minigrad.kernels')); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"import minigrad pulled in {r.stdout.strip()} {r.stderr[-2000:]}"


def test_tokenizer_knows_nothing_of_minigrad():
    assert _files("tokenizer"), "tokenizer/ not found"
    assert _violations("tokenizer", {"minigrad", "kernels", "models", "fast", TRAINING, "torch",
                                     "triton"}) == []


def test_kernels_know_nothing_of_minigrad():
    assert _files("kernels"), "kernels/ not found"
    assert _violations("kernels", {"minigrad", "models", "tokenizer", "fast", TRAINING}) == []


def test_minigrad_imports_only_the_backend_interface():
    engine_must_not = {"kernels", "torch", "triton", "models", "tokenizer", "fast", TRAINING}
    assert _violations("minigrad", engine_must_not, skip={"minigrad/backends/triton_backend.py"},
                       skip_under=("minigrad/training/",)) == []
    assert _violations("minigrad", {"models", "tokenizer", "fast", TRAINING},
                       skip_under=("minigrad/training/",)) == []     # triton_backend.py too


def test_the_run_time_machinery_and_the_models_stay_in_their_lanes():
    assert _files("minigrad/training"), "minigrad/training/ not found"
    assert _violations("minigrad/training", {"kernels", "triton", "fast"}) == []
    assert _violations("models", {"kernels", "torch", "triton", "tokenizer", "fast", TRAINING}) == []


def test_the_core_never_imports_the_performance_layer():
    """fast/ installs its replacements when train.py asks (fast.accelerate): nothing in the core
    knows it exists, so deleting the folder leaves a working engine (tests/test_fast_parity.py
    trains and samples without it)."""
    for folder in ("minigrad", "models", "kernels", "tokenizer"):
        assert _violations(folder, {"fast"}) == [], folder
    assert _files("fast"), "fast/ not found"
    assert _violations("fast", {TRAINING, "tokenizer"}) == []


def test_nothing_imports_a_generic_top_level_name():
    """kernels, models and tokenizer are minigrad.kernels, ...: an import of the bare name would
    find another installed package of that name (transformers depends on one called `kernels`)."""
    files = [f for folder in ("minigrad",) + PARTS + ("tests", "benchmarks") for f in _files(folder)]
    files += [REPO / "train.py", REPO / "sample.py", REPO / "setup.py"]
    bad = []
    for f in files:
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad += [f"{f.relative_to(REPO)} imports {n}" for n in names if n.split(".")[0] in PARTS]
    assert bad == []


def test_allowlist_entries_are_still_needed():
    """An allowlist entry whose import is gone should be removed (keep the list honest)."""
    for rel, top in ALLOWED:
        names = imported_modules(REPO / rel)
        assert any(_top(n) == top for n in names), f"ALLOWED entry ({rel}, {top}) is stale"


def test_the_scanner_sees_lazy_and_relative_imports():
    """The checker itself: imports inside functions and relative imports are resolved."""
    names = imported_modules(REPO / "minigrad" / "nn" / "functional.py")
    assert "minigrad.ops" in names                           # `from .. import ops`
    names = imported_modules(REPO / "minigrad" / "backends" / "__init__.py")
    assert "torch" in names                                  # imported inside cuda_is_available()
    assert "minigrad.backends.triton_backend" in names       # `from .triton_backend import ...`
