"""Elementwise arithmetic and elementwise math."""
from __future__ import annotations

from .. import backend as B
from ..function import G, OUT, X, Y, Op, kernel_backward, kernel_forward


class Add(Op):
    """d(x + y)/dx = 1, d(x + y)/dy = 1."""

    broadcasting = True
    forward = kernel_forward("add")
    backward = kernel_backward(G, G)


class Sub(Op):
    """d(x - y)/dx = 1, d(x - y)/dy = -1."""

    broadcasting = True
    forward = kernel_forward("sub")
    backward = kernel_backward(G, ("neg", G))


class Mul(Op):
    """d(x * y)/dx = y, d(x * y)/dy = x."""

    broadcasting = True
    forward = kernel_forward("mul", save="inputs")
    backward = kernel_backward(("mul", G, Y), ("mul", G, X))


class Div(Op):
    """d(a / b)/da = 1 / b, d(a / b)/db = -a / b^2."""

    broadcasting = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.saved = (a, b)
        return B.k.div(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        da = B.k.div(g, b) if ctx.needs[0] else None
        db = B.k.neg(B.k.div(B.k.mul(g, a), B.k.mul(b, b))) if ctx.needs[1] else None
        return da, db


class Pow(Op):
    """d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log(a)."""

    broadcasting = True

    @staticmethod
    def forward(ctx, a, b):
        out = B.k.pow(a, b)
        ctx.saved = (a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved
        da = db = None
        zero, one = g.dtype.type(0), g.dtype.type(1)
        if ctx.needs[0]:
            # b a^(b-1) is 0 * inf at a = 0, b = 0; PyTorch's gradient is 0 there, which b a^0
            # gives without forming the product. Only there: elsewhere b = 0 gives 0 * finite,
            # and the exponent must stay b so that create_graph differentiates it in b
            both = B.k.mul(B.k.compare(a, zero, "eq"), B.k.compare(b, zero, "eq"))
            b1 = B.k.where(both, one, b)
            da = B.k.mul(g, B.k.mul(b, B.k.pow(a, B.k.sub(b1, one))))
        if ctx.needs[1]:
            # a^b log(a) is 0 * -inf at a = 0; PyTorch takes the limit 0 where b >= 0, which
            # log(1) gives without forming the product
            at_zero = B.k.mul(B.k.compare(a, zero, "eq"), B.k.compare(b, zero, "ge"))
            db = B.k.mul(g, B.k.mul(out, B.k.log(B.k.where(at_zero, one, a))))
        return da, db


class _Pairwise(Op):
    """Elementwise max/min of two inputs: forward kernel ``kernel``, gradient ``kernel_back``."""

    broadcasting = True
    kernel = ""

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.saved = (a, b)
        return getattr(B.k, cls.kernel)(a, b)

    @classmethod
    def backward(cls, ctx, g):
        return getattr(B.k, cls.kernel + "_back")(*ctx.saved, g)


class Maximum(_Pairwise):
    """d max(a, b) = 1 on the larger input; ties split the gradient equally."""

    kernel = "maximum"


class Minimum(_Pairwise):
    """d min(a, b) = 1 on the smaller input; ties split the gradient equally."""

    kernel = "minimum"


class Where(Op):
    """d where(c, a, b)/da = 1[c], d/db = 1[not c]; the condition is not differentiable."""

    broadcasting = True

    @staticmethod
    def forward(ctx, a, b, cond):
        ctx.saved = cond
        return B.k.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        cond = ctx.saved
        zero = g.dtype.type(0)
        return (B.k.where(cond, g, zero) if ctx.needs[0] else None,
                B.k.where(cond, zero, g) if ctx.needs[1] else None)


class Neg(Op):
    """d(-x)/dx = -1."""

    forward = kernel_forward("neg")
    backward = kernel_backward(("neg", G))


class Exp(Op):
    """d exp(x)/dx = exp(x) (the saved output)."""

    forward = kernel_forward("exp", save="output")
    backward = kernel_backward(("mul", G, OUT))


class Log(Op):
    """d log(x)/dx = 1 / x."""

    forward = kernel_forward("log", save="inputs")
    backward = kernel_backward(("div", G, X))


class Sqrt(Op):
    """d sqrt(x)/dx = 1 / (2 sqrt(x)) (from the saved output)."""

    @staticmethod
    def forward(ctx, x):
        ctx.saved = out = B.k.sqrt(x)
        return out

    @staticmethod
    def backward(ctx, g):
        return (B.k.div(g, B.k.add(ctx.saved, ctx.saved)),)


class Abs(Op):
    """d |x|/dx = sign(x) (0 at 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.saved = x
        return B.k.abs(x)

    @staticmethod
    def backward(ctx, g):
        x = ctx.saved
        # sign(NaN) is NaN in NumPy, 0 in PyTorch's gradient
        return (B.k.where(B.k.compare(x, x, "ne"), g.dtype.type(0), B.k.mul(g, B.k.sign(x))),)


class Clip(Op):
    """d clip(x, lo, hi)/dx = 1[lo <= x <= hi]."""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        ctx.saved = (x, lo, hi)
        return B.k.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        x, lo, hi = ctx.saved
        return (B.k.clip_back(x, g, lo, hi),)


class ClipTensor(Op):
    """clip with tensor bounds, min(max(x, lo), hi), and PyTorch's gradients: x where
    lo <= x <= hi; lo where x < lo < hi; hi where x > hi or hi < lo (then hi is the result)."""

    name = "clip_tensor"
    broadcasting = True

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.saved = (x, lo, hi)
        return B.k.minimum(B.k.maximum(x, lo), hi)

    @staticmethod
    def backward(ctx, g):
        x, lo, hi = ctx.saved
        zero = g.dtype.type(0)
        dx = dlo = dhi = None
        if ctx.needs[0]:
            inside = B.k.mul(B.k.compare(x, lo, "ge"), B.k.compare(x, hi, "le"))
            dx = B.k.where(inside, g, zero)
        if ctx.needs[1]:
            below = B.k.mul(B.k.compare(x, lo, "lt"), B.k.compare(lo, hi, "lt"))
            dlo = B.k.where(below, g, zero)
        if ctx.needs[2]:
            above = B.k.add(B.k.compare(x, hi, "gt"), B.k.compare(hi, lo, "lt"))
            dhi = B.k.where(above, g, zero)
        return dx, dlo, dhi
