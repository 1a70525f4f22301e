"""PyTorch's numbers where autograd used to differ silently, and the PyTorch arguments of its
ops (issue 13). Each test states the rule with exact expected values, on both kernel providers;
where torch is installed, the arguments are also checked against torch itself (float64, values
and every gradient)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd as ag
import autograd.functional as F
import autograd.nn as nn
from autograd.keras import layers as keras_layers

INF = math.inf


def t64(a, requires_grad=False):
    return ag.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# ------------------------------------------------------------------ wrong or missing numbers

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_losses_differentiate_the_target(backend_name, reduction):
    p = t64([0.2, 0.5, 0.9], True)
    t = t64([0.0, 0.25, 1.0], True)
    F.binary_cross_entropy(p, t, reduction=reduction).sum().backward()
    n = 3 if reduction == "mean" else 1
    # d/dt of -(t log p + (1 - t) log(1 - p)) is -logit(p)
    np.testing.assert_allclose(t.grad.numpy(), -np.log(np.array([0.2, 0.5, 0.9]) /
                                                       (1 - np.array([0.2, 0.5, 0.9]))) / n)
    z = t64([-2.0, 0.0, 3.0], True)
    t = t64([0.0, 0.25, 1.0], True)
    F.binary_cross_entropy_with_logits(z, t, reduction=reduction).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), -np.array([-2.0, 0.0, 3.0]) / n)


def test_pow_gradients_at_zero_are_pytorchs(backend_name):
    x = t64([0.0, 0.0, 2.0], True)
    p = t64([0.0, 2.0, 0.5], True)
    (x ** p).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[:2], [0.0, 0.0])  # was NaN at 0 ** 0
    np.testing.assert_array_equal(p.grad.numpy()[:2], [0.0, 0.0])  # was -inf and NaN
    x = t64([0.0, 1.0], True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    e = t64([0.0, 1.0], True)
    (0.0 ** e).sum().backward()
    np.testing.assert_array_equal(e.grad.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,)])
def test_reductions_of_a_0d_tensor_take_axis_0_and_minus_1(backend_name, axis):
    x = t64(3.0, True)
    for f in (F.sum, F.mean, F.max, F.min, F.logsumexp):
        y = f(x, axis=axis)
        assert y.shape == () and y.item() == 3.0, f
    assert F.var(x, axis=axis).item() == 0.0
    assert F.softmax(x, axis if isinstance(axis, int) else axis[0]).item() == 1.0
    assert F.log_softmax(x, -1).item() == 0.0
    with pytest.raises(ValueError, match=r"sum: axis 1 is out of range for a tensor of shape"):
        F.sum(x, axis=1)


def test_flatten_with_zero_size_dimensions():
    assert ag.zeros(0, 3).flatten(1).shape == (0, 3)
    assert ag.zeros(2, 0, 3).flatten(1).shape == (2, 0)
    assert ag.zeros(0, 2, 3).flatten(0, 1).shape == (0, 3)
    assert ag.zeros(2, 3, 4, 5).flatten(1, 2).shape == (2, 12, 5)
    assert ag.tensor(1.0).flatten().shape == (1,)


def test_log_softmax_of_a_row_with_inf_is_nan_as_pytorch(backend_name):
    for dtype in (np.float32, np.float64):
        x = ag.tensor(np.array([[INF, -INF, 0.0], [1.0, 2.0, 3.0]], dtype=dtype))
        out = F.log_softmax(x, -1).numpy()
        assert np.isnan(out[0]).all()
        np.testing.assert_allclose(out[1], np.log(np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum()),
                                   rtol=1e-6)
    assert np.isnan(F.log_softmax(t64([-INF, -INF])).numpy()).all()


def test_integer_and_bool_tensors_follow_pytorchs_dtype_rules(backend_name):
    i = ag.tensor([1, 2])
    s = F.sigmoid(i)  # was all zeros (computed and truncated in int64)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s.numpy(), [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))],
                               rtol=1e-6)
    for f in (F.exp, F.log, F.sqrt, F.tanh, F.gelu, F.softmax, F.log_softmax, F.logsumexp,
              F.mean, F.var):
        assert f(i).dtype == np.float32, f
    b = ag.tensor([True, True, False])
    assert b.sum().dtype == np.int64 and b.sum().item() == 2  # was True
    assert F.square(b).dtype == np.int64 and F.square(b).tolist() == [1, 1, 0]
    assert ag.tensor(np.array([7, 8], dtype=np.int32)).sum().dtype == np.int64
    mse = F.mse_loss(ag.tensor([1, 2]), ag.tensor([2, 2]))  # was 0 (truncated)
    assert mse.dtype == np.float32 and mse.item() == 0.5
    assert (i / i).dtype == np.float32 and (i / 4).tolist() == [0.25, 0.5]
    assert (i < 1.5).dtype == np.bool_ and (i < 1.5).tolist() == [True, False]
    assert (i == 2).dtype == np.bool_ if not isinstance(i == 2, bool) else True
    assert i.eq(2).tolist() == [False, True] and i.eq(2).dtype == np.bool_
    assert (i * 0.5).dtype == np.float32 and (i * 0.5).tolist() == [0.5, 1.0]
    assert (b + 1).dtype == np.int64 and (b + 1).tolist() == [2, 2, 1]  # was True
    assert (ag.tensor([2, 3]) ** ag.tensor([-1, 2])).tolist() == [0, 9]  # C integer power
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        i ** -1
    with pytest.raises(TypeError, match="neg: not defined for boolean tensors"):
        -b


def test_integer_and_bool_tensors_cannot_require_grad():
    for data in ([1, 2], [True, False]):
        with pytest.raises(TypeError, match=r"only floating tensors can require grad, not "
                                            r"(int64|bool)"):
            ag.tensor(data, requires_grad=True)
        with pytest.raises(TypeError, match="only floating tensors can require grad"):
            ag.tensor(data).requires_grad = True


def test_tensor_refuses_none_and_integers_beyond_int64():
    with pytest.raises(TypeError, match=r"tensor: cannot convert None"):
        ag.tensor(None)  # was NaN
    with pytest.raises(TypeError, match=r"tensor: cannot convert None"):
        ag.tensor([1.0, None])
    with pytest.raises(OverflowError, match=r"tensor: the integer 1180591620717411303424 does "
                                            r"not fit in int64"):
        ag.tensor(2 ** 70)  # was a float32
    with pytest.raises(OverflowError, match=r"does not fit in int64"):
        ag.tensor(2 ** 63)  # was wrapped to -2**63
    with pytest.raises(OverflowError, match=r"does not fit in int64"):
        ag.tensor([1, 2 ** 63])  # was a float64 tensor
    assert ag.tensor([1.0, 1e30]).dtype == np.float32  # floats stay floats
    assert ag.tensor(-2 ** 63).item() == -2 ** 63
    with pytest.raises(TypeError, match="complex"):
        ag.tensor([1.0]) + 1j


# ------------------------------------------------------------------ PyTorch's arguments

def test_cross_entropy_class_weights_ignore_index_and_smoothing(backend_name):
    z = t64([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0], [2.0, 1.0, 1.0]], True)
    y = np.array([1, -100, 0])
    logp = z.numpy() - np.log(np.exp(z.numpy()).sum(1, keepdims=True))
    w = np.array([2.0, 0.5, 1.0])
    loss = F.cross_entropy(z, y, weight=t64(w))
    # weighted mean over the counted targets: (0.5 * -logp[0,1] + 2 * -logp[2,0]) / 2.5
    np.testing.assert_allclose(loss.item(), (-0.5 * logp[0, 1] - 2 * logp[2, 0]) / 2.5)
    loss.backward()
    assert np.all(z.grad.numpy()[1] == 0), "an ignored row gets no gradient"
    eps = 0.2
    got = F.cross_entropy(z, np.array([1, 2, 0]), label_smoothing=eps, reduction="none")
    q = np.full((3, 3), eps / 3) + (1 - eps) * np.eye(3)[[1, 2, 0]]
    np.testing.assert_allclose(got.numpy(), -(q * logp).sum(1))
    nan = F.cross_entropy(z, np.array([-100, -100, -100]))
    assert np.isnan(nan.item())  # nothing counted: 0 / 0, as in PyTorch


def test_cross_entropy_probability_targets_and_spatial_logits(backend_name):
    z = t64(np.linspace(-1, 1, 2 * 3 * 4).reshape(2, 3, 4), True)
    p = t64(np.full((2, 3, 4), 1 / 3), True)
    loss = F.cross_entropy(z, p)
    logp = z.numpy() - np.log(np.exp(z.numpy()).sum(1, keepdims=True))
    np.testing.assert_allclose(loss.item(), -(p.numpy() * logp).sum(1).mean())
    loss.backward()
    np.testing.assert_allclose(p.grad.numpy(), -logp / 8)
    y = np.array([[0, 1, 2, 0], [2, 2, 1, 0]])
    per = F.cross_entropy(z, y, reduction="none")
    assert per.shape == (2, 4)
    np.testing.assert_allclose(per.numpy(), -np.take_along_axis(logp, y[:, None], 1)[:, 0])
    assert F.cross_entropy(t64([1.0, 2.0]), np.array(1)).shape == ()  # unbatched (C,)
    with pytest.raises(ValueError, match="weight cannot require grad"):
        F.cross_entropy(z, y, weight=t64([1.0, 1.0, 1.0], True))


def test_bce_weight_and_pos_weight(backend_name):
    p, t = t64([[0.2, 0.7]], True), t64([[1.0, 0.0]])
    w = t64([2.0, 3.0])
    got = F.binary_cross_entropy(p, t, weight=w, reduction="sum").item()
    assert got == pytest.approx(-2 * math.log(0.2) - 3 * math.log(0.3))
    z = t64([[0.5, -1.0]], True)
    pw = t64([4.0, 2.0])
    got = F.binary_cross_entropy_with_logits(z, t, pos_weight=pw, reduction="none").numpy()
    sig = 1 / (1 + np.exp(-z.numpy()))
    np.testing.assert_allclose(got, [[-4 * math.log(sig[0, 0]), -math.log(1 - sig[0, 1])]])


def test_clamp_with_tensor_bounds(backend_name):
    x = t64([-2.0, 0.5, 3.0, 1.0], True)
    lo = t64([-1.0, 0.0, 0.0, 2.0], True)
    hi = t64([1.0, 1.0, 2.0, 0.0], True)  # the last pair has min > max
    y = F.clamp(x, lo, hi)
    np.testing.assert_array_equal(y.numpy(), [-1.0, 0.5, 2.0, 0.0])  # min > max gives max
    y.backward(np.ones(4))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 0, 0])
    np.testing.assert_array_equal(lo.grad.numpy(), [1, 0, 0, 0])
    np.testing.assert_array_equal(hi.grad.numpy(), [0, 0, 1, 1])
    np.testing.assert_array_equal(t64([0.0, 5.0]).clip(2, 1).numpy(), [1.0, 1.0])


def test_logsumexp_over_several_axes(backend_name):
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    for axis in [(0, 2), (-1, 0), None, (0, 1, 2)]:
        got = F.logsumexp(t64(x), axis=axis, keepdims=True)
        ax = tuple(range(3)) if axis is None else axis
        np.testing.assert_allclose(got.numpy(), np.log(np.exp(x).sum(ax, keepdims=True)))
    with pytest.raises(ValueError, match="logsumexp: repeated axis"):
        F.logsumexp(t64(x), axis=(0, -3))


def test_gelu_is_exact_by_default_as_pytorch(backend_name):
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    exact = 0.5 * x * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    np.testing.assert_allclose(F.gelu(t64(x)).numpy(), exact, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(nn.GELU()(t64(x)).numpy(), exact, rtol=1e-14, atol=1e-15)
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(t64(x), approximate="tanh").numpy(), tanh, rtol=1e-14)
    assert not np.allclose(exact, tanh, rtol=1e-6)
    assert keras_layers.ACTIVATIONS["gelu"] is nn.GELU  # Keras's gelu is exact by default
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh'"):
        nn.GELU("erf")


def test_leaky_relu_negative_slope_keyword(backend_name):
    x = t64([-2.0, 3.0], True)
    y = F.leaky_relu(x, negative_slope=0.2)
    np.testing.assert_allclose(y.numpy(), [-0.4, 3.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.2, 1.0])
    with pytest.raises(ValueError, match="leaky_relu: inplace=True is not supported"):
        F.leaky_relu(x, 0.2, inplace=True)


# ------------------------------------------------------------------ against torch itself

def _torch():
    return pytest.importorskip("torch")


def _pair(a, requires_grad=True):
    torch = _torch()
    a = np.asarray(a, dtype=np.float64)
    return t64(a, requires_grad), torch.tensor(a, requires_grad=requires_grad)


def _compare(ours, theirs, pairs, rng):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12,
                               equal_nan=True)
    cot = rng.standard_normal(ours.shape)
    ours.backward(cot)
    torch = _torch()
    grads = torch.autograd.grad(theirs, [t for _, t in pairs], torch.from_numpy(cot),
                                allow_unused=True)
    for k, ((o, _), g) in enumerate(zip(pairs, grads)):
        want = np.zeros(o.shape) if g is None else g.numpy()
        got = np.zeros(o.shape) if o.grad is None else o.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"input {k}")


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_matches_torch(backend_name, rng, reduction, smoothing):
    torch = _torch()
    tf = torch.nn.functional
    for shape in [(5, 4), (3, 4, 2, 3), (4,)]:
        zo, zt = _pair(rng.standard_normal(shape) * 2)
        w = rng.uniform(0.2, 2.0, 4)
        lead = () if len(shape) == 1 else (shape[0],) + shape[2:]
        y = rng.integers(0, 4, lead)
        if lead:
            y.flat[0] = 2  # the ignored class below
        for kw in [{}, {"weight": w}, {"ignore_index": 2}, {"weight": w, "ignore_index": 2}]:
            zo.grad = None
            ours = F.cross_entropy(zo, y, reduction=reduction, label_smoothing=smoothing,
                                   **{k: (t64(v) if k == "weight" else v) for k, v in kw.items()})
            theirs = tf.cross_entropy(zt, torch.from_numpy(y), reduction=reduction,
                                      label_smoothing=smoothing,
                                      **{k: (torch.from_numpy(v) if k == "weight" else v)
                                         for k, v in kw.items()})
            _compare(ours, theirs, [(zo, zt)], rng)
        po, pt = _pair(rng.uniform(0, 1, shape))
        zo.grad = None
        ours = F.cross_entropy(zo, po, weight=t64(w), reduction=reduction,
                               label_smoothing=smoothing)
        theirs = tf.cross_entropy(zt, pt, weight=torch.from_numpy(w), reduction=reduction,
                                  label_smoothing=smoothing)
        _compare(ours, theirs, [(zo, zt), (po, pt)], rng)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_arguments_match_torch(backend_name, rng, reduction):
    torch = _torch()
    tf = torch.nn.functional
    po, pt = _pair(rng.uniform(0.05, 0.95, (4, 3)))
    to, tt = _pair(rng.uniform(0, 1, (4, 3)))
    w = rng.uniform(0.1, 2, (3,))
    ours = F.binary_cross_entropy(po, to, weight=t64(w), reduction=reduction)
    theirs = tf.binary_cross_entropy(pt, tt, weight=torch.from_numpy(w), reduction=reduction)
    _compare(ours, theirs, [(po, pt), (to, tt)], rng)
    zo, zt = _pair(rng.standard_normal((4, 3)) * 3)
    to, tt = _pair(rng.uniform(0, 1, (4, 3)))
    pw = rng.uniform(0.1, 4, (3,))
    ours = F.binary_cross_entropy_with_logits(zo, to, weight=t64(w), reduction=reduction,
                                              pos_weight=t64(pw))
    theirs = tf.binary_cross_entropy_with_logits(zt, tt, weight=torch.from_numpy(w),
                                                 reduction=reduction,
                                                 pos_weight=torch.from_numpy(pw))
    _compare(ours, theirs, [(zo, zt), (to, tt)], rng)


@pytest.mark.torch
def test_clamp_pow_gelu_and_logsumexp_match_torch(backend_name, rng):
    torch = _torch()
    xo, xt = _pair(rng.standard_normal((3, 4)) * 2)
    lo_o, lo_t = _pair(rng.standard_normal((4,)))
    hi_o, hi_t = _pair(rng.standard_normal((3, 1)))  # min > max in some places
    _compare(F.clamp(xo, lo_o, hi_o), torch.clamp(xt, lo_t, hi_t),
             [(xo, xt), (lo_o, lo_t), (hi_o, hi_t)], rng)
    ao, at = _pair([0.0, 0.0, 0.0, 1.5, 0.0])
    bo, bt = _pair([0.0, 1.0, 2.0, 0.5, 3.0])
    _compare(ao ** bo, at ** bt, [(ao, at), (bo, bt)], rng)
    for approximate in ("none", "tanh"):
        xo, xt = _pair(rng.standard_normal(7) * 3)
        _compare(F.gelu(xo, approximate=approximate),
                 torch.nn.functional.gelu(xt, approximate=approximate), [(xo, xt)], rng)
    xo, xt = _pair(rng.standard_normal((2, 3, 4)))
    _compare(F.logsumexp(xo, (0, 2)), torch.logsumexp(xt, (0, 2)), [(xo, xt)], rng)
    xo, xt = _pair([[INF, -INF, 0.0], [-INF, -INF, -INF]], requires_grad=False)
    np.testing.assert_array_equal(np.isnan(F.log_softmax(xo, 1).numpy()),
                                  np.isnan(torch.log_softmax(xt, 1).numpy()))


def test_loss_modules_take_pytorchs_arguments(backend_name):
    z = t64([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]], True)
    y = np.array([1, 2])
    w = t64([1.0, 0.0, 1.0])
    loss = nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)
    np.testing.assert_allclose(loss(z, y).numpy(),
                               F.cross_entropy(z, y, weight=w, label_smoothing=0.1).numpy())
    assert "weight" in loss.state_dict()  # a buffer, as in PyTorch
    assert nn.CrossEntropyLoss(ignore_index=2)(z, y).item() == pytest.approx(
        F.cross_entropy(z[:1], y[:1]).item())
    p, t = t64([[0.3, 0.8]]), t64([[1.0, 0.0]])
    assert nn.BCELoss(t64([2.0, 0.5]))(p, t).item() == pytest.approx(
        F.binary_cross_entropy(p, t, weight=t64([2.0, 0.5])).item())
    pw = t64([3.0, 1.0])
    assert nn.BCEWithLogitsLoss(pos_weight=pw, reduction="sum")(p, t).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(p, t, reduction="sum", pos_weight=pw).item())
    assert nn.BCELoss("sum")(p, t).item() == pytest.approx(
        F.binary_cross_entropy(p, t, reduction="sum").item())


def test_clip_of_integers_with_float_bounds_is_default_float(backend_name):
    y = ag.tensor([1, 2, 3]).clip(0.5, 1.5)  # was float64 (NumPy's promotion)
    assert y.dtype == np.float32 and y.tolist() == [1.0, 1.5, 1.5]
    assert ag.tensor([1, 2, 3]).clip(2, 2).dtype == np.int64


def test_gradients_at_nan_and_inf_are_pytorchs(backend_name):
    nan = math.nan
    for dtype in (np.float32, np.float64):
        x = ag.tensor(np.array([nan, -1.0, 2.0], dtype=dtype), requires_grad=True)
        F.relu(x).backward(np.ones(3, dtype=dtype))
        np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0, 1.0])  # NaN passes it on
        x = ag.tensor(np.array([nan, INF, 0.0], dtype=dtype), requires_grad=True)
        F.abs(x).backward(np.ones(3, dtype=dtype))
        np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])
    a = t64([nan, 1.0, 2.0, 3.0], True)
    b = t64([1.0, nan, 2.0, 1.0], True)
    F.maximum(a, b).backward(np.ones(4))
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0, 0.5, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0, 0.5, 0.0])


def test_keras_gelu_activation_is_the_exact_form(backend_name):
    from autograd import keras
    model = keras.models.Sequential([keras.layers.Dense(2, input_dim=3, activation="gelu")])
    x = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    kernel, bias = model.layers[0].get_weights()
    z = (x @ kernel + bias).astype(np.float64)
    exact = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    np.testing.assert_allclose(model.predict(x), exact, rtol=1e-5, atol=1e-6)
