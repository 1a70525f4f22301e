"""``Optimizer``: parameter groups, per-parameter state and its (de)serialisation, as in
``torch.optim.Optimizer``.

Subclasses implement ``_update(group, params, arrays, grads)``, which must update all of a
group's parameters with one call of a fused kernel (``backend.k.sgd_step`` /
``backend.k.adam_step``), so the native provider runs a whole group in one call.
"""
from __future__ import annotations

import copy
import numbers
from typing import Any, Callable, Iterable

import numpy as np

from ..grad_mode import enable_grad
from ..grad_mode import state as _grad_state
from ..tensor import Tensor

_bump = Tensor._updated_

__all__ = ["Optimizer"]

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
    # zero_grad and step are live calls of autograd.compile (replayed for real at each replay,
    # see autograd.capture.live), spelled out: the check that capture.live's wrapper makes
    # sits at the top of each, so an eager call pays one thread-local read, not a wrapper
    # frame with its packed arguments (~0.1 us each, twice per training step). Each carries
    # ``__wrapped_live__`` (the function a replay calls), as a live-decorated one does.
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter (to None by default, else to zeros)."""
        cap = _grad_state.capture
        if cap is not None:  # tracing for autograd.compile: recorded as a live call
            cap.live_call(_zero_grad, (self, set_to_none), {})
            return
        if set_to_none is True:
            for g in self.param_groups:
                for p in g["params"]:
                    p.grad = None
            return
        _zero_grad(self, set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` (optional) recomputes and
        returns the loss first, as in PyTorch."""
        cap = _grad_state.capture
        if cap is not None:  # tracing: recorded as a live call (hyper-parameters and state are
            # read at each replay)
            return cap.live_call(_step, (self, closure), {})
        if closure is None and type(self)._update in KERNEL_ONLY_UPDATES:
            _update_groups(self)  # _step's common case, one call less
            return None
        return _step(self, closure)

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


def _zero_grad(opt: Optimizer, set_to_none: bool = True) -> None:
    """``opt.zero_grad(set_to_none)``: what a compiled step replays."""
    for g in opt.param_groups:
        for p in g["params"]:
            if p.grad is not None:
                p.grad = None if set_to_none else Tensor._wrap(np.zeros_like(p._data))


def _step(opt: Optimizer, closure: Callable[[], Any] | None = None) -> Any:
    """``opt.step(closure)``: what a compiled step replays."""
    loss = None
    if closure is not None:
        with enable_grad():
            loss = closure()
    # The update runs with grad recording off (as PyTorch's), unless it is one of ours, which
    # only call kernels on arrays and record nothing either way: then the thread-local flag is
    # left alone (reading and restoring it costs about what a small network's checks do).
    if type(opt)._update not in KERNEL_ONLY_UPDATES:
        prev = _grad_state.grad_enabled
        _grad_state.grad_enabled = False
        try:
            _update_groups(opt)
        finally:
            _grad_state.grad_enabled = prev
        return loss
    _update_groups(opt)
    return loss


#: ``_update`` methods that only call kernels on arrays (SGD's, Adam's): no op is recorded.
KERNEL_ONLY_UPDATES: set[Callable[..., None]] = set()


def _update_groups(opt: Optimizer) -> None:
    """One pass over each group's parameters that checks and gathers the arrays its update
    kernel takes (spelled out, no comprehension: it runs at every step), then the update and
    the version bumps."""
    for group in opt.param_groups:
        params = group["params"]
        arrays = []
        grads = []
        skipped = False
        for p in params:
            g = p.grad
            if g is None:
                skipped = True
                continue
            a = p._data
            ga = g._data
            if ga.shape != a.shape or (ga.dtype is not a.dtype and ga.dtype != a.dtype):
                raise ValueError(f"{type(opt).__name__}: gradient of shape {ga.shape} "
                                 f"({ga.dtype}) does not match its parameter {a.shape} "
                                 f"({a.dtype})")
            arrays.append(a)
            grads.append(ga)
        if not arrays:
            continue
        if skipped:
            params = [p for p in params if p.grad is not None]
        opt._update(group, params, arrays, grads)
        _bump(params)  # in place: graphs that saved them must notice


# What autograd.compile's replays call, and look up their fast replays by (autograd.jit.fast).
Optimizer.zero_grad.__wrapped_live__ = _zero_grad  # type: ignore[attr-defined]
Optimizer.step.__wrapped_live__ = _step  # type: ignore[attr-defined]
