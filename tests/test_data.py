"""TensorDataset and DataLoader: batching, shuffling, and the three flavours of gradient descent."""
from __future__ import annotations

import numpy as np
import pytest

import autograd
from autograd.data import DataLoader, Dataset, TensorDataset


def test_tensor_dataset_checks_first_dimension():
    with pytest.raises(ValueError, match=r"first dimension.*\(5, 2\), \(4,\)"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float64(3.0))


def test_tensor_dataset_indexing_and_tensors_accepted():
    x = autograd.tensor(np.arange(10.0).reshape(5, 2))
    y = np.arange(5)
    ds = TensorDataset(x, y)
    assert len(ds) == 5
    xi, yi = ds[3]
    assert isinstance(xi, autograd.Tensor) and xi.tolist() == [6.0, 7.0] and yi.item() == 3
    assert isinstance(ds, Dataset)


@pytest.mark.parametrize("n,bs,drop,expect", [(10, 3, False, [3, 3, 3, 1]),
                                               (10, 3, True, [3, 3, 3]),
                                               (10, 10, False, [10]),
                                               (10, 1, False, [1] * 10),
                                               (0, 4, False, [])])
def test_batch_sizes_and_len(n, bs, drop, expect):
    ds = TensorDataset(np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n))
    loader = DataLoader(ds, batch_size=bs, drop_last=drop)
    sizes = [len(xb) for xb, _ in loader]
    assert sizes == expect and len(loader) == len(expect)


def test_unshuffled_order_and_batch_types():
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    loader = DataLoader(TensorDataset(x, np.arange(6)), batch_size=4)
    (xb, yb), (_, yb2) = list(loader)
    assert xb.dtype == np.float64 and yb.dtype == np.int64
    np.testing.assert_array_equal(xb.numpy(), x[:4])
    np.testing.assert_array_equal(yb2.numpy(), [4, 5])


def test_batches_are_copies():
    x = np.zeros((4, 2), dtype=np.float32)
    (xb,) = next(iter(DataLoader(TensorDataset(x), batch_size=4)))
    xb.numpy()[:] = 7
    assert x.sum() == 0


def test_shuffle_new_permutation_each_epoch_and_seeded():
    ds = TensorDataset(np.arange(50))
    loader = DataLoader(ds, batch_size=50, shuffle=True, seed=3)
    e1 = next(iter(loader))[0].tolist()
    e2 = next(iter(loader))[0].tolist()
    assert sorted(e1) == list(range(50)) and e1 != e2
    again = DataLoader(ds, batch_size=50, shuffle=True, seed=3)
    assert next(iter(again))[0].tolist() == e1


def test_shuffle_without_seed_follows_manual_seed():
    ds = TensorDataset(np.arange(30))
    autograd.manual_seed(11)
    a = next(iter(DataLoader(ds, batch_size=30, shuffle=True)))[0].tolist()
    autograd.manual_seed(11)
    b = next(iter(DataLoader(ds, batch_size=30, shuffle=True)))[0].tolist()
    assert a == b and a != list(range(30))


def test_generic_dataset_is_collated():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float32), i

    batches = list(DataLoader(Squares(), batch_size=2))
    xb, yb = batches[1]
    assert xb.tolist() == [[2.0, 4.0], [3.0, 9.0]] and yb.tolist() == [2, 3]
    assert [len(b[0]) for b in batches] == [2, 2, 1]


def test_loader_argument_errors():
    ds = TensorDataset(np.zeros(3))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(object())


def test_tensor_dataset_gathers_without_per_sample_getitem(monkeypatch):
    ds = TensorDataset(np.arange(100.0).reshape(50, 2))
    monkeypatch.setattr(TensorDataset, "__getitem__",
                        lambda *a: pytest.fail("per-sample access in the fast path"))
    assert sum(len(b[0]) for b in DataLoader(ds, batch_size=7, shuffle=True, seed=0)) == 50


# ---------------------------------------------------------------- gradient descent flavours
def _regression(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    w_true = np.array([[1.5], [-2.0], [0.5]])
    y = x @ w_true + 0.3 + 0.01 * rng.standard_normal((n, 1))
    design = np.hstack([x, np.ones((n, 1))])
    exact = np.linalg.lstsq(design, y, rcond=None)[0]
    return x, y, exact


def _train(loader, epochs, lr):
    w = autograd.zeros(3, 1, dtype=np.float64, requires_grad=True)
    b = autograd.zeros(1, dtype=np.float64, requires_grad=True)
    steps = 0
    for _ in range(epochs):
        for xb, yb in loader:
            loss = ((xb @ w + b - yb) ** 2).mean()
            loss.backward()
            with autograd.no_grad():
                w -= w.grad * lr
                b -= b.grad * lr
            w.grad = b.grad = None
            steps += 1
    return np.vstack([w.numpy(), b.numpy()[:, None]]), steps


@pytest.mark.parametrize("batch_size,epochs,lr,tol", [
    (64, 300, 0.1, 1e-6),   # full batch: deterministic gradient descent
    (1, 30, 0.01, 3e-2),    # stochastic: one sample per step
    (8, 60, 0.05, 1e-2),    # mini-batch
])
def test_full_stochastic_and_minibatch_descent_reach_least_squares(batch_size, epochs, lr, tol):
    x, y, exact = _regression()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=1)
    params, steps = _train(loader, epochs, lr)
    assert steps == epochs * len(loader) == epochs * (64 // batch_size)
    np.testing.assert_allclose(params, exact, atol=tol)


def test_full_batch_step_equals_exact_gradient_step():
    x, y, _ = _regression(n=16)
    (params, _) = _train(DataLoader(TensorDataset(x, y), batch_size=16), 1, 0.1)
    design = np.hstack([x, np.ones((16, 1))])
    grad = 2 * design.T @ (design @ np.zeros((4, 1)) - y) / 16
    np.testing.assert_allclose(params, -0.1 * grad, rtol=1e-12)
