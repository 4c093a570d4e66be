"""A byte-level BPE tokenizer: fast training, tiktoken-exact encoding, GPT-2/tiktoken file interchange.

Pure Python + `regex`; it imports nothing from minigrad. Start with::

    from minigrad.tokenizer import BPETokenizer
    tok = BPETokenizer.train([Path("books/")], vocab_size=8192, special_tokens=["<|endoftext|>"])
    ids = tok.encode("hello world"); tok.decode(ids)

See the README ("Tokenizer") for the API, the CLI (``python -m minigrad.tokenizer --help``) and file formats.
"""
from .bpe import BPETokenizer
from .io import ModelFileError
from .patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, SplitPatternError

__all__ = ["BPETokenizer", "ModelFileError", "SplitPatternError", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN"]
