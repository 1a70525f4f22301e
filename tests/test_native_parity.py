"""Every native kernel against its NumPy twin (``numpy_kernels`` is the specification).

Inputs come from hypothesis: shapes with 0-size axes and single rows, C-contiguous and strided
layouts, float32 and float64. The size crossovers in ``native`` are set to 0 here, so every
eligible call really goes to ``_C``; a spy on ``_C`` checks that it did. Tolerances are per
kernel, each with its reason, as (float32, float64) relative tolerances.
"""
from __future__ import annotations

import importlib
import inspect
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograd.backend import numpy_kernels as ref
from autograd.testing.strategies import LAYOUTS, with_layout

REQUIRE_NATIVE = os.environ.get("AUTOGRAD_REQUIRE_NATIVE", "") == "1"

try:
    nat = importlib.import_module("autograd.backend.native")
except ImportError as exc:  # not built
    if REQUIRE_NATIVE:
        raise RuntimeError(f"AUTOGRAD_REQUIRE_NATIVE=1 but the native core does not import: "
                           f"{exc}") from exc
    pytest.skip(f"native core not built: {exc}", allow_module_level=True)

DTYPES = [np.float32, np.float64]

# Same IEEE operations in the same order as NumPy: results agree to the last bit (a 1-ulp
# allowance only for FMA contraction under -march=native).
EXACT = (2e-7, 1e-15)
# exp/log/tanh: glibc and NumPy's SIMD float32 routines differ by a few ulp; cancellation in
# expressions like 1 - tanh^2 amplifies that near saturation.
TRANSC = (2e-5, 1e-12)
# Row reductions (softmax, logsumexp, losses): double accumulation vs NumPy's pairwise sums.
ROWRED = (2e-5, 1e-12)
# Sums and matrix products: the summation order differs, so the error is bounded relative to the
# sum of magnitudes (sum |x|, or |a| @ |b|), not to the result.
SUMS = (1e-5, 1e-12)


class _Spy:
    """Wraps ``_C`` and records which of its kernels were called."""

    def __init__(self, mod):
        self._mod = mod
        self.calls: list[str] = []

    def __getattr__(self, name):
        if name == "QUIET":  # the adapter's quiet twins: a call that did not refuse ran
            return {k: self._quiet(k, f) for k, f in self._mod.QUIET.items()}
        fn = getattr(self._mod, name)

        def wrapper(*args, **kwargs):
            # Recorded once it returns: a call _C refuses (it checks before touching memory,
            # and the adapter then takes its checked path) did not run the kernel.
            out = fn(*args, **kwargs)
            self.calls.append(name)
            return out

        return wrapper

    def _quiet(self, name, fn):
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            if out is not NotImplemented:
                self.calls.append(name)
            return out

        return wrapper


@pytest.fixture(scope="module", autouse=True)
def _all_sizes_native():
    """Crossovers to 0 and a spy on _C for the whole module."""
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(nat._C)
        mp.setattr(nat, "_C", spy)
        mp.setattr(nat, "_MIN", {})
        mp.setattr(nat, "_MIN_ALL", 0)
        nat._bind(spy, all_sizes=True)
        try:
            yield spy
        finally:
            nat._bind()


def _spy() -> _Spy:
    return nat._C


def run_both(name: str, *args, native: str | None = "", **kwargs):
    """Both kernels on the same inputs; asserts _C.<native> ran (default: the same name)."""
    spy = _spy()
    spy.calls.clear()
    got = getattr(nat, name)(*args, **kwargs)
    want = getattr(ref, name)(*args, **kwargs)
    expected = name if native == "" else native
    # routes_native is what autograd.compile trusts to predict this: it must agree
    assert nat.routes_native(name, *args, **kwargs) == bool(spy.calls), (name, spy.calls)
    if expected is None:
        assert not spy.calls, f"{name}: expected the NumPy path, _C.{spy.calls} ran"
    else:
        assert expected in spy.calls, f"{name}: expected _C.{expected}, got {spy.calls}"
    return got, want


def check(got, want, tol, dtype, scale=None):
    """Same type, shape and dtype; values within rtol (of |want|, or of ``scale`` if given)."""
    rtol = tol[0] if np.dtype(dtype) == np.float32 else tol[1]
    assert isinstance(got, np.ndarray), type(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if scale is None:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-3)
    else:
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        bound = rtol * (np.asarray(scale, dtype=np.float64) + 1e-30)
        assert np.all(err <= bound), f"max error {err.max()} vs bound {bound.max()}"


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)


@st.composite
def arrays(draw, shape, dtype, lo=-2.0, hi=2.0, contiguous=False):
    """float arrays of ``shape`` in [lo, hi], in any of the test layouts unless ``contiguous``."""
    values = draw(hnp.arrays(np.float64, shape,
                             elements=st.floats(lo, hi, allow_subnormal=False)))
    layout = "contiguous" if contiguous else draw(st.sampled_from(LAYOUTS))
    return with_layout(values.astype(dtype), layout)


def away_from(x: np.ndarray, pole: float = 0.0, gap: float = 0.1) -> np.ndarray:
    """x moved at least ``gap`` away from ``pole`` (same layout, same dtype)."""
    out = x.copy()
    near = np.abs(out - pole) < gap
    out[near] = pole + gap
    return out


dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])

# --------------------------------------------------------------------------------------------
# The two modules export one API
# --------------------------------------------------------------------------------------------


def _kernels(mod) -> set[str]:
    return {n for n, v in vars(mod).items()
            if not n.startswith("_") and inspect.isfunction(v) and v.__module__ == mod.__name__}


def test_same_kernel_names():
    spec = _kernels(ref)
    missing = sorted(n for n in spec if not callable(getattr(nat, n, None)))
    assert not missing, f"native lacks kernels: {missing}"
    extra = sorted(_kernels(nat) - spec - set(nat.EXTRAS))
    assert not extra, f"native defines kernels numpy_kernels does not: {extra}"
    assert nat.ACTIVATIONS == ref.ACTIVATIONS


def test_same_signatures():
    for name in _kernels(ref):
        want = inspect.signature(getattr(ref, name))
        got = inspect.signature(getattr(nat, name))
        assert list(got.parameters) == list(want.parameters), name
        for p, q in zip(got.parameters.values(), want.parameters.values()):
            assert p.default == q.default, (name, p.name)


# --------------------------------------------------------------------------------------------
# Elementwise
# --------------------------------------------------------------------------------------------

# gelu: 1 + tanh(.) cancels for x << 0, so its error is relative to |x| (and for gelu_back to
# |grad| (1 + |x|)), not to the tiny result.
SCALES = {"gelu": lambda x: np.abs(x), "gelu_back": lambda x, g: np.abs(g) * (1 + np.abs(x)),
          "gelu_erf": lambda x: np.abs(x),
          "gelu_erf_back": lambda x, g: np.abs(g) * (1 + np.abs(x))}

UNARY = {  # name: (input range, tolerance)
    "neg": ((-2, 2), EXACT), "abs": ((-2, 2), EXACT), "sqrt": ((0, 4), EXACT),
    "sign": ((-2, 2), EXACT),
    "relu": ((-2, 2), EXACT), "exp": ((-5, 5), TRANSC), "log": ((1e-3, 5), TRANSC),
    "sigmoid": ((-8, 8), TRANSC), "tanh": ((-4, 4), TRANSC), "gelu": ((-4, 4), TRANSC),
    "gelu_erf": ((-6, 6), TRANSC),
}


@dtypes
@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary(name, dtype, data):
    (lo, hi), tol = UNARY[name]
    x = data.draw(arrays(data.draw(SHAPES), dtype, lo, hi))
    scale = SCALES[name](x.astype(np.float64)) if name in SCALES else None
    check(*run_both(name, x), tol, dtype, scale=scale)


@dtypes
@given(data=st.data(), slope=st.sampled_from([0.0, 0.01, 0.2]))
def test_leaky_relu(dtype, data, slope):
    shape = data.draw(SHAPES)
    x = data.draw(arrays(shape, dtype))
    g = data.draw(arrays(shape, dtype))
    check(*run_both("leaky_relu", x, slope), EXACT, dtype)
    check(*run_both("leaky_relu_back", x, g, slope), EXACT, dtype)


BACKWARD = {  # name: (saved-value range, tolerance)
    "sigmoid_back": ((0, 1), EXACT), "tanh_back": ((-1, 1), EXACT),
    "relu_back": ((-2, 2), EXACT), "gelu_back": ((-4, 4), TRANSC),
    "gelu_erf_back": ((-6, 6), TRANSC),
}


@dtypes
@pytest.mark.parametrize("name", sorted(BACKWARD))
@given(data=st.data())
def test_activation_backward(name, dtype, data):
    (lo, hi), tol = BACKWARD[name]
    shape = data.draw(SHAPES)
    saved = data.draw(arrays(shape, dtype, lo, hi))
    grad = data.draw(arrays(shape, dtype))
    scale = SCALES[name](saved.astype(np.float64), grad) if name in SCALES else None
    check(*run_both(name, saved, grad), tol, dtype, scale=scale)


@st.composite
def native_broadcast_pair(draw):
    """Two shapes the native binary kernels take: same, a one-element operand, or a row."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5))
    kind = draw(st.sampled_from(["same", "scalar", "row"]))
    if kind == "same":
        other = shape
    elif kind == "scalar":
        other = (1,) * draw(st.integers(0, len(shape)))
    else:
        other = (1,) * draw(st.integers(0, len(shape) - 1)) + shape[-1:]
    return (shape, other) if draw(st.booleans()) else (other, shape)


@dtypes
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum"])
@given(data=st.data())
def test_binary_native_broadcasts(name, dtype, data):
    sa, sb = data.draw(native_broadcast_pair())
    a = data.draw(arrays(sa, dtype))
    b = data.draw(arrays(sb, dtype))
    if name == "div":
        b = away_from(b)
    check(*run_both(name, a, b), EXACT, dtype)


@dtypes
@given(data=st.data())
def test_binary_general_broadcast_delegates(dtype, data):
    a = data.draw(arrays((3, 1, 4), dtype))
    b = data.draw(arrays((2, 1), dtype))
    check(*run_both("add", a, b, native=None), EXACT, dtype)


def test_binary_mixed_dtypes_delegate():
    a = np.ones((3, 4), np.float32)
    b = np.ones((3, 4), np.float64)
    got, want = run_both("mul", a, b, native=None)
    assert got.dtype == want.dtype == np.float64


# --------------------------------------------------------------------------------------------
# Softmax family
# --------------------------------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), last=st.booleans())
def test_softmax_forward_backward(name, dtype, data, last):
    shape = data.draw(SHAPES)
    x = data.draw(arrays(shape, dtype, -5, 5))
    axis = -1 if last else 0
    native = name if last or x.ndim == 1 else None
    out, want = run_both(name, x, axis, native=native)
    check(out, want, ROWRED, dtype,
          scale=_log_softmax_scale(x, axis) if name == "log_softmax" and x.size else None)
    g = data.draw(arrays(shape, dtype))
    saved = ref.softmax(x, axis) if name == "softmax" else ref.log_softmax(x, axis)
    native_b = f"{name}_back" if last or x.ndim == 1 else None
    scale = (_log_softmax_back_scale(saved, g, axis) if name == "log_softmax"
             else _softmax_back_scale(saved, g, axis))
    check(*run_both(f"{name}_back", saved, g, axis, native=native_b), ROWRED, dtype,
          scale=scale)


# log_softmax = x - logsumexp(x): both terms carry rounding, so the error is relative to
# |x| + |logsumexp(x)|, not to the (possibly tiny) difference.
def _log_softmax_scale(x, axis=-1):
    x = x.astype(np.float64)
    return np.abs(x) + np.abs(ref.logsumexp(x, axis, keepdims=True))


# The backward formulas subtract a row sum from each element: the error is relative to the
# magnitudes of the two terms, not to their (possibly cancelling) difference.
def _softmax_back_scale(out, g, axis=-1):
    out, g = np.abs(out.astype(np.float64)), np.abs(g.astype(np.float64))
    return out * (g + np.sum(g * out, axis=axis, keepdims=True))


def _log_softmax_back_scale(out, g, axis=-1):
    g = np.abs(g.astype(np.float64))
    return g + np.exp(out.astype(np.float64)) * np.sum(g, axis=axis, keepdims=True)


@dtypes
@given(data=st.data(), keepdims=st.booleans())
def test_logsumexp_forward_backward(dtype, data, keepdims):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    x = data.draw(arrays(shape, dtype, -5, 5))
    check(*run_both("logsumexp", x, -1, keepdims), ROWRED, dtype)
    out = ref.logsumexp(x, -1, keepdims)
    g = data.draw(arrays(out.shape, dtype))
    check(*run_both("logsumexp_back", x, out, g, -1, keepdims), ROWRED, dtype)


def test_logsumexp_of_infinite_rows():
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [0.0, 1.0]])
    got, want = run_both("logsumexp", x, -1)
    np.testing.assert_array_equal(got[:2], want[:2])


# --------------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------------


@st.composite
def run_axes(draw, ndim):
    """None, one axis (maybe negative) or a tuple of consecutive axes (the native cases)."""
    kind = draw(st.sampled_from(["none", "int", "run"]))
    if kind == "none" or ndim == 0:
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    lo = draw(st.integers(0, ndim - 1))
    hi = draw(st.integers(lo, ndim - 1))
    return tuple(range(lo, hi + 1))


@dtypes
@given(data=st.data(), keepdims=st.booleans())
def test_sum(dtype, data, keepdims):
    x = data.draw(arrays(data.draw(SHAPES), dtype))
    axis = data.draw(run_axes(x.ndim))
    got, want = run_both("sum", x, axis, keepdims, native="sum")
    check(got, want, SUMS, dtype, scale=ref.sum(np.abs(x), axis, keepdims))


@dtypes
@given(data=st.data())
def test_sum_non_consecutive_axes_delegates(dtype, data):
    x = data.draw(arrays((2, 3, 4), dtype))
    check(*run_both("sum", x, (0, 2), False, native=None), SUMS, dtype)


@st.composite
def sum_to_case(draw):
    """(grad shape, target shape): target is grad's shape with leading axes dropped and some
    axes set to 1 (any broadcast a gradient is un-broadcast from)."""
    gshape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4))
    lead = draw(st.integers(0, len(gshape)))
    target = tuple(1 if draw(st.booleans()) else n for n in gshape[lead:])
    return gshape, target


@dtypes
@given(data=st.data())
def test_sum_to(dtype, data):
    gshape, target = data.draw(sum_to_case())
    g = data.draw(arrays(gshape, dtype))
    spy = _spy()
    spy.calls.clear()
    got = nat.sum_to(g, target)
    want = ref.sum_to(g, target)
    check(got, want, SUMS, dtype, scale=ref.sum_to(np.abs(g), target))


def test_sum_to_bias_gradient_is_native():
    g = np.ones((8, 5))
    got, want = run_both("sum_to", g, (5,), native="sum_to")
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# Matrix products and the fused linear layer
# --------------------------------------------------------------------------------------------


@st.composite
def matmul_case(draw, dtype):
    m, k, n = (draw(st.integers(0, 6)) for _ in range(3))
    batch = draw(st.sampled_from([(), (2,), (1, 3)]))
    which = draw(st.sampled_from(["both", "a", "b"])) if batch else "none"
    ta, tb = draw(st.booleans()), draw(st.booleans())
    sa = (batch if which in ("both", "a") else ()) + ((k, m) if ta else (m, k))
    sb = (batch if which in ("both", "b") else ()) + ((n, k) if tb else (k, n))
    return draw(arrays(sa, dtype)), draw(arrays(sb, dtype)), ta, tb


def _op(x, t):
    return np.swapaxes(x, -1, -2) if t else x


@dtypes
@given(data=st.data())
def test_matmul(dtype, data):
    a, b, ta, tb = data.draw(matmul_case(dtype))
    got, want = run_both("matmul", a, b, ta, tb)
    scale = np.matmul(np.abs(_op(a, ta)).astype(np.float64), np.abs(_op(b, tb)))
    check(got, want, SUMS, dtype, scale=scale)


@dtypes
def test_matmul_broadcast_batch_delegates(dtype):
    a = np.ones((2, 1, 3, 4), dtype)
    b = np.ones((3, 4, 5), dtype)
    check(*run_both("matmul", a, b, native=None), SUMS, dtype)


@dtypes
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@given(data=st.data(), bias=st.booleans(), need_dx=st.booleans())
def test_linear_forward_backward(activation, dtype, data, bias, need_dx):
    n, fin, fout = (data.draw(st.integers(0, 6)) for _ in range(3))
    x = data.draw(arrays((n, fin), dtype))
    w = data.draw(arrays((fout, fin), dtype))
    b = data.draw(arrays((fout,), dtype)) if bias else None
    scale = np.abs(x).astype(np.float64) @ np.abs(w).T.astype(np.float64) + (
        np.abs(b) if bias else 0)
    got, want = run_both("linear", x, w, b, activation)
    # + |want|: the activation's own rounding (sigmoid(~0) = 0.5 carries half an ulp of 0.5)
    check(got, want, SUMS, dtype, scale=scale + np.abs(want))
    g = data.draw(arrays((n, fout), dtype))
    got3, want3 = run_both("linear_back", x, w, want, g, activation, bias, need_dx)
    assert (got3[0] is None, got3[2] is None) == (not need_dx, not bias)  # left out: None
    dz = np.abs(g).astype(np.float64)  # |act'| <= 1 for every activation here
    scales = (dz @ np.abs(w), dz.T @ np.abs(x), dz.sum(0))
    for got_i, want_i, s in zip(got3, want3, scales):
        if want_i is None:
            assert got_i is None
        else:
            check(got_i, want_i, SUMS, dtype, scale=s)
    if not need_dx:  # what is computed does not depend on what is left out: the same bits
        full = nat.linear_back(x, w, want, g, activation, bias, True)
        assert got3[1].tobytes() == full[1].tobytes()


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

LOSSES = {  # name: (prediction range, target range)
    "mse": ((-2, 2), (-2, 2)), "bce": ((0.01, 0.99), (0, 1)),
    "bce_with_logits": ((-6, 6), (0, 1)),
}


@dtypes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
@given(data=st.data())
def test_elementwise_losses(name, reduction, dtype, data):
    (plo, phi), (tlo, thi) = LOSSES[name]
    shape = data.draw(SHAPES)
    p = data.draw(arrays(shape, dtype, plo, phi))
    t = data.draw(arrays(shape, dtype, tlo, thi))
    got, want = run_both(name, p, t, reduction)
    # reduced: pairwise vs double accumulation, relative to the sum of |terms|
    terms = np.abs(ref.__dict__[name](p, t, "none").astype(np.float64))
    if name == "bce_with_logits":
        # max(z, 0) - z t cancels for t near 1 (a loss of 6e-4 from z = 7.4): the error is
        # relative to |z|, not to the small result
        terms = terms + np.abs(p.astype(np.float64))
    scale = (terms if name == "bce_with_logits" else None) if reduction == "none" \
        or terms.size == 0 else (terms.mean() if reduction == "mean" else terms.sum()) + 1e-300
    check(got, want, TRANSC, dtype, scale=scale)
    g = data.draw(arrays(shape if reduction == "none" else (), dtype))
    back_scale = None
    if name == "bce_with_logits":
        # sigmoid(z) - t cancels where t is near sigmoid(z): the error is relative to
        # |g| (sigmoid(z) + t), not to the small difference
        n = p.size if reduction == "mean" and p.size else 1
        back_scale = np.broadcast_to(np.abs(g.astype(np.float64)) * (1 + np.abs(t)) / n, shape)
    check(*run_both(f"{name}_back", p, t, g, reduction), TRANSC, dtype, scale=back_scale)


@dtypes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(data=st.data())
def test_cross_entropy(reduction, dtype, data):
    n, c = data.draw(st.integers(0, 6)), data.draw(st.integers(1, 6))
    logits = data.draw(arrays((n, c), dtype, -5, 5))
    target = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)),
                        dtype=np.int64)
    (loss, logp), (loss_r, logp_r) = run_both("cross_entropy", logits, target, reduction)
    logp_scale = _log_softmax_scale(logits, 1) if n else None
    check(logp, logp_r, ROWRED, dtype, scale=logp_scale)
    # each row's loss is -log_probs[target], the same cancelling difference as log_softmax
    if n == 0:
        loss_scale = None
    elif reduction == "none":
        loss_scale = logp_scale[np.arange(n), target]
    else:
        loss_scale = np.abs(logp_r).sum() + 1e-300
    check(loss, loss_r, ROWRED, dtype, scale=loss_scale)
    g = data.draw(arrays((n,) if reduction == "none" else (), dtype))
    # exp(log_probs) - 1 cancels at the target: error relative to (p + 1) |upstream grad|
    g_eff = np.abs(g.astype(np.float64))
    g_eff = g_eff[:, None] if reduction == "none" else g_eff / (n if reduction == "mean" and n
                                                                 else 1)
    scale = (np.exp(logp_r.astype(np.float64)) + 1) * g_eff
    check(*run_both("cross_entropy_back", logp_r, target, g, reduction), ROWRED, dtype,
          scale=scale)


# --------------------------------------------------------------------------------------------
# Optimizers (in place)
# --------------------------------------------------------------------------------------------

param_shapes = st.lists(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4),
                        min_size=1, max_size=3)


@dtypes
@given(data=st.data(), momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01]), first_step=st.booleans())
def test_sgd_step(dtype, data, momentum, nesterov, weight_decay, first_step):
    shapes = data.draw(param_shapes)
    ps = [data.draw(arrays(s, dtype, contiguous=True)) for s in shapes]
    gs = [data.draw(arrays(s, dtype)) for s in shapes]
    bufs = [data.draw(arrays(s, dtype, contiguous=True)) for s in shapes]
    ps2, bufs2 = [p.copy() for p in ps], [b.copy() for b in bufs]
    spy = _spy()
    spy.calls.clear()
    nat.sgd_step(ps, gs, bufs, 0.1, momentum, 0.1, nesterov and momentum > 0, weight_decay,
                 first_step)
    assert "sgd_step" in spy.calls
    ref.sgd_step(ps2, gs, bufs2, 0.1, momentum, 0.1, nesterov and momentum > 0, weight_decay,
                 first_step)
    for got, want in zip(ps + bufs, ps2 + bufs2):
        check(got, want, EXACT, dtype)


@dtypes
@given(data=st.data(), step=st.integers(1, 50), weight_decay=st.sampled_from([0.0, 0.1]),
       decoupled=st.booleans())
def test_adam_step(dtype, data, step, weight_decay, decoupled):
    shapes = data.draw(param_shapes)
    ps = [data.draw(arrays(s, dtype, contiguous=True)) for s in shapes]
    gs = [data.draw(arrays(s, dtype)) for s in shapes]
    ms = [data.draw(arrays(s, dtype, contiguous=True)) for s in shapes]
    vs = [data.draw(arrays(s, dtype, 0, 1, contiguous=True)) for s in shapes]
    copies = [[a.copy() for a in group] for group in (ps, ms, vs)]
    spy = _spy()
    spy.calls.clear()
    nat.adam_step(ps, gs, ms, vs, step, 1e-2, weight_decay=weight_decay, decoupled=decoupled)
    assert "adam_step" in spy.calls
    ref.adam_step(copies[0], gs, copies[1], copies[2], step, 1e-2, weight_decay=weight_decay,
                  decoupled=decoupled)
    for got, want in zip(ps + ms + vs, copies[0] + copies[1] + copies[2]):
        check(got, want, EXACT, dtype)


def test_optimizer_strided_param_delegates():
    p = np.zeros((4, 4))[:, ::2]  # strided: an in-place update must not go to a copy
    g = np.ones((4, 2))
    spy = _spy()
    spy.calls.clear()
    nat.sgd_step([p], [g], None, 0.5)
    assert not spy.calls
    np.testing.assert_array_equal(p, -0.5)


# --------------------------------------------------------------------------------------------
# Large inputs: the OpenMP paths (above the thread thresholds) agree too
# --------------------------------------------------------------------------------------------


@dtypes
def test_large_inputs_take_threaded_paths(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 1000)).astype(dtype)
    g = rng.standard_normal((300, 1000)).astype(dtype)
    for name in ("add", "mul"):
        check(*run_both(name, x, g), EXACT, dtype)
        check(*run_both(name, x, g[0]), EXACT, dtype)
    for name in ("exp", "tanh", "sigmoid", "relu"):
        check(*run_both(name, x), TRANSC, dtype)
    x64 = x.astype(np.float64)
    check(*run_both("gelu", x), TRANSC, dtype, scale=SCALES["gelu"](x64))
    check(*run_both("gelu_back", x, g), TRANSC, dtype, scale=SCALES["gelu_back"](x64, g))
    check(*run_both("softmax", x, -1), ROWRED, dtype)
    logp = ref.log_softmax(x, -1)
    check(*run_both("log_softmax_back", logp, g, -1), ROWRED, dtype,
          scale=_log_softmax_back_scale(logp, g))
    for axis in (None, 0, 1):
        got, want = run_both("sum", x, axis, native="sum")
        check(got, want, SUMS, dtype, scale=ref.sum(np.abs(x), axis))
    check(*run_both("mse", x, g, "mean"), ROWRED, dtype)
    ps, ps2 = [x.copy()], [x.copy()]
    ms, vs = [g.copy()], [np.abs(g)]
    ms2, vs2 = [g.copy()], [np.abs(g)]
    nat.adam_step(ps, [g], ms, vs, 3, 1e-3)
    ref.adam_step(ps2, [g], ms2, vs2, 3, 1e-3)
    check(ps[0], ps2[0], EXACT, dtype)


# --------------------------------------------------------------------------------------------
# Bad input to _C: a Python exception naming the shapes, never a crash or a silent cast
# --------------------------------------------------------------------------------------------

def _c():
    """The real _C (under the module's spy)."""
    return _spy()._mod


def test_shape_errors_name_the_shapes():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        _c().matmul(a, np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        _c().add(a, np.ones(4))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\)"):
        _c().relu_back(a, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 4\)"):
        _c().linear(a, np.ones((4, 4)), None, None)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        _c().cross_entropy(a, np.zeros(3, np.int64), "mean")
    with pytest.raises(ValueError, match=r"batch axes.*\(2, 2, 3\) and \(3, 3, 2\)"):
        _c().matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match=r"grads has 1 arrays for 2 params"):
        _c().sgd_step([a, a.copy()], [a], None, 0.1)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3,\)"):
        _c().adam_step([a], [np.ones(3)], [a.copy()], [a.copy()], 1, 0.1, 0.9, 0.99, 1e-8,
                       0.0, False)


def test_dtype_errors_are_type_errors():
    a32 = np.ones((2, 3), np.float32)
    a64 = np.ones((2, 3), np.float64)
    with pytest.raises(TypeError, match=r"same dtype.*float32.*\(2, 3\).*float64"):
        _c().add(a32, a64)
    with pytest.raises(TypeError, match=r"float32 or float64.*int64.*\(2, 3\)"):
        _c().exp(np.ones((2, 3), np.int64))
    with pytest.raises(TypeError, match=r"same dtype"):
        _c().matmul(a32, np.ones((3, 2)))
    with pytest.raises(TypeError, match=r"target must be int64"):
        _c().cross_entropy(a64, np.zeros(2, np.int32), "mean")
    with pytest.raises(TypeError):
        _c().exp([1.0, 2.0])  # no silent conversion of a list


def test_layout_and_value_errors():
    with pytest.raises(ValueError, match=r"C-contiguous.*\(3, 2\)"):
        _c().exp(np.ones((2, 3)).T)
    with pytest.raises(ValueError, match=r"target\[1\] = 7 is not a class index in \[0, 3\)"):
        _c().cross_entropy(np.ones((2, 3)), np.array([0, 7]), "mean")
    with pytest.raises(ValueError, match=r"reduction must be"):
        _c().mse(np.ones(2), np.ones(2), "avg")
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'"):
        _c().linear(np.ones((2, 3)), np.ones((4, 3)), None, "gelu")
    p = np.ones(3)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"read-only"):
        _c().sgd_step([p], [np.ones(3)], None, 0.1)
    with pytest.raises(ValueError, match=r"does not cover"):
        _c().sum_axis(np.ones(6), 2, 2, 2)
    # 2^40 * 0 * 2^40 == 0 == x.size, but the result's 2^80 elements overflow int64
    with pytest.raises(ValueError, match=r"does not cover"):
        _c().sum_axis(np.ones(0), 2**40, 0, 2**40)


def test_optimizer_lists_longer_than_the_fixed_buffer():
    # _C keeps list elements in a fixed buffer of 16 and moves them to the heap beyond it: lists
    # that cross it (inside the first list, and between lists) update every element as NumPy.
    rng = np.random.default_rng(1)
    for n in (5, 6, 17, 40):
        shapes = [(i % 4 + 1, i % 3 + 1) if i % 2 else (i % 5,) for i in range(n)]
        ps = [rng.standard_normal(s) for s in shapes]
        gs = [rng.standard_normal(s) for s in shapes]
        ms = [rng.standard_normal(s) for s in shapes]
        vs = [np.abs(rng.standard_normal(s)) for s in shapes]
        want = [[a.copy() for a in group] for group in (ps, ms, vs)]
        _c().adam_step(ps, gs, ms, vs, 3, 1e-2, 0.9, 0.999, 1e-8, 0.0, False)
        ref.adam_step(want[0], gs, want[1], want[2], 3, 1e-2)
        for got, exp in zip(ps + ms + vs, want[0] + want[1] + want[2]):
            np.testing.assert_array_equal(got, exp)
        bufs, bufs2, ps2 = [m.copy() for m in ms], [m.copy() for m in ms], [p.copy() for p in ps]
        _c().sgd_step(ps, gs, bufs, 0.1, 0.9, 0.0, True, 0.01, False)
        ref.sgd_step(ps2, gs, bufs2, 0.1, 0.9, 0.0, True, 0.01, False)
        for got, exp in zip(ps + bufs, ps2 + bufs2):
            np.testing.assert_array_equal(got, exp)


def test_list_element_errors_name_the_element():
    ps = [np.ones(2) for _ in range(20)]
    gs = [np.ones(2) for _ in range(20)]
    gs[17] = np.ones(2, np.int64)
    with pytest.raises(TypeError, match=r"^sgd_step: grads\[17\] must be float32 or float64, "
                                        r"got a int64 array of shape \(2,\)$"):
        _c().sgd_step(ps, gs, None, 0.1)
    gs[17] = np.ones(2)
    ps[3] = [1.0, 1.0]
    with pytest.raises(TypeError, match=r"^sgd_step: params\[3\] must be an ndarray, got list$"):
        _c().sgd_step(ps, gs, None, 0.1)
    ps[3] = np.ones((2, 2))[:, 0]
    with pytest.raises(ValueError, match=r"^sgd_step: params\[3\] must be C-contiguous"):
        _c().sgd_step(ps, gs, None, 0.1)


def test_mode_names_need_not_be_literals():
    # _C recognises the interned literals by identity; an equal string built at run time, or a
    # str subclass, is the same mode, and a near miss is still refused with its message.
    class Name(str):
        pass

    x, w, b = np.ones((2, 3)) / 3, np.arange(12.0).reshape(4, 3) / 10, np.ones(4) / 7
    for act in ("relu", "sigmoid", "tanh"):
        built = "".join(list(act))
        assert built is not act
        want = _c().linear(x, w, b, act)
        np.testing.assert_array_equal(_c().linear(x, w, b, built), want)
        np.testing.assert_array_equal(_c().linear(x, w, b, Name(act)), want)
    p, t = np.full(3, 0.25), np.array([0.0, 1.0, 1.0])
    for red in ("none", "mean", "sum"):
        want = ref.bce(p, t, red)
        np.testing.assert_array_equal(_c().bce(p, t, "".join(list(red))), want)
        np.testing.assert_array_equal(_c().bce(p, t, Name(red)), want)
    with pytest.raises(ValueError, match=r"unknown activation 'Tanh'"):
        _c().linear(x, w, b, "Tanh")
    with pytest.raises(ValueError, match=r"reduction must be 'mean', 'sum' or 'none', got 'Sum'"):
        _c().bce(p, t, "Sum")
    with pytest.raises(TypeError, match=r"activation must be None or a string, got 3"):
        _c().linear(x, w, b, 3)


def test_equivalent_dtype_objects_are_native_and_byte_swapped_ones_refused():
    # _C compares dtypes with its builtin descriptors by identity first, then by equivalence: an
    # unpickled or re-made float64/int64 descriptor is another object and must still be taken.
    import pickle
    f8, i8 = (pickle.loads(pickle.dumps(np.dtype(t))) for t in ("f8", "i8"))
    assert f8 is not np.dtype("f8") and i8 is not np.dtype("i8")
    x = np.linspace(-1, 1, 6).reshape(2, 3).view(f8)
    t = np.array([2, 0]).view(i8)
    assert x.dtype is f8 and t.dtype is i8
    xb, tb = x.view(np.float64), t.view(np.int64)  # the same memory with the builtin dtypes
    assert xb.dtype is np.dtype("f8") and tb.dtype is np.dtype("i8")
    np.testing.assert_array_equal(_c().exp(x), _c().exp(xb))
    for got, want in zip(_c().cross_entropy(x, t, "mean"), _c().cross_entropy(xb, tb, "mean")):
        np.testing.assert_array_equal(got, want)
    assert _c().add(x, np.ones((2, 3))).dtype == np.float64  # same dtype as a builtin float64
    with pytest.raises(TypeError, match=r"^exp: x must be float32 or float64, got a >f8 array"):
        _c().exp(np.ones(3, ">f8"))
    np.testing.assert_array_equal(nat.exp(np.ones(3, ">f8")), np.exp(np.ones(3)))  # delegated
