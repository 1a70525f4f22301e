"""Native replay: runs of recorded kernel calls become ``_C.Plan`` steps (contract: PLAN.md).

On the native backend, a recorded kernel call goes into a plan when the native core has a plan
entry for it and the eager call ran that same C++ (``native.routes_native`` at trace time, or
the kernel is bitwise exact in both providers), its arrays are table slots or C-contiguous
constants, and its results were fresh arrays. Consecutive such calls form one segment: one
``plan.run`` with the GIL released, writing into buffers allocated once. The gradient
accumulations into ``.grad`` that follow a segment's kernels run after it, and an SGD, Adam or
AdamW update right after the backward joins the segment as its last steps (its
hyper-parameters live: written into the plan's scalars from the optimizer at each replay; see
``fast.FusedUpdate``), so a training step is one native call. Everything else (other live
steps: dropout masks, clipping...; kernels the plan refuses; views) stays a Python step
between segments. A slot a Python step (or the caller) fills and a segment reads is copied
into its buffer before that segment; slots a segment fills are its buffers, which later Python
steps read and the outputs copy.

Buffers are reused by every replay, so a gradient a compiled step leaves in ``.grad`` is
overwritten by the next replay of the same step (as ``zero_grad(set_to_none=False)`` would).
"""
from __future__ import annotations

import array
import inspect
from typing import Any, Callable

import numpy as np

from ..backend import numpy_kernels
from . import fast as _fast

__all__ = ["NativeInfo", "segment"]

_SLOT, _CONST = 0, 1


class NativeInfo:
    """What the tracer needs from the native provider (None when it has no plan executor)."""

    def __init__(self, base: Any):
        core = base._C
        self.Plan = core.Plan
        self.names = frozenset(core.plan_kernels())
        self.exact = {name: bool(exact) for name, _, exact, _ in core.KERNELS}
        self.routes_native = base.routes_native
        #: routes_native's answers by (kernel, _route_key of the arguments): see plannable
        self.routes: dict = {}

    @staticmethod
    def of(base: Any) -> "NativeInfo | None":
        core = getattr(base, "_C", None)
        if core is None or not hasattr(core, "Plan") or not hasattr(base, "routes_native"):
            return None
        return NativeInfo(base)

    def plannable(self, name: str, args: tuple, kwargs: dict) -> bool:
        """The eager call ran the native kernel (or both providers give the same bits)."""
        if name not in self.names:
            return False
        if self.exact.get(name):
            return True
        # A route is a pure function of the arguments' dtypes, shapes and attrs
        # (native.routes_native), so its answer is kept under a key that holds those and
        # more (type, strides, writeable): the plan of every fresh step of a model asks the
        # same questions (~1-8 us each, most of a plan build's Python time), and asks them
        # again for each of a model's traces.
        try:
            key = (name, _route_key(args), _route_key(tuple(kwargs.items())) if kwargs else ())
            answer = self.routes.get(key)
        except TypeError:  # an argument the key cannot hold (unhashable): ask the route
            key = answer = None
        if answer is None:
            try:
                answer = bool(self.routes_native(name, *args, **kwargs))
            except Exception:  # a route that cannot judge these arguments: keep it in Python
                answer = False
            if key is not None:
                if len(self.routes) >= 4096:  # bounded
                    self.routes.clear()
                self.routes[key] = answer
        return answer


_ndarray = np.ndarray
_KEYED = frozenset({str, int, float, bool, type(None)})


def _route_key(v: Any) -> Any:
    """What a kernel's route may read of an argument, as a hashable key: an array's type,
    dtype, shape, strides and writeable flag; a list or tuple item by item; a Python or NumPy
    scalar by type and value. Anything else raises TypeError (not keyed: the route is asked)."""
    t = type(v)
    if t is _ndarray:
        return (v.dtype, v.shape, v.strides, v.flags.writeable)
    if t is tuple or t is list:
        return (t, tuple([_route_key(x) for x in v]))
    if t in _KEYED or isinstance(v, np.generic):
        return (t, v)
    raise TypeError(f"no route key for {t.__name__}")


_SIGS: dict[str, tuple] = {}
_EMPTY = inspect.Parameter.empty


def _signature(name: str) -> tuple:
    """(inspect.Signature, [param kind]) of a kernel: 'array', 'seq' or 'attr' per parameter,
    from numpy_kernels' annotations."""
    sig = _SIGS.get(name)
    if sig is None:
        s = inspect.signature(getattr(numpy_kernels, name))
        kinds = []
        for p in s.parameters.values():
            ann = str(p.annotation)
            kinds.append("seq" if "Sequence[np.ndarray]" in ann
                         else "array" if "ndarray" in ann else "attr")
        sig = _SIGS[name] = (s, kinds)
        _POSITIONAL[name] = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in s.parameters.values())
        _ROWS[name] = (tuple(s.parameters),
                       tuple((n, kind, p.default)
                             for (n, p), kind in zip(s.parameters.items(), kinds)))
    return sig


#: kernel name -> every parameter is positional-or-keyword (positional arguments map to
#: parameters in order, without inspect's binding)
_POSITIONAL: dict[str, bool] = {}
#: kernel name -> (parameter names, (name, kind, default) per parameter): what translate
#: reads of the signature for each step, without inspect's objects
_ROWS: dict[str, tuple] = {}


def segment(steps: list, meta: dict, info: NativeInfo) -> tuple[list, set, list]:
    """The tape with runs of plannable kernel steps replaced by native segments, the slots
    whose arrays are reused buffers (outputs must copy them) and ``(slot, buffer)`` for each of
    them (a replay's value table starts with these). Steps that the plan refuses stay as they
    are. An optimizer update that follows a run directly (fast.FusedUpdate) joins it as the
    segment's last steps."""
    buffers: list[np.ndarray] = []
    index: dict[int, int] = {}  # a slot (>= 0), or -1 - id(constant array) -> buffer index
    produced: set[int] = set()   # slots filled by plan steps
    copied: set[int] = set()     # slots copied in from Python before some segment
    out: list = []
    run: list = []              # the current run of (step, ins, outs, attrs)
    deferred: list = []         # gradient accumulations moved after the current run
    optim: list = []            # (first plan step, FusedUpdate, Python replay, scalars)

    plannable = info.plannable

    def slot_buffer(p: int) -> int | None:
        """The buffer of slot ``p`` (made on first use), or None: not a plain array."""
        b = index.get(p)
        if b is None:
            m = meta.get(p)
            if m is None:
                return None
            b = index[p] = len(buffers)
            buffers.append(np.empty(m[0], m[1]))
        return b

    def const_buffer(p: Any) -> int | None:
        """A constant array read in place (a parameter...), or None: not C-contiguous."""
        if type(p) is not np.ndarray or not p.flags.c_contiguous:
            return None
        key = -1 - id(p)
        b = index.get(key)
        if b is None:
            b = index[key] = len(buffers)
            buffers.append(p)
        return b

    # (translate runs for every kernel step of every plan built: kept to one pass over the
    # kernel's parameters, without a dict of the arguments or a call per buffer lookup)
    def translate(step: tuple) -> tuple | None:
        _, name, _, a, k, spec, _, _, route = step
        if type(route) is tuple:  # the trace-time arguments: did eager run the native kernel?
            route = plannable(name, *route)
        if not route:
            return None
        if type(spec) is int:
            out_slots = [spec]
        elif spec is not None and all(type(s) is int or s is None for s in spec[1]):
            # a None result is one the kernel left out (linear_back without a bias, or without
            # dx): at the end it is not a result at all, elsewhere it takes no slot (-1)
            out_slots = list(spec[1])
            while out_slots and out_slots[-1] is None:
                out_slots.pop()
        else:
            return None
        for s in out_slots:
            if s is not None and s not in meta:
                return None
        sig, _ = _signature(name)
        pnames, rows = _ROWS[name]
        if not k and len(a) <= len(pnames) and _POSITIONAL.get(name):
            items = a  # the usual call: positional, parameter i is argument i
        else:
            try:
                given = sig.bind(*a, **k).arguments
            except TypeError:
                return None
            items = [given.get(n) for n in pnames]
        n_items = len(items)
        ins: list = []
        attrs: list = []
        reads: list[int] = []
        for i, (_, kind, default) in enumerate(rows):
            item = items[i] if i < n_items else None
            if kind == "attr":
                if item is None:
                    if default is _EMPTY:
                        return None
                    attrs.append(default)
                elif item[0] != _CONST:
                    return None
                else:
                    attrs.append(item[1])
                continue
            if kind == "seq":
                return None  # optimizer steps replay in Python (fast.py), live
            if item is None or (item[0] == _CONST and item[1] is None):
                if item is None and default is not None:
                    return None
                ins.append(None)
                continue
            ikind, p = item
            if ikind == _SLOT:
                b = slot_buffer(p)
                if b is None:
                    return None
                reads.append(p)
            elif ikind == _CONST:
                b = const_buffer(p)
                if b is None:
                    return None
            else:
                return None
            ins.append(b)
        return (name, ins, [-1 if s is None else slot_buffer(s) for s in out_slots], attrs,
                reads, out_slots, [])

    def fuse(fused: Any, base: int) -> list | None:
        """Plan steps for an optimizer update that follows the current run (FusedUpdate in
        fast.py), or None. Each parameter's gradient must be a buffer this run fills, made its
        .grad by exactly one accumulation deferred after the run."""
        grad_of: dict[int, int] = {}
        for acc in deferred:
            leaf, gs = acc[5], acc[6]
            if leaf is None or id(leaf) in grad_of:
                return None
            grad_of[id(leaf)] = gs
        filled = {s for t in run for s in t[5]}
        steps = []
        j = base
        for name, params, arrays, attrs, route in fused.calls:
            if not plannable(name, route, {}):
                return None
            ins: list = []
            for arr in arrays:
                if arr is None:  # the gradients
                    slots = [grad_of.get(id(p)) for p in params]
                    if any(g is None or g not in filled for g in slots):
                        return None
                    ins.append([index[g] for g in slots])
                elif isinstance(arr, list):
                    bs = [const_buffer(a) for a in arr]
                    if any(b is None for b in bs):
                        return None
                    ins.append(bs)
                else:
                    ins.append(None)
            fixed, live = [], []
            for pos, a in enumerate(attrs):
                if a is _fast.LIVE:
                    live.append((pos, j))
                    j += 1
                    fixed.append(0)  # a placeholder every attr kind accepts
                else:
                    fixed.append(a)
            steps.append((name, ins, [], fixed, [], [], live))
        return steps

    # The plan of the current run: each step is added to it as the run grows (Plan.add
    # checks everything before it changes the plan, so a step it refuses leaves the plan as
    # it was and replays in Python), not tried on a throwaway plan and added again at flush.
    current: list = [None]

    def plan_add(t: tuple) -> bool:
        plan = current[0]
        if plan is None:
            plan = current[0] = info.Plan()
        try:
            plan.add(t[0], t[1], t[2], t[3], t[6])
        except (KeyError, ValueError, TypeError, RuntimeError):
            return False
        return True

    def flush() -> None:
        if not run:
            return
        plan = current[0]
        current[0] = None
        copy_in: list[tuple[int, int]] = []
        fills: list[tuple[int, int]] = []
        for name, ins, outs, attrs, reads, out_slots, live in run:
            for s in reads:
                if s not in produced and s not in copied:
                    copied.add(s)
                    copy_in.append((s, index[s]))
            for s, b in zip(out_slots, outs):
                if s is not None:
                    produced.add(s)
                    fills.append((s, b))
        out.append(("native", plan, copy_in, fills, len(run), list(deferred), optim[:]))
        run.clear()
        deferred.clear()
        optim.clear()

    for step in steps:
        if step[0] == "k" and len(step) > 8:
            t = translate(step)
            if t is not None:
                if deferred and any(acc[4] in t[4] for acc in deferred):
                    flush()  # this step reads a .grad set by a deferred accumulation
                # the plan refuses what it cannot run (KeyError, ValueError): Python
                if plan_add(t):
                    run.append(t)
                    continue
        elif step[0] == "f" and len(step) > 3 and step[3] == "acc" and run:
            # Accumulating into .grad reads a gradient a kernel made and sets a Python
            # attribute no kernel reads: it can wait until the run ends, so one plan call
            # covers the backward instead of one per layer.
            deferred.append(step)
            continue
        elif step[0] == "f" and len(step) > 3 and step[3] == "optim" and run:
            # The optimizer update right after the backward: its kernel joins the plan with
            # its hyper-parameters live (read from the optimizer at each replay) and ends the
            # segment, so forward, backward and update are one native call.
            fused = None
            try:
                update = step[4]()  # fast.FusedUpdate, or None
                fused = None if update is None else fuse(update, 0)
            except (KeyError, ValueError, TypeError, RuntimeError):
                fused = None
            if fused is not None and not all(plan_add(t) for t in fused):
                # refused part-way: the run's plan again, without the update
                fused = None
                current[0] = None
                for t in run:
                    plan_add(t)
            if fused is not None:
                optim.append((len(run), update, step[1]))
                run.extend(fused)
                flush()
                continue
        flush()
        out.append(step)
    flush()
    segments = [s for s in out if s[0] == "native"]
    if not segments:
        return steps, set(), []
    for seg in segments:
        seg[1].bind(buffers)
    new_steps = []
    prefill = []
    for s in out:
        if s[0] != "native":
            new_steps.append(s)
            continue
        _, plan, copy_in, fills, n, accs, optims = s
        prefill += [(slot, buffers[b]) for slot, b in fills]
        grad_buffers = {}
        for acc in accs:
            gs = acc[6]
            if gs is not None and gs in produced:
                # A .grad the accumulation made from a buffer of this segment is that buffer
                # (when the leaf had no gradient before): outputs must copy it too.
                produced.add(acc[4])
                grad_buffers[acc[4]] = buffers[index[gs]]
        if optims:
            # With the update fused, every accumulation starts from no gradient (checked before
            # the segment runs), so each .grad slot holds its gradient buffer: part of the
            # template, and the generated replay stores nothing for it.
            prefill += list(grad_buffers.items())
        new_steps.append(("f", _runner(plan, copy_in, buffers, accs, optims, grad_buffers),
                          True, "native", n))
    return new_steps, produced, prefill


_NO_SCALARS = np.empty(0)


def _runner(plan: Any, copy_in: list, buffers: list, accs: list, optims: list,
            grad_buffers: dict) -> Callable[[list], None]:
    """One segment's replay: copy the slots Python filled into their buffers, run the plan,
    then the gradient accumulations deferred after it (and a fused optimizer update's Python
    side). The slots the plan fills hold its buffers for good (``prefill``), so nothing is
    stored per replay."""
    run = plan.run
    copyto = np.copyto
    ins = tuple((s, buffers[b]) for s, b in copy_in)
    acc_fns = tuple(a[1] for a in accs)
    # what Trace._generate needs to write this replay inline: each accumulation as
    # (leaf, gradient slot, .grad slot), or its replay function when not the common case
    inline = {"run": run, "ins": ins, "grad_buffers": grad_buffers,
              "accs": [(a[5], a[6], a[4]) if a[5] is not None else a[1] for a in accs]}
    if not optims:
        scalars = _NO_SCALARS

        def replay(vals: list) -> None:
            for s, buf in ins:
                copyto(buf, vals[s])
            run(scalars)
            for f in acc_fns:
                f(vals)
        replay.inline = dict(inline, scalars=scalars)  # type: ignore[attr-defined]
        return replay

    ((stop, fused, slow),) = optims  # an update ends its segment: one per segment
    # the live hyper-parameters: written through the array.array (cheap item stores), read by
    # the plan through a NumPy view of the same memory
    sc = array.array("d", bytes(8 * fused.nlive))
    scalars = np.frombuffer(sc, dtype=np.float64)
    prepare, commit = fused.bind(0)

    def unfused(vals: list) -> None:
        """The optimizer changed since the plan was built: the segment without the update,
        then the update's Python replay."""
        run(scalars, stop)
        for f in acc_fns:
            f(vals)
        slow(vals)

    def replay_fused(vals: list) -> None:
        try:
            ok = prepare(sc)
        except Exception:  # noqa: BLE001 - the Python replay below raises it where eager does
            ok = False
        for s, buf in ins:
            copyto(buf, vals[s])
        if ok:
            run(scalars)
            for f in acc_fns:
                f(vals)
            commit()
        else:
            unfused(vals)
    replay_fused.inline = dict(inline, scalars=scalars, sc=sc,  # type: ignore[attr-defined]
                               prepare=prepare, commit=commit, unfused=unfused,
                               fused=fused)
    return replay_fused
