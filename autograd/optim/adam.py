"""Adam (L2 penalty added to the gradient) and AdamW (decoupled weight decay)."""
from __future__ import annotations

from typing import Any

from .optimizer import KERNEL_ONLY_UPDATES, Optimizer, ParamsT, fused

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

    # The update (one fused kernel call per group) runs in the optimizers' compiled twin,
    # autograd/optim/_fused.py: bound here, a compiled step calls it without a Python frame.
    _update = fused.adam_update

KERNEL_ONLY_UPDATES.add(Adam._update)  # it calls the update kernel alone

class AdamW(Adam):
    """AdamW as ``torch.optim.AdamW``: Adam whose weight decay is decoupled from the gradient,
    p *= 1 - lr * weight_decay before the Adam update (default weight_decay 1e-2)."""

    _decoupled = True

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
