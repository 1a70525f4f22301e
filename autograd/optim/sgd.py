"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

from typing import Any

from .optimizer import KERNEL_ONLY_UPDATES, Optimizer, ParamsT, fused

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD as ``torch.optim.SGD``: g = grad + weight_decay * p; with momentum
    buf = g (first step) else momentum * buf + (1 - dampening) * g, and g = buf, or
    g + momentum * buf with ``nesterov``; then p -= lr * g.

    Each group is updated by one call of the fused ``sgd_step`` kernel.
    """

    def __init__(self, params: ParamsT, lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if not group["momentum"] >= 0:
            raise ValueError(f"SGD: invalid momentum {group['momentum']!r} (must be >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening 0")

    # The update (one fused kernel call per group) runs in the optimizers' compiled twin,
    # autograd/optim/_fused.py: bound here, a compiled step calls it without a Python frame.
    _update = fused.sgd_update

KERNEL_ONLY_UPDATES.add(SGD._update)  # it calls the update kernel alone
