"""Loss modules: thin wrappers over the functional losses, each with a ``reduction``."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..tensor import Tensor
from .module import Module

__all__ = ["MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    """A loss with a ``reduction``: 'mean' (default), 'sum' or 'none'."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, "
                             f"got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error (input - target)^2; a target shape that would broadcast warns."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        """The reduced squared error."""
        return F.mse_loss(input, target, self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (log clamped at -100, as PyTorch)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        """The reduced binary cross-entropy."""
        return F.binary_cross_entropy(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of sigmoid(input), computed stably from logits."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        """The reduced binary cross-entropy from logits."""
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits (N, C) and integer class targets (N,)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        """The reduced cross-entropy."""
        return F.cross_entropy(input, target, self.reduction)
