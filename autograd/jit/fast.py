"""Fast replays of the live calls every training step makes.

A live call (:func:`autograd.capture.live`) is replayed by calling the function again, which is
exact but pays its Python bookkeeping (argument checks, list building) at every step. The calls
below have a leaner replay that does the same work on the same arrays, so it gives the same
bits: leaf-gradient accumulation, ``zero_grad`` with ``set_to_none``, and the ``step`` of
:class:`~autograd.optim.SGD`, :class:`~autograd.optim.Adam` and :class:`~autograd.optim.AdamW`
(hyper-parameters, moments and step counts are read live from the optimizer at each replay, so
schedulers and ``load_state_dict`` keep working). Anything else (a subclass, a closure) takes
the generic live replay.

Each recorder here runs the call once for real (the trace is an eager run) and appends an
``("f", replay, counts_as_kernel)`` step to the tape, or an event from which the tracer builds
that step when the trace is mapped (the optimizer step; a gradient accumulation is recorded by
``Tracer.live_call`` itself, its step made by :func:`accumulate_step`). On the native backend
an optimizer step also carries a :class:`FusedUpdate`, with which ``native_plan`` may run the
update inside the plan segment of the backward instead (the Python replay stays its fallback).
"""
from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from ..hotpath import core as _core

__all__ = ["lookup", "table"]

_table: dict | None = None


def _build() -> dict:
    from ..nn.module import Module
    from ..optim.adam import Adam, AdamW
    from ..optim.optimizer import Optimizer
    from ..optim.sgd import SGD
    return {
        Optimizer.zero_grad.__wrapped_live__: _zero_grad_opt,
        Module.zero_grad.__wrapped_live__: _zero_grad_module,
        Optimizer.step.__wrapped_live__: _step,
        "_classes": (SGD, Adam, AdamW, Optimizer, Module),
        "_fused": frozenset((SGD, Adam, AdamW)),  # (exactly these: a subclass may differ)
        "_opt_zero_grad": Optimizer.zero_grad,
    }


def table() -> dict:
    """The fast recorders by live function (``Tracer.live_call`` reads ``_table`` directly
    once this has built it)."""
    global _table
    if _table is None:
        _table = _build()
    return _table


def lookup(fn: Callable, args: tuple, kwargs: dict) -> Callable | None:
    """The fast recorder of a live call, or None (then the generic live replay)."""
    try:
        return table().get(fn)
    except TypeError:
        return None


def accumulate_step(t_item: tuple, g_item: tuple, slot: int) -> tuple:
    """The tape step replaying a gradient accumulation into a leaf (``t_item``) of the
    gradient ``g_item``, storing the leaf's new ``.grad`` array in ``slot``."""
    acc = _core._accumulate_now

    if t_item[0] == 1 and g_item[0] == 0:  # a parameter and a slot: the common case
        leaf, gs = t_item[1], g_item[1]

        def replay(vals: list) -> None:
            acc(leaf, vals[gs])
            vals[slot] = leaf.grad._data
    else:
        leaf = gs = None
        _resolve = _trace_resolve()

        def replay(vals: list) -> None:
            leaf = _resolve(t_item, vals)
            acc(leaf, _resolve(g_item, vals))
            vals[slot] = leaf.grad._data
    # tagged: native_plan may run it after later kernel steps (it reads the gradient slot and
    # sets .grad, which no kernel reads); the leaf and its gradient's slot (None unless a
    # parameter and a slot) let it run an optimizer update in the plan on that gradient
    return ("f", replay, False, "acc", slot, leaf, gs)


def _trace_resolve() -> Callable:
    from .trace import _resolve  # (trace imports this module)
    return _resolve


def _zero_grad_opt(tracer: Any, orig: Callable, args: tuple,
                   kwargs: dict) -> Any:
    opt = args[0]
    set_to_none = kwargs.get("set_to_none", args[1] if len(args) > 1 else True)
    tracer.paused += 1  # (tracer.call_paused, written out: this runs in every first call)
    try:
        orig(*args, **kwargs)
    finally:
        tracer.paused -= 1
    if set_to_none is not True or type(opt).zero_grad is not _table["_opt_zero_grad"]:
        return tracer.generic_live_replay(orig, args, kwargs)
    groups = opt.param_groups

    # (a closure, not a partial: this runs at every replay, where a partial's extra call
    # layer costs more than making the closure once per trace)
    def replay(vals: list) -> None:
        for g in groups:
            for p in g["params"]:
                p.grad = None
    tracer.events.append(("f", replay, False))


def _zero_grad_module(tracer: Any, orig: Callable, args: tuple,
                      kwargs: dict) -> Any:
    module = args[0]
    set_to_none = kwargs.get("set_to_none", args[1] if len(args) > 1 else True)
    tracer.call_paused(orig, args, kwargs)
    if set_to_none is not True:
        return tracer.generic_live_replay(orig, args, kwargs)

    def replay(vals: list) -> None:
        for p in module.parameters():
            p.grad = None
    tracer.push(("f", replay, False))


def _step(tracer: Any, orig: Callable, args: tuple,
          kwargs: dict) -> Any:
    opt = args[0]
    closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
    kind = type(opt)
    if closure is not None or kind not in _table["_fused"]:
        out = tracer.call_paused(orig, args, kwargs)
        tracer.generic_live_replay(orig, args, kwargs)
        return out
    # The optimizer as traced, taken before the step runs: each group, its list of parameters
    # and each parameter with its array and the gradient array the update reads (None: no
    # gradient, so not updated). The replay is built from this when the trace is mapped.
    groups = opt.param_groups
    snap = []
    for g in groups:
        params = g["params"]
        row = []
        app = row.append
        for p in params:
            grad = p.grad
            app((p, p._data, None if grad is None else grad._data))
        snap.append((g, params, row))
    tracer.paused += 1  # (tracer.call_paused, written out: this runs in every first call)
    try:
        out = orig(*args, **kwargs)
    finally:
        tracer.paused -= 1
    tracer.push_build(_step_replay, (orig, opt, kind, groups, snap))
    return out


def _step_replay(tracer: Any, orig: Callable, opt: Any, kind: type, groups: list,
                 snap: list) -> tuple:
    """The tape step of an SGD, Adam or AdamW step recorded by :func:`_step`."""
    SGD = _table["_classes"][0]
    # which parameters the step updates (those with a gradient), fixed by the trace
    active = [[p for p, _, ga in row if ga is not None] for _, _, row in snap]
    # the gradients the update reads, as traced (native_plan asks whether eager ran _C on them)
    routes = [[ga for _, _, ga in row if ga is not None] for _, _, row in snap]
    # parameters the traced step did not update (no gradient then): should one have a gradient
    # at a replay, eager would update it, which the recorded plan does not cover
    inactive = [p for _, _, row in snap for p, _, ga in row if ga is None]
    k = tracer.base
    plan = [(g, ps, [d for _, d, ga in row if ga is not None])
            for (g, _, row), ps in zip(snap, active) if ps]
    # The groups as traced: a group added, or parameters added to one, since then means the
    # recorded plan no longer covers the optimizer, and its own step runs instead.
    layout = [(g, params, len(row)) for g, params, row in snap]

    def same_groups() -> bool:
        if opt.param_groups is not groups or len(groups) != len(layout):
            return False
        for g, (group, params, n) in zip(groups, layout):
            if g is not group or g["params"] is not params or len(params) != n:
                return False
        for p in inactive:
            if p.grad is not None:
                return False
        return True
    slow = orig

    if kind is SGD and len(plan) == 1:
        # one parameter group (the usual case): the same kernel call as SGD._update, with
        # the hyper-parameters read from the group at each replay
        sgd_step = k.sgd_step
        group, params, datas = plan[0]
        pairs = list(zip(params, datas))

        def replay(vals: list) -> None:
            if not same_groups():
                return _fallback(slow, opt)
            grads = []
            for p, d in pairs:
                g = p.grad
                if g is None or p._data is not d:
                    return _fallback(slow, opt)
                grads.append(g._data)
            mu = float(group["momentum"])
            if mu == 0:
                sgd_step(datas, grads, None, float(group["lr"]), mu,
                         float(group["dampening"]), bool(group["nesterov"]),
                         float(group["weight_decay"]))
            else:
                state = opt.state
                bufs = [state.get(p, {}).get("momentum_buffer") for p in params]
                if any(b is None for b in bufs):  # fresh buffers: eager knows what to do
                    return _fallback(slow, opt)
                sgd_step(datas, grads, bufs, float(group["lr"]), mu,
                         float(group["dampening"]), bool(group["nesterov"]),
                         float(group["weight_decay"]), False)
            for p in params:
                p._vc[0] += 1
    elif kind is SGD:
        sgd_step = k.sgd_step

        def replay(vals: list) -> None:
            if not same_groups():
                return _fallback(slow, opt)
            calls = []
            state = opt.state
            for group, params, datas in plan:  # check everything before changing anything
                grads = []
                for p, d in zip(params, datas):
                    g = p.grad
                    if g is None or p._data is not d:
                        return _fallback(slow, opt)
                    grads.append(g._data)
                bufs = None
                if float(group["momentum"]) != 0:
                    bufs = [state.get(p, {}).get("momentum_buffer") for p in params]
                    if any(b is None for b in bufs):  # fresh buffers: eager knows what to do
                        return _fallback(slow, opt)
                calls.append((group, params, datas, grads, bufs))
            for group, params, datas, grads, bufs in calls:
                mu = float(group["momentum"])
                hyper = dict(lr=float(group["lr"]), momentum=mu,
                             dampening=float(group["dampening"]),
                             nesterov=bool(group["nesterov"]),
                             weight_decay=float(group["weight_decay"]))
                if bufs is None:
                    sgd_step(list(datas), grads, None, **hyper)
                else:
                    sgd_step(list(datas), grads, bufs, first_step=False, **hyper)
                for p in params:
                    p._vc[0] += 1
    else:
        adam_step = k.adam_step
        decoupled = opt._decoupled

        def replay(vals: list) -> None:
            if not same_groups():
                return _fallback(slow, opt)
            state = opt.state
            calls = []
            for group, params, datas in plan:  # check everything before changing anything
                grads = []
                sts = []
                for p, d in zip(params, datas):
                    g = p.grad
                    st = state.get(p)
                    if g is None or st is None or "exp_avg" not in st or p._data is not d:
                        return _fallback(slow, opt)
                    grads.append(g._data)
                    sts.append(st)
                calls.append((group, params, datas, grads, sts))
            for group, params, datas, grads, sts in calls:
                for st in sts:
                    st["step"] += 1
                b1, b2 = group["betas"]
                by_step: dict = {}
                for d, g, st in zip(datas, grads, sts):
                    by_step.setdefault(st["step"], []).append((d, g, st))
                for s, sub in by_step.items():  # one call per step count, as eager
                    adam_step([d for d, _, _ in sub], [g for _, g, _ in sub],
                              [st["exp_avg"] for _, _, st in sub],
                              [st["exp_avg_sq"] for _, _, st in sub], s,
                              float(group["lr"]), float(b1), float(b2),
                              float(group["eps"]), float(group["weight_decay"]), decoupled)
                for p in params:
                    p._vc[0] += 1
    if tracer.native is None:
        return ("f", replay, True)
    # the FusedUpdate is made when the plan is built (third replay), from the optimizer as it
    # is then (its prepare checks at each replay that it still is)
    sgd = kind is SGD
    return ("f", replay, True, "optim",
            lambda: _fused_update(opt, sgd, plan, same_groups, routes, inactive))


def _fallback(step: Callable, opt: Any) -> None:
    """The replay met a state the fast path does not cover: the optimizer's own step."""
    step(opt)


#: marks an attr of a fused update that is read from the optimizer at every replay
LIVE = object()


class FusedUpdate:
    """An optimizer step that a native plan segment may run as its last steps, on the gradient
    buffers the segment's backward fills (``native_plan.segment`` decides; contract below).

    ``calls``: per parameter group, ``(kernel, params, arrays, attrs, route_args)``, where
    ``arrays`` are the kernel's array parameters in order with ``None`` for the gradients (the
    plan substitutes each parameter's gradient buffer) and ``attrs`` hold :data:`LIVE` where
    the value is read at each replay (``nlive`` of them in all, in order).
    ``bind(base)`` returns ``(prepare, commit)``: ``prepare(sc)`` checks, before the segment
    runs, that the optimizer is still what the plan was built for (same groups, parameter
    arrays and state arrays; every parameter's ``.grad`` None, so the segment's accumulations
    make ``.grad`` the very buffers the plan reads) and writes the live hyper-parameters into
    ``sc[base:base + nlive]``; it changes nothing. False means the segment stops before the
    update and the Python replay runs instead. ``commit()``, after the segment, does the
    update's Python side (version counters; Adam's step counts).
    """

    __slots__ = ("calls", "nlive", "bind", "source")

    def __init__(self, calls: list, nlive: int, bind: Callable,
                 source: Callable | None = None):
        self.calls = calls
        self.nlive = nlive
        self.bind = bind
        #: None, or ``source(tag, env) -> (prepare lines, commit lines)``: the same prepare
        #: (setting ``_ok``) and commit as statements for the generated replay, with their
        #: objects put in ``env`` under names ending in ``tag``
        self.source = source


def _fused_update(opt: Any, sgd: bool, plan: list, same_groups: Callable, routes: list,
                  inactive: list) -> FusedUpdate | None:
    """The FusedUpdate of an SGD/Adam/AdamW step as traced, or None (state the plan cannot
    hold: no momentum buffers, step counts differing within a group). ``inactive``: the
    optimizer's parameters the traced step did not update."""
    state = opt.state
    rows, calls = [], []
    grads_by_group = [g for g in routes if g]
    for (group, params, datas), grads in zip(plan, grads_by_group):
        if sgd:
            bufs = None
            if float(group["momentum"]) != 0:
                bufs = [state.get(p, {}).get("momentum_buffer") for p in params]
                if any(type(b) is not np.ndarray for b in bufs):
                    return None
            rows.append((group, params, datas, bufs))
            calls.append(("sgd_step", params, [list(datas), None, bufs], [LIVE] * 5 + [False],
                          (list(datas), grads, bufs, float(group["lr"]),
                           float(group["momentum"]))))
        else:
            sts = [state.get(p) for p in params]
            if any(st is None or type(st.get("exp_avg")) is not np.ndarray
                   or type(st.get("exp_avg_sq")) is not np.ndarray for st in sts):
                return None
            if len({st["step"] for st in sts}) != 1:
                return None
            ms = [st["exp_avg"] for st in sts]
            vs = [st["exp_avg_sq"] for st in sts]
            rows.append((group, params, datas, ms, vs))
            calls.append(("adam_step", params, [list(datas), None, ms, vs],
                          [LIVE] * 6 + [bool(opt._decoupled)],
                          (list(datas), grads, ms, vs)))
    everyone = [p for _, ps, _ in plan for p in ps]

    if sgd:
        def bind(base: int) -> tuple[Callable, Callable]:
            def prepare(sc: Any) -> bool:
                if not same_groups():
                    return False
                i = base
                for group, params, datas, bufs in rows:
                    for p, d in zip(params, datas):
                        if p.grad is not None or p._data is not d:
                            return False
                    mu = float(group["momentum"])
                    if mu != 0 and not _buffers_are_state(opt, params, bufs):
                        return False
                    sc[i] = float(group["lr"])
                    sc[i + 1] = mu
                    sc[i + 2] = float(group["dampening"])
                    sc[i + 3] = bool(group["nesterov"])
                    sc[i + 4] = float(group["weight_decay"])
                    i += 5
                return True

            def commit() -> None:
                for p in everyone:
                    p._vc[0] += 1
            return prepare, commit

        source = None
        if len(rows) == 1 and len(opt.param_groups) == 1:
            source = _sgd_source(opt, rows[0], inactive)
        return FusedUpdate(calls, 5 * len(rows), bind, source)

    def bind(base: int) -> tuple[Callable, Callable]:  # Adam, AdamW
        def prepare(sc: Any) -> bool:
            if not same_groups():
                return False
            st = opt.state
            i = base
            for group, params, datas, ms, vs in rows:
                step = None
                for p, d, m, v in zip(params, datas, ms, vs):
                    if p.grad is not None or p._data is not d:
                        return False
                    s = st.get(p)
                    if s is None or s.get("exp_avg") is not m or s.get("exp_avg_sq") is not v:
                        return False
                    n = s["step"]
                    if step is None:
                        step = n
                    elif n != step:  # eager makes one call per step count
                        return False
                b1, b2 = group["betas"]
                sc[i] = step + 1
                sc[i + 1] = float(group["lr"])
                sc[i + 2] = float(b1)
                sc[i + 3] = float(b2)
                sc[i + 4] = float(group["eps"])
                sc[i + 5] = float(group["weight_decay"])
                i += 6
            return True

        def commit() -> None:
            st = opt.state
            for p in everyone:
                st[p]["step"] += 1
                p._vc[0] += 1
        return prepare, commit
    return FusedUpdate(calls, 6 * len(rows), bind)


#: a one-group SGD update's live hyper-parameters, read from its group in one C call
_SGD_HYPER = operator.itemgetter("lr", "momentum", "dampening", "nesterov", "weight_decay")


def _buffers_are_state(opt: Any, params: list, bufs: list | None) -> bool:
    """With momentum on: the plan's momentum buffers are still the optimizer state's (None:
    momentum was off when traced and turned on since, so eager would make new buffers)."""
    if bufs is None:
        return False
    st = opt.state
    for p, b in zip(params, bufs):
        s = st.get(p)
        if s is None or s.get("momentum_buffer") is not b:
            return False
    return True


def _sgd_source(opt: Any, row: tuple, inactive: list) -> Callable:
    """FusedUpdate.source of a one-group SGD step: prepare and commit written out as
    statements (no call, no loop), the checks of ``prepare`` in one ``and`` chain. The live
    hyper-parameters are stored as they are into the array.array of the plan's scalars, which
    converts them as ``float()`` does (``bool`` for nesterov); anything it refuses raises and
    leaves ``_ok`` False, so the Python replay runs the update and raises where eager does."""
    group, params, datas, bufs = row
    groups = opt.param_groups

    def bufs_ok() -> bool:  # momentum on at this replay: the plan's buffers are the state's
        return _buffers_are_state(opt, params, bufs)

    def source(tag: str, env: dict) -> tuple[list, list]:
        env.update({f"O{tag}": opt, f"G{tag}": groups, f"g{tag}": group,
                    f"PL{tag}": group["params"], f"HYP{tag}": _SGD_HYPER,
                    f"BOK{tag}": bufs_ok})
        checks = [f"O{tag}.param_groups is G{tag}", f"len(G{tag}) == 1",
                  f"G{tag}[0] is g{tag}", f"g{tag}['params'] is PL{tag}",
                  f"len(PL{tag}) == {len(group['params'])}"]
        for j, (p, d) in enumerate(zip(params, datas)):
            env[f"p{tag}_{j}"], env[f"d{tag}_{j}"] = p, d
            checks += [f"p{tag}_{j}.grad is None", f"p{tag}_{j}._data is d{tag}_{j}"]
        for j, p in enumerate(inactive):
            env[f"q{tag}_{j}"] = p
            checks.append(f"q{tag}_{j}.grad is None")
        prepare = ["_ok = False",
                   "if (" + "\n        and ".join(checks) + "):",
                   "    try:",
                   f"        _lr, _mu, _dp, _ne, _wd = HYP{tag}(g{tag})",
                   f"        if _mu == 0 or BOK{tag}():",
                   f"            h{tag}[0] = _lr",
                   f"            h{tag}[1] = _mu",
                   f"            h{tag}[2] = _dp",
                   f"            h{tag}[3] = True if _ne else False",
                   f"            h{tag}[4] = _wd",
                   "            _ok = True",
                   "    except Exception:",
                   "        pass"]
        commit = [f"p{tag}_{j}._vc[0] += 1" for j in range(len(params))]
        return prepare, commit
    return source
