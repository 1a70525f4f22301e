"""Optional comparison with PyTorch: the same initial weights give the same outputs, gradients,
losses and optimizer trajectories (float64). Skipped when torch is not installed."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import autograd as ag  # noqa: E402
import autograd.nn as nn  # noqa: E402
import autograd.optim as optim  # noqa: E402
from autograd.nn import init  # noqa: E402
from autograd.nn.utils import clip_grad_norm_  # noqa: E402
from autograd.optim import lr_scheduler  # noqa: E402

pytestmark = pytest.mark.torch
TOL = dict(rtol=1e-10, atol=1e-12)


def t64(a, requires_grad=False):
    return ag.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def tt(a, requires_grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=requires_grad)


def copy_into_torch(ours, theirs):
    """Load our state_dict into the torch module: the keys must be the same."""
    sd = {k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(sd)


def mlp_pair(seed=0):
    ag.manual_seed(seed)
    ours = nn.Sequential(nn.Linear(4, 8, dtype=np.float64), nn.Tanh(),
                         nn.Linear(8, 6, dtype=np.float64), nn.ReLU(),
                         nn.Linear(6, 3, dtype=np.float64))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6),
                                 torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
    copy_into_torch(ours, theirs)
    return ours, theirs


def test_linear_forward_and_gradients(rng):
    ours, theirs = mlp_pair()
    x = rng.standard_normal((5, 4))
    xo, xt = t64(x, True), tt(x, True)
    yo, yt = ours(xo), theirs(xt)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), **TOL)
    cot = rng.standard_normal(yo.shape)
    yo.backward(cot)
    yt.backward(torch.from_numpy(cot))
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), **TOL)
    for (name, p), (tname, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), **TOL)


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.2)),
]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=lambda v: str(v))
def test_optimizer_trajectories(name, kw, rng):
    ours, theirs = mlp_pair()
    x, y = rng.standard_normal((16, 4)), rng.standard_normal((16, 3))
    opt_o = getattr(optim, name)(ours.parameters(), **kw)
    opt_t = getattr(torch.optim, name)(theirs.parameters(), **kw)
    for _ in range(20):
        opt_o.zero_grad()
        opt_t.zero_grad()
        lo = nn.MSELoss()(ours(t64(x)), t64(y))
        lt = torch.nn.MSELoss()(theirs(tt(x)), tt(y))
        lo.backward()
        lt.backward()
        opt_o.step()
        opt_t.step()
        assert lo.item() == pytest.approx(lt.item(), rel=1e-10)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), **TOL)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_train_and_eval(shape, momentum, rng):
    ours = nn.BatchNorm1d(3, momentum=momentum, dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(3, momentum=momentum).double()
    with ag.no_grad():
        ours.weight.copy_(t64(rng.standard_normal(3)))
        ours.bias.copy_(t64(rng.standard_normal(3)))
    copy_into_torch(ours, theirs)
    for _ in range(3):
        x = rng.standard_normal(shape) * 3 + 1
        xo, xt = t64(x, True), tt(x, True)
        yo, yt = ours(xo), theirs(xt)
        np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), **TOL)
        cot = rng.standard_normal(shape)
        yo.backward(cot)
        yt.backward(torch.from_numpy(cot))
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), **TOL)
        np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), **TOL)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), **TOL)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours(t64(x)).numpy(), theirs(tt(x)).detach().numpy(), **TOL)


def test_state_dict_keys_and_loading_a_torch_checkpoint(rng):
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                 torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
    theirs(tt(rng.standard_normal((6, 3))))  # moves the running statistics
    ours = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(ours(t64(x)).numpy(), theirs(tt(x)).detach().numpy(), **TOL)


def test_weight_tied_torch_checkpoint_loads():
    shared = torch.nn.Linear(3, 3)
    theirs = torch.nn.Sequential(shared, torch.nn.Tanh(), shared).double()
    lin = nn.Linear(3, 3)
    ours = nn.Sequential(lin, nn.Tanh(), lin).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.ones((2, 3))
    np.testing.assert_allclose(ours(t64(x)).numpy(), theirs(tt(x)).detach().numpy(), **TOL)


def _loss_pairs(rng):
    p = rng.uniform(0.05, 0.95, (6, 2))
    y = rng.integers(0, 2, (6, 2)).astype(np.float64)
    z = rng.standard_normal((6, 2)) * 3
    logits, cls = rng.standard_normal((6, 4)) * 2, rng.integers(0, 4, 6)
    return [
        (nn.MSELoss, torch.nn.MSELoss, z, y),
        (nn.BCELoss, torch.nn.BCELoss, p, y),
        (nn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, z, y),
        (nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, logits, cls),
    ]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses(reduction, rng):
    for ours_cls, torch_cls, inp, target in _loss_pairs(rng):
        xo, xt = t64(inp, True), tt(inp, True)
        to = target if target.dtype.kind == "i" else t64(target)
        tgt = torch.from_numpy(target)
        lo = ours_cls(reduction)(xo, to)
        lt = torch_cls(reduction=reduction)(xt, tgt)
        np.testing.assert_allclose(lo.numpy(), lt.detach().numpy(), **TOL)
        cot = rng.standard_normal(lo.shape)
        lo.backward(cot)
        lt.backward(torch.from_numpy(np.asarray(cot)))
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), **TOL)


def test_activations(rng):
    x = rng.standard_normal((4, 5)) * 2
    pairs = [(nn.GELU(approximate="tanh"), torch.nn.GELU(approximate="tanh")),
             (nn.GELU(), torch.nn.GELU()),
             (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.Sigmoid(), torch.nn.Sigmoid()),
             (nn.Softmax(dim=0), torch.nn.Softmax(dim=0)),
             (nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1)),
             (nn.Flatten(0), torch.nn.Flatten(0))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(t64(x)).numpy(), theirs(tt(x)).numpy(), **TOL)


def test_schedulers_match():
    cases = [("StepLR", dict(step_size=3, gamma=0.5)), ("ExponentialLR", dict(gamma=0.9)),
             ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001))]
    for name, kw in cases:
        p, q = nn.Parameter(np.zeros(1)), torch.zeros(1, requires_grad=True)
        opt_o, opt_t = optim.SGD([p], lr=0.1), torch.optim.SGD([q], lr=0.1)
        so = getattr(lr_scheduler, name)(opt_o, **kw)
        st = getattr(torch.optim.lr_scheduler, name)(opt_t, **kw)
        for _ in range(16):
            opt_o.step()
            opt_t.step()
            so.step()
            st.step()
            assert so.get_last_lr()[0] == pytest.approx(st.get_last_lr()[0], rel=1e-9,
                                                         abs=1e-15)


def test_clip_grad_norm_matches(rng):
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    for norm_type in (2.0, 1.0, 3.0, math.inf):
        ps = [nn.Parameter(np.zeros_like(g)) for g in grads]
        qs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for p, q, g in zip(ps, qs, grads):
            p.grad = t64(g)
            q.grad = torch.from_numpy(g.copy())
        total_o = clip_grad_norm_(ps, 0.5, norm_type)
        total_t = torch.nn.utils.clip_grad_norm_(qs, 0.5, norm_type)
        assert total_o.item() == pytest.approx(total_t.item(), rel=1e-12)
        for p, q in zip(ps, qs):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), **TOL)


def test_init_gains_and_linear_default_bounds():
    for nl, param in [("linear", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                      ("leaky_relu", 0.3), ("selu", None), ("sigmoid", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param), rel=1e-15)
    w = torch.nn.Linear(300, 200).weight.detach().numpy()
    ours = nn.Linear(300, 200).weight.numpy()
    assert np.abs(ours).max() <= 1 / math.sqrt(300) + 1e-7
    assert ours.std() == pytest.approx(w.std(), rel=0.02)
