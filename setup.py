"""Packaging for minigrad: the engine, its kernels, the GPT and the tokenizer.

The core install needs only numpy and regex (the NumPy backend and the tokenizer).

Import names: the repository keeps kernels/, models/ and tokenizer/ beside minigrad/ (one folder
per idea), but installs them *inside* it, as minigrad.kernels, minigrad.models and
minigrad.tokenizer, so an installed minigrad claims no generic top-level name (other packages are
called `kernels` or `models` too: transformers imports one named `kernels`). train.py and
sample.py are the checkout's scripts, not installed modules. In a checkout without an install,
minigrad/__init__.py finds the same folders under the same names.

`pip install -e .[train]` adds matplotlib (train.py's loss.png): all CPU training needs;
`pip install -e .[gpu]` adds torch (GPU storage) and triton (the kernels);
`pip install -e .[test]` adds what the test suite needs (torch is the oracle there).
"""
from setuptools import setup, find_packages

# top-level folders of the repository installed as subpackages of minigrad (see above)
PARTS = ("kernels", "models", "tokenizer", "fast")

setup(
    name="minigrad",
    version="0.1.0",
    description="A tensor and autograd engine from scratch: NumPy reference backend, Triton GPU "
                "kernels, a hand-written GPT and a byte-level BPE tokenizer.",
    python_requires=">=3.10",
    packages=find_packages(include=["minigrad", "minigrad.*"])
    + [f"minigrad.{part}" for part in PARTS],
    package_dir={f"minigrad.{part}": part for part in PARTS},
    install_requires=["numpy>=1.24", "regex>=2023.0"],
    extras_require={
        "train": ["matplotlib>=3.7"],
        "gpu": ["torch>=2.4", "triton>=3.0"],
        # torch is pinned so that a machine without a GPU gets the small CPU build. transformers
        # (the oracle of the Hugging Face export tests) below 5: version 5 requires the PyPI
        # package named `kernels`, whose setuptools plugin a checkout's kernels/ folder shadows
        # (building this package without build isolation then fails); tests/hf_testing.py
        # imports either version.
        "test": ["pytest>=7", "hypothesis>=6", "torch==2.13.0", "triton>=3.0", "tiktoken>=0.7",
                 "safetensors>=0.4", "tokenizers>=0.15", "matplotlib>=3.7", "transformers>=4.40,<5"],
    },
)
