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

# As in _core.py: the compiled twin reads an edge's shapes from the arrays' C structs and the
# thread's kernels and flags from its grad_mode.state dict (csrc/hot.h, declared in engine.pxd),
# each under ``if _COMPILED:`` beside the Python it stands for; the pure twin runs the Python.
try:
    import cython
    _COMPILED = cython.compiled
except ImportError:  # the pure twin runs without Cython
    _COMPILED = False

if _COMPILED:
    ag_hot_init(np.ndarray, state)  # noqa: F821 - declared in engine.pxd (csrc/hot.h)

__all__ = ["run_backward", "topological_order", "count_consumers"]

# The hook registries (WeakValueDictionaries, never rebound: see hooks.py) and the dicts under
# them, which are non-empty whenever they are: testing those costs no Python-level __len__ and
# no attribute lookups per backward.
_LEAF = _hooks.LEAF
_NODE = _hooks.NODE
_LEAF_DATA = _LEAF.data
_NODE_DATA = _NODE.data


def count_consumers(root) -> dict:
    """For every node reachable from ``root`` (a Node), how many graph edges consume it.

    An iterative traversal, so a chain of any length works (no recursion limit). Keyed by
    ``id(node)``: the graph keeps every node alive while the counts are in use.
    """
    return {id(node): slot[0] for node, slot in _slots(root).items()}


def _slots(root) -> dict:
    """For every node reachable from ``root``: its slot ``[consumers left, gradient so far,
    node]``, the backward walk's whole state for that node. One list per node, found with one
    dict lookup per edge (counts and pending gradients in two dicts took four or five); the
    ready stack holds the slots themselves, so a node about to run is not looked up again."""
    top = [0, None, root]
    slots = {root: top}
    stack = [root]
    while stack:
        node = stack.pop()
        for t in node.inputs:
            child = t._node
            if child is not None:
                slot = slots.get(child)
                if slot is None:
                    slots[child] = [1, None, child]
                    stack.append(child)
                else:
                    slot[0] = slot[0] + 1
    return slots


def topological_order(root) -> list:
    """Nodes reachable from ``root``, each after every node that consumes it."""
    slots = _slots(root)
    order = []
    ready = [root]
    while ready:
        node = ready.pop()
        order.append(node)
        for t in node.inputs:
            child = t._node
            if child is not None:
                slot = slots[child]
                left = slot[0] - 1
                slot[0] = left
                if left == 0:
                    ready.append(child)
    return order


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d output / d root) from the Tensor ``root`` to every leaf, then run
    the callbacks queued during the pass (:func:`autograd.hooks.queue_callback`)."""
    # hooks.enter_backward/exit_backward inlined (0.3 us a call less): this pass's callback
    # list is the thread's state.callbacks until the pass ends, then the enclosing pass's.
    # The compiled twin reads and writes the thread's state dict itself (what the attribute
    # read and writes do, without threading.local's lookup of that dict each time).
    callbacks = []
    if _COMPILED:
        outer = ag_state_get("callbacks")  # noqa: F821
        ag_state_set("callbacks", callbacks)  # noqa: F821
        try:
            _propagate(root, grad, retain_graph)
            if callbacks:
                _hooks.run_callbacks(callbacks)
        finally:
            ag_state_set("callbacks", outer)  # noqa: F821
        return
    outer = state.callbacks
    state.callbacks = callbacks
    try:
        _propagate(root, grad, retain_graph)
        if callbacks:
            _hooks.run_callbacks(callbacks)
    finally:
        state.callbacks = outer


def _propagate(root, grad: np.ndarray, retain_graph: bool) -> None:
    """Propagate ``grad`` (d output / d root) from the Tensor ``root`` to every leaf.

    A node runs once all of its consumers have (their count of pending consumers reaches
    zero, as in PyTorch's engine), so its gradient is complete; gradients meeting at a node are
    summed; leaves accumulate into ``.grad``; each pending gradient is dropped as soon as its
    node is done; saved arrays are freed unless ``retain_graph``. Tensor hooks run where a
    gradient is complete: a non-leaf's before its node runs, a hooked leaf's once all its
    edges have delivered (then its post-accumulate hooks).

    Counting consumers needs a walk of the whole graph first, and most of it is not needed
    while the graph is a chain: as long as every node run so far had at most one input made by
    a node (a Sequential net's graph is such a chain, plus its leaves), every node reachable is
    reached through that input, so its node's only consumer is the node just run and its
    gradient is complete: the walk just follows it, with no counts. The first node with a
    second such input starts the counted walk from itself (the counts of everything below it
    are those a walk from the top would find), so nodes run, and leaves accumulate, in the
    same order either way.
    """
    top = root._node
    leaf_hooks, node_hooks = _LEAF, _NODE
    if top is None:
        entry = leaf_hooks.get(id(root))
        g = state.k.cast(grad, grad.dtype)  # a copy, through the provider (autograd.compile)
        if entry is not None:
            g = _hooks.run_pre(entry, g)
        root._accumulate_grad(g)
        if entry is not None:
            _hooks.run_post(entry, root)
        return
    hooked = bool(_LEAF_DATA) or bool(_NODE_DATA)
    if hooked:
        leaf_left = _hooks.leaf_edges(top)  # edges still to deliver, per hooked leaf
        leaf_sum = {}  # what they delivered so far
    anomaly = ag_state_flag("anomaly") if _COMPILED else state.anomaly  # noqa: F821
    # A leaf may keep the array it is first given as its .grad, so it must own it alone: arrays
    # already kept by a leaf (an op may return one array for two inputs), the caller's own
    # gradient, views and read-only broadcasts are copied first.
    handed = {id(grad)}
    # The counted walk's state, None while the graph is a chain: each node's slot
    # [consumers left, gradient so far, node] (see _slots) and the slots ready to run.
    slots = None
    ready = None
    node = top
    g = grad
    while True:
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
            backward = node.op.backward
            if _COMPILED and type(backward) is _DeclaredBackward:  # noqa: F821
                declared = backward  # a declared row: its C method, no Python call
                grads = declared.run(node, g)
            else:
                grads = backward(node, g)
            if anomaly:
                _check_finite(node, grads)
        g = None
        nxt = None  # in a chain: the one input's node, run next with gradient g
        inputs = node.inputs
        needs = node.needs
        for i in range(len(inputs)):
            t = inputs[i]
            child = t._node
            gi = None if grads is None or not needs[i] else grads[i]
            if gi is not None:
                if _COMPILED:  # the same test from the arrays' C structs (no shape tuples)
                    a = t._data
                    if not (ag_is_array(gi) and ag_is_array(a)  # noqa: F821
                            and ag_same_shape(gi, a)):  # noqa: F821
                        shape = a.shape
                        if gi.shape != shape:
                            gi = ag_state_get("k").sum_to(gi, shape)  # noqa: F821
                else:
                    shape = t._data.shape
                    if gi.shape != shape:  # a broadcast input: looked up only then
                        gi = state.k.sum_to(gi, shape)
            if child is None:
                entry = None
                if hooked and needs[i] and id(t) in leaf_left:
                    gi, entry = _gather_leaf(t, gi, leaf_left, leaf_sum)
                if gi is not None:
                    # Only a leaf's first gradient is kept as its .grad (later ones are
                    # added out of place), so only then must the array be the leaf's alone.
                    if t.grad is None:
                        key = id(gi)
                        if _COMPILED and ag_is_array(gi):  # noqa: F821
                            # base and flags read from the array's struct (gi.flags builds
                            # a new object per call)
                            owned = ag_owns_writeable(gi)  # noqa: F821
                        else:
                            owned = gi.base is None and gi.flags.writeable
                        if key in handed or not owned:
                            k = ag_state_get("k") if _COMPILED else state.k  # noqa: F821
                            gi = k.cast(gi, gi.dtype)  # a copy the trace sees
                            key = id(gi)
                        handed.add(key)
                    t._accumulate_grad(gi)
                    if entry is not None:
                        _hooks.run_post(entry, t)
                continue
            if slots is None:
                if nxt is None:  # still a chain: this node is child's only consumer
                    nxt = child
                    g = gi
                    continue
                # A second input made by a node: count consumers from this node on, and
                # deliver the first one's gradient as the counted walk would have.
                slots = _slots(node)
                ready = []
                slot = slots[nxt]
                slot[1] = g
                left = slot[0] - 1
                slot[0] = left
                if left == 0:
                    ready.append(slot)
            slot = slots[child]
            if gi is not None:
                prev = slot[1]
                if prev is None:
                    slot[1] = gi
                elif _COMPILED:
                    slot[1] = ag_kernel(ag_state_get("k"), "add")(prev, gi)  # noqa: F821
                else:
                    slot[1] = state.k.add(prev, gi)
            left = slot[0] - 1
            slot[0] = left
            if left == 0:
                ready.append(slot)
        if not retain_graph:
            node.release()
        if slots is None:
            if nxt is None:
                return
            node = nxt  # g is its gradient
        else:
            if not ready:
                return
            slot = ready.pop()
            node = slot[2]
            g = slot[1]
            slot[1] = None  # dropped as soon as its node has run


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
