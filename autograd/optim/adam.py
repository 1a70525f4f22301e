"""Adam (L2 penalty added to the gradient) and AdamW (decoupled weight decay)."""
from __future__ import annotations

from typing import Any

import numpy as np

# The thread's kernel provider, read as grad_mode.state.k: what backend.k returns, without the
# module property's call (the update kernel runs every step).
from ..grad_mode import state as _state
from ..tensor import Tensor
from .optimizer import KERNEL_ONLY_UPDATES, Optimizer, ParamsT

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam``: g = grad + weight_decay * p;
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    Each group is updated by one call of the fused ``adam_step`` kernel. State per parameter:
    ``step`` (int), ``exp_avg`` and ``exp_avg_sq`` (arrays like the parameter).
    """

    _decoupled = False

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        name = type(self).__name__
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair, got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {i}: {b!r} "
                                 f"(must be in [0, 1))")
        if not group["eps"] >= 0:
            raise ValueError(f"{name}: invalid epsilon {group['eps']!r} (must be >= 0)")

    def _update(self, group: dict[str, Any], params: list[Tensor], arrays: list[np.ndarray],
                grads: list[np.ndarray]) -> None:
        # The kernel takes one step count for bias correction. Parameters of a group share it
        # unless some had no gradient on an earlier step: then one call per distinct count.
        # One loop gathers the arrays per count (this runs every step of a small network).
        by_step: dict[int, tuple[list, list, list, list]] = {}
        states = self.state
        for i, p in enumerate(params):
            a = arrays[i]
            st = states.get(p)
            if st is None or "exp_avg" not in st:
                st = states[p] = {"step": 0, "exp_avg": np.zeros_like(a),
                                  "exp_avg_sq": np.zeros_like(a)}
            step = st["step"] = st["step"] + 1
            lists = by_step.get(step)
            if lists is None:
                lists = by_step[step] = ([], [], [], [])
            lists[0].append(a)
            lists[1].append(grads[i])
            lists[2].append(st["exp_avg"])
            lists[3].append(st["exp_avg_sq"])
        b1, b2 = group["betas"]
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        for step, (arrays, grads, exp_avgs, exp_avg_sqs) in by_step.items():
            _state.k.adam_step(arrays, grads, exp_avgs, exp_avg_sqs, step, lr, float(b1),
                                float(b2), eps, wd, self._decoupled)


KERNEL_ONLY_UPDATES.add(Adam._update)  # it calls the update kernel alone

class AdamW(Adam):
    """AdamW as ``torch.optim.AdamW``: Adam whose weight decay is decoupled from the gradient,
    p *= 1 - lr * weight_decay before the Adam update (default weight_decay 1e-2)."""

    _decoupled = True

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
