"""Keras layers as thin wrappers around :mod:`autograd.nn` modules.

A layer is built once its input width is known (from ``input_dim`` / ``input_shape``, the layer
before it, or the first batch): ``Dense`` then owns an ``nn.Linear`` (plus an activation
module), ``Activation`` an activation module and ``Dropout`` an ``nn.Dropout``. Weights are shown
in Keras's layout: a Dense kernel is (inputs, units), the transpose of ``nn.Linear.weight``.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np

from .. import nn
from ..creation import default_generator
from ..tensor import Tensor

__all__ = ["ACTIVATIONS", "INITIALIZERS", "Activation", "Dense", "Dropout", "Layer"]

# Keras's activation names -> the nn module that computes them ("linear" is the identity).
# "gelu" is the exact erf form, Keras's default (approximate=False), as nn.GELU's.
ACTIVATIONS: dict[str, type] = {"linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid,
                                "tanh": nn.Tanh, "softmax": nn.Softmax, "gelu": nn.GELU}

_names: Counter = Counter()


def _auto_name(cls: type) -> str:
    """Keras's naming: "dense", "dense_1", ... counted per class for the whole session."""
    base = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    n = _names[base]
    _names[base] += 1
    return base if n == 0 else f"{base}_{n}"


def _activation(name: Any) -> str:
    name = "linear" if name is None else name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; supported: {sorted(ACTIVATIONS)}")
    return name


# ------------------------------------------------------------------------ initializers
def _truncated_normal(shape: tuple, std: float, g: np.random.Generator) -> np.ndarray:
    """N(0, std^2) redrawn beyond two standard deviations, as Keras's TruncatedNormal."""
    out = g.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = g.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * std


_TRUNC = 0.87962566103423978  # std of a unit normal truncated at +-2 (Keras's correction)

INITIALIZERS = {
    "glorot_uniform": lambda s, g: g.uniform(-1, 1, s) * math.sqrt(6 / (s[0] + s[1])),
    "glorot_normal": lambda s, g: _truncated_normal(s, math.sqrt(2 / (s[0] + s[1])) / _TRUNC, g),
    "he_uniform": lambda s, g: g.uniform(-1, 1, s) * math.sqrt(6 / s[0]),
    "he_normal": lambda s, g: _truncated_normal(s, math.sqrt(2 / s[0]) / _TRUNC, g),
    "random_normal": lambda s, g: g.normal(0.0, 0.05, s),
    "random_uniform": lambda s, g: g.uniform(-0.05, 0.05, s),
    "zeros": lambda s, g: np.zeros(s),
    "ones": lambda s, g: np.ones(s),
}
# Keras's JSON names its initializers by class; map them to the string names.
_INIT_CLASSES = {"GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal",
                 "HeUniform": "he_uniform", "HeNormal": "he_normal",
                 "RandomNormal": "random_normal", "RandomUniform": "random_uniform",
                 "Zeros": "zeros", "Ones": "ones"}


def _initializer(spec: Any) -> str:
    if isinstance(spec, dict):
        spec = _INIT_CLASSES.get(spec.get("class_name"), spec.get("class_name"))
    if spec not in INITIALIZERS:
        raise ValueError(f"unknown kernel_initializer {spec!r}; supported: "
                         f"{sorted(INITIALIZERS)}")
    return spec


# ------------------------------------------------------------------------------ layers
class Layer:
    """Base of the Keras layers: a name, a build step, and the nn modules it owns."""

    def __init__(self, name: str | None = None, input_dim: int | None = None,
                 input_shape: tuple | None = None) -> None:
        if input_shape is not None:
            if len(tuple(input_shape)) != 1:
                raise ValueError(f"{type(self).__name__}: only flat inputs are supported, got "
                                 f"input_shape={input_shape!r}")
            input_dim = next(iter(input_shape))
        self.name = name or _auto_name(type(self))
        self.input_dim = None if input_dim is None else int(input_dim)
        self.declared_input_dim = self.input_dim  # kept for get_config
        self.output_dim: int | None = None
        self.built = False
        self.modules: list[nn.Module] = []

    def build(self, input_dim: int) -> None:
        """Create the nn modules for inputs of width ``input_dim`` (once: a built layer keeps
        its weights)."""
        if self.input_dim is not None and self.input_dim != input_dim:
            raise ValueError(f"layer {self.name}: expects inputs of width {self.input_dim}, "
                             f"got {input_dim}")
        if self.built:
            return
        self.input_dim = int(input_dim)
        self.output_dim = self._output_dim(self.input_dim)
        self.modules = self._make_modules()
        self.built = True

    def _output_dim(self, input_dim: int) -> int:
        return input_dim

    def _make_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def count_params(self) -> int:
        """The number of scalar weights (0 before the layer is built)."""
        return sum(int(p.size) for m in self.modules for p in m.parameters())

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays in Keras's layout (copies)."""
        return []

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set the weights from arrays in Keras's layout (shapes must match)."""
        if len(weights):
            raise ValueError(f"layer {self.name} has no weights, got {len(weights)} arrays")

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as Keras's ``get_config``."""
        cfg: dict[str, Any] = {"name": self.name}
        if self.declared_input_dim is not None:
            cfg["batch_input_shape"] = [None, self.declared_input_dim]
        return cfg

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class Dense(Layer):
    """A fully connected layer: ``activation(x @ kernel + bias)``, kernel (inputs, units).

    Owns an ``nn.Linear(inputs, units)`` whose weight is the kernel transposed, followed by the
    activation's module, so ``nn.Sequential`` fuses them into one kernel call. The bias starts
    at zero, as in Keras.
    """

    def __init__(self, units: int, input_dim: int | None = None, activation: str | None = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 name: str | None = None, input_shape: tuple | None = None) -> None:
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        super().__init__(name, input_dim, input_shape)
        self.units = int(units)
        self.activation = _activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializer(kernel_initializer)
        if self.input_dim is not None:
            self.build(self.input_dim)

    def _output_dim(self, input_dim: int) -> int:
        return self.units

    def _make_modules(self) -> list[nn.Module]:
        assert self.input_dim is not None
        draw = INITIALIZERS[self.kernel_initializer]
        kernel = draw((self.input_dim, self.units), default_generator())

        def init(weight: Tensor) -> None:
            weight.data[...] = kernel.T  # nn.Linear stores the transpose of Keras's kernel

        self.linear = nn.Linear(self.input_dim, self.units, bias=self.use_bias, init=init)
        mods: list[nn.Module] = [self.linear]
        if self.activation != "linear":
            mods.append(ACTIVATIONS[self.activation]())
        return mods

    def get_weights(self) -> list[np.ndarray]:
        """[kernel (inputs, units), bias (units,)] (no bias when ``use_bias=False``)."""
        if not self.built:
            return []
        out = [self.linear.weight.data.T.copy()]
        if self.use_bias:
            out.append(self.linear.bias.data.copy())
        return out

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Set [kernel, bias] given in Keras's layout."""
        current = self.get_weights()
        if len(weights) != len(current):
            raise ValueError(f"layer {self.name}: expected {len(current)} weight arrays, got "
                             f"{len(weights)}")
        for new, old in zip(weights, current):
            if np.shape(new) != old.shape:
                raise ValueError(f"layer {self.name}: weight of shape {np.shape(new)} does not "
                                 f"match {old.shape}")
        self.linear.weight.data[...] = np.asarray(weights[0]).T
        if self.use_bias:
            self.linear.bias.data[...] = np.asarray(weights[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer}


class Activation(Layer):
    """An activation on its own: 'linear', 'relu', 'sigmoid', 'tanh', 'softmax' or 'gelu'."""

    def __init__(self, activation: str, name: str | None = None,
                 input_dim: int | None = None, input_shape: tuple | None = None) -> None:
        super().__init__(name, input_dim, input_shape)
        self.activation = _activation(activation)
        if self.input_dim is not None:
            self.build(self.input_dim)

    def _make_modules(self) -> list[nn.Module]:
        return [ACTIVATIONS[self.activation]()]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": self.activation}


class Dropout(Layer):
    """Zero a fraction ``rate`` of the inputs while training (scaling the rest by
    1 / (1 - rate)); the identity in evaluate and predict."""

    def __init__(self, rate: float, name: str | None = None, input_dim: int | None = None,
                 input_shape: tuple | None = None) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        super().__init__(name, input_dim, input_shape)
        self.rate = float(rate)
        if self.input_dim is not None:
            self.build(self.input_dim)

    def _make_modules(self) -> list[nn.Module]:
        return [nn.Dropout(self.rate)]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate}
