"""autograd.optim: every optimizer against closed-form NumPy updates written here (20 steps,
float64, 1e-10), one fused kernel call per group, parameter groups, state_dict round trips,
validation, schedulers, and gradient clipping."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd as ag
import autograd.nn as nn
import autograd.optim as optim
from autograd import backend
from autograd.nn.utils import clip_grad_norm_, clip_grad_value_
from autograd.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, StepLR

STEPS = 20


def make_problem(seed=0):
    """A 3-5-2 tanh MLP in float64 and fixed data."""
    rng = np.random.default_rng(seed)
    ag.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5, dtype=np.float64), nn.Tanh(),
                          nn.Linear(5, 2, dtype=np.float64))
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal((8, 2))
    return model, x, y


def np_grads(params, x, y):
    """The MLP's MSE gradients by hand, independent of autograd."""
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1.T + b1)
    out = h @ w2.T + b2
    dy = 2 * (out - y) / out.size
    dh = dy @ w2
    dz = dh * (1 - h * h)
    return [dz.T @ x, dz.sum(0), dy.T @ h, dy.sum(0)]


def autograd_step(model, opt, x, y):
    opt.zero_grad()
    loss = nn.MSELoss()(model(ag.tensor(x)), ag.tensor(y))
    loss.backward()
    opt.step()
    return loss.item()


def ref_sgd(params, x, y, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    bufs = [None] * len(params)
    for _ in range(STEPS):
        grads = np_grads(params, x, y)
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g + weight_decay * p
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = p - lr * g
    return params


def ref_adam(params, x, y, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             decoupled=False):
    b1, b2 = betas
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, STEPS + 1):
        grads = np_grads(params, x, y)
        for i, (p, g) in enumerate(zip(params, grads)):
            if decoupled:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            params[i] = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params


CASES = {
    "sgd": (optim.SGD, dict(lr=0.1), ref_sgd),
    "sgd_momentum": (optim.SGD, dict(lr=0.05, momentum=0.9), ref_sgd),
    "sgd_dampening": (optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3), ref_sgd),
    "sgd_nesterov": (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True), ref_sgd),
    "sgd_weight_decay": (optim.SGD, dict(lr=0.1, momentum=0.5, weight_decay=0.01), ref_sgd),
    "adam": (optim.Adam, dict(lr=0.01), ref_adam),
    "adam_betas_eps": (optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6), ref_adam),
    "adam_weight_decay": (optim.Adam, dict(lr=0.01, weight_decay=0.05), ref_adam),
    "adamw": (optim.AdamW, dict(lr=0.01), ref_adam),
    "adamw_weight_decay": (optim.AdamW, dict(lr=0.01, weight_decay=0.1), ref_adam),
}


@pytest.mark.parametrize("case", list(CASES))
def test_optimizer_matches_closed_form(case, backend_name):
    cls, kw, ref = CASES[case]
    model, x, y = make_problem()
    start = [p.numpy().copy() for p in model.parameters()]
    opt = cls(model.parameters(), **kw)
    losses = [autograd_step(model, opt, x, y) for _ in range(STEPS)]
    ref_kw = dict(kw)
    if cls is optim.AdamW:
        ref_kw.setdefault("weight_decay", 1e-2)
        ref_kw["decoupled"] = True
    expected = ref(start, x, y, **ref_kw)
    for p, e in zip(model.parameters(), expected):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-10, atol=1e-10)
    assert losses[-1] < losses[0]


def test_one_fused_kernel_call_per_group(monkeypatch):
    calls = []
    for name in ("sgd_step", "adam_step"):
        original = getattr(backend.k, name)

        def wrapper(params, *args, _original=original, _name=name, **kw):
            calls.append((_name, len(params)))
            return _original(params, *args, **kw)
        monkeypatch.setattr(backend.k, name, wrapper)
    model, x, y = make_problem()
    head, body = list(model[2].parameters()), list(model[0].parameters())
    for cls, kw in ((optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, {})):
        calls.clear()
        opt = cls([{"params": body}, {"params": head, "lr": 0.01}], **kw)
        for _ in range(2):
            autograd_step(model, opt, x, y)
        name = "sgd_step" if cls is optim.SGD else "adam_step"
        assert calls == [(name, 2), (name, 2)] * 2


def test_param_groups_and_skipped_parameters():
    model, x, y = make_problem()
    frozen = nn.Parameter(np.ones(3))
    opt = optim.SGD([{"params": list(model[0].parameters()), "lr": 0.0},
                     {"params": list(model[2].parameters()) + [frozen]}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.0 and opt.param_groups[1]["lr"] == 0.1
    assert opt.param_groups[1]["momentum"] == 0.0  # defaults filled in
    w1 = model[0].weight.numpy().copy()
    w2 = model[2].weight.numpy().copy()
    v = model[2].weight._version
    autograd_step(model, opt, x, y)
    np.testing.assert_array_equal(model[0].weight.numpy(), w1)  # lr 0
    assert np.any(model[2].weight.numpy() != w2)
    assert model[2].weight._version == v + 1  # in-place update bumps the version
    assert np.all(frozen.numpy() == 1) and frozen not in opt.state  # no grad: skipped
    extra = nn.Parameter(np.zeros(2))
    opt.add_param_group({"params": [extra], "lr": 0.5})
    assert opt.param_groups[2]["lr"] == 0.5
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [extra]})


def test_late_gradients_get_their_own_state(backend_name):
    """A parameter that first has a gradient on step 2 starts its momentum and Adam step count
    then, as in PyTorch (the kernel is called once per distinct state)."""
    for cls, kw in ((optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.2)),
                    (optim.Adam, dict(lr=0.1))):
        a, b = nn.Parameter(np.array([1.0, 2.0])), nn.Parameter(np.array([3.0]))
        opt = cls([a, b], **kw)
        ref_a = cls([nn.Parameter(a.numpy().copy())], **kw)
        a.grad = ag.tensor(np.array([0.5, -1.0]))
        ref_a.param_groups[0]["params"][0].grad = ag.tensor(np.array([0.5, -1.0]))
        opt.step()
        ref_a.step()
        a.grad, b.grad = ag.tensor(np.array([0.25, 0.5])), ag.tensor(np.array([-2.0]))
        ref_a.param_groups[0]["params"][0].grad = ag.tensor(np.array([0.25, 0.5]))
        ref_b = cls([nn.Parameter(np.array([3.0]))], **kw)
        ref_b.param_groups[0]["params"][0].grad = ag.tensor(np.array([-2.0]))
        opt.step()
        ref_a.step()
        ref_b.step()
        np.testing.assert_array_equal(a.numpy(), ref_a.param_groups[0]["params"][0].numpy())
        np.testing.assert_array_equal(b.numpy(), ref_b.param_groups[0]["params"][0].numpy())


def test_zero_grad_and_closure():
    model, x, y = make_problem()
    opt = optim.SGD(model.parameters(), lr=0.1)
    autograd_step(model, opt, x, y)
    opt.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())

    def closure():
        opt.zero_grad()
        loss = nn.MSELoss()(model(ag.tensor(x)), ag.tensor(y))
        loss.backward()
        return loss

    first = opt.step(closure).item()
    assert opt.step(closure).item() < first


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-0.1), "invalid learning rate -0.1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov momentum requires momentum"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, dampening=0.1),
     "dampening 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), "invalid momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "invalid weight_decay"),
    (lambda p: optim.Adam(p, lr=-1), "invalid learning rate"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), "invalid beta parameter at index 1"),
    (lambda p: optim.Adam(p, betas=(-0.1, 0.9)), "invalid beta parameter at index 0"),
    (lambda p: optim.Adam(p, eps=-1e-8), "invalid epsilon"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "invalid weight_decay"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD([p[0], p[0]], lr=0.1), "appears twice"),
])
def test_hyperparameter_validation(make, match):
    params = list(nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match=match):
        make(params)


def test_parameter_type_validation():
    with pytest.raises(TypeError, match="not a single Tensor"):
        optim.SGD(nn.Parameter(np.zeros(2)), lr=0.1)
    with pytest.raises(TypeError, match="not a Tensor"):
        optim.SGD([np.zeros(2)], lr=0.1)
    w = ag.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="leaf"):
        optim.SGD([w * 2], lr=0.1)


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
                                    (optim.Adam, dict(lr=0.01, weight_decay=0.01)),
                                    (optim.AdamW, dict(lr=0.01))])
def test_state_dict_round_trip(cls, kw):
    model, x, y = make_problem()
    opt = cls([{"params": list(model[0].parameters())},
               {"params": list(model[2].parameters()), "lr": 0.02}], **kw)
    for _ in range(5):
        autograd_step(model, opt, x, y)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert all(isinstance(v, np.ndarray) for s in sd["state"].values() for k, v in s.items()
               if k != "step")
    twin, _, _ = make_problem(seed=1)
    twin.load_state_dict(model.state_dict())
    opt2 = cls([{"params": list(twin[0].parameters())},
                {"params": list(twin[2].parameters())}], **kw)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == 0.02
    sd_key = next(iter(sd["state"][0]))
    if isinstance(sd["state"][0][sd_key], np.ndarray):
        sd["state"][0][sd_key][...] = 123.0  # the loaded state is a copy
    for _ in range(5):
        autograd_step(model, opt, x, y)
        autograd_step(twin, opt2, x, y)
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    again = opt2.state_dict()
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(again["state"][i][k], v)


def test_load_state_dict_errors():
    model, x, y = make_problem()
    opt = optim.Adam(model.parameters())
    autograd_step(model, opt, x, y)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="1 parameter groups, this optimizer 2"):
        optim.Adam([{"params": list(model[0].parameters())},
                    {"params": list(model[2].parameters())}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0 has 4 parameters in the state, 2 here"):
        optim.Adam(model[0].parameters()).load_state_dict(sd)
    other = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(5, 3\)"):
        optim.Adam(other.parameters()).load_state_dict(sd)


# ------------------------------------------------------------------------------ schedulers

def test_step_exponential_cosine_schedules():
    p = nn.Parameter(np.zeros(1))
    expected = {
        StepLR: (dict(step_size=3, gamma=0.5), lambda e: 0.1 * 0.5 ** (e // 3)),
        ExponentialLR: (dict(gamma=0.9), lambda e: 0.1 * 0.9 ** e),
        CosineAnnealingLR: (dict(T_max=10, eta_min=0.001),
                            lambda e: 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2),
    }
    for cls, (kw, formula) in expected.items():
        opt = optim.SGD([p], lr=0.1)
        sched = cls(opt, **kw)
        assert sched.get_last_lr() == [pytest.approx(0.1)]
        for epoch in range(1, 15):
            opt.step()
            sched.step()
            assert sched.get_last_lr()[0] == pytest.approx(formula(epoch), rel=1e-12)
            assert opt.param_groups[0]["lr"] == sched.get_last_lr()[0]
    assert CosineAnnealingLR(optim.SGD([p], lr=0.1), T_max=4).optimizer.param_groups[0]["lr"] \
        == 0.1


def test_scheduler_groups_and_state_dict():
    a, b = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    sched = StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        sched.step()
    assert sched.get_last_lr() == [pytest.approx(0.01), pytest.approx(0.1)]
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    opt2 = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    sched2 = StepLR(opt2, step_size=2, gamma=0.1)
    sched2.load_state_dict(state)
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max must be a positive int"):
        CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(KeyError, match="initial_lr"):
        ExponentialLR(optim.SGD([a], lr=0.1), gamma=0.9, last_epoch=4)
    with pytest.raises(TypeError, match="expected an Optimizer"):
        StepLR(object(), step_size=1)


# ------------------------------------------------------------------------------ clipping

def _with_grads(*grads):
    params = []
    for g in grads:
        p = nn.Parameter(np.zeros_like(g))
        p.grad = ag.tensor(g)
        params.append(p)
    return params


def test_clip_grad_norm():
    g1, g2 = np.array([3.0, 0.0]), np.array([[0.0, 4.0], [0.0, 12.0]])
    params = _with_grads(g1, g2)
    total = clip_grad_norm_(params, max_norm=6.5)
    assert isinstance(total, ag.Tensor) and total.item() == pytest.approx(13.0)
    coef = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad.numpy(), g1 * coef)
    np.testing.assert_allclose(params[1].grad.numpy(), g2 * coef)
    new = math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in params))
    assert new == pytest.approx(6.5, rel=1e-6)
    params = _with_grads(g1, g2)
    assert clip_grad_norm_(params, 100.0).item() == pytest.approx(13.0)
    np.testing.assert_array_equal(params[1].grad.numpy(), g2)  # under the limit: untouched
    params = _with_grads(g1, g2)
    assert clip_grad_norm_(params, 6.0, norm_type=float("inf")).item() == 12.0
    np.testing.assert_allclose(params[1].grad.numpy(), g2 * 6.0 / (12.0 + 1e-6))
    params = _with_grads(g1, g2)
    assert clip_grad_norm_(params, 1e9, norm_type=1).item() == pytest.approx(19.0)
    assert clip_grad_norm_([nn.Parameter(np.zeros(2))], 1.0).item() == 0.0  # no grads
    bad = _with_grads(np.array([np.inf]))
    with pytest.raises(RuntimeError, match="total norm"):
        clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)


def test_clip_grad_value():
    params = _with_grads(np.array([-3.0, 0.5, 2.0]))
    clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(params[0].grad.numpy(), [-1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        clip_grad_value_(params, -1)


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.5, momentum=0.9)),
                                    (optim.Adam, dict(lr=0.05)), (optim.AdamW, dict(lr=0.05))])
def test_optimizers_learn_xor(cls, kw):
    ag.manual_seed(0)
    x = ag.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = ag.tensor([[0.0], [1.0], [1.0], [0.0]])
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = cls(model.parameters(), **kw)
    for _ in range(300):
        opt.zero_grad()
        loss = nn.BCEWithLogitsLoss()(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    np.testing.assert_array_equal(model(x).numpy() > 0, y.numpy() > 0.5)
