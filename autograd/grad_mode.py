"""Whether operations record a graph (``no_grad``/``enable_grad``) and anomaly detection.

The flags, and the active kernel provider, live in one thread-local object so the hot path reads
a single attribute, and a ``no_grad()`` or ``backend.use()`` in one thread never leaks into
another (as in PyTorch). A new thread starts with the class defaults: grad enabled, anomaly
detection off, the process's default kernel provider.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly",
           "is_anomaly_enabled"]

F = TypeVar("F", bound=Callable[..., Any])


class _State(threading.local):
    # Class attributes are what every thread sees until it sets its own (threading.local looks
    # them up on the class), so a new thread needs no initialisation.
    grad_enabled = True
    anomaly = False
    #: The kernel module ops call (``backend.k``); the default is set by ``autograd.backend``.
    k: Any = None
    #: The tracer of ``autograd.compile`` while this thread traces a step (else None).
    capture: Any = None
    #: The callbacks queued (``hooks.queue_callback``) in the backward pass this thread runs;
    #: None outside backward.
    callbacks: Any = None


state = _State()


class _GradMode:
    """Sets grad recording on entry, restores it on exit; also usable as a decorator."""

    _value = True

    def __enter__(self) -> None:
        self._prev = state.grad_enabled
        state.grad_enabled = self._value

    def __exit__(self, *exc: Any) -> None:
        state.grad_enabled = self._prev

    def __call__(self, fn: F) -> F:
        value = self._value

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prev = state.grad_enabled
            state.grad_enabled = value
            try:
                return fn(*args, **kwargs)
            finally:
                state.grad_enabled = prev
        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Context manager and decorator: operations inside record no graph."""

    _value = False


class enable_grad(_GradMode):
    """Context manager and decorator: re-enables recording inside a ``no_grad`` block."""

    _value = True


def is_grad_enabled() -> bool:
    """True when operations record a graph."""
    return state.grad_enabled


class detect_anomaly:
    """Context manager: every op remembers where it was created, and a backward that produces
    NaN or inf raises :class:`autograd.AnomalyError` naming that op and that place."""

    def __enter__(self) -> None:
        self._prev = state.anomaly
        state.anomaly = True

    def __exit__(self, *exc: Any) -> None:
        state.anomaly = self._prev


def is_anomaly_enabled() -> bool:
    """True inside ``detect_anomaly()``."""
    return state.anomaly
