"""models: what is built on minigrad — the GPT (models/gpt.py), generation (models/generate.py),
next-token sampling (models/sampling.py), the MFU estimate (models/mfu.py) and Hugging Face GPT-2
export/import (models/hf_export.py)."""
from .generate import KVCache
from .gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "KVCache"]
