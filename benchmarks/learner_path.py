"""How much a learner must read: the files and functions one readable training step runs, and the
lines of code of the teaching path.

    python -m benchmarks.learner_path            # prints the table; --json=FILE writes the numbers

The step is train.py's readable one (`--fast=false`) through the public API, on the CPU, with
train.py's default model (4 layers x 4 heads x 128 dims, context 64, batch 12, 65 characters):
forward with NumPy batches, backward, clip_grad_norm_, AdamW.step. sys.setprofile records every
function of this repository that runs during that step (the first step, which creates the
optimizer state, is run before the trace). Lines of code are counted without comments,
docstrings and blank lines (Python's tokenizer and ast decide which is which).

The teaching path is the engine (minigrad/ without minigrad/training/, the run-time machinery),
models/gpt.py and train.py: what issue 17 of the project measured (5,118 lines before the
performance layer was split off).
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import os
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("minigrad", "models", "kernels", "tokenizer", "fast", "train.py")


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    src = path.read_text(encoding="utf-8")
    docs = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER, tokenize.ENCODING)
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def teaching_path() -> list[Path]:
    engine = [p for p in sorted((REPO / "minigrad").rglob("*.py"))
              if "training" not in p.relative_to(REPO / "minigrad").parts and "__pycache__" not in p.parts]
    return engine + [REPO / "models" / "gpt.py", REPO / "train.py"]


def traced_step() -> dict[str, set[str]]:
    """file (relative to the repository) -> the functions of it that one readable step runs."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.path.insert(0, str(REPO))
    import numpy as np

    import minigrad
    import train
    from minigrad.models.gpt import GPT, GPTConfig
    from minigrad.nn.utils import clip_grad_norm_

    tc = train.TrainConfig()
    minigrad.manual_seed(tc.seed)
    model = GPT(GPTConfig(vocab_size=65, **{k: getattr(tc, k) for k in train.MODEL_KEYS}))
    optimizer = model.configure_optimizers(tc.weight_decay, tc.learning_rate, (tc.beta1, tc.beta2))
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, 65, size=(tc.batch_size, tc.block_size)) for _ in range(2))

    def step():
        _, loss = model(x, y, return_logits=False)
        loss.backward()
        clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()

    step()                                       # the optimizer state exists from here on
    optimizer.zero_grad()
    root = str(REPO) + os.sep
    seen: dict[str, set[str]] = {}

    def profile(frame, event, arg):
        if event == "call":
            f = frame.f_code.co_filename
            rel = f[len(root):] if f.startswith(root) else ""
            if rel.split(os.sep)[0] in LIBRARY:        # not a venv that lives in the checkout
                code = frame.f_code
                seen.setdefault(rel, set()).add(getattr(code, "co_qualname", code.co_name))
    sys.setprofile(profile)
    try:
        step()
    finally:
        sys.setprofile(None)
    return seen


def project_files() -> list[Path]:
    """Every Python file of the library and its two scripts (not tests, benchmarks or setup.py)."""
    files = []
    for name in LIBRARY + ("sample.py",):
        p = REPO / name
        files += [p] if p.is_file() else sorted(q for q in p.rglob("*.py") if "__pycache__" not in q.parts)
    return files


def measure() -> dict:
    step = traced_step()
    path, project = teaching_path(), project_files()
    return {"step_files": sorted(step), "step_functions": sum(len(v) for v in step.values()),
            "step_code_lines": sum(code_lines(REPO / f) for f in step),
            "teaching_path_code_lines": sum(code_lines(p) for p in path),
            "teaching_path_files": len(path),
            "project_code_lines": sum(code_lines(p) for p in project),
            "project_lines": sum(len(p.read_text(encoding="utf-8").splitlines()) for p in project),
            "train_py_lines": len((REPO / "train.py").read_text().splitlines())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    r = measure()
    print(f"one readable training step runs {r['step_functions']} functions in {len(r['step_files'])} "
          f"library files ({r['step_code_lines']:,} lines of code):")
    for f in r["step_files"]:
        print(f"  {f}")
    print(f"teaching path (minigrad/ without training/, models/gpt.py, train.py): "
          f"{r['teaching_path_code_lines']:,} lines of code in {r['teaching_path_files']} files; "
          f"train.py {r['train_py_lines']} lines")
    print(f"the whole library ({', '.join(LIBRARY)}, sample.py): {r['project_code_lines']:,} lines of "
          f"code, {r['project_lines']:,} with comments, docstrings and blank lines")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
