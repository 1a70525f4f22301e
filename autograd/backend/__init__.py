"""Backend selection: which kernel provider and which graph engine run, always visible.

Two kernel providers export one flat kernel API (see ``numpy_kernels``): ``"native"`` (the
compiled C++ core, ``autograd._C``) and ``"numpy"`` (the reference). The environment variable
``AUTOGRAD_BACKEND`` picks one at import: ``auto`` (native when built, else numpy), ``native``
(an error with a build hint when it is not built) or ``numpy``.

The NumPy provider is one source with two twins, as the hot path is: with the compiled hot path
(``autograd._ccore``) it is ``numpy_kernels.py`` compiled by Cython
(``autograd.backend._cnumpy_kernels``: the same NumPy calls, so the same bits, but each kernel a
C function instead of a Python frame); with the pure hot path it is ``numpy_kernels`` itself.
:data:`numpy_provider` is the one that runs; ``info()["numpy_kernels"]`` says which.

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

from .. import _install_check

if not getattr(sys.modules.get("autograd"), "_AUTOGRAD_ENGINE", False):
    # Imported under an ``autograd/__init__.py`` that is not ours (HIPS autograd installed over
    # this package): refuse here, since our own __init__ and its check never ran.
    _install_check.check_mixed_installation(os.path.dirname(os.path.dirname(__file__)))

from .. import hotpath  # noqa: E402
from ..grad_mode import state  # noqa: E402
from . import numpy_kernels  # noqa: E402

__all__ = ["active", "use", "available", "native_available", "k", "engine", "use_engine",
           "info", "numpy_provider"]

BUILD_HINT = ("the native core (autograd._C) is not built: reinstall from source with "
              "`pip install .` (needs g++, cmake and ninja), or set AUTOGRAD_BACKEND=numpy")

try:  # written into the package by an `AUTOGRAD_NATIVE=OFF pip install .` (no compiler needed)
    from .._build_config import NATIVE as _NATIVE_BUILT  # type: ignore[import-not-found]
except ImportError:
    _NATIVE_BUILT = True
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not _NATIVE_BUILT:
    BUILD_HINT = ("this installation was built without the native core (AUTOGRAD_NATIVE=OFF); "
                  "reinstall with a C++ compiler and without that setting to build it, or set "
                  "AUTOGRAD_BACKEND=numpy")
elif _install_check._is_source_checkout(_PACKAGE_DIR):
    # `pip install .` would not help here: Python run in the checkout imports this directory.
    BUILD_HINT = (f"the native core (autograd._C) is not built in this source tree "
                  f"({os.path.dirname(_PACKAGE_DIR)}): build it in place with `pip install -e .` "
                  f"there, or run Python from another directory to use an installed copy, or "
                  f"set AUTOGRAD_BACKEND=numpy")

_native: ModuleType | None = None
_native_error: BaseException | None = None


def _load_numpy_provider() -> ModuleType:
    """The NumPy provider's twin matching the hot path: compiled with the compiled hot path (an
    error when it was asked for by ``AUTOGRAD_ENGINE=compiled`` and is not built), else the
    ``numpy_kernels`` source module."""
    return hotpath.compiled_twin("autograd.backend._cnumpy_kernels") or numpy_kernels


#: The NumPy kernel provider that runs: ``autograd.backend._cnumpy_kernels`` (numpy_kernels.py
#: compiled) with the compiled hot path, else ``numpy_kernels``. ``use("numpy")`` installs it.
numpy_provider: ModuleType = _load_numpy_provider()


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
    k = state.k
    k = getattr(k, "_base", k)  # while autograd.compile traces: the provider it records
    return "numpy" if k is numpy_provider or k is numpy_kernels else "native"


def _provider(name: str) -> ModuleType:
    if name == "auto":
        name = "native" if native_available() else "numpy"
    if name == "native":
        return _load_native()
    if name == "numpy":
        return numpy_provider
    raise ValueError(f"unknown backend {name!r}: expected 'auto', 'native' or 'numpy'")


def _set(name: str) -> None:
    """Switch this thread's kernel provider."""
    state.k = _provider(name)


class _BackendModule(ModuleType):
    """This module's type: ``k`` reads the calling thread's kernel provider (through a
    compiled getter when the hot path is compiled)."""

    k = property(hotpath.core.kernels,
                 doc="The kernel module ops call: numpy_provider (numpy_kernels) or native.")


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


def _jit_twin() -> str:
    from .. import jit  # (jit imports this package)
    return jit.twin


def _optim_twin() -> str:
    from ..optim import optimizer  # (optim imports the tensor, which imports this package)
    return optimizer.twin


def info() -> dict[str, Any]:
    """What runs: kernel provider, graph engine, hot path, NumPy-kernel, jit and optimizer-step
    twins, and the native core's BLAS and threads."""
    out: dict[str, Any] = {"backend": active(), "engine": engine(),
                           "hot_path": hotpath.core_name(),
                           "numpy_kernels": ("compiled" if numpy_provider is not numpy_kernels
                                             else "python"),
                           "jit": _jit_twin(),
                           "optim": _optim_twin(),
                           "native_available": native_available()}
    if not _NATIVE_BUILT:
        out["native_build"] = "off (installed with AUTOGRAD_NATIVE=OFF: NumPy backend only)"
    if _native is not None:
        # The adapter reports what the compiled core linked and chose (BLAS core, threads).
        out.update(_native.info())
    return out


# The default for every thread (a class attribute of the thread-local state).
type(state).k = _provider(os.environ.get("AUTOGRAD_BACKEND", "auto").strip().lower() or "auto")
sys.modules[__name__].__class__ = _BackendModule
