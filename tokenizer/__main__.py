"""Entry point for ``python -m tokenizer``; see `cli.py`."""
import sys

from .cli import main

sys.exit(main())
