"""Losses, each one fused kernel forward and one backward. Targets of the classification losses
are not differentiated; MSE differentiates both sides."""
from __future__ import annotations

from .. import backend as B
from ..function import Op


class MseLoss(Op):
    """d mse/dpred = 2 (pred - target) / n ('mean'); d/dtarget is its negative."""

    name = "mse_loss"

    @staticmethod
    def forward(ctx, pred, target, reduction="mean"):
        ctx.saved = (pred, target, reduction)
        return B.k.mse(pred, target, reduction)

    @staticmethod
    def backward(ctx, g):
        pred, target, reduction = ctx.saved
        d = B.k.mse_back(pred, target, g, reduction)
        return d, (B.k.neg(d) if ctx.needs[1] else None)


class _BinaryLoss(Op):
    """A binary classification loss: kernels ``kernel(pred, target, reduction)`` and
    ``kernel_back(pred, target, grad, reduction)``; the target is not differentiated."""

    kernel = ""

    @classmethod
    def forward(cls, ctx, pred, target, reduction="mean"):
        ctx.saved = (pred, target, reduction)
        return getattr(B.k, cls.kernel)(pred, target, reduction)

    @classmethod
    def backward(cls, ctx, g):
        pred, target, reduction = ctx.saved
        return getattr(B.k, cls.kernel + "_back")(pred, target, g, reduction), None


class BinaryCrossEntropy(_BinaryLoss):
    """d bce/dp = (p - t) / (p (1 - p))."""

    name = "binary_cross_entropy"
    kernel = "bce"


class BinaryCrossEntropyWithLogits(_BinaryLoss):
    """d bce(sigmoid(z))/dz = sigmoid(z) - t."""

    name = "binary_cross_entropy_with_logits"
    kernel = "bce_with_logits"


class CrossEntropy(Op):
    """d ce/dlogits = softmax(logits) - onehot(target), from the saved log-probabilities."""

    @staticmethod
    def forward(ctx, logits, target, reduction="mean"):
        loss, log_probs = B.k.cross_entropy(logits, target, reduction)
        ctx.saved = (log_probs, target, reduction)
        return loss

    @staticmethod
    def backward(ctx, g):
        log_probs, target, reduction = ctx.saved
        return (B.k.cross_entropy_back(log_probs, target, g, reduction),)
