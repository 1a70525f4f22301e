"""Keras optimizers: hyperparameters held until ``compile``/``fit`` binds them to the model's
parameters, then each step delegates to the matching :mod:`autograd.optim` optimizer."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import optim
from ..capture import live

__all__ = ["SGD", "Adam", "Optimizer", "get"]


class Optimizer:
    """Base: ``lr`` (alias ``learning_rate``) and the legacy Keras ``decay``
    (lr / (1 + decay * iterations))."""

    def __init__(self, lr: float, learning_rate: float | None, decay: float) -> None:
        self.learning_rate = float(lr if learning_rate is None else learning_rate)
        if self.learning_rate < 0 or decay < 0:
            raise ValueError(f"{type(self).__name__}: learning rate and decay must be >= 0")
        self.decay = float(decay)
        self.iterations = 0
        self._impl: optim.Optimizer | None = None
        self._params: list = []

    @property
    def lr(self) -> float:
        """The base learning rate (Keras 2's older name)."""
        return self.learning_rate

    def _make(self, params: list) -> optim.Optimizer:
        raise NotImplementedError

    def bind(self, params: Iterable) -> None:
        """Attach to ``params``; a rebind to the same parameters keeps the optimizer state."""
        params = list(params)
        if self._impl is None or [id(p) for p in params] != [id(p) for p in self._params]:
            self._params = params
            self._impl = self._make(params)

    @live  # autograd.compile: the decayed lr and the iteration count stay live
    def step(self) -> None:
        """Apply one update from the parameters' gradients, then clear them."""
        if self._impl is None:
            raise RuntimeError(f"{type(self).__name__}: not bound to a model (call compile)")
        lr = self.learning_rate
        if self.decay:
            lr = lr / (1.0 + self.decay * self.iterations)
        for group in self._impl.param_groups:
            group["lr"] = lr
        self._impl.step()
        self._impl.zero_grad()
        self.iterations += 1

    def get_config(self) -> dict[str, Any]:
        """The hyperparameters, as Keras's ``get_config``."""
        return {"learning_rate": self.learning_rate, "decay": self.decay}


class SGD(Optimizer):
    """Keras SGD: ``SGD(lr=0.01, momentum=0.0, decay=0.0, nesterov=False)``; Keras's update
    (v = momentum * v - lr * g) equals ``optim.SGD``'s with dampening 0, which runs it."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, decay: float = 0.0,
                 nesterov: bool = False, learning_rate: float | None = None) -> None:
        super().__init__(lr, learning_rate, decay)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        if self.momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")

    def _make(self, params: list) -> optim.Optimizer:
        # PyTorch refuses nesterov without momentum; Keras then simply does plain SGD.
        return optim.SGD(params, lr=self.learning_rate, momentum=self.momentum,
                         nesterov=self.nesterov and self.momentum > 0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam: ``Adam(lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``, run by
    ``optim.Adam`` (PyTorch's form: epsilon added to sqrt of the bias-corrected v)."""

    def __init__(self, lr: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, decay: float = 0.0,
                 learning_rate: float | None = None) -> None:
        super().__init__(lr, learning_rate, decay)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _make(self, params: list) -> optim.Optimizer:
        return optim.Adam(params, lr=self.learning_rate, betas=(self.beta_1, self.beta_2),
                          eps=self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "adam": Adam}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a Keras optimizer or a name ('sgd', 'adam') with default settings."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; use SGD(...), Adam(...) or one of "
                     f"{sorted(_BY_NAME)}")
