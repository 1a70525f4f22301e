"""Backend selection: which kernel provider and which graph engine run, always visible.

Two kernel providers export one flat kernel API (see ``numpy_kernels``): ``"native"`` (the
compiled C++ core, ``autograd._C``) and ``"numpy"`` (the reference). The environment variable
``AUTOGRAD_BACKEND`` picks one at import: ``auto`` (native when built, else numpy), ``native``
(an error with a build hint when it is not built) or ``numpy``.

Likewise the graph engine runs Cython-compiled (``autograd._cengine``) when built, else the same
source uncompiled (``autograd.engine``); ``AUTOGRAD_ENGINE`` = ``auto`` | ``compiled`` | ``python``.

Ops fetch kernels through the module attribute ``k`` at call time, so switching is immediate.
The active provider is per thread (``grad_mode.state.k``): ``use()`` in one thread does not
change another's, and a new thread starts with the default chosen at import.

The engine choice lives in ``autograd.hotpath`` (this module re-exports it), so the engine never
imports the backend and the backend never imports the engine.
"""
from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

from .. import hotpath
from ..grad_mode import state
from . import numpy_kernels

__all__ = ["active", "use", "available", "native_available", "k", "engine", "use_engine",
           "info"]

BUILD_HINT = ("the native core (autograd._C) is not built: reinstall from source with "
              "`pip install .` (needs g++, cmake and ninja), or set AUTOGRAD_BACKEND=numpy")

_native: ModuleType | None = None
_native_error: BaseException | None = None



def _load_native() -> ModuleType:
    """Import the native adapter once; remember why it failed so later calls can say so."""
    global _native, _native_error
    if _native is None and _native_error is None:
        try:
            from . import native as mod
        except ImportError as exc:  # not built, or built against something missing
            _native_error = exc
        else:
            _native = mod
    if _native is None:
        raise RuntimeError(f"backend 'native' requested but {BUILD_HINT} "
                           f"(import error: {_native_error})") from _native_error
    return _native


def native_available() -> bool:
    """True if the compiled kernel module imports on this machine."""
    try:
        _load_native()
    except RuntimeError:
        return False
    return True


def available() -> list[str]:
    """The kernel providers that can run here, in preference order."""
    return (["native"] if native_available() else []) + ["numpy"]


def active() -> str:
    """The name of the kernel provider this thread uses: ``"native"`` or ``"numpy"``."""
    return "numpy" if state.k is numpy_kernels else "native"


def _provider(name: str) -> ModuleType:
    if name == "auto":
        name = "native" if native_available() else "numpy"
    if name == "native":
        return _load_native()
    if name == "numpy":
        return numpy_kernels
    raise ValueError(f"unknown backend {name!r}: expected 'auto', 'native' or 'numpy'")


def _set(name: str) -> None:
    """Switch this thread's kernel provider."""
    state.k = _provider(name)


class _BackendModule(ModuleType):
    """This module's type: ``k`` reads the calling thread's kernel provider (through a
    compiled getter when the hot path is compiled)."""

    k = property(hotpath.core.kernels, doc="The kernel module ops call: numpy_kernels or native.")


_Switch = hotpath._Switch


def use(name: str) -> _Switch:
    """Switch the kernel provider to ``name`` ('auto', 'native', 'numpy').

    Takes effect at once; used as ``with backend.use("numpy"): ...`` it is restored on exit.
    """
    return _Switch(_set, active, name)


engine = hotpath.engine
use_engine = hotpath.use_engine
_set_engine = hotpath.set_engine
_compiled_engine = hotpath._compiled_engine


def info() -> dict[str, Any]:
    """What runs: kernel provider, graph engine, and the native core's BLAS and threads."""
    out: dict[str, Any] = {"backend": active(), "engine": engine(),
                           "hot_path": hotpath.core_name(),
                           "native_available": native_available()}
    if _native is not None:
        # The adapter reports what the compiled core linked and chose (BLAS core, threads).
        out.update(_native.info())
    return out


# The default for every thread (a class attribute of the thread-local state).
type(state).k = _provider(os.environ.get("AUTOGRAD_BACKEND", "auto").strip().lower() or "auto")
sys.modules[__name__].__class__ = _BackendModule
