"""``@serializable``: custom ``nn.Module`` classes that :func:`autograd.save` may store whole.

Like Keras's ``register_keras_serializable``, a class opts in by name::

    @ag.serializable
    class Net(nn.Module):
        def __init__(self, n_in, n_hidden):
            ...

Its constructor arguments are then recorded on every instance (no ``get_config`` to write), a
saved file holds only the registered name, those arguments and the weights, and
:func:`autograd.load` rebuilds the model by calling the registered class with them. The file
can only *choose among* classes registered in the loading process: no name in it is ever
imported, evaluated or looked up anywhere but in this registry. A registered class is trusted
code, as any class you import is: a file chooses its arguments, so a constructor that does
something dangerous with an argument (opens a path it is given, say) should not be registered.

``add_safe_globals`` is the same opt-in under PyTorch's name (``torch.serialization``'s), so a
PyTorch program that allowlists its classes for ``torch.load`` runs unchanged.
"""
from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

__all__ = ["serializable", "add_safe_globals", "registered_name", "registered_class",
           "recorded_arguments", "encode_arguments", "decode_arguments"]

C = TypeVar("C", bound=type)

_CLASSES: dict[str, type] = {}  # registered name -> class
_ARGS = "_serializable_args"  # the instance attribute holding (positional, keyword) arguments
_MAX_DEPTH = 32
_DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def serializable(cls: C | None = None, *, name: str | None = None) -> Any:
    """Class decorator: let ``autograd.save`` store instances of this ``nn.Module`` subclass
    and ``autograd.load`` rebuild them, by the registered ``name`` (default: the class's
    qualified name) and the constructor arguments each instance was made with.

    Arguments may be None, bools, numbers, strings, dtypes, modules that can themselves be
    saved, and lists, tuples and str-keyed dicts of these. A later class registered under the
    same name takes it over (as in Keras); give ``@serializable(name="...")`` to keep two
    classes with one class name apart.
    """
    def register(c: C) -> C:
        from .nn import Module
        from .serialization import LAYER_TYPES

        if not (isinstance(c, type) and issubclass(c, Module)):
            raise TypeError(f"serializable: only nn.Module subclasses can be registered, got "
                            f"{c!r}")
        key = c.__qualname__ if name is None else name
        if not isinstance(key, str) or not key or key in LAYER_TYPES:
            raise ValueError(f"serializable: {key!r} cannot be a registered name (it must be "
                             f"a non-empty string other than a built-in layer's name)")
        # As in Keras, the latest class registered under a name is the one load rebuilds (a
        # re-run notebook cell, a reloaded module); save refuses an instance of a class whose
        # name was taken over since, rather than let load build the other class.
        if c.__dict__.get("_serializable_name") is None:
            _record_arguments(c)
        c._serializable_name = key
        _CLASSES[key] = c
        return c

    return register if cls is None else register(cls)


def _record_arguments(cls: type) -> None:
    """Wrap ``cls.__init__`` so each instance made by ``cls`` itself (not by a subclass)
    remembers the arguments of its construction."""
    original = cls.__init__
    sig = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            bound = sig.bind(self, *args, **kwargs)
        except TypeError:
            bound = None  # the call itself is wrong: let the constructor say so
        else:
            bound.apply_defaults()
        original(self, *args, **kwargs)
        if type(self) is cls and bound is not None:
            object.__setattr__(self, _ARGS, (tuple(bound.args[1:]), dict(bound.kwargs)))

    cls.__init__ = __init__


def add_safe_globals(classes: Iterable[type]) -> None:
    """PyTorch's ``torch.serialization.add_safe_globals``: allow ``load`` to rebuild these
    classes. Custom ``nn.Module`` subclasses are registered as by :func:`serializable`; the
    built-in layers are always allowed. Anything else is refused (a file never names a
    function or any other object here)."""
    from .nn import Module
    from .serialization import _layer_classes

    builtin = set(_layer_classes().values())
    for c in classes:
        if isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], str):
            c, key = c  # PyTorch's (class, name) form
            if c in builtin:
                continue
            serializable(c, name=key)
            continue
        if c in builtin:
            continue
        if not (isinstance(c, type) and issubclass(c, Module)):
            raise TypeError(f"add_safe_globals: autograd files can only name nn.Module "
                            f"classes, and {c!r} is not one")
        serializable(c)


def registered_name(module: Any) -> str | None:
    """The name ``type(module)`` was registered under, or None when it was not registered
    (a subclass of a registered class is not registered by that)."""
    return type(module).__dict__.get("_serializable_name")


def registered_class(key: str) -> type | None:
    """The class registered as ``key`` in this process, or None."""
    return _CLASSES.get(key)


def recorded_arguments(module: Any) -> tuple[tuple, dict]:
    """The (positional, keyword) arguments ``module`` was constructed with; raises ValueError
    saying what to do when they were not recorded."""
    args = module.__dict__.get(_ARGS)
    if args is None:
        cls = type(module).__name__
        raise ValueError(f"save: this {cls} was created before {cls} was registered, so its "
                         f"constructor arguments were not recorded; register the class "
                         f"(@autograd.serializable, or add_safe_globals) before creating "
                         f"the model")
    return args


# ------------------------------------------------------------------------------ arguments
def encode_arguments(module: Any, describe: Callable[[Any], dict]) -> dict:
    """The recorded arguments of ``module`` as JSON-able data; ``describe`` turns a module
    argument into its architecture. Raises ValueError naming an argument a file cannot hold."""
    args, kwargs = recorded_arguments(module)
    cls = type(module).__name__

    def enc(v: Any, where: str, depth: int) -> dict:
        if depth > _MAX_DEPTH:
            raise ValueError(f"save: {cls} argument {where} is nested too deeply")
        if v is None or isinstance(v, (bool, str)):
            return {"v": v}
        if isinstance(v, numbers.Integral):
            return {"v": int(v)}
        if isinstance(v, numbers.Real):
            return {"v": float(v)}
        if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
            dt = np.dtype(v).name
            if dt not in _DTYPES:
                raise ValueError(f"save: {cls} argument {where} is the dtype {dt}, which "
                                 f"cannot be stored (supported: {', '.join(_DTYPES)})")
            return {"dtype": dt}
        from .nn import Module
        if isinstance(v, Module):
            return {"module": describe(v)}
        if isinstance(v, (list, tuple)):
            kind = "list" if isinstance(v, list) else "tuple"
            return {kind: [enc(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)]}
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {"dict": [[k, enc(x, f"{where}[{k!r}]", depth + 1)] for k, x in v.items()]}
        raise ValueError(f"save: {cls} argument {where} is a {type(v).__name__}, which a file "
                         f"cannot describe (only None, bools, numbers, strings, dtypes, "
                         f"modules and lists, tuples and dicts of these); pass a simple "
                         f"value to the constructor, or save model.state_dict() instead")

    return {"args": [enc(v, f"#{i}", 0) for i, v in enumerate(args)],
            "kwargs": [[k, enc(v, k, 0)] for k, v in kwargs.items()]}


def check_arguments(spec: Any, err: Callable[[str], Exception],
                    check_module: Callable[[Any, int], int], depth: int) -> int:
    """Validate stored arguments without building anything; returns the lower bound on weights
    of the module arguments (as ``check_module`` computes it)."""
    total = 0

    def chk(v: Any, d: int) -> None:
        nonlocal total
        if d > _MAX_DEPTH:
            raise err("constructor arguments nested too deeply")
        if not isinstance(v, dict) or len(v) != 1:
            raise err(f"malformed constructor argument {str(v)[:80]!r}")
        (kind, x), = v.items()
        if kind == "v":
            if x is not None and not isinstance(x, (bool, int, float, str)):
                raise err(f"malformed constructor argument {str(v)[:80]!r}")
        elif kind == "dtype":
            if x not in _DTYPES:
                raise err(f"unsupported dtype argument {str(x)[:40]!r}")
        elif kind == "module":
            total += check_module(x, depth + d + 1)
        elif kind in ("list", "tuple"):
            if not isinstance(x, list):
                raise err(f"constructor argument {kind} is not a list")
            for item in x:
                chk(item, d + 1)
        elif kind == "dict":
            if not isinstance(x, list) or not all(
                    isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in x):
                raise err("constructor argument dict must be [key, value] pairs")
            if len({p[0] for p in x}) != len(x):
                raise err("constructor argument dict has duplicate keys")
            for _, item in x:
                chk(item, d + 1)
        else:
            raise err(f"unknown constructor argument kind {str(kind)[:40]!r}")

    if not isinstance(spec, dict) or set(spec) != {"args", "kwargs"} \
            or not isinstance(spec["args"], list) or not isinstance(spec["kwargs"], list):
        raise err("constructor arguments must be {args: [...], kwargs: [[name, value], ...]}")
    for v in spec["args"]:
        chk(v, 0)
    names = set()
    for p in spec["kwargs"]:
        if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)) \
                or not p[0].isidentifier() or p[0] in names:
            raise err("constructor keyword arguments must be unique [identifier, value] pairs")
        names.add(p[0])
        chk(p[1], 0)
    return total


def decode_arguments(spec: dict, build_module: Callable[[Any], Any]) -> tuple[list, dict]:
    """The (positional, keyword) arguments of a spec already validated by
    :func:`check_arguments`; ``build_module`` rebuilds a module argument."""
    def dec(v: dict) -> Any:
        (kind, x), = v.items()
        if kind == "v":
            return x
        if kind == "dtype":
            return np.dtype(x)
        if kind == "module":
            return build_module(x)
        if kind == "list":
            return [dec(i) for i in x]
        if kind == "tuple":
            return tuple(dec(i) for i in x)
        return {k: dec(i) for k, i in x}

    return [dec(v) for v in spec["args"]], {k: dec(v) for k, v in spec["kwargs"]}
