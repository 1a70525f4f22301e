"""Exceptions the engine raises, each naming what went wrong and where."""
from __future__ import annotations


class GradcheckError(AssertionError):
    """An analytical gradient disagrees with its finite-difference estimate."""


class AnomalyError(RuntimeError):
    """Under ``detect_anomaly()``, a backward produced NaN or inf; names the op and its origin."""


class FreedGraphError(RuntimeError):
    """A backward ran through a graph whose saved arrays an earlier backward freed."""


class InplaceModificationError(RuntimeError):
    """An array a pending backward saved was changed in place since the forward pass."""
