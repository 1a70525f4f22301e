"""The yardstick: PyTorch's own operator samples (the OpInfo database of
``torch.testing._internal.common_methods_invocations``) for every op autograd shares with it.

Each sample runs through torch and through autograd: the result dtype, shape and values must be
PyTorch's, in float64, float32, int64 and bool wherever PyTorch accepts the dtype; in float64 the
gradients of every input that requires grad (targets, tensor bounds of ``clamp`` and class
weights included) must be PyTorch's for one random cotangent. A sample is refused only for a
reason in :data:`OUT_OF_SCOPE`, and then autograd must raise a clear error naming the argument.
Skipped when torch (with its test-only dependency ``expecttest``) is not installed.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
try:
    from torch.testing._internal.common_methods_invocations import op_db
except ImportError as exc:  # expecttest (a test dependency of torch) missing
    pytest.skip(f"torch's OpInfo database does not import: {exc}", allow_module_level=True)

import autograd as ag  # noqa: E402
import autograd.functional as F  # noqa: E402

pytestmark = pytest.mark.torch

#: Keyword arguments autograd does not take, each with its reason. A sample that passes one
#: (with a value other than its no-op default) must be refused with an error naming it.
OUT_OF_SCOPE = {
    "dtype": "dtype= casts inside an op: convert with .astype() before or after",
    "alpha": "alpha= scaling of add/sub: write a + alpha * b",
    "inplace": "inplace=True: autograd's ops never write into their inputs",
}
#: Other refusals, named by what the error message says: complex numbers (autograd has no
#: complex dtypes) and float32 mixed with float64 tensors (autograd never changes a float
#: precision silently: convert one explicitly).
OTHER_REFUSALS = {"complex": r"complex", "float32 and float64": r"float(32|64).* float(32|64)"}
#: Tensor dtypes autograd does not hold (its floats are float32 and float64): a sample with one
#: is refused when its tensor is made, by tensor() naming the dtype.
OUT_OF_SCOPE_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16",
                       torch.complex64: "complex64", torch.complex128: "complex128"}
#: Out-of-scope values that are no-ops, which autograd accepts or ignores.
_NO_OP = {"alpha": 1, "inplace": False}

# PyTorch's keyword names -> autograd's.
_RENAMES = {"dim": "axis", "keepdim": "keepdims", "start_dim": "start_axis",
            "end_dim": "end_axis"}


def _var(x, *args, **kw):
    """torch.var(x, dim, unbiased, keepdim) / (x, dim, correction=, keepdim=): ddof."""
    if args and isinstance(args[0], bool):  # var(x, unbiased)
        kw["unbiased"], args = args[0], args[1:]
    if len(args) > 1 and isinstance(args[1], bool):  # var(x, dim, unbiased, keepdim)
        kw["unbiased"], args = args[1], args[:1] + args[2:]
    ddof = 1
    if "unbiased" in kw:
        ddof = int(kw.pop("unbiased"))
    if "correction" in kw:
        c = kw.pop("correction")
        ddof = 1 if c is None else c
    return F.var(x, *args, ddof=ddof, **kw)


def _where(x, cond, other):
    return F.where(cond, x, other)


def _values(f):
    """max/min with a dim return (values, indices) in torch: autograd returns the values."""
    return f


# torch OpInfo name (name.variant) -> autograd callable taking the sample's arguments.
OPS = {
    "add": F.add, "sub": F.sub, "mul": F.mul, "div.no_rounding_mode": F.div,
    "true_divide": F.div, "pow": F.pow, "maximum": F.maximum, "minimum": F.minimum,
    "max.binary": F.maximum, "min.binary": F.minimum, "where": _where,
    "square": F.square, "neg": F.neg, "exp": F.exp, "log": F.log, "sqrt": F.sqrt, "abs": F.abs,
    "sigmoid": F.sigmoid, "tanh": F.tanh, "nn.functional.relu": F.relu,
    "nn.functional.leaky_relu": F.leaky_relu, "nn.functional.gelu": F.gelu,
    "clamp": F.clamp,
    "sum": F.sum, "mean": F.mean, "amax": F.max, "amin": F.min,
    "max.reduction_no_dim": F.max, "min.reduction_no_dim": F.min,
    "max.reduction_with_dim": F.max, "min.reduction_with_dim": F.min,
    "var": _var, "var.unbiased": _var,
    "reshape": F.reshape, "view": F.reshape, "flatten": F.flatten,
    "transpose": F.transpose, "permute": F.permute, "T": lambda x: x.T,
    "expand": F.expand, "__getitem__": F.getitem,
    "cat": lambda xs, *a, **k: F.concatenate(xs, *a, **k),
    "stack": lambda xs, *a, **k: F.stack(xs, *a, **k),
    "matmul": F.matmul, "mm": F.matmul, "bmm": F.matmul, "nn.functional.linear": F.linear,
    "softmax": F.softmax, "softmax.with_dtype": F.softmax, "log_softmax": F.log_softmax,
    "log_softmax.with_dtype": F.log_softmax, "logsumexp": F.logsumexp,
    "nn.functional.mse_loss": F.mse_loss,
    "nn.functional.binary_cross_entropy": F.binary_cross_entropy,
    "nn.functional.binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
    "nn.functional.cross_entropy": F.cross_entropy,
    "eq": lambda a, b: a.eq(b), "ne": lambda a, b: a.ne(b),
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}
_TUPLE_RESULT = {"max.reduction_with_dim", "min.reduction_with_dim"}

DTYPES = {torch.float64: np.float64, torch.float32: np.float32, torch.int64: np.int64,
          torch.bool: np.bool_}

_INFOS = {(o.name + ("." + o.variant_test_name if o.variant_test_name else "")): o
          for o in op_db}
CASES = [pytest.param(name, id=name) for name in OPS]


def test_every_mapped_op_is_in_the_database():
    assert sorted(set(OPS) - set(_INFOS)) == []


class _Converter:
    """torch values -> (fresh torch leaves, autograd values), remembering the pairs of tensors
    requiring grad. Fresh leaves: some OpInfo inputs are built so that torch.autograd.grad does
    not reach them (it returns None for a non-contiguous reference input of neg)."""

    def __init__(self):
        self.pairs: list[tuple] = []

    def __call__(self, v, ours: bool):
        if isinstance(v, torch.Tensor):
            if not v.requires_grad:
                if not ours:
                    return v
                arr = v.numpy().copy()
                return ag.tensor(arr, dtype=arr.dtype)
            if not ours:
                leaf = v.detach().clone().requires_grad_(True)
                self.pairs.append([leaf, None])
                return leaf
            arr = v.detach().numpy().copy()
            t = ag.tensor(arr, dtype=arr.dtype, requires_grad=True)
            self.pairs[self._next][1] = t
            self._next += 1
            return t
        if isinstance(v, torch.Size):
            return tuple(v) if ours else v
        if isinstance(v, list):
            return [self(x, ours) for x in v]
        if isinstance(v, tuple):
            return tuple(self(x, ours) for x in v)
        if isinstance(v, dict):
            return {(_RENAMES.get(k, k) if ours else k): self(x, ours) for k, x in v.items()}
        return v

    def both(self, v):
        """(torch's argument, ours) for one sample value, visiting tensors in one order."""
        start = len(self.pairs)
        theirs = self(v, ours=False)  # appends [leaf, None] per tensor requiring grad
        self._next = start
        ours = self(v, ours=True)  # fills in the autograd tensor of each, in the same order
        return theirs, ours


def _index(v):
    """Indices for __getitem__: tensors become NumPy arrays (autograd's index type)."""
    if isinstance(v, torch.Tensor):
        return v.numpy()
    if isinstance(v, tuple):
        return tuple(_index(x) for x in v)
    if isinstance(v, list):
        return [_index(x) for x in v]
    return v


def _scalars(v):
    if isinstance(v, (list, tuple)):
        for x in v:
            yield from _scalars(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _scalars(x)
    elif not isinstance(v, torch.Tensor):
        yield v


def _tensors(v):
    if isinstance(v, torch.Tensor):
        yield v
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _tensors(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _tensors(x)


def _refusal(sample) -> str | None:
    values = (sample.input, sample.args, sample.kwargs)
    for t in _tensors(values):
        if t.dtype in OUT_OF_SCOPE_DTYPES:
            return OUT_OF_SCOPE_DTYPES[t.dtype]
    if any(isinstance(v, complex) for v in _scalars(values)):
        return "complex"
    if {torch.float32, torch.float64} <= {t.dtype for t in _tensors(values)}:
        return "float32 and float64"
    for k, v in sample.kwargs.items():
        if k in OUT_OF_SCOPE and not (k in _NO_OP and v == _NO_OP[k]):
            return k
    return None


def _run_sample(name, info, sample, dtype, check_grads, rng):
    ours_fn = OPS[name]
    refused = _refusal(sample)
    if refused in OUT_OF_SCOPE_DTYPES.values():
        with pytest.raises(TypeError, match=f"unsupported .*dtype {refused}"):
            _Converter().both((sample.input, sample.args, sample.kwargs))
        return "refused"
    conv = _Converter()
    tx, x = conv.both(sample.input)
    if name == "__getitem__":
        targs, tkwargs = tuple(sample.args), {}
        args, kwargs = (_index(sample.args[0]),), {}
    else:
        targs, args = conv.both(tuple(sample.args))
        tkwargs, kwargs = conv.both(dict(sample.kwargs))
    for k, v in _NO_OP.items():  # a no-op value of an out-of-scope argument is not passed on
        if kwargs.get(k, object()) == v and not refused:
            del kwargs[k]
    if refused:
        with pytest.raises((TypeError, ValueError), match=OTHER_REFUSALS.get(refused, refused)):
            ours_fn(x, *args, **kwargs)
        return "refused"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch and we both warn on broadcasting loss targets
        expected = info.op(tx, *targs, **tkwargs)
        got = ours_fn(x, *args, **kwargs)
    if name in _TUPLE_RESULT:
        expected = expected[0]
    want = expected.detach().numpy()
    where = f"{name} {dtype} sample input {tuple(sample.input.shape) if hasattr(sample.input, 'shape') else ''} args {sample.args} kwargs {sample.kwargs}"
    assert isinstance(got, ag.Tensor), where
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype}, PyTorch {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape}, PyTorch {want.shape}"
    if want.dtype.kind == "f":
        # float32: sums and products in another order, so the error is relative to the
        # largest magnitude, not to each element
        scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=1.0))
        rtol, atol = (1e-7, 1e-10 * scale) if want.dtype == np.float64 else (2e-5, 1e-6 * scale)
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=where)
    else:
        np.testing.assert_array_equal(got.numpy(), want, err_msg=where)
    if not (check_grads and conv.pairs and expected.requires_grad):
        return "values"
    cot = rng.standard_normal(want.shape)
    theirs = torch.autograd.grad(expected, [p for p, _ in conv.pairs],
                                 torch.from_numpy(cot), allow_unused=True)
    got.backward(cot)
    for k, ((tp, ours), tg) in enumerate(zip(conv.pairs, theirs)):
        tg = np.zeros(tp.shape) if tg is None else tg.numpy()
        og = np.zeros(tp.shape) if ours.grad is None else ours.grad.numpy()
        np.testing.assert_allclose(og, tg, rtol=1e-7, atol=1e-9, equal_nan=True,
                                   err_msg=f"{where}: gradient of tensor {k}")
    return "grads"


#: Reference inputs (OpInfo's extended samples: extreme values, NaN, inf, empty and
#: non-contiguous tensors) per op and dtype, at most: enough to cover their kinds, while keeping
#: this file's run time to about a minute.
MAX_REFERENCE = 40


@pytest.mark.parametrize("name", CASES)
def test_opinfo_samples(name):
    info = _INFOS[name]
    rng = np.random.default_rng(0)
    outcomes = []
    for tdtype in DTYPES:
        if tdtype not in info.dtypes:
            continue
        grads = tdtype == torch.float64 and info.supports_autograd
        for sample in info.sample_inputs("cpu", tdtype, requires_grad=grads):
            outcomes.append(_run_sample(name, info, sample, tdtype, grads, rng))
        if info.reference_inputs_func is not None:
            try:
                refs = list(itertools.islice(
                    info.reference_inputs("cpu", tdtype, requires_grad=grads), MAX_REFERENCE))
            except ValueError:  # some make boolean tensors, which cannot require grad
                refs = list(itertools.islice(
                    info.reference_inputs("cpu", tdtype, requires_grad=False), MAX_REFERENCE))
            for sample in refs:
                outcomes.append(_run_sample(name, info, sample, tdtype, grads, rng))
    assert outcomes, f"{name}: no samples ran"
