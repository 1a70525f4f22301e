"""``autograd.nn``: PyTorch-style modules, layers, losses and initialisers.

``Module`` and ``Parameter`` are the building blocks; layers call :mod:`autograd.functional`
(also importable as ``autograd.nn.functional``); ``Sequential`` fuses Linear + activation pairs
into one kernel.
"""
from __future__ import annotations

from . import functional, init, parallel, utils
from .container import Residual, Sequential
from .layers import (
                     GELU,
                     Dropout,
                     Flatten,
                     Identity,
                     LeakyReLU,
                     Linear,
                     LogSoftmax,
                     ReLU,
                     Sigmoid,
                     Softmax,
                     Tanh,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import IncompatibleKeys, Module, Parameter
from .normalization import BatchNorm1d

__all__ = ["Module", "Parameter", "IncompatibleKeys", "Linear", "ReLU", "Sigmoid", "Tanh",
           "LeakyReLU", "GELU", "Softmax", "LogSoftmax", "Dropout", "Flatten", "Identity",
           "Sequential", "Residual", "BatchNorm1d", "MSELoss", "BCELoss", "BCEWithLogitsLoss",
           "CrossEntropyLoss", "functional", "init", "parallel", "utils"]
