"""Matrix products: matmul (1-D, 2-D, batched) and the fused linear layer."""
from __future__ import annotations

from .. import backend as B
from ..function import Op
from ..grad_mode import state as _state


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
    """act(x @ w.T + b) in one fused kernel; its backward gives dx, dw, db in one more."""

    # The thread's provider read from grad_mode.state (what backend.k returns, without the
    # module property's call): every layer of every step runs these two.
    @staticmethod
    def forward(ctx, x, w, b=None, activation=None):
        out = _state.k.linear(x, w, b, activation)
        ctx.saved = (x, w, out, activation)
        return out

    @staticmethod
    def backward(ctx, g):
        x, w, out, activation = ctx.saved
        if len(ctx.inputs) == 3:
            return _state.k.linear_back(x, w, out, g, activation, True)  # (dx, dw, db)
        return _state.k.linear_back(x, w, out, g, activation, False)[:2]
