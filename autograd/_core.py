"""The hot path every op pays for: Tensor storage, ``apply`` and the ``Node`` it records.

This file is plain Python and is the readable twin: the build compiles it with Cython into
``autograd._ccore`` (same source; ``_core.pxd`` declares the C types: ``TensorBase`` and ``Node``
become C structs, ``apply`` reads their fields directly), and ``autograd.hotpath`` picks one at
import. The op table (``autograd/ops``) and everything above it never see the difference; the
tests check that both give the same gradients bit for bit.
"""
from __future__ import annotations

import os
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

from . import errors as _errors_module
from .errors import InplaceModificationError, mixed_dtypes_message
from .grad_mode import state

# The compiled twin takes a few C shortcuts (csrc/hot.h, declared in _core.pxd) where this file
# spells a fact in Python: an ndarray's shape and dtype read from its C struct instead of built
# as objects, and the thread's grad_mode.state read from its dict with no threading.local
# lookup. Each sits under ``if _COMPILED:`` beside the Python it stands for and answers the same;
# the pure twin runs only the Python (the test is a C constant in the compiled twin, one global
# read here).
try:
    import cython
    _COMPILED = cython.compiled
except ImportError:  # the pure twin runs without Cython
    _COMPILED = False

if TYPE_CHECKING:  # for the operators' annotations only (never imported at run time)
    from .tensor import Tensor

__all__ = ["TensorBase", "Node", "apply", "apply_to", "wrap", "pair", "kernels",
           "broadcast_shape", "set_operators", "set_tensor_class", "bump_versions",
           "kernel_forward", "kernel_backward", "G", "X", "Y", "OUT", "wants"]

# The directory of the package's Python sources (errors.py is always one; this module may be the
# compiled twin, installed elsewhere in an editable install), whose frames origin() skips.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(_errors_module.__file__)) + os.sep
_ORIGIN_FRAMES = 4  # enough to see the line and its callers, short enough to read

_ndarray = np.ndarray
# The two floating dtypes, compared by identity first: reading ``dtype.kind`` builds a string.
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

#: The Tensor class ops return and the converter of other operands (autograd.tensor.Tensor and
#: as_tensor, registered when they are defined).
_Tensor: Any = None
_as_tensor: Any = None
#: autograd.functional and the arithmetic op table (autograd.ops.arith), for the operators.
_functional: Any = None
# The four ops the operators apply directly (C globals in the compiled twin: no module lookup
# per operator call).
_ADD: Any = None
_SUB: Any = None
_MUL: Any = None
_DIV: Any = None
_NO_PARAMS: dict = {}

if _COMPILED:
    ag_hot_init(np.ndarray, state)  # noqa: F821 - declared in _core.pxd (csrc/hot.h)


def set_tensor_class(cls: type, as_tensor: Any) -> None:
    """Register the class that ``wrap`` instantiates (a subclass of TensorBase) and the
    function that turns other operands into one (``as_tensor(data, like=None)``)."""
    global _Tensor, _as_tensor
    if not (isinstance(cls, type) and issubclass(cls, TensorBase)):
        raise TypeError(f"set_tensor_class: {cls!r} is not a subclass of TensorBase")
    _Tensor = cls
    _as_tensor = as_tensor


def set_operators(functional: Any, arith: Any) -> None:
    """Register what Tensor's arithmetic operators apply (done once by autograd.tensor)."""
    global _functional, _ADD, _SUB, _MUL, _DIV
    _functional = functional
    _ADD, _SUB, _MUL, _DIV = arith.Add, arith.Sub, arith.Mul, arith.Div


def kernels(module: Any = None) -> Any:
    """The calling thread's kernel provider (``autograd.backend.k`` is this property)."""
    if _COMPILED:
        return ag_state_get("k")  # noqa: F821
    return state.k


def pair(a: Any, b: Any) -> tuple:
    """Two operands as Tensors; a Python scalar takes the other operand's dtype."""
    if isinstance(a, TensorBase):
        if isinstance(b, TensorBase):
            return (a, b)
        return (a, _as_tensor(b, a))
    if isinstance(b, TensorBase):
        return (_as_tensor(a, b), b)
    return (_as_tensor(a, None), _as_tensor(b, None))


class TensorBase:
    """The storage of a Tensor (subclassed by :class:`autograd.Tensor`, which holds the API).

    ``_data`` the ndarray; ``_node`` the Node that made it (None for leaves); ``grad``;
    ``_vc`` the version counter, a one-element list shared by a tensor with its views and
    detached aliases (as in PyTorch), so an in-place change through any of them is seen by every
    graph that saved the memory they share.
    """

    __slots__ = ("_data", "_node", "_requires_grad", "grad", "_vc", "__weakref__")

    def __reduce_ex__(self, protocol: Any) -> tuple:
        # copy/deepcopy (and pickle) see the storage like a slotted class's, in both twins
        # (in the compiled one it is C fields), plus the slots a subclass adds (Tensor._hooks).
        return (_new, (type(self),), _state(self))

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def _accumulate_grad(self, g: np.ndarray) -> None:
        """Called by the engine on leaves: ``g`` is an array this leaf may keep."""
        _accumulate(self, g)

    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The element type (a NumPy dtype)."""
        return self._data.dtype

    # Arithmetic between two tensors of one float dtype goes straight down to ``_apply2`` (the op
    # and its checks are those of autograd.functional); anything else (scalars, arrays, mixed
    # dtypes) goes through functional, which owns the promotion rules.
    def __add__(self, other: Any) -> "Tensor":
        if _same_float(self, other):
            return _apply2(_ADD, self, other)
        return _functional.add(self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return _functional.add(other, self)

    def __sub__(self, other: Any) -> "Tensor":
        if _same_float(self, other):
            return _apply2(_SUB, self, other)
        return _functional.sub(self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return _functional.sub(other, self)

    def __mul__(self, other: Any) -> "Tensor":
        if _same_float(self, other):
            return _apply2(_MUL, self, other)
        return _functional.mul(self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return _functional.mul(other, self)

    def __truediv__(self, other: Any) -> "Tensor":
        if _same_float(self, other):
            return _apply2(_DIV, self, other)
        return _functional.div(self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return _functional.div(other, self)

    def __neg__(self) -> "Tensor":
        return _functional.neg(self)


_STORAGE = ("_data", "_node", "_requires_grad", "grad", "_vc")
_UNSET = object()


def _same_float(a: Any, b: Any) -> bool:
    """Both Tensors of one float dtype: the operators' direct path (the rest needs functional's
    promotion rules)."""
    if not isinstance(b, TensorBase):
        return False
    t = b
    if _COMPILED:
        x = a._data
        y = t._data
        if ag_is_array(x) and ag_is_array(y):  # noqa: F821
            return ag_same_float(x, y, _F32, _F64)  # noqa: F821
    d = a._data.dtype
    return t._data.dtype is d and (d is _F32 or d is _F64)


def _new(cls: type) -> Any:
    return TensorBase.__new__(cls)


def _state(t: Any) -> dict:
    names = list(_STORAGE)
    for klass in type(t).__mro__:
        if klass is TensorBase:
            continue
        for name in klass.__dict__.get("__slots__", ()):
            if name not in names and name not in ("__weakref__", "__dict__"):
                names.append(name)
    state = {}
    for name in names:
        value = getattr(t, name, _UNSET)
        if value is not _UNSET:
            state[name] = value
    return state


def wrap(array: Any, node: Any = None) -> Any:
    """A new Tensor around ``array`` (no copy, no checks); ``node`` made it (None for leaves)."""
    if not isinstance(array, _ndarray):
        # NumPy ufuncs return scalars (np.float64) for 0-d results; keep an ndarray so
        # .numpy(), in-place updates and .grad behave the same at every rank.
        cap = state.capture
        array = np.asarray(array) if cap is None else cap.asarray(array)
    if _COMPILED:  # TensorBase's tp_new, called directly (set_tensor_class checked _Tensor)
        t = ag_new(TensorBase, _Tensor)  # noqa: F821
    else:
        t = TensorBase.__new__(_Tensor)
    t._data = array
    t._node = node
    t._requires_grad = node is not None
    t.grad = None
    t._vc = [0]
    return t


class Node:
    """The record of one op application: its inputs, what it saved, and checks for backward.

    ``saved`` holds whatever the forward stored (arrays and parameters); ``needs`` says which
    inputs want a gradient; ``params`` keeps the forward's keyword arguments, so a
    ``create_graph`` backward can rerun the forward on Tensors (see ``autograd.gradients``).
    A node never references its output, so graphs hold no cycles.
    """

    __slots__ = ("op", "inputs", "needs", "saved", "versions", "trace", "freed", "params")

    def __init__(self, op: Any, inputs: tuple, params: dict | None = None):
        _record(self, op, inputs)
        self.params = params

    def check_versions(self) -> None:
        """Raise if an input whose array this node saved was changed in place since forward."""
        _check_versions(self)

    def release(self) -> None:
        """Drop the saved arrays (called after backward unless ``retain_graph=True``)."""
        self.saved = None
        self.freed = True

    def origin(self) -> str:
        """Where the forward created this node (recorded only under ``detect_anomaly``): the
        innermost frames outside autograd itself, i.e. the user's code that called the op."""
        if not self.trace:
            return "(creation site not recorded: run the forward inside detect_anomaly())"
        outside = [f for f in self.trace if not f.filename.startswith(_PACKAGE_DIR)]
        # (no negative index: the compiled twin is built with wraparound off)
        last = outside[max(0, len(outside) - _ORIGIN_FRAMES):]
        return "".join(traceback.format_list(last)).rstrip()

    def __repr__(self) -> str:
        return f"<Node {self.op.name}>"


# ``needs`` of one- and two-input nodes, built once: indexed by the inputs' requires_grad
# (False/True are 0/1), so recording an op allocates no tuple for them.
_NEEDS1 = ((False,), (True,))
_NEEDS2 = (((False, False), (False, True)), ((True, False), (True, True)))


def _record(node: Node, op: Any, inputs: tuple) -> None:
    node.op = op
    node.inputs = inputs
    node.saved = None
    node.trace = None
    node.freed = False
    n = len(inputs)
    if n == 2:  # most ops: no lists built
        t = inputs[0]
        u = inputs[1]
        node.needs = _NEEDS2[t._requires_grad][u._requires_grad]
        node.versions = (t._vc[0], u._vc[0])
        return
    if n == 1:  # the unary ops
        t = inputs[0]
        node.needs = _NEEDS1[t._requires_grad]
        node.versions = (t._vc[0],)
        return
    if n == 3:  # a linear layer with its bias
        t = inputs[0]
        u = inputs[1]
        w = inputs[2]
        node.needs = (t._requires_grad, u._requires_grad, w._requires_grad)
        node.versions = (t._vc[0], u._vc[0], w._vc[0])
        return
    # A plain loop: comprehensions are function calls in CPython 3.11, and this is the
    # per-op hot path.
    needs = []
    versions = []
    for t in inputs:
        needs.append(t._requires_grad)
        versions.append(t._vc[0])
    node.needs = tuple(needs)
    node.versions = tuple(versions)


def _check_versions(node: Node) -> None:
    if node.saved is None:  # nothing saved (add, sub, ...): no change in place can matter
        return
    versions = node.versions
    for i, t in enumerate(node.inputs):
        v = versions[i]
        if t._vc[0] != v and _holds(node.saved, t._data):
            raise InplaceModificationError(
                f"{node.op.name}: an input of shape {t.shape} that this op saved for "
                f"backward was modified in place (version {v} at forward, {t._version} "
                f"now); compute the gradient before changing it, or change a copy")


def _accumulate(t: TensorBase, g: np.ndarray) -> None:
    """Add ``g`` (an array the leaf ``t`` may keep) into ``t.grad``: the first gradient becomes
    ``.grad``, later ones are summed out of place (0-d sums are scalars: kept as arrays). Like
    ``Tensor._update_``, it bumps the version counter of the gradient it changes."""
    cap = ag_state_get("capture") if _COMPILED else state.capture  # noqa: F821
    if cap is not None:  # tracing for autograd.compile: replayed live (the .grad it sets)
        cap.live_call(_accumulate_now, (t, g), {})
        return
    _accumulate_now(t, g)


def _accumulate_now(t: TensorBase, g: np.ndarray) -> None:
    grad = t.grad
    if grad is None:
        t.grad = wrap(g, None)
    else:
        # the provider's add: the native one is one C call, 0.08 us less than ndarray's +
        # (same bits: one IEEE addition per element either way)
        if _COMPILED:
            total = ag_kernel(ag_state_get("k"), "add")(grad._data, g)  # noqa: F821
        else:
            total = state.k.add(grad._data, g)
        grad._data = total if isinstance(total, _ndarray) else np.asarray(total)
        grad._vc[0] += 1


def bump_versions(tensors: list) -> None:
    """Record that a kernel wrote each of ``tensors`` in place (``Tensor._update_()`` for many
    at once: an optimizer kernel updates a whole parameter group in one call)."""
    for t in tensors:
        t._vc[0] += 1


def _holds(saved: Any, array: np.ndarray) -> bool:
    if saved is array:
        return True
    if isinstance(saved, tuple):
        return any(s is array for s in saved)
    return False


class _Scratch:
    """Where an unrecorded forward stores what it would save; dropped with the call."""

    __slots__ = ("saved",)


def apply(op: Any, *inputs: Any, **params: Any) -> Any:
    """Run ``op`` on Tensor inputs and return the output Tensor, recording a Node if needed.

    One pass down: check the dtypes (and broadcasting), run the op's forward on the arrays,
    build one output Tensor and, when any input requires grad and grad mode is on, one Node.
    All floating inputs must share one dtype, and may be combined with boolean but not with
    integer tensors: mixing float32 and float64, or a float and an integer tensor (which NumPy
    would promote, e.g. float32 with int64 to float64), raises TypeError naming the op, rather
    than casting silently.
    """
    return _apply(op, inputs, params)


def apply_to(op: Any, inputs: tuple, params: dict) -> Any:
    """``apply(op, *inputs, **params)`` for a caller that holds the inputs as a tuple and the
    keyword parameters as a dict made once (a layer's fixed activation): no argument tuple or
    keyword dict is built per call. ``params`` becomes the node's ``params``, shared by every
    node made with it, so it must never be changed afterwards."""
    return _apply(op, inputs, params)


# ---------------------------------------------------------------- declared forward and gradient
# The hottest ops (add, mul, relu, ...) are one kernel forward and one kernel per gradient. Their
# op-table rows declare that (``forward = kernel_forward("mul", save="inputs")``, ``backward =
# kernel_backward(("mul", G, Y), ("mul", G, X))``) instead of writing the two bodies, and get
# them as functions made here: compiled to C in the compiled twin (no interpreter frame per
# forward or gradient), plain Python in the pure one. Both call the same kernels of the thread's
# provider in the same order, so the twins' numbers are the same bits; a create_graph backward
# (whose provider records on Tensors) calls the same functions. They are closures, not objects
# with __call__: calling a function is the cheapest call in both twins.

#: The symbols a declared gradient's arguments name: the incoming gradient, the saved first and
#: second inputs (``X``; ``Y`` of a binary op), the saved output.
G = "g"
X = "x"
Y = "y"
OUT = "out"
# where each symbol is in the values a gradient reads: (g, x, y), or (g, saved) (x of a unary
# op, or the output)
_ARG = {G: 0, X: 1, Y: 2, OUT: 1}
_SAVES = {None: 0, "inputs": 1, "output": 2, "inputs+output": 3}
_UNARY = object()  # the second argument of a declared forward called on one array
# The codes of a general row's arguments (see _arg_value): the symbols, then an attribute (its
# index among the row's attrs, from _ATTR_CODE), then wants(i) (from _WANTS_CODE).
_CODE = {G: 0, X: 1, Y: 2, OUT: 3}
_ATTR_CODE = 16
_WANTS_CODE = 32
_WANTS = "wants"


def wants(i: int) -> tuple:
    """A declared gradient's argument: whether input ``i`` wants a gradient (``ctx.needs[i]``;
    False when the op was applied to fewer inputs, as a linear layer without a bias)."""
    if not (isinstance(i, int) and 0 <= i < _ATTR_CODE):
        raise ValueError(f"wants({i!r}): expected an input index 0..{_ATTR_CODE - 1}")
    return (_WANTS, i)


def kernel_forward(kernel: str, save: str | None = None, attrs: dict | None = None,
                   arrays: int = 0) -> Any:
    """An op's forward declared as one kernel of the thread's provider applied to the op's input
    arrays (one or two), and what it saves for the gradient: ``save="inputs"`` (x, or the pair
    (x, y)), ``"output"``, or nothing. Returns the ``forward(ctx, x[, y])`` of the op table.

    A row with keyword parameters declares them in ``attrs`` (name -> default, in the kernel's
    order): the kernel gets the input arrays, None for each of its ``arrays`` array parameters
    the op was given no input for (a linear layer without a bias), then the attributes.
    ``save="inputs+output"`` saves the tuple of the inputs followed by the output."""
    if save not in _SAVES:
        raise ValueError(f"kernel_forward({kernel!r}): save={save!r}, expected None, 'inputs', "
                         f"'output' or 'inputs+output'")
    mode = _SAVES[save]
    names, defaults = _attrs_of(f"kernel_forward({kernel!r})", attrs)
    general = bool(names) or arrays > 0 or mode == 3
    if _COMPILED:
        return _DeclaredForward(kernel, mode, general, names, defaults, arrays)
    if general:
        # the pure twin's: a function written from the declaration (see _pure_source), as
        # fast as the hand-written body it replaces
        forward = _pure_forward(kernel, mode, names, defaults, arrays)
        forward.declared_kernels = (kernel,)
        forward.__doc__ = (f"The declared forward: kernel {kernel!r} with {names or 'no'} "
                           f"attributes, saves {save or 'nothing'}.")
        return forward

    def forward(ctx: Any, x: Any, y: Any = _UNARY) -> Any:
        if y is _UNARY:
            out = getattr(state.k, kernel)(x)
            if mode:
                ctx.saved = x if mode == 1 else out
            return out
        out = getattr(state.k, kernel)(x, y)
        if mode:
            ctx.saved = (x, y) if mode == 1 else out
        return out

    forward.declared_kernels = (kernel,)
    forward.__doc__ = f"The declared forward: kernel {kernel!r}, saves {save or 'nothing'}."
    return forward


def kernel_backward(*grads: Any, attrs: dict | None = None, joint: Any = None,
                    save: str | None = None) -> Any:
    """An op's gradient declared per input: ``G`` (the incoming gradient itself), or a tuple
    ``(kernel, arg[, arg])`` calling a kernel of the thread's provider on the symbols ``G``,
    ``X``, ``Y``, ``OUT`` (what the forward saved). Returns the ``backward(ctx, g)`` of the op
    table: one gradient per input, None where ``ctx.needs`` says the input wants none.

    Rows with keyword parameters name them in ``attrs`` (as their forward does) and may pass
    them to a kernel by name (read from the node's parameters); a kernel may take any number of
    arguments, and ``wants(i)`` passes whether input i wants a gradient. An input's gradient may
    also be a function ``(ctx, g) -> gradient`` (a rarely taken formula of several kernels).
    ``joint=(kernel, arg, ...)`` declares one kernel returning every input's gradient at once
    (a fused layer's backward), told by ``wants(i)`` arguments which ones are wanted (what it
    returns for an input that wants none is ignored, as a written body's would be). A forward that saved ``"inputs+output"`` is declared with that
    ``save``: X and Y are then its first inputs and OUT its output."""
    names, defaults = _attrs_of("kernel_backward", attrs)
    if save not in (None, "inputs+output"):
        raise ValueError(f"kernel_backward: save={save!r}, expected None or 'inputs+output'")
    general = bool(names) or joint is not None or save is not None or any(
        callable(grad) or (isinstance(grad, tuple) and len(grad) > 3) for grad in grads)
    if general:
        return _general_backward(grads, names, defaults, joint, save)
    if len(grads) not in (1, 2):
        raise ValueError(f"kernel_backward: one gradient per input of a unary or binary op, "
                         f"got {len(grads)}")
    fields = []
    for grad in grads:
        if grad == G:
            fields.append((None, 0, -1))
            continue
        if not (isinstance(grad, tuple) and len(grad) in (2, 3) and isinstance(grad[0], str)
                and all(a in _ARG for a in grad[1:])):
            raise ValueError(f"kernel_backward: {grad!r} is neither G nor (kernel, arg[, arg]) "
                             f"with args among G, X, Y, OUT")
        fields.append((grad[0], _ARG[grad[1]], _ARG[grad[2]] if len(grad) == 3 else -1))
    symbols = {a for grad in grads if grad != G for a in grad[1:]}
    if OUT in symbols and (X in symbols or Y in symbols):
        raise ValueError("kernel_backward: a forward saves its inputs or its output, not both")
    n = len(grads)
    # per input: kernel name (None: g itself), index of its first and second (-1: none)
    # argument; spelled out for the two inputs rather than looped: every hot op runs this
    k0, i0, j0 = fields[0]
    k1, i1, j1 = fields[1] if n == 2 else (None, 0, -1)
    same = k0 is None and k1 is None  # every gradient is g itself (add)
    declared = tuple(f[0] for f in fields if f[0] is not None)
    if _COMPILED:
        return _DeclaredBackward(n, k0, i0, j0, k1, i1, j1, declared, None, None, (), ())

    def backward(ctx: Any, g: Any) -> tuple:
        needs = ctx.needs
        if same:
            return (g if needs[0] else None,) if n == 1 else \
                (g if needs[0] else None, g if needs[1] else None)
        saved = ctx.saved
        env = (g,) + saved if type(saved) is tuple else (g, saved)
        k = state.k
        d0 = None
        if needs[0]:
            if k0 is None:
                d0 = g
            elif j0 < 0:
                d0 = getattr(k, k0)(env[i0])
            else:
                d0 = getattr(k, k0)(env[i0], env[j0])
        if n == 1:
            return (d0,)
        d1 = None
        if needs[1]:
            if k1 is None:
                d1 = g
            elif j1 < 0:
                d1 = getattr(k, k1)(env[i1])
            else:
                d1 = getattr(k, k1)(env[i1], env[j1])
        return (d0, d1)

    backward.declared_kernels = declared
    backward.__doc__ = f"The declared gradient: {grads!r} per input."
    return backward


def _attrs_of(where: str, attrs: Any) -> tuple:
    """A row's declared attributes as (names, defaults), in the kernel's order."""
    if attrs is None:
        return (), ()
    if not isinstance(attrs, dict) or not all(isinstance(a, str) for a in attrs):
        raise ValueError(f"{where}: attrs={attrs!r}, expected a dict of name -> default")
    clash = [a for a in attrs if a in _CODE]
    if clash:
        raise ValueError(f"{where}: attribute {clash[0]!r} has a symbol's name")
    if len(attrs) > _WANTS_CODE - _ATTR_CODE:
        raise ValueError(f"{where}: {len(attrs)} attributes, at most "
                         f"{_WANTS_CODE - _ATTR_CODE}")
    return tuple(attrs), tuple(attrs.values())


def _codes(where: str, args: tuple, names: tuple) -> tuple:
    """A declared kernel call's arguments as codes (see _arg_value)."""
    codes = []
    for a in args:
        if isinstance(a, str) and a in _CODE:
            codes.append(_CODE[a])
        elif isinstance(a, str) and a in names:
            codes.append(_ATTR_CODE + names.index(a))
        elif isinstance(a, tuple) and len(a) == 2 and a[0] == _WANTS:
            codes.append(_WANTS_CODE + a[1])
        else:
            raise ValueError(f"{where}: argument {a!r} is neither G, X, Y, OUT, wants(i) nor "
                             f"one of the attributes {names}")
    return tuple(codes)


def _general_backward(grads: tuple, names: tuple, defaults: tuple, joint: Any,
                      save: Any) -> Any:
    """kernel_backward for rows with attributes, a joint kernel, wider kernels or functions."""
    specs = []
    declared = []
    if joint is not None:
        if grads:
            raise ValueError("kernel_backward: joint= declares every gradient; give no others")
        if not (isinstance(joint, tuple) and len(joint) >= 2 and isinstance(joint[0], str)):
            raise ValueError(f"kernel_backward: joint={joint!r} is not (kernel, arg, ...)")
        joint = (joint[0], _codes("kernel_backward", joint[1:], names))
        declared.append(joint[0])
    elif len(grads) not in (1, 2):
        raise ValueError(f"kernel_backward: one gradient per input of a unary or binary op, "
                         f"got {len(grads)}")
    for grad in grads:
        if grad == G:
            specs.append(None)
        elif callable(grad):
            specs.append(grad)
        elif isinstance(grad, tuple) and len(grad) >= 2 and isinstance(grad[0], str):
            specs.append((grad[0], _codes("kernel_backward", grad[1:], names)))
            declared.append(grad[0])
        else:
            raise ValueError(f"kernel_backward: {grad!r} is neither G, a function nor "
                             f"(kernel, arg, ...)")
    codes = {c for spec in specs if type(spec) is tuple for c in spec[1]}
    if joint is not None:
        codes.update(joint[1])
    if save is None and 3 in codes and (1 in codes or 2 in codes):
        raise ValueError("kernel_backward: a forward saves its inputs or its output, not both "
                         "(or declare save='inputs+output')")
    specs = tuple(specs)
    declared = tuple(declared)
    if _COMPILED:
        return _DeclaredBackward(len(specs), None, 0, -1, None, 0, -1, declared, specs, joint,
                                 names, defaults)

    backward = _pure_backward(specs, joint, names, defaults, save)
    backward.declared_kernels = declared
    backward.__doc__ = f"The declared gradient: {grads or joint!r}."
    return backward


def _pure_source(name: str, head: str, body: list, env: dict) -> Any:
    """The pure twin's general rows as plain Python functions, written from their declaration:
    the body one would write by hand (the arguments read straight from ctx, the kernel called
    by name), so the readable twin pays no interpretation per argument. (An interpreted
    version, a Python call per argument, made the pure twin's XOR step 30% slower.)"""
    src = f"def {name}({head}):\n" + "".join(f"    {line}\n" for line in body)
    scope = dict(env, state=state)
    exec(compile(src, f"<declared row: {name}>", "exec"), scope)  # noqa: S102
    fn = scope[name]
    fn.source = src
    return fn


def _pure_forward(kernel: str, mode: int, names: tuple, defaults: tuple, arrays: int) -> Any:
    """A general declared forward for the pure twin (see _pure_source); keyword parameters
    other than the declared ones, and more arrays than the kernel takes, are refused by
    _forward_general with its message."""
    if not kernel.isidentifier() or not all(a.isidentifier() for a in names):
        raise ValueError(f"kernel_forward({kernel!r}): names must be identifiers")
    env = {f"_d{j}": d for j, d in enumerate(defaults)}
    env["_pads"] = tuple((None,) * max(0, arrays - i) for i in range(arrays + 1))
    # named after the kernel: a keyword it does not take is refused by Python itself, with the
    # message _forward_general gives ("linear() got an unexpected keyword argument ...")
    head = "ctx, *inputs" + "".join(f", {a}=_d{j}" for j, a in enumerate(names))
    attrs = "".join(f", {a}" for a in names)
    body = []
    if arrays:
        body += [f"if len(inputs) == {arrays}:",
                 f"    out = state.k.{kernel}(*inputs{attrs})",
                 f"elif len(inputs) < {arrays}:",
                 f"    out = state.k.{kernel}(*inputs, *_pads[len(inputs)]{attrs})",
                 "else:",
                 f"    out = state.k.{kernel}(*inputs{attrs})  # the kernel refuses it"]
    else:
        body += [f"out = state.k.{kernel}(*inputs{attrs})"]
    if mode == 1:
        body += ["ctx.saved = inputs[0] if len(inputs) == 1 else inputs"]
    elif mode == 2:
        body += ["ctx.saved = out"]
    elif mode == 3:
        body += ["ctx.saved = inputs + (out,)"]
    body += ["return out"]
    return _pure_source(kernel, head, body, env)


def _pure_backward(specs: tuple, joint: Any, names: tuple, defaults: tuple,
                   save: Any) -> Any:
    """A general declared gradient for the pure twin (see _pure_source): the same kernels on
    the same arguments as _backward_general."""
    env = {f"_d{j}": d for j, d in enumerate(defaults)}
    both = save == "inputs+output"  # saved is always a tuple: (inputs..., out)

    def arg(code: int) -> str:  # the expression of one argument
        if code == 0:
            return "g"
        if code == 1:
            return "saved[0]" if both else "(saved[0] if type(saved) is tuple else saved)"
        if code == 2:
            return "saved[1]"
        if code == 3:
            return "saved[-1]" if both else "(saved[-1] if type(saved) is tuple else saved)"
        if code >= _WANTS_CODE:
            i = code - _WANTS_CODE
            return f"needs[{i}]" if i == 0 else f"(len(needs) > {i} and needs[{i}])"
        j = code - _ATTR_CODE
        return f"(params.get({names[j]!r}, _d{j}) if params else _d{j})"

    def call(kernel: str, codes: tuple) -> str:
        if not kernel.isidentifier():
            raise ValueError(f"kernel_backward: kernel {kernel!r} is not an identifier")
        return f"state.k.{kernel}({', '.join(arg(c) for c in codes)})"

    body = ["needs = ctx.needs", "saved = ctx.saved", "params = ctx.params"]
    if joint is not None:
        body += [f"r = {call(joint[0], joint[1])}",
                 "if len(r) == len(needs):",
                 "    return r",
                 "if len(r) < len(needs):",
                 f"    raise ValueError(f'{joint[0]}: {{len(r)}} gradients for "
                 f"{{len(needs)}} inputs')",
                 "return r[:len(needs)]"]
        return _pure_source("backward", "ctx, g", body, env)
    n = len(specs)
    body += [f"if len(needs) != {n}:",
             f"    raise ValueError(f'a declared gradient of {n} inputs called for "
             f"{{len(needs)}}')"]
    outs = []
    for i, spec in enumerate(specs):
        if spec is None:
            value = "g"
        elif type(spec) is tuple:
            value = call(spec[0], spec[1])
        else:
            env[f"_f{i}"] = spec
            value = f"_f{i}(ctx, g)"
        outs.append(f"({value} if needs[{i}] else None)")
    body += [f"return ({', '.join(outs)}{',' if n == 1 else ''})"]
    return _pure_source("backward", "ctx, g", body, env)


def _arg_value(code: int, g: Any, saved: Any, params: Any, needs: tuple, names: tuple,
               defaults: tuple) -> Any:
    """The value of a general row's argument: G, X (the first saved input), Y (the second),
    OUT (the output: saved itself, or last of the saved tuple), an attribute (from the node's
    parameters, else its default), or wants(i)."""
    if code == 0:
        return g
    if code < 4:
        if type(saved) is tuple:
            st = saved
            n = len(st)
            if code == 3:
                return st[n - 1]
            if code - 1 < n:  # (checked: the compiled twin indexes tuples unchecked)
                return st[code - 1]
            raise IndexError("tuple index out of range")
        if code == 2:
            raise IndexError("tuple index out of range")  # as env[2] of (g, saved)
        return saved
    if code >= _WANTS_CODE:
        i = code - _WANTS_CODE
        return needs[i] if i < len(needs) else False
    j = code - _ATTR_CODE
    if params:
        return params.get(names[j], defaults[j])
    return defaults[j]


def _call_codes(k: Any, kernel: str, codes: tuple, g: Any, saved: Any, params: Any,
                needs: tuple, names: tuple, defaults: tuple) -> Any:
    """Kernel ``kernel`` of provider ``k`` on a general row's arguments (compiled twin)."""
    args = []
    for code in codes:
        args.append(_arg_value(code, g, saved, params, needs, names, defaults))
    fn = ag_kernel(k, kernel)  # noqa: F821
    # the counts of the declared rows spelled out: a direct (vector) call, no tuple
    m = len(args)
    if m == 7:
        return fn(args[0], args[1], args[2], args[3], args[4], args[5], args[6])
    if m == 4:
        return fn(args[0], args[1], args[2], args[3])
    return fn(*args)


def _backward_general(k: Any, ctx: Any, g: Any, needs: tuple, saved: Any, params: Any,
                      specs: tuple, joint: Any, names: tuple, defaults: tuple) -> tuple:
    """A general declared gradient, run by the compiled twin's ``_DeclaredBackward`` (the pure
    twin's is the function _pure_backward writes): the joint kernel's gradients, or per input
    g, its kernel or its function; None where ``needs`` says the input wants none."""
    n = len(needs)
    if joint is not None:
        r = tuple(_call_codes(k, joint[0], joint[1], g, saved, params, needs, names,
                              defaults))
        if len(r) == n:
            return r
        if len(r) < n:
            raise ValueError(f"{joint[0]}: {len(r)} gradients for {n} inputs")
        return r[:n]
    if len(specs) != n:
        raise ValueError(f"a declared gradient of {len(specs)} inputs called for {n}")
    if n == 2:  # (the binary rows: no list)
        return (_one_gradient(k, ctx, g, needs, 0, specs[0], saved, params, names, defaults),
                _one_gradient(k, ctx, g, needs, 1, specs[1], saved, params, names, defaults))
    out = []
    for i in range(n):
        out.append(_one_gradient(k, ctx, g, needs, i, specs[i], saved, params, names,
                                 defaults))
    return tuple(out)


def _one_gradient(k: Any, ctx: Any, g: Any, needs: tuple, i: int, spec: Any, saved: Any,
                  params: Any, names: tuple, defaults: tuple) -> Any:
    """Input i's gradient by its spec: None (not wanted), g, its kernel, or its function."""
    if not needs[i]:
        return None
    if spec is None:
        return g
    if type(spec) is tuple:
        return _call_codes(k, spec[0], spec[1], g, saved, params, needs, names, defaults)
    return spec(ctx, g)


def _forward_general(k: Any, kernel: str, ctx: Any, inputs: Any, params: Any, mode: int,
                     names: tuple, defaults: tuple, arity: int) -> Any:
    """A general declared forward, run by the compiled twin's ``_DeclaredForward`` (the pure
    twin's is the function _pure_forward writes): the kernel on the input arrays, None for each
    missing array parameter, then the attributes; saves what ``mode`` says."""
    args = list(inputs)
    n = len(args)
    while len(args) < arity:
        args.append(None)
    if params:
        matched = 0
        for j in range(len(names)):
            name = names[j]
            if name in params:
                matched += 1
                args.append(params[name])
            else:
                args.append(defaults[j])
        if matched != len(params):
            stray = [p for p in params if p not in names]
            raise TypeError(f"{kernel}() got an unexpected keyword argument {stray[0]!r}")
    else:
        args.extend(defaults)
    if _COMPILED:
        out = ag_kernel(k, kernel)(*args)  # noqa: F821
    else:
        out = getattr(k, kernel)(*args)
    if mode == 1:
        _save(ctx, inputs[0] if n == 1 else tuple(inputs))
    elif mode == 2:
        _save(ctx, out)
    elif mode == 3:
        _save(ctx, tuple(inputs) + (out,))
    return out


# The compiled twin's declared rows. There ``kernel_forward``/``kernel_backward`` return these
# objects instead of the closures above (the pure twin never makes one): the same kernels of the
# thread's provider on the same arguments in the same order, so the same bits, but run by C
# methods (``run``) that ``apply`` and the compiled engine call directly: no Python call, no
# argument tuple, and ctx's fields read from the Node struct. Called from Python (a
# create_graph backward reruns a row on Tensors) they do the same through ``__call__``.
class _DeclaredForward:
    """A declared forward (see ``kernel_forward``): its kernel applied to one or two arrays."""

    def __init__(self, kernel: str, mode: int, general: bool, names: tuple, defaults: tuple,
                 arity: int):
        self.kernel = kernel
        self.mode = mode
        self.general = general  # attributes, padded array parameters or inputs+output
        self.names = names
        self.defaults = defaults
        self.arity = arity
        self.declared_kernels = (kernel,)

    def __call__(self, ctx: Any, *inputs: Any, **params: Any) -> Any:
        if self.general:
            return self.run_general(ctx, inputs, params)
        if len(inputs) == 1 and not params:
            return self.run(ctx, inputs[0], _UNARY)
        if len(inputs) == 2 and not params:
            return self.run(ctx, inputs[0], inputs[1])
        raise TypeError(f"{self.kernel}: a declared forward takes one or two arrays and no "
                        f"keyword arguments, got {len(inputs)} and {sorted(params)}")

    def run_general(self, ctx: Any, inputs: Any, params: Any) -> Any:
        # Spelled out for the rows there are (two or three arrays, one attribute): the kernel
        # called with its arguments directly (vectorcall, no argument tuple), the saved tuple
        # built once; anything else (and every error) takes _forward_general.
        n = len(inputs)
        if len(self.names) == 1 and 2 <= n <= 3 and self.arity <= 3:
            name = self.names[0]
            if not params:
                a = self.defaults[0]
            elif len(params) == 1 and name in params:
                a = params[name]
            else:
                return _forward_general(ag_state_get("k"), self.kernel, ctx,  # noqa: F821
                                        inputs, params, self.mode, self.names, self.defaults,
                                        self.arity)
            fn = ag_kernel(ag_state_get("k"), self.kernel)  # noqa: F821
            x = inputs[0]
            y = inputs[1]
            z = None
            if n == 3:
                z = inputs[2]
                out = fn(x, y, z, a)
            elif self.arity == 3:
                out = fn(x, y, None, a)
            else:
                out = fn(x, y, a)
            mode = self.mode
            if mode == 1:
                _save(ctx, (x, y, z) if n == 3 else (x, y))
            elif mode == 2:
                _save(ctx, out)
            elif mode == 3:
                _save(ctx, (x, y, z, out) if n == 3 else (x, y, out))
            return out
        return _forward_general(ag_state_get("k"), self.kernel, ctx, inputs,  # noqa: F821
                                params, self.mode, self.names, self.defaults, self.arity)

    def run(self, ctx: Any, x: Any, y: Any) -> Any:
        fn = ag_kernel(ag_state_get("k"), self.kernel)  # noqa: F821
        if y is _UNARY:
            out = fn(x)
            if self.mode:
                _save(ctx, x if self.mode == 1 else out)
            return out
        out = fn(x, y)
        if self.mode:
            _save(ctx, (x, y) if self.mode == 1 else out)
        return out


class _DeclaredBackward:
    """A declared gradient (see ``kernel_backward``): per input, g itself or one kernel on the
    symbols G, X, Y, OUT; None where ``ctx.needs`` says the input wants none."""

    def __init__(self, n: int, k0: Any, i0: int, j0: int, k1: Any, i1: int, j1: int,
                 declared: tuple, specs: Any, joint: Any, names: tuple, defaults: tuple):
        self.n = n
        self.k0, self.i0, self.j0 = k0, i0, j0
        self.k1, self.i1, self.j1 = k1, i1, j1
        self.same = specs is None and joint is None and k0 is None and k1 is None
        self.declared_kernels = declared
        # a general row (see _general_backward): its per-input specs or joint kernel
        self.general = specs is not None
        self.specs = specs
        self.joint = joint
        self.names = names
        self.defaults = defaults

    def __call__(self, ctx: Any, g: Any) -> tuple:
        return self.run(ctx, g)

    def run(self, ctx: Any, g: Any) -> tuple:
        if type(ctx) is Node:
            node = ctx
            needs = node.needs
            saved = node.saved
            params = node.params if self.general else None
        else:  # gradients.py's _Ctx
            needs = ctx.needs
            saved = ctx.saved
            params = ctx.params if self.general else None
        if self.general:
            return _backward_general(ag_state_get("k"), ctx, g, needs,  # noqa: F821
                                     saved, params, self.specs, self.joint, self.names,
                                     self.defaults)
        if self.same:
            if self.n == 1:
                return (g if needs[0] else None,)
            return (g if needs[0] else None, g if needs[1] else None)
        k = None
        d0 = None
        if needs[0]:
            if self.k0 is None:
                d0 = g
            else:
                k = ag_state_get("k")  # noqa: F821
                d0 = _kernel_on(k, self.k0, g, saved, self.i0, self.j0)
        if self.n == 1:
            return (d0,)
        d1 = None
        if needs[1]:
            if self.k1 is None:
                d1 = g
            else:
                if k is None:
                    k = ag_state_get("k")  # noqa: F821
                d1 = _kernel_on(k, self.k1, g, saved, self.i1, self.j1)
        return (d0, d1)


def _kernel_on(k: Any, kernel: str, g: Any, saved: Any, i: int, j: int) -> Any:
    """Kernel ``kernel`` of provider ``k`` on the symbols at ``i`` and ``j`` (-1: none) of
    the closure's ``env``, (g,) + saved or (g, saved), read without building that tuple."""
    fn = ag_kernel(k, kernel)  # noqa: F821
    if j < 0:
        return fn(_env(g, saved, i))
    return fn(_env(g, saved, i), _env(g, saved, j))


def _env(g: Any, saved: Any, i: int) -> Any:
    if i == 0:
        return g
    if type(saved) is tuple:
        return saved[i - 1]
    if i == 1:
        return saved
    raise IndexError("tuple index out of range")  # as env[2] of (g, saved)


def _save(ctx: Any, value: Any) -> None:
    """``ctx.saved = value``, into the Node struct when ctx is a Node."""
    if type(ctx) is Node:
        node = ctx
        node.saved = value
    else:
        ctx.saved = value


def _apply(op: Any, inputs: tuple, params: dict) -> Any:
    arrays = []
    dtype = None
    integer = None
    record = False
    for t in inputs:
        a = t._data
        arrays.append(a)
        if t._requires_grad:
            record = True
        d = a.dtype
        if d is not dtype:
            kind = "f" if d is _F32 or d is _F64 else d.kind
            if kind == "f":
                if dtype is None:
                    dtype = d
                elif d != dtype:
                    _mixed(op, dtype, d, inputs)
            elif kind == "i" or kind == "u":
                integer = d
    if integer is not None and dtype is not None:
        _mixed(op, dtype, integer, inputs)
    if _COMPILED:
        return _record_c(op, inputs, params, arrays, record)
    if len(arrays) > 1 and op.broadcasting and arrays[0].shape != arrays[1].shape:
        _check_broadcast(op, arrays)
    if not (record and state.grad_enabled):
        return _output(_forward(op, _Scratch(), arrays, params), None, inputs)
    node = Node.__new__(Node)
    _record(node, op, inputs)
    node.params = params
    out = _forward(op, node, arrays, params)
    if state.anomaly:
        node.trace = traceback.extract_stack()  # origin() shows the frames outside autograd
    return _output(out, node, inputs)


def _record_c(op: Any, inputs: tuple, params: dict, arrays: list, record: bool) -> Any:
    """The rest of ``_apply`` in the compiled twin (never called by the pure one): the same
    steps, with the shape test and grad_mode.state read in C (see ``_apply2_c``)."""
    if len(arrays) > 1 and op.broadcasting and not _same_shape(arrays[0], arrays[1]):
        _check_broadcast(op, arrays)
    if not (record and ag_state_flag("grad_enabled")):  # noqa: F821
        return _output(_forward_c(op, _Scratch.__new__(_Scratch), arrays, params), None,
                       inputs)
    node = Node.__new__(Node)
    _record(node, op, inputs)
    node.params = params
    out = _forward_c(op, node, arrays, params)
    if ag_state_flag("anomaly"):  # noqa: F821
        node.trace = traceback.extract_stack()
    return _output(out, node, inputs)


def _apply2(op: Any, a: Any, b: Any) -> Any:
    """``_apply`` for the arithmetic operators, whose two Tensors are known to share one float
    dtype (``_same_float``): no dtype loop and no list of arrays, the rest as ``_apply``. The
    per-op path of every ``x * a + b``, so worth its dozen lines (0.1-0.15 us per op)."""
    if _COMPILED:
        return _apply2_c(op, a, b)
    x = a._data
    y = b._data
    if x.shape != y.shape:  # + - * / all broadcast
        _check_broadcast(op, [x, y])
    if not ((a._requires_grad or b._requires_grad) and state.grad_enabled):
        return wrap(op.forward(_Scratch(), x, y), None)
    node = Node.__new__(Node)
    _record(node, op, (a, b))
    node.params = _NO_PARAMS
    out = op.forward(node, x, y)
    if state.anomaly:
        node.trace = traceback.extract_stack()  # origin() shows the frames outside autograd
    return wrap(out, node)


def _apply2_c(op: Any, a: Any, b: Any) -> Any:
    """``_apply2`` in the compiled twin (never called by the pure one): the same steps, with
    the shape test read from the arrays' C structs and grad_mode.state from the thread's dict
    (csrc/hot.h) instead of two shape tuples and two threading.local lookups."""
    x = a._data
    y = b._data
    if not (ag_is_array(x) and ag_is_array(y) and ag_same_shape(x, y)):  # noqa: F821
        if x.shape != y.shape:
            _check_broadcast(op, [x, y])
    f = op.forward
    if not ((a._requires_grad or b._requires_grad)
            and ag_state_flag("grad_enabled")):  # noqa: F821
        if type(f) is _DeclaredForward:
            forward = f
            return wrap(forward.run(_Scratch.__new__(_Scratch), x, y), None)
        return wrap(f(_Scratch.__new__(_Scratch), x, y), None)
    node = Node.__new__(Node)
    _record(node, op, (a, b))
    node.params = _NO_PARAMS
    if type(f) is _DeclaredForward:
        forward = f
        out = forward.run(node, x, y)
    else:
        out = f(node, x, y)
    if ag_state_flag("anomaly"):  # noqa: F821
        node.trace = traceback.extract_stack()
    return wrap(out, node)


def _forward(op: Any, ctx: Any, arrays: list, params: dict) -> Any:
    # Spelled out for one to three inputs so the compiled call passes arguments directly
    # (vectorcall, or, with keyword parameters such as linear's activation, without
    # concatenating a new tuple of the arrays).
    f = op.forward
    n = len(arrays)
    if not params:
        if n == 2:
            return f(ctx, arrays[0], arrays[1])
        if n == 1:
            return f(ctx, arrays[0])
        return f(ctx, *arrays)
    if n == 3:
        return f(ctx, arrays[0], arrays[1], arrays[2], **params)
    if n == 2:
        return f(ctx, arrays[0], arrays[1], **params)
    if n == 1:
        return f(ctx, arrays[0], **params)
    return f(ctx, *arrays, **params)


def _forward_c(op: Any, ctx: Any, arrays: list, params: dict) -> Any:
    """``_forward`` in the compiled twin: a declared forward on one or two arrays runs its C
    method; anything else (a written forward, keyword parameters) goes through ``_forward``."""
    f = op.forward
    if type(f) is _DeclaredForward:
        forward = f
        if forward.general:  # attributes (keyword parameters) too: still no Python call
            return forward.run_general(ctx, arrays, params)
        n = len(arrays)
        if params:
            return _forward(op, ctx, arrays, params)
        if n == 1:
            return forward.run(ctx, arrays[0], _UNARY)
        if n == 2:
            return forward.run(ctx, arrays[0], arrays[1])
    return _forward(op, ctx, arrays, params)


def _output(out: Any, node: Any, inputs: tuple) -> Any:
    """Wrap an op's result; a view of its single input shares that input's version counter,
    so an in-place change through either one invalidates graphs that saved the other."""
    t = wrap(out, node)
    if len(inputs) == 1:
        base = out.base if isinstance(out, _ndarray) else None
        if base is not None:
            x = inputs[0]
            a = x._data
            if base is a or base is a.base:
                t._vc = x._vc
    return t


def _same_shape(x: Any, y: Any) -> bool:
    """``x.shape == y.shape``; in the compiled twin read from exact ndarrays' C structs."""
    if ag_is_array(x) and ag_is_array(y):  # noqa: F821
        return ag_same_shape(x, y)  # noqa: F821
    return x.shape == y.shape


def _mixed(op: Any, dtype: np.dtype, other: np.dtype, inputs: tuple = ()) -> None:
    raise TypeError(mixed_dtypes_message(op.name, dtype, other, inputs))


def broadcast_shape(a: tuple, b: tuple) -> tuple | None:
    """The NumPy broadcast of two shapes, or None if they do not broadcast.

    Plain Python because np.broadcast_shapes costs ~5 us, more than a small op itself.
    """
    if len(a) < len(b):
        a, b = b, a
    out = list(a)
    off = len(a) - len(b)
    for i, n in enumerate(b):
        m = a[off + i]
        if m != n:
            if m == 1:
                out[off + i] = n
            elif n != 1:
                return None
    return tuple(out)


def _check_broadcast(op: Any, arrays: list) -> None:
    shape = arrays[0].shape
    for a in arrays[1:]:
        shape = broadcast_shape(shape, a.shape)
        if shape is None:
            shapes = " and ".join(str(a.shape) for a in arrays)
            raise ValueError(f"{op.name}: shapes {shapes} cannot be broadcast together")
