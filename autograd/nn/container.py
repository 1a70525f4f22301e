"""Containers: ``Sequential`` (with Linear + activation fusion) and ``Residual``."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, overload

from .. import functional as F
from ..function import apply_to
from ..ops import linalg
from ..tensor import Tensor
from .layers import Linear, ReLU, Sigmoid, Tanh
from .module import Module

__all__ = ["Sequential", "Residual"]

# The activations the fused linear kernel knows; matched by exact type, so a subclass that
# overrides forward is never fused behind its back.
_FUSABLE = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}
_LINEAR = linalg.Linear  # the op functional.linear applies


class Sequential(Module):
    """Modules applied one after another; indexable, iterable, with ``len`` and ``append``.

    ``Sequential(a, b, c)`` names its children "0", "1", "2"; ``Sequential(OrderedDict(...))``
    keeps the given names. In ``forward``, a ``Linear`` directly followed by ``ReLU``,
    ``Sigmoid`` or ``Tanh`` runs as one fused ``functional.linear(..., activation=...)`` call
    (one kernel forward, one backward); the two layers stay separate modules for ``repr`` and
    ``state_dict``. Set ``fuse=False`` to run every layer on its own (same results).
    """

    def __init__(self, *modules: Module, fuse: bool = True):
        super().__init__()
        self.fuse = bool(fuse)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)
        self._replan(tuple(self._modules.values()))

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child; only Modules may go in a Sequential."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: element {name!r} is a {type(module).__name__}, not "
                            f"a Module")
        super().add_module(name, module)

    def append(self, module: Module) -> "Sequential":
        """Add ``module`` at the end."""
        self.add_module(str(len(self)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> "Sequential": ...

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]), fuse=self.fuse)
        try:
            return items[index][1]
        except (IndexError, TypeError):
            raise IndexError(f"Sequential: index {index!r} is out of range for {len(self)} "
                             f"modules") from None

    def forward(self, x: Tensor) -> Tensor:
        """Apply each module in order, fusing Linear + activation pairs."""
        # The steps (which pairs fuse) are planned once per arrangement of the children and
        # kept with the tuple of children they were planned for: any change to the children
        # (replaced, appended, deleted, however it was done) or to ``fuse`` plans again.
        mods = tuple(self._modules.values())
        plan = self.__dict__.get("_plan")
        if plan is None or plan[0] != mods or plan[1] is not self.fuse:
            plan = self._replan(mods)
        for step in plan[2]:
            activation = step[1]
            if activation is None:
                x = step[0](x)
                continue
            params = step[0]._parameters  # read at each call (a parameter may be replaced),
            # and not as m.weight: see Linear.forward
            w = params["weight"]
            b = params.get("bias")
            # functional.linear checks the layer's weight, bias and activation against the
            # input; once it has accepted them (``accepted``: those very objects, their very
            # arrays and the input width), a 2-D Tensor of that width is accepted too, so it
            # goes to the op as functional.linear would send it, without the checks again
            # (and with the step's own {"activation": ...}, made once: see apply_to).
            accepted = step[2]
            if (accepted is not None and type(x) is Tensor and accepted[0] is w
                    and accepted[2] is b and w._data is accepted[1]
                    and (b is None or b._data is accepted[3])):
                xs = x._data.shape
                if len(xs) == 2 and xs[1] == accepted[4]:
                    x = apply_to(_LINEAR, (x, w) if b is None else (x, w, b), step[3])
                    continue
            x = F.linear(x, w, b, activation=activation)
            step[2] = (w, w._data, b, None if b is None else b._data, w._data.shape[1])
        return x

    def _replan(self, mods: tuple) -> tuple:
        """Plan ``forward`` for the children ``mods``: (mods, fuse, steps), each step a list
        [module to call, None, None, None], or [Linear, the activation fused into it (its
        module then has no step of its own), what functional.linear last accepted for it, the
        op's keyword parameters {"activation": ...}]. Kept as
        the private attribute ``_plan`` (made at construction too, so it is there before any
        call)."""
        fuse = self.fuse
        steps = []
        n = len(mods)
        i = 0
        while i < n:
            m = mods[i]
            if fuse and type(m) is Linear and i + 1 < n and type(mods[i + 1]) in _FUSABLE:
                activation = _FUSABLE[type(mods[i + 1])]
                steps.append([m, activation, None, {"activation": activation}])
                i += 2
            else:
                steps.append([m, None, None, None])
                i += 1
        plan = (mods, fuse, tuple(steps))
        object.__setattr__(self, "_plan", plan)
        return plan


class Residual(Module):
    """x + block(x): a skip connection around ``block`` (which must keep x's shape)."""

    def __init__(self, block: Module):
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        """x + block(x)."""
        y = self.block(x)
        if y.shape != x.shape:
            raise ValueError(f"Residual: the block maps shape {x.shape} to {y.shape}; a "
                             f"residual connection needs the same shape")
        return x + y
