"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

from typing import Any

import numpy as np

# The thread's kernel provider, read as grad_mode.state.k: what backend.k returns, without the
# module property's call (the update kernel runs every step).
from ..grad_mode import state as _state
from ..tensor import Tensor
from .optimizer import KERNEL_ONLY_UPDATES, Optimizer, ParamsT

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

    def _update(self, group: dict[str, Any], params: list[Tensor], arrays: list[np.ndarray],
                grads: list[np.ndarray]) -> None:
        mu = float(group["momentum"])
        if mu == 0:  # plain SGD: the kernel's positional signature, no keyword dict per step
            _state.k.sgd_step(arrays, grads, None, float(group["lr"]), 0.0,
                               float(group["dampening"]), bool(group["nesterov"]),
                               float(group["weight_decay"]))
            return
        hyper = dict(lr=float(group["lr"]), momentum=mu, dampening=float(group["dampening"]),
                     nesterov=bool(group["nesterov"]),
                     weight_decay=float(group["weight_decay"]))
        # The kernel's first_step flag covers a whole call. Parameters get their buffer on
        # their first step with a gradient, so normally a group is all-new or all-old (one
        # call); only a group where some parameters had no gradient before needs two.
        state = self.state
        bufs = []
        fresh = []
        for i, p in enumerate(params):
            buf = state.get(p, {}).get("momentum_buffer")
            if buf is None:
                fresh.append(i)
            bufs.append(buf)
        if not fresh:
            _state.k.sgd_step(arrays, grads, bufs, first_step=False, **hyper)
            return
        for i in fresh:
            bufs[i] = state.setdefault(params[i], {})["momentum_buffer"] = \
                np.zeros_like(arrays[i])
        new = set(fresh)
        old = [i for i in range(len(params)) if i not in new]
        for subset, first in ((fresh, True), (old, False)):
            if subset:
                _state.k.sgd_step([arrays[i] for i in subset], [grads[i] for i in subset],
                                   [bufs[i] for i in subset], first_step=first, **hyper)

KERNEL_ONLY_UPDATES.add(SGD._update)  # it calls the update kernel alone
