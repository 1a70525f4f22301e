"""Save and load models, state dicts and checkpoints as safetensors files, safely.

``save(obj, path)`` writes the arrays with the ``safetensors`` package (so any safetensors reader
opens the file) and describes everything else as JSON in the header's ``__metadata__``:

* an ``nn.Module`` -> its architecture (layer types from an explicit allowlist, with their
  constructor arguments) and its ``state_dict``; :func:`load` rebuilds the module;
* a state dict, an optimizer (stored as its ``state_dict()``), numbers, strings, lists, tuples
  and dicts (str or int keys) nested as you like, e.g. ``{"model": m, "optimizer": opt,
  "epoch": 3}``; :func:`load` returns the same structure, with each optimizer as its state
  dict (pass it to ``optimizer.load_state_dict``).

Loading never runs code from the file: no pickle, no eval, no import of names it contains. The
header is parsed and checked here (lengths, JSON, dtypes, shapes, offsets that must tile the
data exactly) before any array is decoded, and every problem raises :class:`CorruptFileError`
naming the file. Writes go to a temporary file in the same directory, are flushed and fsynced,
then atomically renamed over ``path``: an interrupted save leaves the previous file intact, and
the temporary file of a save that was killed is removed by the next save to the same path.

Reading is bounded: only regular files are read (never a device or a pipe), the header is at
most 100 MB (the safetensors limit) holding at most a million JSON values, so reading it costs
at most about three times its size (the bytes, the decoded text, the parsed strings) plus
~100 MB. A pickle or a zip archive (what ``torch.save`` writes) is recognised and refused as
such. float16 and bfloat16 tensors, written by other tools, load converted to float32. Files
written by :func:`save` carry a SHA-256 checksum of their metadata and tensors
(``autograd.checksum``), and a file that does not match it is refused; files of format version
1 (written before the checksum existed) still load, unverified.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import socket
import stat
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .registration import add_safe_globals, serializable  # noqa: F401  (PyTorch's place)
from .tensor import Tensor

__all__ = ["LAYER_TYPES", "CorruptFileError", "load", "load_metadata", "save",
           "save_state_dict", "load_state_dict", "serializable", "add_safe_globals"]

FORMAT_VERSION = "2"  # 2: adds autograd.checksum; version 1 files still load, unverified
_TREE_KEY, _VERSION_KEY = "autograd.tree", "autograd.version"
_CHECKSUM_KEY = "autograd.checksum"
_MAX_HEADER = 100_000_000  # the limit the safetensors library itself enforces
# JSON parsing costs up to ~100 bytes per value (a list, a dict, a float): counting the
# characters that open or separate values bounds that before json.loads allocates anything.
_MAX_JSON_VALUES = 1_000_000
_MAX_DEPTH = 64
_DTYPES = {"F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
           "I32": np.int32, "I64": np.int64, "U8": np.uint8, "U16": np.uint16,
           "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_}
# Read, never written: half-precision tensors from other tools load converted to float32.
_HALF_DTYPES = {"F16", "BF16"}


class CorruptFileError(ValueError):
    """A file is truncated, corrupt, hostile or does not describe what it claims; the message
    names the file and the reason."""


# ------------------------------------------------------------------------------------ layers
# name -> argument schema. Kinds: "pos" positive int, "int", "float", "float?" (or None),
# "bool", "init" (a Linear init name or None), "str".
LAYER_TYPES: dict[str, dict[str, str]] = {
    "Linear": {"in_features": "pos", "out_features": "pos", "bias": "bool", "init": "init"},
    "ReLU": {}, "Sigmoid": {}, "Tanh": {}, "Identity": {},
    "LeakyReLU": {"negative_slope": "float"}, "GELU": {"approximate": "str"},
    "Softmax": {"dim": "int"}, "LogSoftmax": {"dim": "int"}, "Dropout": {"p": "float"},
    "Flatten": {"start_dim": "int", "end_dim": "int"},
    "BatchNorm1d": {"num_features": "pos", "eps": "float", "momentum": "float?",
                    "affine": "bool", "track_running_stats": "bool"},
    "Sequential": {"fuse": "bool"}, "Residual": {},
}


def _layer_classes() -> dict[str, type]:
    from . import nn  # imported late: nn is optional for plain state dicts
    # An explicit name -> class map: names read from a file are only ever looked up here.
    return {"Linear": nn.Linear, "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh,
            "Identity": nn.Identity, "LeakyReLU": nn.LeakyReLU, "GELU": nn.GELU,
            "Softmax": nn.Softmax, "LogSoftmax": nn.LogSoftmax, "Dropout": nn.Dropout,
            "Flatten": nn.Flatten, "BatchNorm1d": nn.BatchNorm1d, "Sequential": nn.Sequential,
            "Residual": nn.Residual}


def _describe(module: Any, seen: set[int] | None = None) -> dict:
    """The architecture of an allowlisted module as JSON-able data (raises for others)."""
    name = next((n for n, c in _layer_classes().items() if type(module) is c), None)
    if name is None:
        return _describe_registered(module, seen)
    # The tree has no way to say "the same layer again": a second copy of a stateless layer is
    # the same computation, but a layer with weights would load untied.
    seen = set() if seen is None else seen
    if id(module) in seen and module.state_dict():
        raise ValueError(f"save: the {name} appears twice in the model (shared weights), which "
                         f"the architecture cannot describe; save model.state_dict() instead "
                         f"and rebuild the model in code")
    seen.add(id(module))
    args = {k: getattr(module, k) for k in LAYER_TYPES[name]}
    if name == "Linear":
        args["bias"] = module.bias is not None
        args["init"] = module.init if isinstance(module.init, str) else None
    node: dict[str, Any] = {"type": name, "args": args}
    if name in ("Sequential", "Residual"):
        node["children"] = [[k, _describe(m, seen)] for k, m in module.named_children()]
    return node


# A custom module class opts in with @autograd.serializable: the tree then holds its registered
# name and constructor arguments ({"type": "registered", "class": ..., "args": ...}), and load
# calls the class registered under that name in this process, and nothing else.
_REGISTERED = "registered"


def _describe_registered(module: Any, seen: set[int] | None) -> dict:
    from . import registration as reg

    cls = type(module).__name__
    key = reg.registered_name(module)
    if key is None:
        raise ValueError(f"save: {cls} is a custom module class, which is saved whole only when "
                         f"it opts in: decorate the class with @autograd.serializable (its "
                         f"constructor arguments are then recorded, and load rebuilds it by "
                         f"name), or save model.state_dict() and rebuild the model in code")
    current = reg.registered_class(key)
    if current is not type(module):
        raise ValueError(f"save: {cls} was registered as {key!r}, but that name now belongs to "
                         f"{current.__module__}.{current.__qualname__}, registered later, "
                         f"which load would build instead; give one of them "
                         f"@autograd.serializable(name=...)")
    seen = set() if seen is None else seen
    if id(module) in seen and module.state_dict():
        raise ValueError(f"save: the {cls} appears twice in the model (shared weights), which "
                         f"the architecture cannot describe; save model.state_dict() instead "
                         f"and rebuild the model in code")
    seen.add(id(module))
    spec = reg.encode_arguments(module, lambda m: _describe(m, seen))
    node = {"type": _REGISTERED, "class": key, "args": spec}
    _check_rebuilds(module, node)
    return node


def _structure(module: Any) -> tuple[list, dict]:
    return ([(k, type(m).__name__) for k, m in module.named_modules(remove_duplicate=False)],
            {k: (t.shape, t.dtype.kind) for k, t in module._state_tensors().items()})


def _check_rebuilds(module: Any, node: dict) -> None:
    """Build the class again from the recorded arguments and compare: a change made after
    construction (a layer replaced, a parameter added) would otherwise load as a different
    model, or not at all."""
    def err(reason: str) -> ValueError:
        return ValueError(f"save: {type(module).__name__}: {reason}")
    fresh = _build(node, err)
    (mods, state), (mods2, state2) = _structure(module), _structure(fresh)
    if mods != mods2 or state != state2:
        diff = next((f"{a} vs {b}" for a, b in zip(mods, mods2) if a != b), None) or next(
            (f"{k}: {state.get(k)} vs {state2.get(k)}" for k in {*state, *state2}
             if state.get(k) != state2.get(k)), "the number of submodules")
        raise err(f"the model differs from what its constructor builds from the recorded "
                  f"arguments (model vs rebuilt: {diff}), so load could not rebuild it; make "
                  f"such changes in __init__, or save model.state_dict() instead")


class _KeepRandomState:
    """Constructors draw initial weights; building a model to save or load must not move the
    user's random streams (autograd's default generator and NumPy's global one)."""

    def __enter__(self) -> None:
        from . import creation
        self.gen = creation._generator
        self.state = self.gen.bit_generator.state
        self.np_state = np.random.get_state()

    def __exit__(self, *exc: Any) -> None:
        from . import creation
        creation._generator = self.gen
        self.gen.bit_generator.state = self.state
        np.random.set_state(self.np_state)


def _check_registered(node: dict, err: Callable[[str], Exception], depth: int) -> int:
    from . import registration as reg

    if set(node) != {"type", "class", "args"}:
        raise err(f"registered module: unexpected fields {sorted(node)}")
    key = node["class"]
    if not isinstance(key, str) or reg.registered_class(key) is None:
        raise err(f"the model is of class {str(key)[:80]!r}, which is not registered in this "
                  f"process: import the code that defines it (decorated with "
                  f"@autograd.serializable) before loading (a name in a file is never "
                  f"imported)")
    return reg.check_arguments(node["args"], err, lambda n, d: _check_node(n, err, d), depth)


def _build_registered(node: dict, err: Callable[[str], Exception]) -> Any:
    from . import registration as reg

    cls = reg.registered_class(node["class"])
    args, kwargs = reg.decode_arguments(node["args"], lambda n: _build(n, err))
    try:
        with _KeepRandomState():
            return cls(*args, **kwargs)
    except CorruptFileError:
        raise
    except Exception as exc:  # the class's own code: whatever it raises, say where
        raise err(f"{node['class']} cannot be built from its stored arguments {args}, "
                  f"{kwargs}: {type(exc).__name__}: {exc}") from None


def _check_args(name: str, args: Any, err: Callable[[str], Exception]) -> dict:
    schema = LAYER_TYPES[name]
    if not isinstance(args, dict) or set(args) != set(schema):
        raise err(f"layer {name}: arguments must be exactly {sorted(schema)}")
    for k, kind in schema.items():
        v = args[k]
        is_int = isinstance(v, int) and not isinstance(v, bool)
        ok = {"pos": is_int and 1 <= v < 2**40, "int": is_int and abs(v) < 64,
              "float": (is_int or isinstance(v, float)) and math.isfinite(v),
              "float?": v is None or ((is_int or isinstance(v, float)) and math.isfinite(v)),
              "bool": isinstance(v, bool), "str": isinstance(v, str),
              "init": v is None or v in ("he", "xavier", "normal", "zeros")}[kind]
        if not ok:
            raise err(f"layer {name}: bad value {v!r} for {k}")
    return args


def _check_node(node: Any, err: Callable[[str], Exception], depth: int = 0) -> int:
    """Validate an architecture tree without building it; return a lower bound on the elements
    it allocates (checked against the file first, so a hostile header cannot make us allocate
    terabytes)."""
    if depth > _MAX_DEPTH:
        raise err("architecture nested too deeply")
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise err("architecture node is not an object with a type")
    name = node["type"]
    if name == _REGISTERED:
        return _check_registered(node, err, depth)
    if name not in LAYER_TYPES:
        raise err(f"unknown layer type {name!r} (allowed: {sorted(LAYER_TYPES)})")
    container = name in ("Sequential", "Residual")
    if set(node) != ({"type", "args", "children"} if container else {"type", "args"}):
        raise err(f"layer {name}: unexpected fields {sorted(node)}")
    a = _check_args(name, node["args"], err)
    total = {"Linear": lambda: a["in_features"] * a["out_features"],
             "BatchNorm1d": lambda: a["num_features"] * (2 * a["affine"]
                                                        + 2 * a["track_running_stats"]),
             }.get(name, lambda: 0)()
    if container:
        kids = node["children"]
        if not isinstance(kids, list) or not all(
                isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in kids):
            raise err(f"layer {name}: children must be [name, layer] pairs")
        if len({k for k, _ in kids}) != len(kids):
            raise err(f"layer {name}: duplicate child names")
        if name == "Residual" and [k for k, _ in kids] != ["block"]:
            raise err("layer Residual: needs exactly one child named 'block'")
        total += sum(_check_node(c, err, depth + 1) for _, c in kids)
    return total


def _build(node: dict, err: Callable[[str], Exception]) -> Any:
    """Instantiate a tree already validated by :func:`_check_node`."""
    if node["type"] == _REGISTERED:
        return _build_registered(node, err)
    name, args = node["type"], dict(node["args"])
    cls = _layer_classes()[name]
    try:
        if name == "Residual":
            return cls(_build(node["children"][0][1], err))
        if name == "Sequential":
            return cls(OrderedDict((k, _build(c, err)) for k, c in node["children"]), **args)
        if name == "Linear":
            init = args.pop("init")
            layer = cls(**args, init="zeros")  # no random draws: the weights are loaded next
            layer.init = init
            return layer
        return cls(**args)
    except CorruptFileError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, MemoryError) as exc:
        raise err(f"layer {name} cannot be built from {args}: {exc}") from None


# ------------------------------------------------------------------------------ the tree
def _is_module(obj: Any) -> bool:
    from .nn import Module
    return isinstance(obj, Module)


class _Encoder:
    """Turns a Python structure into a JSON tree plus a flat dict of named arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def key(self, path: str, array: np.ndarray) -> str:
        name, n = path or "tensor", 1
        while name in self.arrays:  # a dotted dict key may collide with a nested path
            n += 1
            name = f"{path}#{n}"
        # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
        self.arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")
        return name

    def encode(self, obj: Any, path: str = "", depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError("save: structure nested too deeply")
        def join(k: object) -> str:
            return f"{path}.{k}" if path else str(k)
        if isinstance(obj, Tensor):
            return {"t": "tensor", "key": self.key(path, obj._data),
                    "requires_grad": obj.requires_grad}
        if isinstance(obj, np.ndarray):
            return {"t": "array", "key": self.key(path, obj)}
        if isinstance(obj, np.generic):
            return {"t": "scalar", "key": self.key(path, np.asarray(obj))}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return {"t": "value", "v": obj}
        if _is_module(obj):
            return {"t": "module", "arch": _describe(obj),
                    "state": self.encode(obj.state_dict(), path, depth + 1)}
        if callable(getattr(obj, "state_dict", None)) and hasattr(obj, "load_state_dict"):
            return {"t": "optimizer", "class": type(obj).__name__,
                    "state": self.encode(obj.state_dict(), path, depth + 1)}
        if isinstance(obj, Mapping):
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(f"save: dict keys must be str or int, got {k!r}")
                items.append([k, self.encode(v, join(k), depth + 1)])
            return {"t": "dict", "items": items}
        if isinstance(obj, (list, tuple)):
            return {"t": "list" if isinstance(obj, list) else "tuple",
                    "items": [self.encode(v, join(i), depth + 1) for i, v in enumerate(obj)]}
        raise TypeError(f"save: cannot store a {type(obj).__name__} (at {path or 'the top'})")


class _Decoder:
    """Rebuilds the structure from a validated tree, checking every reference."""

    def __init__(self, arrays: dict[str, np.ndarray], err: Callable[[str], Exception]):
        self.arrays, self.err, self.used = arrays, err, set()

    def take(self, node: dict) -> np.ndarray:
        k = node.get("key")
        if not isinstance(k, str) or k not in self.arrays:
            raise self.err(f"the structure refers to a missing tensor {k!r}")
        if k in self.used:
            raise self.err(f"tensor {k!r} is referred to twice")
        self.used.add(k)
        return self.arrays[k]

    def decode(self, node: Any, depth: int = 0) -> Any:
        err = self.err
        if depth > _MAX_DEPTH:
            raise err("structure nested too deeply")
        t = node.get("t") if isinstance(node, dict) else None
        t = t if isinstance(t, str) else None
        fields = {"tensor": {"key", "requires_grad"}, "array": {"key"}, "scalar": {"key"},
                  "value": {"v"}, "module": {"arch", "state"}, "optimizer": {"class", "state"},
                  "dict": {"items"}, "list": {"items"}, "tuple": {"items"}}
        if t not in fields or set(node) != fields[t] | {"t"}:
            raise err(f"malformed structure node {str(node)[:80]!r}")
        if t == "value":
            if node["v"] is not None and not isinstance(node["v"], (bool, int, float, str)):
                raise err("a stored value is not a number, string, bool or null")
            return node["v"]
        if t in ("array", "scalar"):
            a = self.take(node)
            return a if t == "array" else a[()]
        if t == "tensor":
            a = self.take(node)
            out = Tensor._wrap(a)
            if node["requires_grad"] is True and a.dtype.kind == "f":
                out.requires_grad = True
            return out
        if t == "module":
            return self.module(node, depth)
        if t == "optimizer":
            return self.decode(node["state"], depth + 1)
        items = node["items"]
        if not isinstance(items, list):
            raise err(f"{t} items must be a list")
        if t == "dict":
            out = {}
            for pair in items:
                if not (isinstance(pair, list) and len(pair) == 2
                        and isinstance(pair[0], (str, int))
                        and not isinstance(pair[0], bool)) or pair[0] in out:
                    raise err("dict items must be [key, value] pairs with unique str/int keys")
                out[pair[0]] = self.decode(pair[1], depth + 1)
            return out
        values = [self.decode(v, depth + 1) for v in items]
        return values if t == "list" else tuple(values)

    def module(self, node: dict, depth: int) -> Any:
        err = self.err
        state = self.decode(node["state"], depth + 1)
        if not isinstance(state, dict) or not all(isinstance(v, np.ndarray)
                                                  for v in state.values()):
            raise err("a module's state must be a dict of arrays")
        arch = node["arch"]
        need = _check_node(arch, err)
        if need > sum(a.size for a in state.values()):
            raise err(f"the architecture needs at least {need} weights but the file holds "
                      f"{sum(a.size for a in state.values())}")
        module = _build(arch, err)
        own = module._state_tensors()
        if set(own) != set(state):
            raise err(f"the weights do not match the architecture: missing "
                      f"{sorted(set(own) - set(state))}, unexpected "
                      f"{sorted(set(state) - set(own))}")
        for k, t in own.items():
            a = state[k]
            if a.shape != t.shape or a.dtype.kind != t.dtype.kind:
                raise err(f"tensor {k!r} has shape {a.shape} and dtype {a.dtype}; the "
                          f"architecture needs shape {t.shape} and a {t.dtype.kind!r} dtype")
        floats = {a.dtype for a in state.values() if a.dtype.kind == "f"}
        if len(floats) == 1:
            module.astype(floats.pop())  # keep the saved precision (e.g. float64 training)
        module.load_state_dict(state)
        return module


# ------------------------------------------------------------------------------ file format
def _foreign_format(prefix: bytes) -> str | None:
    """What a file that is not safetensors is, when its first bytes say so."""
    if prefix[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "a zip archive, as torch.save writes, with a pickle inside"
    if len(prefix) >= 2 and prefix[0] == 0x80 and 2 <= prefix[1] <= 5:
        return "a pickle, as torch.save (legacy format) or pickle.dump writes"
    return None


def _check_prefix(prefix: bytes, size: int, err: Callable[[str], Exception]) -> int:
    """Check the first bytes of a ``size``-byte file; return the header length."""
    n = struct.unpack("<Q", prefix[:8])[0] if len(prefix) >= 8 else None
    plausible = n is not None and n <= _MAX_HEADER and 8 + n <= size and prefix[8:9] == b"{"
    kind = None if plausible else _foreign_format(prefix)
    if kind is not None:
        raise err(f"{kind}: this is a pickle file, which is never loaded; save it with "
                  f"safetensors (for a PyTorch model: "
                  f"safetensors.torch.save_file(model.state_dict(), path))")
    if n is None:
        raise err(f"{size} bytes is too short for the 8-byte header length")
    if n > _MAX_HEADER:
        raise err(f"header length {n} exceeds the {_MAX_HEADER}-byte limit")
    if 8 + n > size:
        raise err(f"header length {n} runs past the end of the {size}-byte file")
    return n


def _check_json_size(data: Any, err: Callable[[str], Exception], what: str,
                     start: int = 0, stop: int | None = None) -> None:
    """Bound what json.loads of ``data[start:stop]`` (str or bytes-like) can allocate, without
    copying it: every JSON value but the first is opened or preceded by one of these characters
    (strings may hold more of them, so the count only overestimates)."""
    stop = len(data) if stop is None else stop
    chars = ",:[{" if isinstance(data, str) else (b",", b":", b"[", b"{")
    count = sum(data.count(c, start, stop) for c in chars)
    if count > _MAX_JSON_VALUES:
        raise err(f"{what} holds about {count} JSON values, over the limit of "
                  f"{_MAX_JSON_VALUES}")


def _loads_bounded(text: str, err: Callable[[str], Exception], what: str, **kw: Any) -> Any:
    """json.loads of checked size; any failure is ``err`` naming ``what``."""
    _check_json_size(text, err, what)
    try:
        return json.loads(text, **kw)
    except CorruptFileError:
        raise
    # ValueError beyond JSONDecodeError: an integer past Python's digit limit.
    except (ValueError, RecursionError) as exc:
        raise err(f"{what} is not valid JSON ({type(exc).__name__})") from None


def _digest(meta: Mapping[str, str], tensors: list[tuple[str, str, list, Any]]) -> str:
    """SHA-256 over the metadata (without the checksum itself) and every tensor's name, dtype,
    shape and little-endian bytes, in name order: independent of the file's layout."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != _CHECKSUM_KEY},
                        sort_keys=True).encode())
    for name, code, shape, buf in sorted(tensors, key=lambda t: t[0]):
        h.update(json.dumps([name, code, list(shape)]).encode())  # fixes the bytes' length
        h.update(buf)
    return "sha256:" + h.hexdigest()


def _verify(meta: dict, header: dict, data: Any, start: int,
            err: Callable[[str], Exception]) -> None:
    """Check a file carrying autograd's metadata: its version, and (version 2) its checksum.

    Any one of autograd's keys marks the file as ours, so a damaged key cannot make it pass
    for a foreign file (which would load as a bare dict of arrays)."""
    if not any(k in meta for k in (_VERSION_KEY, _TREE_KEY, _CHECKSUM_KEY)):
        return  # another tool's safetensors file: nothing of ours to check
    version = meta.get(_VERSION_KEY)
    if version not in ("1", FORMAT_VERSION):
        raise err(f"unsupported autograd format version {version!r}")
    if _TREE_KEY not in meta:
        raise err(f"the autograd metadata is damaged: {_TREE_KEY!r} is missing")
    if version == "1":  # written before checksums existed: loaded unverified, as then
        if _CHECKSUM_KEY in meta:
            raise err(f"the autograd metadata is damaged: a version 1 file has no "
                      f"{_CHECKSUM_KEY!r}")
        return
    stored = meta.get(_CHECKSUM_KEY)
    if not isinstance(stored, str):
        raise err(f"the autograd metadata is damaged: {_CHECKSUM_KEY!r} is missing")
    view = memoryview(data)
    found = _digest(meta, [(name, info["dtype"], info["shape"],
                            view[start + info["data_offsets"][0]:
                                 start + info["data_offsets"][1]])
                           for name, info in header.items()])
    if not hmac.compare_digest(stored.encode(), found.encode()):
        raise err(f"checksum mismatch: the metadata or tensors changed after the file was "
                  f"written (stored {stored[:23]}..., computed {found[:23]}...)")


_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


def _le_bytes(a: np.ndarray) -> memoryview:
    """The bytes safetensors stores for ``a``: C order, little-endian."""
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return memoryview(a.reshape(-1).view(np.uint8))


def _checksum_arrays(meta: Mapping[str, str], arrays: Mapping[str, np.ndarray]) -> str:
    """The checksum :func:`save` stores for ``meta`` and ``arrays`` (as st.save lays them out);
    tests that forge a file re-seal it with this."""
    return _digest(meta, [(name, _CODES[a.dtype.newbyteorder("=")], a.shape, _le_bytes(a))
                          for name, a in arrays.items()])


def _decode_array(data: Any, code: str, shape: list, offset: int, nbytes: int) -> np.ndarray:
    """A private, native-order copy of one tensor (half precision widened to float32)."""
    if code == "BF16":  # the top 16 bits of a float32
        raw = np.frombuffer(data, dtype="<u2", count=nbytes // 2, offset=offset)
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    dt = np.dtype(np.float16 if code == "F16" else _DTYPES[code]).newbyteorder("<")
    if nbytes == 0:
        out = np.empty(shape, dtype=dt.newbyteorder("="))
    else:
        out = np.frombuffer(data, dtype=dt, count=nbytes // dt.itemsize, offset=offset
                            ).reshape(shape).astype(dt.newbyteorder("="))
    return out.astype(np.float32) if code == "F16" else out


def _parse(data: Any, err: Callable[[str], Exception]) -> tuple[dict, dict[str, np.ndarray]]:
    """Validate a safetensors buffer completely, then decode it: (metadata, name -> array).

    ``data`` is bytes-like (bytes, bytearray). A file carrying autograd's metadata has its
    version and checksum verified before any array is decoded."""
    n = _check_prefix(bytes(data[:9]), len(data), err)

    def no_duplicates(pairs: list) -> dict:
        seen: set[str] = set()  # linear: a hostile header may hold millions of keys
        for k, _ in pairs:
            if k in seen:
                raise err(f"duplicate key in header: {k!r}")
            seen.add(k)
        return dict(pairs)

    _check_json_size(data, err, "header", 8, 8 + n)  # before the decoded copy exists
    try:
        text = str(memoryview(data)[8:8 + n], "utf-8")
    except UnicodeDecodeError:
        raise err("header is not valid JSON (UnicodeDecodeError)") from None
    header = _loads_bounded(text, err, "header", object_pairs_hook=no_duplicates)
    del text
    if not isinstance(header, dict):
        raise err("header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise err("__metadata__ must map strings to strings")
    body = len(data) - 8 - n
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise err(f"tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or (dtype not in _DTYPES and dtype not in _HALF_DTYPES):
            raise err(f"tensor {name!r}: unknown or unsupported dtype {str(dtype)[:40]!r}")
        def ints(xs: object) -> bool:
            return isinstance(xs, list) and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in xs)
        itemsize = 2 if dtype in _HALF_DTYPES else np.dtype(_DTYPES[dtype]).itemsize
        # NumPy refuses shapes whose non-zero sizes multiply past 2**63 bytes, even empty ones
        # (and a half-precision tensor is widened to float32: twice its bytes).
        if not ints(shape) or len(shape) > 32 \
                or math.prod(max(d, 1) for d in shape) * 4 * itemsize >= 2**63:
            raise err(f"tensor {name!r}: bad shape {str(shape)[:80]}")
        if not ints(offs) or len(offs) != 2 or offs[0] > offs[1]:
            raise err(f"tensor {name!r}: bad data_offsets {str(offs)[:80]}")
        if offs[1] > body:
            raise err(f"tensor {name!r}: data_offsets {offs} out of range for a "
                      f"{body}-byte data section")
        size = math.prod(shape) * itemsize
        if offs[1] - offs[0] != size:
            raise err(f"tensor {name!r}: {offs[1] - offs[0]} bytes of data, but dtype {dtype} "
                      f"and shape {shape} need {size}")
        spans.append((offs[0], offs[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin < end:
            raise err(f"tensor {name!r}: data_offsets overlap another tensor's")
        if begin > end:
            raise err(f"unreferenced gap in the data section before tensor {name!r}")
        end = stop
    if end != body:
        raise err(f"{body - end} trailing bytes after the last tensor")
    _verify(meta, header, data, 8 + n, err)
    arrays = {}
    for begin, stop, name in sorted(spans):
        info = header[name]
        arrays[name] = _decode_array(data, info["dtype"], info["shape"], 8 + n + begin,
                                     stop - begin)
    return meta, arrays


def _read_file(path: Any, err: Callable[[str], Exception]) -> bytearray:
    """The bytes of a safetensors file, refusing early what is not one: anything but a regular
    file (a device such as /dev/zero, a pipe) and a header length that cannot be right are
    refused before the rest is read."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise err("not a regular file (only regular files are read, never a device, a pipe "
                  "or a directory)")
    with os.fdopen(fd, "rb", buffering=0) as f:
        size = st.st_size
        data = bytearray(size)
        view = memoryview(data)
        got = f.readinto(view[:16])
        _check_prefix(bytes(view[:got]), size, err)
        while got < size:
            k = f.readinto(view[got:])
            if not k:
                raise err(f"the file shrank while being read ({got} of {size} bytes)")
            got += k
        del view
    return data


def _error_for(path: Any) -> Callable[[str], CorruptFileError]:
    return lambda reason: CorruptFileError(f"{os.fspath(path)}: {reason}")


def _write_all(f: Any, data: bytes) -> None:
    """Write in chunks (the hook tests use to interrupt a save halfway)."""
    view = memoryview(data)
    for start in range(0, len(view), 1 << 20):
        f.write(view[start:start + (1 << 20)])


# A temporary file names its writer: ".<name>.<host>-<pid>.<random>.tmp". A save killed before
# its rename leaves one behind; the next save to the same path removes those whose writer, on
# this host, is gone (a live writer's file is left alone: it is a concurrent save).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(name)}\.([0-9a-f]{{8}})-(\d+)\.[0-9a-f]{{16}}\.tmp")


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _remove_orphans(path: Path) -> None:
    """Remove temporary files that killed saves to ``path`` left behind (best effort)."""
    if os.name != "posix":  # os.kill(pid, 0) is not a liveness probe elsewhere
        return
    pattern = _temp_pattern(path.name)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or m.group(1) != _HOST or int(m.group(2)) == os.getpid() \
                or _writer_alive(int(m.group(2))) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def _atomic_write(path: Path, data: bytes) -> None:
    # Not mkstemp: its files are private (0600). Created with 0666, the kernel applies the
    # umask as for a plain open(); a file being replaced lends its own mode instead.
    _remove_orphans(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = path.parent / f".{path.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not every platform can open a directory
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ------------------------------------------------------------------------------ public API
def save(obj: Any, path: str | os.PathLike, *, metadata: Mapping[str, str] | None = None
         ) -> None:
    """Write a module, a state dict or a checkpoint structure to ``path`` (safetensors).

    ``metadata`` (str -> str) is stored in the header for other tools; keys starting with
    ``autograd.`` are reserved. The write is atomic: on any error the old file stays intact.
    """
    import safetensors.numpy as st

    extra = dict(metadata or {})
    for k, v in extra.items():
        if not isinstance(k, str) or not isinstance(v, str) or k.startswith("autograd."):
            raise ValueError(f"save: metadata must map str to str and not use the reserved "
                             f"'autograd.' prefix; got {k!r}: {v!r}")
    enc = _Encoder()
    tree = enc.encode(obj)
    for name, a in enc.arrays.items():
        if a.dtype.newbyteorder("=") not in {np.dtype(d) for d in _DTYPES.values()}:
            raise TypeError(f"save: tensor {name!r} has unsupported dtype {a.dtype}")
    extra.update({_VERSION_KEY: FORMAT_VERSION, _TREE_KEY: json.dumps(tree)})
    extra[_CHECKSUM_KEY] = _checksum_arrays(extra, enc.arrays)
    _atomic_write(Path(path), st.save(enc.arrays, metadata=extra))


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The user metadata stored by :func:`save` (without autograd's own keys)."""
    err = _error_for(path)
    meta, _ = _parse(_read_file(path, err), err)
    return {k: v for k, v in meta.items() if not k.startswith("autograd.")}


def load(path: str | os.PathLike) -> Any:
    """Read what :func:`save` wrote: a rebuilt module, a state dict or the checkpoint structure.

    A safetensors file written by another tool loads as a dict of name -> ndarray (float16
    and bfloat16 tensors converted to float32). Raises :class:`CorruptFileError` (a ValueError)
    naming the file for anything malformed: a file that is not a regular file, a pickle or zip
    file (what ``torch.save`` writes), a header over the bounds, or a file written by
    :func:`save` whose checksum does not match.
    """
    err = _error_for(path)
    meta, arrays = _parse(_read_file(path, err), err)  # checks the version and checksum
    if _TREE_KEY not in meta:
        return arrays
    tree = _loads_bounded(meta[_TREE_KEY], err, "the stored structure")
    decoder = _Decoder(arrays, err)
    out = decoder.decode(tree)
    if set(arrays) - decoder.used:
        raise err(f"tensors not referred to by the structure: {sorted(set(arrays) - decoder.used)}")
    return out


# ------------------------------------------------------------------------------ state dicts
def save_state_dict(state_dict: Mapping[str, Any], path: str | os.PathLike, *,
                    metadata: Mapping[str, str] | None = None) -> None:
    """Write a state dict as a plain safetensors file: one tensor per key, nothing else.

    ``model.state_dict()`` keys and layouts are PyTorch's for the same architecture, so
    ``torch_model.load_state_dict(safetensors.torch.load_file(path))`` reads the file (and
    :func:`load_state_dict` reads one written by ``safetensors.torch.save_file``). Values may
    be Tensors or arrays; the write is atomic.
    """
    import safetensors.numpy as st

    arrays: dict[str, np.ndarray] = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"save_state_dict: keys must be str, got {k!r}")
        a = v._data if isinstance(v, Tensor) else v
        if not isinstance(a, (np.ndarray, np.generic)):
            raise TypeError(f"save_state_dict: {k!r} is a {type(v).__name__}, not a tensor or "
                            f"array; save other values with autograd.save")
        a = np.asarray(a)
        if a.dtype.newbyteorder("=") not in {np.dtype(d) for d in _DTYPES.values()}:
            raise TypeError(f"save_state_dict: tensor {k!r} has unsupported dtype {a.dtype}")
        arrays[k] = a if a.flags.c_contiguous else a.copy(order="C")
    extra = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise ValueError("save_state_dict: metadata must map str to str")
    _atomic_write(Path(path), st.save(arrays, metadata=extra or None))


def load_state_dict(path: str | os.PathLike) -> "OrderedDict[str, np.ndarray]":
    """Read a state dict (name -> array) for ``model.load_state_dict``.

    Reads any safetensors file of tensors: one written by :func:`save_state_dict`, by
    ``safetensors.torch.save_file(torch_model.state_dict(), path)``, or by :func:`save` of a
    state dict or a whole module (its weights). Anything else, such as a checkpoint
    structure, is refused with a message saying what the file holds.
    """
    err = _error_for(path)
    meta, arrays = _parse(_read_file(path, err), err)
    if _TREE_KEY in meta:
        obj = load(path)
        if _is_module(obj):
            obj = obj.state_dict()
        if not isinstance(obj, Mapping) or not all(isinstance(v, np.ndarray)
                                                   for v in obj.values()):
            raise ValueError(f"load_state_dict: {os.fspath(path)} holds a "
                             f"{type(obj).__name__} saved by autograd.save, not a state dict; "
                             f"read it with autograd.load")
        return OrderedDict(obj)
    return OrderedDict(arrays)
