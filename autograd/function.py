"""The protocol between ops and the engine: ``Op`` (a table row), ``Node`` (its record in a graph)
and ``apply`` (run an op's forward and record it).

An op is a class with two static methods on raw arrays, side by side::

    class Exp(Op):
        '''d exp/dx = exp(x).'''
        @staticmethod
        def forward(ctx, x):
            ctx.saved = out = backend.k.exp(x)
            return out

        @staticmethod
        def backward(ctx, grad):
            return (backend.k.mul(grad, ctx.saved),)

``backward`` returns one gradient (or None) per tensor input, in the input's broadcast shape or
its own; the engine sums broadcast gradients back to each input's shape in one place.

The hottest rows (one kernel forward, one kernel per gradient) declare that instead of writing
the two bodies, still side by side::

    class Mul(Op):
        '''d(x * y)/dx = y, d(x * y)/dy = x.'''
        forward = kernel_forward("mul", save="inputs")
        backward = kernel_backward(("mul", G, Y), ("mul", G, X))

The two calls make the row's ``forward(ctx, x[, y])`` and ``backward(ctx, g)`` in
``autograd._core``: plain Python closures in the pure twin; in the compiled twin objects whose C
methods ``apply`` and the engine call directly (no Python call per forward or gradient), and
which Python calls like the closures. The same kernels in the same order in both.

Defining a subclass registers it in :data:`REGISTRY`, which the test suite checks against its
op database.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .hotpath import core as _core

__all__ = ["Op", "Node", "apply", "apply_to", "REGISTRY", "broadcast_shape", "kernel_forward",
           "kernel_backward", "G", "X", "Y", "OUT", "wants"]

#: Every differentiable op by name, filled as Op subclasses are defined.
REGISTRY: dict[str, type["Op"]] = {}


class Op:
    """One row of the op table: a named forward and its gradient."""

    name: ClassVar[str] = ""
    #: Elementwise binary ops check that their input shapes broadcast, naming both on failure.
    broadcasting: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("_"):
            return  # a private base shared by several ops is not an op itself
        cls.name = cls.__dict__.get("name") or _snake(cls.__name__)
        if cls.name in REGISTRY:
            raise TypeError(f"op {cls.name!r} is defined twice")
        REGISTRY[cls.name] = cls

    @staticmethod
    def forward(ctx: "Node", *arrays: np.ndarray, **params: Any) -> np.ndarray:
        """Compute the output array; store what backward needs on ``ctx``."""
        raise NotImplementedError

    @staticmethod
    def backward(ctx: "Node", grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        """Gradients with respect to each tensor input (None where not needed)."""
        raise NotImplementedError


def _snake(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(c.lower())
    return "".join(out)


# The hot path (Node, apply and the output Tensor) lives in _core.py, compiled by Cython when
# built; autograd.hotpath picks the compiled module or its pure-Python twin.
Node = _core.Node
apply = _core.apply
apply_to = _core.apply_to
broadcast_shape = _core.broadcast_shape
# Declared rows (one kernel forward, one kernel per gradient): see _core.kernel_forward.
kernel_forward = _core.kernel_forward
kernel_backward = _core.kernel_backward
G, X, Y, OUT = _core.G, _core.X, _core.Y, _core.OUT
wants = _core.wants
