"""autograd.gradcheck itself: it passes correct gradients in both modes and catches wrong ones.

A wrong op is made by monkeypatching a registered op's backward for one test: defining a new Op
subclass would register it globally (and fail the every-op-has-an-entry test).
"""
from __future__ import annotations

import numpy as np
import pytest

import autograd
from autograd.ops import arith


def _x(shape=(2, 3), seed=0, requires_grad=True):
    values = np.random.default_rng(seed).standard_normal(shape)
    return autograd.tensor(values, requires_grad=requires_grad)


def _composite(x, w, b):
    return autograd.tanh(x @ w + b).sum(axis=0) * autograd.sigmoid(b)


@pytest.mark.parametrize("fast_mode", [False, True])
def test_passes_on_correct_gradients(backend_name, fast_mode):
    x, w, b = _x((4, 3)), _x((3, 2), seed=1), _x((2,), seed=2)
    assert autograd.gradcheck(_composite, [x, w, b], fast_mode=fast_mode) is True


@pytest.mark.parametrize("fast_mode", [False, True])
def test_checks_only_inputs_that_require_grad(fast_mode):
    x = _x()
    frozen = _x(seed=1, requires_grad=False)
    assert autograd.gradcheck(lambda a, c, k: a * c + k, [x, frozen, 3.0], fast_mode=fast_mode)


def test_accepts_a_single_tensor():
    assert autograd.gradcheck(autograd.exp, _x((3,)))


def test_output_independent_of_the_input_passes():
    assert autograd.gradcheck(lambda a: autograd.zeros(2, dtype="float64"), _x((2,)))


def _wrong_mul_backward(ctx, g):
    a, b = ctx.saved
    return g * b * 1.5, g * a  # d/da is off by 50%


def test_wrong_backward_is_caught_in_full_mode(monkeypatch):
    monkeypatch.setattr(arith.Mul, "backward", staticmethod(_wrong_mul_backward))
    x, y = _x((2,)), _x((2,), seed=1)
    with pytest.raises(autograd.GradcheckError) as info:
        autograd.gradcheck(lambda a, b: a * b, [x, y])
    message = str(info.value)
    assert "Jacobian mismatch for input 0 of shape (2,)" in message
    assert "analytical:" in message and "numerical:" in message
    # both Jacobians are shown: the analytical one is 1.5x the numerical diagonal
    expected = np.diag(1.5 * y.numpy())
    assert f"{expected[0, 0]:.6f}"[:6] in message
    assert f"{y.numpy()[0]:.6f}"[:6] in message


def test_wrong_backward_names_the_right_input(monkeypatch):
    def wrong(ctx, g):
        a, b = ctx.saved
        return g * b, -g * a  # d/db has the wrong sign
    monkeypatch.setattr(arith.Mul, "backward", staticmethod(wrong))
    x, y = _x((2,)), _x((2,), seed=1)
    with pytest.raises(autograd.GradcheckError, match="input 1 of shape"):
        autograd.gradcheck(lambda a, b: a * b, [x, y])
    # input 0 alone is correct
    assert autograd.gradcheck(lambda a, b: a * b, [x, y.detach()])


def test_wrong_backward_is_caught_in_fast_mode(monkeypatch):
    monkeypatch.setattr(arith.Mul, "backward", staticmethod(_wrong_mul_backward))
    x, y = _x((3, 2)), _x((3, 2), seed=1)
    with pytest.raises(autograd.GradcheckError,
                       match=r"(?s)fast mode.*input 0 of shape \(3, 2\).*analytical: .*"
                             r"numerical: "):
        autograd.gradcheck(lambda a, b: a * b, [x, y], fast_mode=True)


def test_gradient_wrong_at_one_element_is_caught(monkeypatch):
    # exp's gradient dropped at element 1 only: the full Jacobian compares every entry
    original = arith.Exp.backward

    def wrong(ctx, g):
        (d,) = original(ctx, g)
        return (d * np.where(np.arange(d.size).reshape(d.shape) == 1, 0.0, 1.0),)
    monkeypatch.setattr(arith.Exp, "backward", staticmethod(wrong))
    with pytest.raises(autograd.GradcheckError, match="input 0"):
        autograd.gradcheck(autograd.exp, [_x((3,))])


def test_float32_inputs_warn():
    x = autograd.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="input 0 is float32, not float64"):
        assert autograd.gradcheck(lambda a: a * 2.0, [x], eps=1e-2, atol=1e-2, rtol=1e-2)


def test_needs_an_input_requiring_grad():
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        autograd.gradcheck(autograd.exp, [_x(requires_grad=False)])


def test_fn_must_return_a_tensor():
    with pytest.raises(TypeError, match="fn must return a Tensor, got float"):
        autograd.gradcheck(lambda a: 1.0, [_x()])
