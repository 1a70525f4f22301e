"""Differentiable functions: the validated public entry point to every op in the op table.

Each function checks its arguments and names itself and the shapes in any error, then applies
one op. ``Tensor`` methods and operators, ``nn`` layers and losses all call these.
"""
from __future__ import annotations

import builtins
import numbers
import warnings
from typing import Any, Sequence, TypeAlias

import numpy as np

from .function import apply
from .hotpath import core as _core
from .ops import activation as A
from .ops import arith, linalg, loss, reduce
from .ops import shape as shape_ops
from .tensor import Tensor, as_tensor

__all__ = [
    "add", "sub", "mul", "div", "pow", "neg", "matmul", "exp", "log", "sqrt", "abs", "clip",
    "maximum", "minimum", "where", "sum", "mean", "max", "min", "var", "reshape", "flatten",
    "transpose", "permute", "expand", "getitem", "concatenate", "stack", "sigmoid", "tanh",
    "relu", "leaky_relu", "gelu", "softmax", "log_softmax", "logsumexp", "linear", "mse_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
]

Operand: TypeAlias = "Tensor | float | int | np.ndarray"
#: An axis argument: one axis, several, or None for all.
Axis: TypeAlias = "int | tuple[int, ...] | list[int] | None"


#: Two operands as Tensors; a Python scalar takes the other operand's dtype (compiled with
#: the hot path: ``autograd._core.pair``).
_pair = _core.pair


# --------------------------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------------------------

def add(a: Operand, b: Operand) -> Tensor:
    """a + b with broadcasting."""
    return apply(arith.Add, *_pair(a, b))


def sub(a: Operand, b: Operand) -> Tensor:
    """a - b with broadcasting."""
    return apply(arith.Sub, *_pair(a, b))


def mul(a: Operand, b: Operand) -> Tensor:
    """a * b with broadcasting."""
    return apply(arith.Mul, *_pair(a, b))


def div(a: Operand, b: Operand) -> Tensor:
    """a / b with broadcasting."""
    return apply(arith.Div, *_pair(a, b))


def pow(a: Operand, b: Operand) -> Tensor:  # noqa: A001 - mirrors the operator
    """a ** b with broadcasting; differentiable in both."""
    return apply(arith.Pow, *_pair(a, b))


def maximum(a: Operand, b: Operand) -> Tensor:
    """Elementwise max; ties split the gradient."""
    return apply(arith.Maximum, *_pair(a, b))


def minimum(a: Operand, b: Operand) -> Tensor:
    """Elementwise min; ties split the gradient."""
    return apply(arith.Minimum, *_pair(a, b))


def where(cond: Operand, a: Operand, b: Operand) -> Tensor:
    """a where cond else b (cond boolean, not differentiated)."""
    # a copy: backward reads the condition after the caller may have refilled their array
    c = np.array(cond._data if isinstance(cond, Tensor) else cond)
    if c.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got dtype {c.dtype}")
    a, b = _pair(a, b)
    try:
        np.broadcast_shapes(c.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition {c.shape} and operands {a.shape}, {b.shape} "
                         f"cannot be broadcast together") from None
    return apply(arith.Where, a, b, cond=c)


def neg(x: Tensor) -> Tensor:
    """-x."""
    return apply(arith.Neg, as_tensor(x))


def exp(x: Tensor) -> Tensor:
    """e ** x."""
    return apply(arith.Exp, as_tensor(x))


def log(x: Tensor) -> Tensor:
    """Natural log; log of a negative number is NaN and log(0) is -inf, as in NumPy."""
    return apply(arith.Log, as_tensor(x))


def sqrt(x: Tensor) -> Tensor:
    """Square root."""
    return apply(arith.Sqrt, as_tensor(x))


def abs(x: Tensor) -> Tensor:  # noqa: A001
    """|x|; its gradient at 0 is 0."""
    return apply(arith.Abs, as_tensor(x))


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    """x limited to [min, max]; the gradient is zero outside."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min {min} is greater than max {max}")
    return apply(arith.Clip, as_tensor(x), lo=min, hi=max)


# --------------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------------

def _axes(name: str, x: Tensor, axis) -> tuple[int, ...] | None:
    """Normalise ``axis`` (None, int or sequence, negatives allowed) to sorted non-negatives."""
    if axis is None:
        return None
    seq = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in seq:
        if not isinstance(a, numbers.Integral) or not -x.ndim <= a < builtins.max(x.ndim, 1):
            raise ValueError(f"{name}: axis {a} is out of range for a tensor of shape {x.shape}")
        out.append(int(a) % builtins.max(x.ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis}")
    return tuple(sorted(out)) if x.ndim else None


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (int, tuple or None for all)."""
    x = as_tensor(x)
    return apply(reduce.Sum, x, axis=_axes("sum", x, axis), keepdims=keepdims)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``."""
    x = as_tensor(x)
    return apply(reduce.Mean, x, axis=_axes("mean", x, axis), keepdims=keepdims)


def _extremum(op, name: str, x: Tensor, axis, keepdims: bool) -> Tensor:
    x = as_tensor(x)
    ax = _axes(name, x, axis)
    if x.size == 0 and (ax is None or any(x.shape[a] == 0 for a in ax)):
        raise ValueError(f"{name}: cannot reduce an empty tensor of shape {x.shape} "
                         f"over axis {axis}")
    return apply(op, x, axis=ax, keepdims=keepdims)


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Max over ``axis``; ties share the gradient equally."""
    return _extremum(reduce.Max, "max", x, axis, keepdims)


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Min over ``axis``; ties share the gradient equally."""
    return _extremum(reduce.Min, "min", x, axis, keepdims)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis`` with NumPy's convention (``ddof=0``: divide by n)."""
    x = as_tensor(x)
    return apply(reduce.Var, x, axis=_axes("var", x, axis), keepdims=keepdims, ddof=ddof)


# --------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------

def reshape(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """x with a new shape of the same size (one dimension may be -1)."""
    x = as_tensor(x)
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = tuple(shape[0])
    try:
        target = _probe(x.shape).reshape(shape).shape
    except (ValueError, TypeError):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"(size {x.size}) into {tuple(shape)}") from None
    return apply(shape_ops.Reshape, x, shape=target)


def flatten(x: Tensor, start_axis: int = 0) -> Tensor:
    """Merge the axes from ``start_axis`` on into one (``start_axis=1`` keeps the batch axis)."""
    x = as_tensor(x)
    return reshape(x, x.shape[:start_axis] + (-1,))


def permute(x: Tensor, *axes: int | Sequence[int]) -> Tensor:
    """x with its axes in the given order."""
    x = as_tensor(x)
    if len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
        axes = tuple(axes[0])
    n = x.ndim
    # the range test first: % alone would wrap an out-of-range axis onto a valid one
    in_range = all(isinstance(a, numbers.Integral) and -n <= a < n for a in axes)
    norm = tuple(int(a) % n for a in axes) if in_range and n else ()
    if not in_range or sorted(norm) != list(range(n)):
        raise ValueError(f"permute: {tuple(axes)} is not a permutation of the axes of a "
                         f"tensor of shape {x.shape}")
    return apply(shape_ops.Transpose, x, axes=norm)


def transpose(x: Tensor, axis0: int | None = None, axis1: int | None = None) -> Tensor:
    """Swap two axes, or reverse all of them when none are given (``x.T``)."""
    x = as_tensor(x)
    if axis0 is None and axis1 is None:
        return apply(shape_ops.Transpose, x, axes=tuple(range(x.ndim))[::-1])
    axes = list(range(x.ndim))
    try:
        axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    except (IndexError, TypeError):
        raise ValueError(f"transpose: axes {axis0} and {axis1} are out of range for shape "
                         f"{x.shape}") from None
    return apply(shape_ops.Transpose, x, axes=tuple(axes))


def expand(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """x broadcast to ``shape``; the gradient is summed back."""
    x = as_tensor(x)
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = tuple(shape[0])
    try:
        fits = np.broadcast_shapes(x.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"expand: a tensor of shape {x.shape} cannot be broadcast to "
                         f"{tuple(shape)}")
    return apply(shape_ops.Expand, x, shape=tuple(shape))


def getitem(x: Tensor, index: Any) -> Tensor:
    """x[index] with slices, ints, None, Ellipsis, integer arrays and boolean masks."""
    x = as_tensor(x)
    norm = _normalise_index(index)
    try:
        _probe(x.shape)[norm]
    except IndexError as exc:
        raise IndexError(f"getitem: index {index!r} is invalid for a tensor of shape "
                         f"{x.shape}: {exc}") from None
    return apply(shape_ops.GetItem, x, index=norm)


def _probe(shape: tuple[int, ...]) -> np.ndarray:
    """A zero-stride stand-in of ``shape``: NumPy applies its own reshape and indexing rules to
    it (for validation) without allocating anything the size of the tensor."""
    return np.broadcast_to(np.bool_(False), shape)


def _normalise_index(index):
    """Tensors, lists and arrays in an index become private arrays, so forward and backward see
    one index even if the caller changes theirs in between."""
    if isinstance(index, tuple):
        return tuple(_index_part(p) for p in index)
    return _index_part(index)


def _index_part(p):
    if isinstance(p, Tensor):
        p = p._data
    if isinstance(p, (list, np.ndarray)):
        p = np.array(p)
    if isinstance(p, np.ndarray) and p.dtype.kind not in "biu":
        raise IndexError(f"getitem: index arrays must be integer or boolean, got {p.dtype}")
    return p


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("concatenate: needs at least one tensor")
    ax = _join_axis("concatenate", ts[0], axis, 0)
    for t in ts[1:]:
        if t.ndim != ts[0].ndim or any(
                i != ax and n != m for i, (n, m) in enumerate(zip(t.shape, ts[0].shape))):
            raise ValueError(f"concatenate: shapes {ts[0].shape} and {t.shape} differ outside "
                             f"axis {axis}")
    return apply(shape_ops.Concatenate, *ts, axis=ax)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("stack: needs at least one tensor")
    for t in ts[1:]:
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: all tensors must have one shape, got {ts[0].shape} "
                             f"and {t.shape}")
    return apply(shape_ops.Stack, *ts, axis=_join_axis("stack", ts[0], axis, 1))


def _join_axis(name: str, t: Tensor, axis: int, extra: int) -> int:
    n = t.ndim + extra
    if not -n <= axis < n:
        raise ValueError(f"{name}: axis {axis} is out of range for tensors of shape {t.shape}")
    return axis % n


# --------------------------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------------------------

def matmul(a: Operand, b: Operand) -> Tensor:
    """Matrix product with NumPy semantics: 1-D operands promoted, batch axes broadcast."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: {a.shape} "
                         f"has {k_a} columns but {b.shape} has {k_b} rows")
    if a.ndim > 2 or b.ndim > 2:
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} cannot be "
                             f"broadcast together") from None
    return apply(linalg.Matmul, a, b)


_LINEAR_ACTIVATIONS = (None, "relu", "sigmoid", "tanh")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None,
           activation: str | None = None) -> Tensor:
    """act(x @ weight.T + bias), one fused kernel: weight (out, in) as in PyTorch.

    ``activation`` may be None, 'relu', 'sigmoid' or 'tanh'. Inputs of more than 2 dimensions
    are flattened over their leading axes and restored.
    """
    x = as_tensor(x)
    if activation not in _LINEAR_ACTIVATIONS:
        raise ValueError(f"linear: unknown activation {activation!r}; expected one of "
                         f"{_LINEAR_ACTIVATIONS}")
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                         f"{weight.shape} (expected input (..., {weight.shape[-1]}))")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} does not match weight of shape "
                         f"{weight.shape} (expected ({weight.shape[0]},))")
    lead = x.shape[:-1]
    if x.ndim != 2:
        x = reshape(x, (-1, x.shape[-1]))
    args = (x, weight) if bias is None else (x, weight, bias)
    out = apply(linalg.Linear, *args, activation=activation)
    return out if len(lead) == 1 else reshape(out, lead + (weight.shape[0],))


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x)."""
    return apply(A.Sigmoid, as_tensor(x))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return apply(A.Tanh, as_tensor(x))


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return apply(A.Relu, as_tensor(x))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope * x."""
    return apply(A.LeakyRelu, as_tensor(x), slope=float(negative_slope))


def gelu(x: Tensor) -> Tensor:
    """GELU in its tanh form (PyTorch's ``approximate='tanh'``)."""
    return apply(A.Gelu, as_tensor(x))


def _one_axis(name: str, x: Tensor, axis: int) -> int:
    if x.ndim == 0:
        raise ValueError(f"{name}: needs at least 1 dimension, got a 0-d tensor")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for a tensor of shape {x.shape}")
    return axis % x.ndim


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs."""
    x = as_tensor(x)
    return apply(A.Softmax, x, axis=_one_axis("softmax", x, axis))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably."""
    x = as_tensor(x)
    return apply(A.LogSoftmax, x, axis=_one_axis("log_softmax", x, axis))


def logsumexp(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) along ``axis``, computed stably."""
    x = as_tensor(x)
    return apply(A.LogSumExp, x, axis=_one_axis("logsumexp", x, axis), keepdims=keepdims)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

_REDUCTIONS = ("mean", "sum", "none")


def _loss_pair(name: str, pred, target, reduction: str) -> tuple[Tensor, Tensor]:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    pred = as_tensor(pred)
    target = target if isinstance(target, Tensor) else as_tensor(target, like=pred)
    if target.dtype != pred.dtype:
        raise TypeError(f"{name}: target dtype {target.dtype} differs from input dtype "
                        f"{pred.dtype}; convert it explicitly")
    if target.shape != pred.shape:
        try:
            np.broadcast_shapes(pred.shape, target.shape)
        except ValueError:
            raise ValueError(f"{name}: input of shape {pred.shape} and target of shape "
                             f"{target.shape} cannot be broadcast together") from None
        warnings.warn(f"{name}: target shape {target.shape} differs from input shape "
                      f"{pred.shape}; they will be broadcast, which is rarely intended "
                      f"(e.g. (n,) against (n, 1) gives an (n, n) loss)", UserWarning,
                      stacklevel=3)
        shape_ = np.broadcast_shapes(pred.shape, target.shape)
        pred, target = (t if t.shape == shape_ else expand(t, shape_) for t in (pred, target))
    return pred, target


def mse_loss(input: Tensor, target: Operand, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error (pred - target)^2, reduced."""
    p, t = _loss_pair("mse_loss", input, target, reduction)
    return apply(loss.MseLoss, p, t, reduction=reduction)


def binary_cross_entropy(input: Tensor, target: Operand, reduction: str = "mean") -> Tensor:  # noqa: A002
    """BCE of probabilities in [0, 1] (log clamped at -100 as in PyTorch)."""
    p, t = _loss_pair("binary_cross_entropy", input, target, reduction)
    lo, hi = (float(p._data.min()), float(p._data.max())) if p.size else (0.0, 1.0)
    if lo < 0 or hi > 1:
        raise ValueError(f"binary_cross_entropy: input must hold probabilities in [0, 1], got "
                         f"values in [{lo:g}, {hi:g}]; use binary_cross_entropy_with_logits "
                         f"for raw scores")
    return apply(loss.BinaryCrossEntropy, p, t, reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Operand,  # noqa: A002
                                     reduction: str = "mean") -> Tensor:
    """BCE of sigmoid(input), computed stably from the logits."""
    p, t = _loss_pair("binary_cross_entropy_with_logits", input, target, reduction)
    return apply(loss.BinaryCrossEntropyWithLogits, p, t, reduction=reduction)


def cross_entropy(input: Tensor, target: Operand, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Softmax cross-entropy from logits (n, c) and integer class targets (n,).

    Computed through log-softmax, so logits of magnitude 1e4 give finite losses.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, "
                         f"got {reduction!r}")
    logits = as_tensor(input)
    tgt = np.asarray(target._data if isinstance(target, Tensor) else target)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (batch, classes), got "
                         f"{logits.shape}")
    if tgt.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype "
                        f"{tgt.dtype}")
    if tgt.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: batch mismatch: logits {logits.shape} need targets "
                         f"of shape ({logits.shape[0]},), got {tgt.shape}")
    n_classes = logits.shape[1]
    if tgt.size and (tgt.min() < 0 or tgt.max() >= n_classes):
        bad = int(tgt[(tgt < 0) | (tgt >= n_classes)][0])
        raise ValueError(f"cross_entropy: target {bad} is out of range for {n_classes} "
                         f"classes (valid: 0..{n_classes - 1})")
    # a copy (astype always copies): backward reads the targets after the caller may have
    # refilled their array
    return apply(loss.CrossEntropy, logits, target=tgt.astype(np.int64), reduction=reduction)
