"""The Tensor type and the creation functions: dtypes, memory sharing, conversions, attributes,
grad flags, repr, comparisons and in-place updates."""
from __future__ import annotations

import numpy as np
import pytest

import autograd
from autograd import Tensor

# -------------------------------------------------------------------------------- creation


def test_python_floats_default_to_float32_and_ints_to_int64():
    assert autograd.tensor([1.0, 2.0]).dtype == np.float32
    assert autograd.tensor(3.0).dtype == np.float32
    assert autograd.tensor([1, 2]).dtype == np.int64
    assert autograd.tensor([True, False]).dtype == np.bool_


def test_numpy_arrays_keep_their_dtype_unless_told():
    assert autograd.tensor(np.zeros(2)).dtype == np.float64
    assert autograd.tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert autograd.tensor([1.0], dtype="float64").dtype == np.float64
    assert autograd.tensor(np.zeros(2), dtype=autograd.float32).dtype == np.float32


def test_unsupported_dtypes_are_refused():
    with pytest.raises(TypeError, match="unsupported floating dtype float16"):
        autograd.tensor(np.zeros(2, np.float16))
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        autograd.tensor(np.zeros(2, np.complex128))


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = autograd.tensor(a)
    a[0] = 9.0
    assert t.numpy()[0] == 1.0
    u = autograd.tensor(t)
    t.numpy()[1] = 7.0
    assert u.numpy()[1] == 2.0


def test_from_numpy_shares_memory_and_keeps_the_dtype():
    a = np.arange(6.0).reshape(2, 3)
    t = autograd.from_numpy(a)
    assert t.dtype == np.float64
    a[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0
    assert np.shares_memory(t.numpy(), a)
    v = autograd.from_numpy(a.T)  # non-contiguous views are wrapped as they are
    assert np.shares_memory(v.numpy(), a) and v.shape == (3, 2)
    assert autograd.from_numpy(a, requires_grad=True).requires_grad


def test_from_numpy_refuses_non_arrays():
    with pytest.raises(TypeError, match="expected a numpy.ndarray, got list"):
        autograd.from_numpy([1.0, 2.0])


@pytest.mark.parametrize("make", [autograd.zeros, autograd.ones])
def test_zeros_and_ones(make):
    t = make(2, 3)
    assert t.shape == (2, 3) and t.dtype == np.float32
    assert make((2, 3)).shape == (2, 3)
    assert make(4, dtype="float64").dtype == np.float64
    assert make(2, requires_grad=True).requires_grad
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), make is autograd.ones))
    with pytest.raises(ValueError, match=r"negative dimension in shape \(2, -1\)"):
        make(2, -1)


def test_full_zeros_like_ones_like():
    t = autograd.full((2, 2), 1.5, dtype="float64")
    np.testing.assert_array_equal(t.numpy(), np.full((2, 2), 1.5))
    assert autograd.full(3, 2.0).shape == (3,)
    z = autograd.zeros_like(t)
    o = autograd.ones_like(t, requires_grad=True)
    assert z.dtype == o.dtype == np.float64 and z.shape == o.shape == (2, 2)
    assert o.requires_grad and not z.requires_grad


def test_arange():
    np.testing.assert_array_equal(autograd.arange(4).numpy(), [0, 1, 2, 3])
    assert autograd.arange(4).dtype == np.float32
    np.testing.assert_array_equal(autograd.arange(1, 2, 0.25, dtype="float64").numpy(),
                                  [1.0, 1.25, 1.5, 1.75])
    with pytest.raises(ValueError, match="step must not be zero"):
        autograd.arange(0, 1, 0)


def test_eye():
    np.testing.assert_array_equal(autograd.eye(3).numpy(), np.eye(3))
    assert autograd.eye(2, 3).shape == (2, 3)
    assert autograd.eye(2).dtype == np.float32


def test_rand_and_randn_are_reproducible_with_manual_seed():
    autograd.manual_seed(7)
    a, b = autograd.rand(3, 4), autograd.randn(5)
    autograd.manual_seed(7)
    np.testing.assert_array_equal(autograd.rand(3, 4).numpy(), a.numpy())
    np.testing.assert_array_equal(autograd.randn(5).numpy(), b.numpy())
    assert a.dtype == b.dtype == np.float32
    assert a.numpy().min() >= 0 and a.numpy().max() < 1
    assert autograd.randn(2, dtype="float64").dtype == np.float64
    assert autograd.rand(2, requires_grad=True).requires_grad


def test_an_explicit_generator_is_used_and_leaves_the_default_alone():
    autograd.manual_seed(3)
    expected_default = autograd.randn(4).numpy()
    autograd.manual_seed(3)
    g1 = np.random.default_rng(11)
    x = autograd.randn(4, generator=g1)
    np.testing.assert_array_equal(autograd.randn(4).numpy(), expected_default)
    np.testing.assert_array_equal(
        x.numpy(), autograd.randn(4, generator=np.random.default_rng(11)).numpy())
    assert autograd.rand(2, generator=np.random.default_rng(0)).shape == (2,)


def test_randn_statistics_are_plausible():
    autograd.manual_seed(0)
    x = autograd.randn(20_000, dtype="float64").numpy()
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05


# -------------------------------------------------------------------------------- conversion

def test_numpy_shares_memory_and_array_protocol():
    t = autograd.tensor([1.0, 2.0, 3.0])
    a = t.numpy()
    assert isinstance(a, np.ndarray)
    a[0] = 5.0
    assert t.numpy()[0] == 5.0
    assert np.asarray(t) is a
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    c = np.array(t, copy=True)
    c[1] = -1.0
    assert t.numpy()[1] == 2.0


def test_item_float_int_bool():
    assert autograd.tensor(2.5).item() == 2.5
    assert isinstance(autograd.tensor([3]).item(), int)
    assert float(autograd.tensor([1.5])) == 1.5
    assert int(autograd.tensor(4.0)) == 4
    assert bool(autograd.tensor(1.0)) and not bool(autograd.tensor(0.0))
    with pytest.raises(ValueError, match=r"only one-element tensors .* shape \(2,\)"):
        autograd.tensor([1.0, 2.0]).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(autograd.tensor([1.0, 2.0]))


def test_zero_dimensional_results_are_arrays():
    x = autograd.tensor(np.float64(0.5), requires_grad=True)
    y = autograd.exp(x)
    assert isinstance(y.numpy(), np.ndarray) and y.shape == ()
    y.backward()
    assert isinstance(x.grad.numpy(), np.ndarray) and x.grad.shape == ()
    autograd.exp(x).backward()  # accumulating keeps an array too
    assert isinstance(x.grad.numpy(), np.ndarray) and x.grad.item() == 2 * np.exp(0.5)
    z = autograd.tensor([1.0, 2.0])[1]
    assert isinstance(z.numpy(), np.ndarray) and z.item() == 2.0


def test_tolist_len_and_iteration():
    t = autograd.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert len(t) == 2
    assert [row.tolist() for row in t] == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(TypeError, match="len.. of a 0-d tensor"):
        len(autograd.tensor(1.0))


def test_astype_float_double():
    t = autograd.tensor([1.5, 2.5])
    d = t.double()
    assert d.dtype == np.float64 and d.double() is d
    assert d.float().dtype == np.float32 and t.float() is t
    assert t.astype("int64").tolist() == [1, 2]
    with pytest.raises(TypeError, match="float16"):
        t.astype(np.float16)


# -------------------------------------------------------------------------------- attributes

def test_shape_ndim_size_dtype():
    t = autograd.zeros(2, 3, 4, dtype="float64")
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size == 24 and t.dtype == np.float64
    s = autograd.tensor(1.0)
    assert s.shape == () and s.ndim == 0 and s.size == 1
    assert autograd.zeros(0, 3).size == 0


def test_requires_grad_and_is_leaf():
    x = autograd.tensor([1.0])
    assert not x.requires_grad and x.is_leaf and x.grad is None
    x.requires_grad = True
    y = x * 2.0
    assert y.requires_grad and not y.is_leaf
    with pytest.raises(RuntimeError, match="only be cleared on a leaf"):
        y.requires_grad = False
    x.requires_grad = False
    assert not (x * 2.0).requires_grad


def test_integer_and_boolean_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating tensors can require grad, not int64"):
        autograd.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="not bool"):
        autograd.tensor([True]).requires_grad = True
    with pytest.raises(TypeError, match="only floating tensors"):
        autograd.from_numpy(np.arange(3), requires_grad=True)


def test_detach_shares_memory_and_leaves_the_graph():
    x = autograd.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    assert np.shares_memory(d.numpy(), y.numpy())


def test_repr():
    assert repr(autograd.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(autograd.tensor([1.0], dtype="float64")) == "tensor([1.], dtype=float64)"
    x = autograd.tensor([1.0], requires_grad=True)
    assert repr(x) == "tensor([1.], requires_grad=True)"
    assert repr(x * 2.0) == "tensor([2.], grad_fn=mul)"
    assert repr(autograd.tensor([1, 2])) == "tensor([1, 2], dtype=int64)"
    big = repr(autograd.zeros(1000))
    assert "..." in big and len(big) < 200


# -------------------------------------------------------------------------------- operators

def test_python_scalars_take_the_tensor_dtype():
    x64 = autograd.tensor([1.0], dtype="float64")
    x32 = autograd.tensor([1.0])
    assert (x64 + 1.5).dtype == np.float64 and (2 * x64).dtype == np.float64
    assert (x32 * 2.0).dtype == np.float32 and (1.0 / x32).dtype == np.float32
    assert (x32 ** 2).dtype == np.float32 and (2.0 - x32).dtype == np.float32
    # a float scalar lifts an integer tensor to the default float dtype, as in PyTorch
    half = autograd.tensor([1, 2]) * 0.5
    assert half.dtype == np.float32 and half.tolist() == [0.5, 1.0]


def test_numpy_array_on_the_left_defers_to_the_tensor():
    x = autograd.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [3.0, 8.0])


def test_comparisons_give_boolean_tensors_without_a_graph():
    x = autograd.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [(x < 2.0, [True, False, False]), (x <= 2.0, [True, True, False]),
                             (x > 2.0, [False, False, True]), (x >= 2.0, [False, True, True]),
                             (x.eq(2.0), [False, True, False]),
                             (x.ne(autograd.tensor([1.0, 0.0, 3.0])), [False, True, False])]:
        assert result.dtype == np.bool_ and not result.requires_grad and result.is_leaf
        assert result.tolist() == expected
    # == stays identity-based so tensors can be dict keys
    same = x
    assert {x: 1}[x] == 1 and x == same and x != autograd.tensor([1.0, 2.0, 3.0])


def test_argmax_and_argmin():
    t = autograd.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    assert t.argmax().item() == 3 and t.argmin().item() == 4
    assert t.argmax(axis=1).tolist() == [1, 0]
    assert t.argmin(axis=0).tolist() == [0, 1, 0]
    assert t.argmax(axis=1).dtype == np.int64


def test_logsumexp_over_an_empty_axis_is_minus_inf(backend_name):
    # log(sum of no exponentials) = log(0), as in PyTorch; the gradient is empty
    x = autograd.tensor(np.zeros((2, 0), dtype=np.float32), requires_grad=True)
    for keepdims, shape in ((False, (2,)), (True, (2, 1))):
        y = x.logsumexp(axis=1, keepdims=keepdims)
        assert y.shape == shape and y.dtype == np.float32
        np.testing.assert_array_equal(y.numpy(), np.full(shape, -np.inf))
        y.backward(np.ones(shape, dtype=np.float32))
        assert x.grad.shape == (2, 0) and x.grad.dtype == np.float32


# -------------------------------------------------------------------------------- in place

def test_in_place_updates_and_version_counter():
    t = autograd.tensor([1.0, 2.0], dtype="float64")
    assert t._version == 0
    t.add_(1.0)
    t.add_(autograd.tensor([1.0, 1.0], dtype="float64"), alpha=2.0)
    t.sub_(1.0)
    t.mul_(2.0)
    t.div_(4.0)
    np.testing.assert_array_equal(t.numpy(), [1.5, 2.0])
    t += 1.0
    t -= 0.5
    t *= 2.0
    t /= 2.0
    np.testing.assert_array_equal(t.numpy(), [2.0, 2.5])
    t.copy_(autograd.tensor([7.0], dtype="float64"))
    np.testing.assert_array_equal(t.numpy(), [7.0, 7.0])
    t.fill_(3.0)
    t.zero_()
    np.testing.assert_array_equal(t.numpy(), [0.0, 0.0])
    assert t._version == 12


def test_in_place_refuses_casts_and_growing_shapes():
    t = autograd.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="cannot update a float32 tensor with float64"):
        t.add_(autograd.tensor([1.0, 1.0], dtype="float64"))
    with pytest.raises(ValueError, match=r"a value of shape \(2, 2\) cannot update a tensor "
                                         r"of shape \(2,\)"):
        t.add_(autograd.zeros(2, 2))
