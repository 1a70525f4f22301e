"""``Optimizer``: parameter groups, per-parameter state and its (de)serialisation, as in
``torch.optim.Optimizer``.

Subclasses implement ``_update(group, params, arrays, grads)``, which must update all of a
group's parameters with one call of a fused kernel (``backend.k.sgd_step`` /
``backend.k.adam_step``), so the native provider runs a whole group in one call.
"""
from __future__ import annotations

import copy
import numbers
from typing import Any, Iterable

import numpy as np

from .. import hotpath
from ..tensor import Tensor
from . import _fused as _py_fused

__all__ = ["Optimizer"]

#: What a step repeats (gather and check each group's arrays, update, bump versions; SGD's and
#: Adam's updates): ``autograd.optim._cfused`` (``_fused.py`` compiled by Cython) with the
#: compiled hot path, else ``_fused`` itself. ``backend.info()["optim"]`` says which.
fused = hotpath.compiled_twin("autograd.optim._cfused") or _py_fused
twin: str = "python" if fused is _py_fused else "compiled"

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class: holds ``param_groups`` (dicts with 'params' and hyperparameters) and
    ``state`` (a dict from parameter to its state, e.g. momentum buffers).

    ``params`` is an iterable of tensors, or of dicts ``{"params": [...], "lr": ...}`` whose
    missing hyperparameters take the ``defaults``.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of tensors or "
                            f"dicts, not a single Tensor (wrap it in a list)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # ---------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. a lower lr)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: expected a dict, got "
                            f"{type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("add_param_group: the group has no 'params'")
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} of a group is a "
                                f"{type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can only optimize leaf tensors; "
                                 f"parameter {i} (shape {p.shape}) was made by an op")
            if p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: parameter {i} has dtype {p.dtype}; "
                                f"only floating tensors can be optimized")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter appears twice in one group")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one "
                             f"parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        group["params"] = params
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid hyperparameter of ``group`` (subclasses extend)."""
        lr = group.get("lr")
        if not isinstance(lr, numbers.Real) or not lr >= 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr!r} (must be a "
                             f"number >= 0)")
        wd = group.get("weight_decay", 0.0)
        if not isinstance(wd, numbers.Real) or not wd >= 0:
            raise ValueError(f"{type(self).__name__}: invalid weight_decay {wd!r} (must be "
                             f">= 0)")

    # ---------------------------------------------------------------- stepping
    # zero_grad and step (and the loop step runs) are in the optimizers' compiled twin,
    # autograd/optim/_fused.py, bound here: compiled, an eager step runs from this call to the
    # update kernel without a Python frame. Both are live calls of autograd.compile.
    zero_grad = fused.zero_grad
    step = fused.step

    def _update(self, group: dict[str, Any], params: list[Tensor], arrays: list[np.ndarray],
                grads: list[np.ndarray]) -> None:
        """Update ``params`` (the group's parameters that have a gradient) in place: their
        arrays and their gradients' arrays are given, checked to match in shape and dtype."""
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array or number}}, "param_groups": [...]}`` with
        parameters replaced by their index across groups, as PyTorch; arrays are copies."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state from :meth:`state_dict` (same parameter layout).

        Raises ValueError when the number of groups or of parameters per group differs, or a
        state array's shape does not match its parameter.
        """
        groups = state_dict.get("param_groups")
        saved_state = state_dict.get("state")
        if not isinstance(groups, list) or not isinstance(saved_state, dict):
            raise ValueError("load_state_dict: expected a dict with 'state' and 'param_groups'")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: the state has {len(groups)} parameter groups, "
                             f"this optimizer {len(self.param_groups)}")
        lookup: dict[int, Tensor] = {}
        for i, (mine, theirs) in enumerate(zip(self.param_groups, groups)):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(f"load_state_dict: group {i} has {len(theirs['params'])} "
                                 f"parameters in the state, {len(mine['params'])} here")
            lookup.update(zip(theirs["params"], mine["params"]))
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, entries in saved_state.items():
            p = lookup.get(int(key))
            if p is None:
                raise ValueError(f"load_state_dict: state for unknown parameter index {key}")
            restored = {}
            for name, v in entries.items():
                if isinstance(v, (np.ndarray, Tensor)):
                    a = np.array(v._data if isinstance(v, Tensor) else v, dtype=p.dtype)
                    if a.shape != p.shape:
                        raise ValueError(f"load_state_dict: state {name!r} of parameter {key} "
                                         f"has shape {a.shape}, the parameter {p.shape}")
                    restored[name] = a
                else:
                    restored[name] = copy.deepcopy(v)
            new_state[p] = restored
        self.state = new_state
        for mine, theirs in zip(self.param_groups, groups):
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = copy.deepcopy(v)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


#: What compiled steps replay (``opt.zero_grad(set_to_none)``, ``opt.step(closure)``), and the
#: ``_update`` methods that only call kernels on arrays (SGD's, Adam's: no op is recorded): the
#: running twin's.
_zero_grad = fused._zero_grad
_step = fused._step
KERNEL_ONLY_UPDATES = fused.KERNEL_ONLY_UPDATES


# What autograd.compile's replays call, and look up their fast replays by (autograd.jit.fast).
Optimizer.zero_grad.__wrapped_live__ = _zero_grad  # type: ignore[attr-defined]
Optimizer.step.__wrapped_live__ = _step  # type: ignore[attr-defined]
