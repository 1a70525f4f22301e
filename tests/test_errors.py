"""Error messages users see: each names the function and the shapes or values at fault.
(Every op's own error inputs are also run from the op database in test_ops.py.) And the
IEEE cases that are not errors: log of a negative is NaN, as in NumPy, with no warning."""
from __future__ import annotations

import operator
import re
import warnings

import numpy as np
import pytest

import autograd
from autograd import backend


def _t(*shape, dtype="float64", requires_grad=False):
    return autograd.zeros(*shape, dtype=dtype, requires_grad=requires_grad)


def test_matmul_names_both_shapes(backend_name):
    with pytest.raises(ValueError) as info:
        _t(2, 3) @ _t(4, 5)
    assert str(info.value) == ("matmul: shapes (2, 3) and (4, 5) are not aligned: (2, 3) has 3 "
                               "columns but (4, 5) has 4 rows")


def test_matmul_of_vectors_of_different_length(backend_name):
    with pytest.raises(ValueError, match=r"matmul: shapes \(3,\) and \(2,\) are not aligned"):
        autograd.matmul(_t(3), _t(2))


@pytest.mark.parametrize("name, op", [("add", operator.add), ("sub", operator.sub),
                                      ("mul", operator.mul), ("div", operator.truediv),
                                      ("pow", operator.pow)])
def test_incompatible_broadcast_names_both_shapes(backend_name, name, op):
    with pytest.raises(ValueError, match=rf"^{name}: shapes \(2, 3\) and \(2,\) cannot be "
                                         rf"broadcast together$"):
        op(_t(2, 3), _t(2))


def test_broadcast_error_of_maximum_and_where(backend_name):
    with pytest.raises(ValueError, match=r"maximum: shapes \(4, 1, 3\) and \(2, 2\)"):
        autograd.maximum(_t(4, 1, 3), _t(2, 2))
    with pytest.raises(ValueError, match=r"where: condition \(2,\) and operands \(3,\), \(3,\)"):
        autograd.where(np.array([True, False]), _t(3), _t(3))


def test_cross_entropy_target_out_of_range(backend_name):
    logits = _t(3, 4)
    with pytest.raises(ValueError, match=r"^cross_entropy: target 4 is out of range for 4 "
                                         r"classes \(valid: 0\.\.3\)$"):
        autograd.cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"target -2 is out of range"):
        autograd.cross_entropy(logits, autograd.tensor([0, -2, 1]))


def test_cross_entropy_batch_mismatch(backend_name):
    with pytest.raises(ValueError, match=r"^cross_entropy: batch mismatch: logits \(3, 4\) need "
                                         r"class index targets of shape \(3,\), got \(2,\)$"):
        autograd.cross_entropy(_t(3, 4), np.array([0, 1]))
    # float targets are class probabilities: they must have the logits' shape
    with pytest.raises(ValueError, match=r"class-probability targets must have the logits' "
                                         r"shape \(3, 4\), got \(3,\)"):
        autograd.cross_entropy(_t(3, 4), np.array([0.0, 1.0, 2.0]))


def test_log_of_negative_is_nan_without_warning(backend_name):
    x = autograd.tensor([-1.0, 0.0, 1.0], dtype="float64", requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="warn"):
            y = autograd.log(x)
            out = y.numpy()
            assert np.isnan(out[0]) and out[1] == -np.inf and out[2] == 0.0
            y.backward(np.ones(3))  # 1/x at 0 is inf: IEEE, not an error outside anomaly mode
            assert x.grad.numpy()[1] == np.inf
            s = autograd.sqrt(autograd.tensor([-4.0, 4.0], dtype="float64")).numpy()
            assert np.isnan(s[0]) and s[1] == 2.0
            d = (autograd.tensor([1.0, 0.0]) / autograd.tensor([0.0, 0.0])).numpy()
            assert d[0] == np.inf and np.isnan(d[1])


def test_reshape_to_a_bad_size(backend_name):
    with pytest.raises(ValueError, match=r"^reshape: cannot reshape a tensor of shape \(2, 3\) "
                                         r"\(size 6\) into \(4, 2\)$"):
        _t(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match=r"into \(-1, 4\)"):
        autograd.reshape(_t(2, 3), (-1, 4))


def test_bad_axes(backend_name):
    x = _t(2, 3)
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range for a tensor of shape "
                                         r"\(2, 3\)"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match=r"mean: axis -3 is out of range"):
        x.mean(axis=-3)
    with pytest.raises(ValueError, match=r"max: repeated axis in \(1, -1\)"):
        x.max(axis=(1, -1))
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range"):
        x.softmax(axis=2)
    with pytest.raises(ValueError, match=r"transpose: axes 0 and 5 are out of range for shape "
                                         r"\(2, 3\)"):
        x.transpose(0, 5)
    with pytest.raises(ValueError, match=r"permute: \(1, 1\) is not a permutation"):
        x.permute(1, 1)
    # an out-of-range axis is refused, not wrapped (2 % 2 == 0 would make (2, 1) identity)
    with pytest.raises(ValueError, match=r"permute: \(2, 1\) is not a permutation"):
        x.permute(2, 1)
    with pytest.raises(ValueError, match=r"permute: \(0, -3\) is not a permutation"):
        x.permute(0, -3)
    with pytest.raises(ValueError, match=r"concatenate: axis 2 is out of range"):
        autograd.concatenate([x, x], axis=2)


def test_expand_and_shape_mismatches(backend_name):
    with pytest.raises(ValueError, match=r"expand: a tensor of shape \(2, 3\) cannot be "
                                         r"broadcast to \(2, 4\)"):
        _t(2, 3).expand(2, 4)
    with pytest.raises(ValueError, match=r"concatenate: shapes \(2, 3\) and \(2, 4\) differ "
                                         r"outside axis 0"):
        autograd.concatenate([_t(2, 3), _t(2, 4)])
    with pytest.raises(ValueError, match=r"stack: all tensors must have one shape"):
        autograd.stack([_t(2), _t(3)])


def test_indexing_out_of_bounds(backend_name):
    with pytest.raises(IndexError, match=r"getitem: index 5 is invalid for a tensor of shape "
                                         r"\(2, 3\)"):
        _t(2, 3)[5]
    with pytest.raises(IndexError, match="index arrays must be integer or boolean"):
        _t(3)[np.array([0.0])]


def test_linear_shape_mismatch(backend_name):
    with pytest.raises(ValueError, match=re.escape(
            "linear: input of shape (2, 3) does not match weight of shape (4, 5) "
            "(expected input (..., 5))")):
        autograd.linear(_t(2, 3), _t(4, 5))


def test_losses(backend_name):
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must hold probabilities "
                                         r"in \[0, 1\], got values in \[-0.5, 0.5\]"):
        autograd.binary_cross_entropy(autograd.tensor([-0.5, 0.5]), autograd.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"mse_loss: reduction must be one of"):
        autograd.mse_loss(_t(2), _t(2), reduction="avg")
    with pytest.raises(TypeError, match=r"mse_loss: target dtype float32 differs"):
        autograd.mse_loss(_t(2), _t(2, dtype="float32"))


def test_loss_with_broadcast_target_warns(backend_name):
    with pytest.warns(UserWarning, match=r"mse_loss: target shape \(3,\) differs from input "
                                         r"shape \(3, 1\)"):
        loss = autograd.mse_loss(_t(3, 1, requires_grad=True), _t(3), reduction="none")
    assert loss.shape == (3, 3)


def test_mixed_dtypes_are_not_cast(backend_name):
    with pytest.raises(TypeError, match=r"add: mixed dtypes float32 and float64; convert one "
                                        r"explicitly"):
        _t(2, dtype="float32") + _t(2)


def test_clip_bounds(backend_name):
    with pytest.raises(ValueError, match="clip: give at least one of min and max"):
        _t(2).clip()
    # min > max is not an error: the result is max, as in PyTorch
    np.testing.assert_array_equal(_t(2).clip(2, 1).numpy(), [1.0, 1.0])


def test_unknown_backend_and_engine_names():
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        backend.use("gpu")
    with pytest.raises(ValueError, match="unknown engine 'jit'"):
        backend.use_engine("jit")
    assert backend.active() in ("numpy", "native")


def test_requesting_native_when_missing_gives_a_build_hint():
    if backend.native_available():
        pytest.skip("the native core is built here")
    with pytest.raises(RuntimeError, match=r"backend 'native' requested but .*pip install"):
        backend.use("native")
