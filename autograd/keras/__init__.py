"""``autograd.keras``: a Keras-2-style front end (Sequential, Dense, fit/evaluate/predict).

A thin layer over :mod:`autograd.nn` and :mod:`autograd.optim`, so Keras tutorials run with
only their imports changed::

    from autograd.keras.models import Sequential
    from autograd.keras.layers import Dense, Activation
    from autograd.keras.optimizers import SGD
"""
from __future__ import annotations

from . import callbacks, config, layers, losses, models, optimizers
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from .config import ModelConfigError
from .layers import Activation, Dense, Dropout, Layer
from .models import Sequential, load_model, model_from_json
from .optimizers import SGD, Adam

__all__ = [
           "SGD",
           "Activation",
           "Adam",
           "Callback",
           "Dense",
           "Dropout",
           "EarlyStopping",
           "History",
           "Layer",
           "ModelCheckpoint",
           "ModelConfigError",
           "Sequential",
           "callbacks",
           "config",
           "layers",
           "load_model",
           "losses",
           "model_from_json",
           "models",
           "optimizers",
]
