"""The backward pass: count each node's consumers, then run nodes as their counts reach zero.

This file is plain Python on purpose: the build compiles it with Cython into
``autograd._cengine`` (same source, same behaviour), and it runs as it is where that extension
is absent. ``autograd.backend.engine()`` says which one runs. It reads the kernels and flags of
the calling thread from ``grad_mode.state`` and never imports the backend (no import cycle).
"""
from __future__ import annotations

import numpy as np

from . import hooks as _hooks
from .errors import AnomalyError, FreedGraphError
from .grad_mode import state

__all__ = ["run_backward", "topological_order", "count_consumers"]


def count_consumers(root) -> dict:
    """For every node reachable from ``root`` (a Node), how many graph edges consume it.

    An iterative traversal, so a chain of any length works (no recursion limit). Keyed by
    ``id(node)``: the graph keeps every node alive while the counts are in use.
    """
    counts = {id(root): 0}
    stack = [root]
    while stack:
        node = stack.pop()
        for t in node.inputs:
            child = t._node
            if child is not None:
                key = id(child)
                if key in counts:
                    counts[key] += 1
                else:
                    counts[key] = 1
                    stack.append(child)
    return counts


def topological_order(root) -> list:
    """Nodes reachable from ``root``, each after every node that consumes it."""
    counts = count_consumers(root)
    order = []
    ready = [root]
    while ready:
        node = ready.pop()
        order.append(node)
        for t in node.inputs:
            child = t._node
            if child is not None:
                key = id(child)
                counts[key] -= 1
                if counts[key] == 0:
                    ready.append(child)
    return order


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d output / d root) from the Tensor ``root`` to every leaf, then run
    the callbacks queued during the pass (:func:`autograd.hooks.queue_callback`)."""
    callbacks = _hooks.enter_backward()
    try:
        _propagate(root, grad, retain_graph)
    except BaseException:
        _hooks.exit_backward(callbacks, False)
        raise
    _hooks.exit_backward(callbacks, True)


def _propagate(root, grad: np.ndarray, retain_graph: bool) -> None:
    """Propagate ``grad`` (d output / d root) from the Tensor ``root`` to every leaf.

    A node runs once all of its consumers have (their count of pending consumers reaches
    zero, as in PyTorch's engine), so its gradient is complete; gradients meeting at a node are
    summed; leaves accumulate into ``.grad``; each pending gradient is dropped as soon as its
    node is done; saved arrays are freed unless ``retain_graph``. Tensor hooks run where a
    gradient is complete: a non-leaf's before its node runs, a hooked leaf's once all its
    edges have delivered (then its post-accumulate hooks).
    """
    top = root._node
    leaf_hooks, node_hooks = _hooks.LEAF, _hooks.NODE
    if top is None:
        entry = leaf_hooks.get(id(root))
        g = state.k.cast(grad, grad.dtype)  # a copy, through the provider (autograd.compile)
        if entry is not None:
            g = _hooks.run_pre(entry, g)
        root._accumulate_grad(g)
        if entry is not None:
            _hooks.run_post(entry, root)
        return
    hooked = bool(leaf_hooks) or bool(node_hooks)
    if hooked:
        leaf_left = _hooks.leaf_edges(top)  # edges still to deliver, per hooked leaf
        leaf_sum = {}  # what they delivered so far
    sum_to = state.k.sum_to
    anomaly = state.anomaly
    counts = count_consumers(top)
    pending = {id(top): grad}
    # A leaf may keep the array it is first given as its .grad, so it must own it alone: arrays
    # already handed to a leaf (an op may return one array for two inputs), the caller's own
    # gradient, views and read-only broadcasts are copied first.
    handed = {id(grad)}
    ready = [top]
    while ready:
        node = ready.pop()
        g = pending.pop(id(node), None)
        grads = None
        if g is not None:  # else every path to this node carried no gradient
            if node.freed:
                raise FreedGraphError(
                    f"{node.op.name}: backward through the graph a second time, but its "
                    f"saved arrays were freed by the first backward; pass retain_graph=True "
                    f"to the first backward() if you need to call it again")
            node.check_versions()
            if hooked and id(node) in node_hooks:
                g = _hooks.run_pre(node_hooks[id(node)], g)
            grads = node.op.backward(node, g)
            if anomaly:
                _check_finite(node, grads)
        for i, t in enumerate(node.inputs):
            child = t._node
            gi = None if grads is None or not node.needs[i] else grads[i]
            if gi is not None and gi.shape != t._data.shape:
                gi = sum_to(gi, t._data.shape)
            if child is None:
                entry = None
                if hooked and node.needs[i] and id(t) in leaf_left:
                    gi, entry = _gather_leaf(t, gi, leaf_left, leaf_sum)
                if gi is not None:
                    # Only a leaf's first gradient is kept as its .grad (later ones are
                    # added out of place), so only then must the array be the leaf's alone.
                    if t.grad is None and (id(gi) in handed or gi.base is not None
                                           or not gi.flags.writeable):
                        gi = state.k.cast(gi, gi.dtype)  # a copy the trace sees
                    handed.add(id(gi))
                    t._accumulate_grad(gi)
                    if entry is not None:
                        _hooks.run_post(entry, t)
                continue
            key = id(child)
            if gi is not None:
                prev = pending.get(key)
                pending[key] = gi if prev is None else state.k.add(prev, gi)
            left = counts[key] - 1
            counts[key] = left
            if left == 0:
                ready.append(child)
        if not retain_graph:
            node.release()


def _gather_leaf(t, gi, leaf_left: dict, leaf_sum: dict):
    """Sum the gradient edges of a hooked leaf; on its last edge, run its tensor hooks and
    return (its total gradient, its hooks) for accumulation; before that (None, None)."""
    key = id(t)
    if gi is not None:
        prev = leaf_sum.get(key)
        leaf_sum[key] = gi if prev is None else state.k.add(prev, gi)
    left = leaf_left[key] - 1
    leaf_left[key] = left
    if left:
        return None, None
    total = leaf_sum.pop(key, None)
    entry = _hooks.LEAF.get(key)
    if total is None or entry is None:
        return total, None
    return _hooks.run_pre(entry, total), entry


def _check_finite(node, grads) -> None:
    for i, gi in enumerate(grads):
        if gi is not None and not np.all(np.isfinite(gi)):
            raise AnomalyError(
                f"{node.op.name}: backward produced NaN or inf in the gradient of input {i} "
                f"(shape {node.inputs[i].shape}); the op was created here:\n{node.origin()}")
