"""Which implementation of the hot path runs: compiled by Cython, or the same source as Python.

Five modules have a compiled twin built from the same ``.py`` source (see CMakeLists.txt):

* ``autograd._core`` (Tensor storage, ``apply``, ``Node``: everything an op pays for on the way
  down) compiles to ``autograd._ccore``, with the C types declared in ``_core.pxd``. Every
  Tensor class derives from its ``TensorBase``, so it is chosen once, at import.
* ``autograd.engine`` (``backward``) compiles to ``autograd._cengine``; it can be switched at any
  time with :func:`use_engine`.
* ``autograd.backend.numpy_kernels`` (the NumPy provider's kernels, which the hot path calls by
  name) compiles to ``autograd.backend._cnumpy_kernels``, with no C types at all: the same NumPy
  calls, so the same bits, each kernel a C function instead of a Python frame. The backend
  picks it with this module's core at import (``backend.numpy_provider``); the pure twin keeps
  ``numpy_kernels``.
* ``autograd.jit.trace`` and ``autograd.jit.compiler`` (``autograd.compile``'s tracing and
  planning) compile to ``autograd.jit._ctrace`` and ``_ccompiler``.
* ``autograd.optim._fused`` (what an optimizer step repeats: gather and check the arrays, SGD's
  and Adam's updates, the version bumps; ``zero_grad``) compiles to ``autograd.optim._cfused``,
  bound as the optimizers' methods.

Where the source spells a fact in Python that C can read directly, the compiled twins do so
under ``if _COMPILED:`` beside that Python (helpers in ``csrc/hot.h``): an ndarray's shape and
dtype from its C struct, the thread's ``grad_mode.state`` from its dict (cached per thread
state, not per thread ident, which CPython reuses), a declared row run by a C method. The pure
twin runs only the Python.

``AUTOGRAD_ENGINE`` = ``auto`` (compiled when built) | ``compiled`` (an error when not built) |
``python`` picks all of them at import. ``autograd.backend.info()`` reports what runs
(``hot_path``, ``engine``, ``numpy_kernels``, ``jit``, ``optim``).
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from . import engine as _py_engine

__all__ = ["core", "core_name", "compiled_twin", "requested", "engine", "use_engine", "set_engine",
           "engine_module"]

_BUILD_HINT = "reinstall from source with `pip install .`"
_REQUESTED = os.environ.get("AUTOGRAD_ENGINE", "auto").strip().lower() or "auto"
if _REQUESTED not in ("auto", "compiled", "python"):
    raise ValueError(f"AUTOGRAD_ENGINE={_REQUESTED!r}: expected 'auto', 'compiled' or 'python'")


core: ModuleType
if _REQUESTED == "python":
    from . import _core as core
else:
    try:
        from . import _ccore as core  # type: ignore[attr-defined, no-redef]
    except ImportError as exc:
        if _REQUESTED == "compiled":
            raise RuntimeError(f"AUTOGRAD_ENGINE=compiled but autograd._ccore is not built: "
                               f"{_BUILD_HINT}") from exc
        from . import _core as core  # type: ignore[no-redef]

# The compiled engine reads the C structs of the compiled core, so it runs only with it.
_compiled_engine: ModuleType | None = None
if core.__name__ == "autograd._ccore":
    try:
        from . import _cengine as _compiled_engine  # type: ignore[attr-defined, no-redef]
    except ImportError:
        _compiled_engine = None


def compiled_twin(name: str) -> ModuleType | None:
    """The compiled twin ``name`` (e.g. ``"autograd.jit._ccompiler"``) when the compiled hot path
    runs and the twin is built, else None (the caller uses the ``.py`` source); an error when
    ``AUTOGRAD_ENGINE=compiled`` asked for it and it is not built."""
    if core_name() != "compiled":
        return None
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if requested() == "compiled":
            raise RuntimeError(f"AUTOGRAD_ENGINE=compiled but {name} is not built: "
                               f"{_BUILD_HINT}") from exc
        return None


def requested() -> str:
    """What ``AUTOGRAD_ENGINE`` asked for at import: ``auto``, ``compiled`` or ``python``."""
    return _REQUESTED


def core_name() -> str:
    """Which hot path (Tensor, apply, Node) runs: ``"compiled"`` or ``"python"``."""
    return "python" if core.__name__ == "autograd._core" else "compiled"


#: The engine module in use; Tensor.backward calls ``hotpath.engine_module.run_backward``.
engine_module: ModuleType = _py_engine


def engine() -> str:
    """Which graph engine runs backward: ``"compiled"`` (Cython) or ``"python"``."""
    return "compiled" if engine_module is _compiled_engine else "python"


def set_engine(name: str) -> None:
    """Switch the backward engine ('auto', 'compiled', 'python') for the whole process."""
    global engine_module
    if name == "auto":
        name = "compiled" if _compiled_engine is not None else "python"
    if name == "compiled":
        if _compiled_engine is None:
            raise RuntimeError("engine 'compiled' requested but autograd._cengine is not built: "
                               + _BUILD_HINT)
        engine_module = _compiled_engine
    elif name == "python":
        engine_module = _py_engine
    else:
        raise ValueError(f"unknown engine {name!r}: expected 'auto', 'compiled' or 'python'")


class _Switch:
    """Switches on construction; as a context manager, switches back on exit."""

    def __init__(self, setter, getter, name: str):
        self._setter = setter
        self._previous = getter()
        setter(name)

    def __enter__(self) -> "_Switch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._setter(self._previous)


def use_engine(name: str) -> _Switch:
    """Switch the backward engine ('auto', 'compiled', 'python'); a context manager restores it."""
    return _Switch(set_engine, engine, name)


set_engine("python" if _REQUESTED == "python" else "auto"
           if _REQUESTED == "auto" else "compiled")
