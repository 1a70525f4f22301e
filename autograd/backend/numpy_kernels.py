"""The NumPy kernel provider: the reference implementation of the kernel API.

Every kernel is a plain function on raw ``numpy.ndarray`` values (never Tensors). The native
provider (``autograd.backend.native``) exports the same names with the same signatures and
return conventions, so the op table can call either one. A kernel never changes the dtype of
its floating-point inputs, and only the ``*_step`` optimizer kernels write into their arguments.

Derivative kernels are named ``<op>_back`` and take the upstream gradient ``grad``.
``reduction`` arguments take ``"mean"``, ``"sum"`` or ``"none"`` as in PyTorch.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

Axis = Optional[int | tuple[int, ...]]

# --------------------------------------------------------------------------------------------
# Elementwise arithmetic (NumPy broadcasting)
# --------------------------------------------------------------------------------------------


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b with broadcasting."""
    return np.add(a, b)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b with broadcasting."""
    return np.subtract(a, b)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b with broadcasting."""
    return np.multiply(a, b)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with broadcasting (IEEE semantics: x/0 is inf or nan, no exception)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b)


def pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # noqa: A001 - kernel name mirrors the op
    """a ** b with broadcasting (nan for a negative base with a fractional exponent)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.power(a, b)


def maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise max with broadcasting."""
    return np.maximum(a, b)


def minimum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise min with broadcasting."""
    return np.minimum(a, b)


def maximum_back(a: np.ndarray, b: np.ndarray, grad: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """d max(a,b): grad goes to the larger input; ties split it equally; where either is NaN
    both get it (PyTorch's rule: masked only where one is strictly smaller)."""
    half = np.where(a == b, grad * grad.dtype.type(0.5), grad)
    zero = grad.dtype.type(0)
    return np.where(a < b, zero, half), np.where(a > b, zero, half)


def minimum_back(a: np.ndarray, b: np.ndarray, grad: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """d min(a,b): grad goes to the smaller input; ties split it equally; where either is NaN
    both get it (PyTorch's rule)."""
    half = np.where(a == b, grad * grad.dtype.type(0.5), grad)
    zero = grad.dtype.type(0)
    return np.where(a > b, zero, half), np.where(a < b, zero, half)


def neg(x: np.ndarray) -> np.ndarray:
    """-x."""
    return np.negative(x)


def exp(x: np.ndarray) -> np.ndarray:
    """e ** x (overflow gives inf, as in NumPy)."""
    with np.errstate(over="ignore"):
        return np.exp(x)


def log(x: np.ndarray) -> np.ndarray:
    """Natural log; negative inputs give nan and 0 gives -inf, like NumPy, without warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def sqrt(x: np.ndarray) -> np.ndarray:
    """Square root; negative inputs give nan."""
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def abs(x: np.ndarray) -> np.ndarray:  # noqa: A001 - kernel name mirrors the op
    """|x|."""
    return np.abs(x)


def sign(x: np.ndarray) -> np.ndarray:
    """sign(x) in {-1, 0, 1}, same dtype as x."""
    return np.sign(x)


def clip(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """x limited to [lo, hi]; either bound may be None."""
    return np.clip(x, lo, hi)


def clip_back(x: np.ndarray, grad: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """d clip/dx = 1 where lo <= x <= hi, else 0."""
    mask = np.ones(x.shape, dtype=bool)
    if lo is not None:
        mask &= x >= lo
    if hi is not None:
        mask &= x <= hi
    return grad * mask


def where(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a where cond else b, with broadcasting; cond is boolean."""
    return np.where(cond, a, b)


def compare(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    """Boolean comparison ``op`` in {'lt','le','gt','ge','eq','ne'} with broadcasting."""
    return _COMPARE[op](a, b)


_COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
            "eq": np.equal, "ne": np.not_equal}

# --------------------------------------------------------------------------------------------
# Activations: forward and derivative
# --------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    # exp of a non-positive number never overflows; the two branches are the same function.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def sigmoid_back(out: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d sigmoid/dx = out * (1 - out), from the saved output."""
    return grad * out * (1 - out)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def tanh_back(out: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d tanh/dx = 1 - out^2, from the saved output."""
    return grad * (1 - out * out)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0)."""
    return np.maximum(x, 0)


def relu_back(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d relu/dx: 0 where x <= 0, else grad, so a NaN passes it on (PyTorch's rule); x may be the
    input or the output (both are <= 0 at the same places)."""
    return np.where(x <= 0, grad.dtype.type(0), grad)


def leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    """x if x > 0 else slope * x."""
    return np.where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_back(x: np.ndarray, grad: np.ndarray, slope: float) -> np.ndarray:
    """d leaky_relu/dx = 1 if x > 0 else slope."""
    return grad * np.where(x > 0, x.dtype.type(1), x.dtype.type(slope))


_GELU_C = math.sqrt(2.0 / math.pi)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    This is PyTorch's ``approximate='tanh'``; both providers compute exactly this formula.
    """
    t = np.tanh(x.dtype.type(_GELU_C) * (x + x.dtype.type(0.044715) * x * x * x))
    return x.dtype.type(0.5) * x * (1 + t)


def gelu_back(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d gelu/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    c = x.dtype.type(_GELU_C)
    t = np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x))
    dt = (1 - t * t) * c * (1 + x.dtype.type(3 * 0.044715) * x * x)
    return grad * (x.dtype.type(0.5) * (1 + t) + x.dtype.type(0.5) * x * dt)


_math_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf, as the native kernel computes it. NumPy has no erf ufunc. float32: Abramowitz &
    Stegun 7.1.26, |error| <= 1.5e-7 (about one float32 ulp of erf near 1; PyTorch's vectorized
    CPU float erf is the same formula); float64: math.erf per element (exact, slow)."""
    if x.dtype != np.float32:
        return np.asarray(_math_erf(x), dtype=x.dtype)
    f = np.float32
    a = np.abs(x)
    t = f(1) / (f(1) + f(_AS_P) * a)
    poly = f(_AS_A[4])
    for c in _AS_A[3::-1]:
        poly = f(c) + t * poly
    e = f(1) - t * poly * np.exp(-a * a)
    return np.where(x < 0, -e, e)


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """GELU, exact form: 0.5 x (1 + erf(x / sqrt(2))), PyTorch's default (approximate='none')."""
    e = _erf(x * x.dtype.type(_SQRT_HALF))
    return x.dtype.type(0.5) * x * (1 + e)


def gelu_erf_back(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d gelu_erf/dx = 0.5 (1 + erf(x / sqrt(2))) + x exp(-x^2 / 2) / sqrt(2 pi)."""
    cdf = x.dtype.type(0.5) * (1 + _erf(x * x.dtype.type(_SQRT_HALF)))
    pdf = x.dtype.type(_INV_SQRT_2PI) * np.exp(x.dtype.type(-0.5) * x * x)
    return grad * (cdf + x * pdf)


# --------------------------------------------------------------------------------------------
# Softmax family (numerically stable: the max is subtracted first)
# --------------------------------------------------------------------------------------------


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along ``axis``."""
    if x.size == 0:
        return x.copy()
    with np.errstate(invalid="ignore"):  # inf - inf: a row holding +inf is NaN, as PyTorch
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)


def softmax_back(out: np.ndarray, grad: np.ndarray, axis: int) -> np.ndarray:
    """d softmax: out * (grad - sum(grad * out, axis))."""
    return out * (grad - np.sum(grad * out, axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """x - logsumexp(x, axis); a row holding +inf is all NaN, as in PyTorch."""
    if x.size == 0:
        return x.copy()
    lse = logsumexp(x, axis, keepdims=True)
    with np.errstate(invalid="ignore"):  # -inf - -inf: a row of all -inf is NaN, as PyTorch
        return x - np.where(lse == np.inf, x.dtype.type("nan"), lse)


def log_softmax_back(out: np.ndarray, grad: np.ndarray, axis: int) -> np.ndarray:
    """d log_softmax: grad - exp(out) * sum(grad, axis)."""
    return grad - np.exp(out) * np.sum(grad, axis=axis, keepdims=True)


def logsumexp(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x), axis)), stable for large |x|; rows of all -inf, and empty rows, give
    -inf."""
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # initial: empty rows have a max
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def logsumexp_back(x: np.ndarray, out: np.ndarray, grad: np.ndarray, axis: int,
                   keepdims: bool = False) -> np.ndarray:
    """d logsumexp/dx = softmax(x) = exp(x - out), times grad broadcast back along ``axis``."""
    if not keepdims:
        out = np.expand_dims(out, axis)
        grad = np.expand_dims(grad, axis)
    return grad * np.exp(x - out)


# --------------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------------


def sum(x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    """Sum over ``axis`` (all axes when None); always returns an ndarray of x's dtype."""
    return np.asarray(np.sum(x, axis=axis, keepdims=keepdims), dtype=x.dtype)


def max(x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    """Max over ``axis``; raises ValueError on an empty reduction (named by the op layer)."""
    return np.asarray(np.max(x, axis=axis, keepdims=keepdims))


def min(x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    """Min over ``axis``."""
    return np.asarray(np.min(x, axis=axis, keepdims=keepdims))


def extremum_back(x: np.ndarray, out: np.ndarray, grad: np.ndarray, axis: Axis,
                  keepdims: bool) -> np.ndarray:
    """d max/dx (and min): grad shared equally among the elements equal to the extremum."""
    if not keepdims and axis is not None:
        out = np.expand_dims(out, axis)
        grad = np.expand_dims(grad, axis)
    mask = (x == out).astype(x.dtype)
    count = np.sum(mask, axis=axis, keepdims=True)
    return grad * mask / count


def sum_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` down to ``shape`` (leading axes and size-1 axes)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    out = np.sum(grad, axis=axes, keepdims=True) if axes else grad
    if lead:
        out = out.reshape(out.shape[lead:])
    return np.asarray(out, dtype=grad.dtype).reshape(shape)


def broadcast_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """x broadcast to ``shape`` (a read-only view)."""
    return np.broadcast_to(x, shape)


# --------------------------------------------------------------------------------------------
# Shape and data movement
# --------------------------------------------------------------------------------------------


def cast(x: np.ndarray, dtype: np.dtype, copy: bool = True) -> np.ndarray:
    """x converted to ``dtype`` (a new array unless ``copy=False`` and the dtype is x's)."""
    return x.astype(dtype, copy=copy)


def reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """x with a new shape (a view where possible)."""
    return np.reshape(x, shape)


def transpose(x: np.ndarray, axes: Sequence[int] | None) -> np.ndarray:
    """x with permuted axes (a view); None reverses them."""
    return np.transpose(x, axes)


def getitem(x: np.ndarray, index) -> np.ndarray:
    """x[index] for a normalized index (slices, ints, integer arrays, boolean masks)."""
    return x[index]


def index_add(shape: tuple[int, ...], index, grad: np.ndarray) -> np.ndarray:
    """Zeros of ``shape`` with ``grad`` added at ``index``; repeated indices accumulate."""
    out = np.zeros(shape, dtype=grad.dtype)
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, np.ndarray) for p in parts):
        np.add.at(out, index, grad)  # advanced indexing may repeat positions: accumulate
    else:
        out[index] = grad  # basic indexing never repeats a position
    return out


def concatenate(arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """Join arrays along an existing axis."""
    return np.concatenate(arrays, axis=axis)


def stack(arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """Join arrays along a new axis."""
    return np.stack(arrays, axis=axis)


def split(x: np.ndarray, sizes: Sequence[int], axis: int) -> list[np.ndarray]:
    """Cut x along ``axis`` into consecutive pieces of the given sizes."""
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


# --------------------------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------------------------


def matmul(a: np.ndarray, b: np.ndarray, trans_a: bool = False,
           trans_b: bool = False) -> np.ndarray:
    """op(a) @ op(b), op = transpose of the last two axes when the flag is set.

    Shapes: a (..., m, k) [or (..., k, m) with trans_a], b (..., k, n) [or (..., n, k)];
    batch axes broadcast. Both operands are at least 2-D (the op layer handles 1-D).
    """
    if trans_a:
        a = np.swapaxes(a, -1, -2)
    if trans_b:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


# --------------------------------------------------------------------------------------------
# Fused layers
# --------------------------------------------------------------------------------------------

ACTIVATIONS = (None, "relu", "sigmoid", "tanh")


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
           activation: str | None = None) -> np.ndarray:
    """act(x @ w.T + b): x (n, in), w (out, in) as in PyTorch, b (out,) or None.

    ``activation`` is one of None, 'relu', 'sigmoid', 'tanh'; the result is the activated output
    (the backward needs only that output, since each derivative is a function of it).
    """
    out = x @ w.T
    if b is not None:
        out += b
    if activation is None:
        return out
    if activation == "relu":
        return np.maximum(out, 0, out=out)
    if activation == "sigmoid":
        return sigmoid(out)
    if activation == "tanh":
        return np.tanh(out, out=out)
    raise ValueError(f"linear: unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def linear_back(x: np.ndarray, w: np.ndarray, out: np.ndarray, grad: np.ndarray,
                activation: str | None = None, has_bias: bool = True, need_dx: bool = True
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients (dx, dw, db) of ``linear`` given its output ``out`` and upstream ``grad``.

    dz = grad * act'(out); dx = dz @ w (None unless ``need_dx``: a first layer's input wants
    none); dw = dz.T @ x; db = dz.sum(0) (None unless ``has_bias``).
    """
    if activation is None:
        dz = grad
    elif activation == "relu":
        dz = relu_back(out, grad)
    elif activation == "sigmoid":
        dz = sigmoid_back(out, grad)
    elif activation == "tanh":
        dz = tanh_back(out, grad)
    else:
        raise ValueError(f"linear_back: unknown activation {activation!r}")
    db = np.sum(dz, axis=0) if has_bias else None
    return (dz @ w if need_dx else None), dz.T @ x, db


# --------------------------------------------------------------------------------------------
# Losses (prediction first, target second; the target has the prediction's shape unless noted)
# --------------------------------------------------------------------------------------------


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "mean":
        total = np.add.reduce(loss, axis=None)
        return np.asarray(total / loss.size if loss.size else np.nan, dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(np.add.reduce(loss, axis=None), dtype=loss.dtype)
    return loss


def _unreduce(grad: np.ndarray, shape: tuple[int, ...], reduction: str) -> np.ndarray:
    """The upstream gradient of a reduced loss, per element: a 0-d array for 'mean' and 'sum'
    (it broadcasts in the caller's product, cheaper than materialising it) or ``grad`` itself."""
    if reduction == "mean":
        n = math.prod(shape)
        return grad / n if n else grad
    return grad


def mse(pred: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """(pred - target)^2, reduced."""
    d = pred - target
    return _reduce(d * d, reduction)


def mse_back(pred: np.ndarray, target: np.ndarray, grad: np.ndarray,
             reduction: str = "mean") -> np.ndarray:
    """d mse/dpred = 2 (pred - target) * grad (divided by the count for 'mean')."""
    return 2 * (pred - target) * _unreduce(grad, pred.shape, reduction)


# PyTorch clamps log(p) at -100 so that p = 0 or 1 gives a finite loss; we do the same.
_LOG_FLOOR = -100.0


def _probabilities(kernel: str, target: np.ndarray) -> None:
    """Raise ValueError naming the first target outside [0, 1] (nan is): binary cross-entropy
    takes target probabilities, as PyTorch requires (the native kernels say the same)."""
    ok = (target >= 0) & (target <= 1)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        v = float(target.flat[i])
        raise ValueError(f"{kernel}: target[{i}] = {v:g} is not in [0, 1]: binary "
                         f"cross-entropy takes target probabilities")


def bce(prob: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """-(t log p + (1 - t) log(1 - p)) with log clamped at -100, reduced. Targets must lie in
    [0, 1] (ValueError otherwise)."""
    _probabilities("bce", target)
    with np.errstate(divide="ignore"):
        lp = np.maximum(np.log(prob), _LOG_FLOOR)
        l1p = np.maximum(np.log1p(-prob), _LOG_FLOOR)
    return _reduce(-(target * lp + (1 - target) * l1p), reduction)


def bce_back(prob: np.ndarray, target: np.ndarray, grad: np.ndarray,
             reduction: str = "mean") -> np.ndarray:
    """d bce/dp = (p - t) / max(p (1 - p), 1e-12) * grad; targets in [0, 1] as for bce."""
    _probabilities("bce_back", target)
    denom = np.maximum(prob * (1 - prob), prob.dtype.type(1e-12))
    return (prob - target) / denom * _unreduce(grad, prob.shape, reduction)


def bce_with_logits(logits: np.ndarray, target: np.ndarray,
                    reduction: str = "mean") -> np.ndarray:
    """max(z, 0) - z t + log(1 + e^-|z|): BCE of sigmoid(z), stable for any z."""
    loss = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    return _reduce(loss, reduction)


def bce_with_logits_back(logits: np.ndarray, target: np.ndarray, grad: np.ndarray,
                         reduction: str = "mean") -> np.ndarray:
    """d/dz = sigmoid(z) - t, times grad."""
    return (sigmoid(logits) - target) * _unreduce(grad, logits.shape, reduction)


def cross_entropy(logits: np.ndarray, target: np.ndarray,
                  reduction: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Softmax cross-entropy from logits (n, c) and integer class targets (n,).

    Returns (loss, log_probs): the reduced loss and the (n, c) log-softmax the backward needs.
    Targets must already be validated to lie in [0, c).
    """
    logp = log_softmax(logits, axis=1)
    picked = -logp[np.arange(logits.shape[0]), target]
    return _reduce(picked, reduction), logp


def cross_entropy_back(log_probs: np.ndarray, target: np.ndarray, grad: np.ndarray,
                       reduction: str = "mean") -> np.ndarray:
    """d/dlogits = (softmax - onehot(target)) * grad (divided by n for 'mean')."""
    n = log_probs.shape[0]
    d = np.exp(log_probs)
    d[np.arange(n), target] -= 1
    if reduction == "none":
        return d * grad[:, None]
    scale = grad / n if reduction == "mean" and n else grad
    return d * scale


# --------------------------------------------------------------------------------------------
# Optimizer updates (in place over lists of parameters)
# --------------------------------------------------------------------------------------------


def sgd_step(params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
             bufs: Sequence[np.ndarray] | None, lr: float, momentum: float = 0.0,
             dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
             first_step: bool = False) -> None:
    """SGD as in torch.optim.SGD, updating ``params`` (and momentum ``bufs``) in place.

    g = grad + wd * p; with momentum: buf = g on the first step, else buf = mu buf + (1 - damp) g;
    g = g + mu buf (Nesterov) or buf; p -= lr * g.
    """
    for i, (p, g) in enumerate(zip(params, grads)):
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = bufs[i]
            if first_step:
                buf[...] = g
            else:
                buf *= momentum
                buf += (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p -= lr * g


def adam_step(params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
              exp_avgs: Sequence[np.ndarray], exp_avg_sqs: Sequence[np.ndarray], step: int,
              lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
              weight_decay: float = 0.0, decoupled: bool = False) -> None:
    """Adam (decoupled=False, L2 added to the gradient) or AdamW (decoupled decay), in place.

    ``step`` is the 1-based step count after this update, used for bias correction, as in
    torch.optim.Adam: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """
    bc1 = 1 - beta1 ** step
    bc2_sqrt = math.sqrt(1 - beta2 ** step)
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        if weight_decay:
            if decoupled:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        denom = np.sqrt(v) / bc2_sqrt + eps
        p -= (lr / bc1) * m / denom
