"""Binary cross-entropy's targets are probabilities, as PyTorch requires: a target outside
[0, 1] (nan included) is refused by the bce kernels of every provider with one message naming the
kernel, the first bad target's index and its value, on every path that reaches them (the loss
function's fast and general paths, a compiled step's replay). Before, it gave a number."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autograd as ag
from autograd import backend
from autograd import functional as F
from autograd import nn, optim
from autograd.backend import numpy_kernels

BAD = [1.5, -0.25, math.nan, math.inf, -math.inf, 1.0000001]


def providers() -> dict:
    """Every module that implements the kernels: the NumPy reference, the NumPy provider that
    runs (its compiled twin where built) and, where built, the raw native kernels and the
    native provider (its dispatch to them)."""
    out = {"numpy_kernels": numpy_kernels, "numpy_provider": backend.numpy_provider}
    if "native" in backend.available():
        native = backend._load_native()
        out["_C"] = native._C
        out["native"] = native
    return out


def refusals(kernel: str, args: tuple) -> dict:
    """provider -> the message its kernel raised (None where it returned)."""
    got = {}
    for name, k in providers().items():
        try:
            getattr(k, kernel)(*args)
            got[name] = None
        except ValueError as e:
            got[name] = str(e)
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("kernel", ["bce", "bce_back"])
def test_every_provider_refuses_a_target_outside_0_1_with_one_message(kernel, bad, dtype):
    if dtype is np.float32 and bad == 1.0000001:
        bad = float(np.nextafter(np.float32(1), np.float32(2)))  # the next float32 above 1
    p = np.full((2, 3), 0.5, dtype)
    t = np.array([[0.0, 1.0, 0.5], [0.25, bad, 2.0]], dtype)  # index 4 first, then 5
    args = (p, t, "mean") if kernel == "bce" else (p, t, np.ones((), dtype), "mean")
    got = refusals(kernel, args)
    value = float(dtype(bad))
    want = (f"{kernel}: target[4] = {'nan' if math.isnan(value) else format(value, 'g')} is "
            f"not in [0, 1]: binary cross-entropy takes target probabilities")
    assert got == {name: want for name in got}


@settings(max_examples=60, deadline=None)
@given(t=hnp.arrays(st.sampled_from([np.float32, np.float64]), hnp.array_shapes(max_dims=3),
                    elements=st.one_of(st.floats(0, 1), st.floats(-2, 3), st.just(math.nan)),),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_providers_agree_on_which_targets_they_refuse(t, reduction):
    p = np.full(t.shape, 0.25, t.dtype)
    for kernel, args in (("bce", (p, t, reduction)),
                         ("bce_back", (p, t, np.ones(t.shape if reduction == "none" else (),
                                                     t.dtype), reduction))):
        got = refusals(kernel, args)
        assert len(set(got.values())) == 1, got
        valid = bool(np.all((t >= 0) & (t <= 1)))
        assert (got["numpy_kernels"] is None) == valid


def test_targets_at_the_bounds_are_probabilities(backend_name):
    p = ag.tensor(np.array([0.2, 0.5, 0.9]), requires_grad=True)
    t = ag.tensor(np.array([0.0, 1.0, 0.5]))
    loss = F.binary_cross_entropy(p, t)
    loss.backward()
    want = -np.mean([np.log(0.8), np.log(0.5), 0.5 * np.log(0.9) + 0.5 * np.log(0.1)])
    assert loss.item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("path", ["sigmoid output", "any probabilities", "weighted"])
def test_the_loss_refuses_a_bad_target_on_every_path(backend_name, path):
    z = ag.tensor(np.array([[0.3], [-1.2], [2.0]], np.float32), requires_grad=True)
    t = ag.tensor(np.array([[1.0], [-1.0], [0.0]], np.float32))  # {-1, 1} labels: a mistake
    with pytest.raises(ValueError, match=r"bce: target\[1\] = -1 is not in \[0, 1\]"):
        if path == "sigmoid output":  # the fast path: straight to the op
            F.binary_cross_entropy(F.sigmoid(z), t)
        elif path == "any probabilities":  # the general path (the input is scanned)
            F.binary_cross_entropy(ag.tensor(np.full((3, 1), 0.5, np.float32)), t)
        else:
            F.binary_cross_entropy(F.sigmoid(z), t, weight=2.0)


def test_a_compiled_step_refuses_a_target_made_bad_after_tracing():
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1), nn.Sigmoid())
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = ag.tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
    y = ag.tensor(np.array([[0], [1], [1], [0]], np.float32))

    @ag.compile
    def step():
        opt.zero_grad()
        loss = F.binary_cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(4):  # traced, then replayed
        step()
    before = [p.numpy().copy() for p in model.parameters()]
    y._data[2, 0] = 3.0  # the data changes under the replay
    with pytest.raises(ValueError, match=r"target\[2\] = 3 is not in \[0, 1\]"):
        step()
    # nothing was updated by the refused step
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)
