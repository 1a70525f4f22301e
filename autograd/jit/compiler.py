"""``autograd.compile``: trace a step once, replay it while its guards hold.

The first call with a new *guard key* runs ``fn`` eagerly under a :class:`~.trace.Tracer` (so it
returns exactly what eager code returns) and keeps the recorded :class:`~.trace.Trace`. Later
calls whose guards match replay the trace: inputs go into their slots, the tape runs, outputs
come back as fresh tensors. Guards: the structure of the arguments, each tensor's shape, dtype
and ``requires_grad``, the value of each Python number, grad mode, the kernel provider, and for
every module the step called (and their submodules): its train/eval mode, its parameters,
buffers and submodules (the same objects under the same names) and each parameter's and
buffer's storage and ``requires_grad``. A mismatch traces again, into a small LRU cache
(``cache_size``), so a last partial batch costs one extra trace, not one per epoch.
``AUTOGRAD_LOG=compile`` prints why each retrace happened.

A call's cost outside the replay is kept small: the key of a call with tensors only is built in
C (one ``attrgetter`` per argument) and compared with the last call's key before any hashing,
and the module guard becomes one generated expression when the replay is generated (third
replay; :class:`_ModuleGuard`).
"""
from __future__ import annotations

import collections
import functools
import logging
import operator
import os
import threading
import warnings
import weakref
from typing import Any, Callable

import numpy as np

from ..grad_mode import state
from ..hotpath import core as _core

# The compiled twin (autograd.jit._ccompiler) uses the compiled trace (see jit/__init__.py).
if __name__.endswith("._ccompiler"):
    from ._ctrace import (  # type: ignore[import-not-found]
        _SLOT,
        CompileError,
        Trace,
        Tracer,
        _resolve,
        closure_maker,
        recording,
    )
else:
    from .trace import _SLOT, CompileError, Trace, Tracer, _resolve, closure_maker, recording

__all__ = ["compile", "Compiled", "CompileError"]

log = logging.getLogger("autograd.compile")


def _log_enabled() -> bool:
    flags = os.environ.get("AUTOGRAD_LOG", "")
    return "compile" in {f.strip() for f in flags.split(",")}


if _log_enabled() and not log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("autograd.compile: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False

_Tensor = None


def _tensor_cls() -> Any:
    global _Tensor
    if _Tensor is None:
        from ..tensor import Tensor
        _Tensor = Tensor
    return _Tensor


def _flatten(value: Any, leaves: list, path: str) -> Any:
    """The argument structure (for the guard) with tensors and arrays replaced by markers;
    ``leaves`` collects (path, value) for each tensor/array."""
    if isinstance(value, _core.TensorBase):
        leaves.append((path, value))
        return ("T", value._data.shape, value._data.dtype.str, value._requires_grad)
    if isinstance(value, np.ndarray):
        leaves.append((path, value))
        return ("A", value.shape, value.dtype.str)
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
        return (type(value).__name__, value)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__,
                tuple(_flatten(v, leaves, f"{path}[{i}]") for i, v in enumerate(value)))
    if isinstance(value, dict):
        return ("dict", tuple((k, _flatten(v, leaves, f"{path}[{k!r}]"))
                              for k, v in value.items()))
    if isinstance(value, np.generic):
        return (type(value).__name__, value.item())
    return ("obj", id(value))  # a module, an optimizer, a callable: the same object


#: the guard key of one Tensor argument (class, shape, dtype, requires_grad), read in C
_argkey = operator.attrgetter("__class__", "_data.shape", "_data.dtype", "_requires_grad")
_NO_KWARGS = ("dict", ())


def _is_argkey(k: Any) -> bool:
    return (isinstance(k, tuple) and len(k) == 4 and isinstance(k[0], type)
            and issubclass(k[0], _core.TensorBase))


def _plain(v: Any) -> bool:
    """A value compared by equality in a guard (numbers, strings, None, tuples of them)."""
    if type(v) is tuple:
        return all(_plain(x) for x in v)
    return type(v) in (bool, int, float, str, type(None)) and v == v  # NaN: by identity


#: a parameter's guarded facts (its array, requires_grad) and a buffer's (its array), read in C
_pfacts = operator.attrgetter("_data", "_requires_grad")
_bfacts = operator.attrgetter("_data")


def _snapshot(modules: list) -> list:
    """The facts a module guard checks, taken from ``modules`` and their submodules (each
    once, depth first, parents before children): per module ``(module, training, __dict__,
    copy of __dict__, parameters, buffers, submodules)`` (the registries as objects), and when
    one of them holds anything ``+ (their copies (None: empty), each parameter's (array,
    requires_grad), each buffer's array)``. Run once per trace, so it is kept to one pass with
    one C call per copy (a module costs ~0.6 us here)."""
    snap: list = []
    app = snap.append
    seen: set = set()
    add = seen.add
    stack = modules[::-1]
    pop = stack.pop
    while stack:
        m = pop()
        i = id(m)
        if i in seen or m is None:  # (a registered None submodule)
            continue
        add(i)
        V = m.__dict__
        P, B, M = m._parameters, m._buffers, m._modules
        if not (P or B or M):  # an activation, a loss: its flag and settings only
            app((m, m.training, V, V.copy(), P, B, M))
            continue
        Pc = Bc = Mc = None
        pdata = bdata = ()
        if P:
            Pc = P.copy()
            try:
                pdata = tuple(map(_pfacts, Pc.values()))
            except AttributeError:  # a registered None
                pdata = tuple(None if p is None else _pfacts(p) for p in Pc.values())
        if B:
            Bc = B.copy()
            try:
                bdata = tuple(map(_bfacts, Bc.values()))
            except AttributeError:
                bdata = tuple(None if b is None else _bfacts(b) for b in Bc.values())
        if M:
            Mc = M.copy()
            stack.extend(reversed(Mc.values()))
        app((m, m.training, V, V.copy(), P, B, M, Pc, Bc, Mc, pdata, bdata))
    return snap


def _holds_snap(snap: list) -> bool:
    """A guard's ``holds`` until it is generated: the facts checked straight from the
    snapshot (the same facts as ``_ModuleGuard.checks``, without building that list). A dict
    whose keys and values are still the very objects of the copy (in order: checked in C)
    holds; otherwise its facts are checked one by one."""
    for row in snap:
        m, training, V, Vc = row[:4]
        if m.training is not training:
            return False
        if not (_same(V, Vc) or _settings_hold(V, Vc)):
            return False
        if len(row) == 7:
            if row[4] or row[5] or row[6]:  # the registries were empty at trace time
                return False
            continue
        P, B, M, Pc, Bc, Mc, pdata, bdata = row[4:]
        if not (_table_holds(P, Pc) and _table_holds(B, Bc) and _table_holds(M, Mc)):
            return False
        if Pc:
            for p, facts in zip(Pc.values(), pdata):
                if p is not None and (p._data is not facts[0]
                                      or p._requires_grad is not facts[1]):
                    return False
        if Bc:
            for b, data in zip(Bc.values(), bdata):
                if b is not None and b._data is not data:
                    return False
    return True


class _ModuleGuard:
    """The module part of a trace's guards: every module's train flag and its registries of
    parameters, buffers and submodules (the same objects under the same names), every
    parameter's and buffer's storage and every parameter's ``requires_grad``, and every public
    setting a forward may read at trace time (``Dropout.p``, ``BatchNorm1d.momentum``,
    ``LeakyReLU.negative_slope``...: numbers and strings by value, other objects by identity).

    ``holds`` checks them all at each call. It starts as a loop over the snapshot taken at
    trace time; :meth:`compile` (called when the trace's replay is generated, at its third
    replay) turns the same checks into one generated expression, so a call pays one
    comparison per fact and no loop."""

    __slots__ = ("_snap", "_checks", "holds")

    def __init__(self, modules: list):
        # ``modules``: the modules a step called; their submodules are walked here (a
        # container may run its children without calling them, e.g. Sequential's fused
        # Linear + activation).
        # The facts are taken now (the trace is of the modules as they are now), as shallow
        # copies of the dicts they live in (one C call each); the list of checks is built
        # from them when the guard is generated, so a step called once does not pay for it.
        snap = self._snap = _snapshot(modules)
        self._checks = None
        # a partial over the snapshot, not a bound method: the guard keeps no reference to
        # itself (see Trace.run), and calling a partial costs no Python frame more
        self.holds = functools.partial(_holds_snap, snap)

    @property
    def checks(self) -> list:
        """(kind, object, expected, module) facts, in the order they are checked."""
        checks = self._checks
        if checks is None:
            checks = self._checks = self._build(self._snap)
        return checks

    @staticmethod
    def _build(snap: list) -> list:
        checks: list = []
        for row in snap:
            m, training, V, Vc = row[:4]
            checks.append(("training", m, training, m))
            P, B, M = row[4:7]
            Pc = Bc = Mc = None  # (no copy: the registry was empty and must stay so)
            if len(row) > 7:
                Pc, Bc, Mc = row[7:10]
            for table, copy in ((P, Pc), (B, Bc), (M, Mc)):
                checks.append(("table", table, () if copy is None else tuple(copy.items()), m))
            for key, v in Vc.items():
                if _is_setting(key, v):
                    checks.append(("setting", V, (key, v), m))
        for row in snap:
            if len(row) == 7:
                continue
            m, Pc, Bc, pdata, bdata = row[0], row[7], row[8], row[10], row[11]
            for p, facts in zip(Pc.values() if Pc else (), pdata):
                if p is not None:
                    checks.append(("data", p, facts[0], m))
                    checks.append(("requires_grad", p, facts[1], m))
            for b, data in zip(Bc.values() if Bc else (), bdata):
                if b is not None:
                    checks.append(("data", b, data, m))
        return checks

    def explain(self) -> str | None:
        """The first fact that no longer holds, in words (None: all hold)."""
        for kind, obj, want, m in self.checks:
            name = type(m).__name__
            if kind == "training":
                if obj.training is not want:
                    return f"module {name} switched to {'train' if obj.training else 'eval'} mode"
            elif kind == "table":
                if len(obj) != len(want) or any(obj.get(k, _MISSING) is not v for k, v in want):
                    what = ("submodules" if obj is m._modules else
                            "parameters or buffers")
                    return (f"the {what} of module {name} changed (added, removed or "
                            f"replaced)")
            elif kind == "setting":
                key, v = want
                now = obj.get(key, _MISSING)
                # "is True": a value that compares elementwise (an array) counts as changed
                if not (now is v or (_plain(v) and (now == v) is True)):
                    if key in _REGISTRIES:
                        return f"module {name}'s {key} was replaced by another dict"
                    now_text = "removed" if now is _MISSING else repr(now)
                    return f"module {name}'s {key} changed ({v!r} -> {now_text})"
            elif kind == "data":
                if obj._data is not want:
                    return (f"the parameters or buffers of module {name} changed (an array "
                            f"replaced)")
            elif obj._requires_grad is not want:
                return (f"the parameters or buffers of module {name} changed (requires_grad "
                        f"flipped)")
        return None

    def compile(self) -> None:
        """Replace ``holds`` by one generated expression over the same facts. Its code depends
        only on the kind of each fact (and each registry's size), so it is made once per shape
        of model (:func:`_guard_code`) and a new guard only passes its objects to the code's
        closure maker (generating the source for each trace cost ~25 us, 1.5 eager XOR
        steps). The facts' kinds and objects are read straight from the snapshot, in the
        order of ``checks`` (:func:`_guard_facts`), without building that list."""
        shape, values = _guard_facts(self._snap)
        made = _GUARD_CODE.get(shape)
        if made is None:
            if len(_GUARD_CODE) >= 256:  # bounded: drop the oldest
                del _GUARD_CODE[next(iter(_GUARD_CODE))]
            made = _GUARD_CODE[shape] = list(_guard_code(shape)) + [None]
        source, names, make = made
        if make is None:  # the same shape takes the same names in the same order
            order = ["_M", "len"]
            for o, extra in names:
                order.append(o)
                if type(extra) is list:  # a registry: a (key, value) pair per entry
                    for pair in extra:
                        order += pair
                elif type(extra) is tuple:  # a setting: (key, value)
                    order += extra
                else:
                    order.append(extra)
            make = made[2] = closure_maker(source, "holds", tuple(order),
                                           "<autograd.compile guard>")
        self.holds = make(_MISSING, len, *values)


def _guard_facts(snap: list) -> tuple[tuple, list]:
    """The shape of a guard's facts (the kind of each, as ``_guard_code`` takes it) and their
    objects in the order its names take them: per fact the object, then for a registry each
    (key, value), for a setting (key, value), else the expected value. The same facts in the
    same order as ``_ModuleGuard._build``."""
    shape: list = []
    values: list = []
    add = shape.append
    put = values.append
    more = values.extend
    for row in snap:
        m, training, V, Vc, P, B, M = row[:7]
        add("training")
        more((m, training))
        tabs = row[7:10] if len(row) > 7 else (None, None, None)
        for table, copy in zip((P, B, M), tabs):
            put(table)
            if copy:
                add(("table", len(copy)))
                for kv in copy.items():
                    more(kv)
            else:
                add(("table", 0))
        for key, v in Vc.items():
            if _is_setting(key, v):
                add(("setting", _plain(v)))
                more((V, key, v))
    for row in snap:
        if len(row) == 7:
            continue
        Pc, Bc, pdata, bdata = row[7], row[8], row[10], row[11]
        if Pc:
            for p, facts in zip(Pc.values(), pdata):
                if p is not None:
                    add("data")
                    more((p, facts[0]))
                    add("requires_grad")
                    more((p, facts[1]))
        if Bc:
            for b, data in zip(Bc.values(), bdata):
                if b is not None:
                    add("data")
                    more((b, data))
    return tuple(shape), values


#: shape of a guard's facts -> [source, the names of each fact's objects, closure maker]
_GUARD_CODE: dict = {}


def _guard_code(shape: tuple) -> tuple[Any, list]:
    """The source of a generated guard over facts of these kinds (``_ModuleGuard.compile``), and
    for each fact the names its objects take: ``(object, value)`` or, for a registry,
    ``(object, [(key, value) per entry])`` or, for a setting, ``(object, (key, value))``."""
    terms: list[str] = []
    names: list[tuple] = []
    for i, kind in enumerate(shape):
        o = f"o{i}"
        if type(kind) is str:  # training, data, requires_grad
            v = f"v{i}"
            names.append((o, v))
            attr = {"training": "training", "data": "_data"}.get(kind, "_requires_grad")
            terms.append(f"{o}.{attr} is {v}")
        elif kind[0] == "table":
            pairs = [(f"k{i}_{j}", f"v{i}_{j}") for j in range(kind[1])]
            names.append((o, pairs))
            if not pairs:
                terms.append(f"not {o}")
                continue
            terms.append(f"len({o}) == {kind[1]}")
            terms += [f"{o}.get({k}, _M) is {v}" for k, v in pairs]
        else:  # a setting: numbers and strings by value, other objects by identity
            k, v = f"k{i}", f"v{i}"
            names.append((o, (k, v)))
            terms.append(f"({o}.get({k}, _M) == {v}) is True" if kind[1]
                         else f"{o}.get({k}, _M) is {v}")
    # one `and` chain per 64 facts (a model of any size compiles to flat statements)
    lines = ["def holds():"]
    for c in range(0, len(terms), 64):
        lines.append("    if not (" + "\n            and ".join(terms[c:c + 64]) + "):")
        lines.append("        return False")
    lines.append("    return True")
    return "\n".join(lines), names


_MISSING = object()
_is = operator.is_


def _same(now: dict, copy: dict) -> bool:
    """The dict still has the copy's keys and values, the same objects in the same order."""
    return (len(now) == len(copy) and all(map(_is, now, copy))
            and all(map(_is, now.values(), copy.values())))


def _table_holds(now: dict, copy: dict | None) -> bool:
    """A registry (parameters, buffers, submodules): the same objects under the same names
    (``copy`` None: it was empty)."""
    if copy is None:
        return not now
    if len(now) != len(copy):
        return False
    missing = _MISSING
    for k, v in copy.items():
        if now.get(k, missing) is not v:
            return False
    return True


#: A module's registries: facts of its ``__dict__`` by identity, like a setting, when they held
#: anything at trace time, so a registry replaced by another dict (``m._parameters = {...}``, as
#: parametrization code does) retraces. An empty one is not (a module whose forward read no
#: entry of it at trace time; each fact costs ~35 ns per replay, three per module).
_REGISTRIES = frozenset(("_parameters", "_buffers", "_modules"))


def _is_setting(key: str, value: Any) -> bool:
    """Whether a module's ``__dict__`` entry ``key`` (holding ``value`` at trace time) is a
    guarded fact: its public settings and its non-empty registries (other private names and
    ``training``, guarded apart, are not)."""
    if key in _REGISTRIES:
        return isinstance(value, dict) and len(value) > 0
    return not key.startswith("_") and key != "training"


def _settings_hold(now: dict, copy: dict) -> bool:
    """A module's settings (``_is_setting``) as in the copy of its ``__dict__`` (numbers and
    strings by value, other objects by identity)."""
    missing = _MISSING
    for key, v in copy.items():
        if _is_setting(key, v):
            cur = now.get(key, missing)
            if not (cur is v or (_plain(v) and (cur == v) is True)):
                return False
    return True


def _describe(old: Any, new: Any, path: str = "") -> str | None:
    """The first difference between two guard keys, in words."""
    if old == new:
        return None
    if (isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new)
            and old[:1] == new[:1] and old[:1] in (("T",), ("A",))):
        names = ("kind", "shape", "dtype", "requires_grad")
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                return f"{path or 'argument'}: {names[i]} {a} -> {b}"
    if _is_argkey(old) and _is_argkey(new):  # a Tensor argument's _argkey
        names = ("type", "shape", "dtype", "requires_grad")
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                if i == 0:
                    a, b = a.__name__, b.__name__
                return f"{path or 'argument'}: {names[i]} {a} -> {b}"
    if isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new):
        for a, b in zip(old, new):
            d = _describe(a, b, path)
            if d is not None:
                return d
    return f"{path or 'value'}: {old!r} -> {new!r}"


class _Entry:
    # What a replay reads is in these slots (a Trace attribute is read through the class's
    # __getattr__ machinery, ~0.05 us more each).
    __slots__ = ("trace", "run", "out_spec", "arg_slots", "guard", "lock", "__weakref__")

    def __init__(self, trace: Trace, modules: list, arg_slots: list):
        self.trace = trace
        #: what a replay calls: the trace's first and interpreted replays, then (_generated)
        #: its generated function itself
        self.run = trace.run
        self.out_spec = None  # (set when the trace is mapped, before its first replay)
        self.arg_slots = arg_slots
        self.guard = _ModuleGuard(modules)
        # native segments write buffers shared by every replay of this trace: one at a time
        self.lock = threading.Lock()


# The trace's callbacks reach its entry through a weak reference: the entry holds the trace,
# and a reference back would make a cycle (see Trace.run).
def _materialized(entry_ref: Any, raw: Any, tracer: Tracer) -> Any:
    """Trace.on_materialize: how to rebuild the step's result at a replay, for the entry."""
    spec = _output_spec(raw, tracer)
    entry = entry_ref()
    if entry is not None:
        entry.out_spec = spec
    return spec


def _generated(entry_ref: Any, run: Callable[[list], None]) -> None:
    """Trace.on_generate: replay through the generated function from now on, and generate
    the guard with it."""
    entry = entry_ref()
    if entry is not None:
        entry.run = run
        entry.guard.compile()


class Compiled:
    """A function compiled by :func:`compile`; call it as the function itself.

    ``stats`` counts traces, replays and eager calls; ``cache_size`` bounds the traces kept.
    """

    def __init__(self, fn: Callable, fallback: str = "error", cache_size: int = 8):
        if fallback not in ("error", "eager"):
            raise ValueError(f"compile: fallback must be 'error' or 'eager', got {fallback!r}")
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        if int(cache_size) < 1:
            raise ValueError(f"compile: cache_size must be at least 1, got {cache_size}")
        functools.update_wrapper(self, fn, updated=())
        self.fn = fn
        self.fallback = fallback
        self.cache_size = int(cache_size)
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._count = 0  # traces in the cache
        self._last: tuple | None = None  # (key, entries) of the last call that replayed
        self._eager_reason: str | None = None
        self._lock = threading.Lock()
        self.stats = {"traces": 0, "replays": 0, "eager": 0}

    @property
    def _name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # as a method decorator: bind like a function (self becomes an argument, guarded by
        # identity)
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __repr__(self) -> str:
        return f"<autograd.compile of {self._name}: {len(self._cache)} traces cached>"

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        st = state
        if self._eager_reason is not None or st.capture is not None or st.anomaly:
            # eager-only, or called inside another trace (then its kernels are that trace's),
            # or under detect_anomaly (which needs the graph)
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        # The usual call: tensors only. Its key is built in C (attrgetter) and compared with
        # the last call's before any hashing; anything else is flattened.
        key = None
        if not kwargs:
            try:
                key = (tuple(map(_argkey, args)), _NO_KWARGS, st.grad_enabled, id(st.k))
            except AttributeError:
                pass
        last = self._last
        if key is not None and last is not None and key == last[0]:
            values = args
            entry = None
            for e in last[1]:
                if e.guard.holds():
                    entry = e
                    break
        else:
            if key is None or (args and not all(isinstance(a, _core.TensorBase) for a in args)):
                leaves: list = []
                key = (_flatten(args, leaves, "args"),
                       _flatten(kwargs, leaves, "kwargs") if kwargs else _NO_KWARGS,
                       st.grad_enabled, id(st.k))
                values = [v for _, v in leaves]
            else:
                values = args
            entry = self._lookup(key)
        if entry is None:
            return self._trace(key, values, args, kwargs)
        self.stats["replays"] += 1
        trace = entry.trace
        with entry.lock:
            vals = trace.template.copy()
            for (obj_slot, data_slot), v in zip(entry.arg_slots, values):
                if obj_slot >= 0:
                    vals[obj_slot] = v
                    vals[data_slot] = v._data
                else:
                    vals[data_slot] = v
            entry.run(vals)
            spec = entry.out_spec
            if spec[0] == "C":
                return spec[1]
            return _build_outputs(spec, vals, trace.reused)

    def _lookup(self, key: Any) -> _Entry | None:
        entries = self._cache.get(key)
        if not entries:
            return None
        for entry in entries:
            if entry.guard.holds():
                if entries[0] is not entry:  # most recently used first (checked first)
                    with self._lock:
                        if entry in entries:
                            entries.remove(entry)
                            entries.insert(0, entry)
                self._cache.move_to_end(key)
                self._last = (key, entries)  # one object: threads read key and entries together
                return entry
        return None

    def _why(self, key: Any) -> str:
        if not self._cache:
            return "first call"
        for old_key, entries in reversed(self._cache.items()):
            if old_key == key:
                for e in entries:  # most recently used first: what changed since it ran
                    d = e.guard.explain()
                    if d is not None:
                        return d
        last = next(reversed(self._cache))
        names = ("arguments", "keyword arguments", "grad mode", "kernel provider")
        for i, (a, b) in enumerate(zip(last, key)):
            if a != b:
                if i == 2:
                    return f"grad mode {'on' if a else 'off'} -> {'on' if b else 'off'}"
                if i == 3:
                    return "the kernel provider changed (backend.use)"
                return _describe(a, b, names[i]) or names[i]
        return "guards differ"

    def _trace(self, key: Any, values: Any, args: tuple, kwargs: dict) -> Any:
        # (kept lean: this runs once per fresh step, where its cost is counted in eager steps)
        logging_on = log.isEnabledFor(logging.INFO)
        why = self._why(key) if logging_on else ""  # (only logged)
        base = state.k
        tracer = Tracer(base, self._name, self.fallback == "error")
        arg_slots = []
        for v in values:
            if isinstance(v, _core.TensorBase):
                arg_slots.append(tracer.input_tensor(v))
            else:
                arg_slots.append((-1, tracer.input_array(v)))
        state.k = recording(base)
        state.capture = tracer
        try:
            result = self.fn(*args, **kwargs)
        finally:
            state.k = base
            state.capture = None
        self.stats["traces"] += 1
        if tracer.host_reads:
            self._eager_reason = "; ".join(tracer.host_reads)
            warnings.warn(f"autograd.compile: {self._name} runs eagerly (fallback='eager'): "
                          f"{self._eager_reason}", RuntimeWarning, stacklevel=3)
            return result
        # The events are mapped to the tape at the first replay (a step called once pays for
        # recording only); the result is kept as the arrays it holds now, and how to rebuild
        # it is worked out then.
        trace = Trace(None, tracer.nslots, tracer.native, None, tracer)
        # every module whose forward ran (the guard walks their submodules)
        entry = _Entry(trace, list(tracer.modules.values()), arg_slots)
        entry_ref = weakref.ref(entry)
        trace.on_materialize = functools.partial(_materialized, entry_ref, _raw_output(result))
        trace.on_generate = functools.partial(_generated, entry_ref)
        evicted = ""
        with self._lock:
            self._last = None
            cache = self._cache
            if not cache:  # the first trace (or the first since clear_cache)
                cache[key] = [entry]
                self._count = 1
            else:
                cache.setdefault(key, []).insert(0, entry)  # most recently used first
                cache.move_to_end(key)
                self._count += 1
            total = self._count
            while total > self.cache_size:
                old_key, old = next(iter(self._cache.items()))
                old.pop()
                if not old:
                    del self._cache[old_key]
                total -= 1
                evicted = f"; cache full ({self.cache_size}), dropped the least recent trace"
            self._count = total
        if logging_on:
            verb = "tracing" if why == "first call" else "retracing"
            kernels, others = tracer.recorded()  # (counted without mapping the events)
            log.info(f"{verb} {self._name} ({why}): {kernels} kernel calls and {others} "
                     f"other steps recorded{evicted}")
        return result

    def clear_cache(self) -> None:
        """Forget every trace (the next call traces again)."""
        with self._lock:
            self._cache.clear()
            self._count = 0
            self._last = None


def _raw_output(result: Any) -> Any:
    """The function's result with each tensor replaced by the array it holds now (mapped to
    the trace by :func:`_output_spec` later)."""
    if result is None:
        return _NONE_OUT
    if isinstance(result, _core.TensorBase):
        return ("T", result._data)
    if isinstance(result, np.ndarray):
        return ("A", result)
    if isinstance(result, (tuple, list)):
        return ("S", type(result), [_raw_output(r) for r in result])
    if isinstance(result, dict):
        return ("D", [(k, _raw_output(v)) for k, v in result.items()])
    return ("C", result)


_NONE_OUT = ("C", None)


def _output_spec(raw: Any, tracer: Tracer) -> Any:
    """How to rebuild the function's result at replay (tensors as fresh tensors), from
    :func:`_raw_output`."""
    kind = raw[0]
    if kind == "T" or kind == "A":
        return (kind, tracer.array_item(raw[1]))
    if kind == "S":
        return ("S", raw[1], [_output_spec(r, tracer) for r in raw[2]])
    if kind == "D":
        return ("D", [(k, _output_spec(v, tracer)) for k, v in raw[1]])
    return raw


def _build_outputs(spec: Any, vals: list, reused: set) -> Any:
    kind = spec[0]
    if kind == "T" or kind == "A":
        item = spec[1]
        a = _resolve(item, vals)
        if item[0] != _SLOT or a.base is not None or item[1] in reused:
            a = a.copy()  # a constant, a view or an alias: the caller gets its own copy
        return _core.wrap(a, None) if kind == "T" else a
    if kind == "S":
        seq = [_build_outputs(s, vals, reused) for s in spec[2]]
        return seq if spec[1] is list else spec[1](seq)
    if kind == "D":
        return {k: _build_outputs(s, vals, reused) for k, s in spec[1]}
    return spec[1]


def compile(fn: Callable | None = None, *, fallback: str = "error",
            cache_size: int = 8) -> Any:
    """Capture a step: trace ``fn`` on its first call, replay the recording afterwards.

    Usable as ``@autograd.compile``, ``@autograd.compile(fallback="eager")`` or
    ``autograd.compile(fn)``. ``fn`` takes tensors (and Python numbers, modules, optimizers)
    and may run a forward pass, ``backward()``, ``optimizer.step()`` and ``zero_grad()``; it
    returns tensors (fresh at every call), or structures of them.

    The first call with given guards (argument shapes, dtypes, ``requires_grad``, Python number
    values, grad mode, backend, each called module's train/eval mode and parameters) runs
    eagerly and records every kernel call; later matching calls replay the record without
    building a graph. Learning rates and every optimizer hyper-parameter, Adam's moments and step,
    BatchNorm running statistics, dropout masks (same generator sequence as eager) and gradient
    clipping stay live. Reading a value on the Python side (``.item()``, ``.numpy()``,
    ``bool(t)``, an ``if`` on a tensor) raises :class:`CompileError` while tracing, naming the
    op and the line; ``fallback="eager"`` runs such a function eagerly instead, with one warning.
    At most ``cache_size`` traces are kept (least recently used dropped).
    ``AUTOGRAD_LOG=compile`` logs every trace and why it happened.
    """
    if fn is None:
        return lambda f: Compiled(f, fallback, cache_size)
    return Compiled(fn, fallback, cache_size)
