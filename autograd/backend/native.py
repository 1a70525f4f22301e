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

import math
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


_C, _CORETYPE_SET = _import_core()

from . import threadpool as _threadpool  # noqa: E402  (needs _C)

_threadpool.apply_env_default(_C)
_threadpool.register_threadpoolctl(_C)

_FLOATS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


def _contig(x: np.ndarray) -> np.ndarray:
    """x itself when C-contiguous, else a C-contiguous copy (ascontiguousarray would turn a 0-d
    array into shape (1,))."""
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


# Helpers that are not kernels (not in numpy_kernels): thread control and a report.
EXTRAS = ("set_num_threads", "get_num_threads", "blas_info", "info")

set_num_threads = _C.set_num_threads
get_num_threads = _C.get_num_threads
blas_info = _C.blas_info
# The pool's tuning knobs (csrc/runtime.cpp): per-family size thresholds, idle spin, BLAS mode.
set_parallel_threshold = _C.set_parallel_threshold
get_parallel_thresholds = _C.get_parallel_thresholds
set_spin_us = _C.set_spin_us
set_blas_mode = _C.set_blas_mode


def info() -> dict:
    """What the native core linked and chose: BLAS library, its CPU core, threads."""
    b = _C.blas_info()
    return {"blas": b["library"], "blas_core": b["corename"], "blas_config": b["config"],
            "blas_threads": b["num_threads"], "num_threads": _C.get_num_threads(),
            "openblas_coretype_set_by_autograd": _CORETYPE_SET,
            **_threadpool.describe(_C)}


# Crossovers: the element count at and above which the native call beats the NumPy kernel it
# replaces. Measured on the project machine (2-core AMD EPYC with AVX-512, numpy 2.4, OpenMP
# with 2 threads), as native/numpy time ratios at sizes 1, 4, ..., 2^20; reproduce with
#   python benchmarks/bench_kernels.py   (its last table: forced-native crossovers)
# Where NumPy's kernel is one SIMD ufunc (add, neg, tanh) the native loop runs at the same speed
# and the ~0.5 us adapter + pybind11 call decides until OpenMP threads help: native/numpy was
# 1.8-1.9 at <= 256 elements, 1.07 at 2^16, 0.58 at 2^18 for add; tanh 1.27 at 1 element, 1.1
# at 2^14, 0.57 at 2^16. Under load from other processes, threads help less.
_MIN_ARITH = 1 << 18   # add, sub, mul, neg, abs
# tanh alone would cross at 1 << 16, but it stays native at every size: the fused linear layer
# computes tanh with the same vector routine, so a fused and an unfused layer agree to the bit.
# The price is <= 0.3 us per call on tiny arrays.
_MIN_TRANSC = 1
# Where the NumPy kernel makes several passes or enters np.errstate (a context manager costs
# ~1 us), native wins from one element on: div 0.58, sqrt 0.39, log 0.39, exp 0.42, sigmoid 0.13,
# gelu 0.15, relu 0.72, tanh_back 0.64, leaky_relu 0.26, softmax 0.10, sum_to 0.68, mse 0.47,
# adam_step 0.38 (ratios at 1-16 elements; all stay below 1 at every larger size measured).
_MIN_FUSED = 1         # div, exp, log, sqrt, the activations and all their derivatives
_MIN_ROWWISE = 1       # softmax, log_softmax, logsumexp and their derivatives
_MIN_LOSS = 1          # mse, bce, bce_with_logits, cross_entropy and derivatives
_MIN_OPTIM = 1         # sgd_step / adam_step: total parameter elements
_MIN_SUM_TO = 1        # sum_to
# sum: NumPy's one pairwise reduction vs ours: 1.10-1.15 up to 2^12 elements, 0.91 at 2^14.
_MIN_SUM = 1 << 14

_REDUCTIONS = frozenset({"mean", "sum", "none"})


def _one(x, n_min: int) -> bool:
    """x is a float32/float64 ndarray of at least n_min elements."""
    return type(x) is np.ndarray and x.dtype in _FLOATS and x.size >= n_min


def _two(a, b, n_min: int) -> bool:
    """a and b are ndarrays of one float dtype and one shape, at least n_min elements."""
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype in _FLOATS
            and a.dtype == b.dtype and a.shape == b.shape and a.size >= n_min)


def _same_float(a, b) -> bool:
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype in _FLOATS
            and a.dtype == b.dtype)


def _last_axis(x: np.ndarray, axis) -> bool:
    return x.ndim >= 1 and type(axis) is int and (axis == -1 or axis == x.ndim - 1)


# --------------------------------------------------------------------------------------------
# Elementwise arithmetic: native for same shape, a one-element operand, or a row broadcast
# along the last axis; NumPy for any other broadcast and for other dtypes.
# --------------------------------------------------------------------------------------------


def _is_row(r: np.ndarray, full: np.ndarray) -> bool:
    return (1 <= r.ndim <= full.ndim and r.shape[-1] == full.shape[-1]
            and r.size == r.shape[-1] and all(d == 1 for d in r.shape[:-1]))


def _binary_native(a, b, n_min: int) -> bool:
    # The size test comes first: it is the cheap one, and it settles every small array.
    # A Python scalar operand (no .size) is NumPy's to handle, as numpy_kernels allows it.
    try:
        if a.size < n_min and b.size < n_min:
            return False
    except AttributeError:
        return False
    if not _same_float(a, b):
        return False
    return (a.shape == b.shape or (b.size == 1 and b.ndim <= a.ndim)
            or (a.size == 1 and a.ndim <= b.ndim) or _is_row(b, a) or _is_row(a, b))


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b (see numpy_kernels.add)."""
    if _binary_native(a, b, _MIN_ARITH):
        return _C.add(_contig(a), _contig(b))
    return np.add(a, b)  # exactly numpy_kernels.add, minus a call layer on the small-op path


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b (see numpy_kernels.sub)."""
    if _binary_native(a, b, _MIN_ARITH):
        return _C.sub(_contig(a), _contig(b))
    return np.subtract(a, b)  # exactly numpy_kernels.sub, minus a call layer on the small-op path


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b (see numpy_kernels.mul)."""
    if _binary_native(a, b, _MIN_ARITH):
        return _C.mul(_contig(a), _contig(b))
    return np.multiply(a, b)  # exactly numpy_kernels.mul, minus a call layer on the small-op path


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, IEEE semantics (see numpy_kernels.div)."""
    return _C.div(_contig(a), _contig(b)) if _binary_native(a, b, _MIN_FUSED) else _np.div(a, b)


def neg(x: np.ndarray) -> np.ndarray:
    """-x."""
    return _C.neg(_contig(x)) if _one(x, _MIN_ARITH) else _np.neg(x)


def exp(x: np.ndarray) -> np.ndarray:
    """e ** x."""
    return _C.exp(_contig(x)) if _one(x, _MIN_FUSED) else _np.exp(x)


def log(x: np.ndarray) -> np.ndarray:
    """Natural log (nan below 0, -inf at 0)."""
    return _C.log(_contig(x)) if _one(x, _MIN_FUSED) else _np.log(x)


def sqrt(x: np.ndarray) -> np.ndarray:
    """Square root (nan below 0)."""
    return _C.sqrt(_contig(x)) if _one(x, _MIN_FUSED) else _np.sqrt(x)


def abs(x: np.ndarray) -> np.ndarray:  # noqa: A001 - kernel name mirrors the op
    """|x|."""
    return _C.abs(_contig(x)) if _one(x, _MIN_ARITH) else _np.abs(x)


# Less common or data-dependent ops: NumPy.
pow = _np.pow  # noqa: A001
maximum = _np.maximum
minimum = _np.minimum
maximum_back = _np.maximum_back
minimum_back = _np.minimum_back
sign = _np.sign
clip = _np.clip
clip_back = _np.clip_back
where = _np.where
compare = _np.compare

# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), overflow-free."""
    return _C.sigmoid(_contig(x)) if _one(x, _MIN_FUSED) else _np.sigmoid(x)


def sigmoid_back(out: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """grad * out * (1 - out)."""
    if _two(out, grad, _MIN_FUSED):
        return _C.sigmoid_back(_contig(out), _contig(grad))
    return _np.sigmoid_back(out, grad)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return _C.tanh(_contig(x)) if _one(x, _MIN_TRANSC) else _np.tanh(x)


def tanh_back(out: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """grad * (1 - out^2)."""
    if _two(out, grad, _MIN_FUSED):
        return _C.tanh_back(_contig(out), _contig(grad))
    return _np.tanh_back(out, grad)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0)."""
    return _C.relu(_contig(x)) if _one(x, _MIN_FUSED) else _np.relu(x)


def relu_back(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """grad * 1[x > 0]."""
    if _two(x, grad, _MIN_FUSED):
        return _C.relu_back(_contig(x), _contig(grad))
    return _np.relu_back(x, grad)


def leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    """x if x > 0 else slope * x."""
    return _C.leaky_relu(_contig(x), slope) if _one(x, _MIN_FUSED) else _np.leaky_relu(x, slope)


def leaky_relu_back(x: np.ndarray, grad: np.ndarray, slope: float) -> np.ndarray:
    """grad * (1 if x > 0 else slope)."""
    if _two(x, grad, _MIN_FUSED):
        return _C.leaky_relu_back(_contig(x), _contig(grad), slope)
    return _np.leaky_relu_back(x, grad, slope)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form."""
    return _C.gelu(_contig(x)) if _one(x, _MIN_FUSED) else _np.gelu(x)


def gelu_back(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d gelu/dx * grad, from the input."""
    if _two(x, grad, _MIN_FUSED):
        return _C.gelu_back(_contig(x), _contig(grad))
    return _np.gelu_back(x, grad)


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """GELU, exact erf form."""
    return _C.gelu_erf(_contig(x)) if _one(x, _MIN_FUSED) else _np.gelu_erf(x)


def gelu_erf_back(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d gelu_erf/dx * grad, from the input."""
    if _two(x, grad, _MIN_FUSED):
        return _C.gelu_erf_back(_contig(x), _contig(grad))
    return _np.gelu_erf_back(x, grad)


# --------------------------------------------------------------------------------------------
# Softmax family: native along the last axis; other axes go to NumPy.
# --------------------------------------------------------------------------------------------


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Stable softmax along ``axis``."""
    if _one(x, _MIN_ROWWISE) and _last_axis(x, axis):
        return _C.softmax(_contig(x))
    return _np.softmax(x, axis)


def softmax_back(out: np.ndarray, grad: np.ndarray, axis: int) -> np.ndarray:
    """out * (grad - sum(grad * out, axis))."""
    if _two(out, grad, _MIN_ROWWISE) and _last_axis(out, axis):
        return _C.softmax_back(_contig(out), _contig(grad))
    return _np.softmax_back(out, grad, axis)


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """x - logsumexp(x, axis)."""
    if _one(x, _MIN_ROWWISE) and _last_axis(x, axis):
        return _C.log_softmax(_contig(x))
    return _np.log_softmax(x, axis)


def log_softmax_back(out: np.ndarray, grad: np.ndarray, axis: int) -> np.ndarray:
    """grad - exp(out) * sum(grad, axis)."""
    if _two(out, grad, _MIN_ROWWISE) and _last_axis(out, axis):
        return _C.log_softmax_back(_contig(out), _contig(grad))
    return _np.log_softmax_back(out, grad, axis)


def logsumexp(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x), axis)), stable; all -inf rows give -inf."""
    if _one(x, _MIN_ROWWISE) and _last_axis(x, axis) and x.shape[-1] > 0:
        out = _C.logsumexp(_contig(x))
        return out[..., None] if keepdims else out
    return _np.logsumexp(x, axis, keepdims)


def logsumexp_back(x: np.ndarray, out: np.ndarray, grad: np.ndarray, axis: int,
                   keepdims: bool = False) -> np.ndarray:
    """grad * exp(x - out), broadcast back along ``axis``."""
    if (_one(x, _MIN_ROWWISE) and _last_axis(x, axis) and _same_float(x, out)
            and _same_float(x, grad)):
        rows = x.shape[:-1] + ((1,) if keepdims else ())
        if out.shape == rows and grad.shape == rows:
            return _C.logsumexp_back(_contig(x), _contig(out), _contig(grad))
    return _np.logsumexp_back(x, out, grad, axis, keepdims)


# --------------------------------------------------------------------------------------------
# Reductions: a sum over one contiguous run of axes is one native kernel; max/min are NumPy.
# --------------------------------------------------------------------------------------------


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _sum_run(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """x summed over axes lo..hi (inclusive), flat."""
    s = x.shape
    return _C.sum_axis(_contig(x), _prod(s[:lo]), _prod(s[lo:hi + 1]), _prod(s[hi + 1:]))


def sum(x: np.ndarray, axis=None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    """Sum over ``axis`` (all when None) as an ndarray of x's dtype."""
    if _one(x, _MIN_SUM):
        nd = x.ndim
        axes = tuple(range(nd)) if axis is None else (axis,) if type(axis) is int else axis
        if (type(axes) is tuple and axes and all(type(a) is int and -nd <= a < nd for a in axes)):
            axes = sorted(a % nd for a in axes)
            if axes == list(range(axes[0], axes[-1] + 1)):  # one run, no repeats
                lo, hi = axes[0], axes[-1]
                if keepdims:
                    shape = x.shape[:lo] + (1,) * (hi - lo + 1) + x.shape[hi + 1:]
                else:
                    shape = x.shape[:lo] + x.shape[hi + 1:]
                return _sum_run(x, lo, hi).reshape(shape)
    return _np.sum(x, axis, keepdims)


def sum_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` down to ``shape``."""
    if grad.shape == shape or not _one(grad, _MIN_SUM_TO):
        return _np.sum_to(grad, shape)
    lead = grad.ndim - len(shape)
    if lead < 0:
        return _np.sum_to(grad, shape)
    gs = grad.shape
    reduced = [True] * lead
    for i, n in enumerate(shape):
        g = gs[i + lead]
        if n != g and n != 1:
            return _np.sum_to(grad, shape)  # not a broadcast of shape: NumPy raises
        reduced.append(n == 1 and g != 1)
    axes = [i for i, r in enumerate(reduced) if r]
    # size-1 axes of grad inside the run do not break it
    if not axes or any(not reduced[i] and gs[i] != 1 for i in range(axes[0], axes[-1] + 1)):
        return _np.sum_to(grad, shape)
    return _sum_run(grad, axes[0], axes[-1]).reshape(shape)


max = _np.max  # noqa: A001
min = _np.min  # noqa: A001
extremum_back = _np.extremum_back

# --------------------------------------------------------------------------------------------
# Shape and data movement: views and copies NumPy already does at memory speed.
# --------------------------------------------------------------------------------------------

broadcast_to = _np.broadcast_to
cast = _np.cast
reshape = _np.reshape
transpose = _np.transpose
getitem = _np.getitem
index_add = _np.index_add
concatenate = _np.concatenate
stack = _np.stack
split = _np.split

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
# Fused linear layer (2-D input): one gemm onto the bias, activation in place; backward is two
# gemms and a column sum.
# --------------------------------------------------------------------------------------------

ACTIVATIONS = _np.ACTIVATIONS


def _linear_native(x, w) -> bool:
    return _same_float(x, w) and x.ndim == 2 and w.ndim == 2 and x.shape[1] == w.shape[1]


# _C checks its whole contract (dtypes, C-contiguity, shapes, writability) before it touches
# any memory and raises TypeError/ValueError (RuntimeError for a failed list cast) otherwise.
# The layer and optimizer kernels below therefore call it first, and only what it refuses
# takes the checked path (which makes inputs contiguous or hands them to NumPy): the common
# call pays for one set of checks, in C++, instead of two.
_REFUSED = (TypeError, ValueError, RuntimeError)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
           activation: str | None = None) -> np.ndarray:
    """act(x @ w.T + b) (see numpy_kernels.linear)."""
    try:
        return _C.linear(x, w, b, activation)
    except _REFUSED:
        pass
    if (_linear_native(x, w) and activation in ACTIVATIONS
            and (b is None or (_same_float(x, b) and b.shape == (w.shape[0],)))):
        return _C.linear(_contig(x), _contig(w), None if b is None else _contig(b), activation)
    return _np.linear(x, w, b, activation)


def linear_back(x: np.ndarray, w: np.ndarray, out: np.ndarray, grad: np.ndarray,
                activation: str | None = None, has_bias: bool = True):
    """(dx, dw, db) of ``linear`` (see numpy_kernels.linear_back)."""
    try:
        return _C.linear_back(x, w, out, grad, activation, bool(has_bias))
    except _REFUSED:
        pass
    if (_linear_native(x, w) and activation in ACTIVATIONS and _two(out, grad, 0)
            and out.dtype == x.dtype and out.shape == (x.shape[0], w.shape[0])):
        return _C.linear_back(_contig(x), _contig(w), _contig(out), _contig(grad), activation,
                              bool(has_bias))
    return _np.linear_back(x, w, out, grad, activation, has_bias)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def _loss_native(p, t, reduction) -> bool:
    return reduction in _REDUCTIONS and _two(p, t, _MIN_LOSS)


def _loss_back_native(p, t, grad, reduction) -> bool:
    if not (_loss_native(p, t, reduction) and _same_float(p, grad)):
        return False
    return grad.shape == p.shape if reduction == "none" else grad.size == 1


def mse(pred: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """(pred - target)^2, reduced."""
    if _loss_native(pred, target, reduction):
        return _C.mse(_contig(pred), _contig(target), reduction)
    return _np.mse(pred, target, reduction)


def mse_back(pred: np.ndarray, target: np.ndarray, grad: np.ndarray,
             reduction: str = "mean") -> np.ndarray:
    """2 (pred - target) * grad (/ n for 'mean')."""
    if _loss_back_native(pred, target, grad, reduction):
        return _C.mse_back(_contig(pred), _contig(target), _contig(grad), reduction)
    return _np.mse_back(pred, target, grad, reduction)


def bce(prob: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """Binary cross-entropy of probabilities, logs clamped at -100."""
    if _loss_native(prob, target, reduction):
        return _C.bce(_contig(prob), _contig(target), reduction)
    return _np.bce(prob, target, reduction)


def bce_back(prob: np.ndarray, target: np.ndarray, grad: np.ndarray,
             reduction: str = "mean") -> np.ndarray:
    """(p - t) / max(p (1 - p), 1e-12) * grad."""
    if _loss_back_native(prob, target, grad, reduction):
        return _C.bce_back(_contig(prob), _contig(target), _contig(grad), reduction)
    return _np.bce_back(prob, target, grad, reduction)


def bce_with_logits(logits: np.ndarray, target: np.ndarray,
                    reduction: str = "mean") -> np.ndarray:
    """BCE of sigmoid(logits), stable for any logit."""
    if _loss_native(logits, target, reduction):
        return _C.bce_with_logits(_contig(logits), _contig(target), reduction)
    return _np.bce_with_logits(logits, target, reduction)


def bce_with_logits_back(logits: np.ndarray, target: np.ndarray, grad: np.ndarray,
                         reduction: str = "mean") -> np.ndarray:
    """(sigmoid(z) - t) * grad."""
    if _loss_back_native(logits, target, grad, reduction):
        return _C.bce_with_logits_back(_contig(logits), _contig(target), _contig(grad),
                                       reduction)
    return _np.bce_with_logits_back(logits, target, grad, reduction)


def _targets(logits, target):
    """int64 C-contiguous class indices when logits/target suit the native kernel, else None."""
    if (_one(logits, _MIN_LOSS) and logits.ndim == 2 and logits.shape[1] > 0
            and type(target) is np.ndarray and target.dtype.kind in "iu"
            and target.shape == (logits.shape[0],)):
        return np.ascontiguousarray(target, dtype=np.int64)  # integer widening only
    return None


def cross_entropy(logits: np.ndarray, target: np.ndarray, reduction: str = "mean"):
    """(loss, log_probs) of softmax cross-entropy; a target outside [0, c) is a ValueError."""
    t = _targets(logits, target) if reduction in _REDUCTIONS else None
    if t is not None:
        return _C.cross_entropy(_contig(logits), t, reduction)
    return _np.cross_entropy(logits, target, reduction)


def cross_entropy_back(log_probs: np.ndarray, target: np.ndarray, grad: np.ndarray,
                       reduction: str = "mean") -> np.ndarray:
    """(softmax - onehot(target)) * grad (/ n for 'mean')."""
    t = _targets(log_probs, target) if reduction in _REDUCTIONS else None
    if t is not None and _same_float(log_probs, grad) and (
            grad.shape == target.shape if reduction == "none" else grad.size == 1):
        return _C.cross_entropy_back(_contig(log_probs), t, _contig(grad), reduction)
    return _np.cross_entropy_back(log_probs, target, grad, reduction)


# --------------------------------------------------------------------------------------------
# Optimizer steps: native when every parameter is a writable C-contiguous float array and its
# state matches it (the update is in place, so a copy would be lost); else NumPy.
# --------------------------------------------------------------------------------------------


def _inplace_ok(arrays, dtype, shape) -> bool:
    return (type(arrays) is np.ndarray and arrays.dtype == dtype and arrays.shape == shape
            and arrays.flags.c_contiguous and arrays.flags.writeable)


def _state_ok(params, *states) -> bool:
    total = 0
    for i, p in enumerate(params):
        if not (type(p) is np.ndarray and p.dtype in _FLOATS
                and _inplace_ok(p, p.dtype, p.shape)):
            return False
        for s in states:
            if not _inplace_ok(s[i], p.dtype, p.shape):
                return False
        total += p.size
    return total >= _MIN_OPTIM


def _grads_ok(params, grads) -> list | None:
    out = []
    for p, g in zip(params, grads):
        if not (type(g) is np.ndarray and g.dtype == p.dtype and g.shape == p.shape):
            return None
        out.append(_contig(g))
    return out


def sgd_step(params, grads, bufs, lr: float, momentum: float = 0.0, dampening: float = 0.0,
             nesterov: bool = False, weight_decay: float = 0.0, first_step: bool = False) -> None:
    """SGD as in torch.optim.SGD, in place (see numpy_kernels.sgd_step)."""
    try:
        return _C.sgd_step(params, grads, bufs if momentum else None, float(lr),
                           float(momentum), float(dampening), bool(nesterov),
                           float(weight_decay), bool(first_step))
    except _REFUSED:
        pass
    params, grads = list(params), list(grads)
    states = (list(bufs),) if momentum else ()
    if (len(params) == len(grads) and all(len(s) == len(params) for s in states)
            and _state_ok(params, *states)):
        g = _grads_ok(params, grads)
        if g is not None:
            _C.sgd_step(params, g, states[0] if states else None, float(lr), float(momentum),
                        float(dampening), bool(nesterov), float(weight_decay), bool(first_step))
            return
    _np.sgd_step(params, grads, bufs, lr, momentum, dampening, nesterov, weight_decay,
                 first_step)


def adam_step(params, grads, exp_avgs, exp_avg_sqs, step: int, lr: float, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
              decoupled: bool = False) -> None:
    """Adam / AdamW, in place (see numpy_kernels.adam_step)."""
    try:
        # the bias corrections exactly as numpy_kernels computes them (Python floats)
        return _C.adam_step(params, grads, exp_avgs, exp_avg_sqs, float(lr), 1 - beta1 ** step,
                            math.sqrt(1 - beta2 ** step), float(beta1), float(beta2),
                            float(eps), float(weight_decay), bool(decoupled))
    except _REFUSED:
        pass
    params, grads = list(params), list(grads)
    m, v = list(exp_avgs), list(exp_avg_sqs)
    if len(params) == len(grads) == len(m) == len(v) and _state_ok(params, m, v):
        g = _grads_ok(params, grads)
        if g is not None:
            # the bias corrections exactly as numpy_kernels computes them (Python floats)
            bc1 = 1 - beta1 ** step
            bc2_sqrt = math.sqrt(1 - beta2 ** step)
            _C.adam_step(params, g, m, v, float(lr), bc1, bc2_sqrt, float(beta1), float(beta2),
                         float(eps), float(weight_decay), bool(decoupled))
            return
    _np.adam_step(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
                  weight_decay, decoupled)
