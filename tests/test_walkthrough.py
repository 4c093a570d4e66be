"""docs/walkthrough.md stays true: every `file: name` it names exists and is called by the step it
describes.

The walkthrough follows `python train.py --fast=false` for one iteration (sections 0-9) and then
shows what `--fast` swaps in (section 10). Each reference written as `path.py: name` (a function,
a class, or Class.method) is checked twice: the file defines it (ast), and a traced train.main
run calls it (sys.setprofile records every function entered, by file and qualified name; a class
counts as called when one of its methods runs). Sections 0-9 are traced with --fast=false,
section 10 with --fast=true.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "walkthrough.md"
REF = re.compile(r"`([\w/]+\.py):\s+([\w.]+)`")


def references(text: str) -> list[tuple[str, str]]:
    return [(path, name) for path, name in REF.findall(text)]


def sections() -> tuple[str, str]:
    text = DOC.read_text(encoding="utf-8")
    cut = text.index("## 10.")
    return text[:cut], text[cut:]


def defined_names(path: Path) -> set[str]:
    """Module-level functions and classes, and Class.method, of a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(f"{node.name}.{m.name}" for m in node.body if isinstance(m, ast.FunctionDef))
            if isinstance(node, ast.FunctionDef):       # nested helpers (train.main's train_step)
                names.update(n.name for n in ast.walk(node) if isinstance(n, ast.FunctionDef))
    return names


def test_the_walkthrough_names_only_what_exists():
    refs = references(DOC.read_text(encoding="utf-8"))
    assert len(refs) > 40                                   # the parser found the references
    missing = [f"{p}: {n}" for p, n in refs
               if not (REPO / p).is_file() or n not in defined_names(REPO / p)]
    assert missing == []


def traced_run(tmp_path, shared: Path, fast: str) -> set[tuple[str, str]]:
    """(file relative to the repository, qualified name) of every function train.main entered."""
    import train
    called: set[tuple[str, str]] = set()
    root = str(REPO) + "/"

    def profile(frame, event, arg):
        if event == "call":
            f = frame.f_code.co_filename
            if f.startswith(root) and "/tests/" not in f:
                code = frame.f_code
                called.add((f[len(root):], getattr(code, "co_qualname", code.co_name)))
    argv = [f"--data={shared / 'tinyshakespeare.txt'}", f"--data_cache={tmp_path / 'cache'}",
            f"--out_dir={tmp_path / ('out_' + fast)}", "--max_iters=2", "--eval_interval=2",
            "--eval_iters=1", "--batch_size=2", "--sample_tokens=3", "--plot=false", "--progress=false",
            "--device=cpu", f"--fast={fast}"]
    sys.setprofile(profile)
    try:
        train.main(argv)
    finally:
        sys.setprofile(None)
    return called


def was_called(called: set, path: str, name: str) -> bool:
    """name is a function (possibly nested: main.<locals>.train_step), a Class.method, or a class
    one of whose methods ran."""
    for p, q in called:
        if p != path:
            continue
        if q == name or q.endswith(f"<locals>.{name}") or q.startswith(name + "."):
            return True
    return False


@pytest.mark.parametrize("fast", ["false", "true"])
def test_a_traced_step_calls_what_the_walkthrough_names(tmp_path, shared_data, fast):
    readable, swapped = sections()
    refs = references(readable if fast == "false" else swapped)
    assert refs
    called = traced_run(tmp_path, shared_data, fast)
    not_called = [f"{p}: {n}" for p, n in refs if not was_called(called, p, n)]
    assert not_called == []
    if fast == "false":                  # the readable step runs no fused replacement at all
        assert not any(p.startswith("fast/") for p, _ in called)
