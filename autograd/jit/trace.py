"""Recording one run of a step and replaying it: the tape, its buffers and the Python replay.

While a step is traced, this thread's kernel provider (``grad_mode.state.k``) is a
:class:`RecordingProvider`: it forwards every kernel call to the real provider and hands
``(kernel, arguments, results)`` to the :class:`Tracer`, which appends it to its events as it
is (recording costs a tuple per call). When the trace is first replayed (``Trace.materialize``;
earlier where tracing itself needs it) the events are mapped, in order: every array seen gets
a *source*:

* a slot of the trace's value table (``vals``): the step's inputs, every kernel result, every
  array a live call produced, and roots of views;
* a view of such a slot (rebuilt at replay from the slot's memory, same offset and strides);
* a constant: an array that existed before the step and keeps its identity (a parameter, an
  optimizer moment, a running statistic, the ones that seed ``backward``), held by reference,
  so in-place updates of it are seen at every replay.

Calls marked :func:`autograd.capture.live` (optimizer ``step``/``zero_grad``, BatchNorm's
running update, dropout masks, clipping, leaf-gradient accumulation) are recorded whole and run
again at replay with their arguments resolved from the table; anything they make that later
steps read (a mask, a leaf's new ``.grad``) gets a slot. The tape is a list of steps run in
order by :meth:`Trace.replay`, with no graph, no Node, no Tensor per op.
"""
from __future__ import annotations

import os
import sys
import types
from typing import Any, Callable

import numpy as np

from .. import errors as _errors
from ..backend import numpy_kernels
from ..grad_mode import state
from ..hotpath import core as _core
from . import fast as _fast

__all__ = ["KERNELS", "RecordingProvider", "Tracer", "Trace", "CompileError"]

#: The kernel API: the public functions of numpy_kernels (the native provider has the same).
KERNELS = frozenset(
    n for n, v in vars(numpy_kernels).items()
    if not n.startswith("_") and isinstance(v, types.FunctionType)
    and v.__module__ == numpy_kernels.__name__)

# The directory of the package's Python sources (from errors.py, always a .py: this module may
# be the compiled twin, installed elsewhere in an editable install), whose frames user_frame skips.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(_errors.__file__)) + os.sep
_ndarray = np.ndarray
_wrap = _core.wrap
_accumulate_now = _core._accumulate_now


_PLAIN = frozenset({str, float, int, bool, type(None)})


class CompileError(RuntimeError):
    """A compiled step did something a trace cannot capture (named, with the user's line)."""


# Argument items (how one argument is rebuilt at replay), as (kind, payload):
_SLOT = 0     # vals[payload]
_CONST = 1    # payload itself (a Python value, a constant array, an object)
_SEQ = 2      # payload = (type, items): a list/tuple of items
_VIEW = 3     # payload = (root item, offset, shape, strides, writeable): a view of root
_BASE = 4     # vals[payload].base: the memory a kernel's view result lives in
_TENSOR = 5   # payload = array item: a fresh Tensor around it (live calls only)
_DICT = 6     # payload = (keys, items)


def _resolve(item: tuple, vals: list) -> Any:
    kind, p = item
    if kind == _SLOT:
        return vals[p]
    if kind == _CONST:
        return p
    if kind == _SEQ:
        typ, items = p
        seq = [_resolve(i, vals) for i in items]
        return seq if typ is list else typ(seq)
    if kind == _VIEW:
        root, offset, shape, strides, writeable = p
        base = _resolve(root, vals)
        out = np.ndarray(shape, base.dtype, buffer=base, offset=offset, strides=strides)
        if not writeable:
            out.flags.writeable = False
        return out
    if kind == _BASE:
        return vals[p].base
    if kind == _TENSOR:
        return _wrap(_resolve(p, vals), None)
    if kind == _DICT:
        keys, items = p
        return {k: _resolve(i, vals) for k, i in zip(keys, items)}
    raise AssertionError(kind)


def _store(spec: Any, out: Any, vals: list) -> None:
    """Put a call's results into their slots (spec from Tracer._outputs)."""
    if spec is None:
        return
    if type(spec) is int:
        vals[spec] = out
        return
    if spec[0] == "T":  # a Tensor result: its array
        vals[spec[1]] = out._data
        return
    if spec[0] == "V":  # a Python value the trace branched on
        if out != spec[1]:
            raise CompileError(
                f"autograd.compile: {spec[2]} returned {out!r} at this call but {spec[1]!r} "
                f"when the step was traced, and the recorded step depends on it; call "
                f"clear_cache() to trace again, or compile with fallback=\"eager\"")
        return
    for s, o in zip(spec[1], out):
        _store(s, o, vals)


def user_frame() -> tuple[str, int, str]:
    """(file, line, source) of the innermost frame outside the autograd package."""
    # (frame 0: this function's own in the pure twin, skipped below as the package's; the
    # compiled twin has no frame of its own, so frame 1 could already be past the user's)
    f = sys._getframe(0)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_PACKAGE_DIR):
        f = f.f_back
    if f is None:
        return ("<unknown>", 0, "")
    import linecache
    return (f.f_code.co_filename, f.f_lineno,
            linecache.getline(f.f_code.co_filename, f.f_lineno).strip())


class RecordingProvider:
    """The kernel provider installed for a tracing thread: each kernel forwards to ``base``
    and reports the call to the thread's tracer (``state.capture``); other attributes are the
    base provider's own. One per base provider, made once (:func:`recording`)."""

    def __init__(self, base: Any):
        self._base = base

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._base, name)
        if name in KERNELS:
            fn = attr

            def kernel(*args: Any, **kwargs: Any) -> Any:
                # (fn(*args) when there are no keywords, the usual case: passing an empty
                # **kwargs on costs ~0.15 us a kernel call while tracing)
                out = fn(*args, **kwargs) if kwargs else fn(*args)
                tracer = state.capture
                if tracer is not None and not tracer.paused:
                    # a raw record: mapped to slots when the trace is first replayed
                    tracer.events.append((_EV_KERNEL, name, fn, args, kwargs, out, False))
                return out

            kernel.__name__ = name
            attr = kernel
        self.__dict__[name] = attr  # later lookups skip __getattr__
        return attr


def _native_info(base: Any) -> Any:
    """The plan executor of ``base`` (NativeInfo), or None (the NumPy provider, or a native core
    without one)."""
    info = _native_infos.get(id(base), False)
    if info is False:
        from .native_plan import NativeInfo
        info = _native_infos[id(base)] = NativeInfo.of(base)
    return info


_native_infos: dict[int, Any] = {}


def _log_native(exc: BaseException) -> None:
    import logging
    logging.getLogger("autograd.compile").info(f"native plan not used: {exc}")


_providers: dict[int, RecordingProvider] = {}


def recording(base: Any) -> RecordingProvider:
    """The recording provider over ``base`` (kept: its kernel wrappers are made once)."""
    provider = _providers.get(id(base))
    if provider is None or provider._base is not base:
        provider = _providers[id(base)] = RecordingProvider(base)
    return provider


# Raw events (Tracer.events): what a traced run did, kept with as little work as possible and
# turned into tape steps by Tracer.flush (at the first replay, or before a step that needs the
# mapping of arrays to slots while tracing). Each holds every object it refers to, so ids stay
# unique until it is processed; whatever may change after the event (a tensor's array, a
# leaf's .grad) is copied into it when it happens.
_EV_KERNEL = 0   # (tag, name, fn, args, kwargs, out, scalar): a recorded kernel call
_EV_ACC = 1      # (tag, leaf, leaf's array, gradient array, leaf's .grad array after)
_EV_ASARRAY = 2  # (tag, scalar, array): wrap() made an array of a kernel's NumPy scalar
_EV_BUILD = 3    # (tag, build, args): the tape step is build(tracer, *args) (reads no mapping)
_EV_HANDLERS: dict = {}  # tag -> Tracer method (filled below the class)


class Tracer:
    """Records one run of a step (installed as ``grad_mode.state.capture``).

    Recording is cheap: a kernel call, a gradient accumulation or a ready tape step is
    appended to ``events`` as it happens. :meth:`flush` maps them to slots and tape steps in
    the same order, so the result is the same as mapping each at once; the trace flushes when
    first replayed, and recording flushes first where it must read the mapping (a generic live
    call)."""

    __slots__ = ("base", "fn_name", "strict", "paused", "events", "steps", "nslots", "known",
                 "keep", "tensor_slots", "modules", "host_reads", "native", "meta",
                 "kernel_count")

    def __init__(self, base: Any, fn_name: str, strict: bool):
        self.base = base
        self.fn_name = fn_name
        self.strict = strict
        self.paused = 0
        self.events: list[tuple] = []         # recorded, not yet mapped (see flush)
        self.steps: list[tuple] = []          # the tape so far (events flushed)
        self.nslots = 0
        self.known: dict[int, tuple] = {}   # id(array) -> item
        self.keep: list[Any] = []            # everything seen, so no id is reused
        self.tensor_slots: dict[int, int] = {}  # id(arg Tensor) -> slot of the object
        self.modules: dict[int, Any] = {}
        self.host_reads: list[str] = []      # fallback mode: why this function stays eager
        self.native = _native_info(base)      # the plan executor, on the native backend
        self.meta: dict[int, tuple] = {}      # slot -> (shape, dtype) of a plain array
        self.kernel_count = 0

    # ------------------------------------------------------------------ slots and sources
    def new_slot(self) -> int:
        self.nslots += 1
        return self.nslots - 1

    def register(self, a: Any, item: tuple) -> None:
        self.keep.append(a)
        self.known[id(a)] = item

    def input_array(self, a: np.ndarray) -> int:
        s = self.new_slot()
        self.register(a, (_SLOT, s))
        if type(a) is np.ndarray:
            self.meta[s] = (a.shape, a.dtype)
        return s

    def input_tensor(self, t: Any) -> tuple[int, int]:
        """Slots for an argument Tensor object and its array."""
        s = self.new_slot()
        self.keep.append(t)
        self.tensor_slots[id(t)] = s
        if id(t._data) in self.known:  # the same array passed twice: one slot
            return s, self.known[id(t._data)][1]
        return s, self.input_array(t._data)

    def array_item(self, a: np.ndarray) -> tuple:
        item = self.known.get(id(a))
        if item is not None:
            return item
        base = a.base
        if isinstance(base, _ndarray):
            root = self.known.get(id(base))
            if root is None and isinstance(base.base, _ndarray):
                root = self.known.get(id(base.base))
                base = base.base
            if root is not None:
                offset = (a.__array_interface__["data"][0]
                          - base.__array_interface__["data"][0])
                item = (_VIEW, (root, offset, a.shape, a.strides, bool(a.flags.writeable)))
                self.register(a, item)
                return item
        # An array from before the step (a parameter, a moment, a constant): by reference.
        item = (_CONST, a)
        self.register(a, item)
        return item

    def value_item(self, v: Any, tensors: bool = False) -> tuple:
        if isinstance(v, _ndarray):
            return self.array_item(v)
        if isinstance(v, np.generic):  # a ufunc's 0-d result is a NumPy scalar
            item = self.known.get(id(v))
            if item is not None:
                return item
            self.keep.append(v)
            return (_CONST, v)
        if tensors and isinstance(v, _core.TensorBase):
            return self.tensor_item(v, v._data)
        if isinstance(v, (list, tuple)):
            items = [self.value_item(x, tensors) for x in v]
            if all(i[0] == _CONST for i in items):
                return (_CONST, v)
            return (_SEQ, (type(v), items))
        if isinstance(v, dict) and tensors:
            items = [self.value_item(x, tensors) for x in v.values()]
            if all(i[0] == _CONST for i in items):
                return (_CONST, v)
            return (_DICT, (list(v.keys()), items))
        return (_CONST, v)

    def tensor_item(self, v: Any, data: np.ndarray) -> tuple:
        """The item of Tensor ``v`` whose array was ``data`` when the event happened."""
        s = self.tensor_slots.get(id(v))
        if s is not None:
            return (_SLOT, s)
        item = self.known.get(id(data))
        if item is None and isinstance(data.base, _ndarray):
            item = self.array_item(data)
        if item is not None and item[0] != _CONST:
            return (_TENSOR, item)
        self.keep.append(v)
        return (_CONST, v)

    def outputs(self, out: Any) -> Any:
        """Slots for a call's results; the spec _store uses at replay. (new_slot and register
        written out: this runs for every result of every kernel call when a trace is mapped.)"""
        if isinstance(out, _ndarray):
            known = self.known
            item = known.get(id(out))
            if item is not None and item[0] == _CONST:
                # a kernel handed back a constant (sum_to of a same-shape array): keep it so
                return None
            s = self.nslots
            self.nslots = s + 1
            keep = self.keep
            keep.append(out)
            known[id(out)] = (_SLOT, s)
            base = out.base
            if base is None:
                if type(out) is _ndarray:
                    flags = out.flags
                    if flags.c_contiguous and flags.writeable:
                        self.meta[s] = (out.shape, out.dtype)  # a fresh array: a plan may fill it
            elif isinstance(base, _ndarray) and id(base) not in known:
                keep.append(base)
                known[id(base)] = (_BASE, s)
            return s
        if isinstance(out, np.generic):
            s = self.new_slot()
            self.register(out, (_SLOT, s))
            return s
        if isinstance(out, (tuple, list)):
            specs = []
            for o in out:
                specs.append(self.outputs(o))
            for spec in specs:
                if spec is not None:
                    return ("S", specs)
            return None
        return None

    def tensor_output(self, t: Any) -> Any:
        if id(t) in self.tensor_slots or id(t._data) in self.known:
            return None
        s = self.new_slot()
        self.register(t._data, (_SLOT, s))
        self.keep.append(t)
        return ("T", s)

    # ------------------------------------------------------------------ events
    def recorded(self) -> tuple[int, int]:
        """(kernel calls, other steps) recorded so far, mapped or not."""
        kernels = (sum(1 for s in self.steps if s[0] == "k")
                   + sum(1 for e in self.events if e[0] == _EV_KERNEL))
        return kernels, len(self.steps) + len(self.events) - kernels

    def push(self, step: tuple) -> None:
        """Append a ready tape step (it reads no mapping), in order with the events."""
        self.events.append(step)

    def push_build(self, build: Callable, args: tuple) -> None:
        """Append a tape step made when the events are mapped, by ``build(tracer, *args)`` (work
        a step run only once should not pay; it reads no mapping), in order with the events."""
        self.events.append((_EV_BUILD, build, args))

    def flush(self) -> None:
        """Map the recorded events to slots and tape steps, in order."""
        events = self.events
        if not events:
            return
        self.events = []
        handlers = _EV_HANDLERS
        steps = self.steps
        for ev in events:
            tag = ev[0]
            if type(tag) is int:
                handlers[tag](self, ev)
            else:  # a ready step
                steps.append(ev)

    def _do_kernel(self, ev: tuple) -> None:
        _, name, fn, args, kwargs, out, scalar = ev
        self.kernel_count += 1
        # value_item with the common cases (arrays, plain attrs) written out: this runs for
        # every argument of every kernel call of a trace
        known = self.known
        a = []
        simple = not kwargs
        for x in args:
            t = type(x)
            if t is _ndarray:
                item = known.get(id(x)) or self.array_item(x)
            elif t in _PLAIN:
                item = (_CONST, x)
            else:
                item = self.value_item(x)
            if item[0] > _CONST:
                simple = False
            a.append(item)
        k = {key: self.value_item(v) for key, v in kwargs.items()} if kwargs else {}
        spec = self.outputs(out)
        # Whether the eager call ran native code is decided when the plan is built (third
        # replay), not here: the trace keeps this call's arguments until then.
        native = self.native
        route = (native is not None and name in native.names
                 and (True if native.exact.get(name) else (args, kwargs)))
        self.steps.append(("k", name, fn, tuple(a), k, spec, simple, scalar, route))

    def live_call(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        if self.paused:
            return fn(*args, **kwargs)
        if fn is _accumulate_now:
            # a leaf's gradient accumulation (every parameter, every backward): recorded
            # here, mapped by _do_acc, with the leaf's array and the .grad array it leaves
            t, g = args
            data = t._data
            if type(g) is _ndarray:  # wraps or adds arrays: no kernel call to keep out
                fn(t, g)
            else:  # a NumPy scalar: wrap() would record its asarray
                self.paused += 1
                try:
                    fn(t, g)
                finally:
                    self.paused -= 1
            self.events.append((_EV_ACC, t, data, g, t.grad._data))
            return None
        try:
            fast = (_fast._table or _fast.table()).get(fn)
        except TypeError:  # (an unhashable callable: the generic path)
            fast = None
        if fast is not None:
            return fast(self, fn, args, kwargs)
        self.flush()  # the generic path maps its arguments now
        # Iterators (model.parameters()) would be spent at replay: take them as lists.
        args = tuple(list(a) if isinstance(a, types.GeneratorType) else a for a in args)
        a = [self.value_item(x, tensors=True) for x in args]
        k = {key: self.value_item(v, tensors=True) for key, v in kwargs.items()}
        watched = self._watch(args, kwargs)
        before = [(t, id(t._data), t.grad, None if t.grad is None else id(t.grad._data))
                  for t in watched]
        self.paused += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            self.paused -= 1
        spec = None
        if isinstance(out, _core.TensorBase):
            spec = self.tensor_output(out)
        elif isinstance(out, (bool, int, float, str)):
            # Python code after the call may have branched on this value: replaying the same
            # kernels is right only while it stays the same
            spec = ("V", out, getattr(fn, "__qualname__", repr(fn)))
        elif out is not None:
            spec = self.outputs(out)
        post = []
        for idx, (t, data_id, grad, grad_data_id) in enumerate(before):
            if id(t._data) != data_id:
                s = self.new_slot()
                self.register(t._data, (_SLOT, s))
                post.append((idx, "data", s))
            g = t.grad
            if g is not grad or (g is not None and id(g._data) != grad_data_id):
                s = self.new_slot()
                if g is not None:
                    self.register(g._data, (_SLOT, s))
                    self.keep.append(g)
                post.append((idx, "grad", s))
        witems = [self.value_item(t, tensors=True) for t in watched] if post else []
        self.steps.append(("l", fn, tuple(a), k, spec, tuple(post), tuple(witems)))
        return out

    def call_paused(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        """``fn(*args, **kwargs)``, without recording the kernels it calls."""
        self.paused += 1
        try:
            return fn(*args, **kwargs)
        finally:
            self.paused -= 1

    def generic_live_replay(self, fn: Callable, args: tuple, kwargs: dict) -> None:
        """Record a live call that already ran and changes no array later steps read (an
        optimizer's step, zero_grad): replayed by calling it again."""
        self.flush()
        a = tuple(self.value_item(x, tensors=True) for x in args)
        k = {key: self.value_item(v, tensors=True) for key, v in kwargs.items()}
        self.steps.append(("l", fn, a, k, None, (), ()))

    def _watch(self, args: tuple, kwargs: dict) -> list:
        out = []
        for v in list(args) + list(kwargs.values()):
            if isinstance(v, _core.TensorBase):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                out.extend(x for x in v if isinstance(x, _core.TensorBase))
        return out

    def asarray(self, v: Any) -> np.ndarray:
        """``np.asarray`` of a kernel's scalar result (``wrap`` makes every result an array),
        recorded as a step when the scalar came from the trace."""
        out = np.asarray(v)
        if not self.paused:
            self.events.append((_EV_ASARRAY, v, out))
        return out

    def _do_asarray(self, ev: tuple) -> None:
        _, v, out = ev
        item = self.known.get(id(v))
        if item is not None:
            s = self.new_slot()
            self.register(out, (_SLOT, s))
            self.steps.append(("k", "asarray", np.asarray, (item,), {}, s, True, False, False))

    def _do_build(self, ev: tuple) -> None:
        self.steps.append(ev[1](self, *ev[2]))

    def _do_acc(self, ev: tuple) -> None:
        _, t, data, g, grad_data = ev
        t_item = self.tensor_item(t, data)
        g_item = self.known.get(id(g)) if type(g) is _ndarray else None
        if g_item is None:
            g_item = self.value_item(g)
        slot = self.nslots
        self.nslots = slot + 1
        self.keep.append(grad_data)
        self.known[id(grad_data)] = (_SLOT, slot)
        self.steps.append(_fast.accumulate_step(t_item, g_item, slot))

    def host_read(self, op: str) -> None:
        if self.paused:
            return
        file, line, src = user_frame()
        where = f"{file}:{line}" + (f": `{src}`" if src else "")
        if not self.strict:
            self.host_reads.append(f"{op} at {where}")
            return
        raise CompileError(
            f"autograd.compile: {op} reads a tensor's value on the Python side while tracing "
            f"{self.fn_name!r} ({where}); a compiled step is recorded once and replayed "
            f"without running Python, so it cannot depend on values it computes. Restructure: "
            f"return the tensor from the compiled function and read it outside (e.g. "
            f"`loss = step(x, y); print(loss.item())`), express branches on tensor values "
            f"with tensor ops (autograd.where, clip, maximum), or pass "
            f"compile(fn, fallback=\"eager\") to run this function eagerly")

    def saw_module(self, module: Any) -> None:
        self.modules.setdefault(id(module), module)

    def finish(self, lazy: bool = False) -> "Trace":
        """The trace. ``lazy``: its events are mapped when it is first replayed (or a
        mapped attribute is read), so a step run once pays for recording only."""
        if lazy:
            return Trace(None, self.nslots, self.native, None, tracer=self)
        self.flush()
        return Trace(self.steps, self.nslots, self.native, self.meta)


_EV_HANDLERS.update({_EV_KERNEL: Tracer._do_kernel, _EV_ACC: Tracer._do_acc,
                     _EV_ASARRAY: Tracer._do_asarray, _EV_BUILD: Tracer._do_build})


_CODE: dict = {}


def compiled_code(source: str, filename: str) -> Any:
    """``compile(source, filename, "exec")``, kept for the next identical source. Generated
    replays and guards name their objects by position (their values are bound as closure
    variables: :func:`closure_maker`), so steps of the same structure (a model rebuilt, a Keras
    train and test step) share one code object and skip the compiler (~100-200 us a
    function)."""
    code = _CODE.get((source, filename))
    if code is None:
        if len(_CODE) >= 256:  # bounded: drop the oldest
            del _CODE[next(iter(_CODE))]
        code = _CODE[(source, filename)] = compile(source, filename, "exec")
    return code


def closure_maker(source: str, name: str, names: tuple, filename: str) -> Callable:
    """A function taking the values of ``names`` (positionally, in that order) and returning
    the function ``name`` defined by ``source`` (a module-level ``def``) with those names bound
    as closure variables (cells) rather than globals; kept for the next identical request.

    The code object is shared by every function of the same source, and so is what CPython's
    specialising interpreter learns about it. A global read is specialised for one globals
    dict: with one namespace per function it missed whenever another function of the same code
    had run last (two same-shape compiled steps called in turn, a Keras train and test step,
    replayed ~25-40% slower, and each fresh step's first replays paid the misses until the code
    re-specialised). A cell read has no such check."""
    key = (source, names, filename)
    make = _MAKERS.get(key)
    if make is None:
        body = "\n".join("    " + line if line else line for line in source.split("\n"))
        src = f"def _make({', '.join(names)}):\n{body}\n    return {name}\n"
        ns: dict = {}
        exec(compiled_code(src, filename), ns)
        if len(_MAKERS) >= 256:  # bounded: drop the oldest
            del _MAKERS[next(iter(_MAKERS))]
        make = _MAKERS[key] = ns["_make"]
    return make


_MAKERS: dict = {}


def closure_function(source: str, name: str, env: dict, filename: str) -> Callable:
    """The function ``name`` of ``source`` with every name of ``env`` bound to its value as a
    closure variable (:func:`closure_maker`)."""
    if "len" not in env:  # the one builtin generated code calls (a global read otherwise)
        env["len"] = len
    # positionally: matching ~100 keyword arguments by name costs O(n^2) string compares
    return closure_maker(source, name, tuple(env), filename)(*env.values())


def _inline_segment(i: int, parts: dict, env: dict) -> list[str]:
    """Lines of generated replay code doing what a native segment's runner does (see
    native_plan._runner), without its loops and calls per accumulation."""
    env["_copyto"] = np.copyto
    env["_acc"] = _core._accumulate_now
    env[f"run{i}"] = parts["run"]
    env[f"sc{i}"] = parts["scalars"]
    lines = []
    for j, (s, buf) in enumerate(parts["ins"]):
        env[f"in{i}_{j}"] = buf
        lines.append(f"    _copyto(in{i}_{j}, vals[{s}])")
    accs, fused_accs = [], []
    grad_buffers = parts["grad_buffers"]
    for j, a in enumerate(parts["accs"]):
        if type(a) is tuple:
            leaf, gs, slot = a
            env[f"L{i}_{j}"] = leaf
            accs.append(f"_acc(L{i}_{j}, vals[{gs}])")
            accs.append(f"vals[{slot}] = L{i}_{j}.grad._data")
            if slot in grad_buffers:  # the update is fused: the template holds the buffer
                env[f"B{i}_{j}"] = grad_buffers[slot]
                fused_accs.append(f"_acc(L{i}_{j}, B{i}_{j})")
            else:
                fused_accs += accs[-2:]
        else:
            env[f"A{i}_{j}"] = a
            accs.append(f"A{i}_{j}(vals)")
            fused_accs.append(accs[-1])
    if "prepare" not in parts:
        return lines + [f"    run{i}(sc{i})"] + [f"    {a}" for a in accs]
    env[f"P{i}"], env[f"C{i}"] = parts["prepare"], parts["commit"]
    env[f"h{i}"] = parts["sc"]
    # the prepare runs before the copies, as in the runner (it reads no slot)
    source = parts["fused"].source
    if source is not None:  # written out here (fast.FusedUpdate.source)
        pre, commit = source(str(i), env)
        pre = ["    " + line for line in pre]
    else:
        pre = ["    try:", f"        _ok = P{i}(h{i})", "    except Exception:",
               "        _ok = False"]
        commit = [f"C{i}()"]
    env[f"U{i}"] = parts["unfused"]
    return (pre + lines + ["    if _ok:", f"        run{i}(sc{i})"]
            + [f"        {a}" for a in fused_accs] + [f"        {c}" for c in commit]
            + ["    else:", f"        U{i}(vals)"])


class Trace:
    """A recorded step: the tape and the size of its value table; :meth:`replay` runs it.

    Made from a :class:`Tracer` whose events are not yet mapped (``tracer``), it maps them at
    its first replay (or when ``steps``, ``nslots``-dependent or other mapped attributes are
    first read): ``template`` covers only the inputs' slots until then, and the first replay
    extends its value table."""

    # Defaults kept on the class, so a trace made at a first call sets only what it needs
    # (a step called once pays for recording, not for a replay's state):
    #: slots whose arrays are native buffers reused by every replay (outputs copy them)
    reused: frozenset | set = frozenset()
    prefill: tuple | list = ()
    # The first replays interpret the tape; the straight-line code is generated at the
    # third (generating costs several eager steps, which a step run once or twice, e.g. the
    # last partial batch, should not pay).
    _replays = 0
    #: called with the generated replay function when it is made (Compiled replays through it
    #: from then on, and generates its guard then too)
    on_generate: Callable[[Callable[[list], None]], None] | None = None
    #: called with the tracer when its events are mapped, before it is dropped; what it returns
    #: is kept as ``out_spec`` (Compiled: how to rebuild the step's result at a replay)
    on_materialize: Callable[[Tracer], Any] | None = None
    out_spec: Any = None

    def __init__(self, steps: list[tuple] | None, nslots: int, native: Any = None,
                 meta: dict | None = None, tracer: Tracer | None = None):
        self.native = native
        self._tracer = tracer
        if tracer is None:
            self._set(steps or [], nslots, meta)
        else:
            self.nslots = nslots
            #: what a replay's value table starts as: None, or for the slots native segments
            #: fill, their buffers (the same arrays at every replay, so no segment stores them
            #: per call)
            self.template: list = [None] * nslots

    def run(self, vals: list) -> None:
        """Run the tape on ``vals`` (a copy of ``template`` with the inputs in their slots).

        The first and second replays run here: the first maps the events (and widens
        ``vals`` to the full table), both interpret the tape. The third generates the replay
        function, which from then on is this trace's own ``run`` (an instance attribute). (A
        method of the class, not one stored on the trace at its first call: a bound method
        kept on its own object is a reference cycle, and a trace in a cycle outlives its last
        use until a garbage collection finds it, with the model and the recorded events,
        costing ~100-150 us in some later call.)"""
        if self._tracer is not None:
            self.materialize()
        if len(vals) < self.nslots:
            vals.extend([None] * (self.nslots - len(vals)))
        self._interpret(vals)

    def _set(self, steps: list[tuple], nslots: int, meta: dict | None) -> None:
        self.nslots = nslots
        self.steps = steps
        self.meta = meta or {}
        self.template = [None] * nslots
        self.kernel_steps = sum(1 for s in steps if s[0] == "k" or s[0] == "f" and s[2])
        self.live_steps = len(steps) - self.kernel_steps

    def materialize(self) -> None:
        """Map the tracer's events to the tape (once; nothing when already done)."""
        tracer = self._tracer
        if tracer is None:
            return
        tracer.flush()
        if self.on_materialize is not None:
            self.out_spec = self.on_materialize(tracer)
            self.on_materialize = None
        self._tracer = None
        self._set(tracer.steps, tracer.nslots, tracer.meta)

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes set by materialize (steps, meta, kernel_steps...)
        if not name.startswith("_") and self.__dict__.get("_tracer") is not None:
            self.materialize()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _generate(self) -> Callable[[list], None]:
        """The tape as one straight-line Python function: each simple kernel step is one line
        (a call on table entries and constants), so a replay pays no interpretation per step;
        the others call their own replay."""
        env: dict[str, Any] = {"_asarray": np.asarray, "_step": self._step}
        lines = ["def replay(vals):"]
        for i, step in enumerate(self.steps):
            if step[0] == "k" and step[6] and (step[5] is None or type(step[5]) is int
                                               or all(s is None or type(s) is int
                                                      for s in step[5][1])):
                name, fn, a, _, spec, _, scalar = step[1:8]
                env[f"f{i}"] = fn
                args = []
                for j, (kind, p) in enumerate(a):
                    if kind == _SLOT:
                        args.append(f"vals[{p}]")
                    else:
                        env[f"c{i}_{j}"] = p
                        args.append(f"c{i}_{j}")
                call = f"f{i}({', '.join(args)})"
                if scalar:
                    call = f"_asarray({call})"
                if spec is None:
                    lines.append(f"    {call}")
                elif type(spec) is int:
                    lines.append(f"    vals[{spec}] = {call}")
                else:
                    lines.append(f"    _o = {call}")
                    for j, s in enumerate(spec[1]):
                        if s is not None:
                            lines.append(f"    vals[{s}] = _o[{j}]")
            elif step[0] == "f" and getattr(step[1], "inline", None) is not None:
                lines += _inline_segment(i, step[1].inline, env)
            elif step[0] == "f":
                env[f"r{i}"] = step[1]
                lines.append(f"    r{i}(vals)")
            else:
                env[f"s{i}"] = step
                lines.append(f"    _step(s{i}, vals)")
        lines.append("    return None")
        self.source = "\n".join(lines)  # (for reading what a replay runs)
        return closure_function(self.source, "replay", env, "<autograd.compile replay>")

    def _interpret(self, vals: list) -> None:
        self._replays += 1
        if self._replays >= 3:
            if self.native is not None:
                self._go_native()
                for s, buf in self.prefill:
                    vals[s] = buf
            self.run = self._generate()
            if self.on_generate is not None:
                self.on_generate(self.run)
        Trace._run_steps(self.steps, vals)

    def _go_native(self) -> None:
        """Turn runs of plannable kernel steps into native plan segments (native_plan.py)."""
        from .native_plan import segment
        steps, reused, prefill = self.steps, set(), []
        try:
            steps, reused, prefill = segment(self.steps, self.meta, self.native)
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            # a plan that does not bind: the Python replay stays (same bits, slower)
            _log_native(exc)
        # the arguments kept for the routing decision are not needed any more
        self.steps = [s[:8] + (False,) if s[0] == "k" and type(s[8]) is tuple else s
                      for s in steps]
        self.reused = reused
        self.prefill = prefill
        for slot, buf in prefill:
            self.template[slot] = buf
        native = [s for s in steps if s[0] == "f" and len(s) > 3 and s[3] == "native"]
        self.native_segments = len(native)
        self.native_steps = sum(s[4] for s in native)

    @staticmethod
    def _step(step: tuple, vals: list) -> None:
        Trace._run_steps((step,), vals)

    def replay(self, vals: list) -> None:
        """Run every step in order; ``vals`` (``nslots`` long) holds the inputs in their slots.
        (:class:`~.compiler.Compiled` calls ``run`` on a copy of ``template`` instead.)"""
        self.materialize()
        for s, buf in self.prefill:
            vals[s] = buf
        self.run(vals)

    @staticmethod
    def _run_steps(steps: Any, vals: list) -> None:
        """The interpreter of tape steps (steps the generated code does not inline)."""
        for step in steps:
            if step[0] == "k":
                name, fn, a, k, spec, simple = step[1:7]
                if simple:
                    out = fn(*[vals[p] if kind == _SLOT else p for kind, p in a])
                else:
                    out = fn(*[_resolve(i, vals) for i in a],
                             **{key: _resolve(i, vals) for key, i in k.items()})
                if spec is not None:
                    _store(spec, out, vals)
            elif step[0] == "f":
                step[1](vals)
            else:
                _, fn, a, k, spec, post, witems = step
                out = fn(*[_resolve(i, vals) for i in a],
                         **{key: _resolve(i, vals) for key, i in k.items()})
                if spec is not None:
                    _store(spec, out, vals)
                if post:
                    for idx, what, s in post:
                        t = _resolve(witems[idx], vals)
                        if what == "data":
                            vals[s] = t._data
                        else:
                            g = t.grad
                            vals[s] = None if g is None else g._data
