"""The native core's thread pool seen from Python: its default size, its report, threadpoolctl.

The compiled core (``autograd._C``) runs all of its parallel work, BLAS included, on one pool of
worker threads that it owns (csrc/kernels/threads.cpp). This module

* sizes it at import from ``AUTOGRAD_NUM_THREADS`` (default: every CPU the process may use);
* describes it for ``backend.info()``;
* registers it with threadpoolctl, when that is installed, so that
  ``threadpoolctl.threadpool_limits(1)`` (or ``user_api="blas"``) limits our core as it limits
  NumPy's BLAS, and ``threadpool_info()`` lists it (``internal_api == "autograd"``).
"""
from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any

ENV = "AUTOGRAD_NUM_THREADS"

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


def apply_env_default(core: ModuleType) -> None:
    """Size the pool from AUTOGRAD_NUM_THREADS, if set; a bad value warns and is ignored."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return
    try:
        n = check_num_threads(int(raw), core.max_threads(), what=ENV)
    except (ValueError, TypeError) as exc:
        warnings.warn(f"{exc}; ignoring {ENV}={raw!r} and using {core.get_num_threads()} threads",
                      RuntimeWarning, stacklevel=3)
        return
    core.set_num_threads(n)


def describe(core: ModuleType) -> dict[str, Any]:
    """The pool's part of ``backend.info()``."""
    mode = core.get_blas_mode()
    threading = ("engine pool; OpenBLAS single-threaded, large products tiled on the pool"
                 if mode == "tiles" else
                 "engine pool; OpenBLAS parallel sections routed onto it (threads callback)")
    return {"num_threads": core.get_num_threads(), "max_threads": core.max_threads(),
            "pool_workers_alive": core.live_workers(), "blas_mode": mode,
            "threading": threading, "spin_us": core.get_spin_us(),
            "parallel_thresholds": dict(core.get_parallel_thresholds())}


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
