"""``Tensor``: an ndarray that records the operations applied to it, and ``backward()``.

A Tensor holds a NumPy array (float32 by default, float64 for gradient checks; integer and
boolean tensors exist for indices and masks but never require grad). An op's output keeps the
``Node`` that made it; leaves are the tensors made by the user.
"""
from __future__ import annotations

import numbers
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeAlias

import numpy as np

from . import hooks as _hooks
from . import hotpath
from .capture import host_read, live
from .grad_mode import state
from .hotpath import core as _core

if TYPE_CHECKING:  # type checkers see the pure-Python twin, which has the annotations
    from ._core import TensorBase as _TensorBase
else:
    _TensorBase = _core.TensorBase

__all__ = ["Tensor", "as_tensor", "DEFAULT_DTYPE"]

#: An axis argument: one axis, several, or None for all.
Axis: TypeAlias = "int | tuple[int, ...] | list[int] | None"

DEFAULT_DTYPE = np.dtype(np.float32)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: The seed of a scalar loss's backward, per float dtype: copied, never handed out.
_SCALAR_ONES = {d: np.ones((), d) for d in _FLOATS}


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind == "f" and dtype not in _FLOATS:
        raise TypeError(f"tensor: unsupported floating dtype {dtype}; use float32 or float64")
    if dtype.kind not in "fiub":
        raise TypeError(f"tensor: unsupported dtype {dtype}; use float32, float64, an integer "
                        f"or a boolean dtype")


def _to_array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    """The array behind a new tensor: NumPy arrays keep their dtype; Python floats become
    float32 (the default), Python ints int64, unless ``dtype`` says otherwise."""
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        dtype = np.dtype(dtype)
        _check_dtype(dtype)
        return np.array(data, dtype=dtype, copy=copy or None)
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        arr = np.array(data, copy=copy or None)
    else:
        arr = np.asarray(data)
        if arr.dtype == np.dtype(object) or arr.dtype == np.dtype(np.uint64):
            _not_a_number(arr)  # None, or a Python int beyond int64 (as PyTorch refuses)
        if arr.dtype.kind == "f":
            if arr.size and float(np.max(np.abs(arr))) >= 2.0 ** 63:
                _no_huge_int(data)  # [1, 2**63] is float64 to NumPy, an overflow to PyTorch
            arr = arr.astype(DEFAULT_DTYPE)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64, copy=False)
    _check_dtype(arr.dtype)
    return arr


_INT64 = np.iinfo(np.int64)


def _not_a_number(arr: np.ndarray) -> None:
    """Raise for Python data NumPy could only hold as objects (None, strings, huge ints) or as
    uint64 (ints above int64): PyTorch refuses both, rather than giving NaN or wrapping."""
    for v in arr.flat:
        if not isinstance(v, numbers.Number):
            raise TypeError(f"tensor: cannot convert {v!r} (a {type(v).__name__}) to a number")
        if isinstance(v, numbers.Integral) and not _INT64.min <= int(v) <= _INT64.max:
            raise OverflowError(f"tensor: the integer {int(v)} does not fit in int64 (range "
                                f"{_INT64.min}..{_INT64.max})")
    raise TypeError(f"tensor: cannot convert data of element type {arr.dtype} to a tensor")


def _no_huge_int(data: Any) -> None:
    """Raise if nested Python data holds an int beyond int64 (NumPy made the list float)."""
    if isinstance(data, (list, tuple)):
        for v in data:
            _no_huge_int(v)
    elif isinstance(data, int) and not isinstance(data, bool) \
            and not _INT64.min <= data <= _INT64.max:
        raise OverflowError(f"tensor: the integer {data} does not fit in int64 (range "
                            f"{_INT64.min}..{_INT64.max})")


def as_tensor(data: Any, like: "Tensor | None" = None) -> "Tensor":
    """``data`` as a Tensor without copying a Tensor; a Python scalar takes ``like``'s dtype."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, complex):
        raise TypeError(f"cannot make a tensor of the complex number {data!r}: autograd has no "
                        f"complex dtypes")
    if like is not None and isinstance(data, numbers.Number) and not isinstance(data, bool):
        if like._data.dtype.kind != "f" and not isinstance(data, numbers.Integral):
            raise TypeError(f"cannot combine a {like.dtype} tensor with the float {data!r}; "
                            f"convert the tensor with .astype() first")
        return Tensor._wrap(np.asarray(data, dtype=like._data.dtype))
    return Tensor._wrap(_to_array(data, copy=False))


class Tensor(_TensorBase):
    """An n-dimensional array that can record a graph for reverse-mode differentiation.

    Create tensors with :func:`autograd.tensor` and friends; arithmetic, ``@``, indexing and the
    methods below build a graph when any input has ``requires_grad=True``.
    """

    # The storage (_data, _node, _requires_grad, grad and _vc, the version counter) is declared
    # by TensorBase in _core.py, compiled to C structs when built; this class adds the API.
    # _hooks (autograd.hooks) is left unset until a hook is registered, so making a tensor
    # costs nothing more.
    __slots__ = ("_hooks",)
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False):
        self._data = _to_array(data, dtype)
        self._node = None
        self._vc = [0]
        self.grad: Tensor | None = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    #: The fast constructor ops use: ``Tensor._wrap(array, node=None)``, no copy, no checks;
    #: ``node`` made it (None for leaves).
    _wrap = staticmethod(_core.wrap)

    @property
    def _version(self) -> int:
        """How many in-place changes the memory behind this tensor has seen."""
        return self._vc[0]

    @_version.setter
    def _version(self, value: int) -> None:
        self._vc[0] = value

    # ---------------------------------------------------------------- attributes
    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self._data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, not {self._data.dtype}")
        if not value and self._node is not None:
            raise RuntimeError("requires_grad can only be cleared on a leaf; use .detach()")
        self._requires_grad = bool(value)

    @property
    def data(self) -> np.ndarray:
        """The underlying array (changes to it are not tracked by the version counter)."""
        if state.capture is not None:
            host_read("Tensor.data")
        return self._data

    # shape, ndim and dtype are TensorBase's (compiled with the hot path).

    @property
    def size(self) -> "_Size":
        """The number of elements (NumPy's ``a.size``); called, ``t.size()`` is the shape and
        ``t.size(d)`` the length of axis ``d`` (PyTorch's ``t.size()``)."""
        return _Size(self._data.shape)

    @property
    def is_leaf(self) -> bool:
        """True for tensors the user made (no op made them)."""
        return self._node is None

    @property
    def T(self) -> "Tensor":
        """The tensor with its axes reversed."""
        return F.transpose(self)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator["Tensor"]:
        return (self[i] for i in range(len(self)))

    # ---------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (shares memory; a tensor requiring grad is not copied)."""
        if state.capture is not None:
            host_read("Tensor.numpy()")
        return self._data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if state.capture is not None:
            host_read("np.asarray(tensor)")
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, "
                             f"this one has shape {self.shape}")
        if state.capture is not None:
            host_read("Tensor.item() (or float()/int() of a tensor)")
        return self._data.item()

    def tolist(self) -> Any:
        """The value as nested Python lists."""
        if state.capture is not None:
            host_read("Tensor.tolist()")
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        if state.capture is not None:
            host_read("bool(tensor) (an `if`, `while`, `and` or `or` on a tensor)")
        return bool(self._data.item())

    def detach(self) -> "Tensor":
        """The same values (shared memory, shared version counter) cut off from the graph."""
        t = Tensor._wrap(self._data)
        t._vc = self._vc
        return t

    def astype(self, dtype: Any) -> "Tensor":
        """A copy converted to ``dtype`` (not differentiable across the conversion)."""
        dtype = np.dtype(dtype)
        _check_dtype(dtype)
        return Tensor._wrap(self._data.astype(dtype))

    def float(self) -> "Tensor":
        """A float32 copy (or self when already float32); differentiable, as in PyTorch."""
        return F.to(self, np.float32)

    def double(self) -> "Tensor":
        """A float64 copy (or self when already float64); differentiable, as in PyTorch."""
        return F.to(self, np.float64)

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", precision=4, threshold=50,
                               prefix="tensor(")
        extra = [] if self._data.dtype == DEFAULT_DTYPE else [f"dtype={self._data.dtype}"]
        if self._node is not None:
            extra.append(f"grad_fn={self._node.op.name}")
        elif self._requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extra) + ")"

    # ---------------------------------------------------------------- backward
    def backward(self, grad: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Any = None) -> None:
        """Accumulate d self / d leaf into every leaf's ``.grad``.

        ``grad`` is d loss / d self; it may be omitted only for a one-element tensor.
        The graph's saved arrays are freed afterwards unless ``retain_graph=True`` (which
        defaults to ``create_graph``). ``create_graph=True`` records the backward pass, so the
        ``.grad`` it gives can be differentiated again; ``inputs`` (Tensors) limits the
        accumulation to those, as in PyTorch.
        """
        if not self._requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph; "
                               "create the inputs with requires_grad=True")
        if grad is None and not create_graph and inputs is None:
            a = self._data
            if a.ndim == 0:  # a scalar loss (every training step): a copy of a kept 1 of its
                # dtype (0.07 us, not np.ones' 0.22), the rest of the checks not needed
                one = _SCALAR_ONES.get(a.dtype)
                if one is not None:
                    hotpath.engine_module.run_backward(self, one.copy(), bool(retain_graph))
                    return
        if create_graph or inputs is not None:
            from .gradients import backward as _recorded_backward
            if grad is None and self._data.size != 1:
                raise RuntimeError(f"backward: grad can be implied only for a one-element "
                                   f"tensor; this one has shape {self.shape}, so pass grad=")
            _recorded_backward(self, grad, retain_graph, create_graph, inputs)
            return
        if grad is None:
            if self._data.size != 1:
                raise RuntimeError(f"backward: grad can be implied only for a one-element "
                                   f"tensor; this one has shape {self.shape}, so pass grad=")
            a = self._data
            one = _SCALAR_ONES.get(a.dtype) if a.ndim == 0 else None
            if one is not None:  # a scalar loss: a copy of a kept 1 (0.07 us, not 0.22)
                g = one.copy()
            else:
                g = np.empty(a.shape, dtype=a.dtype)
                g.fill(1)  # not np.ones: a Python-level function, 0.5 us more per backward
        else:
            g = np.asarray(grad._data if isinstance(grad, Tensor) else grad)
            a = self._data
            if g.shape != a.shape or (g.dtype is not a.dtype and g.dtype != a.dtype):
                raise ValueError(f"backward: grad of shape {g.shape} and dtype {g.dtype} does "
                                 f"not match the tensor's {self.shape} and {self.dtype}")
        hotpath.engine_module.run_backward(self, g, bool(retain_graph))

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> Any:
        """Call ``hook(grad)`` each time the gradient with respect to this tensor is computed
        in a backward pass; if it returns a tensor, that replaces the gradient (it must keep
        its shape and dtype). On a leaf the hook runs before ``.grad`` is accumulated, on
        other tensors before the gradient flows on. Returns a handle whose ``remove()``
        unregisters the hook. The hook lives as long as this tensor (as in PyTorch)."""
        return _hooks.register_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[["Tensor"], None]) -> Any:
        """Call ``hook(tensor)`` (this leaf) once per backward pass, after ``.grad`` has
        accumulated the pass's gradient; it returns None and may change ``.grad`` in place.
        Only leaves accumulate ``.grad``, so only they take this hook. Returns a handle whose
        ``remove()`` unregisters it."""
        return _hooks.register_post_accumulate_grad_hook(self, hook)

    # _accumulate_grad(g), called by the engine on leaves, is TensorBase's (compiled).

    # ---------------------------------------------------------------- the one in-place path
    def _update_(self, values: Any = None, *, array: np.ndarray | None = None) -> "Tensor":
        """The one way library code changes a tensor's values; it bumps the version counter,
        so a graph that saved the old values refuses to backward through them.

        ``_update_(values)`` writes ``values`` (broadcast, cast to this dtype) into the tensor's
        memory: views and optimizers holding the array see the change. ``_update_(array=a)``
        makes ``a`` the tensor's storage (a dtype conversion, a replaced gradient).
        ``_update_()`` records that a kernel already wrote the memory in place (the optimizer
        kernels update every parameter in one call). No grad-mode or leaf checks: this is for
        library code that knows what it writes; users call ``copy_``, ``add_``, ``fill_``...
        """
        if array is not None:
            self._data = array
        elif values is not None:
            self._data[...] = values
        self._vc[0] += 1
        return self

    #: ``Tensor._updated_(tensors)``: ``t._update_()`` for each tensor of a list, in one
    #: compiled loop (an optimizer kernel already wrote a whole parameter group in place).
    _updated_ = staticmethod(_core.bump_versions)

    # ---------------------------------------------------------------- in place (leaves only)
    def _inplace(self, name: str) -> None:
        if self._node is not None:
            raise RuntimeError(f"{name}: in-place changes are only allowed on leaf tensors; "
                               f"this one was made by {self._node.op.name}")
        if self._requires_grad and state.grad_enabled:
            raise RuntimeError(f"{name}: in-place change of a leaf that requires grad; wrap "
                               f"it in `with autograd.no_grad():` (as optimizers do)")

    def _operand(self, other: Any) -> np.ndarray:
        o = as_tensor(other, like=self)._data
        if o.dtype != self._data.dtype:
            raise TypeError(f"in-place: cannot update a {self.dtype} tensor with {o.dtype} "
                            f"values; convert explicitly")
        if o.shape != self._data.shape and _broadcast(self._data.shape, o.shape) != self.shape:
            raise ValueError(f"in-place: a value of shape {o.shape} cannot update a tensor "
                             f"of shape {self.shape}")
        return o

    @live  # autograd.compile replays in-place updates live
    def add_(self, other: Any, alpha: float = 1.0) -> "Tensor":
        """self += alpha * other, in place."""
        o = self._operand(other)
        self._inplace("add_")
        self._data += o if alpha == 1.0 else o * self._data.dtype.type(alpha)
        return self._update_()

    @live  # autograd.compile replays in-place updates live
    def sub_(self, other: Any) -> "Tensor":
        """self -= other, in place."""
        o = self._operand(other)
        self._inplace("sub_")
        self._data -= o
        return self._update_()

    @live  # autograd.compile replays in-place updates live
    def mul_(self, other: Any) -> "Tensor":
        """self *= other, in place."""
        o = self._operand(other)
        self._inplace("mul_")
        self._data *= o
        return self._update_()

    @live  # autograd.compile replays in-place updates live
    def div_(self, other: Any) -> "Tensor":
        """self /= other, in place."""
        o = self._operand(other)
        self._inplace("div_")
        self._data /= o
        return self._update_()

    @live  # autograd.compile replays in-place updates live
    def copy_(self, other: Any) -> "Tensor":
        """Overwrite the values with ``other``'s (same dtype, broadcastable), in place."""
        o = self._operand(other)
        self._inplace("copy_")
        return self._update_(o)

    @live  # autograd.compile replays in-place updates live
    def fill_(self, value: float) -> "Tensor":
        """Set every element to ``value``, in place."""
        self._inplace("fill_")
        self._data.fill(value)
        return self._update_()

    def zero_(self) -> "Tensor":
        """Set every element to zero, in place."""
        return self.fill_(0)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    # ---------------------------------------------------------------- operators
    # + - * / and unary - are TensorBase's (autograd/_core.py): tensor with tensor goes straight
    # to apply, anything else through functional.
    def __pow__(self, o): return F.pow(self, o)
    def __rpow__(self, o): return F.pow(o, self)
    def __matmul__(self, o): return F.matmul(self, o)
    def __rmatmul__(self, o): return F.matmul(o, self)
    def __pos__(self): return self
    def __abs__(self): return F.abs(self)
    def __getitem__(self, index): return F.getitem(self, index)

    # Comparisons give boolean tensors and record nothing. == and != stay identity-based so
    # tensors remain usable as dict keys; use .eq() / .ne() for elementwise equality.
    def _compare(self, other: Any, op: str) -> "Tensor":
        # A Python number is compared by value (an int tensor < 1.5 is True at 1, as in
        # PyTorch), not first cast to the tensor's dtype.
        if isinstance(other, numbers.Real) and not isinstance(other, np.ndarray):
            o = other
        else:
            o = as_tensor(other, like=self)._data
        return Tensor._wrap(np.asarray(state.k.compare(self._data, o, op)))

    def __lt__(self, o): return self._compare(o, "lt")
    def __le__(self, o): return self._compare(o, "le")
    def __gt__(self, o): return self._compare(o, "gt")
    def __ge__(self, o): return self._compare(o, "ge")

    def eq(self, other: Any) -> "Tensor":
        """Elementwise equality as a boolean tensor."""
        return self._compare(other, "eq")

    def ne(self, other: Any) -> "Tensor":
        """Elementwise inequality as a boolean tensor."""
        return self._compare(other, "ne")

    __hash__ = object.__hash__

    # ---------------------------------------------------------------- methods
    def sum(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """The sum over ``axis`` (all axes when None); see :func:`autograd.sum`."""
        return F.sum(self, axis, keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """The mean over ``axis`` (all axes when None); see :func:`autograd.mean`."""
        return F.mean(self, axis, keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """The maximum over ``axis`` (ties share the gradient); see :func:`autograd.max`."""
        return F.max(self, axis, keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """The minimum over ``axis`` (ties share the gradient); see :func:`autograd.min`."""
        return F.min(self, axis, keepdims)

    def var(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> "Tensor":
        """The variance over ``axis`` with ``ddof`` delta degrees of freedom."""
        return F.var(self, axis, keepdims, ddof)

    def reshape(self, *shape: int | Sequence[int]) -> "Tensor":
        """The same values in a new shape (one dimension may be -1)."""
        return F.reshape(self, *shape)

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> "Tensor":
        """The axes ``start_axis..end_axis`` merged into one; see :func:`autograd.flatten`."""
        return F.flatten(self, start_axis, end_axis)

    def transpose(self, axis0: int | None = None, axis1: int | None = None) -> "Tensor":
        """Two axes swapped, or all axes reversed when none are given."""
        return F.transpose(self, axis0, axis1)

    def permute(self, *axes: int | Sequence[int]) -> "Tensor":
        """The axes reordered as ``axes``."""
        return F.permute(self, *axes)

    def expand(self, *shape: int | Sequence[int]) -> "Tensor":
        """A broadcast view to ``shape`` (-1 keeps a dimension); gradients are summed back."""
        return F.expand(self, *shape)

    def matmul(self, other: Any) -> "Tensor":
        """The matrix product ``self @ other``."""
        return F.matmul(self, other)

    def exp(self) -> "Tensor":
        """The elementwise exponential."""
        return F.exp(self)

    def log(self) -> "Tensor":
        """The elementwise natural logarithm."""
        return F.log(self)

    def sqrt(self) -> "Tensor":
        """The elementwise square root."""
        return F.sqrt(self)

    def abs(self) -> "Tensor":
        """The elementwise absolute value."""
        return F.abs(self)

    def clip(self, min: "float | Tensor | None" = None,  # noqa: A002
             max: "float | Tensor | None" = None) -> "Tensor":  # noqa: A002
        """Values limited to [min, max] (numbers or tensors); see :func:`autograd.clip`."""
        return F.clip(self, min, max)

    def sigmoid(self) -> "Tensor":
        """The elementwise logistic sigmoid."""
        return F.sigmoid(self)

    def tanh(self) -> "Tensor":
        """The elementwise hyperbolic tangent."""
        return F.tanh(self)

    def relu(self) -> "Tensor":
        """The elementwise max(x, 0)."""
        return F.relu(self)

    def softmax(self, axis: int = -1) -> "Tensor":
        """The softmax over ``axis``."""
        return F.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> "Tensor":
        """The log of the softmax over ``axis``, computed stably."""
        return F.log_softmax(self, axis)

    def logsumexp(self, axis: Axis = -1, keepdims: bool = False) -> "Tensor":
        """log(sum(exp(x))) over ``axis`` (one or several), computed stably."""
        return F.logsumexp(self, axis, keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> "Tensor":
        """Indices of the maxima (int64, not differentiable); ``dim=``/``keepdim=`` too."""
        return F.argmax(self, axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> "Tensor":
        """Indices of the minima (int64, not differentiable); ``dim=``/``keepdim=`` too."""
        return F.argmin(self, axis, keepdims)

    # ---------------------------------------------------------------- PyTorch's names
    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for ``ndim``)."""
        return self._data.ndim

    def numel(self) -> int:
        """The number of elements (PyTorch's name for ``size``)."""
        return self._data.size

    def unsqueeze(self, dim: int) -> "Tensor":
        """A view with a new axis of length 1 at ``dim``."""
        return F.unsqueeze(self, dim)

    def squeeze(self, dim: Any = None, *, axis: Any = None) -> "Tensor":
        """A view without axes of length 1 (all, or those among ``dim``, or NumPy's ``axis``)."""
        return F.squeeze(self, dim, axis=axis)

    def view(self, *shape: Any) -> "Tensor":
        """PyTorch's name for :meth:`reshape`."""
        return F.reshape(self, *shape)

    def clone(self) -> "Tensor":
        """A copy with its own memory; gradients flow through it."""
        return F.clone(self)

    def to(self, *args: Any, dtype: Any = None, device: Any = None, copy: bool = False
           ) -> "Tensor":
        """Convert to a dtype: ``t.to(ag.float64)``, ``t.to(other_tensor)``, ``t.to("cpu")``.

        Differentiable between float32 and float64 (the gradient is cast back); the same
        dtype gives ``self`` unless ``copy=True``. The only device is the CPU.
        """
        for a in args + ((str(device),) if device is not None else ()):
            if isinstance(a, Tensor):
                dtype = a.dtype if dtype is None else dtype
            elif isinstance(a, str) and a.split(":")[0] == "cpu":
                continue
            elif isinstance(a, str) and a.split(":")[0] in ("cuda", "mps", "xpu", "meta"):
                raise ValueError(f"to: device {a!r} is not available; autograd runs on the CPU")
            else:
                dtype = a if dtype is None else dtype
        if dtype is None:
            return F.clone(self) if copy else self
        return F.to(self, dtype, copy)

    def cpu(self) -> "Tensor":
        """``self``: every tensor lives on the CPU."""
        return self

    def std(self, axis: Any = None, keepdims: bool = False, ddof: int = 0, **kwargs: Any
            ) -> "Tensor":
        """Standard deviation (divides by n unless ``ddof``/``correction``; see F.std)."""
        return F.std(self, axis, keepdims, ddof, **kwargs)

    def prod(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        """Product over ``axis``, with an exact gradient at zeros."""
        return F.prod(self, axis, keepdims)

    def norm(self, p: Any = 2, axis: Any = None, keepdims: bool = False) -> "Tensor":
        """The vector p-norm over ``axis`` (all elements by default)."""
        return F.norm(self, p, axis, keepdims)

    def pow(self, exponent: Any) -> "Tensor":
        """self ** exponent."""
        return F.pow(self, exponent)

    def retain_grad(self) -> None:
        """Make backward fill this non-leaf tensor's ``.grad`` too (leaves always get theirs),
        accumulating like a leaf's; it sees the gradient as this tensor's hooks registered
        before it leave it. A gradient hook does the work (see :meth:`register_hook`)."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad, so it never "
                               "gets a gradient")
        if self._node is None or self.retains_grad:
            return
        ref = weakref.ref(self)

        def keep(grad: "Tensor") -> None:
            t = ref()
            if t is not None:
                t._accumulate_grad(np.array(grad._data, copy=True))
        keep._retains_grad = True  # type: ignore[attr-defined]
        self.register_hook(keep)

    @property
    def retains_grad(self) -> bool:
        """Whether :meth:`retain_grad` was called on this non-leaf tensor."""
        entry = getattr(self, "_hooks", None)
        return (self._node is not None and entry is not None and entry.node is self._node
                and any(getattr(fn, "_retains_grad", False) for fn in entry.pre.values()))

    @property
    def grad_fn(self) -> Any:
        """The graph node that made this tensor (None for leaves): ``grad_fn.op.name`` names
        the op, ``grad_fn.inputs`` are its input tensors."""
        return self._node

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place and return self (PyTorch's spelling)."""
        self.requires_grad = requires_grad
        return self


class _Size(int):
    """What ``Tensor.size`` gives: the number of elements, as NumPy's ``a.size`` (an int in
    every way), and, called, the shape, as PyTorch's ``t.size()`` (``t.size(d)``: one axis)."""

    def __new__(cls, shape: tuple[int, ...]) -> "_Size":
        n = 1
        for d in shape:
            n *= d
        self = int.__new__(cls, n)
        self._shape = shape
        return self

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self._shape
        if not isinstance(dim, numbers.Integral) or not -len(self._shape) <= dim < len(
                self._shape):
            raise IndexError(f"size: dim {dim} is out of range for a tensor of shape "
                             f"{self._shape}")
        return self._shape[dim]

    def __reduce__(self) -> tuple:
        return (int, (int(self),))


_core.set_tensor_class(Tensor, as_tensor)

from . import functional as F  # noqa: E402  (functional builds on Tensor)
from .ops import arith as _arith  # noqa: E402

_core.set_operators(F, _arith)
from .function import broadcast_shape as _broadcast  # noqa: E402

# PyTorch's keywords (dim=, keepdim=, ...) for the methods that take NumPy's (axis=, ...), and
# max/min(dim=) returning (values, indices): the same wrappers as the functions in functional.
for _name in ("sum", "mean", "var", "logsumexp", "softmax", "log_softmax", "flatten",
              "transpose", "argmax", "argmin", "std", "prod", "norm"):
    setattr(Tensor, _name, F.accepts_torch_names(getattr(Tensor, _name)))
Tensor.max = F._extremum_torch(Tensor.max, F.argmax)
Tensor.min = F._extremum_torch(Tensor.min, F.argmin)
del _name
