"""Reductions over axes: sum, mean, max, min, var, the p-norm.

``axis`` reaching an op is already normalised by the functional layer: None or a tuple of
non-negative ints.
"""
from __future__ import annotations

from .. import backend as B
from ..function import Op


def _kept_shape(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    """The shape of a reduction over ``axis`` with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _reduced_shape(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    """The shape of a reduction over ``axis`` with keepdims=False."""
    if axis is None:
        return ()
    return tuple(n for i, n in enumerate(shape) if i not in axis)


def _count(shape: tuple[int, ...], axis) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axis is None or i in axis:
            n *= s
    return n


def _spread(g, shape, axis):
    """The gradient of a reduction, broadcast back over the axes it reduced."""
    return B.k.broadcast_to(B.k.reshape(g, _kept_shape(shape, axis)), shape)


class Sum(Op):
    """d sum(x)/dx = 1 for every reduced element."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.saved = (x.shape, axis)
        return B.k.sum(x, axis, keepdims)

    @staticmethod
    def backward(ctx, g):
        shape, axis = ctx.saved
        return (_spread(g, shape, axis),)


class Mean(Op):
    """d mean(x)/dx = 1 / n for every reduced element."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        n = _count(x.shape, axis)
        ctx.saved = (x.shape, axis, n)
        return B.k.div(B.k.sum(x, axis, keepdims), x.dtype.type(n) if n else x.dtype.type("nan"))

    @staticmethod
    def backward(ctx, g):
        shape, axis, n = ctx.saved
        return (_spread(B.k.div(g, g.dtype.type(n)), shape, axis),)


class _Extremum(Op):
    """Max and min share a gradient: 1 at the extremum, shared equally among ties."""

    kernel = ""  # the forward kernel's name

    @classmethod
    def forward(cls, ctx, x, axis=None, keepdims=False):
        out = getattr(B.k, cls.kernel)(x, axis, keepdims)
        ctx.saved = (x, out, axis, keepdims)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out, axis, keepdims = ctx.saved
        return (B.k.extremum_back(x, out, g, axis, keepdims),)


class Max(_Extremum):
    """d max(x)/dx = 1 at the maximum, shared equally among ties."""

    kernel = "max"


class Min(_Extremum):
    """d min(x)/dx = 1 at the minimum, shared equally among ties."""

    kernel = "min"


class Norm(Op):
    """The vector p-norm n = (sum |x|^p)^(1/p) for a finite p > 0:
    dn/dx = sign(x) (|x| / n)^(p-1), i.e. x / n for p = 2 and sign(x) for p = 1.

    At an all-zero input (n = 0) the gradient is 0, as in PyTorch: the composed form
    sqrt(sum(x * x)) would give 0 * inf = NaN there (e.g. the L2 penalty of a zero-initialised
    bias).
    """

    @staticmethod
    def forward(ctx, x, p=2.0, axis=None, keepdims=False):
        k = B.k
        if p == 2:
            n = k.sqrt(k.sum(k.mul(x, x), axis, True))
        elif p == 1:
            n = k.sum(k.abs(x), axis, True)
        else:
            n = k.pow(k.sum(k.pow(k.abs(x), x.dtype.type(p)), axis, True), x.dtype.type(1 / p))
        ctx.saved = (x, n, p)
        return n if keepdims else k.reshape(n, _reduced_shape(x.shape, axis))

    @staticmethod
    def backward(ctx, g):
        x, n, p = ctx.saved
        k = B.k
        gk = k.reshape(g, n.shape)
        if p == 1:  # sign(x): 0 at zeros already, no division
            return (k.mul(k.sign(x), gk),)
        # n = 0 only where every reduced x is 0: divide by 1 there, x (or sign x) makes it 0
        safe = k.where(k.compare(n, x.dtype.type(0), "gt"), n, x.dtype.type(1))
        if p == 2:
            return (k.mul(x, k.div(gk, safe)),)
        ratio = k.pow(k.div(k.abs(x), safe), x.dtype.type(p - 1))
        return (k.mul(k.mul(k.sign(x), ratio), gk),)


class Var(Op):
    """d var(x)/dx = 2 (x - mean) / (n - ddof)."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        n = _count(x.shape, axis)
        mean = B.k.div(B.k.sum(x, axis, True), x.dtype.type(n))
        centred = B.k.sub(x, mean)
        denom = x.dtype.type(n - ddof) if n > ddof else x.dtype.type("nan")
        ctx.saved = (centred, axis, denom)
        return B.k.div(B.k.sum(B.k.mul(centred, centred), axis, keepdims), denom)

    @staticmethod
    def backward(ctx, g):
        centred, axis, denom = ctx.saved
        scale = B.k.div(B.k.reshape(g, _kept_shape(centred.shape, axis)), denom)
        return (B.k.mul(B.k.add(centred, centred), scale),)
