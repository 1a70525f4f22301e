"""Loading autograd._C: OpenBLAS's environment for the import only (its CPU core, no threads of
its own). Kept apart from the kernel provider (native.py), which only routes calls."""
from __future__ import annotations

import os


def _cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# OpenBLAS's DYNAMIC_ARCH may pick its AVX2 (Haswell/Zen) kernels on CPUs with AVX-512 (e.g. AMD
# Zen 4), which run at half the speed of its SkylakeX kernels there (~390 vs 110-210 GFLOP/s
# sgemm). OpenBLAS reads OPENBLAS_CORETYPE once, when the library loads, so set it for the
# import only, and only when the user has not chosen: children and other libraries see the
# environment unchanged. blas_info() reports the core OpenBLAS actually uses.
_AVX512_FLAGS = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})


def import_core():
    """(autograd._C, the OPENBLAS_CORETYPE set for its import or None)."""
    forced = None
    if "OPENBLAS_CORETYPE" not in os.environ and _AVX512_FLAGS <= _cpu_flags():
        forced = "SkylakeX"
        os.environ["OPENBLAS_CORETYPE"] = forced
    # Our OpenBLAS must not start a thread pool of its own when it loads: all parallel work runs
    # on the engine's pool (autograd.backend.threadpool). For the import only, like the above.
    user_threads = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        from .. import _C
    finally:
        if forced is not None:
            os.environ.pop("OPENBLAS_CORETYPE", None)
        if user_threads is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = user_threads
    return _C, forced
