"""Activations and the softmax family."""
from __future__ import annotations

from .. import backend as B
from ..function import G, OUT, Op, kernel_backward, kernel_forward


class Sigmoid(Op):
    """d sigmoid/dx = out (1 - out)."""

    forward = kernel_forward("sigmoid", save="output")
    backward = kernel_backward(("sigmoid_back", OUT, G))


class Tanh(Op):
    """d tanh/dx = 1 - out^2."""

    forward = kernel_forward("tanh", save="output")
    backward = kernel_backward(("tanh_back", OUT, G))


class Relu(Op):
    """d relu/dx = 1[x > 0]."""

    name = "relu"
    forward = kernel_forward("relu", save="output")
    backward = kernel_backward(("relu_back", OUT, G))


class LeakyRelu(Op):
    """d leaky_relu/dx = 1 if x > 0 else slope."""

    name = "leaky_relu"

    @staticmethod
    def forward(ctx, x, slope=0.01):
        ctx.saved = (x, slope)
        return B.k.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, g):
        x, slope = ctx.saved
        return (B.k.leaky_relu_back(x, g, slope),)


class Gelu(Op):
    """d gelu/dx, exact (erf) form or tanh form (see numpy_kernels.gelu_erf_back, gelu_back)."""

    name = "gelu"

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.saved = (x, approximate)
        return B.k.gelu_erf(x) if approximate == "none" else B.k.gelu(x)

    @staticmethod
    def backward(ctx, g):
        x, approximate = ctx.saved
        return (B.k.gelu_erf_back(x, g) if approximate == "none" else B.k.gelu_back(x, g),)


class _AlongAxis(Op):
    """An op along one axis whose gradient needs only its output: kernels ``kernel`` and
    ``kernel_back(out, grad, axis)``."""

    kernel = ""

    @classmethod
    def forward(cls, ctx, x, axis):
        out = getattr(B.k, cls.kernel)(x, axis)
        ctx.saved = (out, axis)
        return out

    @classmethod
    def backward(cls, ctx, g):
        out, axis = ctx.saved
        return (getattr(B.k, cls.kernel + "_back")(out, g, axis),)


class Softmax(_AlongAxis):
    """d softmax = out (g - sum(g out))."""

    kernel = "softmax"


class LogSoftmax(_AlongAxis):
    """d log_softmax = g - exp(out) sum(g)."""

    name = "log_softmax"
    kernel = "log_softmax"


class LogSumExp(Op):
    """d logsumexp/dx = softmax(x), over one axis (an int) or several (a tuple)."""

    name = "logsumexp"

    @staticmethod
    def forward(ctx, x, axis, keepdims=False):
        out = B.k.logsumexp(x, axis, keepdims)
        ctx.saved = (x, out, axis, keepdims)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out, axis, keepdims = ctx.saved
        return (B.k.logsumexp_back(x, out, g, axis, keepdims),)


class _NormalCdf(Op):
    """Phi(x) = 0.5 (1 + erf(x / sqrt(2))), d Phi/dx = phi(x) = exp(-x^2 / 2) / sqrt(2 pi). Not
    public: ``create_graph`` records the exact GELU's gradient, Phi(x) + x phi(x), with it
    (autograd.backend.tensor_kernels.gelu_erf_back). Phi comes from the providers' own erf, in
    the gelu_erf_back kernel: Phi(x) = gelu_erf_back(x, 1) - x phi(x)."""

    name = "normal_cdf"

    @staticmethod
    def forward(ctx, x):
        ctx.saved = x
        ones = B.k.add(B.k.mul(x, x.dtype.type(0)), x.dtype.type(1))
        return B.k.sub(B.k.gelu_erf_back(x, ones), B.k.mul(x, _normal_pdf(x)))

    @staticmethod
    def backward(ctx, g):
        return (B.k.mul(g, _normal_pdf(ctx.saved)),)


def _normal_pdf(x):
    return B.k.mul(B.k.exp(B.k.mul(B.k.mul(x, x), x.dtype.type(-0.5))),
                   x.dtype.type(0.3989422804014327))
