"""Which non-leaf tensors keep their gradient (``Tensor.retain_grad()``), for the engine.

A Node never references its output tensor (graphs hold no cycles), so the engine finds the
tensors to fill here: by the id of the node that made each one, through a weak reference. An
entry lives as long as its tensor (which keeps its node, hence the id, alive).
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

__all__ = ["RETAINED", "retain", "store"]

#: id(node) -> weak reference to the tensor that node made; empty unless retain_grad was used.
RETAINED: dict[int, weakref.ref] = {}


def retain(tensor: Any) -> None:
    """Make backward store d loss / d ``tensor`` in ``tensor.grad`` (a non-leaf tensor)."""
    key = id(tensor._node)
    if key in RETAINED and RETAINED[key]() is tensor:
        return

    def forget(ref: weakref.ref, key: int = key) -> None:
        if RETAINED.get(key) is ref:
            del RETAINED[key]

    RETAINED[key] = weakref.ref(tensor, forget)


def store(node: Any, grad: np.ndarray) -> None:
    """Called by the engine with a node's complete output gradient: accumulate it into the
    output tensor's ``.grad`` if that tensor asked to retain it."""
    ref = RETAINED.get(id(node))
    t = None if ref is None else ref()
    if t is not None and t._node is node:
        t._accumulate_grad(np.array(grad, copy=True))
