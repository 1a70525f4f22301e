"""Losses, each one fused kernel forward and one backward; every input that can carry a gradient
gets one (targets too, as in PyTorch; class-index targets are integers and carry none)."""
from __future__ import annotations

from .. import backend as B
from ..function import G, Op, X, Y, kernel_backward, kernel_forward


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


def _per_element(g, n: int, reduction: str):
    """The upstream gradient of a reduced loss as it reaches each element: g itself ('none'),
    a 0-d g ('sum', broadcast by the caller's product) or g / n ('mean')."""
    if reduction == "mean":
        return B.k.div(g, g.dtype.type(n)) if n else g
    return g


def _bce_target_gradient(ctx, g):
    """d bce/dt = log(1 - p) - log(p), per element (a target that wants a gradient is rare)."""
    p = ctx.saved[0]
    logit = B.k.sub(B.k.log(B.k.sub(p.dtype.type(1), p)), B.k.log(p))
    return B.k.mul(logit, _per_element(g, p.size, ctx.params.get("reduction", "mean")))


class BinaryCrossEntropy(Op):
    """d bce/dp = (p - t) / (p (1 - p)); d bce/dt = log(1 - p) - log(p) (-logit(p), unclamped,
    as PyTorch).

    Declared: one kernel each way (no Python frame in the compiled twin), and the target's
    gradient, wanted only for a target that requires grad, written out above."""

    name = "binary_cross_entropy"
    forward = kernel_forward("bce", save="inputs", attrs={"reduction": "mean"})
    backward = kernel_backward(("bce_back", X, Y, G, "reduction"), _bce_target_gradient,
                               attrs={"reduction": "mean"})


class BinaryCrossEntropyWithLogits(Op):
    """d bce(sigmoid(z))/dz = sigmoid(z) - t; d/dt = -z."""

    name = "binary_cross_entropy_with_logits"

    @staticmethod
    def forward(ctx, z, t, reduction="mean"):
        ctx.saved = (z, t, reduction)
        return B.k.bce_with_logits(z, t, reduction)

    @staticmethod
    def backward(ctx, g):
        z, t, reduction = ctx.saved
        needs = ctx.needs
        dz = B.k.bce_with_logits_back(z, t, g, reduction) if needs[0] else None
        dt = B.k.mul(B.k.neg(z), _per_element(g, z.size, reduction)) if needs[1] else None
        return dz, dt


class CrossEntropy(Op):
    """Softmax cross-entropy of logits (n, c).

    Class-index targets alone (the ``target`` parameter, no second input) run one fused kernel
    each way: d/dlogits = softmax - onehot(target), from the saved log-probabilities.

    Otherwise the second input ``q`` (n, c) is each row's target distribution with class
    weights and label smoothing folded in (built by ``functional.cross_entropy``), the loss of a
    row is -sum_c q log_softmax(logits), and 'mean' divides the total by ``denom`` (the summed
    weight of the counted targets, as PyTorch). d/dlogits = scale (softmax sum_c q - q),
    d/dq = -scale log_softmax, with scale the per-row upstream gradient.
    """

    @staticmethod
    def forward(ctx, logits, *q, target=None, reduction="mean", denom=None):
        if not q:
            loss, log_probs = B.k.cross_entropy(logits, target, reduction)
            ctx.saved = (log_probs, target, reduction)
            return loss
        q = q[0]
        log_probs = B.k.log_softmax(logits, 1)
        ctx.saved = (log_probs, q, reduction, denom)
        rows = B.k.neg(B.k.sum(B.k.mul(q, log_probs), (1,)))
        if reduction == "none":
            return rows
        total = B.k.sum(rows)
        return total if reduction == "sum" else B.k.div(total, log_probs.dtype.type(denom))

    @staticmethod
    def backward(ctx, g):
        if len(ctx.inputs) == 1:
            log_probs, target, reduction = ctx.saved
            return (B.k.cross_entropy_back(log_probs, target, g, reduction),)
        log_probs, q, reduction, denom = ctx.saved
        if reduction == "none":
            scale = B.k.reshape(g, (g.shape[0], 1))
        else:
            scale = g if reduction == "sum" else B.k.div(g, g.dtype.type(denom)) if denom \
                else B.k.mul(g, g.dtype.type(0))  # nothing counted: NaN loss, zero gradient
        dz = B.k.mul(B.k.sub(B.k.mul(B.k.exp(log_probs), B.k.sum(q, (1,), True)), q), scale)
        dq = B.k.neg(B.k.mul(log_probs, scale)) if ctx.needs[1] else None
        return dz, dq
