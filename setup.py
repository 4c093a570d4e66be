"""Packaging for minigrad: the engine, its kernels, the GPT and the tokenizer.

The core install needs only numpy and regex (the NumPy backend and the tokenizer).
`pip install -e .[gpu]` adds torch (GPU storage) and triton (the kernels);
`pip install -e .[test]` adds what the test suite needs (torch is the oracle there).
"""
from setuptools import setup, find_packages

setup(
    name="minigrad",
    version="0.1.0",
    description="A tensor and autograd engine from scratch: NumPy reference backend, Triton GPU "
                "kernels, a hand-written GPT and a byte-level BPE tokenizer.",
    python_requires=">=3.10",
    packages=find_packages(include=["minigrad", "minigrad.*", "kernels", "kernels.*",
                                    "models", "models.*", "tokenizer", "tokenizer.*"]),
    py_modules=["train", "sample"],
    install_requires=["numpy>=1.24", "regex>=2023.0"],
    extras_require={
        "gpu": ["torch>=2.4", "triton>=3.0"],
        # torch is pinned so that a machine without a GPU gets the small CPU build.
        "test": ["pytest>=7", "hypothesis>=6", "torch==2.13.0", "triton>=3.0", "tiktoken>=0.7",
                 "safetensors>=0.4", "tokenizers>=0.15", "matplotlib>=3.7"],
    },
)
