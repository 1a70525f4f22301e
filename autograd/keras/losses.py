"""Keras losses and the accuracy metric, computed with :mod:`autograd.functional`.

Semantics follow Keras:

* ``binary_crossentropy`` takes probabilities (e.g. a final sigmoid), clamps them to
  [1e-7, 1 - 1e-7] and averages -(y log p + (1 - y) log(1 - p)) over all outputs;
* ``categorical_crossentropy`` takes one-hot (or soft) targets and softmax probabilities;
* ``sparse_categorical_crossentropy`` takes integer class targets, shape (n,) or (n, 1);
* ``mse`` / ``mean_squared_error`` averages the squared error.

When the model ends in a softmax, the two categorical losses are computed from the logits
before it with log-softmax (``from_logits=True``), which is exact and stable, as Keras does.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..capture import live

from .. import functional as F
from ..tensor import Tensor

__all__ = [
    "LOSSES",
    "METRICS",
    "accuracy",
    "accuracy_kind",
    "binary_crossentropy",
    "categorical_crossentropy",
    "get",
    "mean_squared_error",
    "sparse_categorical_crossentropy",
]

EPSILON = 1e-7  # Keras's backend epsilon used for clamping probabilities


@live  # autograd.compile: the labels are read at every replay
def _sparse(target: Tensor) -> np.ndarray:
    t = np.asarray(target.numpy())
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    return t.astype(np.int64)


def binary_crossentropy(pred: Tensor, target: Tensor) -> Tensor:
    """Mean BCE of probabilities, clamped like Keras."""
    p = F.clip(pred, EPSILON, 1 - EPSILON)
    return -(target * F.log(p) + (1 - target) * F.log(1 - p)).mean()


def mean_squared_error(pred: Tensor, target: Tensor) -> Tensor:
    """Mean of (pred - target)^2."""
    return F.mse_loss(pred, target)


def categorical_crossentropy(pred: Tensor, target: Tensor, from_logits: bool = False
                             ) -> Tensor:
    """-sum(y * log p) per sample, averaged; ``pred`` are probabilities or, with
    ``from_logits``, the logits before softmax."""
    if from_logits:
        logp = F.log_softmax(pred, -1)
    else:
        p = pred / pred.sum(axis=-1, keepdims=True)
        logp = F.log(F.clip(p, EPSILON, 1 - EPSILON))
    return -(target * logp).sum(axis=-1).mean()


def sparse_categorical_crossentropy(pred: Tensor, target: Tensor, from_logits: bool = False
                                    ) -> Tensor:
    """Cross-entropy against integer class targets."""
    labels = _sparse(target)
    if from_logits:
        return F.cross_entropy(pred, labels)
    onehot = Tensor._wrap(_onehot(labels, pred.shape[-1], pred.dtype))
    return categorical_crossentropy(pred, onehot)


@live  # autograd.compile: built from the labels at every replay
def _onehot(labels: np.ndarray, n: int, dtype: np.dtype) -> np.ndarray:
    return np.eye(n, dtype=dtype)[labels]


LOSSES: dict[str, Callable[..., Tensor]] = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
}
LOGIT_LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")


def get(name: str) -> Callable[..., Tensor]:
    """The loss function called ``name``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; supported: {sorted(LOSSES)}")
    return LOSSES[name]


def accuracy_kind(metric: str, loss: str, output_dim: int) -> str:
    """Which accuracy Keras means by ``metric`` for ``loss``: 'binary', 'categorical' or
    'sparse' ('accuracy' / 'acc' follow the loss and the output width, as in Keras)."""
    explicit = {"binary_accuracy": "binary", "categorical_accuracy": "categorical",
                "sparse_categorical_accuracy": "sparse"}
    if metric in explicit:
        return explicit[metric]
    if metric not in ("accuracy", "acc"):
        raise ValueError(f"unknown metric {metric!r}; supported: {list(METRICS)}")
    if loss == "sparse_categorical_crossentropy":
        return "sparse"
    return "binary" if loss == "binary_crossentropy" or output_dim == 1 else "categorical"


def accuracy(pred: np.ndarray, target: np.ndarray, kind: str) -> float:
    """The fraction right: outputs thresholded at 0.5 ('binary'), argmax against integer
    targets ('sparse') or against the argmax of one-hot targets ('categorical')."""
    target = np.asarray(target)
    if kind == "sparse":
        return float(np.mean(pred.argmax(-1) == target.reshape(-1)))
    if kind == "binary":
        return float(np.mean((pred > 0.5) == (target > 0.5)))
    return float(np.mean(pred.argmax(-1) == target.argmax(-1)))


METRICS = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy",
           "sparse_categorical_accuracy")
