"""An installed minigrad claims no generic top-level import name.

The repository keeps kernels/, models/ and tokenizer/ as top-level folders, but other packages
use those names too (transformers 5 imports a package called `kernels`). So setup.py installs them
inside minigrad (minigrad.kernels, ...), and nothing imports the bare names. Checked twice:
- the wheel setup.py builds holds only `minigrad/` (and its metadata);
- stand-in `kernels`, `models` and `tokenizer` packages earlier on sys.path stay what those names
  import, while minigrad trains a GPT step on its Triton kernels and its tokenizer encodes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("kernels", "models", "tokenizer", "fast")


def test_the_wheel_installs_only_the_minigrad_package(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for part in ("minigrad",) + PARTS:
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "setup.py", src / "setup.py")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("minigrad-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"minigrad", next(t for t in tops if t.endswith(".dist-info"))}, sorted(tops)
    info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(info).decode().split() == ["minigrad"]
    # every folder arrived under its minigrad name
    for part in PARTS:
        assert f"minigrad/{part}/__init__.py" in names, part
    assert "minigrad/kernels/matmul.py" in names and "minigrad/models/gpt.py" in names


def test_stand_in_packages_with_generic_names_stay_importable_beside_minigrad(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    for part in PARTS:                      # what another installed package of that name might be
        (tmp_path / part).mkdir()
        (tmp_path / part / "__init__.py").write_text(f"STAND_IN = {part!r}\n")
    code = textwrap.dedent("""
        import sys
        PARTS = ("kernels", "models", "tokenizer", "fast")
        import kernels, models, tokenizer, fast
        import numpy as np
        import minigrad
        from minigrad.models import GPT, GPTConfig
        from minigrad.tokenizer import BPETokenizer

        # a training step on the Triton backend (the interpreter here): minigrad.kernels is used
        model = GPT(GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16), device="cuda")
        x = np.arange(16).reshape(2, 8) % 32
        _, loss = model(x, x)
        loss.backward()
        assert "minigrad.kernels.matmul" in sys.modules
        tok = BPETokenizer.train(["hello hello world " * 20], vocab_size=260, verbose=False)
        assert tok.decode(tok.encode("hello world")) == "hello world"
        from minigrad import fast as fast_layer
        fast_layer.accelerate(model)
        _, loss = model(x, x, return_logits=False)
        import kernels as k2, models as m2, tokenizer as t2, fast as f2
        assert (k2.STAND_IN, m2.STAND_IN, t2.STAND_IN, f2.STAND_IN) == PARTS
        for name in PARTS:
            assert sys.modules[name].__file__.startswith(sys.argv[1]), sys.modules[name].__file__
        print("ok", float(loss.item()))
    """)
    env = dict(os.environ, TRITON_INTERPRET="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.startswith("ok")
