"""autograd.nn.init: PyTorch's formulas (gains, fans, bounds), statistics on large tensors,
reproducibility, in-place semantics, Linear's init= options and the zero-init symmetry."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd as ag
import autograd.nn as nn
from autograd.nn import init


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a number"):
        init.calculate_gain("leaky_relu", "x")


def test_fans():
    assert init.fan_in_and_fan_out(ag.zeros(5, 3)) == (3, 5)
    assert init.fan_in_and_fan_out(ag.zeros(4, 2, 3, 3)) == (18, 36)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_uniform_(ag.zeros(5))
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(ag.zeros(2, 2), mode="fan_avg")


BIG = (600, 800)  # fan_out 600, fan_in 800: 480k samples, std estimates to ~0.2%


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh", "leaky_relu"])
def test_kaiming_statistics(mode, nonlinearity):
    fan = 800 if mode == "fan_in" else 600
    gain = init.calculate_gain(nonlinearity, 0.2 if nonlinearity == "leaky_relu" else None)
    a = 0.2 if nonlinearity == "leaky_relu" else 0
    w = init.kaiming_normal_(ag.zeros(*BIG, dtype=np.float64), a=a, mode=mode,
                             nonlinearity=nonlinearity).numpy()
    assert w.std() == pytest.approx(gain / math.sqrt(fan), rel=0.01)
    assert abs(w.mean()) < 0.01 * w.std() * 5
    u = init.kaiming_uniform_(ag.zeros(*BIG, dtype=np.float64), a=a, mode=mode,
                              nonlinearity=nonlinearity).numpy()
    bound = gain * math.sqrt(3 / fan)
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.99 * bound
    assert u.std() == pytest.approx(gain / math.sqrt(fan), rel=0.01)


def test_xavier_uniform_normal_and_constants():
    w = init.xavier_uniform_(ag.zeros(*BIG), gain=2.0).numpy()
    bound = 2.0 * math.sqrt(6 / 1400)
    assert np.abs(w).max() <= bound and w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    w = init.xavier_normal_(ag.zeros(*BIG)).numpy()
    assert w.std() == pytest.approx(math.sqrt(2 / 1400), rel=0.01)
    w = init.normal_(ag.zeros(*BIG), mean=3.0, std=0.5).numpy()
    assert w.mean() == pytest.approx(3.0, abs=0.005) and w.std() == pytest.approx(0.5, rel=0.01)
    w = init.uniform_(ag.zeros(*BIG), -2.0, 1.0).numpy()
    assert w.min() >= -2 and w.max() < 1 and w.mean() == pytest.approx(-0.5, abs=0.01)
    assert np.all(init.constant_(ag.zeros(3, 2), 0.25).numpy() == 0.25)
    assert np.all(init.ones_(ag.zeros(3)).numpy() == 1)
    assert np.all(init.zeros_(ag.ones(3)).numpy() == 0)
    with pytest.raises(ValueError, match="std must be non-negative"):
        init.normal_(ag.zeros(2), std=-1)
    with pytest.raises(ValueError, match="greater than upper"):
        init.uniform_(ag.zeros(2), 1, 0)


def test_in_place_on_parameters_and_dtype_kept():
    p = nn.Parameter(np.zeros((3, 4), dtype=np.float32))
    data, version = p.numpy(), p._version
    out = init.kaiming_uniform_(p)  # a leaf requiring grad: works because init uses no_grad
    assert out is p and p.numpy() is data and p.dtype == np.float32
    assert p._version == version + 1 and p.requires_grad and p.grad is None
    assert np.any(data != 0)


def test_reproducible_with_seed_or_generator():
    ag.manual_seed(42)
    a = init.normal_(ag.zeros(5, 5)).numpy().copy()
    ag.manual_seed(42)
    b = init.normal_(ag.zeros(5, 5)).numpy()
    np.testing.assert_array_equal(a, b)
    g1, g2 = np.random.default_rng(1), np.random.default_rng(1)
    np.testing.assert_array_equal(init.xavier_uniform_(ag.zeros(4, 3), generator=g1).numpy(),
                                  init.xavier_uniform_(ag.zeros(4, 3), generator=g2).numpy())
    ag.manual_seed(7)
    l1 = nn.Linear(4, 3)
    ag.manual_seed(7)
    l2 = nn.Linear(4, 3)
    np.testing.assert_array_equal(l1.weight.numpy(), l2.weight.numpy())


# ------------------------------------------------------------------------------ Linear init=

def test_linear_default_init_is_pytorchs():
    lin = nn.Linear(400, 300, dtype=np.float64)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) reduces to U(+-1/sqrt(fan_in))
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert np.abs(b).max() <= bound and np.any(b != 0)


def test_linear_named_inits():
    he = nn.Linear(500, 400, init="he", dtype=np.float64)
    assert he.weight.numpy().std() == pytest.approx(math.sqrt(2 / 500), rel=0.01)
    assert np.all(he.bias.numpy() == 0)
    xa = nn.Linear(500, 400, init="xavier", dtype=np.float64).weight.numpy()
    assert np.abs(xa).max() <= math.sqrt(6 / 900)
    assert xa.std() == pytest.approx(math.sqrt(2 / 900), rel=0.01)
    nm = nn.Linear(500, 400, init="normal").weight.numpy()
    assert nm.std() == pytest.approx(0.01, rel=0.01)
    z = nn.Linear(5, 4, init="zeros")
    assert np.all(z.weight.numpy() == 0) and np.all(z.bias.numpy() == 0)
    c = nn.Linear(3, 2, init=lambda w: init.constant_(w, 0.5))
    assert np.all(c.weight.numpy() == 0.5) and np.all(c.bias.numpy() == 0)
    with pytest.raises(ValueError, match="unknown init 'glorot'"):
        nn.Linear(3, 2, init="glorot")


def _train(model, x, y, steps=25, lr=0.5):
    for _ in range(steps):
        model.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        with ag.no_grad():
            for p in model.parameters():
                p.sub_(p.grad * lr)


def test_zero_init_keeps_hidden_units_identical(rng):
    """The symmetry problem: with zero (or any constant) init every hidden unit gets the same
    gradient, so after training they are still copies of one another."""
    x = ag.tensor(rng.standard_normal((16, 3)), dtype=np.float32)
    y = ag.tensor(rng.standard_normal((16, 1)), dtype=np.float32)
    model = nn.Sequential(nn.Linear(3, 8, init="zeros"), nn.Sigmoid(),
                          nn.Linear(8, 1, init="zeros"))
    _train(model, x, y)
    w1, b1, w2 = model[0].weight.numpy(), model[0].bias.numpy(), model[2].weight.numpy()
    assert np.any(w1 != 0) and np.any(w2 != 0)  # it did learn something...
    np.testing.assert_allclose(w1, np.broadcast_to(w1[:1], w1.shape), rtol=1e-6)  # ...but
    np.testing.assert_allclose(b1, b1[0], rtol=1e-6)  # every hidden unit is the same one
    np.testing.assert_allclose(w2, w2[0, 0], rtol=1e-6)
    ag.manual_seed(0)
    broken = nn.Sequential(nn.Linear(3, 8), nn.Sigmoid(), nn.Linear(8, 1))
    _train(broken, x, y)
    w1 = broken[0].weight.numpy()
    assert np.abs(w1 - w1[:1]).max() > 1e-2  # random init breaks the symmetry
