"""The native kernel provider: the kernel API of ``numpy_kernels`` over the compiled ``_C``.

Same names, signatures and return conventions as ``autograd.backend.numpy_kernels``, so the two
modules are interchangeable. This adapter owns the mismatch between them:

* inputs are made C-contiguous here (``_C`` never copies or casts, and raises on strided input);
* float32 and float64 go to ``_C``; any other dtype goes to the NumPy kernel of the same name;
* patterns the C++ does not cover (general N-d broadcasting, other axes, data movement) are
  delegated explicitly, kernel by kernel (``reshape = _np.reshape``);
* tiny arrays go to NumPy below measured crossovers, where the call overhead of a native call
  exceeds the work (the constants below say what was measured).

Importing this module imports ``autograd._C``; it raises ImportError when that is not built.
"""
from __future__ import annotations

import os

import numpy as np

from . import numpy_kernels as _np


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


def _import_core():
    forced = None
    if "OPENBLAS_CORETYPE" not in os.environ and _AVX512_FLAGS <= _cpu_flags():
        forced = "SkylakeX"
        os.environ["OPENBLAS_CORETYPE"] = forced
    try:
        from .. import _C
    finally:
        if forced is not None:
            os.environ.pop("OPENBLAS_CORETYPE", None)
    return _C, forced


_C, _CORETYPE_SET = _import_core()

_FLOATS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_contig = np.ascontiguousarray

# Helpers that are not kernels (not in numpy_kernels): thread control and a report.
EXTRAS = ("set_num_threads", "get_num_threads", "blas_info", "info")

set_num_threads = _C.set_num_threads
get_num_threads = _C.get_num_threads
blas_info = _C.blas_info


def info() -> dict:
    """What the native core linked and chose: BLAS library, its CPU core, threads."""
    b = _C.blas_info()
    return {"blas": b["library"], "blas_core": b["corename"], "blas_config": b["config"],
            "blas_threads": b["num_threads"], "num_threads": _C.get_num_threads(),
            "openblas_coretype_set_by_autograd": _CORETYPE_SET}


def _is_float(x) -> bool:
    return type(x) is np.ndarray and x.dtype in _FLOATS


def _same_float(a, b) -> bool:
    return type(a) is np.ndarray and type(b) is np.ndarray and a.dtype in _FLOATS \
        and a.dtype == b.dtype


# --------------------------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------------------------

# matmul is native at every size: numpy's own matmul goes through BLAS as well, and the ~1 us
# pybind11 call costs the same as numpy's dispatch.


def matmul(a: np.ndarray, b: np.ndarray, trans_a: bool = False,
           trans_b: bool = False) -> np.ndarray:
    """op(a) @ op(b) (see numpy_kernels.matmul); transposes are BLAS flags, never copies."""
    if (_same_float(a, b) and a.ndim >= 2 and b.ndim >= 2
            and (a.ndim == 2 or b.ndim == 2 or a.shape[:-2] == b.shape[:-2])):
        return _C.matmul(_contig(a), _contig(b), trans_a, trans_b)
    return _np.matmul(a, b, trans_a, trans_b)  # broadcast batch axes, other dtypes


# --------------------------------------------------------------------------------------------
# Delegated to NumPy for now (native versions follow)
# --------------------------------------------------------------------------------------------

ACTIVATIONS = _np.ACTIVATIONS

add = _np.add
sub = _np.sub
mul = _np.mul
div = _np.div
pow = _np.pow  # noqa: A001
maximum = _np.maximum
minimum = _np.minimum
maximum_back = _np.maximum_back
minimum_back = _np.minimum_back
neg = _np.neg
exp = _np.exp
log = _np.log
sqrt = _np.sqrt
abs = _np.abs  # noqa: A001
sign = _np.sign
clip = _np.clip
clip_back = _np.clip_back
where = _np.where
compare = _np.compare
sigmoid = _np.sigmoid
sigmoid_back = _np.sigmoid_back
tanh = _np.tanh
tanh_back = _np.tanh_back
relu = _np.relu
relu_back = _np.relu_back
leaky_relu = _np.leaky_relu
leaky_relu_back = _np.leaky_relu_back
gelu = _np.gelu
gelu_back = _np.gelu_back
softmax = _np.softmax
softmax_back = _np.softmax_back
log_softmax = _np.log_softmax
log_softmax_back = _np.log_softmax_back
logsumexp = _np.logsumexp
logsumexp_back = _np.logsumexp_back
sum = _np.sum  # noqa: A001
max = _np.max  # noqa: A001
min = _np.min  # noqa: A001
extremum_back = _np.extremum_back
sum_to = _np.sum_to
broadcast_to = _np.broadcast_to
reshape = _np.reshape
transpose = _np.transpose
getitem = _np.getitem
index_add = _np.index_add
concatenate = _np.concatenate
stack = _np.stack
split = _np.split
linear = _np.linear
linear_back = _np.linear_back
mse = _np.mse
mse_back = _np.mse_back
bce = _np.bce
bce_back = _np.bce_back
bce_with_logits = _np.bce_with_logits
bce_with_logits_back = _np.bce_with_logits_back
cross_entropy = _np.cross_entropy
cross_entropy_back = _np.cross_entropy_back
sgd_step = _np.sgd_step
adam_step = _np.adam_step
