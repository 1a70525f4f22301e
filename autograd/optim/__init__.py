"""``autograd.optim``: optimizers (SGD, Adam, AdamW) over parameter groups, each group updated
by one fused kernel call, and learning-rate schedulers."""
from __future__ import annotations

from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, ExponentialLR, LRScheduler, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "LRScheduler", "StepLR",
           "ExponentialLR", "CosineAnnealingLR"]
