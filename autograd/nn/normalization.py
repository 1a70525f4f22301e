"""``BatchNorm1d``, composed from differentiable ops so its gradients are exact."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..capture import live
from ..grad_mode import no_grad
from ..tensor import DEFAULT_DTYPE, Tensor
from . import init as I
from .module import Module, Parameter

__all__ = ["BatchNorm1d"]


class BatchNorm1d(Module):
    """Batch normalisation over (N, C) or (N, C, L) inputs, as ``torch.nn.BatchNorm1d``.

    Training: normalise with the batch mean and the biased batch variance, then update
    running_mean and running_var (the latter with the unbiased variance) by
    ``running = (1 - momentum) * running + momentum * batch`` (``momentum=None``: a cumulative
    average). Eval: normalise with the running statistics. ``affine`` adds a learned per-channel
    scale ``weight`` (ones) and shift ``bias`` (zeros). Running statistics are buffers, so
    they are in ``state_dict`` with ``num_batches_tracked``, under PyTorch's names.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype: Any = None):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"BatchNorm1d: num_features must be positive, got {num_features}")
        if eps <= 0:
            raise ValueError(f"BatchNorm1d: eps must be positive, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1] or None, got {momentum}")
        dtype = DEFAULT_DTYPE if dtype is None else np.dtype(dtype)
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            I.zeros_(self.running_mean)
            I.ones_(self.running_var)
            self.num_batches_tracked._update_(0)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` per channel (axis 1)."""
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d: expected input of shape (N, {self.num_features}) "
                             f"or (N, {self.num_features}, L), got {x.shape}")
        axes = (0,) if x.ndim == 2 else (0, 2)
        # Per-channel vectors broadcast against (N, C) directly, against (N, C, L) as (C, 1).
        shape = (self.num_features,) if x.ndim == 2 else (self.num_features, 1)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            n = x.size // self.num_features
            if n <= 1 and self.training:
                raise ValueError(f"BatchNorm1d: expected more than 1 value per channel when "
                                 f"training, got input of shape {x.shape}")
            mean = F.mean(x, axis=axes, keepdims=True)
            centred = x - mean
            var = F.mean(centred * centred, axis=axes, keepdims=True)  # biased, as PyTorch
            xhat = centred / F.sqrt(var + self.eps)
            if self.training and self.track_running_stats:
                self._update_running(mean._data.reshape(-1), var._data.reshape(-1), n)
        else:
            rm = Tensor._wrap(self.running_mean._data.reshape(shape))
            rv = Tensor._wrap(self.running_var._data.reshape(shape))
            xhat = (x - rm) / F.sqrt(rv + self.eps)
        if self.affine:
            xhat = xhat * F.reshape(self.weight, shape) + F.reshape(self.bias, shape)
        return xhat

    @live  # autograd.compile: updated in place at every replay
    def _update_running(self, mean: np.ndarray, var: np.ndarray, n: int) -> None:
        """running = (1 - m) running + m batch, with the unbiased variance (n / (n - 1))."""
        with no_grad():
            self.num_batches_tracked._update_(self.num_batches_tracked._data + 1)
            m = (1.0 / float(self.num_batches_tracked._data) if self.momentum is None
                 else self.momentum)
            rm, rv = self.running_mean, self.running_var
            unbiased = var * (n / (n - 1))
            rm._update_((1 - m) * rm._data + m * mean.astype(rm.dtype))
            rv._update_((1 - m) * rv._data + m * unbiased.astype(rv.dtype))

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
