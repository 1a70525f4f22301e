"""The differentiable kernel provider: the kernel API on Tensors, for ``create_graph`` backward.

The op table's gradients call named kernels, ``B.k.<kernel>(...)``, on raw arrays. To record a
backward pass as a graph (``grad(..., create_graph=True)``), ``autograd.gradients`` installs this
module as ``backend.k`` while it runs an op's ``forward`` and ``backward`` on Tensors: each kernel
here computes the same value as its array twin, but through the op table's differentiable ops,
so the gradient formula is written once (in the op table) and serves both paths.

Rules every kernel follows:

- Called with no Tensor among its arguments (a forward inside one of these ops), it falls
  through to the array kernel of the provider that was active in this thread when this one
  was installed.
- Arrays and Python or NumPy scalars mixed with Tensors are constants.
- Masks and counts (relu, clip, max/min ties, the ``*_back`` of piecewise functions) are
  constants with respect to the inputs, as their derivative is zero almost everywhere.
- Fused kernels (``linear``, the losses, ``cross_entropy``) are spelled as compositions of ops,
  and so are their ``*_back`` kernels.

A kernel name missing here raises, for Tensors, an error that names it and this file; for
arrays it still falls through, so new ops keep working in every other path.
"""
from __future__ import annotations

import builtins
import math
import sys
import threading
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np

from .. import backend as B
from ..function import apply
from ..grad_mode import state
from ..ops import activation as A
from ..ops import arith, linalg, reduce
from ..ops import shape as S
from ..tensor import Tensor, as_tensor

#: The array provider that array-only calls fall through to, per thread: the one that was
#: active in this thread when :func:`installed` swapped this module in.
_local = threading.local()


def _fallback() -> ModuleType:
    base = getattr(_local, "base", None)
    if base is None:  # called outside installed(): the thread's own provider serves arrays
        base = state.k if state.k is not sys.modules[__name__] else B.numpy_provider
    return base


@contextmanager
def installed() -> Iterator[None]:
    """Make this module this thread's ``backend.k`` while recording a backward (nestable).

    The kernel provider is per thread (``grad_mode.state.k``), so other threads keep theirs.
    """
    this = sys.modules[__name__]
    previous = state.k
    if previous is this:
        yield
        return
    outer, _local.base = getattr(_local, "base", None), previous
    state.k = this
    try:
        yield
    finally:
        state.k = previous
        _local.base = outer


def _has_tensor(args: tuple) -> bool:
    for a in args:
        if isinstance(a, Tensor):
            return True
        if isinstance(a, (list, tuple)) and any(isinstance(x, Tensor) for x in a):
            return True
    return False


def _kernel(fn: Callable) -> Callable:
    """A differentiable kernel: runs ``fn`` when a Tensor is among the arguments, else the
    array kernel of the same name."""
    name = fn.__name__

    def kernel(*args: Any, **kwargs: Any) -> Any:
        if _has_tensor(args) or _has_tensor(tuple(kwargs.values())):
            return fn(*args, **kwargs)
        return getattr(_fallback(), name)(*args, **kwargs)

    kernel.__name__ = name
    kernel.__doc__ = fn.__doc__
    kernel.__wrapped__ = fn  # type: ignore[attr-defined]
    return kernel


def __getattr__(name: str) -> Callable:
    """Kernels not spelled here: arrays fall through; Tensors get an error naming the kernel."""
    if name.startswith("__"):
        raise AttributeError(name)
    target = getattr(_fallback(), name, None)
    if target is not None and not callable(target):
        return target  # a constant of the array provider (e.g. a table of names)

    def missing(*args: Any, **kwargs: Any) -> Any:
        if _has_tensor(args) or _has_tensor(tuple(kwargs.values())):
            raise NotImplementedError(
                f"create_graph: kernel {name!r} has no differentiable form; add it to "
                f"autograd/backend/tensor_kernels.py (as a composition of ops) so gradients "
                f"of the ops that use it can be differentiated again")
        return getattr(_fallback(), name)(*args, **kwargs)
    missing.__name__ = name
    return missing


# --------------------------------------------------------------------------------------------
# Operands
# --------------------------------------------------------------------------------------------

def _t(x: Any, like: Tensor) -> Tensor:
    """``x`` as a Tensor: Tensors as they are, arrays and scalars as constants of like's dtype
    (arrays of another kind keep their own)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "f" and x.dtype != like.dtype:
            x = x.astype(like.dtype)
        return Tensor._wrap(x)
    return as_tensor(x, like=like)


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    like = a if isinstance(a, Tensor) else b
    return _t(a, like), _t(b, like)


def _data(x: Any) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _const(array: np.ndarray, like: Tensor) -> Tensor:
    """A constant (no graph) of like's dtype: masks, counts, one-hots."""
    return Tensor._wrap(np.asarray(array, dtype=like.dtype))


def _axes(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """The reduction ops take None or sorted non-negative axes; kernels also take an int."""
    if axis is None:
        return None
    seq = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(int(a) % builtins.max(ndim, 1) for a in seq)) if ndim else None


def _expand_dims(x: Tensor, axis: Any) -> Tensor:
    """x with size-1 axes inserted where a reduction over ``axis`` removed them."""
    shape = list(x.shape)
    for a in sorted(axis if isinstance(axis, tuple) else (axis,)):
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


# --------------------------------------------------------------------------------------------
# Elementwise arithmetic
# --------------------------------------------------------------------------------------------

@_kernel
def add(a, b):
    """a + b."""
    return apply(arith.Add, *_pair(a, b))


@_kernel
def sub(a, b):
    """a - b."""
    return apply(arith.Sub, *_pair(a, b))


@_kernel
def mul(a, b):
    """a * b."""
    return apply(arith.Mul, *_pair(a, b))


@_kernel
def div(a, b):
    """a / b."""
    return apply(arith.Div, *_pair(a, b))


@_kernel
def pow(a, b):  # noqa: A001
    """a ** b."""
    return apply(arith.Pow, *_pair(a, b))


@_kernel
def maximum(a, b):
    """Elementwise max."""
    return apply(arith.Maximum, *_pair(a, b))


@_kernel
def minimum(a, b):
    """Elementwise min."""
    return apply(arith.Minimum, *_pair(a, b))


def _pairwise_back(a, b, grad, wa: np.ndarray):
    grad = _t(grad, a if isinstance(a, Tensor) else b)
    w = _const(wa, grad)
    return mul(grad, w), mul(grad, _const(1 - wa, grad))


@_kernel
def maximum_back(a, b, grad):
    """The weights 1 / 0 / 0.5 (ties) are constants."""
    a_, b_ = _data(a), _data(b)
    return _pairwise_back(a, b, grad, (a_ > b_) + (a_ == b_) * 0.5)


@_kernel
def minimum_back(a, b, grad):
    """The weights 1 / 0 / 0.5 (ties) are constants."""
    a_, b_ = _data(a), _data(b)
    return _pairwise_back(a, b, grad, (a_ < b_) + (a_ == b_) * 0.5)


@_kernel
def where(cond, a, b):
    """a where cond else b; cond is a constant boolean array."""
    a, b = _pair(a, b)
    return apply(arith.Where, a, b, cond=_data(cond))


@_kernel
def neg(x):
    """-x."""
    return apply(arith.Neg, x)


@_kernel
def exp(x):
    """e ** x."""
    return apply(arith.Exp, x)


@_kernel
def log(x):
    """Natural log."""
    return apply(arith.Log, x)


@_kernel
def sqrt(x):
    """Square root."""
    return apply(arith.Sqrt, x)


@_kernel
def abs(x):  # noqa: A001
    """|x|."""
    return apply(arith.Abs, x)


@_kernel
def sign(x):
    """sign(x): a constant (its derivative is zero almost everywhere)."""
    return _const(np.sign(x._data), x)


@_kernel
def compare(a, b, op):
    """A boolean array: comparisons are constants (their derivative is zero)."""
    return _fallback().compare(_data(a), _data(b), op)


@_kernel
def clip(x, lo, hi):
    """x limited to [lo, hi]."""
    return apply(arith.Clip, x, lo=lo, hi=hi)


@_kernel
def clip_back(x, grad, lo, hi):
    """grad times the constant mask lo <= x <= hi."""
    d = _data(x)
    mask = np.ones(d.shape, dtype=bool)
    if lo is not None:
        mask &= d >= lo
    if hi is not None:
        mask &= d <= hi
    return mul(grad, _const(mask, grad))


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

@_kernel
def sigmoid(x):
    """1 / (1 + e^-x)."""
    return apply(A.Sigmoid, x)


@_kernel
def sigmoid_back(out, grad):
    """grad * out * (1 - out), spelled g o - (g o) o: no scalar operand to broadcast."""
    go = mul(grad, out)
    return sub(go, mul(go, out))


@_kernel
def tanh(x):
    """Hyperbolic tangent."""
    return apply(A.Tanh, x)


@_kernel
def tanh_back(out, grad):
    """grad * (1 - out^2), spelled g - (g out) out: no scalar operand to broadcast."""
    return sub(grad, mul(mul(grad, out), out))


@_kernel
def relu(x):
    """max(x, 0)."""
    return apply(A.Relu, x)


@_kernel
def relu_back(x, grad):
    """grad times the constant mask x > 0."""
    return mul(grad, _const(_data(x) > 0, grad))


@_kernel
def leaky_relu(x, slope):
    """x if x > 0 else slope x."""
    return apply(A.LeakyRelu, x, slope=slope)


@_kernel
def leaky_relu_back(x, grad, slope):
    """grad times the constant 1 (x > 0) or slope."""
    return mul(grad, _const(np.where(_data(x) > 0, 1.0, slope), grad))


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_tanh(x: Tensor) -> Tensor:
    return tanh(mul(_GELU_C, add(x, mul(0.044715, mul(x, mul(x, x))))))


@_kernel
def gelu(x):
    """GELU, tanh form."""
    return apply(A.Gelu, x)


@_kernel
def gelu_back(x, grad):
    """grad (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))."""
    t = _gelu_tanh(x)
    dt = mul(mul(sub(1, mul(t, t)), _GELU_C), add(1, mul(3 * 0.044715, mul(x, x))))
    return mul(grad, add(mul(0.5, add(1, t)), mul(mul(0.5, x), dt)))


@_kernel
def gelu_erf(x):
    """GELU, exact (erf) form: the Gelu op with approximate='none' (issue 13's default)."""
    return apply(A.Gelu, x, approximate="none")


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@_kernel
def gelu_erf_back(x, grad):
    """grad (Phi(x) + x phi(x)): Phi by the normal-CDF op, phi = exp(-x^2 / 2) / sqrt(2 pi)."""
    pdf = mul(_INV_SQRT_2PI, exp(mul(-0.5, mul(x, x))))
    return mul(grad, add(apply(A._NormalCdf, x), mul(x, pdf)))


# --------------------------------------------------------------------------------------------
# Softmax family
# --------------------------------------------------------------------------------------------

@_kernel
def softmax(x, axis):
    """Softmax along ``axis``."""
    return apply(A.Softmax, x, axis=axis)


@_kernel
def softmax_back(out, grad, axis):
    """out * (grad - sum(grad * out, axis))."""
    return mul(out, sub(grad, sum(mul(grad, out), axis, True)))


@_kernel
def log_softmax(x, axis):
    """Log-softmax along ``axis``."""
    return apply(A.LogSoftmax, x, axis=axis)


@_kernel
def log_softmax_back(out, grad, axis):
    """grad - exp(out) * sum(grad, axis)."""
    return sub(grad, mul(exp(out), sum(grad, axis, True)))


@_kernel
def logsumexp(x, axis, keepdims=False):
    """log(sum(exp(x), axis))."""
    return apply(A.LogSumExp, x, axis=axis, keepdims=keepdims)


@_kernel
def logsumexp_back(x, out, grad, axis, keepdims=False):
    """grad * exp(x - out), both broadcast back along ``axis``."""
    if not keepdims:
        out = _expand_dims(out, axis)
        grad = _expand_dims(grad, axis)
    return mul(grad, exp(sub(x, out)))


# --------------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------------

@_kernel
def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over ``axis``."""
    return apply(reduce.Sum, x, axis=_axes(axis, x.ndim), keepdims=keepdims)


@_kernel
def max(x, axis=None, keepdims=False):  # noqa: A001
    """Max over ``axis``."""
    return apply(reduce.Max, x, axis=_axes(axis, x.ndim), keepdims=keepdims)


@_kernel
def min(x, axis=None, keepdims=False):  # noqa: A001
    """Min over ``axis``."""
    return apply(reduce.Min, x, axis=_axes(axis, x.ndim), keepdims=keepdims)


@_kernel
def extremum_back(x, out, grad, axis, keepdims):
    """grad shared among the ties: the mask and its count are constants."""
    xd, od = _data(x), _data(out)
    if not keepdims and axis is not None:
        od = np.expand_dims(od, axis)
        grad = _expand_dims(grad, axis)
    mask = (xd == od).astype(np.float64)
    share = mask / np.sum(mask, axis=axis, keepdims=True)
    return mul(grad, _const(share, grad))


@_kernel
def sum_to(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape``."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    out = sum(grad, axes, True) if axes else grad
    return reshape(out, shape)


@_kernel
def broadcast_to(x, shape):
    """x broadcast to ``shape``."""
    return apply(S.Expand, x, shape=tuple(shape))


# --------------------------------------------------------------------------------------------
# Shape and data movement
# --------------------------------------------------------------------------------------------

@_kernel
def cast(x, dtype, copy=True):
    """x converted to ``dtype`` (the gradient is cast back)."""
    return apply(S.Cast, x, dtype=np.dtype(dtype))


@_kernel
def reshape(x, shape):
    """x with a new shape."""
    return apply(S.Reshape, x, shape=tuple(shape))


@_kernel
def transpose(x, axes):
    """x with permuted axes (reversed when None)."""
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(axes)
    return apply(S.Transpose, x, axes=axes)


@_kernel
def getitem(x, index):
    """x[index]."""
    return apply(S.GetItem, x, index=index)


@_kernel
def index_add(shape, index, grad):
    """Zeros of ``shape`` with ``grad`` added at ``index`` (the adjoint of getitem)."""
    return apply(S._IndexAdd, grad, shape=tuple(shape), index=index)


@_kernel
def concatenate(arrays, axis):
    """Join along an existing axis."""
    like = next(a for a in arrays if isinstance(a, Tensor))
    return apply(S.Concatenate, *(_t(a, like) for a in arrays), axis=axis)


@_kernel
def stack(arrays, axis):
    """Join along a new axis."""
    like = next(a for a in arrays if isinstance(a, Tensor))
    return apply(S.Stack, *(_t(a, like) for a in arrays), axis=axis)


@_kernel
def split(x, sizes, axis):
    """Consecutive pieces of x along ``axis`` (each a differentiable slice)."""
    pieces, start = [], 0
    lead = (slice(None),) * axis
    for n in sizes:
        pieces.append(getitem(x, lead + (slice(start, start + n),)))
        start += n
    return pieces


# --------------------------------------------------------------------------------------------
# Linear algebra and fused layers
# --------------------------------------------------------------------------------------------

def _swap_last(x: Tensor) -> Tensor:
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(x, axes)


@_kernel
def matmul(a, b, trans_a=False, trans_b=False):
    """op(a) @ op(b) for operands of at least 2 dimensions."""
    a, b = _pair(a, b)
    return apply(linalg.Matmul, _swap_last(a) if trans_a else a, _swap_last(b) if trans_b else b)


_ACT = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}
_ACT_BACK = {"relu": relu_back, "sigmoid": sigmoid_back, "tanh": tanh_back}


@_kernel
def linear(x, w, b, activation=None):
    """act(x @ w.T + b) as matmul, add and the activation's own op."""
    out = matmul(x, w, trans_b=True)
    if b is not None:
        out = add(out, b)
    if activation is None:
        return out
    if activation not in _ACT:
        raise ValueError(f"linear: unknown activation {activation!r}")
    return _ACT[activation](out)


@_kernel
def linear_back(x, w, out, grad, activation=None, has_bias=True, need_dx=True):
    """(dx, dw, db) from dz = grad * act'(out), each an op of dz (dx, db None when not
    wanted)."""
    dz = grad if activation is None else _ACT_BACK[activation](out, grad)
    db = sum(dz, 0) if has_bias else None
    return (matmul(dz, w) if need_dx else None), matmul(dz, x, trans_a=True), db


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return div(sum(loss), float(loss.size) if loss.size else float("nan"))
    if reduction == "sum":
        return sum(loss)
    return loss


def _unreduce(grad: Tensor, size: int, reduction: str) -> Tensor:
    return div(grad, float(size)) if reduction == "mean" and size else grad


@_kernel
def mse(pred, target, reduction="mean"):
    """(pred - target)^2, reduced."""
    d = sub(pred, target)
    return _reduce(mul(d, d), reduction)


@_kernel
def mse_back(pred, target, grad, reduction="mean"):
    """2 (pred - target) * grad (/ n for 'mean')."""
    return mul(mul(2, sub(pred, target)), _unreduce(grad, _data(pred).size, reduction))


_LOG_FLOOR = -100.0


@_kernel
def bce(prob, target, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)), logs clamped at -100 as in PyTorch."""
    lp = clip(log(prob), _LOG_FLOOR, None)
    l1p = clip(log(sub(1, prob)), _LOG_FLOOR, None)
    return _reduce(neg(add(mul(target, lp), mul(sub(1, target), l1p))), reduction)


@_kernel
def bce_back(prob, target, grad, reduction="mean"):
    """(p - t) / max(p (1 - p), 1e-12) * grad."""
    denom = maximum(mul(prob, sub(1, prob)), 1e-12)
    return mul(div(sub(prob, target), denom), _unreduce(grad, _data(prob).size, reduction))


@_kernel
def bce_with_logits(logits, target, reduction="mean"):
    """max(z, 0) - z t + log(1 + e^-|z|)."""
    loss = add(sub(relu(logits), mul(logits, target)), log(add(1, exp(neg(abs(logits))))))
    return _reduce(loss, reduction)


@_kernel
def bce_with_logits_back(logits, target, grad, reduction="mean"):
    """(sigmoid(z) - t) * grad."""
    return mul(sub(sigmoid(logits), target), _unreduce(grad, _data(logits).size, reduction))


@_kernel
def cross_entropy(logits, target, reduction="mean"):
    """(loss, log_probs) through log_softmax and a differentiable pick of the targets."""
    logp = log_softmax(logits, 1)
    target = _data(target)
    picked = neg(getitem(logp, (np.arange(logits.shape[0]), target)))
    return _reduce(picked, reduction), logp


@_kernel
def cross_entropy_back(log_probs, target, grad, reduction="mean"):
    """(softmax - onehot(target)) * grad (/ n for 'mean'); the one-hot is a constant."""
    n = log_probs.shape[0]
    onehot = np.zeros(log_probs.shape)
    onehot[np.arange(n), _data(target)] = 1
    d = sub(exp(log_probs), _const(onehot, log_probs))
    grad = _t(grad, log_probs)
    if reduction == "none":
        return mul(d, reshape(grad, (n, 1)))
    return mul(d, div(grad, float(n)) if reduction == "mean" and n else grad)
