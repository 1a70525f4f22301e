"""PyTorch's Tensor methods and functions beside the NumPy names: the parts the op database does
not cover (metadata, dtype conversion across dtypes, retain_grad, grad_fn, argmax/argmin,
max/min with dim=, linspace), and agreement with PyTorch itself where it is installed."""
from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest

import autograd as ag
from autograd import functional as F

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def test_size_is_numpys_attribute_and_pytorchs_method():
    x = ag.zeros(2, 3, 4)
    assert x.size == 24 and x.size + 1 == 25 and isinstance(x.size, int)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.dim() == 3 and x.numel() == 24
    with pytest.raises(IndexError, match=r"size: dim 3 is out of range .* \(2, 3, 4\)"):
        x.size(3)
    assert pickle.loads(pickle.dumps(x.size)) == 24
    assert ag.rand(x.size()).shape == (2, 3, 4)


def test_float_and_double_are_differentiable_and_cast_the_gradient_back():
    x = ag.tensor([1.0, -2.0, 3.0], requires_grad=True)  # float32
    y = x.double()
    assert y.dtype == np.float64 and y.grad_fn.op.name == "cast"
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.array([2.0, -4.0, 6.0], np.float32))
    z = ag.tensor([1.5], dtype="float64", requires_grad=True)
    out = z.float()
    assert out.dtype == np.float32
    out.sum().backward()
    assert z.grad.dtype == np.float64 and z.grad.item() == 1.0


def test_to_same_dtype_is_self_and_to_integer_leaves_the_graph():
    x = ag.tensor([1.7, -2.2], requires_grad=True)
    assert x.to(ag.float32) is x and x.float() is x and x.to("cpu") is x
    assert x.to(ag.float32, copy=True) is not x
    assert x.to(ag.zeros(1, dtype="float64")).dtype == np.float64
    i = x.to(ag.int64)
    assert i.dtype == np.int64 and not i.requires_grad and i.tolist() == [1, -2]
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        x.to("cuda")
    with pytest.raises(TypeError, match="unsupported floating dtype float16"):
        x.to("float16")


def test_squeeze_takes_numpys_axis_too():
    x = ag.zeros(2, 1, 3, 1)
    assert x.squeeze(axis=1).shape == (2, 3, 1) and ag.squeeze(x, dim=(1, 3)).shape == (2, 3)
    assert x.squeeze(0).shape == (2, 1, 3, 1)  # not of length 1: kept, as in PyTorch
    with pytest.raises(TypeError, match="squeeze: give dim= or axis=, not both"):
        x.squeeze(1, axis=1)


def test_clone_owns_its_memory():
    x = ag.tensor([1.0, 2.0])
    c = x.clone()
    c.add_(1.0)
    assert x.tolist() == [1.0, 2.0] and c.tolist() == [2.0, 3.0]


def test_retain_grad_fills_non_leaf_gradients_and_accumulates():
    x = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    assert h.retains_grad and not x.retains_grad
    out = (h * h).sum()
    out.retain_grad()  # the root: its gradient is the seed
    out.backward(retain_graph=True)
    np.testing.assert_array_equal(h.grad.numpy(), 2 * h.numpy())
    assert out.grad.item() == 1.0
    out.backward()
    np.testing.assert_array_equal(h.grad.numpy(), 4 * h.numpy())  # accumulates, like .grad
    other = x * 3  # not retained: no gradient kept
    other.sum().backward()
    assert other.grad is None
    with pytest.raises(RuntimeError, match="retain_grad: this tensor does not require grad"):
        ag.tensor([1.0]).retain_grad()


def test_grad_fn_and_requires_grad_():
    x = ag.tensor([1.0, 2.0])
    assert x.grad_fn is None
    assert x.requires_grad_() is x and x.requires_grad
    y = x.exp()
    assert y.grad_fn.op.name == "exp" and y.grad_fn.inputs == (x,)
    x.requires_grad_(False)
    assert not x.requires_grad


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
def test_argmax_argmin_dim_keepdim(fn, rng):
    a = rng.standard_normal((3, 4, 5))
    x = ag.tensor(a, dtype="float64")
    ref = getattr(np, fn)
    for d in (0, 1, -1):
        for keep in (False, True):
            for got in (getattr(x, fn)(dim=d, keepdim=keep), getattr(F, fn)(x, axis=d,
                                                                            keepdims=keep)):
                assert got.dtype == np.int64
                np.testing.assert_array_equal(got.numpy(), ref(a, axis=d, keepdims=keep))
    assert getattr(x, fn)().item() == ref(a)
    with pytest.raises(ValueError, match=fn + r": axis 3 is out of range"):
        getattr(x, fn)(dim=3)


def test_max_min_with_dim_return_values_and_indices_as_pytorch():
    a = np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    x = ag.tensor(a, requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 6.0] and indices.tolist() == [1, 2]
    r = ag.min(x, dim=0, keepdim=True)
    assert r.values.shape == (1, 3) and r.indices.tolist() == [[0, 1, 0]]
    values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert x.max(axis=1).shape == (2,) and not isinstance(x.max(axis=1), tuple)  # NumPy's way
    assert x.max().item() == 6.0


def test_linspace_and_cat():
    t = ag.linspace(-1, 1, 5)
    assert t.dtype == np.float32 and t.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert ag.linspace(0, 1, 3, dtype="float64", requires_grad=True).requires_grad
    with pytest.raises(ValueError, match="linspace: steps must be a non-negative int"):
        ag.linspace(0, 1, -1)
    a, b = ag.ones(2, 1), ag.zeros(2, 2)
    assert ag.cat([a, b], dim=1).tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    assert ag.functional.concatenate([a, b], dim=-1).shape == (2, 3)


def test_both_keyword_spellings_at_once_is_an_error():
    with pytest.raises(TypeError, match="sum: give keepdims= or keepdim=, not both"):
        ag.ones(2).sum(keepdims=True, keepdim=True)
    with pytest.raises(TypeError, match="flatten: give start_axis= or start_dim=, not both"):
        ag.ones(2, 2).flatten(start_axis=0, start_dim=0)
    assert ag.ones(2, 3, 4).flatten(start_dim=1).shape == (2, 12)
    assert ag.ones(2, 3).transpose(dim0=0, dim1=1).shape == (3, 2)


def test_prod_gradient_is_exact_at_zeros():
    x = ag.tensor([[2.0, 0.0, 3.0], [0.0, 0.0, 4.0]], dtype="float64", requires_grad=True)
    x.prod(dim=1).sum().backward()
    # d/dx_i of prod = product of the others: 0*3=0, 2*3=6, 2*0=0; and all zeros in row 2
    assert x.grad.tolist() == [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0]]
    assert ag.prod(ag.zeros(0)).item() == 1.0


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_agrees_with_pytorch(rng):
    import torch

    a = rng.standard_normal((3, 4))
    x, t = ag.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    cases = [
        (lambda v: v.std(dim=1, correction=1), lambda v: v.std(dim=1)),
        (lambda v: v.std(dim=0, keepdim=True, unbiased=False),
         lambda v: v.std(dim=0, keepdim=True, unbiased=False)),
        (lambda v: v.prod(dim=0), lambda v: v.prod(dim=0)),
        (lambda v: v.norm(), lambda v: v.norm()),
        (lambda v: v.norm(p=3, dim=1), lambda v: v.norm(p=3, dim=1)),
        (lambda v: v.norm(p=float("inf"), dim=0), lambda v: v.norm(p=float("inf"), dim=0)),
        (lambda v: v.unsqueeze(1).squeeze(), lambda v: v.unsqueeze(1).squeeze()),
        (lambda v: v.view(2, 6).sum(dim=1, keepdim=True),
         lambda v: v.view(2, 6).sum(dim=1, keepdim=True)),
        (lambda v: v.max(dim=1).values, lambda v: v.max(dim=1).values),
        (lambda v: v.clone().mean(dim=-1), lambda v: v.clone().mean(dim=-1)),
        (lambda v: v.float().double().var(dim=0), lambda v: v.float().double().var(dim=0,
                                                                                   correction=0)),
    ]
    for ours, theirs in cases:
        x.grad, t.grad = None, None
        yo, yt = ours(x), theirs(t)
        np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-7)
        yo.sum().backward()
        yt.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(x.max(dim=0).indices.numpy(), t.max(dim=0).indices.numpy())
    # PyTorch steps in float32; ours is NumPy's (computed in float64, then rounded once)
    np.testing.assert_allclose(ag.linspace(-3, 2, 7).numpy(), torch.linspace(-3, 2, 7).numpy(),
                               rtol=1e-6, atol=1e-6)
    assert x.size() == tuple(t.size()) and x.dim() == t.dim() and x.numel() == t.numel()
