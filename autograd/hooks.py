"""Gradient hooks on tensors, and callbacks that run when a backward pass ends (PyTorch's meaning).

- ``Tensor.register_hook(fn)``: ``fn(grad)`` is called when the gradient with respect to the
  tensor has been computed, before it flows on (a non-leaf) or is accumulated into ``.grad``
  (a leaf); a returned tensor replaces the gradient.
- ``Tensor.register_post_accumulate_grad_hook(fn)`` (leaves only): ``fn(tensor)`` is called once
  per backward, after ``tensor.grad`` holds the accumulated gradient. Data-parallel training
  launches a gradient's allreduce from here.
- :func:`queue_callback` (from a hook, during backward): run ``fn()`` once the current backward
  pass has finished, before ``backward()`` returns; DDP waits for its allreduces there.

Hooks live on the tensor (so a hook that refers back to its tensor is an ordinary cycle the
garbage collector frees) and are indexed, weakly, in two tables the engine looks at only when
one of them is non-empty, so a graph without hooks runs as before: a leaf's by the tensor, a
non-leaf's by the node that made it (where the engine meets its gradient).
"""
from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable

import numpy as np

from .grad_mode import state

__all__ = ["RemovableHandle", "queue_callback"]

#: id(leaf tensor) -> its _Hooks; id(node) -> the _Hooks of the non-leaf tensor it made. Weak:
#: an entry leaves its table when its tensor is collected. Never rebound (the engine holds them).
LEAF: "weakref.WeakValueDictionary[int, _Hooks]" = weakref.WeakValueDictionary()
NODE: "weakref.WeakValueDictionary[int, _Hooks]" = weakref.WeakValueDictionary()

_ids = itertools.count()


class _Hooks:
    """The hooks of one tensor, in registration order (dicts keep insertion order)."""

    __slots__ = ("pre", "post", "table", "key", "node", "name", "__weakref__")

    def __init__(self, table: Any, key: int, node: Any, name: str) -> None:
        self.pre: dict[int, Callable] = {}
        self.post: dict[int, Callable] = {}
        # A non-leaf's entry keeps its node alive, so the node's id stays its key.
        self.table, self.key, self.node, self.name = table, key, node, name

    def drop_if_empty(self) -> None:
        if not self.pre and not self.post and self.table.get(self.key) is self:
            del self.table[self.key]


class RemovableHandle:
    """What registering a hook returns: ``remove()`` unregisters it (also on leaving a
    ``with`` block)."""

    __slots__ = ("_entry", "_kind", "_id")

    def __init__(self, entry: _Hooks, kind: str, hook_id: int) -> None:
        self._entry, self._kind, self._id = entry, kind, hook_id

    def remove(self) -> None:
        """Unregister the hook (removing twice is harmless)."""
        getattr(self._entry, self._kind).pop(self._id, None)
        self._entry.drop_if_empty()

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _entry(tensor: Any) -> _Hooks:
    entry = getattr(tensor, "_hooks", None)  # a slot left unset until the first hook
    node = tensor._node
    table, key = (LEAF, id(tensor)) if node is None else (NODE, id(node))
    if entry is None or entry.key != key:  # none yet, or one copied from another tensor
        what = "leaf" if node is None else f"output of {node.op.name}"
        fresh = _Hooks(table, key, node, f"tensor of shape {tensor.shape} ({what})")
        if entry is not None:
            fresh.pre, fresh.post = dict(entry.pre), dict(entry.post)
        entry = tensor._hooks = fresh
    table[key] = entry
    return entry


def register_hook(tensor: Any, fn: Callable) -> RemovableHandle:
    """See :meth:`autograd.Tensor.register_hook`."""
    if not callable(fn):
        raise TypeError(f"register_hook: expected a callable, got {type(fn).__name__}")
    if not tensor.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that does not "
                           "require grad")
    return _add(tensor, "pre", fn)


def register_post_accumulate_grad_hook(tensor: Any, fn: Callable) -> RemovableHandle:
    """See :meth:`autograd.Tensor.register_post_accumulate_grad_hook`."""
    if not callable(fn):
        raise TypeError(f"register_post_accumulate_grad_hook: expected a callable, got "
                        f"{type(fn).__name__}")
    if tensor._node is not None:
        raise RuntimeError(f"register_post_accumulate_grad_hook: only leaf tensors accumulate "
                           f".grad; this one was made by {tensor._node.op.name} (use "
                           f"register_hook for non-leaf tensors)")
    if not tensor.requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a "
                           "tensor that does not require grad")
    return _add(tensor, "post", fn)


def _add(tensor: Any, kind: str, fn: Callable) -> RemovableHandle:
    """Store ``fn`` in the tensor's ``kind`` ("pre" or "post") hooks, in registration order."""
    entry = _entry(tensor)
    hook_id = next(_ids)
    getattr(entry, kind)[hook_id] = fn
    return RemovableHandle(entry, kind, hook_id)


# ------------------------------------------------------------------ called by the engine
def run_pre(entry: _Hooks, g: Any) -> Any:
    """Pass the gradient ``g`` through the tensor hooks of ``entry``, in order. ``g`` is an
    array, or a Tensor when backward records a graph of its own; the result has its kind."""
    from .tensor import Tensor
    as_tensor = isinstance(g, Tensor)
    for fn in list(entry.pre.values()):
        out = fn(g if as_tensor else Tensor._wrap(g))
        if out is None:
            continue
        if as_tensor:
            new = out if isinstance(out, Tensor) else Tensor._wrap(np.asarray(out))
        else:
            new = out._data if isinstance(out, Tensor) else np.asarray(out)
        if new.shape != g.shape or new.dtype != g.dtype:
            raise RuntimeError(f"hook {getattr(fn, '__name__', fn)!r} on a {entry.name} "
                               f"returned a gradient of shape {new.shape} and dtype "
                               f"{new.dtype}; it must keep the gradient's {g.shape} and "
                               f"{g.dtype}")
        g = new
    return g


def run_post(entry: _Hooks, tensor: Any) -> None:
    """Call the post-accumulate-grad hooks of ``entry`` with the leaf ``tensor``."""
    for fn in list(entry.post.values()):
        if fn(tensor) is not None:
            raise RuntimeError(f"post-accumulate-grad hook {getattr(fn, '__name__', fn)!r} "
                               f"returned a value; it must return None (change "
                               f"tensor.grad in place instead)")


def leaf_edges(top: Any) -> dict[int, int]:
    """For every hooked leaf the graph under ``top`` reaches: how many edges carry its
    gradient, so the engine can sum them and call the hooks once, with the total."""
    edges: dict[int, int] = {}
    seen = {id(top)}
    stack = [top]
    while stack:
        node = stack.pop()
        for t, need in zip(node.inputs, node.needs):
            child = t._node
            if child is None:
                if need and id(t) in LEAF:
                    edges[id(t)] = edges.get(id(t), 0) + 1
            elif id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return edges


# ------------------------------------------------------------------ final callbacks
# The callback list of the backward pass running in this thread lives in grad_mode.state
# (``state.callbacks``; None outside backward), the thread-local object the engine already
# reads: opening and closing a pass is then two attribute writes, not a lookup of a stack of
# frames in a thread-local of its own. The engine inlines the same three steps.


def queue_callback(fn: Callable[[], Any]) -> None:
    """Run ``fn()`` when the backward pass now running has finished, before ``backward()``
    returns (callbacks run in the order queued). Only valid during backward, e.g. from a hook.
    """
    callbacks = state.callbacks
    if callbacks is None:
        raise RuntimeError("queue_callback: final callbacks can only be queued while a "
                           "backward pass runs (e.g. from a gradient hook)")
    callbacks.append(fn)


def enter_backward() -> tuple:
    """Open the callback list of a backward pass; returns the token ``exit_backward`` takes
    (this pass's list and the enclosing pass's, restored on exit)."""
    callbacks: list = []
    token = (callbacks, state.callbacks)
    state.callbacks = callbacks
    return token


def exit_backward(token: tuple, ok: bool) -> None:
    """Close a backward pass: run its queued callbacks if it succeeded (one may queue more),
    drop them if it raised."""
    callbacks, outer = token
    try:
        if ok:
            run_callbacks(callbacks)
    finally:
        state.callbacks = outer


def run_callbacks(callbacks: list) -> None:
    """Run the queued ``callbacks`` in order (one may queue more)."""
    i = 0
    while i < len(callbacks):
        callbacks[i]()
        i += 1
