"""``grad()``: gradients of outputs with respect to chosen tensors, optionally as a graph.

``grad(outputs, inputs, create_graph=True)`` returns gradients that are themselves recorded, so
they can be differentiated again, to any order. Each op's gradient is still the one formula in
the op table: for a ``create_graph`` pass, the node's op runs its ``forward`` and ``backward``
with :mod:`autograd.backend.tensor_kernels` installed as ``backend.k``, so the formula's kernels
run as differentiable ops on Tensors instead of on arrays.

What the formula sees as saved: each saved array that is an input's own array becomes that
input Tensor; the op's own output array becomes the output Tensor, whose node is this node (as
PyTorch's saved outputs), so exp, sigmoid, softmax or the fused linear differentiate through
themselves; non-float arrays (indices, conditions) stay constants. When anything else was saved
(an intermediate, e.g. cross_entropy's log-probabilities or var's centred input), the op's
forward runs again on the input Tensors, so every saved value is a differentiable function of
the inputs. Without
``create_graph`` the formulas run on arrays with the fast kernels, exactly as ``backward()``.

Only the part of the graph that leads from the outputs to the requested inputs runs, so a
gradient with respect to a few tensors of a large graph costs what that path costs.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from . import backend
from . import hooks as _hooks
from .backend import tensor_kernels
from .errors import AnomalyError, FreedGraphError, InplaceModificationError
from .grad_mode import enable_grad, state
from .tensor import Tensor

__all__ = ["grad"]

TensorOrTensors = "Tensor | Sequence[Tensor]"


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False,
         materialize_grads: bool = False) -> tuple[Tensor | None, ...]:
    """The sum over ``outputs`` of d output / d input, weighted by ``grad_outputs``, for each
    of ``inputs`` (PyTorch's ``torch.autograd.grad``); ``.grad`` fields are left untouched.

    ``grad_outputs`` holds one cotangent per output (None allowed for one-element outputs,
    meaning 1). ``create_graph=True`` records the computation, so the results can be
    differentiated again; ``retain_graph`` (default: ``create_graph``) keeps the graph's saved
    arrays for another backward. An input that does not require grad is an error; one that
    the outputs do not depend on is an error unless ``allow_unused=True``, which gives None
    for it (or zeros with ``materialize_grads=True``). Returns a tuple, one entry per input.
    """
    outs = _as_tuple(outputs, "outputs")
    ins = _as_tuple(inputs, "inputs")
    if materialize_grads:
        allow_unused = True
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise RuntimeError(f"grad: one of the differentiated Tensors does not require grad "
                               f"(input {i}, shape {t.shape})")
    seeds = _seeds(outs, grad_outputs, create_graph)
    retain = create_graph if retain_graph is None else bool(retain_graph)
    callbacks = _hooks.enter_backward()
    try:
        results = run(outs, seeds, ins, create_graph, retain)
    except BaseException:
        _hooks.exit_backward(callbacks, False)
        raise
    _hooks.exit_backward(callbacks, True)
    final: list[Tensor | None] = []
    for i, (t, g) in enumerate(zip(ins, results)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: one of the differentiated Tensors (input {i}, shape {t.shape}) "
                    f"appears to not have been used in the graph. Set allow_unused=True if "
                    f"this is the desired behavior.")
            if materialize_grads:
                g = Tensor._wrap(np.zeros_like(t._data))
        final.append(g)
    return tuple(final)


def _as_tuple(x: Any, what: str) -> tuple[Tensor, ...]:
    seq = (x,) if isinstance(x, Tensor) else tuple(x)
    for i, t in enumerate(seq):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: {what} must be Tensors, got {type(t).__name__} at "
                            f"position {i}")
    return seq


def _seeds(outs: tuple[Tensor, ...], grad_outputs: Any, create_graph: bool) -> list:
    """One cotangent per output: Tensors for a recorded pass, arrays otherwise."""
    if grad_outputs is None:
        gos: tuple = (None,) * len(outs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray, numbers.Number)):
        gos = (grad_outputs,)
    else:
        gos = tuple(grad_outputs)
    if len(gos) != len(outs):
        raise RuntimeError(f"grad: got {len(outs)} outputs but {len(gos)} grad_outputs; give "
                           f"one per output")
    seeds = []
    for i, (out, go) in enumerate(zip(outs, gos)):
        if not out.requires_grad:
            raise RuntimeError(f"grad: element {i} of tensors does not require grad and does "
                               f"not have a grad_fn")
        if go is None:
            if out.size != 1:
                raise RuntimeError(f"grad: grad can be implicitly created only for scalar "
                                   f"outputs; output {i} has shape {out.shape}, so pass "
                                   f"grad_outputs")
            go = np.ones(out.shape, dtype=out.dtype)
        elif not isinstance(go, Tensor):
            go = np.asarray(go, dtype=out.dtype)
        if go.shape != out.shape:
            raise RuntimeError(f"grad: mismatch in shape: grad_output[{i}] has a shape of "
                               f"{go.shape} and output[{i}] has a shape of {out.shape}")
        if go.dtype != out.dtype:
            raise RuntimeError(f"grad: mismatch in dtype: grad_output[{i}] has dtype "
                               f"{go.dtype} and output[{i}] has dtype {out.dtype}")
        if create_graph:
            seeds.append(go if isinstance(go, Tensor) else Tensor._wrap(go))
        else:
            seeds.append(go._data if isinstance(go, Tensor) else go)
    return seeds


def backward(root: Tensor, seed: Any, retain_graph: bool | None, create_graph: bool,
             inputs: Sequence[Tensor] | None) -> None:
    """``Tensor.backward`` with ``create_graph`` or ``inputs``: accumulate into ``.grad`` of
    ``inputs`` (default: every leaf that requires grad), recorded when ``create_graph``."""
    if inputs is None:
        targets = _leaves(root)
    else:
        targets = _as_tuple(inputs, "inputs")
        for i, t in enumerate(targets):
            if not t.requires_grad:
                raise RuntimeError(f"backward: inputs[{i}] (shape {t.shape}) does not "
                                   f"require grad")
    seeds = _seeds((root,), seed, create_graph)
    retain = create_graph if retain_graph is None else bool(retain_graph)
    callbacks = _hooks.enter_backward()
    try:
        for t, g in zip(targets, run((root,), seeds, targets, create_graph, retain)):
            if g is None:
                continue
            if t.grad is None:
                t.grad = g
            elif create_graph or t.grad._node is not None:
                t.grad = t.grad + g  # out of place: a recorded .grad keeps its graph
            else:
                t.grad._data = np.asarray(t.grad._data + g._data)
            entry = _hooks.LEAF.get(id(t))
            if entry is not None:
                _hooks.run_post(entry, t)
    except BaseException:
        _hooks.exit_backward(callbacks, False)
        raise
    _hooks.exit_backward(callbacks, True)


def _leaves(root: Tensor) -> tuple[Tensor, ...]:
    """Every leaf requiring grad that the graph of ``root`` reaches, in first-seen order."""
    if root._node is None:
        return (root,)
    seen_nodes = {id(root._node)}
    seen_leaves: dict[int, Tensor] = {}
    stack = [root._node]
    while stack:
        node = stack.pop()
        for t, need in zip(node.inputs, node.needs):
            child = t._node
            if child is None:
                if need:
                    seen_leaves.setdefault(id(t), t)
            elif id(child) not in seen_nodes:
                seen_nodes.add(id(child))
                stack.append(child)
    return tuple(seen_leaves.values())


class _Ctx:
    """What an op's backward sees in place of its node: the node's fields, with ``needs``
    narrowed to the inputs this pass wants and, for a recorded pass, ``saved`` as Tensors."""

    __slots__ = ("node", "needs", "saved")

    def __init__(self, node: Any, needs: tuple[bool, ...], saved: Any):
        self.node = node
        self.needs = needs
        self.saved = saved

    @property
    def inputs(self) -> tuple:
        return self.node.inputs

    def __getattr__(self, name: str) -> Any:  # params, op, and whatever later ops add
        return getattr(self.node, name)


def run(outputs: Sequence[Tensor], seeds: Sequence[Any], targets: Sequence[Tensor],
        create_graph: bool, retain_graph: bool) -> list:
    """The gradient of sum(<seed, output>) with respect to each target (None where no
    gradient arrives): Tensors, recorded when ``create_graph``."""
    leaf_targets: dict[int, list[int]] = {}
    node_targets: dict[int, list[int]] = {}
    for k, t in enumerate(targets):
        table = leaf_targets if t._node is None else node_targets
        table.setdefault(id(t if t._node is None else t._node), []).append(k)
    results: list[Any] = [None] * len(targets)

    def deliver(key: int, table: dict, g: Any) -> None:
        for k in table.get(key, ()):
            results[k] = g if results[k] is None else _add(results[k], g, create_graph)

    # Seeds: a leaf output is its own gradient; outputs sharing a node sum their seeds.
    pending: dict[int, Any] = {}
    roots = []
    output_of: dict[int, Tensor] = {}  # id(node) -> the Tensor it made (for saved outputs)
    for out, seed in zip(outputs, seeds):
        if out._node is None:
            deliver(id(out), leaf_targets, seed)
            continue
        key = id(out._node)
        output_of[key] = out
        if key in pending:
            pending[key] = _add(pending[key], seed, create_graph)
        else:
            pending[key] = seed
            roots.append(out._node)

    order = _postorder(roots, output_of)
    useful = {}  # id(node) -> the inputs this pass differentiates (None: node is not needed)
    for node in order:
        needs = tuple(
            bool(need) and (id(t) in leaf_targets if t._node is None
                            else useful.get(id(t._node)) is not None)
            for t, need in zip(node.inputs, node.needs))
        if any(needs) or id(node) in node_targets:
            useful[id(node)] = needs
    counts: dict[int, int] = {}
    for node in order:
        needs = useful.get(id(node))
        if needs is not None:
            for t, need in zip(node.inputs, needs):
                if need and t._node is not None:
                    counts[id(t._node)] = counts.get(id(t._node), 0) + 1
    ready = [n for n in roots if id(n) in useful and counts.get(id(n), 0) == 0]
    sum_to = tensor_kernels.sum_to.__wrapped__ if create_graph else backend.k.sum_to
    node_hooks = _hooks.NODE

    while ready:
        node = ready.pop()
        key = id(node)
        needs = useful[key]
        g = pending.pop(key, None)
        if g is not None and node_hooks and key in node_hooks:
            g = _hooks.run_pre(node_hooks[key], g)  # the tensor's hooks see its whole gradient
        if g is not None:
            deliver(key, node_targets, g)
        grads = None
        if g is not None and any(needs):
            grads = _node_backward(node, needs, g, create_graph, output_of.get(key))
            if state.anomaly:
                _check_finite(node, grads)
        for i, t in enumerate(node.inputs):
            if not needs[i]:
                continue
            gi = None if grads is None else grads[i]
            if gi is not None:
                if create_graph and not isinstance(gi, Tensor):
                    gi = Tensor._wrap(np.asarray(gi))
                if gi.shape != t.shape:
                    gi = sum_to(gi, t.shape)
            child = t._node
            if child is None:
                if gi is not None:
                    deliver(id(t), leaf_targets, gi)
                continue
            ck = id(child)
            if gi is not None:
                prev = pending.get(ck)
                pending[ck] = gi if prev is None else _add(prev, gi, create_graph)
            counts[ck] -= 1
            if counts[ck] == 0:
                ready.append(child)
        if not retain_graph and g is not None:
            node.release()

    if _hooks.LEAF:  # a hooked leaf's hooks see its total gradient, once
        for key, ks in leaf_targets.items():
            entry = _hooks.LEAF.get(key)
            if entry is not None and results[ks[0]] is not None:
                hooked = _hooks.run_pre(entry, results[ks[0]])
                for k in ks:
                    results[k] = hooked
    if create_graph:
        return results
    return [None if g is None else Tensor._wrap(_owned(g, seeds)) for g in results]


def _add(a: Any, b: Any, create_graph: bool) -> Any:
    if create_graph:
        return tensor_kernels.add.__wrapped__(a, b)
    return a + b


def _owned(g: np.ndarray, seeds: Sequence[Any]) -> np.ndarray:
    """A gradient array the caller may keep and change: views, read-only broadcasts and the
    caller's own cotangents are copied."""
    if g.base is not None or not g.flags.writeable or any(g is s for s in seeds):
        return g.copy()
    return g


def _postorder(roots: list, output_of: dict) -> list:
    """Every node reachable from ``roots``, each after all the nodes it consumes; fills
    ``output_of`` with the Tensor each node made (found among its consumers' inputs)."""
    seen = set()
    order = []
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.inputs))]
        while stack:
            node, it = stack[-1]
            for t in it:
                child = t._node
                if child is not None and id(child) not in seen:
                    output_of[id(child)] = t
                    seen.add(id(child))
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _node_backward(node: Any, needs: tuple[bool, ...], g: Any, create_graph: bool,
                   output: Tensor | None = None) -> tuple:
    """Run the node's gradient formula: on arrays, or recorded on Tensors."""
    if node.freed:
        raise FreedGraphError(
            f"{node.op.name}: backward through the graph a second time, but its saved arrays "
            f"were freed by the first backward; pass retain_graph=True (or create_graph=True) "
            f"to the first backward if you need to call it again")
    if not create_graph:
        node.check_versions()
        ctx = node if needs == node.needs else _Ctx(node, needs, node.saved)
        return node.op.backward(ctx, g)
    with enable_grad(), tensor_kernels.installed():
        saved = _saved_as_tensors(node, output)
        ctx = _Ctx(node, needs, saved)
        if saved is _RECOMPUTE:
            _check_all_versions(node)
            ctx.saved = None
            node.op.forward(ctx, *node.inputs, **(node.params or {}))
        else:
            node.check_versions()
        return node.op.backward(ctx, g)


_RECOMPUTE = object()


def _saved_as_tensors(node: Any, output: Tensor | None) -> Any:
    """The node's saved values with each input's (or the output's) array replaced by that
    Tensor, or _RECOMPUTE when something saved is none of these nor a constant."""
    by_array: dict[int, Any] = {}
    for t in node.inputs + ((output,) if output is not None else ()):
        prev = by_array.get(id(t._data))
        # two different Tensors over one array (x and x.detach()): which one was saved is
        # ambiguous, so rerun the forward instead
        by_array[id(t._data)] = t if prev is None or prev is t else _RECOMPUTE

    def one(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            if v.dtype.kind != "f":
                return v  # indices, masks, conditions: constants
            return by_array.get(id(v), _RECOMPUTE)
        if isinstance(v, np.floating):
            return _RECOMPUTE  # a 0-d result NumPy returned as a scalar, or a constant: rerun
        return v

    saved = node.saved
    if isinstance(saved, tuple):
        mapped = tuple(one(v) for v in saved)
        return _RECOMPUTE if any(m is _RECOMPUTE for m in mapped) else mapped
    return one(saved)


def _check_finite(node: Any, grads: tuple) -> None:
    """Under detect_anomaly, as backward(): name the op whose gradient is not finite."""
    for i, gi in enumerate(grads):
        if gi is None:
            continue
        values = gi._data if isinstance(gi, Tensor) else gi
        if not np.all(np.isfinite(values)):
            raise AnomalyError(
                f"{node.op.name}: backward produced NaN or inf in the gradient of input {i} "
                f"(shape {node.inputs[i].shape}); the op was created here:\n{node.origin()}")


def _check_all_versions(node: Any) -> None:
    for t, v in zip(node.inputs, node.versions):
        if t._vc[0] != v:
            raise InplaceModificationError(
                f"{node.op.name}: an input of shape {t.shape} was modified in place since the "
                f"forward (version {v} then, {t._vc[0]} now); create_graph reruns this op's "
                f"forward on its inputs, so compute the gradient before changing them")
