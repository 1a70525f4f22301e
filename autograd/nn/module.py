"""``Module`` and ``Parameter``: the PyTorch-style containers that layers are built from.

A Module registers what is assigned to it: a :class:`Parameter` becomes a parameter, a Module a
child, and a tensor passed to :meth:`Module.register_buffer` a buffer (state that is saved but
not trained, such as BatchNorm's running statistics). ``state_dict`` keys follow PyTorch's
dotted names (``"layers.0.weight"``), so checkpoints are easy to compare and convert.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from ..capture import live
from ..grad_mode import no_grad, state
from ..tensor import Tensor, _to_array

__all__ = ["Module", "Parameter", "IncompatibleKeys"]


class Parameter(Tensor):
    """A tensor that is a trainable weight of a Module: it requires grad by default.

    ``Parameter(t)`` shares the array of a Tensor ``t`` (as ``torch.nn.Parameter`` does); any
    other data is copied. Only floating data can be a parameter.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None):
        arr = data._data if isinstance(data, Tensor) and dtype is None else _to_array(data, dtype)
        if arr.dtype.kind != "f":
            raise TypeError(f"Parameter: only floating data can be a parameter, got {arr.dtype}")
        # Optimizer kernels update parameters in place, which needs one contiguous block.
        self._data = np.ascontiguousarray(arr)
        self._node = None
        self._vc = [0]
        self.grad = None
        self._requires_grad = bool(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` did not match: missing and unexpected keys."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and define
    ``forward``; calling the module runs ``forward``.
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__ because our own __setattr__ needs these dicts to exist. Plain
        # dicts (ordered, as PyTorch's registries since 2.0): reading and iterating them is
        # cheaper than an OrderedDict's, and every forward does.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # ---------------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called; "
                                 f"call super().__init__() first in {type(self).__name__}")
        params, bufs, mods = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter) or (value is None and name in params):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module) or (value is None and name in mods):
            self._forget(name)
            mods[name] = value
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} to buffer {name!r} "
                                f"(a Tensor or None is needed)")
            bufs[name] = value
        else:
            if name in params or name in mods:
                raise TypeError(f"cannot assign a {type(value).__name__} to {name!r}, which is "
                                f"a registered {'parameter' if name in params else 'module'}")
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        """Drop ``name`` from every registry and the plain attributes (it is being re-bound)."""
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self.__dict__.pop(name, None)
        self._non_persistent.discard(name)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, i.e. for registered names.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, e.g. for a layer without bias)."""
        self._check_name(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state saved in ``state_dict`` (unless not persistent) but not trained."""
        self._check_name(name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add a child module under ``name``."""
        self._check_name(name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got "
                            f"{type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    def _check_name(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() first in {type(self).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"invalid name {name!r}: a non-empty string without '.' is needed")

    # ---------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True
                      ) -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for this module and every descendant: each once, or, with
        ``remove_duplicate=False``, a shared module under every name it has (as PyTorch)."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:  # depth-first, children in registration order
            name, m = stack.pop()
            if remove_duplicate:
                if id(m) in seen:
                    continue
                seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()
                    if c is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant."""
        yield from self._module_list()  # a generator, as before (autograd.compile lists those)

    def _module_list(self) -> list["Module"]:
        """``modules()`` as a list, in ``named_modules``' order, without building the names:
        the walk under ``parameters()`` and ``zero_grad()``, which tutorials run every step
        (the named generators cost ~5 us on a 4-layer net)."""
        out = []
        seen: set[int] = set()
        stack = [self]
        while stack:  # depth-first, children in registration order
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            out.append(m)
            kids = m._modules
            if kids:
                stack.extend(c for c in reversed(kids.values()) if c is not None)
        return out

    def _unnamed(self, registry: str, recurse: bool) -> list[Tensor]:
        """The tensors of ``registry`` of this module (and, with ``recurse``, every descendant),
        each once, in ``_named``'s order."""
        seen: set[int] = set()
        out = []
        for m in self._module_list() if recurse else (self,):
            for t in getattr(m, registry).values():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    out.append(t)
        return out

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for the direct children."""
        return ((k, m) for k, m in self._modules.items() if m is not None)

    def children(self) -> Iterator["Module"]:
        """The direct children."""
        return (m for _, m in self.named_children())

    def _named(self, registry: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()  # a tensor shared by two layers is listed once, like PyTorch
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mname, m in mods:
            for k, t in getattr(m, registry).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mname}.{k}" if mname else k), t

    def named_parameters(self, prefix: str = "", recurse: bool = True
                         ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, e.g. ``("0.weight", W)``."""
        return self._named("_parameters", prefix, recurse)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter (each once), for an optimizer."""
        yield from self._unnamed("_parameters", recurse)  # type: ignore[misc]

    def named_buffers(self, prefix: str = "", recurse: bool = True
                      ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs."""
        return self._named("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer."""
        yield from self._unnamed("_buffers", recurse)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalar parameters (only those requiring grad if ``trainable_only``)."""
        return int(sum(p.size for p in self.parameters()
                       if p.requires_grad or not trainable_only))

    # ---------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (``mode=True``) or evaluation mode on this module and all below."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode: dropout off, BatchNorm uses its running statistics."""
        return self.train(False)

    @live  # autograd.compile replays it live
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None by default, else to zeros)."""
        for p in self._unnamed("_parameters", True):
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._wrap(np.zeros_like(p._data))

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze (True) every parameter."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every descendant and then this module (e.g. a custom initialiser)."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    def astype(self, dtype: Any) -> "Module":
        """Convert floating parameters and buffers to ``dtype`` in place (identities kept)."""
        dtype = np.dtype(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            if t._data.dtype.kind == "f" and t._data.dtype != dtype:
                t._update_(array=t._data.astype(dtype))
                if t.grad is not None:
                    t.grad = Tensor._wrap(t.grad._data.astype(dtype))
        return self

    def double(self) -> "Module":
        """Parameters and buffers as float64 (for gradient checks)."""
        return self.astype(np.float64)

    def float(self) -> "Module":
        """Parameters and buffers as float32."""
        return self.astype(np.float32)

    # ---------------------------------------------------------------- state
    def _state_tensors(self) -> "OrderedDict[str, Tensor]":
        """The tensors ``state_dict`` saves, by dotted name: parameters and persistent buffers,
        a shared module under each of its names (so the keys are PyTorch's)."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for mname, m in self.named_modules(remove_duplicate=False):
            for registry in (m._parameters, m._buffers):
                for k, t in registry.items():
                    if t is not None and not (registry is m._buffers and k in m._non_persistent):
                        out[f"{mname}.{k}" if mname else k] = t
        return out

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters and persistent buffers as copies of their arrays, by dotted name."""
        return OrderedDict((k, t._data.copy()) for k, t in self._state_tensors().items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True
                        ) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into the parameters and buffers, in place.

        Raises KeyError naming missing and unexpected keys when ``strict`` (else returns them),
        and ValueError naming every key whose shape differs (always, as PyTorch does).
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict for {type(self).__name__}: missing keys "
                           f"{missing}, unexpected keys {unexpected}")
        arrays = {k: np.asarray(v._data if isinstance(v, Tensor) else v)
                  for k, v in state_dict.items() if k in own}
        bad = [f"{k}: checkpoint {a.shape} vs model {own[k].shape}" for k, a in arrays.items()
               if a.shape != own[k].shape]
        if bad:
            raise ValueError(f"load_state_dict for {type(self).__name__}: shape mismatch for "
                             + "; ".join(bad))
        with no_grad():
            for k, a in arrays.items():
                t = own[k]
                # In place, so optimizers holding these tensors keep updating the same arrays.
                t._update_(a.astype(t._data.dtype, copy=False))
        return IncompatibleKeys(missing, unexpected)

    # ---------------------------------------------------------------- calling and printing
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cap = state.capture
        if cap is not None:  # autograd.compile guards on the modules a step calls
            cap.saw_module(self)
        if len(args) == 1 and not kwargs:  # one input: a plain call, which CPython inlines
            return self.forward(args[0])
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (its settings)."""
        return ""

    def __repr__(self) -> str:
        # PyTorch's layout: settings on one line, or settings and children indented below.
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({k}): " + repr(m).replace("\n", "\n  ")
                       for k, m in self._modules.items()]
        body = extra_lines + child_lines
        if not body:
            return f"{type(self).__name__}()"
        if len(extra_lines) == 1 and not child_lines:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))
