"""Helpers for the tests that check our files against the real Hugging Face `transformers`.

`transformers()` imports it with the checkout taken off sys.path for the moment of the import:
transformers 5 imports the PyPI package called `kernels`, and pytest.ini puts the repository root
on sys.path, where the folder kernels/ (which minigrad itself imports as minigrad.kernels) would
stand in its place. Once imported, `kernels` in sys.modules is the real package and minigrad is
unaffected (tests/test_install_names.py checks the installed layout).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def transformers():
    """The `transformers` module, with GPT2LMHeadModel, GPT2Config and AutoTokenizer imported
    (the tests use them on local files only: nothing is downloaded)."""
    def is_repo(entry: str) -> bool:
        try:
            return Path(entry or ".").resolve() == REPO
        except OSError:
            return False

    os.environ.setdefault("HF_HUB_OFFLINE", "1")            # local files only, never the network
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    saved = list(sys.path)
    shadow = sys.modules.get("kernels")
    if shadow is not None and Path(getattr(shadow, "__file__", None) or "/").parent == REPO / "kernels":
        del sys.modules["kernels"]                  # the checkout's folder, imported by its bare name
    sys.path[:] = [p for p in sys.path if not is_repo(p)]
    try:
        import transformers as tf
        from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel  # noqa: F401
        tf.logging.set_verbosity_error()
        tf.utils.logging.disable_progress_bar()
        return tf
    finally:
        sys.path[:] = saved


def save_hf_gpt2_tokenizer(gpt2_dir: Path, path: Path):
    """GPT-2's tokenizer (vocab.json + merges.txt in `gpt2_dir`) saved as a tokenizer.json the way
    Hugging Face's `tokenizers` library writes it (byte-level with GPT-2's regex, <|endoftext|>
    added). Returns the `tokenizers.Tokenizer`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    tok = Tokenizer(models.BPE.from_file(str(gpt2_dir / "vocab.json"), str(gpt2_dir / "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(path))
    return tok
