"""The native kernel provider: the kernel API of ``numpy_kernels`` over the compiled ``_C``.

Same names, signatures and results as ``numpy_kernels``. A name is native when ``_C`` has a row
for it in its kernel table (csrc/kernel_table.h, ``_C.KERNELS``), else the NumPy provider's
(``backend.numpy_provider``, compiled with the compiled hot path). Each family has a route, a
pure predicate of dtypes, shapes and attrs (``routes_native``): float32/float64 arrays in the
patterns the C++ covers go to ``_C``, the rest to NumPy. Importing this module imports ``_C``
(ImportError when not built). Each native name is a ``_C.Dispatch``: one C call running the
kernel where its contract takes the arguments, else the Python route (adapted ``_C``, NumPy).
"""
from __future__ import annotations

import inspect
import types

import numpy as np

from . import numpy_kernels as _np
from . import numpy_provider as _npk  # the same kernels; compiled with the compiled hot path
from ._load_core import _AVX512_FLAGS, _cpu_flags, import_core  # noqa: F401 (tests)

_C, _CORETYPE_SET = import_core()

from . import threadpool as _threadpool  # noqa: E402  (needs _C)

_threadpool.apply_env_default(_C)
_threadpool.register_threadpoolctl(_C)

_FLOATS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


def _contig(x):
    """x, or a C-contiguous copy (0-d stays 0-d); lists (optimizer state) item by item."""
    if type(x) is np.ndarray:
        return x if x.flags.c_contiguous else np.ascontiguousarray(x)
    return [_contig(a) for a in x] if type(x) is list else x


# Helpers that are not kernels (not in numpy_kernels): thread control and reports; the pool's
# tuning knobs (csrc/runtime.cpp): per-family size thresholds, idle spin, BLAS mode.
EXTRAS = ("set_num_threads", "get_num_threads", "blas_info", "info", "routes_native")
set_num_threads, get_num_threads, blas_info = _C.set_num_threads, _C.get_num_threads, _C.blas_info
set_parallel_threshold, set_spin_us, set_blas_mode = (_C.set_parallel_threshold, _C.set_spin_us,
                                                      _C.set_blas_mode)
get_parallel_thresholds = _C.get_parallel_thresholds


def info() -> dict:
    """What the native core linked and chose: BLAS library, its CPU core, threads."""
    b = _C.blas_info()
    return {"blas": b["library"], "blas_core": b["corename"], "blas_config": b["config"],
            "blas_threads": b["num_threads"], "num_threads": _C.get_num_threads(),
            "openblas_coretype_set_by_autograd": _CORETYPE_SET, **_threadpool.describe(_C)}


# Crossovers (element counts) from which a kernel runs _C: _MIN per kernel, else _MIN_ALL. A
# native call on 4x4 float32 costs what NumPy's does (tanh 0.30 vs 0.28 us, add 0.31 vs 0.30,
# sum 0.36 vs 2.0, mse 0.34 vs 1.7), and benchmarks/bench_kernels.py (numpy/native time at 1,
# 4, ..., 2^20) found native at least as fast at every size for every family but libm tanh
# (0.7-1.1; native anyway, so fused and unfused layers agree to the bit) and add above 2^18
# under load (0.74-0.80). So all are native at every size: a compiled step replays eager's bits.
_MIN_ALL = 0  # 0: empty arrays too (the C++ handles them)
_MIN: dict[str, int] = {}


# Route vocabulary: one float array of n+ elements; two of one dtype (and shape); an axis.
def _one(x, n):
    return type(x) is np.ndarray and x.dtype in _FLOATS and x.size >= n


def _same(a, b):
    return type(a) is np.ndarray and type(b) is np.ndarray and a.dtype in _FLOATS \
        and a.dtype == b.dtype


def _two(a, b, n):
    return _same(a, b) and a.shape == b.shape and a.size >= n


def _int(a) -> bool:
    return type(a) is int or isinstance(a, np.integer)


def _last(x, axis):
    return x.ndim >= 1 and _int(axis) and (axis == -1 or axis == x.ndim - 1)


def _is_row(r, full):
    return (1 <= r.ndim <= full.ndim and r.shape[-1] == full.shape[-1]
            and r.size == r.shape[-1] and all(d == 1 for d in r.shape[:-1]))


def _sum_route(n, x, axis):
    nd = getattr(x, "ndim", 0)
    axes = tuple(range(nd)) if axis is None else (axis,) if _int(axis) else axis
    if not (_one(x, n) and type(axes) is tuple and all(_int(a) and -nd <= a < nd for a in axes)):
        return False
    axes = sorted(a % nd for a in axes)
    return axes == list(range(axes[0], axes[-1] + 1)) if axes else True  # one run, no repeats


def _sum_to_route(n, grad, shape):
    if type(shape) is not tuple or not _one(grad, n):
        return False
    lead = grad.ndim - len(shape)
    if lead < 0 or any(s != g and s != 1 for s, g in zip(shape, grad.shape[lead:])):
        return False
    red = [True] * lead + [s == 1 and g != 1 for s, g in zip(shape, grad.shape[lead:])]
    axes = [i for i, r in enumerate(red) if r]
    # size-1 axes of grad inside the run do not break it; no axis at all is a copy
    return not axes or all(red[i] or grad.shape[i] == 1 for i in range(axes[0], axes[-1] + 1))


def _in_place(params, *states):
    """Params and states writable C-contiguous floats alike (in place: a copy would be lost)."""
    try:
        return all(type(a) is np.ndarray and a.dtype == p.dtype and a.shape == p.shape
                   and a.dtype in _FLOATS and a.flags.c_contiguous and a.flags.writeable
                   for i, p in enumerate(params) for a in (p,) + tuple(s[i] for s in states))
    except (TypeError, IndexError):
        return False


def _grads(params, grads):
    return len(params) == len(grads) and all(_same(p, g) and g.shape == p.shape
                                             for p, g in zip(params, grads))


def _targets(x, t, n):
    return (_one(x, n) and x.ndim == 2 and x.shape[1] > 0 and type(t) is np.ndarray
            and t.dtype.kind in "iu" and t.shape == (x.shape[0],))


_RED = ("mean", "sum", "none")  # reductions the loss kernels take


def _reduced_grad(p, g, reduction, rows):
    return _same(p, g) and (g.shape == rows if reduction == "none" else g.size == 1)


# One route per family (or kernel): numpy_kernels' signature after n, the crossover; True when
# the call runs _C. Pure functions of dtypes, shapes and attrs.
_ROUTES = {
    "unary": lambda n, x: _one(x, n),
    "unary_back": lambda n, a, grad: _two(a, grad, n),
    "leaky_relu": lambda n, x, slope: _one(x, n),
    "leaky_relu_back": lambda n, x, grad, slope: _two(x, grad, n),
    "binary": lambda n, a, b: (
        _same(a, b) and (a.size >= n or b.size >= n)
        and (a.shape == b.shape or (b.size == 1 and b.ndim <= a.ndim)
             or (a.size == 1 and a.ndim <= b.ndim) or _is_row(b, a) or _is_row(a, b))),
    "rowwise": lambda n, x, axis: _one(x, n) and _last(x, axis),
    "rowwise_back": lambda n, out, grad, axis: _two(out, grad, n) and _last(out, axis),
    "logsumexp": lambda n, x, axis, keepdims=False: (
        _one(x, n) and _last(x, axis) and x.shape[-1] > 0),
    "logsumexp_back": lambda n, x, out, grad, axis, keepdims=False: (
        _one(x, n) and _last(x, axis) and _same(x, out) and _same(x, grad)
        and out.shape == grad.shape == x.shape[:-1] + ((1,) if keepdims else ())),
    "sum": lambda n, x, axis=None, keepdims=False: _sum_route(n, x, axis),
    "sum_to": lambda n, grad, shape: _sum_to_route(n, grad, shape),
    "matmul": lambda n, a, b, trans_a=False, trans_b=False: (
        _same(a, b) and a.ndim >= 2 and b.ndim >= 2
        and (a.ndim == 2 or b.ndim == 2 or a.shape[:-2] == b.shape[:-2])),
    "linear": lambda n, x, w, b, activation=None: (
        _same(x, w) and x.ndim == 2 and w.ndim == 2 and x.shape[1] == w.shape[1]
        and activation in ACTIVATIONS and (b is None or (_same(x, b)
                                                         and b.shape == (w.shape[0],)))),
    "linear_back": lambda n, x, w, out, grad, activation=None, has_bias=True, need_dx=True: (
        _same(x, w) and x.ndim == 2 and w.ndim == 2 and x.shape[1] == w.shape[1]
        and activation in ACTIVATIONS and _two(out, grad, 0) and out.dtype == x.dtype
        and out.shape == (x.shape[0], w.shape[0])),
    "loss": lambda n, p, target, reduction="mean": reduction in _RED and _two(p, target, n),
    "loss_back": lambda n, p, target, grad, reduction="mean": (
        reduction in _RED and _two(p, target, n) and _reduced_grad(p, grad, reduction, p.shape)),
    "cross_entropy": lambda n, logits, target, reduction="mean": (
        reduction in _RED and _targets(logits, target, n)),
    "cross_entropy_back": lambda n, log_probs, target, grad, reduction="mean": (
        reduction in _RED and _targets(log_probs, target, n)
        and _reduced_grad(log_probs, grad, reduction, target.shape)),
    "sgd_step": lambda n, params, grads, bufs, lr, momentum=0.0, *a, **k: (
        _grads(params, grads) and _in_place(params, *((bufs,) if momentum else ()))),
    "adam_step": lambda n, params, grads, exp_avgs, exp_avg_sqs, *a, **k: (
        _grads(params, grads) and _in_place(params, exp_avgs, exp_avg_sqs)),
}

ACTIVATIONS = _np.ACTIVATIONS
# Kernel name -> (family, exact) of every native kernel (csrc/kernel_table.h). exact: bitwise
# the same result as the NumPy kernel on any input (autograd.compile may replay it natively).
TABLE = {name: (family, exact) for name, family, exact, _ in _C.KERNELS}


def routes_native(name: str, *args, **kwargs) -> bool:
    """True when ``native.<name>(*args, **kwargs)`` runs the _C kernel, False when it runs the
    NumPy kernel (a pure function of the dtypes, shapes and attrs)."""
    route = _ROUTES.get(name) or _ROUTES.get(TABLE.get(name, ("",))[0])
    return bool(route and hasattr(_np, name) and route(_MIN.get(name, _MIN_ALL), *args, **kwargs))


def _adapt(name: str, args) -> list:
    """What a routed call hands _C: C-contiguous arrays, class ids widened to int64."""
    args = [_contig(a) for a in args]
    if name.startswith("cross_entropy"):
        args[1] = np.ascontiguousarray(args[1], dtype=np.int64)
    return args


def _kernel(name: str, core, n: int):
    """native.<name>: _C.<name> where the route says so, else the NumPy kernel."""
    c, ref, spec = getattr(core, name), getattr(_npk, name), getattr(_np, name)
    route = _ROUTES.get(name) or _ROUTES[TABLE[name][0]]

    def routed(*args, **kwargs):  # the route decides: _C on adapted inputs, else NumPy
        if route(n, *args, **kwargs):
            return c(*_adapt(name, args), **kwargs)
        return ref(*args, **kwargs)
    if n > 1:  # a crossover: the route (size first) decides before anything runs
        return _dressed(routed, name, spec)
    if type(core) is types.ModuleType:
        # _C.<name> where its contract takes the arguments, else routed(); no Python frame
        return _dressed(core.dispatch(name, routed), name, spec)
    q = core.QUIET[name]  # a stand-in core (tests' spy on _C): the same logic in Python

    def kernel(*args, **kwargs):
        r = q(*args, **kwargs)  # NotImplemented where the contract refuses
        return routed(*args, **kwargs) if r is NotImplemented else r
    return _dressed(kernel, name, spec)


def _dressed(kernel, name: str, ref):
    """kernel, named and documented as numpy_kernels' ``ref`` (inspect.signature reads it)."""
    kernel.__name__ = kernel.__qualname__ = name
    kernel.__module__ = __name__
    kernel.__doc__ = ref.__doc__
    kernel.__signature__ = inspect.signature(ref)
    return kernel


def _bind(core=_C, all_sizes: bool = False) -> None:
    """Binds every numpy_kernels name: the table's kernels through their routes to ``core``,
    every other name to the NumPy provider's. ``all_sizes`` sets every crossover to 0 (tests)."""
    g = globals()
    for name, v in vars(_np).items():
        if name.startswith("_") or not inspect.isfunction(v) or v.__module__ != _np.__name__:
            continue
        g[name] = _kernel(name, core, 0 if all_sizes else _MIN.get(name, _MIN_ALL)) \
            if name in TABLE else getattr(_npk, name)


_bind()
