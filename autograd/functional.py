"""Differentiable functions: the validated public entry point to every op in the op table.

Each function checks its arguments and names itself and the shapes in any error, then applies
one op. ``Tensor`` methods and operators, ``nn`` layers and losses all call these.
"""
from __future__ import annotations

import builtins
import functools
import inspect
import numbers
import warnings
from typing import Any, NamedTuple, Sequence, TypeAlias

import numpy as np

from .capture import host_read, live
from .function import apply, apply_to, broadcast_shape
from .grad_mode import state
from .ops import activation as A
from .ops import arith, linalg, loss, reduce
from .ops import shape as shape_ops
from .tensor import DEFAULT_DTYPE, Tensor, _check_dtype, as_tensor

__all__ = [
    "add", "sub", "mul", "div", "pow", "neg", "matmul", "exp", "log", "sqrt", "abs", "clip",
    "maximum", "minimum", "where", "sum", "mean", "max", "min", "var", "reshape", "flatten",
    "transpose", "permute", "expand", "getitem", "concatenate", "stack", "sigmoid", "tanh",
    "relu", "leaky_relu", "gelu", "softmax", "log_softmax", "logsumexp", "linear", "mse_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "clamp",
    "square",
]

Operand: TypeAlias = "Tensor | float | int | np.ndarray"
#: An axis argument: one axis, several, or None for all.
Axis: TypeAlias = "int | tuple[int, ...] | list[int] | None"


def _pair(a, b) -> tuple[Tensor, Tensor]:
    """Two operands as Tensors, with PyTorch's rules. A Python scalar takes the tensor's dtype
    unless it is of a higher kind (bool < int < float), in which case both become the default
    dtype of the scalar's kind (int64, or the default float dtype). An integer or boolean
    tensor with a float tensor takes the float's dtype (float32 with float64 stays an error:
    autograd never changes a float precision silently)."""
    if isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            a, b = _with_scalar(a, b)
    elif isinstance(b, Tensor):
        b, a = _with_scalar(b, a)
    else:
        a, b = as_tensor(a), as_tensor(b)
    da, db = a._data.dtype, b._data.dtype
    if da is not db and da.kind != db.kind:
        if da.kind == "f" and db.kind in "biu":
            b = Tensor._wrap(_astype(b._data, da))
        elif db.kind == "f" and da.kind in "biu":
            a = Tensor._wrap(_astype(a._data, db))
    return a, b


def _astype(a: np.ndarray, dtype: Any) -> np.ndarray:
    """a converted to dtype (a copy), through the kernel provider so autograd.compile records
    it."""
    return state.k.cast(a, dtype)


def _with_scalar(t: Tensor, s) -> tuple[Tensor, Tensor]:
    kind = t._data.dtype.kind
    if kind != "f" and isinstance(s, numbers.Number) and not isinstance(s, (bool, np.bool_)):
        if not isinstance(s, numbers.Integral):  # a float scalar lifts int/bool to float
            t = Tensor._wrap(_astype(t._data, DEFAULT_DTYPE))
        elif kind == "b":  # an int scalar lifts bool to int64
            t = Tensor._wrap(_astype(t._data, np.int64))
    return t, as_tensor(s, like=t)


def _floating(x: Tensor) -> Tensor:
    """Float-only ops take integer and boolean tensors as the default float dtype (PyTorch's
    rule; where PyTorch refuses, e.g. mean or mse_loss of int64, autograd promotes the same)."""
    return x if x._data.dtype.kind == "f" else Tensor._wrap(_astype(x._data, DEFAULT_DTYPE))


def _no_bool(name: str, *ts: Tensor) -> None:
    for t in ts:
        if t._data.dtype.kind == "b":
            raise TypeError(f"{name}: not defined for boolean tensors (as in PyTorch); use "
                            f"logical operations, or convert with .astype('int64') first")


# --------------------------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------------------------

def add(a: Operand, b: Operand) -> Tensor:
    """a + b with broadcasting."""
    return apply(arith.Add, *_pair(a, b))


def sub(a: Operand, b: Operand) -> Tensor:
    """a - b with broadcasting."""
    a, b = _pair(a, b)
    if a._data.dtype.kind == "b" and b._data.dtype.kind == "b":
        _no_bool("sub", a)
    return apply(arith.Sub, a, b)


def mul(a: Operand, b: Operand) -> Tensor:
    """a * b with broadcasting."""
    return apply(arith.Mul, *_pair(a, b))


def div(a: Operand, b: Operand) -> Tensor:
    """a / b with broadcasting: true division, so integers and booleans give the default float
    dtype (as in PyTorch)."""
    a, b = _pair(a, b)
    if a._data.dtype.kind != "f" and b._data.dtype.kind != "f":
        a, b = _floating(a), _floating(b)
    return apply(arith.Div, a, b)


def pow(a: Operand, b: Operand) -> Tensor:  # noqa: A001 - mirrors the operator
    """a ** b with broadcasting; differentiable in both (the gradients at a = 0 are PyTorch's:
    0 for a zero exponent, and 0 with respect to a non-negative exponent)."""
    scalar = not isinstance(b, (Tensor, np.ndarray, list))
    a, b = _pair(a, b)
    if a._data.dtype.kind in "iub" and b._data.dtype.kind in "iu" and b.size \
            and b._data.min() < 0:
        if scalar:  # PyTorch refuses a negative Python exponent of an integer tensor
            raise ValueError(f"pow: integers to negative integer powers are not allowed "
                             f"(a {a.dtype} tensor to the power {b.item()}); convert the base to "
                             f"float")
        return _int_pow_negative(a, b)
    return apply(arith.Pow, a, b)


@live  # autograd.compile: integer arithmetic on the host, replayed live
def _int_pow_negative(a: Tensor, b: Tensor) -> Tensor:
    """Integer tensors to integer tensor powers, some negative: PyTorch's (C's) integer
    result, 1 / a^|b| truncated: 1 for a = 1, +-1 for a = -1, else 0 (integers carry no
    gradient, so this is plain arithmetic)."""
    x, e = np.broadcast_arrays(a._data, b._data)
    dtype = np.result_type(a._data, b._data)
    neg = e < 0
    out = np.power(x, np.where(neg, 0, e)).astype(dtype, copy=False)
    inverse = np.where(x == 1, 1, np.where(x == -1, np.where(e % 2 == 0, 1, -1), 0))
    return Tensor._wrap(np.where(neg, inverse, out).astype(dtype, copy=False))


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


def square(x: Tensor) -> Tensor:
    """x * x; a boolean tensor squares in int64, as in PyTorch."""
    x = as_tensor(x)
    if x._data.dtype.kind == "b":
        x = Tensor._wrap(_astype(x._data, np.int64))
    return apply(arith.Mul, x, x)


def neg(x: Tensor) -> Tensor:
    """-x."""
    x = as_tensor(x)
    _no_bool("neg", x)
    return apply(arith.Neg, x)


def exp(x: Tensor) -> Tensor:
    """e ** x."""
    return apply(arith.Exp, _floating(as_tensor(x)))


def log(x: Tensor) -> Tensor:
    """Natural log; log of a negative number is NaN and log(0) is -inf, as in NumPy."""
    return apply(arith.Log, _floating(as_tensor(x)))


def sqrt(x: Tensor) -> Tensor:
    """Square root."""
    return apply(arith.Sqrt, _floating(as_tensor(x)))


def abs(x: Tensor) -> Tensor:  # noqa: A001
    """|x|; its gradient at 0 is 0."""
    return apply(arith.Abs, as_tensor(x))


def clip(x: Tensor, min: Operand | None = None, max: Operand | None = None) -> Tensor:  # noqa: A002
    """x limited to [min, max], as ``min(max(x, min), max)``: where min > max the result is max,
    as in PyTorch. The bounds are numbers or tensors (broadcast with x); the gradient reaches
    x inside the bounds and a tensor bound where it is the result (PyTorch's rule)."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    x = as_tensor(x)
    if not _is_array(min) and not _is_array(max):
        if x._data.dtype.kind != "f" and any(isinstance(v, float) for v in (min, max)):
            x = _floating(x)  # PyTorch: float bounds lift an integer tensor to the default float
        return apply(arith.Clip, x, lo=min, hi=max)
    x = _clip_input(x, min, max)
    lo, hi = _bound("min", x, min, -np.inf), _bound("max", x, max, np.inf)
    try:
        np.broadcast_shapes(x.shape, lo.shape, hi.shape)
    except ValueError:
        raise ValueError(f"clip: the input of shape {x.shape} and bounds of shapes {lo.shape} "
                         f"and {hi.shape} cannot be broadcast together") from None
    return apply(arith.ClipTensor, x, lo, hi)


clamp = clip


def _clip_input(x: Tensor, *bounds) -> Tensor:
    """An integer x with a float tensor bound takes the bound's dtype (PyTorch's promotion)."""
    if x._data.dtype.kind in "iu":
        for v in bounds:
            if isinstance(v, Tensor) and v._data.dtype.kind == "f":
                return Tensor._wrap(_astype(x._data, v.dtype))
    return x


def _is_array(v) -> bool:
    return isinstance(v, (Tensor, np.ndarray, list, tuple))


def _bound(name: str, x: Tensor, v, missing: float) -> Tensor:
    """A clip bound as a tensor of x's dtype (x already promoted by ``_clip_input``): a missing
    one is the widest value of the dtype; an integer bound takes x's dtype."""
    kind = x._data.dtype.kind
    if kind == "b":
        raise TypeError("clip: not defined for boolean tensors (as in PyTorch)")
    if v is None:
        if kind != "f":
            info = np.iinfo(x.dtype)
            missing = info.min if missing < 0 else info.max
        return Tensor._wrap(np.asarray(missing, dtype=x.dtype))
    t = v if isinstance(v, Tensor) else as_tensor(np.asarray(v))
    d = t._data.dtype
    if d != x.dtype:
        if d.kind in "biu" and (kind == "f" or (kind in "iu" and d.kind != "f")):
            t = Tensor._wrap(_astype(t._data, x.dtype))
        else:
            raise TypeError(f"clip: {name} of dtype {d} does not match the input's dtype "
                            f"{x.dtype}; convert one explicitly")
    return t


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
        # a 0-d tensor takes axis 0 and -1, as in PyTorch
        if not isinstance(a, numbers.Integral) or not -builtins.max(x.ndim, 1) <= a \
                < builtins.max(x.ndim, 1):
            raise ValueError(f"{name}: axis {a} is out of range for a tensor of shape {x.shape}")
        out.append(int(a) % builtins.max(x.ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis}")
    return tuple(sorted(out)) if x.ndim else None


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (int, tuple or None for all); booleans and integers count in int64, as in
    PyTorch."""
    x = as_tensor(x)
    if x._data.dtype.kind in "biu" and x._data.dtype != np.int64:
        x = Tensor._wrap(_astype(x._data, np.int64))
    return apply(reduce.Sum, x, axis=_axes("sum", x, axis), keepdims=keepdims)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (integers and booleans give the default float dtype)."""
    x = _floating(as_tensor(x))
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
    x = _floating(as_tensor(x))
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


def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge the axes ``start_axis..end_axis`` (inclusive) into one, as ``torch.flatten``
    (``start_axis=1`` keeps the batch axis); a 0-d tensor becomes shape (1,)."""
    x = as_tensor(x)
    n = builtins.max(x.ndim, 1)
    if not (isinstance(start_axis, numbers.Integral) and isinstance(end_axis, numbers.Integral)
            and -n <= start_axis < n and -n <= end_axis < n):
        raise ValueError(f"flatten: axes {start_axis}..{end_axis} are out of range for a "
                         f"tensor of shape {x.shape}")
    start, end = start_axis % n, end_axis % n
    if start > end:
        raise ValueError(f"flatten: start axis {start_axis} comes after end axis {end_axis} "
                         f"for a tensor of shape {x.shape}")
    if x.ndim == 0:
        return reshape(x, (1,))
    # the merged size is computed, not left to -1, which a zero-size dimension makes ambiguous
    merged = int(np.prod(x.shape[start:end + 1], dtype=np.int64))
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1:])


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
    if x.ndim == 0 and axis0 in (0, -1) and axis1 in (0, -1):  # PyTorch's 0-d convention
        return apply(shape_ops.Transpose, x, axes=())
    axes = list(range(x.ndim))
    try:
        axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    except (IndexError, TypeError):
        raise ValueError(f"transpose: axes {axis0} and {axis1} are out of range for shape "
                         f"{x.shape}") from None
    return apply(shape_ops.Transpose, x, axes=tuple(axes))


def expand(x: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """x broadcast to ``shape``; the gradient is summed back. -1 keeps a dimension's size, as
    in PyTorch."""
    x = as_tensor(x)
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = tuple(shape[0])
    lead = len(shape) - x.ndim
    if lead >= 0 and any(n == -1 for n in shape[lead:]):
        shape = tuple(shape[:lead]) + tuple(
            m if n == -1 else n for n, m in zip(shape[lead:], x.shape))
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
    if any(t.shape == (0,) for t in ts) and any(t.shape != (0,) for t in ts):
        # PyTorch's legacy rule, which code written for it relies on: empty 1-D tensors are
        # skipped whatever the others' shape
        ts = [t for t in ts if t.shape != (0,)]
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
    if not isinstance(x, Tensor):
        x = as_tensor(x)
    if activation not in _LINEAR_ACTIVATIONS:
        raise ValueError(f"linear: unknown activation {activation!r}; expected one of "
                         f"{_LINEAR_ACTIVATIONS}")
    # The shapes are read once from the arrays (this runs for every layer of every step).
    try:
        xs, ws = x._data.shape, weight._data.shape
        bs = None if bias is None else bias._data.shape
    except AttributeError:
        raise TypeError(f"linear: weight and bias must be Tensors (or bias None), got "
                        f"{type(weight).__name__} and {type(bias).__name__}") from None
    if len(ws) != 2 or not xs or xs[-1] != ws[1]:
        raise ValueError(f"linear: input of shape {xs} does not match weight of shape "
                         f"{ws} (expected input (..., {ws[-1]}))")
    if bs is not None and bs != (ws[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} does not match weight of shape "
                         f"{ws} (expected ({ws[0]},))")
    if len(xs) == 2:  # the common case: no reshape either way
        if bias is None:
            return apply(linalg.Linear, x, weight, activation=activation)
        return apply(linalg.Linear, x, weight, bias, activation=activation)
    lead = xs[:-1]
    x = reshape(x, (-1, xs[-1]))
    args = (x, weight) if bias is None else (x, weight, bias)
    out = apply(linalg.Linear, *args, activation=activation)
    return out if len(lead) == 1 else reshape(out, lead + (ws[0],))


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x)."""
    return apply(A.Sigmoid, _floating(as_tensor(x)))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return apply(A.Tanh, _floating(as_tensor(x)))


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    x = as_tensor(x)
    _no_bool("relu", x)
    return apply(A.Relu, x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope * x (``inplace=True`` is not supported)."""
    _not_inplace("leaky_relu", inplace)
    if not isinstance(negative_slope, numbers.Real) or isinstance(negative_slope, bool):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got "
                        f"{type(negative_slope).__name__}")
    return apply(A.LeakyRelu, _floating(as_tensor(x)), slope=float(negative_slope))


def _not_inplace(name: str, inplace) -> None:
    if inplace:
        raise ValueError(f"{name}: inplace=True is not supported; autograd's ops never write "
                         f"into their inputs (drop the argument)")


_GELU_FORMS = ("none", "tanh")


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: the exact form x * Phi(x) with the normal CDF via erf (``approximate='none'``, the
    default, as in PyTorch), or the tanh approximation (``approximate='tanh'``)."""
    if approximate not in _GELU_FORMS:
        raise ValueError(f"gelu: approximate must be one of {_GELU_FORMS}, got {approximate!r}")
    return apply(A.Gelu, _floating(as_tensor(x)), approximate=approximate)


def _one_axis(name: str, x: Tensor, axis: int) -> int:
    n = builtins.max(x.ndim, 1)  # a 0-d tensor takes axis 0 and -1, as in PyTorch
    if not isinstance(axis, numbers.Integral) or not -n <= axis < n:
        raise ValueError(f"{name}: axis {axis} is out of range for a tensor of shape {x.shape}")
    return int(axis) % n


def _along_axis(op, name: str, x, axis: int) -> Tensor:
    x = _floating(as_tensor(x))
    ax = _one_axis(name, x, axis)
    if x.ndim == 0:  # one element along the axis: computed on shape (1,)
        return reshape(apply(op, reshape(x, (1,)), axis=0), ())
    return apply(op, x, axis=ax)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs."""
    return _along_axis(A.Softmax, "softmax", x, axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably (a row holding +inf is NaN, as PyTorch)."""
    return _along_axis(A.LogSoftmax, "log_softmax", x, axis)


def logsumexp(x: Tensor, axis: Axis = -1, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis`` (an int, a tuple of ints, or None for all), stably."""
    x = _floating(as_tensor(x))
    ax = _axes("logsumexp", x, axis)
    if ax is None:
        ax = tuple(range(x.ndim))
    # one axis goes as an int: the form the row-wise kernels take
    return apply(A.LogSumExp, x, axis=ax[0] if len(ax) == 1 else ax, keepdims=keepdims)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

_REDUCTIONS = ("mean", "sum", "none")
# Each reduction's keyword parameters for apply_to, made once (never changed: nodes share them).
_REDUCTION_PARAMS = {r: {"reduction": r} for r in _REDUCTIONS}


def _loss_pair(name: str, pred, target, reduction: str) -> tuple[Tensor, Tensor]:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not isinstance(pred, Tensor):  # (as_tensor returns a Tensor as it is: one call less)
        pred = as_tensor(pred)
    if pred._data.dtype.kind != "f":  # integer pairs are losses of floats, not truncated
        pred = _floating(pred)
        if isinstance(target, Tensor):
            target = _floating(target)
    target = target if isinstance(target, Tensor) else as_tensor(target, like=pred)
    pa, ta = pred._data, target._data  # read once: this runs for every loss of every step
    if ta.dtype is not pa.dtype and ta.dtype != pa.dtype:
        raise TypeError(f"{name}: target dtype {target.dtype} differs from input dtype "
                        f"{pred.dtype}; convert it explicitly")
    if ta.shape != pa.shape:
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


def _reduction_arg(weight, reduction: str):
    """(weight, reduction): a string in the weight position is the reduction, the order of
    autograd's earlier signature (input, target, reduction)."""
    if isinstance(weight, str):
        return None, weight
    return weight, reduction


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    return sum(losses) if reduction == "sum" else mean(losses)


def _elementwise_weight(name: str, arg: str, w, like: Tensor) -> Tensor:
    """A weight tensor of ``like``'s dtype that broadcasts to ``like``'s shape (not beyond)."""
    w = w if isinstance(w, Tensor) else as_tensor(w, like=like) \
        if isinstance(w, numbers.Number) else Tensor._wrap(np.asarray(w, dtype=like.dtype))
    if w.dtype != like.dtype:
        raise TypeError(f"{name}: {arg} dtype {w.dtype} differs from input dtype {like.dtype}; "
                        f"convert it explicitly")
    if broadcast_shape(w.shape, like.shape) != like.shape:
        raise ValueError(f"{name}: {arg} of shape {w.shape} does not broadcast to the input's "
                         f"shape {like.shape}")
    return w


def binary_cross_entropy(input: Tensor, target: Operand,  # noqa: A002
                         weight: Operand | None = None, reduction: str = "mean") -> Tensor:
    """BCE of probabilities in [0, 1] (log clamped at -100 as in PyTorch); ``weight`` rescales
    each element's loss (broadcast to the input's shape) before the reduction."""
    if weight is None and type(input) is Tensor and type(target) is Tensor:
        # The usual call (a classifier's recorded sigmoid output and a target of its dtype and
        # shape, no weight) needs none of the conversions below, and its values lie in [0, 1]
        # by construction: the loss op directly. Anything else takes the general path.
        pa, ta = input._data, target._data
        if (pa.dtype is ta.dtype and pa.shape == ta.shape and reduction in _REDUCTIONS
                and _made_by_sigmoid(input)):
            return apply_to(loss.BinaryCrossEntropy, (input, target),
                            _REDUCTION_PARAMS[reduction])
    weight, reduction = _reduction_arg(weight, reduction)
    p, t = _loss_pair("binary_cross_entropy", input, target, reduction)
    lo, hi = (0.0, 1.0) if not p._data.size or _made_by_sigmoid(p) else \
        (float(p._data.min()), float(p._data.max()))
    if lo < 0 or hi > 1:
        raise ValueError(f"binary_cross_entropy: input must hold probabilities in [0, 1], got "
                         f"values in [{lo:g}, {hi:g}]; use binary_cross_entropy_with_logits "
                         f"for raw scores")
    if weight is None:
        return apply(loss.BinaryCrossEntropy, p, t, reduction=reduction)
    w = _elementwise_weight("binary_cross_entropy", "weight", weight, p)
    return _reduce(mul(apply(loss.BinaryCrossEntropy, p, t, reduction="none"), w), reduction)


def _made_by_sigmoid(p: Tensor) -> bool:
    """``p`` is the recorded output of a sigmoid (alone or fused into a linear layer), so its
    values lie in [0, 1] by construction and need no scan (two reductions, ~1.7 us on a small
    batch, more than the loss kernel itself). Recorded outputs are never changed in place."""
    node = p._node
    if node is None:
        return False
    op = node.op
    return op is A.Sigmoid or (op is linalg.Linear and bool(node.params)
                               and node.params.get("activation") == "sigmoid")


def binary_cross_entropy_with_logits(input: Tensor, target: Operand,  # noqa: A002
                                     weight: Operand | None = None, reduction: str = "mean",
                                     pos_weight: Operand | None = None) -> Tensor:
    """BCE of sigmoid(input), computed stably from the logits. ``weight`` rescales each element's
    loss; ``pos_weight`` (broadcast along the last axis, one per class) rescales the positive
    term: loss = -w (pos_weight t log s(z) + (1 - t) log(1 - s(z))), as in PyTorch."""
    name = "binary_cross_entropy_with_logits"
    weight, reduction = _reduction_arg(weight, reduction)
    z, t = _loss_pair(name, input, target, reduction)
    if weight is None and pos_weight is None:
        return apply(loss.BinaryCrossEntropyWithLogits, z, t, reduction=reduction)
    losses = apply(loss.BinaryCrossEntropyWithLogits, z, t, reduction="none")
    if pos_weight is not None:
        pw = _elementwise_weight(name, "pos_weight", pos_weight, z)
        # pos_weight t log s(z) = t log s(z) + (pos_weight - 1) t log s(z); and -log s(z) is
        # the loss of target 1
        ones = Tensor._wrap(np.ones((), dtype=z.dtype))
        softplus = apply(loss.BinaryCrossEntropyWithLogits, z, expand(ones, z.shape),
                         reduction="none")
        losses = add(losses, mul(mul(sub(pw, 1), t), softplus))
    if weight is not None:
        losses = mul(losses, _elementwise_weight(name, "weight", weight, z))
    return _reduce(losses, reduction)


def cross_entropy(input: Tensor, target: Operand,  # noqa: A002
                  weight: Operand | None = None, reduction: str = "mean",
                  ignore_index: int = -100, label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from logits, as ``torch.nn.functional.cross_entropy``.

    ``input`` is (N, C), (N, C, d1, ...) or unbatched (C,); ``target`` is either class indices
    (integers of shape (N,), (N, d1, ...) or ()) or class probabilities (floats of the input's
    shape, differentiated). ``weight`` (C,) rescales each class; 'mean' then divides by the
    summed weight of the counted targets. Index targets equal to ``ignore_index`` count for
    nothing. ``label_smoothing`` in [0, 1] mixes the target with the uniform distribution.
    Computed through log-softmax, so logits of magnitude 1e4 give finite losses.
    """
    weight, reduction = _reduction_arg(weight, reduction)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, "
                         f"got {reduction!r}")
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing!r}")
    logits = _floating(as_tensor(input))
    if logits.ndim == 0:
        raise ValueError("cross_entropy: expected logits of shape (C,), (N, C) or "
                         "(N, C, d1, ...), got a 0-d tensor")
    probs = isinstance(target, Tensor) and target._data.dtype.kind == "f" or \
        not isinstance(target, Tensor) and np.asarray(target).dtype.kind == "f"
    # the batch (and any extra axes) as rows, the classes as columns
    unbatched = logits.ndim == 1
    lead = () if unbatched else (logits.shape[0],) + logits.shape[2:]
    n_classes = logits.shape[0] if unbatched else logits.shape[1]
    rows = logits
    if logits.ndim > 2:
        rows = permute(logits, (0,) + tuple(range(2, logits.ndim)) + (1,))
    rows = reshape(rows, (-1, n_classes))
    w = _class_weight(weight, n_classes, logits)
    if probs:
        q = _probability_targets(target, logits, ignore_index, label_smoothing, w)
        if logits.ndim > 2:
            q = permute(q, (0,) + tuple(range(2, logits.ndim)) + (1,))
        q = reshape(q, (-1, n_classes))
        out = apply(loss.CrossEntropy, rows, q, reduction=reduction, denom=rows.shape[0])
    else:
        tgt = _index_targets(target, lead, n_classes, ignore_index, logits)
        if w is None and label_smoothing == 0 and not _any_ignored(tgt, ignore_index):
            out = apply(loss.CrossEntropy, rows, target=tgt, reduction=reduction)
        else:
            q, denom = _index_distribution(tgt, n_classes, ignore_index, label_smoothing, w,
                                           logits.dtype)
            out = apply(loss.CrossEntropy, rows, Tensor._wrap(q), reduction=reduction,
                        denom=denom)
    return reshape(out, lead) if reduction == "none" else out


def _class_weight(weight, n_classes: int, logits: Tensor) -> np.ndarray | None:
    if weight is None:
        return None
    if isinstance(weight, Tensor) and weight.requires_grad:
        raise ValueError("cross_entropy: weight cannot require grad: class weights are "
                         "constants here, as in PyTorch (detach it)")
    w = np.asarray(weight._data if isinstance(weight, Tensor) else weight)
    if w.shape != (n_classes,):
        raise ValueError(f"cross_entropy: weight must have shape ({n_classes},), one per "
                         f"class, got {w.shape}")
    if w.dtype.kind == "f" and w.dtype != logits.dtype and isinstance(weight, Tensor):
        raise TypeError(f"cross_entropy: weight dtype {w.dtype} differs from input dtype "
                        f"{logits.dtype}; convert it explicitly")
    return _astype(w, logits.dtype)


@live  # autograd.compile: checked again at every replay (a changed answer is an error)
def _any_ignored(tgt: np.ndarray, ignore_index: int) -> bool:
    """Whether some class-index target is ``ignore_index``."""
    return bool((tgt == ignore_index).any())


@live  # autograd.compile: targets validated and copied at every replay
def _index_targets(target, lead: tuple, n_classes: int, ignore_index: int,
                   logits: Tensor) -> np.ndarray:
    tgt = np.asarray(target._data if isinstance(target, Tensor) else target)
    if tgt.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices or float class "
                        f"probabilities, got dtype {tgt.dtype}")
    if tgt.shape != lead:
        raise ValueError(f"cross_entropy: batch mismatch: logits {logits.shape} need class "
                         f"index targets of shape {lead}, got {tgt.shape}")
    bad = (tgt != ignore_index) & ((tgt < 0) | (tgt >= n_classes))
    if bad.any():
        raise ValueError(f"cross_entropy: target {int(tgt[bad].flat[0])} is out of range for "
                         f"{n_classes} classes (valid: 0..{n_classes - 1})")
    # a copy (astype always copies): backward reads the targets after the caller may have
    # refilled their array
    return tgt.reshape(-1).astype(np.int64)


def _index_distribution(tgt: np.ndarray, n_classes: int, ignore_index: int, smoothing: float,
                        w: np.ndarray | None, dtype) -> tuple[np.ndarray, float]:
    """Each row's target distribution for class indices, with weights, smoothing and ignored
    rows folded in, and the 'mean' denominator: the summed weight of the counted targets."""
    kept = tgt != ignore_index
    w = np.ones(n_classes, dtype=dtype) if w is None else w
    q = np.zeros((tgt.size, n_classes), dtype=dtype)
    rows = np.flatnonzero(kept)
    host_read("cross_entropy with class weights, label smoothing or ignored targets")
    q[rows, tgt[rows]] = (1 - smoothing) * w[tgt[rows]]
    if smoothing:
        q[rows] += (smoothing / n_classes) * w
    return q, float(np.sum(w[tgt[rows]], dtype=np.float64))


def _probability_targets(target, logits: Tensor, ignore_index: int, smoothing: float,
                         w: np.ndarray | None) -> Tensor:
    if ignore_index != -100:
        raise ValueError("cross_entropy: ignore_index applies to class index targets, not to "
                         "class probabilities (as in PyTorch)")
    t = target if isinstance(target, Tensor) else as_tensor(target, like=logits)
    if t.dtype != logits.dtype:
        raise TypeError(f"cross_entropy: target dtype {t.dtype} differs from input dtype "
                        f"{logits.dtype}; convert it explicitly")
    if t.shape != logits.shape:
        raise ValueError(f"cross_entropy: class-probability targets must have the logits' "
                         f"shape {logits.shape}, got {t.shape}")
    n_classes = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    if smoothing:
        t = add(mul(t, 1.0 - smoothing), smoothing / n_classes)
    if w is not None:
        shape = (n_classes,) + (1,) * (logits.ndim - 2) if logits.ndim > 1 else (n_classes,)
        t = mul(t, Tensor._wrap(w.reshape(shape)))
    return t


# --------------------------------------------------------------------------------------------
# PyTorch's names, beside the NumPy ones
# --------------------------------------------------------------------------------------------
# PyTorch users write dim=/keepdim= where NumPy users write axis=/keepdims=; both are accepted
# by every function below that takes an axis. The functions above keep their NumPy signatures;
# this table renames PyTorch's keywords on the way in (one place, rather than a second keyword
# in every signature).

_TORCH_KEYWORDS = {"dim": "axis", "keepdim": "keepdims", "start_dim": "start_axis",
                   "end_dim": "end_axis", "dim0": "axis0", "dim1": "axis1"}


def accepts_torch_names(fn: Any) -> Any:
    """``fn`` also accepting PyTorch's keyword names (``dim=`` for ``axis=``, ``keepdim=`` for
    ``keepdims=``, ``start_dim=``, ``dim0=``/``dim1=``); giving both spellings is an error."""
    sig = inspect.signature(fn)
    renames = {t: n for t, n in _TORCH_KEYWORDS.items() if n in sig.parameters}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            for torch_name, name in renames.items():
                if torch_name in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}: give {name}= or {torch_name}=, "
                                        f"not both")
                    kwargs[name] = kwargs.pop(torch_name)
        return fn(*args, **kwargs)

    def hint(name: str) -> Any:  # the NumPy keyword's hint, None allowed (it means "unset")
        ann = sig.parameters[name].annotation
        if ann is inspect.Parameter.empty:
            return "Any"
        text = ann if isinstance(ann, str) else inspect.formatannotation(ann)
        return text if "None" in text else f"{text} | None"

    extra = [inspect.Parameter(t, inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=hint(n)) for t, n in renames.items()]
    params = list(sig.parameters.values())
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        params = params[:-1] + extra + params[-1:]
    else:
        params += extra
    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper


for _name in ("sum", "mean", "var", "logsumexp", "softmax", "log_softmax", "concatenate",
              "stack", "flatten", "transpose"):
    globals()[_name] = accepts_torch_names(globals()[_name])


class ValuesIndices(NamedTuple):
    """What ``max``/``min`` return when called PyTorch's way, with ``dim=`` (as
    ``torch.return_types.max``): the values (differentiable) and their int64 indices."""

    values: Tensor
    indices: Tensor


def _extremum_torch(fn: Any, arg: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(x: Tensor, axis: Axis = None, keepdims: bool = False, *, dim: int | None = None,
                keepdim: bool | None = None) -> "Tensor | ValuesIndices":
        if dim is None:
            if keepdim is not None:
                keepdims = keepdim
            return fn(x, axis, keepdims)
        if axis is not None:
            raise TypeError(f"{fn.__name__}: give axis= or dim=, not both")
        keep = bool(keepdim)
        return ValuesIndices(fn(x, dim, keep), arg(x, dim, keep))
    wrapper.__doc__ = (fn.__doc__ or "") + (
        "\n\nCalled with ``dim=`` (PyTorch's way) it returns ``(values, indices)`` as "
        "PyTorch does; with ``axis=`` (NumPy's way) the values alone.")
    return wrapper


@live  # autograd.compile: replayed live (NumPy's argmax/argmin)
def _arg_extremum(name: str, x: Tensor, axis: int | None, keepdims: bool) -> Tensor:
    x = as_tensor(x)
    if axis is not None:
        if not isinstance(axis, numbers.Integral):
            raise ValueError(f"{name}: axis must be one int or None, got {axis!r}")
        axis = _one_axis(name, x, axis) if x.ndim else _axes(name, x, axis)
    if x.size == 0:
        raise ValueError(f"{name}: cannot reduce an empty tensor of shape {x.shape}")
    fn = np.argmax if name == "argmax" else np.argmin
    return Tensor._wrap(np.asarray(fn(x._data, axis=axis, keepdims=keepdims), dtype=np.int64))


def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Indices of the maxima along ``axis`` (of the flattened tensor when None); int64, not
    differentiable."""
    return _arg_extremum("argmax", x, axis, keepdims)


def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Indices of the minima along ``axis`` (of the flattened tensor when None); int64, not
    differentiable."""
    return _arg_extremum("argmin", x, axis, keepdims)


argmax = accepts_torch_names(argmax)
argmin = accepts_torch_names(argmin)
max = _extremum_torch(max, argmax)  # noqa: A001
min = _extremum_torch(min, argmin)  # noqa: A001


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """PyTorch's name for :func:`concatenate`: join tensors along the existing axis ``dim``."""
    return concatenate(tensors, axis=dim)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """x with a new axis of length 1 inserted at position ``dim`` (-ndim-1 <= dim <= ndim)."""
    x = as_tensor(x)
    if not isinstance(dim, numbers.Integral) or not -x.ndim - 1 <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for a tensor of shape "
                         f"{x.shape} (valid: {-x.ndim - 1}..{x.ndim})")
    d = int(dim) % (x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def squeeze(x: Tensor, dim: Axis = None, *, axis: Axis = None) -> Tensor:
    """x without axes of length 1: all of them, or those among ``dim`` (an int or a tuple; an
    axis given that is not of length 1 stays, as in PyTorch). NumPy's ``axis=`` works too."""
    if axis is not None:
        if dim is not None:
            raise TypeError("squeeze: give dim= or axis=, not both")
        dim = axis
    x = as_tensor(x)
    axes = _axes("squeeze", x, dim)
    if axes is None:
        axes = tuple(range(x.ndim))
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def view(x: Tensor, *shape: Any) -> Tensor:
    """PyTorch's name for :func:`reshape` (always allowed here, whatever the memory layout)."""
    return reshape(x, *shape)


def clone(x: Tensor) -> Tensor:
    """A copy with its own memory; the gradient flows through unchanged."""
    x = as_tensor(x)
    return apply(shape_ops.Cast, x, dtype=x.dtype)


def to(x: Tensor, dtype: Any, copy: bool = False) -> Tensor:
    """x converted to ``dtype`` (a copy; x itself when it already has that dtype, unless
    ``copy``). Between float32 and float64 the gradient flows back, cast to x's dtype; a
    conversion to an integer or boolean dtype is cut off from the graph."""
    x = as_tensor(x)
    try:
        target = np.dtype(dtype)
        _check_dtype(target)
    except TypeError as exc:
        raise TypeError(f"to: cannot convert to {dtype!r}: {exc}") from None
    if target == x.dtype and not copy:
        return x
    if target.kind != "f":
        return Tensor._wrap(_astype(x._data, target))
    return apply(shape_ops.Cast, x, dtype=target)


def std(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0, *,
        correction: int | None = None, unbiased: bool | None = None) -> Tensor:
    """Standard deviation, sqrt(var), over ``axis``.

    The default divides by n (``ddof=0``), as NumPy and Keras do and like :func:`var`. PyTorch
    divides by n - 1 by default: pass ``correction=1`` (PyTorch's keyword), ``unbiased=True``
    or ``ddof=1`` for that. Its gradient is infinite where all values are equal, as in PyTorch.
    """
    given = [v for v in (correction, unbiased) if v is not None]
    if len(given) > 1 or (given and ddof != 0):
        raise TypeError("std: give only one of ddof=, correction= and unbiased=")
    x = as_tensor(x)
    _axes("std", x, axis)  # so that a bad axis is reported as std's
    if correction is not None:
        ddof = correction
    elif unbiased is not None:
        ddof = int(bool(unbiased))
    return sqrt(var(x, axis, keepdims, ddof))


def prod(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis`` (int, tuple or None for all); the product of nothing is 1.

    Computed as a tree of pairwise products (log2 n multiplies), so its gradient is exact where
    some values are zero: no division by x is involved.
    """
    x = as_tensor(x)
    ax = _axes("prod", x, axis)
    ax = tuple(range(x.ndim)) if ax is None else ax
    kept = [i for i in range(x.ndim) if i not in ax]
    order = kept + list(ax)
    y = permute(x, order) if order != list(range(x.ndim)) else x
    n = 1
    for a in ax:
        n *= x.shape[a]
    y = reshape(y, tuple(x.shape[i] for i in kept) + (n,))
    if n == 0:  # an empty product: 1, and no element to pass a gradient to
        y = sum(y, axis=-1, keepdims=True) + 1
    while y.shape[-1] > 1:
        m = y.shape[-1]
        pairs = getitem(y, (Ellipsis, slice(0, m - 1, 2))) * getitem(y, (Ellipsis, slice(1, m, 2)))
        y = pairs if m % 2 == 0 else concatenate(
            [pairs, getitem(y, (Ellipsis, slice(m - 1, m)))], axis=-1)
    out_shape = tuple(1 if i in ax else x.shape[i] for i in range(x.ndim)) if keepdims \
        else tuple(x.shape[i] for i in kept)
    return reshape(y, out_shape)


def norm(x: Tensor, p: float | str = 2, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The vector p-norm over ``axis`` (all elements when None): (sum |x|^p)^(1/p).

    ``p`` may be any positive number, ``"fro"`` (= 2) or ``inf`` (the largest |x|). Like
    PyTorch's ``torch.norm`` on vectors, the gradient at an all-zero input is 0.
    """
    x = as_tensor(x)
    if p == "fro":
        p = 2
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > 0:
        raise ValueError(f"norm: p must be a positive number, 'fro' or inf, got {p!r}")
    if p == np.inf:
        return max(abs(x), axis, keepdims)
    x = _floating(x)
    return apply(reduce.Norm, x, p=float(p), axis=_axes("norm", x, axis), keepdims=keepdims)


for _name in ("std", "prod", "norm"):
    globals()[_name] = accepts_torch_names(globals()[_name])
del _name

__all__ += ["argmax", "argmin", "cat", "unsqueeze", "squeeze", "view", "clone", "to", "std",
            "prod", "norm", "ValuesIndices", "accepts_torch_names"]
