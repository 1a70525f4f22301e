"""Matrix products: matmul (1-D, 2-D, batched) and the fused linear layer."""
from __future__ import annotations

from .. import backend as B
from ..function import OUT, G, Op, X, Y, kernel_backward, kernel_forward, wants


class Matmul(Op):
    """d(a @ b)/da = g @ b^T, d(a @ b)/db = a^T @ g (1-D operands promoted, then squeezed)."""

    @staticmethod
    def forward(ctx, a, b):
        a2 = B.k.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        b2 = B.k.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        out = B.k.matmul(a2, b2)
        ctx.saved = (a, b, a2, b2, out.shape)
        if a.ndim == 1 or b.ndim == 1:
            out = B.k.reshape(out, _squeezed(out.shape, a.ndim == 1, b.ndim == 1))
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, a2, b2, out_shape = ctx.saved
        g2 = B.k.reshape(g, out_shape)
        da = db = None
        if ctx.needs[0]:
            da = B.k.matmul(g2, b2, trans_b=True)
            if a.ndim == 1:
                da = B.k.reshape(da, da.shape[:-2] + (da.shape[-1],))
        if ctx.needs[1]:
            db = B.k.matmul(a2, g2, trans_a=True)
            if b.ndim == 1:
                db = B.k.reshape(db, db.shape[:-1])
        return da, db


def _squeezed(shape, drop_row: bool, drop_col: bool) -> tuple[int, ...]:
    if drop_row and drop_col:
        return shape[:-2]
    if drop_row:
        return shape[:-2] + (shape[-1],)
    return shape[:-1]


class Linear(Op):
    """act(x @ w.T + b) in one fused kernel; its backward gives dx, dw, db in one more.

    Declared (no Python frame either way in the compiled twin): the forward is
    ``linear(x, w, b or None, activation)`` saving (x, w[, b], out); the gradient is
    ``linear_back(x, w, out, g, activation, has_bias, need_dx)`` with ``has_bias`` and
    ``need_dx`` whether the bias and the input want a gradient, so neither db nor dx (a product
    as large as the forward's, wasted on every first layer) is computed for nothing."""

    forward = kernel_forward("linear", save="inputs+output", attrs={"activation": None},
                             arrays=3)
    backward = kernel_backward(
        joint=("linear_back", X, Y, OUT, G, "activation", wants(2), wants(0)),
        attrs={"activation": None}, save="inputs+output")
