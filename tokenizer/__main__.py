"""Entry point for ``python -m minigrad.tokenizer``; see `cli.py`."""
import sys

from .cli import main

sys.exit(main())
