"""A byte-level BPE tokenizer: fast training, tiktoken-exact encoding, GPT-2/tiktoken file interchange.

Pure Python + `regex`; it imports nothing from minigrad.

To learn how BPE works, read `reference.py` first (``minigrad.tokenizer.reference``): minbpe's
`get_stats`, `merge` and `encode_chunk` and a naive trainer, `train_naive`, in under 200
commented lines with no caches. The fast path is tested to give exactly its merges and ids;
docs/tokenizer.md walks through both and maps each speed-up to its file:

    reference.py   the readable algorithm (start here)
    train.py       fast training: incremental pair counts over de-duplicated chunks (count.py)
    merge.py       the encoder's merge rule, `encode_chunk` (tiktoken's form of it)
    bpe.py         BPETokenizer: special tokens, the chunk cache, the public API
    stream.py, patterns.py, io.py   streaming, split patterns, file formats

To use it::

    from minigrad.tokenizer import BPETokenizer
    tok = BPETokenizer.train([Path("books/")], vocab_size=8192, special_tokens=["<|endoftext|>"])
    ids = tok.encode("hello world"); tok.decode(ids)

See the README ("Tokenizer") for the API, the CLI (``python -m minigrad.tokenizer --help``) and file formats.
"""
from . import reference  # the readable algorithm: minigrad.tokenizer.reference.get_stats, ...
from .bpe import BPETokenizer
from .io import ModelFileError
from .patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, SplitPatternError

__all__ = ["BPETokenizer", "ModelFileError", "SplitPatternError", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN",
           "reference"]
