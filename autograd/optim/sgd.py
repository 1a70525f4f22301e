"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT

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

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        mu = float(group["momentum"])
        if mu == 0:  # plain SGD: the kernel's positional signature, no keyword dict per step
            arrays, grads = [], []
            for p in params:  # one loop, no comprehensions (function calls in CPython 3.11)
                arrays.append(p._data)
                grads.append(p.grad._data)
            backend.k.sgd_step(arrays, grads, None, float(group["lr"]), 0.0,
                               float(group["dampening"]), bool(group["nesterov"]),
                               float(group["weight_decay"]))
            return
        hyper = dict(lr=float(group["lr"]), momentum=mu, dampening=float(group["dampening"]),
                     nesterov=bool(group["nesterov"]),
                     weight_decay=float(group["weight_decay"]))
        # The kernel's first_step flag covers a whole call. Parameters get their buffer on
        # their first step with a gradient, so normally a group is all-new or all-old (one
        # call); only a group where some parameters had no gradient before needs two.
        fresh = [p for p in params if self.state.get(p, {}).get("momentum_buffer") is None]
        old = [p for p in params if self.state.get(p, {}).get("momentum_buffer") is not None]
        for p in fresh:
            self.state.setdefault(p, {})["momentum_buffer"] = np.zeros_like(p._data)
        for subset, first in ((fresh, True), (old, False)):
            if subset:
                backend.k.sgd_step([p._data for p in subset], [p.grad._data for p in subset],
                                   [self.state[p]["momentum_buffer"] for p in subset],
                                   first_step=first, **hyper)
