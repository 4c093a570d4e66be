"""models: what is built on minigrad — the GPT (models/gpt.py), next-token sampling
(models/sampling.py) and Hugging Face GPT-2 export/import (models/hf_export.py)."""
from .gpt import GPT, GPTConfig, KVCache

__all__ = ["GPT", "GPTConfig", "KVCache"]
