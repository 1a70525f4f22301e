"""Full training runs reach the same loss curve on both kernel providers."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import need_native

import autograd as ag
from autograd import backend, nn, optim
from autograd import functional as F


def train(provider: str, dtype: str, opt_name: str, steps: int = 30) -> list[float]:
    """A 20-32-16-4 MLP (ReLU, tanh, sigmoid layers) on fixed data; the loss of every step."""
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.standard_normal((64, 20)), dtype=dtype)
    y = rng.integers(0, 4, 64)
    with backend.use(provider):
        ag.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(),
                              nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 4))
        if dtype == "float64":
            model.double()
        opt = (optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3) if opt_name == "adam"
               else optim.SGD(model.parameters(), lr=0.5, momentum=0.9, nesterov=True,
                              weight_decay=1e-3))
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-4)])
def test_native_and_numpy_training_curves_agree(opt_name, dtype, rtol):
    need_native()
    reference = train("numpy", dtype, opt_name)
    native = train("native", dtype, opt_name)
    assert reference[-1] < reference[0] * 0.7  # it trains
    np.testing.assert_allclose(native, reference, rtol=rtol)
