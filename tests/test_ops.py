"""Tests generated from the op database (autograd.testing.opdb), on every kernel provider.

For each entry: the forward matches its NumPy reference (float64 tightly, float32 loosely, the
dtype kept, the inputs untouched, aliases agreeing); gradcheck passes in float64; the backward
of a random cotangent matches finite differences (on the drawn, possibly non-contiguous layout)
and float32 gradients agree with float64 ones; gradgradcheck passes (second derivatives through
``create_graph``); every error input raises its documented error.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autograd
from autograd.engine import topological_order
from autograd.function import REGISTRY
from autograd.testing.opdb import OP_DB, OpInfo, Sample, to_args

# The backend fixture switches the kernel provider once per test, which is right for every
# example of that test, so hypothesis' warning about function-scoped fixtures does not apply.
with_fixtures = settings(suppress_health_check=[*settings().suppress_health_check,
                                                HealthCheck.function_scoped_fixture])

OPS = [pytest.param(info, id=info.id) for info in OP_DB]
ERRORS = [pytest.param(info, err, id=f"{info.id}-{i}")
          for info in OP_DB for i, err in enumerate(info.errors)]

#: Full Jacobians while (backward passes + forward passes) stays under this; fast mode above.
FULL_JACOBIAN_BUDGET = 200


def _call(info: OpInfo, sample: Sample, args: list) -> autograd.Tensor:
    return info.op(*args, **sample.kwargs)


def _reference(info: OpInfo, sample: Sample, dtype) -> np.ndarray:
    """The reference in float64 on exactly the (possibly float32-rounded) input values."""
    arrays = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
              for a in sample.arrays(dtype)]
    # samples avoid poles and overflow, so the reference must be clean (underflow is fine)
    with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        return np.asarray(info.ref(*arrays, **sample.kwargs))


def test_every_registered_op_has_an_entry():
    names = {info.name for info in OP_DB}
    assert sorted(set(REGISTRY) - names) == [], "registered ops without an OpInfo entry"
    assert sorted(names - set(REGISTRY)) == [], "OpInfo entries for ops that do not exist"
    ids = [info.id for info in OP_DB]
    assert len(ids) == len(set(ids)), "two entries share an id"


def test_every_registered_op_has_error_inputs():
    with_errors = {info.name for info in OP_DB if info.errors}
    assert sorted(set(REGISTRY) - with_errors) == []


@pytest.mark.parametrize("info", OPS)
@with_fixtures
@given(data=st.data())
def test_forward_matches_numpy(info, backend_name, data):
    sample = data.draw(info.samples, label="sample")
    for dtype, rtol, atol in ((np.float64, 1e-9, 1e-12), (np.float32, info.rtol32, info.atol32)):
        args = sample.tensors(dtype, requires_grad=True)
        before = [a.numpy().copy() for a in args if isinstance(a, autograd.Tensor)]
        out = _call(info, sample, args)
        expected = _reference(info, sample, dtype)
        assert out.shape == expected.shape
        assert out.dtype == dtype, f"{info.id} changed the dtype {dtype} to {out.dtype}"
        np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=atol)
        after = [a.numpy() for a in args if isinstance(a, autograd.Tensor)]
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a, b, err_msg=f"{info.id} modified its input")
        # the entry really exercises its registered op
        assert info.name in {n.op.name for n in topological_order(out._node)}
        for alias in info.aliases:
            np.testing.assert_allclose(_call_alias(alias, sample, args).numpy(), out.numpy(),
                                       rtol=1e-6, atol=0)


def _call_alias(alias, sample: Sample, args: list) -> autograd.Tensor:
    return alias(*args, **sample.kwargs)


@pytest.mark.parametrize("info", OPS)
@with_fixtures
@given(data=st.data())
def test_gradcheck(info, backend_name, data):
    sample = data.draw(info.samples, label="sample")
    args = sample.tensors(np.float64)
    n_in = sum(args[i].size for i in sample.differentiable())
    n_out = _call(info, sample, args).size
    fast = n_out + 2 * n_in > FULL_JACOBIAN_BUDGET
    assert autograd.gradcheck(lambda *a: _call(info, sample, list(a)), args, fast_mode=fast)


# Second derivatives cost a recorded backward per evaluation: fewer examples than first order.
with_fixtures_second_order = settings(
    with_fixtures, max_examples=max(4, settings().max_examples // 3))


@pytest.mark.parametrize("info", OPS)
@with_fixtures_second_order
@given(data=st.data())
def test_gradgradcheck(info, backend_name, data):
    """The op's gradient, recorded with create_graph, is itself differentiable and right."""
    sample = data.draw(info.samples, label="sample")
    args = sample.tensors(np.float64)
    n_in = sum(args[i].size for i in sample.differentiable())
    n_out = _call(info, sample, args).size
    # gradgradcheck's function maps (inputs, cotangent) to the n_in gradient entries
    fast = n_in + 2 * (n_in + n_out) > FULL_JACOBIAN_BUDGET
    assert autograd.gradgradcheck(lambda *a: _call(info, sample, list(a)), args, fast_mode=fast)
    # in float32 the recorded gradient, and its gradient, keep the dtype and the shapes
    args32 = sample.tensors(np.float32)
    xs = [args32[i] for i in sample.differentiable()]
    out = _call(info, sample, args32)
    grads = autograd.grad(out, xs, grad_outputs=np.ones(out.shape, np.float32),
                          create_graph=True, allow_unused=True)
    assert [(g.dtype, g.shape) for g in grads if g is not None] == \
        [(np.float32, x.shape) for x, g in zip(xs, grads) if g is not None]
    recorded = [(g * g).sum() for g in grads if g is not None and g.requires_grad]
    if recorded:
        second = autograd.grad(recorded, xs, allow_unused=True)
        assert all(h.dtype == np.float32 for h in second if h is not None)


def _numerical_vjp(info: OpInfo, sample: Sample, u: np.ndarray, i: int,
                   eps: float = 1e-6) -> np.ndarray:
    """d <u, f(x)> / d x_i by central differences, one element at a time, in float64."""
    base = sample.arrays(np.float64)
    x = base[i]
    grad = np.zeros(x.shape)
    for j in np.ndindex(x.shape):
        vals = []
        for step in (eps, -eps):
            moved = x.copy()
            moved[j] += step
            args = to_args(tuple(base[:i]) + (moved,) + tuple(base[i + 1:]))
            with autograd.no_grad():
                vals.append(float(np.sum(u * _call(info, sample, args).numpy())))
        grad[j] = (vals[0] - vals[1]) / (2 * eps)
    return grad


@pytest.mark.parametrize("info", OPS)
@with_fixtures
@given(data=st.data())
def test_backward_of_random_cotangent(info, backend_name, data):
    sample = data.draw(info.samples, label="sample")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    args64 = sample.tensors(np.float64)
    out64 = _call(info, sample, args64)
    u = np.random.default_rng(seed).standard_normal(out64.shape)
    out64.backward(u)
    args32 = sample.tensors(np.float32)
    out32 = _call(info, sample, args32)
    out32.backward(u.astype(np.float32))
    for i in sample.differentiable():
        x64, x32 = args64[i], args32[i]
        assert x64.grad is not None and x32.grad is not None, f"input {i} got no gradient"
        assert x64.grad.shape == x64.shape and x64.grad.dtype == np.float64
        assert x32.grad.shape == x32.shape and x32.grad.dtype == np.float32
        g64 = x64.grad.numpy()
        np.testing.assert_allclose(g64, _numerical_vjp(info, sample, u, i), rtol=1e-4,
                                   atol=1e-6, err_msg=f"{info.id}: input {i}, float64")
        scale = max(1.0, float(np.max(np.abs(g64), initial=0.0)))
        np.testing.assert_allclose(x32.grad.numpy(), g64, rtol=10 * info.rtol32,
                                   atol=10 * info.atol32 * scale,
                                   err_msg=f"{info.id}: input {i}, float32 against float64")


@pytest.mark.parametrize("info, err", ERRORS)
def test_error_inputs(info, err, backend_name):
    with pytest.raises(err.error, match=err.match):
        info.op(*to_args(err.inputs), **err.kwargs)


@pytest.mark.parametrize("layout", ["transposed", "strided", "reversed"])
def test_sample_layouts_are_really_not_contiguous(layout):
    from autograd.testing.strategies import with_layout
    a = np.arange(12.0).reshape(3, 4)
    b = with_layout(a, layout)
    np.testing.assert_array_equal(b, a)
    assert not b.flags.c_contiguous
    assert autograd.from_numpy(b).numpy() is b


@pytest.mark.parametrize("p", [1, 2, 3, 1.5, "fro"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norm_gradient_at_zero_is_zero_like_pytorch(p, dtype, backend_name):
    # the L2 penalty of a zero-initialised bias: sqrt(sum(x * x)) composed would give NaN
    x = autograd.tensor(np.zeros(4, dtype), requires_grad=True)
    autograd.functional.norm(x, p).backward()
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(4, dtype))
    # one all-zero row beside a non-zero one, each row's norm with its own upstream gradient:
    # only the zero row's gradient is 0
    v = np.array([[0.0, 0.0, 0.0], [3.0, -4.0, 0.0]], dtype)
    y = autograd.tensor(v, requires_grad=True)
    autograd.functional.norm(y, p, axis=1).backward(np.array([5.0, -1.5], dtype))
    q = 2.0 if p == "fro" else float(p)
    n = np.sum(np.abs(v[1]) ** q) ** (1 / q)
    want = -1.5 * np.sign(v[1]) * (np.abs(v[1]) / n) ** (q - 1)
    np.testing.assert_allclose(y.grad.numpy(), np.stack([np.zeros(3), want]), rtol=1e-6)


def test_norm_second_derivative_away_from_zero():
    # d/dx of (d||x||/dx . u) = (u - x (x.u)/n^2) / n, through create_graph
    x = autograd.tensor(np.array([3.0, -4.0, 12.0]), requires_grad=True)
    u = np.array([1.0, 2.0, -0.5])
    (g,) = autograd.grad(autograd.functional.norm(x), x, create_graph=True)
    (h,) = autograd.grad((g * autograd.tensor(u)).sum(), x)
    xv = x.numpy()
    n = np.linalg.norm(xv)
    np.testing.assert_allclose(h.numpy(), (u - xv * (xv @ u) / n ** 2) / n, rtol=1e-12)
