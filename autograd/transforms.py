"""Function transforms built on :func:`autograd.grad`: ``vjp``, ``jvp``, ``jacobian``,
``hessian``, ``hvp`` and ``vhp``, with the arguments and results of ``torch.autograd.functional``.

``func`` takes the ``inputs`` (a Tensor or a tuple of Tensors) and returns a Tensor or a tuple of
Tensors; results follow the same nesting (a Tensor for a Tensor, tuples for tuples). The inputs
are differentiated through detached copies, so the caller's tensors and their ``.grad`` are left
alone; with ``create_graph=True`` the results stay connected to the caller's inputs (when they
require grad) and can be differentiated again. Inputs the function ignores get zero gradients,
or an error with ``strict=True``.

How each is computed (no vectorisation: loops of backward passes, each only over the part of
the graph that leads to the inputs):

- ``vjp``: one backward pass.
- ``jvp``: the double-vjp construction (reverse mode twice): g(u) = J^T u is recorded for a dummy
  u, then J v = d<g(u), v>/du is one more backward. Exact, costs two backward passes.
- ``jacobian``: one backward per output element (``strategy="reverse-mode"``) or one jvp per input
  element (``"forward-mode"``).
- ``vhp`` and ``hvp``: the gradient is recorded once (``create_graph``) and differentiated once
  more with v as its cotangent: two backward passes, never the full Hessian. ``hvp`` uses the
  Hessian's symmetry (H v = (v^T H)^T for twice continuously differentiable functions).
- ``hessian``: the Jacobian of the recorded gradient.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .function import apply
from .grad_mode import enable_grad
from .gradients import grad
from .ops import shape as shape_ops
from .tensor import Tensor

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]

Tensors = "Tensor | tuple[Tensor, ...]"


# --------------------------------------------------------------------------------------------
# Argument handling (as torch.autograd.functional)
# --------------------------------------------------------------------------------------------

def _tuple(x: Any, arg: str, fn: str) -> tuple[bool, tuple]:
    """(was it a tuple, its items as a tuple); every item must be a Tensor."""
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: the {arg} must be a Tensor or a tuple of Tensors, but "
                            f"entry {i} is {type(t).__name__}")
    return is_tuple, items


def _untuple(is_tuple: bool, items: tuple) -> Any:
    return items if is_tuple else items[0]


def _prepare(inputs: tuple[Tensor, ...], create_graph: bool) -> tuple[Tensor, ...]:
    """Fresh leaves requiring grad; under create_graph, differentiable aliases of inputs that
    require grad, so results keep their dependence on the caller's graph."""
    out = []
    for t in inputs:
        if t.dtype.kind != "f":
            raise TypeError(f"inputs must be floating tensors, got {t.dtype}")
        if create_graph and t.requires_grad:
            out.append(apply(shape_ops.Reshape, t, shape=t.shape))
        else:
            alias = t.detach()
            alias.requires_grad = True
            out.append(alias)
    return tuple(out)


def _finish(items: tuple, create_graph: bool) -> tuple:
    """Results: detached unless create_graph."""
    if create_graph:
        return items
    return tuple(None if t is None else (t.detach() if isinstance(t, Tensor) else t)
                 for t in items)


def _call(func: Callable, inputs: tuple, is_tuple: bool, fn: str) -> tuple[bool, tuple]:
    with enable_grad():
        out = func(*inputs) if is_tuple else func(inputs[0])
    return _tuple(out, "outputs of the user-provided function", fn)


def _vs(v: Any, like: tuple[Tensor, ...], arg: str, fn: str) -> tuple[Tensor, ...]:
    """The vectors v, one per entry of ``like``, checked for shape; None allowed only when
    ``like`` is a single one-element tensor."""
    if v is None:
        if len(like) != 1 or like[0].size != 1:
            raise RuntimeError(f"{fn}: the vector v can only be None if the {arg} is a single "
                               f"Tensor with a single element, got shapes "
                               f"{[t.shape for t in like]}")
        return (Tensor._wrap(np.ones(like[0].shape, dtype=like[0].dtype)),)
    _, vs = _tuple(v, "v", fn)
    if len(vs) != len(like):
        raise RuntimeError(f"{fn}: v has {len(vs)} entries but the {arg} has {len(like)}")
    for i, (a, b) in enumerate(zip(vs, like)):
        if a.shape != b.shape:
            raise RuntimeError(f"{fn}: entry {i} of v has shape {a.shape} but the {arg} "
                               f"entry has shape {b.shape}")
    return vs


def _grads(outputs: tuple, inputs: tuple, grad_outputs: tuple, create_graph: bool,
           retain_graph: bool | None = None) -> tuple:
    """grad() that tolerates outputs that do not require grad (they contribute nothing) and
    inputs that were not used (None)."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    return grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                retain_graph=retain_graph, create_graph=create_graph, allow_unused=True)


def _fill(grads: tuple, like: tuple, strict: bool, fn: str, what: str) -> tuple:
    out = []
    for i, (g, t) in enumerate(zip(grads, like)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn}: the output of the user-provided function is "
                                   f"independent of input {i}; this is not allowed in strict "
                                   f"mode ({what})")
            g = Tensor._wrap(np.zeros(t.shape, dtype=t.dtype))
        out.append(g)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# The transforms
# --------------------------------------------------------------------------------------------

def vjp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v^T J): the vector-Jacobian product, one backward pass.

    ``v`` has the structure of func's output (None for a one-element output).
    """
    in_tuple, ins = _tuple(inputs, "inputs", "vjp")
    xs = _prepare(ins, create_graph)
    out_tuple, outs = _call(func, xs, in_tuple, "vjp")
    vs = _vs(v, outs, "outputs of the user-provided function", "vjp")
    g = _fill(_grads(outs, xs, vs, create_graph), xs, strict, "vjp", "vjp")
    return _untuple(out_tuple, _finish(outs, create_graph)), _untuple(in_tuple,
                                                                      _finish(g, create_graph))


def jvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), J v): the Jacobian-vector product by the double-vjp construction.

    ``v`` has the structure of the inputs (None for a single one-element input). The vjp
    u -> J^T u is recorded for a dummy cotangent u (zeros, requiring grad); as it is linear in
    u, its gradient with respect to u along v is J v. Costs two backward passes.
    """
    in_tuple, ins = _tuple(inputs, "inputs", "jvp")
    xs = _prepare(ins, create_graph)
    out_tuple, outs = _call(func, xs, in_tuple, "jvp")
    vs = _vs(v, ins, "inputs", "jvp")
    us = tuple(Tensor(np.zeros(o.shape, dtype=o.dtype), requires_grad=True) for o in outs)
    back = _fill(_grads(outs, xs, us, create_graph=True), xs, strict, "jvp", "jvp")
    # entries of J^T u that do not depend on u (an input the outputs ignore) add nothing
    used = [(b, v_) for b, v_ in zip(back, vs) if b.requires_grad]
    if used:
        jv = grad([b for b, _ in used], us, [v_ for _, v_ in used], create_graph=create_graph,
                  allow_unused=True)
    else:
        jv = (None,) * len(us)
    jv = _fill(jv, outs, strict, "jvp", "jvp: the output does not depend on the inputs")
    return _untuple(out_tuple, _finish(outs, create_graph)), _untuple(out_tuple,
                                                                      _finish(jv, create_graph))


def jacobian(func: Callable, inputs: Any, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode") -> Any:
    """The Jacobian of func at inputs: for output o and input x, a Tensor of shape
    o.shape + x.shape; nested as tuples by output then input when either is a tuple.

    ``strategy="reverse-mode"`` takes one backward pass per output element,
    ``"forward-mode"`` one jvp per input element (pick the smaller side). ``vectorize`` is
    accepted for compatibility and changes nothing: rows are computed one at a time.
    """
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"jacobian: expected strategy to be 'forward-mode' or 'reverse-mode', "
                         f"got {strategy!r}")
    in_tuple, ins = _tuple(inputs, "inputs", "jacobian")
    if strategy == "forward-mode":
        return _jacobian_forward(func, ins, in_tuple, create_graph, strict)
    xs = _prepare(ins, create_graph)
    out_tuple, outs = _call(func, xs, in_tuple, "jacobian")
    blocks = []  # blocks[o][i]
    for o, out in enumerate(outs):
        rows: list[list[Tensor]] = [[] for _ in xs]
        for j in range(out.size):
            onehot = np.zeros(out.size, dtype=out.dtype)
            onehot[j] = 1
            seed = Tensor._wrap(onehot.reshape(out.shape))
            g = _grads((out,), xs, (seed,), create_graph, retain_graph=True)
            for i, gi in enumerate(g):
                if gi is None and strict:
                    raise RuntimeError(f"jacobian: output {o} of the user-provided function "
                                       f"is independent of input {i}; this is not allowed in "
                                       f"strict mode")
                rows[i].append(gi if gi is not None else
                               Tensor._wrap(np.zeros(xs[i].shape, dtype=xs[i].dtype)))
        blocks.append(tuple(_stack_rows(rows[i], out.shape, xs[i], create_graph)
                            for i in range(len(xs))))
    return _nest(blocks, out_tuple, in_tuple)


def _stack_rows(rows: list, out_shape: tuple, x: Tensor, create_graph: bool) -> Tensor:
    if not rows:
        return Tensor._wrap(np.zeros(out_shape + x.shape, dtype=x.dtype))
    if create_graph:
        from . import functional as F
        return F.reshape(F.stack(rows, axis=0), out_shape + x.shape)
    return Tensor._wrap(np.stack([r._data for r in rows]).reshape(out_shape + x.shape))


def _nest(blocks: list, out_tuple: bool, in_tuple: bool) -> Any:
    if out_tuple and in_tuple:
        return tuple(blocks)
    if out_tuple:
        return tuple(b[0] for b in blocks)
    return blocks[0] if in_tuple else blocks[0][0]


def _jacobian_forward(func: Callable, ins: tuple, in_tuple: bool, create_graph: bool,
                      strict: bool) -> Any:
    cols: list[list[list[Tensor]]] = []  # cols[i][o] = list of J[o][:, element of input i]
    out_tuple = False
    outs_shape: list[tuple] = []
    for i, x in enumerate(ins):
        per_out: list[list[Tensor]] = []
        for j in range(x.size):
            vs = []
            for k, t in enumerate(ins):
                e = np.zeros(t.size, dtype=t.dtype)
                if k == i:
                    e[j] = 1
                vs.append(Tensor._wrap(e.reshape(t.shape)))
            out, jv = jvp(func, ins if in_tuple else ins[0], tuple(vs) if in_tuple else vs[0],
                          create_graph=create_graph, strict=strict)
            out_tuple = isinstance(out, tuple)
            jvs = jv if out_tuple else (jv,)
            outs_shape = [t.shape for t in (out if out_tuple else (out,))]
            if not per_out:
                per_out = [[] for _ in jvs]
            for o, c in enumerate(jvs):
                per_out[o].append(c)
        cols.append(per_out)
    if not outs_shape:  # every input is empty: one call tells the output shapes
        out = func(*ins) if in_tuple else func(ins[0])
        out_tuple = isinstance(out, tuple)
        outs_shape = [t.shape for t in (out if out_tuple else (out,))]
    from . import functional as F
    blocks = []
    for o, oshape in enumerate(outs_shape):
        row = []
        for i, x in enumerate(ins):
            c = cols[i][o] if cols[i] else []
            if not c:
                row.append(Tensor._wrap(np.zeros(oshape + x.shape, dtype=x.dtype)))
            elif create_graph:
                row.append(F.reshape(F.stack(c, axis=-1), oshape + x.shape))
            else:
                row.append(Tensor._wrap(np.stack([t._data for t in c], axis=-1)
                                        .reshape(oshape + x.shape)))
        blocks.append(tuple(row))
    return _nest(blocks, out_tuple, in_tuple)


def _scalar_output(func: Callable, xs: tuple, in_tuple: bool, fn: str) -> Tensor:
    out_tuple, outs = _call(func, xs, in_tuple, fn)
    if out_tuple or outs[0].size != 1:
        raise RuntimeError(f"{fn}: the function given to {fn} should return a single Tensor "
                           f"with a single element, got "
                           f"{'a tuple' if out_tuple else 'shape ' + str(outs[0].shape)}")
    return outs[0]


def hessian(func: Callable, inputs: Any, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The Hessian of a scalar function: for inputs x_i, x_j a Tensor of shape
    x_i.shape + x_j.shape; a tuple of tuples when inputs is a tuple.

    Computed as the Jacobian of the recorded gradient (one backward per input element).
    """
    in_tuple, ins = _tuple(inputs, "inputs", "hessian")

    def gradient(*xs: Tensor) -> Any:
        out = _scalar_output(func, xs, True, "hessian")
        g = _fill(_grads((out,), xs, (_ones_like(out),), create_graph=True), xs, strict,
                  "hessian", "hessian")
        return g

    res = jacobian(gradient, ins, create_graph=create_graph, strict=strict,
                   vectorize=vectorize, strategy=outer_jacobian_strategy)
    if in_tuple:
        return res
    return res[0][0]


def _ones_like(t: Tensor) -> Tensor:
    return Tensor._wrap(np.ones(t.shape, dtype=t.dtype))


def vhp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v^T H) for a scalar function: the gradient is recorded once and
    differentiated once more with v as its cotangent (two backward passes)."""
    return _second_order(func, inputs, v, create_graph, strict, "vhp")


def hvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), H v) for a scalar function, in two backward passes: the Hessian of a
    twice continuously differentiable function is symmetric, so H v = (v^T H)^T."""
    return _second_order(func, inputs, v, create_graph, strict, "hvp")


def _second_order(func: Callable, inputs: Any, v: Any, create_graph: bool, strict: bool,
                  fn: str) -> tuple[Any, Any]:
    in_tuple, ins = _tuple(inputs, "inputs", fn)
    xs = _prepare(ins, create_graph)
    out = _scalar_output(func, xs, in_tuple, fn)
    vs = _vs(v, ins, "inputs", fn)
    g = _fill(_grads((out,), xs, (_ones_like(out),), create_graph=True), xs, strict, fn,
              "the jacobian")
    used = [(gi, vi) for gi, vi in zip(g, vs) if gi.requires_grad]
    if used:
        h = grad([gi for gi, _ in used], xs, [vi for _, vi in used], create_graph=create_graph,
                 allow_unused=True)
    else:
        h = (None,) * len(xs)
    h = _fill(h, xs, strict, fn, "the hessian")
    return _finish((out,), create_graph)[0], _untuple(in_tuple, _finish(h, create_graph))
