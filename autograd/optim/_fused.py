"""The work an optimizer step repeats every time: gather each group's arrays and gradients (with
their checks), run the group's fused update kernel, bump the parameters' versions.

This file is plain Python on purpose: the build compiles it with Cython into
``autograd.optim._cfused`` (same source, same behaviour; CMakeLists.txt, section 7), which runs
with the compiled hot path; the pure hot path runs this file (``autograd.backend.info()["optim"]``
says which). On a small network the step is all bookkeeping (the XOR net's four parameters cost
a 0.8 us kernel call and, as interpreted Python, 1.4 us of attribute reads, shape and dtype
compares, list appends and hyper-parameter conversions), so the compiled twin reads a Tensor's
and an ndarray's C structs where the Python beside it reads attributes, under ``if _COMPILED:``
with the helpers of ``csrc/hot.h`` (declared in ``_fused.pxd``), as ``autograd/_core.py`` does.

``zero_grad`` and ``step`` are :class:`Optimizer`'s, ``update_groups`` the step's loop;
``sgd_update`` and ``adam_update`` are the ``_update`` methods of :class:`~autograd.optim.SGD`
and :class:`~autograd.optim.Adam`. They are bound to those classes as class attributes, so a
compiled step runs from ``opt.step()`` to the kernel call without a Python frame.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..grad_mode import enable_grad, state
from ..tensor import Tensor

try:
    import cython
    _COMPILED = cython.compiled
except ImportError:  # the pure twin runs without Cython
    _COMPILED = False

if _COMPILED:
    ag_hot_init(np.ndarray, state)  # noqa: F821 - declared in _fused.pxd (csrc/hot.h)

__all__ = ["zero_grad", "step", "update_groups", "sgd_update", "adam_update", "KERNEL_ONLY_UPDATES"]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
# Tensor._updated_: the one way a kernel's in-place write to many parameters is recorded.
_bump = Tensor._updated_


#: ``_update`` methods that only call kernels on arrays (SGD's, Adam's): no op is recorded.
KERNEL_ONLY_UPDATES: set[Callable[..., None]] = set()


# zero_grad and step are live calls of autograd.compile (replayed for real at each replay, see
# autograd.capture.live), spelled out: the check that capture.live's wrapper makes sits at the
# top of each, so an eager call pays one thread-local read, not a wrapper frame with its packed
# arguments. Each carries ``__wrapped_live__`` (the function a replay calls, set in
# optimizer.py), as a live-decorated one does.
def zero_grad(self: Any, set_to_none: bool = True) -> None:
    """Clear the gradients of every parameter (to None by default, else to zeros)."""
    cap = ag_state_get("capture") if _COMPILED else state.capture  # noqa: F821
    if cap is not None:  # tracing for autograd.compile: recorded as a live call
        cap.live_call(_zero_grad, (self, set_to_none), {})
        return
    if set_to_none is True:
        if _COMPILED:  # a Tensor's grad is a C field (anything else: the attribute, as below)
            for g in self.param_groups:
                for p in g["params"]:
                    if isinstance(p, TensorBase):  # noqa: F821
                        t = p
                        t.grad = None
                    else:
                        p.grad = None
            return
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None
        return
    _zero_grad(self, set_to_none)


def _zero_grad(opt: Any, set_to_none: bool = True) -> None:
    """``opt.zero_grad(set_to_none)``: what a compiled step replays."""
    for g in opt.param_groups:
        for p in g["params"]:
            if p.grad is not None:
                p.grad = None if set_to_none else Tensor._wrap(np.zeros_like(p._data))


def step(self: Any, closure: Callable[[], Any] | None = None) -> Any:
    """Update every parameter that has a gradient; ``closure`` (optional) recomputes and
    returns the loss first, as in PyTorch."""
    cap = ag_state_get("capture") if _COMPILED else state.capture  # noqa: F821
    if cap is not None:  # tracing: recorded as a live call (hyper-parameters and state are
        # read at each replay)
        return cap.live_call(_step, (self, closure), {})
    if closure is None and type(self)._update in KERNEL_ONLY_UPDATES:
        update_groups(self)  # _step's common case, one call less
        return None
    return _step(self, closure)


def _step(opt: Any, closure: Callable[[], Any] | None = None) -> Any:
    """``opt.step(closure)``: what a compiled step replays."""
    loss = None
    if closure is not None:
        with enable_grad():
            loss = closure()
    # The update runs with grad recording off (as PyTorch's), unless it is one of ours, which
    # only call kernels on arrays and record nothing either way: then the thread-local flag is
    # left alone (reading and restoring it costs about what a small network's checks do).
    if type(opt)._update not in KERNEL_ONLY_UPDATES:
        prev = state.grad_enabled
        state.grad_enabled = False
        try:
            update_groups(opt)
        finally:
            state.grad_enabled = prev
        return loss
    update_groups(opt)
    return loss


def update_groups(opt: Any) -> None:
    """For each parameter group of ``opt``: the parameters that have a gradient, their arrays
    and their gradients' arrays (a gradient whose shape or dtype differs from its parameter's
    is a ValueError), handed to ``opt._update``; then their versions are bumped, so a graph
    that saved a parameter refuses a backward through its old value."""
    for group in opt.param_groups:
        params = group["params"]
        arrays: list = []
        grads: list = []
        skipped = _gather_c(opt, params, arrays, grads) if _COMPILED else \
            _gather(opt, params, arrays, grads)
        if not arrays:
            continue
        if skipped:
            params = [p for p in params if p.grad is not None]
        opt._update(group, params, arrays, grads)
        # in place: graphs that saved them must notice (Tensor._updated_; compiled, the hot
        # path's bump_versions called as C, cimported in _fused.pxd)
        if _COMPILED:
            bump_versions(params)  # noqa: F821
        else:
            _bump(params)


def _gather(opt: Any, params: Any, arrays: list, grads: list) -> bool:
    """Append the array and gradient array of each of ``params`` that has a gradient to
    ``arrays`` and ``grads`` (checked to match); whether any had none. Spelled out, no
    comprehension: it runs at every step."""
    skipped = False
    for p in params:
        g = p.grad
        if g is None:
            skipped = True
            continue
        a = p._data
        ga = g._data
        if ga.shape != a.shape or (ga.dtype is not a.dtype and ga.dtype != a.dtype):
            raise ValueError(f"{type(opt).__name__}: gradient of shape {ga.shape} "
                             f"({ga.dtype}) does not match its parameter {a.shape} "
                             f"({a.dtype})")
        arrays.append(a)
        grads.append(ga)
    return skipped


def _gather_c(opt: Any, params: Any, arrays: list, grads: list) -> bool:
    """:func:`_gather` in the compiled twin: a Tensor whose gradient is a Tensor, both holding
    exact float32 or float64 ndarrays of one shape and dtype (every parameter, normally), is
    read from the C structs; anything else (a mismatch to report, an array subclass, a
    parameter list a user filled with something else) takes :func:`_gather`'s Python."""
    skipped = False
    for p in params:
        if isinstance(p, TensorBase):  # noqa: F821 - cimported in _fused.pxd
            t = p
            g = t.grad
            if g is None:
                skipped = True
                continue
            if isinstance(g, TensorBase):  # noqa: F821
                u = g
                a = t._data
                ga = u._data
                if (ag_is_array(a) and ag_is_array(ga)  # noqa: F821 - csrc/hot.h
                        and ag_same_shape(a, ga)  # noqa: F821
                        and ag_same_float(a, ga, _F32, _F64)):  # noqa: F821
                    arrays.append(a)
                    grads.append(ga)
                    continue
        if _gather(opt, (p,), arrays, grads):
            skipped = True
    return skipped


def sgd_update(self: Any, group: dict[str, Any], params: list, arrays: list,
               grads: list) -> None:
    """``SGD._update``: ``params`` (the group's parameters with a gradient), their arrays and
    their gradients' arrays, updated by the fused ``sgd_step`` kernel (one call per group, two
    when only some parameters have a momentum buffer yet)."""
    # the calling thread's kernel (backend.k's, read from grad_mode.state without the backend
    # module's property; the compiled twin reads the thread's state dict)
    sgd_step = ag_kernel(ag_state_get("k"), "sgd_step") if _COMPILED else \
        state.k.sgd_step  # noqa: F821 - ag_* declared in _fused.pxd (csrc/hot.h)
    mu = float(group["momentum"])
    lr = float(group["lr"])
    dampening = float(group["dampening"])
    nesterov = bool(group["nesterov"])
    weight_decay = float(group["weight_decay"])
    # positional arguments (the kernel's signature): no keyword dict per step
    if mu == 0:  # plain SGD
        sgd_step(arrays, grads, None, lr, 0.0, dampening, nesterov, weight_decay)
        return
    # The kernel's first_step flag covers a whole call. Parameters get their buffer on their
    # first step with a gradient, so normally a group is all-new or all-old (one call); only a
    # group where some parameters had no gradient before needs two.
    states = self.state
    bufs = []
    fresh = []
    for i in range(len(params)):
        p = params[i]
        # (plain dict lookups: cheaper than .get method calls in the compiled twin)
        st = states[p] if p in states else None
        buf = st["momentum_buffer"] if st is not None and "momentum_buffer" in st else None
        if buf is None:
            fresh.append(i)
        bufs.append(buf)
    if not fresh:
        sgd_step(arrays, grads, bufs, lr, mu, dampening, nesterov, weight_decay, False)
        return
    for i in fresh:
        bufs[i] = states.setdefault(params[i], {})["momentum_buffer"] = np.zeros_like(arrays[i])
    new = set(fresh)
    old = [i for i in range(len(params)) if i not in new]
    for subset, first in ((fresh, True), (old, False)):
        if subset:
            sgd_step([arrays[i] for i in subset], [grads[i] for i in subset],
                     [bufs[i] for i in subset], lr, mu, dampening, nesterov, weight_decay, first)


def adam_update(self: Any, group: dict[str, Any], params: list, arrays: list,
                grads: list) -> None:
    """``Adam._update`` (and AdamW's, by ``self._decoupled``): ``params`` updated by the fused
    ``adam_step`` kernel. The kernel takes one step count for bias correction; parameters of a
    group share it unless some had no gradient on an earlier step: then one call per distinct
    count (one loop advances the counts and gathers the state arrays; a second groups them by
    count only when they differ)."""
    states = self.state
    n = len(params)
    exp_avgs = [None] * n
    exp_avg_sqs = [None] * n
    first = None
    shared = True  # every parameter at the same step count (one kernel call)
    for i in range(n):
        p = params[i]
        # (two plain dict lookups: cheaper than a .get method call in the compiled twin)
        st = states[p] if p in states else None
        if st is None or "exp_avg" not in st:
            a = arrays[i]
            st = states[p] = {"step": 0, "exp_avg": np.zeros_like(a),
                              "exp_avg_sq": np.zeros_like(a)}
        step = st["step"] = st["step"] + 1
        if i == 0:
            first = step
        elif shared and step != first:
            shared = False
        exp_avgs[i] = st["exp_avg"]
        exp_avg_sqs[i] = st["exp_avg_sq"]
    b1, b2 = group["betas"]
    lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
    b1 = float(b1)
    b2 = float(b2)
    decoupled = self._decoupled
    adam_step = ag_kernel(ag_state_get("k"), "adam_step") if _COMPILED else \
        state.k.adam_step  # noqa: F821
    if shared:
        adam_step(arrays, grads, exp_avgs, exp_avg_sqs, first, lr, b1, b2, eps, wd, decoupled)
        return
    # one call per distinct count (each parameter's, just advanced), in the order the counts
    # first appear
    by_step: dict = {}
    for i in range(n):
        step = states[params[i]]["step"]
        lists = by_step.get(step)
        if lists is None:
            lists = by_step[step] = ([], [], [], [])
        lists[0].append(arrays[i])
        lists[1].append(grads[i])
        lists[2].append(exp_avgs[i])
        lists[3].append(exp_avg_sqs[i])
    for step, lists in by_step.items():
        adam_step(lists[0], lists[1], lists[2], lists[3], step, lr, b1, b2, eps, wd, decoupled)
