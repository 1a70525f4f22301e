"""Layers: ``Linear``, the activations, ``Dropout``, ``Flatten`` and ``Identity``.

Every forward calls the validated functions of :mod:`autograd.functional`, so shapes are
checked and errors name the layer's op; ``Linear`` runs the fused linear kernel.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import functional as F
from ..capture import live
from ..creation import default_generator
from ..tensor import DEFAULT_DTYPE, Tensor, _check_dtype
from . import init as I
from .module import Module, Parameter

__all__ = ["Linear", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "GELU", "Softmax", "LogSoftmax",
           "Dropout", "Flatten", "Identity"]

_NAMED_INITS = ("he", "xavier", "normal", "zeros")


class Linear(Module):
    """y = x @ weight.T + bias, weight of shape (out_features, in_features) as in PyTorch.

    ``init`` picks the weight initialisation:

    * None (default): PyTorch's - weight kaiming_uniform_(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)),
      and bias U(+-1/sqrt(fan_in));
    * ``"he"``: kaiming_normal_ for ReLU (std sqrt(2 / fan_in)), bias zero;
    * ``"xavier"``: xavier_uniform_ (Glorot), bias zero;
    * ``"normal"``: N(0, 0.01^2), bias zero;
    * ``"zeros"``: weight and bias zero (every hidden unit then stays identical in training);
    * a callable: called on the weight tensor (in place), bias zero.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str | Callable[[Tensor], Any] | None = None, dtype: Any = None,
                 generator: np.random.Generator | None = None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: features must be positive, got in_features="
                             f"{in_features}, out_features={out_features}")
        if init is not None and not callable(init) and init not in _NAMED_INITS:
            raise ValueError(f"Linear: unknown init {init!r}; expected None, one of "
                             f"{_NAMED_INITS} or a callable")
        dtype = DEFAULT_DTYPE if dtype is None else np.dtype(dtype)
        _check_dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Linear: dtype must be float32 or float64, got {dtype}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.init = init
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty((out_features,), dtype=dtype)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """Re-draw the weights with this layer's ``init``."""
        w, b, init = self.weight, self.bias, self.init
        if init is None:
            I.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
            if b is not None:
                bound = 1 / math.sqrt(self.in_features)
                I.uniform_(b, -bound, bound, generator)
            return
        if init == "he":
            I.kaiming_normal_(w, nonlinearity="relu", generator=generator)
        elif init == "xavier":
            I.xavier_uniform_(w, generator=generator)
        elif init == "normal":
            I.normal_(w, 0.0, 0.01, generator)
        elif init == "zeros":
            I.zeros_(w)
        else:
            init(w)
        if b is not None:
            I.zeros_(b)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> (..., out_features)."""
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class ReLU(Module):
    """max(x, 0) elementwise.

    ``inplace`` is accepted for PyTorch's signature (``nn.ReLU(True)``); the result is the
    same, computed into a new array.
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        """Apply relu."""
        return F.relu(x)


class Sigmoid(Module):
    """1 / (1 + e^-x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply sigmoid."""
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply tanh."""
        return F.tanh(x)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.inplace = bool(inplace)  # PyTorch's signature; computed into a new array

    def forward(self, x: Tensor) -> Tensor:
        """Apply leaky relu."""
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class GELU(Module):
    """GELU: exact (erf) form by default, or ``approximate='tanh'``, as ``torch.nn.GELU``."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        """Apply gelu."""
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """Softmax along ``dim`` (the last axis by default)."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = int(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply softmax along ``dim``."""
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along ``dim``, computed stably."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = int(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply log_softmax along ``dim``."""
        return F.log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by 1 / (1 - p); in eval mode, the identity.

    The mask comes from ``generator`` if given, else from autograd's default generator (seed it
    with :func:`autograd.manual_seed` for a reproducible mask).
    """

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        """x times a random keep-mask scaled by 1 / (1 - p) (training), else x."""
        if not self.training or self.p == 0.0:
            return x
        if x.dtype.kind != "f":
            raise TypeError(f"Dropout: needs a floating input, got {x.dtype}")
        return x * Tensor._wrap(self._mask(x.shape, x.dtype))

    @live  # autograd.compile draws a fresh mask at every replay
    def _mask(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A keep-mask scaled by 1 / (1 - p), drawn from the generator."""
        gen = self.generator if self.generator is not None else default_generator()
        keep = gen.random(shape) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        return (keep * scale).astype(dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Merge the axes ``start_dim`` .. ``end_dim`` into one (by default all but the batch axis).
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        """x with the axes start_dim..end_dim merged."""
        n = max(x.ndim, 1)
        s, e = self.start_dim % n, self.end_dim % n
        if not (-n <= self.start_dim < n and -n <= self.end_dim < n) or s > e:
            raise ValueError(f"Flatten: start_dim {self.start_dim} and end_dim {self.end_dim} "
                             f"do not fit an input of shape {x.shape}")
        if x.ndim == 0:
            return F.reshape(x, (1,))
        # An explicit size (not -1) so that empty batches flatten too.
        return F.reshape(x, x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def forward(self, x: Tensor) -> Tensor:
        """x."""
        return x
