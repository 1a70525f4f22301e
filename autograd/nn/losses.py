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


def _weight_buffer(module: Module, name: str, value: Any) -> None:
    """Class or element weights as a buffer (in ``state_dict``, as PyTorch), or None."""
    module.register_buffer(name, value if value is None or isinstance(value, Tensor)
                           else Tensor(value))


def _weight_first(reduction: Any, weight: Any) -> tuple[str, Any]:
    """PyTorch's losses take ``weight`` first; autograd's took ``reduction`` first (and still
    do): a first argument that is not a string is the weight."""
    if isinstance(reduction, str):
        return reduction, weight
    if weight is not None:
        raise TypeError("loss: weight given twice (first argument and weight=)")
    return "mean", reduction


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (log clamped at -100, as PyTorch);
    ``weight`` rescales each element's loss."""

    def __init__(self, reduction: Any = "mean", *, weight: Any = None):
        reduction, weight = _weight_first(reduction, weight)
        super().__init__(reduction)
        _weight_buffer(self, "weight", weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        """The reduced binary cross-entropy."""
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of sigmoid(input), computed stably from logits; ``weight`` rescales
    each element's loss, ``pos_weight`` (one per class) the positive term."""

    def __init__(self, reduction: Any = "mean", *, weight: Any = None, pos_weight: Any = None):
        reduction, weight = _weight_first(reduction, weight)
        super().__init__(reduction)
        _weight_buffer(self, "weight", weight)
        _weight_buffer(self, "pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        """The reduced binary cross-entropy from logits."""
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits (N, C) or (N, C, d1, ...) and class-index or
    class-probability targets, with PyTorch's ``weight``, ``ignore_index`` and
    ``label_smoothing``."""

    def __init__(self, reduction: Any = "mean", *, weight: Any = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0):
        reduction, weight = _weight_first(reduction, weight)
        super().__init__(reduction)
        _weight_buffer(self, "weight", weight)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        """The reduced cross-entropy."""
        return F.cross_entropy(input, target, weight=self.weight, reduction=self.reduction,
                               ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)
