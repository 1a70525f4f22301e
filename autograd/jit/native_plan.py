"""Native replay: runs of recorded kernel calls become ``_C.Plan`` steps (contract: PLAN.md).

On the native backend, a recorded kernel call goes into a plan when the native core has a plan
entry for it and the eager call ran that same C++ (``native.routes_native`` at trace time, or
the kernel is bitwise exact in both providers), its arrays are table slots or C-contiguous
constants, and its results were fresh arrays. Consecutive such calls form one segment: one
``plan.run`` with the GIL released, writing into buffers allocated once. Everything else
(the live steps: optimizer updates, gradient accumulation, dropout masks...; kernels the plan
refuses; views) stays a Python step between segments. A slot a Python step (or the caller)
fills and a segment reads is copied into its buffer before that segment; slots a segment fills
are its buffers, which later Python steps read and the outputs copy.

Buffers are reused by every replay, so a gradient a compiled step leaves in ``.grad`` is
overwritten by the next replay of the same step (as ``zero_grad(set_to_none=False)`` would).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from ..backend import numpy_kernels

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
        try:
            return bool(self.routes_native(name, *args, **kwargs))
        except Exception:  # a route that cannot judge these arguments: keep it in Python
            return False


_SIGS: dict[str, tuple] = {}


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
    return sig


def segment(steps: list, meta: dict, info: NativeInfo) -> tuple[list, set]:
    """The tape with runs of plannable kernel steps replaced by native segments, and the slots
    whose arrays are reused buffers (outputs must copy them). Steps that the plan refuses stay
    as they are."""
    buffers: list[np.ndarray] = []
    index: dict[Any, int] = {}  # ("s", slot) or ("c", id(array)) -> buffer index
    produced: set[int] = set()   # slots filled by plan steps
    copied: set[int] = set()     # slots copied in from Python before some segment
    out: list = []
    run: list = []              # the current run of (step, ins, outs, attrs)
    deferred: list = []         # gradient accumulations moved after the current run

    def buffer_of(item: tuple, reading: bool) -> int | None:
        kind, p = item
        if kind == _SLOT:
            m = meta.get(p)
            if m is None:
                return None
            key = ("s", p)
            if key not in index:
                shape, dtype = m
                index[key] = len(buffers)
                buffers.append(np.empty(shape, dtype))
            return index[key]
        if kind == _CONST and isinstance(p, np.ndarray) and reading:
            if not (p.flags.c_contiguous and type(p) is np.ndarray):
                return None
            key = ("c", id(p))
            if key not in index:
                index[key] = len(buffers)
                buffers.append(p)
            return index[key]
        return None

    def translate(step: tuple) -> tuple | None:
        _, name, _, a, k, spec, _, _, route = step
        if type(route) is tuple:  # the trace-time arguments: did eager run the native kernel?
            route = info.plannable(name, *route)
        if not route:
            return None
        if type(spec) is int:
            out_slots = [spec]
        elif spec is not None and all(type(s) is int for s in spec[1]):
            out_slots = list(spec[1])
        else:
            return None
        if any(s not in meta for s in out_slots):
            return None
        sig, kinds = _signature(name)
        try:
            bound = sig.bind(*a, **k)
        except TypeError:
            return None
        given = bound.arguments
        ins: list = []
        attrs: list = []
        reads: list[int] = []
        for (pname, param), kind in zip(sig.parameters.items(), kinds):
            item = given.get(pname)
            if kind == "attr":
                if item is None:
                    if param.default is inspect.Parameter.empty:
                        return None
                    attrs.append(param.default)
                elif item[0] != _CONST:
                    return None
                else:
                    attrs.append(item[1])
                continue
            if kind == "seq":
                return None  # optimizer steps replay in Python (fast.py), live
            if item is None or (item[0] == _CONST and item[1] is None):
                if item is None and param.default is not None:
                    return None
                ins.append(None)
                continue
            b = buffer_of(item, reading=True)
            if b is None:
                return None
            if item[0] == _SLOT:
                reads.append(item[1])
            ins.append(b)
        outs = [buffer_of((_SLOT, s), reading=False) for s in out_slots]
        return (name, ins, outs, attrs, reads, out_slots)

    def flush() -> None:
        if not run:
            return
        plan = info.Plan()
        copy_in: list[tuple[int, int]] = []
        fills: list[tuple[int, int]] = []
        for name, ins, outs, attrs, reads, out_slots in run:
            plan.add(name, ins, outs, attrs)
            for s in reads:
                if s not in produced and s not in copied:
                    copied.add(s)
                    copy_in.append((s, index[("s", s)]))
            for s, b in zip(out_slots, outs):
                produced.add(s)
                fills.append((s, b))
        out.append(("native", plan, copy_in, fills, len(run)))
        run.clear()
        out.extend(deferred)
        deferred.clear()

    for step in steps:
        if step[0] == "k" and len(step) > 8:
            t = translate(step)
            if t is not None:
                probe = info.Plan()
                try:  # the plan refuses what it cannot run (KeyError, ValueError): Python
                    probe.add(t[0], t[1], t[2], t[3])
                except (KeyError, ValueError, TypeError, RuntimeError):
                    t = None
            if t is not None:
                if any(acc[4] in t[4] for acc in deferred):
                    flush()  # this step reads a .grad set by a deferred accumulation
                run.append(t)
                continue
        elif step[0] == "f" and len(step) > 3 and step[3] == "acc" and run:
            # Accumulating into .grad reads a gradient a kernel made and sets a Python
            # attribute no kernel reads: it can wait until the run ends, so one plan call
            # covers the backward instead of one per layer.
            deferred.append(step)
            continue
        flush()
        out.append(step)
    flush()
    segments = [s for s in out if s[0] == "native"]
    if not segments:
        return steps, set()
    for seg in segments:
        seg[1].bind(buffers)
    new_steps = []
    for s in out:
        if s[0] != "native":
            new_steps.append(s)
            continue
        _, plan, copy_in, fills, n = s
        new_steps.append(("f", _runner(plan, copy_in, fills, buffers), True, "native", n))
    return new_steps, produced


def _runner(plan: Any, copy_in: list, fills: list, buffers: list) -> Callable[[list], None]:
    run = plan.run
    scalars = np.empty(0)
    copyto = np.copyto
    ins = [(s, buffers[b]) for s, b in copy_in]
    outs = [(s, buffers[b]) for s, b in fills]

    def replay(vals: list) -> None:
        for s, buf in ins:
            copyto(buf, vals[s])
        run(scalars)
        for s, buf in outs:
            vals[s] = buf
    return replay
