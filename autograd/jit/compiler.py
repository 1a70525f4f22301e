"""``autograd.compile``: trace a step once, replay it while its guards hold.

The first call with a new *guard key* runs ``fn`` eagerly under a :class:`~.trace.Tracer` (so it
returns exactly what eager code returns) and keeps the recorded :class:`~.trace.Trace`. Later
calls whose guards match replay the trace: inputs go into their slots, the tape runs, outputs
come back as fresh tensors. Guards: the structure of the arguments, each tensor's shape, dtype
and ``requires_grad``, the value of each Python number, grad mode, the kernel provider, and for
every module the step called: its train/eval mode, its parameters and buffers (identity,
storage, ``requires_grad``). A mismatch traces again, into a small LRU cache (``cache_size``),
so a last partial batch costs one extra trace, not one per epoch. ``AUTOGRAD_LOG=compile``
prints why each retrace happened.
"""
from __future__ import annotations

import collections
import functools
import logging
import os
import threading
import warnings
from typing import Any, Callable

import numpy as np

from ..grad_mode import state
from ..hotpath import core as _core
from .trace import _SLOT, CompileError, Trace, Tracer, _resolve, recording

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


def _all_modules(modules: list) -> list:
    """Every module a step called and their submodules, each once."""
    seen: dict[int, Any] = {}
    for m in modules:
        if id(m) in seen:  # a child of a module already walked
            continue
        for sub in m.modules():
            seen.setdefault(id(sub), sub)
    return list(seen.values())


def _plain(args: tuple, leaves: list) -> bool:
    """True (and the args appended to leaves) when every argument is a Tensor."""
    for a in args:
        if not isinstance(a, _core.TensorBase):
            del leaves[:]
            return False
        leaves.append(("", a))
    return True


def _module_state(modules: list) -> tuple:
    """What a trace assumed about each module it called: mode, parameters, buffers (the slow,
    descriptive form, for explaining a retrace)."""
    out = []
    for sub in modules:
        params = tuple((id(p), id(p._data), p._requires_grad)
                       for p in sub._parameters.values() if p is not None)
        bufs = tuple(id(b._data) for b in sub._buffers.values() if b is not None)
        out.append((id(sub), sub.training, params, bufs))
    return tuple(out)


class _ModuleGuard:
    """The module part of a trace's guards, checked in one pass at each call: every module's
    train flag and parameter/buffer count, every parameter's and buffer's object, storage and
    ``requires_grad``."""

    __slots__ = ("modules", "flags", "tensors")

    def __init__(self, modules: list):
        self.modules = modules
        self.flags = [(m, m.training, m._parameters, len(m._parameters), m._buffers,
                       len(m._buffers)) for m in modules]
        tensors = []
        for m in modules:
            for name, p in m._parameters.items():
                tensors.append((m._parameters, name, p, None if p is None else p._data,
                                None if p is None else p._requires_grad))
            for name, b in m._buffers.items():
                tensors.append((m._buffers, name, b, None if b is None else b._data, None))
        self.tensors = tensors

    def holds(self) -> bool:
        for m, training, params, n_params, bufs, n_bufs in self.flags:
            if m.training is not training or len(params) != n_params or len(bufs) != n_bufs:
                return False
        for table, name, t, data, rg in self.tensors:
            u = table.get(name)
            if u is not t:
                return False
            if t is not None and (t._data is not data or (rg is not None
                                                          and t._requires_grad is not rg)):
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
    if isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new):
        for a, b in zip(old, new):
            d = _describe(a, b, path)
            if d is not None:
                return d
    return f"{path or 'value'}: {old!r} -> {new!r}"


class _Entry:
    __slots__ = ("trace", "modules", "mstate", "arg_slots", "out_spec", "out_tree",
                 "nslots", "guard", "lock")

    def __init__(self, trace: Trace, modules: list, mstate: tuple, arg_slots: list,
                 out_spec: Any, nslots: int):
        self.trace = trace
        self.modules = modules
        self.mstate = mstate
        self.arg_slots = arg_slots
        self.out_spec = out_spec
        self.nslots = nslots
        self.guard = _ModuleGuard(modules)
        # native segments write buffers shared by every replay of this trace: one at a time
        self.lock = threading.Lock()


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
        self._last_key: Any = None
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
        if (self._eager_reason is not None or state.capture is not None or state.anomaly):
            # eager-only, or called inside another trace (then its kernels are that trace's),
            # or under detect_anomaly (which needs the graph)
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        leaves: list = []
        key = (_flatten(args, leaves, "args") if kwargs or not _plain(args, leaves)
               else tuple(("T", t._data.shape, t._data.dtype.str, t._requires_grad)
                          for t in args),
               _flatten(kwargs, leaves, "kwargs") if kwargs else ("dict", ()),
               state.grad_enabled, id(state.k))
        entry = self._lookup(key)
        if entry is not None:
            self.stats["replays"] += 1
            return self._replay(entry, leaves)
        return self._trace(key, leaves, args, kwargs)

    def _lookup(self, key: Any) -> _Entry | None:
        entries = self._cache.get(key)
        if not entries:
            return None
        for entry in entries:
            if entry.guard.holds():
                self._cache.move_to_end(key)
                return entry
        return None

    def _replay(self, entry: _Entry, leaves: list) -> Any:
        vals: list = [None] * entry.nslots
        for (obj_slot, data_slot), (_, v) in zip(entry.arg_slots, leaves):
            if obj_slot >= 0:
                vals[obj_slot] = v
                vals[data_slot] = v._data
            else:
                vals[data_slot] = v
        with entry.lock:
            entry.trace.replay(vals)
            return _build_outputs(entry.out_spec, vals, entry.trace.reused)

    def _why(self, key: Any) -> str:
        if not self._cache:
            return "first call"
        for old_key, entries in reversed(self._cache.items()):
            if old_key == key:
                for e in entries:
                    now = _module_state(e.modules)
                    for old, new in zip(e.mstate, now):
                        if old[1] != new[1]:
                            return (f"module {type(_find(e.modules, old[0])).__name__} switched "
                                    f"to {'train' if new[1] else 'eval'} mode")
                        if old[2:] != new[2:]:
                            return (f"the parameters or buffers of module "
                                    f"{type(_find(e.modules, old[0])).__name__} changed "
                                    f"(added, removed, replaced or requires_grad flipped)")
                    if len(now) != len(e.mstate):
                        return "a module gained or lost submodules"
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

    def _trace(self, key: Any, leaves: list, args: tuple, kwargs: dict) -> Any:
        why = self._why(key)
        tracer = Tracer(state.k, self._name, strict=self.fallback == "error")
        arg_slots = []
        for _, v in leaves:
            if isinstance(v, _core.TensorBase):
                arg_slots.append(tracer.input_tensor(v))
            else:
                arg_slots.append((-1, tracer.input_array(v)))
        provider = recording(state.k)
        previous_k = state.k
        state.k = provider
        state.capture = tracer
        try:
            result = self.fn(*args, **kwargs)
        finally:
            state.k = previous_k
            state.capture = None
        self.stats["traces"] += 1
        if tracer.host_reads:
            self._eager_reason = "; ".join(tracer.host_reads)
            warnings.warn(f"autograd.compile: {self._name} runs eagerly (fallback='eager'): "
                          f"{self._eager_reason}", RuntimeWarning, stacklevel=3)
            return result
        out_spec = _output_spec(result, tracer)
        trace = tracer.finish()
        # every module whose forward ran, and their submodules (a container may run its
        # children without calling them, e.g. Sequential's fused Linear + activation)
        modules = _all_modules(list(tracer.modules.values()))
        entry = _Entry(trace, modules, _module_state(modules), arg_slots, out_spec,
                       tracer.nslots)
        with self._lock:
            self._cache.setdefault(key, []).append(entry)
            self._cache.move_to_end(key)
            total = sum(len(v) for v in self._cache.values())
            evicted = ""
            while total > self.cache_size:
                old_key, old = next(iter(self._cache.items()))
                old.pop(0)
                if not old:
                    del self._cache[old_key]
                total -= 1
                evicted = f"; cache full ({self.cache_size}), dropped the least recent trace"
        if log.isEnabledFor(logging.INFO):
            verb = "tracing" if why == "first call" else "retracing"
            log.info(f"{verb} {self._name} ({why}): {trace.kernel_steps} kernel steps, "
                     f"{trace.live_steps} live steps, {tracer.nslots} buffers"
                     f"{evicted}")
        return result

    def clear_cache(self) -> None:
        """Forget every trace (the next call traces again)."""
        with self._lock:
            self._cache.clear()


def _find(modules: list, ident: int) -> Any:
    for m in modules:
        if id(m) == ident:
            return m
    return None


def _output_spec(result: Any, tracer: Tracer) -> Any:
    """How to rebuild the function's result at replay (tensors as fresh tensors)."""
    if isinstance(result, _core.TensorBase):
        item = tracer.array_item(result._data)
        return ("T", item)
    if isinstance(result, np.ndarray):
        return ("A", tracer.array_item(result))
    if isinstance(result, (tuple, list)):
        return ("S", type(result), [_output_spec(r, tracer) for r in result])
    if isinstance(result, dict):
        return ("D", [(k, _output_spec(v, tracer)) for k, v in result.items()])
    return ("C", result)


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
