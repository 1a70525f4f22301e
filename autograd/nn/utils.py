"""Gradient utilities: ``clip_grad_norm_`` and ``clip_grad_value_``."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..capture import live
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _with_grads(parameters: Iterable[Tensor] | Tensor) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


@live  # autograd.compile: clips at every replay
def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so their joint ``norm_type``-norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the norm is taken over all gradients as if they were
    one vector (``norm_type=inf`` for the max-abs norm), gradients are multiplied by
    ``min(1, max_norm / (total + 1e-6))``, and the total norm *before* clipping is returned as
    a 0-d float64 tensor.
    """
    norm_type = float(norm_type)
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be non-negative, got {max_norm}")
    params = _with_grads(parameters)
    if not params:
        return Tensor._wrap(np.array(0.0))
    grads = [p.grad._data for p in params]
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        # Per-tensor norms in float64, then the norm of those norms (what PyTorch does).
        norms = [float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads]
        total = float(sum(norms)) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} is {total}; "
                           f"pass error_if_nonfinite=False to clip anyway")
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for p in params:
            g = p.grad._data
            p.grad._update_(array=g * g.dtype.type(coef))
    return Tensor._wrap(np.array(total))


@live  # autograd.compile: clips at every replay
def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value]."""
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be non-negative, got {clip_value}")
    for p in _with_grads(parameters):
        p.grad._update_(array=np.clip(p.grad._data, -clip_value, clip_value))
