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
its own; the engine sums broadcast gradients back to each input's shape in one place. Defining a
subclass registers it in :data:`REGISTRY`, which the test suite checks against its op database.
"""
from __future__ import annotations

import os
import traceback
from typing import Any, ClassVar

import numpy as np

from .errors import InplaceModificationError, mixed_dtypes_message
from .grad_mode import state

__all__ = ["Op", "Node", "apply", "REGISTRY", "broadcast_shape"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ORIGIN_FRAMES = 4  # enough to see the line and its callers, short enough to read

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


class Node:
    """The record of one op application: its inputs, what it saved, and checks for backward.

    ``saved`` holds whatever the forward stored (arrays and parameters); ``needs`` says which
    inputs want a gradient; ``params`` keeps the forward's keyword arguments, so a
    ``create_graph`` backward can rerun the forward on Tensors (see ``autograd.gradients``).
    A node never references its output, so graphs hold no cycles.
    """

    __slots__ = ("op", "inputs", "needs", "saved", "versions", "trace", "freed", "params")

    def __init__(self, op: type[Op], inputs: tuple, params: dict | None = None):
        self.op = op
        self.inputs = inputs
        self.params = params
        # A plain loop: comprehensions are function calls in CPython 3.11, and this is the
        # per-op hot path.
        needs = []
        versions = []
        for t in inputs:
            needs.append(t._requires_grad)
            versions.append(t._vc[0])
        self.needs = tuple(needs)
        self.versions = tuple(versions)
        self.saved: Any = None
        self.trace: list | None = None
        self.freed = False

    def check_versions(self) -> None:
        """Raise if an input whose array this node saved was changed in place since forward."""
        for t, v in zip(self.inputs, self.versions):
            if t._vc[0] != v and _holds(self.saved, t._data):
                raise InplaceModificationError(
                    f"{self.op.name}: an input of shape {t.shape} that this op saved for "
                    f"backward was modified in place (version {v} at forward, {t._version} "
                    f"now); compute the gradient before changing it, or change a copy")

    def release(self) -> None:
        """Drop the saved arrays (called after backward unless ``retain_graph=True``)."""
        self.saved = None
        self.freed = True

    def origin(self) -> str:
        """Where the forward created this node (recorded only under ``detect_anomaly``): the
        innermost frames outside autograd itself, i.e. the user's code that called the op."""
        if not self.trace:
            return "(creation site not recorded: run the forward inside detect_anomaly())"
        outside = [f for f in self.trace if not f.filename.startswith(_PACKAGE_DIR)]
        return "".join(traceback.format_list(outside[-_ORIGIN_FRAMES:])).rstrip()

    def __repr__(self) -> str:
        return f"<Node {self.op.name}>"


def _holds(saved: Any, array: np.ndarray) -> bool:
    if saved is array:
        return True
    if isinstance(saved, tuple):
        return any(s is array for s in saved)
    return False


class _Scratch:
    """Where an unrecorded forward stores what it would save; dropped with the call."""

    __slots__ = ("saved",)


def apply(op: type[Op], *inputs: Any, **params: Any):
    """Run ``op`` on Tensor inputs and return the output Tensor, recording a Node if needed.

    All floating inputs must share one dtype, and may be combined with boolean but not with
    integer tensors: mixing float32 and float64, or a float and an integer tensor (which NumPy
    would promote, e.g. float32 with int64 to float64), raises TypeError naming the op, rather
    than casting silently.
    """
    # One pass over the inputs, without generators: this runs for every op, and its cost is
    # most of the per-op overhead on small arrays.
    arrays = []
    dtype = None
    integer = None
    record = False
    for t in inputs:
        a = t._data
        arrays.append(a)
        if t._requires_grad:
            record = True
        d = a.dtype
        if d is not dtype:
            if d.kind == "f":
                if dtype is None:
                    dtype = d
                elif d != dtype:
                    _mixed(op, dtype, d, inputs)
            elif d.kind in "iu":
                integer = d
    if integer is not None and dtype is not None:
        _mixed(op, dtype, integer, inputs)
    if op.broadcasting and len(arrays) > 1 and arrays[0].shape != arrays[1].shape:
        _check_broadcast(op, arrays)
    if not (record and state.grad_enabled):
        return _output(op.forward(_Scratch(), *arrays, **params), None, inputs)
    ctx = Node(op, inputs, params)
    out = op.forward(ctx, *arrays, **params)
    if state.anomaly:
        ctx.trace = traceback.extract_stack()[:-2]
    return _output(out, ctx, inputs)


def _output(out: np.ndarray, node: Node | None, inputs: tuple) -> "Tensor":
    """Wrap an op's result; a view of its single input shares that input's version counter,
    so an in-place change through either one invalidates graphs that saved the other."""
    t = Tensor._wrap(out, node)
    base = getattr(out, "base", None)
    if base is not None and len(inputs) == 1:
        a = inputs[0]._data
        if base is a or base is a.base:
            t._vc = inputs[0]._vc
    return t


def _mixed(op: type[Op], dtype: np.dtype, other: np.dtype, inputs: tuple = ()) -> None:
    raise TypeError(mixed_dtypes_message(op.name, dtype, other, inputs))


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The NumPy broadcast of two shapes, or None if they do not broadcast.

    Plain Python because np.broadcast_shapes costs ~5 us, more than a small op itself.
    """
    if len(a) < len(b):
        a, b = b, a
    out = list(a)
    off = len(a) - len(b)
    for i, n in enumerate(b):
        m = a[off + i]
        if m != n:
            if m == 1:
                out[off + i] = n
            elif n != 1:
                return None
    return tuple(out)


def _check_broadcast(op: type[Op], arrays: list[np.ndarray]) -> None:
    shape = arrays[0].shape
    for a in arrays[1:]:
        shape = broadcast_shape(shape, a.shape)
        if shape is None:
            shapes = " and ".join(str(a.shape) for a in arrays)
            raise ValueError(f"{op.name}: shapes {shapes} cannot be broadcast together")


from .tensor import Tensor  # noqa: E402  (Tensor calls apply; apply wraps results as Tensor)
