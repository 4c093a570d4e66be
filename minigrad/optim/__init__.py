"""minigrad.optim: optimizers (SGD, AdamW) and learning-rate schedules."""
from . import lr_scheduler  # noqa: F401
from .adamw import AdamW
from .lr_scheduler import LambdaLR, WarmupCosine, cosine_with_warmup
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "AdamW", "lr_scheduler", "LambdaLR", "WarmupCosine",
           "cosine_with_warmup"]
