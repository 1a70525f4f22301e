"""The op database: one :class:`OpInfo` per differentiable op (PyTorch's OpInfo, small).

Each entry names a registered op (a key of :data:`autograd.function.REGISTRY`), the public
function that applies it, a hypothesis strategy of :class:`Sample` inputs, a NumPy reference for
the forward, and :class:`ErrorInput` cases with the error each one must raise. The test suite
generates forward, gradient and error tests from this table and fails when a registered op has
no entry. An op reached through several public functions has one entry per variant.
"""
from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import functional as F
from ..creation import from_numpy
from ..tensor import Tensor
from . import strategies as S

__all__ = ["OP_DB", "ErrorInput", "OpInfo", "Sample", "op_db_by_id", "to_args"]


# --------------------------------------------------------------------------------------------
# The entry types
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One call of an op: ``inputs`` (float64 arrays become tensors; other arrays become
    integer/boolean tensors; anything else is passed as it is), keyword arguments, the layout of
    each input, and the float inputs that are not differentiated (e.g. a BCE target)."""

    inputs: tuple
    kwargs: dict = field(default_factory=dict)
    layouts: tuple[str, ...] = ()
    nograd: tuple[int, ...] = ()

    def arrays(self, dtype: Any = np.float64) -> list:
        """The inputs with float arrays cast to ``dtype`` and laid out as drawn."""
        out = []
        for i, x in enumerate(self.inputs):
            if isinstance(x, np.ndarray) and x.dtype.kind == "f":
                layout = self.layouts[i] if i < len(self.layouts) else "contiguous"
                x = S.with_layout(x.astype(dtype), layout)
            out.append(x)
        return out

    def differentiable(self) -> list[int]:
        """Indices of the inputs whose gradient is checked."""
        return [i for i, x in enumerate(self.inputs)
                if isinstance(x, np.ndarray) and x.dtype.kind == "f" and i not in self.nograd]

    def tensors(self, dtype: Any = np.float64, requires_grad: bool = True) -> list:
        """The inputs as the op takes them: Tensors sharing memory with :meth:`arrays`."""
        grads = set(self.differentiable()) if requires_grad else set()
        return [from_numpy(x, requires_grad=i in grads) if isinstance(x, np.ndarray) else x
                for i, x in enumerate(self.arrays(dtype))]


@dataclass(frozen=True)
class ErrorInput:
    """Arguments an op must reject with ``error`` whose message matches the regex ``match``.

    float32/float64 arrays are passed as Tensors; anything else (float16 arrays, lists,
    integer targets) as it is.
    """

    inputs: tuple
    kwargs: dict
    error: type[BaseException]
    match: str


@dataclass(frozen=True)
class OpInfo:
    """Everything the generated tests need to know about one op."""

    name: str  # the key in autograd.function.REGISTRY
    op: Callable[..., Tensor]  # the public function (or a thin adapter to it)
    ref: Callable[..., np.ndarray]  # the NumPy reference on float arrays, same arguments
    samples: st.SearchStrategy[Sample]
    errors: tuple[ErrorInput, ...] = ()
    variant: str = ""
    aliases: tuple[Callable[..., Tensor], ...] = ()  # operators/methods that must agree with op
    rtol32: float = 1e-4
    atol32: float = 1e-5

    @property
    def id(self) -> str:
        return f"{self.name}.{self.variant}" if self.variant else self.name

    def __repr__(self) -> str:  # short, for hypothesis' falsifying-example reports
        return f"<OpInfo {self.id}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def to_args(inputs: tuple) -> list:
    """Error-input arguments: float32/float64 arrays as Tensors, the rest as they are."""
    return [from_numpy(x) if isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64)
            else x for x in inputs]


def _z(*shape: int, dtype: Any = np.float64) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def _shape_re(shape: tuple) -> str:
    return re.escape(str(tuple(shape)))


_F16 = np.zeros(3, dtype=np.float16)
_F16_ERROR = (r"unsupported floating dtype float16", TypeError)


def _unary_errors() -> tuple[ErrorInput, ...]:
    """Every op converts its inputs the same way: dtypes other than float32/64 are refused."""
    match, error = _F16_ERROR
    return (ErrorInput((_F16,), {}, error, match),)


# --------------------------------------------------------------------------------------------
# Sample strategies
# --------------------------------------------------------------------------------------------

@st.composite
def _unary(draw, elements=None, min_dims=0, **kwargs_strategies):
    shape = draw(S.shapes(min_dims=min_dims))
    x = draw(S.arrays(shape, elements))
    kwargs = {k: draw(v) for k, v in kwargs_strategies.items()}
    return Sample((x,), kwargs, (draw(S.layouts()),))


@st.composite
def _binary(draw, a_elements=None, b_elements=None):
    sa, sb = draw(S.broadcastable_shapes(2))
    a = draw(S.arrays(sa, a_elements))
    b = draw(S.arrays(sb, b_elements))
    return Sample((a, b), {}, (draw(S.layouts()), draw(S.layouts())))


@st.composite
def _pow(draw):
    if draw(st.booleans()):  # tensor exponent: positive base so a^b and log(a) are smooth
        return draw(_binary(S.floats(0.5, 2.0), S.floats(-2.0, 2.0)))
    # a Python integer exponent: any sign of base, not differentiated
    shape = draw(S.shapes())
    x = draw(S.arrays(shape, S.away_from_zero(0.2, 2.0)))
    return Sample((x, draw(st.sampled_from([1, 2, 3, -1]))), {}, (draw(S.layouts()),))


@st.composite
def _pow_zero_base(draw):
    """Bases with exact zeros, where PyTorch defines the gradients (0 for a zero exponent, 0 with
    respect to a non-negative exponent): a Python exponent in 0..3, or a tensor one >= 0.5."""
    shape = draw(S.shapes())
    x = draw(S.arrays(shape, st.one_of(st.just(0.0), S.floats(0.5, 2.0))))
    if draw(st.booleans()):
        return Sample((x, draw(st.sampled_from([0, 1, 2, 3]))), {}, (draw(S.layouts()),))
    # the base's own derivative b a^(b-1) is infinite at 0 for b < 1: only b is differentiated
    b = draw(S.arrays(draw(st.sampled_from([shape, ()])), S.floats(0.5, 2.0)))
    return Sample((x, b), {}, (draw(S.layouts()), draw(S.layouts())), nograd=(0,))


@st.composite
def _where(draw):
    sc, sa, sb = draw(S.broadcastable_shapes(3))
    cond = draw(hnp.arrays(np.bool_, sc))
    a, b = draw(S.arrays(sa)), draw(S.arrays(sb))
    return Sample((cond, a, b), {}, ("contiguous", draw(S.layouts()), draw(S.layouts())))


_CLIP_BOUNDS = st.sampled_from([(-0.5, 0.5), (None, 0.5), (-0.5, None), (0.0, 1.0)])
_CLIP_VALUES = st.one_of(S.floats(-2.0, -0.55), S.floats(-0.45, -0.05), S.floats(0.05, 0.45),
                         S.floats(0.55, 0.95), S.floats(1.05, 2.0))


@st.composite
def _clip(draw):
    lo, hi = draw(_CLIP_BOUNDS)
    shape = draw(S.shapes())
    return Sample((draw(S.arrays(shape, _CLIP_VALUES)),), {"min": lo, "max": hi},
                  (draw(S.layouts()),))


@st.composite
def _clip_tensor(draw):
    """Tensor bounds broadcast against x, min > max included; x, min and max on three grids
    that never meet, so no sample sits on a kink."""
    sx, slo, shi = draw(S.broadcastable_shapes(3))
    x_shape = np.broadcast_shapes(sx, slo, shi)
    x = draw(S.arrays(x_shape, S.grid(0.25, 0.0)))
    lo = draw(S.arrays(slo, S.grid(0.25, 0.125)))
    hi = draw(S.arrays(shi, S.grid(0.25, 0.1875)))
    kind = draw(st.sampled_from(["both", "min", "max"]))
    inputs = (x, lo if kind != "max" else None, hi if kind != "min" else None)
    return Sample(inputs, {}, tuple(draw(S.layouts()) for _ in inputs))


@st.composite
def _reduction(draw, distinct=False, ddof=False):
    shape = draw(S.shapes())
    x = draw(S.distinct_arrays(shape) if distinct else S.arrays(shape))
    # a 0-d tensor takes axis 0 and -1, as in PyTorch
    axis = draw(S.axes(len(shape)) if shape else st.sampled_from([None, 0, -1, (0,), (-1,)]))
    kwargs = {"axis": axis, "keepdims": draw(st.booleans())}
    if ddof:
        count = _count(shape, axis)
        kwargs["ddof"] = draw(st.sampled_from([0, 1] if count > 1 else [0]))
    return Sample((x,), kwargs, (draw(S.layouts()),))


def _count(shape, axis) -> int:
    if axis is None or not shape:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


@st.composite
def _reshape(draw):
    shape = draw(S.shapes())
    dims = list(draw(st.permutations(shape)))
    for _ in range(draw(st.integers(0, 2))):
        dims.insert(draw(st.integers(0, len(dims))), 1)
    if len(dims) >= 2 and draw(st.booleans()):
        i = draw(st.integers(0, len(dims) - 2))
        dims[i:i + 2] = [dims[i] * dims[i + 1]]
    if dims and draw(st.booleans()):
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    x = draw(S.arrays(shape))
    return Sample((x,), {"shape": tuple(dims)}, (draw(S.layouts()),))


@st.composite
def _flatten(draw):
    """Zero-size dimensions included: the merged size must not be left to -1."""
    shape = draw(S.shapes(min_side=0, max_dims=4))
    n = max(len(shape), 1)
    start = draw(st.integers(-n, n - 1))
    end = draw(st.integers(start % n, n - 1))
    if draw(st.booleans()):
        end -= n
    return Sample((draw(S.arrays(shape)),), {"start_axis": start, "end_axis": end},
                  (draw(S.layouts()),))


def _flatten_ref(x, start_axis=0, end_axis=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_axis % x.ndim, end_axis % x.ndim
    return x.reshape(x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:])


@st.composite
def _permute(draw):
    shape = draw(S.shapes())
    axes = tuple(draw(st.permutations(range(len(shape)))))
    if axes and draw(st.booleans()):
        axes = tuple(a - len(shape) if draw(st.booleans()) else a for a in axes)
    return Sample((draw(S.arrays(shape)),), {"axes": axes}, (draw(S.layouts()),))


@st.composite
def _swapaxes(draw):
    shape = draw(S.shapes(min_dims=1))
    n = len(shape)
    kwargs = {"axis0": draw(st.integers(-n, n - 1)), "axis1": draw(st.integers(-n, n - 1))}
    return Sample((draw(S.arrays(shape)),), kwargs, (draw(S.layouts()),))


@st.composite
def _expand(draw):
    shape = draw(S.shapes(max_dims=3))
    prefix = tuple(draw(st.lists(st.integers(1, 3), max_size=4 - len(shape))))
    target = prefix + tuple(draw(st.integers(1, 3)) if d == 1 else d for d in shape)
    return Sample((draw(S.arrays(shape)),), {"shape": target}, (draw(S.layouts()),))


@st.composite
def _basic_index(draw):
    shape = draw(S.shapes())
    index = draw(hnp.basic_indices(shape, allow_newaxis=True))
    return Sample((draw(S.arrays(shape)),), {"index": index}, (draw(S.layouts()),))


@st.composite
def _advanced_index(draw):
    shape = draw(S.shapes(min_dims=1))
    n = shape[0]
    kind = draw(st.sampled_from(["ints", "mask", "mixed"] if len(shape) > 1 else
                                ["ints", "mask"]))
    ints = np.asarray(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=4)),
                      dtype=np.int64)  # repeats allowed: their gradients must accumulate
    if kind == "ints":
        index = ints
    elif kind == "mask":
        index = draw(hnp.arrays(np.bool_, shape))
    else:
        index = (draw(st.sampled_from([slice(None), slice(None, None, -1), 0])),
                 np.asarray([i % shape[1] for i in ints], dtype=np.int64))
    return Sample((draw(S.arrays(shape)),), {"index": index}, (draw(S.layouts()),))


@st.composite
def _concatenate_samples(draw):
    shape = draw(S.shapes(min_dims=1))
    n = len(shape)
    axis = draw(st.integers(-n, n - 1))
    pieces = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(shape)
        s[axis] = draw(st.integers(1, 3))
        pieces.append(draw(S.arrays(tuple(s))))
    return Sample(tuple(pieces), {"axis": axis}, tuple(draw(S.layouts()) for _ in pieces))


@st.composite
def _stack_samples(draw):
    shape = draw(S.shapes(max_dims=3))
    n = len(shape)
    axis = draw(st.integers(-n - 1, n))
    pieces = [draw(S.arrays(shape)) for _ in range(draw(st.integers(1, 3)))]
    return Sample(tuple(pieces), {"axis": axis}, tuple(draw(S.layouts()) for _ in pieces))


_SIDE = st.integers(1, 3)


@st.composite
def _matmul(draw):
    n, k, m = draw(_SIDE), draw(_SIDE), draw(_SIDE)
    kind = draw(st.sampled_from(["mm", "vm", "mv", "vv", "batched", "vb", "bv"]))
    ba, bb = draw(S.broadcastable_shapes(2, min_dims=1, max_dims=2, max_side=2))
    sa = {"mm": (n, k), "vm": (k,), "mv": (n, k), "vv": (k,), "batched": ba + (n, k),
          "vb": (k,), "bv": ba + (n, k)}[kind]
    sb = {"mm": (k, m), "vm": (k, m), "mv": (k,), "vv": (k,), "batched": bb + (k, m),
          "vb": bb + (k, m), "bv": (k,)}[kind]
    a, b = draw(S.arrays(sa)), draw(S.arrays(sb))
    return Sample((a, b), {}, (draw(S.layouts()), draw(S.layouts())))


@st.composite
def _linear(draw):
    lead = tuple(draw(st.lists(_SIDE, max_size=2)))
    n_in, n_out = draw(_SIDE), draw(_SIDE)
    activation = draw(st.sampled_from([None, "relu", "sigmoid", "tanh"]))
    if activation == "relu":
        # values on grids so that x @ w.T + b (a multiple of 1/4 plus 1/8) is never near the
        # kink at 0
        x = draw(S.arrays(lead + (n_in,), S.grid(0.5, 0.0, 4)))
        w = draw(S.arrays((n_out, n_in), S.grid(0.5, 0.0, 4)))
        b = draw(S.arrays((n_out,), S.grid(0.25, 0.125, 8)))
    else:
        x, w = draw(S.arrays(lead + (n_in,))), draw(S.arrays((n_out, n_in)))
        b = draw(S.arrays((n_out,))) if draw(st.booleans()) else None
    inputs = (x, w) if b is None else (x, w, b)
    return Sample(inputs, {"activation": activation},
                  tuple(draw(S.layouts()) for _ in inputs))


@st.composite
def _along_axis(draw, keepdims=False, several=False):
    """One axis (0 or -1 for a 0-d tensor, as PyTorch); ``several``: a tuple of axes or None."""
    shape = draw(S.shapes())
    n = max(len(shape), 1)
    if several and shape:
        axis = draw(S.axes(len(shape)))
    else:
        axis = draw(st.integers(-n, n - 1))
    kwargs = {"axis": axis}
    if keepdims:
        kwargs["keepdims"] = draw(st.booleans())
    x = draw(S.arrays(shape, S.floats(-3.0, 3.0)))
    return Sample((x,), kwargs, (draw(S.layouts()),))


_REDUCTION = st.sampled_from(["mean", "sum", "none"])


@st.composite
def _loss(draw, pred_elements, target_elements, target_grad):
    shape = draw(S.shapes())
    p = draw(S.arrays(shape, pred_elements))
    t = draw(S.arrays(shape, target_elements))
    return Sample((p, t), {"reduction": draw(_REDUCTION)},
                  (draw(S.layouts()), draw(S.layouts())), () if target_grad else (1,))


@st.composite
def _cross_entropy(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    logits = draw(S.arrays((n, c)))
    target = np.asarray(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)),
                        dtype=np.int64)
    return Sample((logits, target), {"reduction": draw(_REDUCTION)}, (draw(S.layouts()),))


@st.composite
def _weighted_loss(draw, pred_elements, pos_weight=False):
    """(pred, target, weight[, pos_weight]): weights broadcast to the prediction's shape."""
    shape = draw(S.shapes(min_dims=1))
    p = draw(S.arrays(shape, pred_elements))
    # targets inside (0, 1): gradcheck steps them both ways, and BCE refuses one past 0 or 1
    t = draw(S.arrays(shape, S.floats(0.05, 0.95)))
    w = draw(S.arrays(draw(st.sampled_from([shape, shape[-1:], ()])), S.floats(0.1, 2.0)))
    inputs = (p, t, w)
    if pos_weight:
        pw = draw(S.arrays(draw(st.sampled_from([shape[-1:], ()])), S.floats(0.1, 3.0)))
        inputs = (p, t, w if draw(st.booleans()) else None, pw)
    return Sample(inputs, {"reduction": draw(_REDUCTION)},
                  tuple(draw(S.layouts()) for _ in inputs))


@st.composite
def _cross_entropy_general(draw, probs=False):
    """Logits (C,), (N, C) or (N, C, d1[, d2]); class-index targets with class weights, ignored
    targets and label smoothing, or (``probs``) differentiated class-probability targets."""
    c = draw(st.integers(1, 4))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    kind = draw(st.sampled_from(["unbatched", "batched"]))
    shape = (c,) if kind == "unbatched" and not extra else (draw(st.integers(1, 3)), c) + extra
    logits = draw(S.arrays(shape))
    lead = () if len(shape) == 1 else (shape[0],) + shape[2:]
    kwargs = {"reduction": draw(_REDUCTION),
              "label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))}
    weight = draw(S.arrays((c,), S.floats(0.2, 2.0))) if draw(st.booleans()) else None
    if probs:
        target = draw(S.arrays(shape, S.floats(0.0, 1.0)))
        return Sample((logits, target, weight), kwargs, (draw(S.layouts()), draw(S.layouts())),
                      nograd=(2,))
    ignore = draw(st.sampled_from([-100, 0, -1]))
    values = st.integers(0, c - 1) | st.just(ignore)
    target = np.asarray(draw(hnp.arrays(np.int64, lead, elements=values)), dtype=np.int64)
    if kwargs["reduction"] == "mean" and np.all(target == ignore):
        # else the mean is 0 / 0 (NaN, as in PyTorch): no gradient to check
        target.flat[0], ignore = 0, (-1 if ignore == 0 else ignore)
    kwargs["ignore_index"] = ignore
    return Sample((logits, target, weight), kwargs, (draw(S.layouts()),), nograd=(2,))


# --------------------------------------------------------------------------------------------
# NumPy references (written from the definitions, not from the kernels)
# --------------------------------------------------------------------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x, approximate="tanh"):
    if approximate == "none":
        return 0.5 * x * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _ax(x, axis):
    """NumPy's form of a PyTorch axis: a 0-d array's axis 0 or -1 is all (None)."""
    return None if np.ndim(x) == 0 else axis


def _logsumexp(x, axis, keepdims=False):
    axis = _ax(x, axis)
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x, axis):
    axis = _ax(x, axis)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss)


def _linear_ref(x, w, b=None, activation=None):
    z = x @ w.T + (0 if b is None else b)
    act = {None: lambda v: v, "relu": lambda v: np.maximum(v, 0), "sigmoid": _sigmoid,
           "tanh": np.tanh}[activation]
    return act(z)


def _bce_ref(p, t, weight=None, reduction="mean"):
    w = 1.0 if weight is None else weight
    return _reduce(-w * (t * np.log(p) + (1 - t) * np.log(1 - p)), reduction)


def _bce_logits_ref(z, t, weight=None, pos_weight=None, reduction="mean"):
    p = _sigmoid(z)
    w = 1.0 if weight is None else weight
    pw = 1.0 if pos_weight is None else pos_weight
    return _reduce(np.broadcast_to(-w * (pw * t * np.log(p) + (1 - t) * np.log(1 - p)),
                                   z.shape), reduction)


def _bce_logits_weighted(z, t, weight, pos_weight, reduction="mean"):
    return F.binary_cross_entropy_with_logits(z, t, weight=weight, reduction=reduction,
                                              pos_weight=pos_weight)


def _cross_entropy_general_ref(logits, target, weight=None, reduction="mean",
                               ignore_index=-100, label_smoothing=0.0):
    """From the definitions in PyTorch's documentation, on (N, C, d...) logits."""
    x = logits[None] if logits.ndim == 1 else logits
    c = x.shape[1]
    logp = x - _logsumexp(x, 1, keepdims=True)
    w = np.ones(c) if weight is None else weight
    wb = w.reshape((1, c) + (1,) * (x.ndim - 2))
    eps = label_smoothing
    if target.dtype.kind == "f":
        t = target[None] if logits.ndim == 1 else target
        q = t * (1 - eps) + eps / c
        rows = -np.sum(wb * q * logp, axis=1)
        denom = rows.size
    else:
        t = target[None] if logits.ndim == 1 else target
        kept = t != ignore_index
        safe = np.where(kept, t, 0)
        picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
        nll = -w[safe] * picked
        smooth = -np.sum(wb * logp, axis=1)
        rows = np.where(kept, (1 - eps) * nll + eps / c * smooth, 0.0)
        denom = np.sum(np.where(kept, w[safe], 0.0))
    if reduction == "none":
        return rows[0] if logits.ndim == 1 else rows
    if reduction == "sum":
        return np.sum(rows)
    with np.errstate(invalid="ignore"):  # nothing counted: 0 / 0 is NaN, as in PyTorch
        return np.sum(rows) / denom


def _cross_entropy_ref(logits, target, reduction="mean"):
    logp = logits - _logsumexp(logits, 1, keepdims=True)
    return _reduce(-logp[np.arange(len(target)), target], reduction)


# --------------------------------------------------------------------------------------------
# Error inputs
# --------------------------------------------------------------------------------------------

def _broadcast_errors(name: str) -> tuple[ErrorInput, ...]:
    return (
        ErrorInput((_z(2, 3), _z(4)), {}, ValueError,
                   rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast together"),
        ErrorInput((_z(2, dtype=np.float32), _z(2)), {}, TypeError,
                   rf"{name}: mixed dtypes float32 and float64"),
    )


def _axis_errors(name: str) -> tuple[ErrorInput, ...]:
    return (
        ErrorInput((_z(2, 3),), {"axis": 2}, ValueError,
                   rf"{name}: axis 2 is out of range for a tensor of shape \(2, 3\)"),
        ErrorInput((_z(2, 3),), {"axis": (0, -2)}, ValueError, rf"{name}: repeated axis"),
    )


def _softmax_errors(name: str) -> tuple[ErrorInput, ...]:
    return (
        ErrorInput((_z(2, 3),), {"axis": -3}, ValueError,
                   rf"{name}: axis -3 is out of range for a tensor of shape \(2, 3\)"),
        ErrorInput((_z(),), {"axis": 1}, ValueError,
                   rf"{name}: axis 1 is out of range for a tensor of shape \(\)"),
    )


def _loss_errors(name: str) -> tuple[ErrorInput, ...]:
    return (
        ErrorInput((_z(3), _z(3)), {"reduction": "avg"}, ValueError,
                   rf"{name}: reduction must be one of .*'avg'"),
        ErrorInput((_z(3), _z(4)), {}, ValueError,
                   rf"{name}: input of shape \(3,\) and target of shape \(4,\) cannot be "
                   rf"broadcast together"),
        ErrorInput((_z(3), _z(3, dtype=np.float32)), {}, TypeError,
                   rf"{name}: target dtype float32 differs from input dtype float64"),
    )


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

# Adapters where the public function takes a sequence or varargs: samples pass keywords.
def _concatenate(*xs, axis=0):
    return F.concatenate(xs, axis=axis)


def _stack(*xs, axis=0):
    return F.stack(xs, axis=axis)


def _reshape_fn(x, shape):
    return F.reshape(x, shape)


def _permute_fn(x, axes):
    return F.permute(x, axes)


def _expand_fn(x, shape):
    return F.expand(x, shape)


def _clip_tensor_ref(x, min=None, max=None):  # noqa: A002
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.minimum(np.maximum(x, lo), hi)


_ANY = S.floats()
_NONZERO = S.away_from_zero()

OP_DB: tuple[OpInfo, ...] = (
    # ---------------------------------------------------------------- arithmetic
    OpInfo("add", F.add, np.add, _binary(), _broadcast_errors("add"), aliases=(operator.add,)),
    OpInfo("sub", F.sub, np.subtract, _binary(), _broadcast_errors("sub"),
           aliases=(operator.sub,)),
    OpInfo("mul", F.mul, np.multiply, _binary(), _broadcast_errors("mul"),
           aliases=(operator.mul,)),
    OpInfo("div", F.div, np.divide, _binary(_ANY, S.away_from_zero(0.5, 2.0)),
           _broadcast_errors("div"), aliases=(operator.truediv,)),
    OpInfo("pow", F.pow, np.power, _pow(), _broadcast_errors("pow") + (
        ErrorInput((np.array([2]), -1), {}, ValueError,
                   r"pow: integers to negative integer powers are not allowed \(a int64 tensor "
                   r"to the power -1\)"),
    ), aliases=(operator.pow,)),
    OpInfo("pow", F.pow, np.power, _pow_zero_base(), (), variant="zero_base"),
    OpInfo("maximum", F.maximum, np.maximum,
           _binary(S.grid(0.25, 0.0), S.grid(0.25, 0.125)), _broadcast_errors("maximum")),
    OpInfo("minimum", F.minimum, np.minimum,
           _binary(S.grid(0.25, 0.0), S.grid(0.25, 0.125)), _broadcast_errors("minimum")),
    OpInfo("where", F.where, np.where, _where(), (
        ErrorInput((_z(3), _z(3), _z(3)), {}, TypeError,
                   r"where: condition must be boolean, got dtype float64"),
        ErrorInput((np.ones(2, dtype=bool), _z(3), _z(3)), {}, ValueError,
                   r"where: condition \(2,\) and operands \(3,\), \(3,\) cannot be broadcast"),
    )),
    OpInfo("mul", F.square, np.square, _unary(), _unary_errors(), variant="square"),
    OpInfo("neg", F.neg, np.negative, _unary(), _unary_errors(), aliases=(operator.neg,)),
    OpInfo("exp", F.exp, np.exp, _unary(), _unary_errors(), aliases=(Tensor.exp,)),
    OpInfo("log", F.log, np.log, _unary(S.positive()), _unary_errors(), aliases=(Tensor.log,)),
    OpInfo("sqrt", F.sqrt, np.sqrt, _unary(S.positive()), _unary_errors(),
           aliases=(Tensor.sqrt,)),
    OpInfo("abs", F.abs, np.abs, _unary(_NONZERO), _unary_errors(), aliases=(operator.abs,)),
    OpInfo("clip", F.clip, lambda x, min=None, max=None: np.clip(x, min, max), _clip(), (
        ErrorInput((_z(3),), {}, ValueError, r"clip: give at least one of min and max"),
    ), aliases=(Tensor.clip,)),
    OpInfo("clip_tensor", F.clip, _clip_tensor_ref, _clip_tensor(), (
        ErrorInput((_z(3), _z(2), None), {}, ValueError,
                   r"clip: the input of shape \(3,\) and bounds of shapes \(2,\) and \(\) "
                   r"cannot be broadcast together"),
        ErrorInput((_z(3), _z(3, dtype=np.float32), None), {}, TypeError,
                   r"clip: min of dtype float32 does not match the input's dtype float64"),
    ), aliases=(F.clamp,)),
    # ---------------------------------------------------------------- reductions
    OpInfo("sum", F.sum,
           lambda x, axis=None, keepdims=False: np.sum(x, _ax(x, axis), keepdims=keepdims),
           _reduction(), _axis_errors("sum"), aliases=(Tensor.sum,)),
    OpInfo("mean", F.mean,
           lambda x, axis=None, keepdims=False: np.mean(x, _ax(x, axis), keepdims=keepdims),
           _reduction(), _axis_errors("mean"), aliases=(Tensor.mean,)),
    OpInfo("max", F.max,
           lambda x, axis=None, keepdims=False: np.max(x, _ax(x, axis), keepdims=keepdims),
           _reduction(distinct=True), _axis_errors("max") + (
               ErrorInput((_z(0, 2),), {"axis": 0}, ValueError,
                          r"max: cannot reduce an empty tensor of shape \(0, 2\)"),),
           aliases=(Tensor.max,)),
    OpInfo("min", F.min,
           lambda x, axis=None, keepdims=False: np.min(x, _ax(x, axis), keepdims=keepdims),
           _reduction(distinct=True), _axis_errors("min") + (
               ErrorInput((_z(0),), {}, ValueError,
                          r"min: cannot reduce an empty tensor of shape \(0,\)"),),
           aliases=(Tensor.min,)),
    OpInfo("var", F.var,
           lambda x, axis=None, keepdims=False, ddof=0: np.var(x, _ax(x, axis), ddof=ddof,
                                                               keepdims=keepdims),
           _reduction(ddof=True), _axis_errors("var"), aliases=(Tensor.var,)),
    # ---------------------------------------------------------------- shape
    OpInfo("reshape", _reshape_fn, lambda x, shape: np.reshape(x, shape), _reshape(), (
        ErrorInput((_z(2, 3),), {"shape": (4,)}, ValueError,
                   r"reshape: cannot reshape a tensor of shape \(2, 3\) \(size 6\) into \(4,\)"),
        ErrorInput((_z(2, 3),), {"shape": (-1, -1)}, ValueError,
                   r"reshape: cannot reshape a tensor of shape \(2, 3\)"),
    ), aliases=(lambda x, shape: x.reshape(*shape),)),
    OpInfo("reshape", F.flatten, _flatten_ref, _flatten(), (
        ErrorInput((_z(2, 3),), {"start_axis": 1, "end_axis": 0}, ValueError,
                   r"flatten: start axis 1 comes after end axis 0 for a tensor of shape "
                   r"\(2, 3\)"),
        ErrorInput((_z(2, 3),), {"start_axis": 2}, ValueError,
                   r"flatten: axes 2..-1 are out of range for a tensor of shape \(2, 3\)"),
    ), variant="flatten", aliases=(Tensor.flatten,)),
    OpInfo("transpose", _permute_fn, lambda x, axes: np.transpose(x, axes), _permute(), (
        ErrorInput((_z(2, 3),), {"axes": (0, 0)}, ValueError,
                   r"permute: \(0, 0\) is not a permutation of the axes of a tensor of shape "
                   r"\(2, 3\)"),
        ErrorInput((_z(2, 3),), {"axes": (0,)}, ValueError, r"permute: .* not a permutation"),
    ), variant="permute", aliases=(lambda x, axes: x.permute(*axes),)),
    OpInfo("transpose", F.transpose,
           lambda x, axis0, axis1: np.swapaxes(x, axis0, axis1), _swapaxes(), (
        ErrorInput((_z(2, 3),), {"axis0": 0, "axis1": 2}, ValueError,
                   r"transpose: axes 0 and 2 are out of range for shape \(2, 3\)"),
    ), variant="swapaxes", aliases=(Tensor.transpose,)),
    OpInfo("transpose", F.transpose, np.transpose, _unary(), (), variant="reverse",
           aliases=(lambda x: x.T,)),
    OpInfo("expand", _expand_fn, lambda x, shape: np.broadcast_to(x, shape), _expand(), (
        ErrorInput((_z(2, 3),), {"shape": (3, 3)}, ValueError,
                   r"expand: a tensor of shape \(2, 3\) cannot be broadcast to \(3, 3\)"),
        ErrorInput((_z(2, 3),), {"shape": (3,)}, ValueError,
                   r"expand: a tensor of shape \(2, 3\) cannot be broadcast to \(3,\)"),
    ), aliases=(lambda x, shape: x.expand(*shape),)),
    OpInfo("get_item", F.getitem, lambda x, index: x[index], _basic_index(), (
        ErrorInput((_z(2, 3),), {"index": (0, 3)}, IndexError,
                   r"getitem: index \(0, 3\) is invalid for a tensor of shape \(2, 3\)"),
        ErrorInput((_z(2, 3),), {"index": np.array([0.5])}, IndexError,
                   r"getitem: index arrays must be integer or boolean, got float64"),
    ), variant="basic", aliases=(lambda x, index: x[index],)),
    OpInfo("get_item", F.getitem, lambda x, index: x[index], _advanced_index(), (
        ErrorInput((_z(2, 3),), {"index": np.array([2])}, IndexError,
                   r"getitem: index .* is invalid for a tensor of shape \(2, 3\)"),
        ErrorInput((_z(2, 3),), {"index": np.ones(3, dtype=bool)}, IndexError,
                   r"getitem: index .* is invalid for a tensor of shape \(2, 3\)"),
    ), variant="advanced", aliases=(lambda x, index: x[index],)),
    OpInfo("concatenate", _concatenate, lambda *xs, axis=0: np.concatenate(xs, axis),
           _concatenate_samples(), (
               ErrorInput((), {}, ValueError, r"concatenate: needs at least one tensor"),
               ErrorInput((_z(2, 3), _z(3, 3)), {"axis": 1}, ValueError,
                          r"concatenate: shapes \(2, 3\) and \(3, 3\) differ outside axis 1"),
               ErrorInput((_z(2, 3), _z(2, 3)), {"axis": 2}, ValueError,
                          r"concatenate: axis 2 is out of range for tensors of shape \(2, 3\)"),
           )),
    OpInfo("stack", _stack, lambda *xs, axis=0: np.stack(xs, axis), _stack_samples(), (
        ErrorInput((), {}, ValueError, r"stack: needs at least one tensor"),
        ErrorInput((_z(2, 3), _z(3, 2)), {}, ValueError,
                   r"stack: all tensors must have one shape, got \(2, 3\) and \(3, 2\)"),
        ErrorInput((_z(2, 3),), {"axis": 3}, ValueError,
                   r"stack: axis 3 is out of range for tensors of shape \(2, 3\)"),
    )),
    # ---------------------------------------------------------------- linear algebra
    OpInfo("matmul", F.matmul, np.matmul, _matmul(), (
        ErrorInput((_z(2, 3), _z(4, 5)), {}, ValueError,
                   r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"),
        ErrorInput((_z(), _z(3)), {}, ValueError,
                   r"matmul: both operands need at least 1 dimension"),
        ErrorInput((_z(2, 2, 3), _z(3, 3, 1)), {}, ValueError,
                   r"matmul: batch shapes of \(2, 2, 3\) and \(3, 3, 1\) cannot be broadcast"),
        ErrorInput((_z(2, 3, dtype=np.float32), _z(3, 2)), {}, TypeError,
                   r"matmul: mixed dtypes float32 and float64"),
    ), aliases=(operator.matmul,), rtol32=1e-4, atol32=1e-5),
    OpInfo("linear", F.linear, _linear_ref, _linear(), (
        ErrorInput((_z(2, 3), _z(4, 5)), {}, ValueError,
                   r"linear: input of shape \(2, 3\) does not match weight of shape \(4, 5\)"),
        ErrorInput((_z(2, 3), _z(4, 3), _z(3)), {}, ValueError,
                   r"linear: bias of shape \(3,\) does not match weight of shape \(4, 3\)"),
        ErrorInput((_z(2, 3), _z(4, 3)), {"activation": "gelu"}, ValueError,
                   r"linear: unknown activation 'gelu'"),
    )),
    # ---------------------------------------------------------------- activations
    OpInfo("sigmoid", F.sigmoid, _sigmoid, _unary(S.floats(-4.0, 4.0)), _unary_errors(),
           aliases=(Tensor.sigmoid,)),
    OpInfo("tanh", F.tanh, np.tanh, _unary(), _unary_errors(), aliases=(Tensor.tanh,)),
    OpInfo("relu", F.relu, lambda x: np.maximum(x, 0), _unary(_NONZERO), _unary_errors(),
           aliases=(Tensor.relu,)),
    OpInfo("leaky_relu", F.leaky_relu,
           lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x),
           _unary(_NONZERO, negative_slope=st.sampled_from([0.01, 0.2, -0.5, 2.0])),
           _unary_errors() + (
               ErrorInput((_z(3),), {"inplace": True}, ValueError,
                          r"leaky_relu: inplace=True is not supported"),)),
    OpInfo("gelu", F.gelu, _gelu, _unary(S.floats(-3.0, 3.0),
                                         approximate=st.sampled_from(["none", "tanh"])),
           _unary_errors() + (
               ErrorInput((_z(3),), {"approximate": "erf"}, ValueError,
                          r"gelu: approximate must be one of \('none', 'tanh'\), got 'erf'"),)),
    OpInfo("softmax", F.softmax, _softmax, _along_axis(), _softmax_errors("softmax"),
           aliases=(Tensor.softmax,)),
    OpInfo("log_softmax", F.log_softmax, lambda x, axis: x - _logsumexp(x, axis, True),
           _along_axis(), _softmax_errors("log_softmax"), aliases=(Tensor.log_softmax,)),
    OpInfo("logsumexp", F.logsumexp, _logsumexp, _along_axis(keepdims=True, several=True),
           _softmax_errors("logsumexp")[:1] + _axis_errors("logsumexp")[1:],
           aliases=(Tensor.logsumexp,)),
    # ---------------------------------------------------------------- losses
    OpInfo("mse_loss", F.mse_loss,
           lambda p, t, reduction="mean": _reduce((p - t) ** 2, reduction),
           _loss(_ANY, _ANY, target_grad=True), _loss_errors("mse_loss")),
    OpInfo("binary_cross_entropy", F.binary_cross_entropy, _bce_ref,
           # targets inside (0, 1): gradcheck steps them both ways (0 and 1 are probabilities
           # too: tests/test_bce_targets.py)
           _loss(S.floats(0.05, 0.95), S.floats(0.05, 0.95), target_grad=True),
           _loss_errors("binary_cross_entropy") + (
               ErrorInput((np.array([0.5, 1.5]), np.array([0.0, 1.0])), {}, ValueError,
                          r"binary_cross_entropy: input must hold probabilities in \[0, 1\], "
                          r"got values in \[0.5, 1.5\]"),
               ErrorInput((np.array([0.5, 0.5]), np.array([0.0, -1.0])), {}, ValueError,
                          r"bce: target\[1\] = -1 is not in \[0, 1\]"),)),
    OpInfo("binary_cross_entropy", F.binary_cross_entropy, _bce_ref,
           _weighted_loss(S.floats(0.05, 0.95)), (
               ErrorInput((_z(3), _z(3), _z(2)), {}, ValueError,
                          r"binary_cross_entropy: weight of shape \(2,\) does not broadcast to "
                          r"the input's shape \(3,\)"),), variant="weight"),
    OpInfo("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
           _bce_logits_ref, _loss(S.floats(-3.0, 3.0), S.floats(0.0, 1.0), target_grad=True),
           _loss_errors("binary_cross_entropy_with_logits")),
    OpInfo("binary_cross_entropy_with_logits", _bce_logits_weighted, _bce_logits_ref,
           _weighted_loss(S.floats(-3.0, 3.0), pos_weight=True), (
               ErrorInput((_z(2, 3), _z(2, 3), None, _z(2)), {}, ValueError,
                          r"binary_cross_entropy_with_logits: pos_weight of shape \(2,\) does "
                          r"not broadcast to the input's shape \(2, 3\)"),),
           variant="weight"),
    OpInfo("cross_entropy", F.cross_entropy, _cross_entropy_ref, _cross_entropy(), (
        ErrorInput((_z(2, 3), np.array([0, 3])), {}, ValueError,
                   r"cross_entropy: target 3 is out of range for 3 classes \(valid: 0\.\.2\)"),
        ErrorInput((_z(2, 3), np.array([0, -1])), {}, ValueError,
                   r"cross_entropy: target -1 is out of range for 3 classes"),
        ErrorInput((_z(2, 3), np.array([0, 1, 2])), {}, ValueError,
                   r"cross_entropy: batch mismatch: logits \(2, 3\) need class index targets "
                   r"of shape \(2,\), got \(3,\)"),
        ErrorInput((_z(2, 3), np.array([0.0, 1.0])), {}, ValueError,
                   r"cross_entropy: class-probability targets must have the logits' shape "
                   r"\(2, 3\), got \(2,\)"),
        ErrorInput((_z(2, 3), np.array([True, False])), {}, TypeError,
                   r"cross_entropy: targets must be integer class indices or float class "
                   r"probabilities, got dtype bool"),
        ErrorInput((_z(),), {"target": np.array(0)}, ValueError,
                   r"cross_entropy: expected logits of shape \(C,\), \(N, C\) or "
                   r"\(N, C, d1, \.\.\.\), got a 0-d tensor"),
        ErrorInput((_z(2, 3), np.array([0, 1])), {"reduction": "avg"}, ValueError,
                   r"cross_entropy: reduction must be one of"),
    )),
    OpInfo("cross_entropy", F.cross_entropy, _cross_entropy_general_ref,
           _cross_entropy_general(), (
               ErrorInput((_z(2, 3), np.array([0, 1]), _z(2)), {}, ValueError,
                          r"cross_entropy: weight must have shape \(3,\), one per class, got "
                          r"\(2,\)"),
               ErrorInput((_z(2, 3), np.array([0, 1])), {"label_smoothing": 1.5}, ValueError,
                          r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"),
               ErrorInput((_z(2, 3, 4), np.array([0, 1])), {}, ValueError,
                          r"cross_entropy: batch mismatch: logits \(2, 3, 4\) need class index "
                          r"targets of shape \(2, 4\), got \(2,\)"),
           ), variant="index"),
    OpInfo("cross_entropy", F.cross_entropy, _cross_entropy_general_ref,
           _cross_entropy_general(probs=True), (
               ErrorInput((_z(2, 3), _z(2, 3)), {"ignore_index": 1}, ValueError,
                          r"cross_entropy: ignore_index applies to class index targets, not to "
                          r"class probabilities"),
           ), variant="probs"),
)


# --------------------------------------------------------------------------------------------
# PyTorch's names: functions composed from the ops above (each entry is a variant of the op it
# always records), and dim=/keepdim= spellings of the NumPy-keyword entries
# --------------------------------------------------------------------------------------------

@st.composite
def _unsqueeze(draw):
    shape = draw(S.shapes())
    return Sample((draw(S.arrays(shape)),), {"dim": draw(st.integers(-len(shape) - 1,
                                                                     len(shape)))},
                  (draw(S.layouts()),))


@st.composite
def _squeeze(draw):
    dims = list(draw(S.shapes(max_dims=3)))
    for _ in range(draw(st.integers(0, 2))):
        dims.insert(draw(st.integers(0, len(dims))), 1)
    shape = tuple(dims)
    return Sample((draw(S.arrays(shape)),), {"dim": draw(S.axes(len(shape)))},
                  (draw(S.layouts()),))


def _squeeze_ref(x, dim=None):
    axes = range(x.ndim) if dim is None else [d % x.ndim for d in
                                               ((dim,) if isinstance(dim, int) else dim)]
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


@st.composite
def _many_reduced(draw, elements=None, ddof=False, one_axis=False):
    """A reduction over at least two elements (std's and prod's gradients need them)."""
    shape = list(draw(S.shapes(min_dims=1)))
    axis = draw(S.axes(len(shape), allow_tuple=not one_axis))
    first = 0 if axis is None else (axis if isinstance(axis, int) else axis[0])
    if _count(tuple(shape), axis) < 2:
        shape[first] = draw(st.integers(2, 3))
    shape = tuple(shape)
    x = draw(S.distinct_arrays(shape) if elements is None else S.arrays(shape, elements))
    kwargs = {"axis": axis, "keepdims": draw(st.booleans())}
    if ddof:
        kwargs["ddof"] = draw(st.sampled_from([0, 1]))
    return Sample((x,), kwargs, (draw(S.layouts()),))


@st.composite
def _norm(draw):
    shape = draw(S.shapes())
    return Sample((draw(S.arrays(shape, S.away_from_zero(0.2, 2.0))),),
                  {"p": draw(st.sampled_from([1, 2, 3, 1.5, "fro"])),
                   "axis": draw(S.axes(len(shape))), "keepdims": draw(st.booleans())},
                  (draw(S.layouts()),))


@st.composite
def _norm_inf(draw):
    # distinct magnitudes with random signs: max |x| has no tie
    shape = draw(S.shapes())
    size = int(np.prod(shape))
    order = draw(st.permutations(range(size)))
    signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=size, max_size=size))
    x = ((np.asarray(order, dtype=np.float64) + 1) * 0.25 * np.asarray(signs)).reshape(shape)
    return Sample((x,), {"p": np.inf, "axis": draw(S.axes(len(shape))),
                         "keepdims": draw(st.booleans())}, (draw(S.layouts()),))


def _norm_ref(x, p=2, axis=None, keepdims=False):
    p = 2 if p == "fro" else p
    if p == np.inf:
        return np.max(np.abs(x), axis=axis, keepdims=keepdims)
    return np.sum(np.abs(x) ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


def _cat(*xs, axis=0):
    return F.cat(xs, dim=axis)


def _to_copy(x, dtype=None):
    return x.to(x.dtype if dtype is None else dtype, copy=True)


def _torch_kw(fn, values=False):
    """``fn`` called with PyTorch's keywords; ``values``: take ``.values`` of a (values,
    indices) result."""
    def call(x, axis=None, keepdims=False, both=False, **kw):
        if both:  # the error case: NumPy's and PyTorch's keyword at once
            return fn(x, axis=axis, dim=axis)
        out = fn(x, dim=axis, keepdim=keepdims, **kw)
        return out.values if values and isinstance(out, tuple) else out
    return call


def _both_names(name: str) -> ErrorInput:
    return ErrorInput((_z(2, 3),), {"axis": 0, "both": True}, TypeError,
                      rf"{name}: give axis= or dim=, not both")


def _softmax_torch(fn):
    def call(x, axis, both=False):
        return fn(x, axis=axis, dim=axis) if both else fn(x, dim=axis)
    return call


_BASE = {info.id: info for info in OP_DB}  # the NumPy-keyword entries

OP_DB += (
    OpInfo("cast", F.clone, np.copy, _unary(), _unary_errors(), variant="clone",
           aliases=(Tensor.clone,)),
    OpInfo("cast", _to_copy, np.copy, _unary(), (
        ErrorInput((_z(3),), {"dtype": np.float16}, TypeError,
                   r"unsupported floating dtype float16"),
    ), variant="to"),
    OpInfo("reshape", F.unsqueeze, lambda x, dim: np.expand_dims(x, dim), _unsqueeze(), (
        ErrorInput((_z(2, 3),), {"dim": 3}, ValueError,
                   r"unsqueeze: dim 3 is out of range for a tensor of shape \(2, 3\) "
                   r"\(valid: -3\.\.2\)"),
    ), variant="unsqueeze", aliases=(Tensor.unsqueeze,)),
    OpInfo("reshape", F.squeeze, _squeeze_ref, _squeeze(), (
        ErrorInput((_z(2, 1),), {"dim": 2}, ValueError,
                   r"squeeze: axis 2 is out of range for a tensor of shape \(2, 1\)"),
    ), variant="squeeze", aliases=(Tensor.squeeze,)),
    OpInfo("reshape", lambda x, shape: F.view(x, *shape), lambda x, shape: np.reshape(x, shape),
           _reshape(), (
               ErrorInput((_z(2, 3),), {"shape": (4,)}, ValueError,
                          r"reshape: cannot reshape a tensor of shape \(2, 3\) \(size 6\) "
                          r"into \(4,\)"),
           ), variant="view", aliases=(lambda x, shape: x.view(*shape),)),
    OpInfo("concatenate", _cat, lambda *xs, axis=0: np.concatenate(xs, axis),
           _concatenate_samples(), (
               ErrorInput((), {}, ValueError, r"concatenate: needs at least one tensor"),
           ), variant="cat"),
    OpInfo("var", F.std,
           lambda x, axis=None, keepdims=False, ddof=0: np.std(x, axis, ddof=ddof,
                                                               keepdims=keepdims),
           _many_reduced(ddof=True), _axis_errors("std") + (
               ErrorInput((_z(2, 3),), {"ddof": 1, "correction": 1}, TypeError,
                          r"std: give only one of ddof=, correction= and unbiased="),
           ), variant="std",
           aliases=(lambda x, axis=None, keepdims=False, ddof=0:
                    x.std(dim=axis, keepdim=keepdims, correction=ddof),)),
    OpInfo("mul", F.prod, lambda x, axis=None, keepdims=False: np.prod(x, axis,
                                                                       keepdims=keepdims),
           _many_reduced(st.one_of(S.floats(-1.5, 1.5), st.just(0.0))), _axis_errors("prod"),
           variant="prod", aliases=(_torch_kw(Tensor.prod),)),
    OpInfo("norm", F.norm, _norm_ref, _norm(), (
        ErrorInput((_z(3),), {"p": 0}, ValueError,
                   r"norm: p must be a positive number, 'fro' or inf, got 0"),
        ErrorInput((_z(3),), {"p": "nuc"}, ValueError, r"norm: p must be a positive number"),
    ), variant="norm", aliases=(lambda x, p=2, axis=None, keepdims=False:
                                x.norm(p, dim=axis, keepdim=keepdims),)),
    OpInfo("max", F.norm, _norm_ref, _norm_inf(), (), variant="norm_inf"),
    # dim=/keepdim= spellings: the same samples and references as the NumPy-keyword entries
    OpInfo("sum", _torch_kw(F.sum), _BASE["sum"].ref, _BASE["sum"].samples,
           (_both_names("sum"),), variant="dim", aliases=(_torch_kw(Tensor.sum),)),
    OpInfo("mean", _torch_kw(F.mean), _BASE["mean"].ref, _BASE["mean"].samples,
           (_both_names("mean"),), variant="dim", aliases=(_torch_kw(Tensor.mean),)),
    OpInfo("var", _torch_kw(F.var), _BASE["var"].ref, _BASE["var"].samples,
           (_both_names("var"),), variant="dim", aliases=(_torch_kw(Tensor.var),)),
    OpInfo("max", _torch_kw(F.max, values=True), lambda x, axis=None, keepdims=False:
           np.max(x, axis, keepdims=keepdims), _many_reduced(one_axis=True),
           (_both_names("max"),), variant="dim", aliases=(_torch_kw(Tensor.max, values=True),)),
    OpInfo("min", _torch_kw(F.min, values=True), lambda x, axis=None, keepdims=False:
           np.min(x, axis, keepdims=keepdims), _many_reduced(one_axis=True),
           (_both_names("min"),), variant="dim", aliases=(_torch_kw(Tensor.min, values=True),)),
    OpInfo("softmax", _softmax_torch(F.softmax), _BASE["softmax"].ref,
           _BASE["softmax"].samples, (_both_names("softmax"),), variant="dim",
           aliases=(_softmax_torch(Tensor.softmax),)),
    OpInfo("log_softmax", _softmax_torch(F.log_softmax), _BASE["log_softmax"].ref,
           _BASE["log_softmax"].samples, (_both_names("log_softmax"),), variant="dim",
           aliases=(_softmax_torch(Tensor.log_softmax),)),
    OpInfo("logsumexp", _torch_kw(F.logsumexp), _BASE["logsumexp"].ref,
           _BASE["logsumexp"].samples, (_both_names("logsumexp"),), variant="dim",
           aliases=(_torch_kw(Tensor.logsumexp),)),
)


def op_db_by_id() -> dict[str, OpInfo]:
    """The entries by id (``name`` or ``name.variant``)."""
    return {info.id: info for info in OP_DB}
