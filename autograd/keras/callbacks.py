"""Keras callbacks: the ``History`` that ``fit`` returns, ``EarlyStopping`` and
``ModelCheckpoint``."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["Callback", "EarlyStopping", "History", "ModelCheckpoint"]


class Callback:
    """Hooks ``fit`` calls; ``self.model`` is the model being trained."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        """Called by ``fit`` before training."""
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Before each epoch (0-based)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """After each epoch, with that epoch's loss and metrics (and val_ ones)."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """After the last epoch (or an early stop)."""


class History(Callback):
    """What ``fit`` returns: ``history`` maps 'loss', metric names and their 'val_' forms to
    one value per epoch; ``epoch`` lists the epoch indices."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, keys: list[str] | None = None) -> Any:
        """Draw the loss and metric curves (each with its validation curve) with matplotlib;
        returns the Figure. Needs the optional extra: ``pip install autograd-engine[plot]``."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib, an optional dependency: "
                              "pip install autograd-engine[plot]") from None
        names = keys or [k for k in self.history if not k.startswith("val_")]
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
        epochs = np.arange(1, len(self.epoch) + 1)
        for ax, name in zip(axes[0], names):
            for k in (name, "val_" + name):
                if k in self.history:
                    ax.plot(epochs[:len(self.history[k])], self.history[k], label=k)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.legend()
        fig.tight_layout()
        return fig


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs (Keras 2 semantics). ``mode`` 'auto' maximises names containing 'acc'
    and minimises the rest. With ``restore_best_weights`` the model gets back the weights of
    its best epoch when stopping."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.maximize = mode == "max" or (mode == "auto" and "acc" in monitor)
        self.min_delta = abs(min_delta)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = -np.inf if self.maximize else np.inf
        self.best_weights: list[np.ndarray] | None = None

    def _improved(self, current: float, reference: float) -> bool:
        if self.maximize:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait, self.stopped_epoch, self.best_weights = 0, 0, None
        if self.baseline is not None:
            self.best = self.baseline
        else:
            self.best = -np.inf if self.maximize else np.inf

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: monitored quantity {self.monitor!r} is not "
                          f"available; available: {sorted(logs or {})}", RuntimeWarning,
                          stacklevel=2)
            return
        if self._improved(current, self.best):
            self.best, self.wait = current, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0 and _prints():
            print(f"Epoch {self.stopped_epoch + 1:05d}: early stopping")


def _prints() -> bool:
    """Whether this process prints and writes: always, except on ranks other than 0 of
    data-parallel training."""
    from .parallel import is_rank0
    return is_rank0()


class ModelCheckpoint(Callback):
    """Save the model's weights after every epoch (Keras 2): ``filepath`` may hold
    ``{epoch}`` (1-based) and log names, e.g. ``"w-{epoch:02d}-{val_loss:.3f}.safetensors"``.
    With ``save_best_only`` a file is written only when ``monitor`` improves (``mode`` as in
    :class:`EarlyStopping`). Files are written by :meth:`Sequential.save_weights`: atomically,
    and in data-parallel training by rank 0 only (every rank holds the same weights, and the
    decision uses logs reduced over the ranks, so all ranks agree). ``save_weights_only`` is
    accepted for Keras's signature: a weights file here always carries the architecture too,
    so :func:`~autograd.keras.models.load_model` reads either."""

    def __init__(self, filepath: Any, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, mode: str = "auto",
                 save_weights_only: bool = True) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be 'auto', 'min' or 'max', got "
                             f"{mode!r}")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only = save_best_only
        self.maximize = mode == "max" or (mode == "auto" and "acc" in monitor)
        self.best = -np.inf if self.maximize else np.inf

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best = -np.inf if self.maximize else np.inf

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as exc:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {exc}, which "
                           f"is not in the logs {sorted(logs)}") from None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: monitored quantity {self.monitor!r} is not "
                              f"available; available: {sorted(logs)}", RuntimeWarning,
                              stacklevel=2)
                return
            better = current > self.best if self.maximize else current < self.best
            if not better:
                return
            self.best = current
        self.model.save_weights(path)
        if self.verbose > 0 and _prints():
            print(f"Epoch {epoch + 1:05d}: saving model to {path}")
