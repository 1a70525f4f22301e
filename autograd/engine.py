"""The backward pass: an iterative topological sort and one loop over the graph.

This file is plain Python on purpose: the build compiles it with Cython into
``autograd._cengine`` (same source, same behaviour), and it runs as it is where that extension
is absent. ``autograd.backend.engine()`` says which one runs.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .errors import AnomalyError, FreedGraphError
from .grad_mode import state

__all__ = ["run_backward", "topological_order"]


def topological_order(root) -> list:
    """Nodes reachable from ``root`` (a Node), each after every node that consumes it.

    Iterative depth-first search, so a chain of any length works (no recursion limit).
    """
    order = []
    visited = {id(root)}
    stack = [(root, 0)]
    while stack:
        node, i = stack[-1]
        inputs = node.inputs
        # advance to the next unvisited input that has a node of its own
        while i < len(inputs):
            child = inputs[i]._node
            i += 1
            if child is not None and id(child) not in visited:
                visited.add(id(child))
                stack[-1] = (node, i)
                stack.append((child, 0))
                break
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d output / d root) from the Tensor ``root`` to every leaf.

    Gradients meeting at a node are summed; leaves accumulate into ``.grad``; each pending
    gradient is dropped as soon as its node is done; saved arrays are freed unless
    ``retain_graph``.
    """
    top = root._node
    if top is None:
        root._accumulate_grad(grad.copy())
        return
    sum_to = backend.k.sum_to
    anomaly = state.anomaly
    pending = {id(top): grad}
    # A leaf may keep the array it is first given as its .grad, so it must own it alone: arrays
    # already handed to a leaf (an op may return one array for two inputs), the caller's own
    # gradient, views and read-only broadcasts are copied first.
    handed = {id(grad)}
    for node in topological_order(top):
        g = pending.pop(id(node), None)
        if g is None:
            continue  # every path to this node carried no gradient
        if node.freed:
            raise FreedGraphError(
                f"{node.op.name}: backward through the graph a second time, but its saved "
                f"arrays were freed by the first backward; pass retain_graph=True to the "
                f"first backward() if you need to call it again")
        node.check_versions()
        grads = node.op.backward(node, g)
        if anomaly:
            _check_finite(node, grads)
        for t, gi, need in zip(node.inputs, grads, node.needs):
            if gi is None or not need:
                continue
            if gi.shape != t._data.shape:
                gi = sum_to(gi, t._data.shape)
            child = t._node
            if child is None:
                if id(gi) in handed or gi.base is not None or not gi.flags.writeable:
                    gi = gi.copy()
                handed.add(id(gi))
                t._accumulate_grad(gi)
            else:
                key = id(child)
                prev = pending.get(key)
                pending[key] = gi if prev is None else prev + gi
        if not retain_graph:
            node.release()


def _check_finite(node, grads) -> None:
    for i, gi in enumerate(grads):
        if gi is not None and not np.all(np.isfinite(gi)):
            raise AnomalyError(
                f"{node.op.name}: backward produced NaN or inf in the gradient of input {i} "
                f"(shape {node.inputs[i].shape}); the op was created here:\n{node.origin()}")
