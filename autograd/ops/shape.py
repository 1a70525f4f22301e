"""Shape and data movement: reshape, transpose, expand, indexing, concatenate, stack."""
from __future__ import annotations

from .. import backend as B
from ..function import Op


class Reshape(Op):
    """The gradient is reshaped back to the input's shape."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.saved = x.shape
        return B.k.reshape(x, shape)

    @staticmethod
    def backward(ctx, g):
        return (B.k.reshape(g, ctx.saved),)


class Transpose(Op):
    """The gradient is permuted by the inverse permutation."""

    @staticmethod
    def forward(ctx, x, axes):
        ctx.saved = axes
        return B.k.transpose(x, axes)

    @staticmethod
    def backward(ctx, g):
        axes = ctx.saved
        inverse = [0] * len(axes)
        for i, a in enumerate(axes):
            inverse[a] = i
        return (B.k.transpose(g, tuple(inverse)),)


class Expand(Op):
    """Broadcast to a larger shape; the engine sums the gradient back to the input's shape."""

    @staticmethod
    def forward(ctx, x, shape):
        return B.k.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return (g,)


class GetItem(Op):
    """The gradient is scattered back to the indexed positions; repeats accumulate."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.saved = (x.shape, index)
        return B.k.getitem(x, index)

    @staticmethod
    def backward(ctx, g):
        shape, index = ctx.saved
        return (B.k.index_add(shape, index, g),)


class Concatenate(Op):
    """The gradient is split back into the pieces along the joined axis."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.saved = ([x.shape[axis] for x in xs], axis)
        return B.k.concatenate(xs, axis)

    @staticmethod
    def backward(ctx, g):
        sizes, axis = ctx.saved
        return tuple(B.k.split(g, sizes, axis))


class Stack(Op):
    """The gradient is split along the new axis, which is then dropped."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.saved = (xs[0].shape, axis)
        return B.k.stack(xs, axis)

    @staticmethod
    def backward(ctx, g):
        shape, axis = ctx.saved
        pieces = B.k.split(g, [1] * g.shape[axis], axis)
        return tuple(B.k.reshape(p, shape) for p in pieces)


class Cast(Op):
    """A copy in a floating dtype (the same one for ``clone``); the gradient is cast back to
    the input's dtype. The conversion is data movement, done by NumPy in both providers."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.saved = x.dtype
        return x.astype(dtype)  # always a new array, even for the same dtype

    @staticmethod
    def backward(ctx, g):
        return (g.astype(ctx.saved, copy=False),)
