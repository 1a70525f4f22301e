"""Hooks that library code calls so a step captured by :func:`autograd.compile` stays correct.

A compiled step records the kernel calls of its first run and replays them. Work that is not a
kernel call must either stay *live* (run again, for real, on every replay) or be refused while
tracing. This module is the small, import-light interface between the library and the tracer
(``autograd.jit``), so the modules that need it (optimizers, layers, the core) import nothing
heavy:

* :func:`live` marks a function whose whole effect is re-run at each replay: an optimizer's
  ``step`` (the learning rate, Adam's step count and moments are read then), ``zero_grad``,
  BatchNorm's running-statistics update, a dropout mask drawn from the generator, gradient
  clipping, in-place updates of leaves. While tracing, the kernels it calls are not recorded
  one by one; the call itself is, with its array arguments mapped to the trace's buffers.
* :func:`host_read` is called where a tensor's value leaves for Python (``item``, ``numpy``,
  ``bool``...): a traced step cannot depend on it, so the tracer raises a clear error there (or,
  with ``fallback="eager"``, notes that this function must run eagerly).

Outside a trace both cost one thread-local attribute read.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from .grad_mode import state

__all__ = ["live", "host_read", "saw_module", "tracing"]

F = TypeVar("F", bound=Callable[..., Any])


def tracing() -> bool:
    """True while this thread traces a step for :func:`autograd.compile`."""
    return state.capture is not None


def live(fn: F) -> F:
    """Decorator: ``fn`` runs again, for real, each time a compiled step that called it replays
    (see the module docstring); outside a trace it is ``fn`` plus one attribute read."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cap = state.capture
        if cap is None:
            return fn(*args, **kwargs)
        return cap.live_call(fn, args, kwargs)

    wrapper.__wrapped_live__ = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def host_read(op: str) -> None:
    """Called where a tensor's value is read on the Python side (``op`` names it): refused while
    tracing a compiled step, unless that step falls back to eager execution."""
    cap = state.capture
    if cap is not None:
        cap.host_read(op)


def saw_module(module: Any) -> None:
    """Called by ``Module.__call__``: the tracer guards on the train/eval mode and parameters of
    every module a step used."""
    cap = state.capture
    if cap is not None:
        cap.saw_module(module)
