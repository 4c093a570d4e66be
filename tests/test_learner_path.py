"""The readable training step stays small enough to read: at most 12 library files (issue 17's
target; it was 23), none of them the performance layer's, and the step's files are the ones the
README's reading order names (benchmarks/learner_path.py measures it)."""
from __future__ import annotations

from pathlib import Path

from benchmarks import learner_path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_one_readable_step_touches_at_most_12_library_files():
    step = learner_path.traced_step()
    assert 0 < len(step) <= 12, sorted(step)
    assert not any(f.startswith("fast") for f in step)
    assert "models/gpt.py" in step and "minigrad/autograd.py" in step
    for folder in {f.split("/")[0] + "/" for f in step} - {"models/"}:
        assert folder in ("minigrad/",), folder           # the engine and the model, nothing else
    for f in ("minigrad/tensor.py", "minigrad/ops.py", "minigrad/optim/adamw.py", "models/gpt.py"):
        assert f in step and f in README                  # the reading order names what runs


def test_code_lines_counts_only_code(tmp_path):
    src = '"""doc\nstring"""\n# a comment\n\ndef f(x):\n    """doc"""\n    return x  # trailing\n'
    path = tmp_path / "sample.py"
    path.write_text(src)
    assert learner_path.code_lines(path) == 2               # `def f(x):` and `return x`


def test_the_whole_library_count_takes_the_library_and_its_scripts_only():
    files = {str(p.relative_to(learner_path.REPO)) for p in learner_path.project_files()}
    for f in ("train.py", "sample.py", "kernels/matmul.py", "fast/modules.py", "tokenizer/bpe.py",
              "minigrad/training/checkpoint.py", "models/gpt.py"):
        assert f in files, f
    assert not any(f.startswith(("tests/", "benchmarks/", ".venv")) or f == "setup.py" for f in files)
    assert set(learner_path.teaching_path()) <= set(learner_path.project_files())
