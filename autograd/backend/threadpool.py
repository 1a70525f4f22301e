"""The native core's thread pool seen from Python: its default size, its report, threadpoolctl.

The compiled core (``autograd._C``) runs all of its parallel work, BLAS included, on one pool of
worker threads that it owns (csrc/kernels/threads.cpp). This module

* sizes it at import from ``AUTOGRAD_NUM_THREADS`` (default: every CPU the process may use);
* describes it for ``backend.info()``;
* registers it with threadpoolctl, when that is installed, so that
  ``threadpoolctl.threadpool_limits(1)`` (or ``user_api="blas"``) limits our core as it limits
  NumPy's BLAS, and ``threadpool_info()`` lists it (``internal_api == "autograd"``);
* routes NumPy's own OpenBLAS (the ``libscipy_openblas64_`` bundled in the numpy wheel) onto the
  pool through its ``openblas_set_threads_callback_function``, so that NumPy's parallel
  products run on our workers, which sleep when idle, instead of on NumPy's BLAS threads, which
  spin for tens of milliseconds after every call and take the core our next product needs.
  ``AUTOGRAD_ROUTE_NUMPY_BLAS=0`` leaves NumPy's BLAS alone; a NumPy built on another BLAS, or
  on an OpenBLAS older than 0.3.29, is skipped and ``info()["numpy_blas"]`` says why.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

ENV = "AUTOGRAD_NUM_THREADS"
ROUTE_ENV = "AUTOGRAD_ROUTE_NUMPY_BLAS"

#: The exported C symbols threadpoolctl uses to recognise and drive our pool (csrc/runtime.cpp).
_GET, _SET = "autograd_pool_get_num_threads", "autograd_pool_set_num_threads"


def check_num_threads(n: Any, max_threads: int, what: str = "set_num_threads") -> int:
    """n as an int in [1, max_threads], or ValueError naming the range."""
    if isinstance(n, bool) or not isinstance(n, int):
        try:
            import operator
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"{what}: n must be an integer, got {type(n).__name__}") from None
    if not 1 <= n <= max_threads:
        raise ValueError(f"{what}: n must be between 1 and {max_threads} (the CPUs this process "
                         f"may run on), got {n}")
    return int(n)


def _apply_num_threads(core: ModuleType) -> None:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return
    try:
        n = check_num_threads(int(raw), core.max_threads(), what=ENV)
    except (ValueError, TypeError) as exc:
        warnings.warn(f"{exc}; ignoring {ENV}={raw!r} and using {core.get_num_threads()} threads",
                      RuntimeWarning, stacklevel=4)
        return
    core.set_num_threads(n)


def numpy_blas_paths(core: ModuleType) -> list[str]:
    """The loaded shared libraries that belong to NumPy's own install and look like a BLAS
    (the wheel bundles ``numpy.libs/libscipy_openblas64_-<hash>.so``), resolved paths."""
    import numpy
    pkg = Path(numpy.__file__).resolve().parent
    roots = (pkg, pkg.parent / "numpy.libs", pkg.parent / ".dylibs")
    found = []
    for raw in core.loaded_libraries():
        path = Path(raw).resolve()
        if "blas" in path.name.lower() and any(path.is_relative_to(r) for r in roots):
            if str(path) not in found:
                found.append(str(path))
    return found


def route_numpy_blas(core: ModuleType, on: bool = True) -> dict[str, Any]:
    """Route NumPy's bundled OpenBLAS onto the engine's pool (on=False: give it back its own
    threads). Safe to skip: anything but a loaded OpenBLAS >= 0.3.29 inside NumPy's install is
    left untouched, and the returned dict (also ``info()["numpy_blas"]``) says why."""
    _routing.clear()
    if not on:
        return dict(core.route_foreign_blas("", False))
    paths = numpy_blas_paths(core)
    if not paths:
        import numpy
        blas = "unknown"
        try:
            blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
        except Exception:  # noqa: BLE001 - only for the message
            pass
        _routing["skipped"] = (f"NumPy's BLAS ({blas}) is not a library bundled in its install; "
                               "left alone")
        return {"routed": False, "library": "", "version": "", "setter": "",
                "reason": _routing["skipped"]}
    state: dict[str, Any] = {}
    for path in paths:
        state = dict(core.route_foreign_blas(path, True))
        if state["routed"]:
            break
    return state


def apply_env_default(core: ModuleType) -> None:
    """At import: size the pool from AUTOGRAD_NUM_THREADS, if set (a bad value warns and is
    ignored), and route NumPy's BLAS onto it unless AUTOGRAD_ROUTE_NUMPY_BLAS=0."""
    _apply_num_threads(core)
    raw = os.environ.get("AUTOGRAD_ROUTE_NUMPY_BLAS", "1")
    if raw.strip().lower() in ("0", "false", "no", "off"):
        _routing["skipped"] = f"{ROUTE_ENV}={raw!r}"
        return
    try:
        route_numpy_blas(core)
    except Exception as exc:  # noqa: BLE001 - never fail the import over NumPy's BLAS
        _routing["skipped"] = f"routing failed: {exc!r}"


# Why routing was not attempted (the C++ side only knows about libraries it was asked to route).
_routing: dict[str, str] = {}


def numpy_blas_state(core: ModuleType) -> dict[str, Any]:
    """NumPy's BLAS as ``info()`` reports it: routed or not and why, and how many of its
    parallel sections ran on our pool (and on extra threads, when the pool was busy)."""
    state = dict(core.foreign_blas())
    if "skipped" in _routing and not state["routed"]:
        state["reason"] = _routing["skipped"]
    if not state["library"] and not state["reason"]:
        state["reason"] = "not routed"
    return state


def describe(core: ModuleType) -> dict[str, Any]:
    """The pool's part of ``backend.info()``."""
    mode = core.get_blas_mode()
    threading = ("engine pool; OpenBLAS single-threaded, large products tiled on the pool"
                 if mode == "tiles" else
                 "engine pool; OpenBLAS parallel sections routed onto it (threads callback)")
    numpy_blas = numpy_blas_state(core)
    threading += ("; NumPy's OpenBLAS routed onto the pool" if numpy_blas["routed"] else
                  f"; NumPy's BLAS not routed ({numpy_blas['reason']})")
    return {"num_threads": core.get_num_threads(), "max_threads": core.max_threads(),
            "pool_workers_alive": core.live_workers(), "blas_mode": mode,
            "threading": threading, "spin_us": core.get_spin_us(),
            "parallel_thresholds": dict(core.get_parallel_thresholds()),
            "tile_steals": dict(core.tile_steals()),
            "numpy_blas": numpy_blas}


def register_threadpoolctl(core: ModuleType) -> bool:
    """Make threadpoolctl see and limit our pool; False when threadpoolctl is not installed."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not hasattr(threadpoolctl, "register") or getattr(threadpoolctl, "_autograd_registered",
                                                         False):
        return hasattr(threadpoolctl, "register")

    class AutogradPoolController(threadpoolctl.LibController):
        """autograd's native thread pool (it runs the core's kernels and its BLAS calls)."""

        user_api = "blas"  # so threadpool_limits(..., user_api="blas") reaches it too
        internal_api = "autograd"
        # threadpoolctl matches lowercased file names; the symbols tell ours from other "_C"s.
        filename_prefixes = ("_c.",)
        check_symbols = (_GET, _SET)

        def get_num_threads(self) -> int | None:
            fn = getattr(self.dynlib, _GET, None)
            return None if fn is None else fn()

        def set_num_threads(self, num_threads: int) -> None:
            fn = getattr(self.dynlib, _SET, None)
            if fn is not None:
                fn(int(num_threads))  # clamped to [1, max] on the C side

        def get_version(self) -> str | None:
            try:
                from .. import __version__
                return __version__
            except ImportError:  # pragma: no cover - during a partial import
                return None

        def set_additional_attributes(self) -> None:
            self.blas_mode = core.get_blas_mode()
            self.max_threads = core.max_threads()

    threadpoolctl.register(AutogradPoolController)
    threadpoolctl._autograd_registered = True
    return True
