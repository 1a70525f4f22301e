"""Higher-order derivatives against PyTorch in float64 (skipped when torch is not installed):
second and third derivatives of random op compositions, hvp/hessian of an MLP loss with respect
to its parameters, jacobians, the transforms, a gradient-penalty loss's gradient, and grad()'s
allow_unused and not-in-graph behaviour, all to 1e-10."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
TF = pytest.importorskip("torch.nn.functional")
TAF = pytest.importorskip("torch.autograd.functional")

import autograd as ag  # noqa: E402
from autograd import functional as F  # noqa: E402

pytestmark = pytest.mark.torch
TOL = dict(rtol=1e-10, atol=1e-10)


def pair(a, requires_grad=True):
    """The same float64 values as (ours, torch's)."""
    a = np.asarray(a, dtype=np.float64)
    return (ag.tensor(a.copy(), requires_grad=requires_grad),
            torch.tensor(a.copy(), dtype=torch.float64, requires_grad=requires_grad))


def close(ours, theirs, what=""):
    if theirs is None:
        assert ours is None, what
        return
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs), what
        for k, (o, t) in enumerate(zip(ours, theirs)):
            close(o, t, f"{what}[{k}]")
        return
    expected = theirs.detach().numpy()
    # 1e-10 relative to each element, or to the array's largest entry where an element is the
    # small difference of large terms (third derivatives of polynomials mix magnitudes)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(ours.numpy(), expected, err_msg=what, rtol=TOL["rtol"],
                               atol=TOL["atol"] * scale)


# --------------------------------------------------------------------------------------------
# Random compositions: each step maps h (3, 4) to (3, 4); y (4,) and w (4, 4) are further
# differentiable leaves; a final reduction makes a scalar.
# --------------------------------------------------------------------------------------------

TARGET_CLASSES = np.array([1, 3, 0])
TARGET_PROBS = np.array([[0.2, 0.9, 0.5, 0.0], [1.0, 0.3, 0.7, 0.4], [0.6, 0.1, 0.8, 0.5]])
COND = np.array([[True, False, True, False]] * 3)

STEPS = {
    "tanh": (lambda h, y, w: h.tanh(), lambda h, y, w: h.tanh()),
    "sigmoid": (lambda h, y, w: h.sigmoid(), lambda h, y, w: h.sigmoid()),
    "exp_tanh": (lambda h, y, w: h.tanh().exp(), lambda h, y, w: h.tanh().exp()),
    "gelu": (lambda h, y, w: F.gelu(h), lambda h, y, w: TF.gelu(h)),
    "gelu_tanh": (lambda h, y, w: F.gelu(h, approximate="tanh"),
                  lambda h, y, w: TF.gelu(h, approximate="tanh")),
    "leaky_relu": (lambda h, y, w: F.leaky_relu(h, 0.2),
                   lambda h, y, w: TF.leaky_relu(h, 0.2)),
    "mul_y": (lambda h, y, w: h * y, lambda h, y, w: h * y),
    "add_y": (lambda h, y, w: h + y, lambda h, y, w: h + y),
    "sub_mean": (lambda h, y, w: h - h.mean(axis=1, keepdims=True),
                 lambda h, y, w: h - h.mean(dim=1, keepdim=True)),
    "div": (lambda h, y, w: h / (y * y + 1.0), lambda h, y, w: h / (y * y + 1.0)),
    "square": (lambda h, y, w: h ** 2, lambda h, y, w: h ** 2),
    "pow_y": (lambda h, y, w: (h * h + 1.0) ** y, lambda h, y, w: (h * h + 1.0) ** y),
    "sqrt": (lambda h, y, w: (h * h + 1.0).sqrt(), lambda h, y, w: (h * h + 1.0).sqrt()),
    "log": (lambda h, y, w: (h * h + 0.5).log(), lambda h, y, w: (h * h + 0.5).log()),
    "softmax": (lambda h, y, w: h.softmax(axis=1), lambda h, y, w: h.softmax(dim=1)),
    "log_softmax": (lambda h, y, w: h.log_softmax(axis=0),
                    lambda h, y, w: h.log_softmax(dim=0)),
    "matmul": (lambda h, y, w: h @ w, lambda h, y, w: h @ w),
    "linear_tanh": (lambda h, y, w: F.linear(h, w, y, activation="tanh"),
                    lambda h, y, w: torch.tanh(TF.linear(h, w, y))),
    "linear_sigmoid": (lambda h, y, w: F.linear(h, w, None, activation="sigmoid"),
                       lambda h, y, w: torch.sigmoid(TF.linear(h, w))),
    "maximum": (lambda h, y, w: F.maximum(h, y), lambda h, y, w: torch.maximum(h, y)),
    "where": (lambda h, y, w: F.where(COND, h * h, h * y),
              lambda h, y, w: torch.where(torch.tensor(COND), h * h, h * y)),
    "split_join": (lambda h, y, w: F.concatenate([h[:, 2:] * h[:, 2:], h[:, :2]], axis=1),
                   lambda h, y, w: torch.cat([h[:, 2:] * h[:, 2:], h[:, :2]], dim=1)),
    "stack": (lambda h, y, w: F.stack([h, h * y], axis=0).sum(axis=0),
              lambda h, y, w: torch.stack([h, h * y], dim=0).sum(dim=0)),
    "transpose": (lambda h, y, w: (h.T * h.T.sum(axis=1, keepdims=True)).T,
                  lambda h, y, w: (h.T * h.T.sum(dim=1, keepdim=True)).T),
    "advanced_index": (lambda h, y, w: h[[2, 0, 0]] * h,
                       lambda h, y, w: h[[2, 0, 0]] * h),
    "expand": (lambda h, y, w: h.sum(axis=0, keepdims=True).expand(3, 4) * h,
               lambda h, y, w: h.sum(dim=0, keepdim=True).expand(3, 4) * h),
}

REDUCTIONS = {
    "sum": (lambda h: h.sum(), lambda h: h.sum()),
    "mean_sq": (lambda h: (h * h).mean(), lambda h: (h * h).mean()),
    "var": (lambda h: h.var(axis=1).sum(), lambda h: h.var(dim=1, unbiased=False).sum()),
    "logsumexp": (lambda h: h.logsumexp(axis=1).sum(), lambda h: h.logsumexp(dim=1).sum()),
    "max": (lambda h: (h * h).max(axis=1).sum(), lambda h: (h * h).amax(dim=1).sum()),
    "mse": (lambda h: F.mse_loss(h, ag.tensor(TARGET_PROBS)),
            lambda h: TF.mse_loss(h, torch.tensor(TARGET_PROBS))),
    "cross_entropy": (lambda h: F.cross_entropy(h, TARGET_CLASSES),
                      lambda h: TF.cross_entropy(h, torch.tensor(TARGET_CLASSES))),
    "bce_logits": (lambda h: F.binary_cross_entropy_with_logits(h, ag.tensor(TARGET_PROBS)),
                   lambda h: TF.binary_cross_entropy_with_logits(h, torch.tensor(TARGET_PROBS))),
    # tanh first keeps the probabilities in [0.27, 0.73]: near 0 or 1, 1 - p cancels and
    # both libraries' second derivatives lose more than 1e-10 relative to each other
    "bce": (lambda h: F.binary_cross_entropy(h.tanh().sigmoid(), ag.tensor(TARGET_PROBS),
                                             "sum"),
            lambda h: TF.binary_cross_entropy(h.tanh().sigmoid(), torch.tensor(TARGET_PROBS),
                                              reduction="sum")),
}


def _derivatives(grad, leaves, loss, cot1, cot2):
    """First, second and third derivatives of ``loss`` along fixed cotangents (zeros once a
    derivative no longer depends on the leaves: neither library can differentiate it)."""
    def next_order(s, create_graph):
        if not s.requires_grad:
            return [0 * leaf.detach() for leaf in leaves]
        return grad(s, leaves, create_graph=create_graph)
    d1 = next_order(loss, True)
    d2 = next_order(sum((a * b).sum() for a, b in zip(d1, cot1)), True)
    d3 = next_order(sum((a * b).sum() for a, b in zip(d2, cot2)), False)
    return d1, d2, d3


@settings(max_examples=60, deadline=None, derandomize=False)
@given(steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=4),
       reduction=st.sampled_from(sorted(REDUCTIONS)), seed=st.integers(0, 2**31 - 1))
def test_second_and_third_derivatives_of_random_compositions(steps, reduction, seed):
    rng = np.random.default_rng(seed)
    h0, y0, w0 = (rng.uniform(-1, 1, s) for s in ((3, 4), (4,), (4, 4)))
    (ho, ht), (yo, yt), (wo, wt) = [pair(a) for a in (h0, y0, w0)]
    cot1 = [rng.standard_normal(s) for s in ((3, 4), (4,), (4, 4))]
    cot2 = [rng.standard_normal(s) for s in ((3, 4), (4,), (4, 4))]

    def program(h, y, w, side):
        for name in steps:
            h = STEPS[name][side](h, y, w)
        return REDUCTIONS[reduction][side](h)

    o = _derivatives(lambda *a, **k: ag.grad(*a, allow_unused=True, materialize_grads=True,
                                             **k),
                     [ho, yo, wo], program(ho, yo, wo, 0),
                     [ag.tensor(c) for c in cot1], [ag.tensor(c) for c in cot2])
    t = _derivatives(lambda *a, **k: torch.autograd.grad(*a, allow_unused=True,
                                                         materialize_grads=True, **k),
                     [ht, yt, wt], program(ht, yt, wt, 1),
                     [torch.tensor(c) for c in cot1], [torch.tensor(c) for c in cot2])
    for order, (a, b) in enumerate(zip(o, t), start=1):
        close(a, b, f"order {order} of {steps} then {reduction}")


# --------------------------------------------------------------------------------------------
# An MLP loss: hessian and hvp with respect to its parameters
# --------------------------------------------------------------------------------------------

def _mlp_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) * 0.7 for s in ((5, 3), (5,), (4, 5), (4,))]


X = np.random.default_rng(10).standard_normal((6, 3))
CLASSES = np.array([0, 3, 1, 2, 3, 0])


def mlp_loss(w1, b1, w2, b2):
    h = F.linear(ag.tensor(X), w1, b1, activation="tanh")
    return F.cross_entropy(F.linear(h, w2, b2), CLASSES)


def mlp_loss_torch(w1, b1, w2, b2):
    h = torch.tanh(TF.linear(torch.tensor(X), w1, b1))
    return TF.cross_entropy(TF.linear(h, w2, b2), torch.tensor(CLASSES))


def test_hessian_of_an_mlp_loss_matches_torch():
    params = _mlp_params()
    ours = ag.hessian(mlp_loss, tuple(ag.tensor(p) for p in params))
    theirs = TAF.hessian(mlp_loss_torch, tuple(torch.tensor(p) for p in params))
    close(ours, theirs, "hessian")


@pytest.mark.parametrize("fn", ["hvp", "vhp"])
def test_hvp_and_vhp_of_an_mlp_loss_match_torch(fn):
    params = _mlp_params(1)
    vs = [np.random.default_rng(2).standard_normal(p.shape) for p in params]
    out, hv = getattr(ag, fn)(mlp_loss, tuple(ag.tensor(p) for p in params),
                              tuple(ag.tensor(v) for v in vs))
    out_t, hv_t = getattr(TAF, fn)(mlp_loss_torch, tuple(torch.tensor(p) for p in params),
                                   tuple(torch.tensor(v) for v in vs))
    close(out, out_t, "value")
    close(hv, hv_t, fn)


# --------------------------------------------------------------------------------------------
# Jacobians and the other transforms
# --------------------------------------------------------------------------------------------

M = np.random.default_rng(11).standard_normal((3, 4))


def vector_fn(x, y):
    return (ag.tensor(M) @ x).softmax(axis=0) * y.sum() + (x[:3] * y).tanh()


def vector_fn_torch(x, y):
    return (torch.tensor(M) @ x).softmax(dim=0) * y.sum() + (x[:3] * y).tanh()


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_jacobian_of_a_vector_function_matches_torch(strategy):
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal(4), rng.standard_normal(3)
    ours = ag.jacobian(vector_fn, (ag.tensor(x), ag.tensor(y)), strategy=strategy)
    theirs = TAF.jacobian(vector_fn_torch, (torch.tensor(x), torch.tensor(y)))
    close(ours, theirs, "jacobian")
    one = ag.jacobian(lambda x: vector_fn(x, ag.tensor(y)), ag.tensor(x), strategy=strategy)
    close(one, TAF.jacobian(lambda x: vector_fn_torch(x, torch.tensor(y)), torch.tensor(x)))


def test_vjp_and_jvp_match_torch():
    rng = np.random.default_rng(13)
    x, y, u = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal(3)
    vx, vy = rng.standard_normal(4), rng.standard_normal(3)
    ours = ag.vjp(vector_fn, (ag.tensor(x), ag.tensor(y)), ag.tensor(u))
    theirs = TAF.vjp(vector_fn_torch, (torch.tensor(x), torch.tensor(y)), torch.tensor(u))
    close(ours, theirs, "vjp")
    ours = ag.jvp(vector_fn, (ag.tensor(x), ag.tensor(y)), (ag.tensor(vx), ag.tensor(vy)))
    theirs = TAF.jvp(vector_fn_torch, (torch.tensor(x), torch.tensor(y)),
                     (torch.tensor(vx), torch.tensor(vy)))
    close(ours, theirs, "jvp")


def test_create_graph_transforms_match_torch_when_differentiated_again():
    params = _mlp_params(3)
    ours_p = tuple(ag.tensor(p, requires_grad=True) for p in params)
    theirs_p = tuple(torch.tensor(p, requires_grad=True) for p in params)
    v = [np.ones(p.shape) for p in params]
    _, hv = ag.hvp(mlp_loss, ours_p, tuple(ag.tensor(a) for a in v), create_graph=True)
    _, hv_t = TAF.hvp(mlp_loss_torch, theirs_p, tuple(torch.tensor(a) for a in v),
                      create_graph=True)
    ours = ag.grad(sum((h * h).sum() for h in hv), ours_p)
    theirs = torch.autograd.grad(sum((h * h).sum() for h in hv_t), theirs_p)
    close(ours, theirs, "d |Hv|^2 / d params")


# --------------------------------------------------------------------------------------------
# A gradient penalty (WGAN-GP): the gradient of a loss that contains a gradient
# --------------------------------------------------------------------------------------------

def test_gradient_penalty_loss_gradient_matches_torch():
    rng = np.random.default_rng(14)
    shapes = ((8, 2), (8,), (8, 8), (8,), (1, 8), (1,))
    params = [rng.standard_normal(s) * 0.5 for s in shapes]
    real, fake = rng.standard_normal((5, 2)) + 2, rng.standard_normal((5, 2))
    eps = rng.uniform(size=(5, 1))

    def critic(x, p, lib):
        if lib == "ag":
            h = F.linear(x, p[0], p[1], activation="tanh")
            h = F.leaky_relu(F.linear(h, p[2], p[3]), 0.2)
            return F.linear(h, p[4], p[5])
        h = torch.tanh(TF.linear(x, p[0], p[1]))
        h = TF.leaky_relu(TF.linear(h, p[2], p[3]), 0.2)
        return TF.linear(h, p[4], p[5])

    def loss(lib, p):
        tensor = ag.tensor if lib == "ag" else torch.tensor
        grad = ag.grad if lib == "ag" else torch.autograd.grad
        mix = tensor(eps * real + (1 - eps) * fake, requires_grad=True)
        (g,) = grad(critic(mix, p, lib).sum(), mix, create_graph=True)
        norm = ((g * g).sum(axis=1) if lib == "ag" else (g * g).sum(dim=1)).sqrt()
        penalty = ((norm - 1.0) ** 2).mean()
        wasserstein = critic(tensor(fake), p, lib).mean() - critic(tensor(real), p, lib).mean()
        return wasserstein + 10.0 * penalty

    ours_p = [ag.tensor(p.copy(), requires_grad=True) for p in params]
    theirs_p = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    lo, lt = loss("ag", ours_p), loss("torch", theirs_p)
    close(lo, lt, "loss")
    lo.backward()
    lt.backward()
    close([p.grad for p in ours_p], [p.grad for p in theirs_p], "parameter gradients")


# --------------------------------------------------------------------------------------------
# allow_unused and the errors, as PyTorch's
# --------------------------------------------------------------------------------------------

def _outcome(fn):
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc).__name__
    return tuple(None if r is None else "tensor" for r in result)


@pytest.mark.parametrize("case", ["unused", "unused_allowed", "no_grad_input", "no_grad_output",
                                  "non_scalar", "intermediate", "detached", "bad_shape"])
def test_grad_behaves_as_torch(case):
    def run(lib):
        mk = (lambda a, rg=True: pair(a, rg)[0]) if lib == "ag" else \
             (lambda a, rg=True: pair(a, rg)[1])
        grad = ag.grad if lib == "ag" else torch.autograd.grad
        x, z = mk([1.0, 2.0]), mk([3.0])
        c = mk([1.0, 1.0], False)
        if case == "unused":
            return _outcome(lambda: grad((x * 2).sum(), [x, z]))
        if case == "unused_allowed":
            return _outcome(lambda: grad((x * 2).sum(), [x, z], allow_unused=True))
        if case == "no_grad_input":
            return _outcome(lambda: grad((x * c).sum(), [x, c]))
        if case == "no_grad_output":
            return _outcome(lambda: grad(c.sum(), [x]))
        if case == "non_scalar":
            return _outcome(lambda: grad(x * 2, [x]))
        if case == "intermediate":
            h = x * x
            return _outcome(lambda: grad((h * 3).sum(), [h, x]))
        if case == "detached":
            return _outcome(lambda: grad((x.detach() * z).sum(), [x, z], allow_unused=True))
        if case == "bad_shape":
            go = np.ones(3) if lib == "ag" else torch.ones(3, dtype=torch.float64)
            return _outcome(lambda: grad(x * 2, [x], grad_outputs=go))
    assert run("ag") == run("torch")


# --------------------------------------------------------------------------------------------
# An nn model (fused Linear + activation in Sequential, BatchNorm in training mode)
# --------------------------------------------------------------------------------------------

def test_hessian_vector_product_of_an_nn_model_matches_torch():
    from autograd import nn
    ag.manual_seed(0)
    ours = nn.Sequential(nn.Linear(4, 8, dtype=np.float64), nn.Tanh(),
                         nn.BatchNorm1d(8, dtype=np.float64), nn.Linear(8, 6, dtype=np.float64),
                         nn.Sigmoid(), nn.Linear(6, 3, dtype=np.float64))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.BatchNorm1d(8),
                                 torch.nn.Linear(8, 6), torch.nn.Sigmoid(),
                                 torch.nn.Linear(6, 3)).double()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(15)
    x, target = rng.standard_normal((7, 4)), np.array([0, 2, 1, 1, 0, 2, 2])
    po, pt = list(ours.parameters()), list(theirs.parameters())
    vs = [rng.standard_normal(p.shape) for p in po]
    lo = F.cross_entropy(ours(ag.tensor(x)), target)
    lt = TF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(target))
    go = ag.grad(lo, po, create_graph=True)
    gt = torch.autograd.grad(lt, pt, create_graph=True)
    close(go, gt, "gradient")
    ho = ag.grad(sum((g * ag.tensor(v)).sum() for g, v in zip(go, vs)), po)
    ht = torch.autograd.grad(sum((g * torch.tensor(v)).sum() for g, v in zip(gt, vs)), pt)
    close(ho, ht, "Hessian-vector product")


def test_transform_result_nesting_and_defaults_match_torch():
    rng = np.random.default_rng(16)
    x, y, s = rng.standard_normal(3), rng.standard_normal(2), np.array(0.7)

    def f(a, b):  # a tuple of outputs from a tuple of inputs: results [output][input]
        return a.exp()[:2] * b, (a * a).sum()
    ours = ag.jacobian(f, (ag.tensor(x), ag.tensor(y)))
    theirs = TAF.jacobian(f, (torch.tensor(x), torch.tensor(y)))
    assert [[t.shape for t in row] for row in ours] == \
        [[tuple(t.shape) for t in row] for row in theirs]
    close(ours, theirs, "jacobian[output][input]")

    def g(a):
        return (a ** 3).sum() * a.sum()
    theirs = TAF.hessian(g, torch.tensor(x))
    for strategy in ("reverse-mode", "forward-mode"):
        close(ag.hessian(g, ag.tensor(x), outer_jacobian_strategy=strategy), theirs, strategy)
    # v may be omitted for a one-element input (jvp) or output (vjp)
    close(ag.jvp(lambda a: a.exp() * a, ag.tensor(s)),
          TAF.jvp(lambda a: a.exp() * a, torch.tensor(s)), "jvp, v=None")
    close(ag.vjp(lambda a: (a.exp() * a).sum(), ag.tensor(x)),
          TAF.vjp(lambda a: (a.exp() * a).sum(), torch.tensor(x)), "vjp, v=None")


# --------------------------------------------------------------------------------------------
# Tensor hooks in grad() and in a recorded backward
# --------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")  # torch's
@pytest.mark.parametrize("how", ["grad", "backward"])
def test_hooks_run_in_grad_and_recorded_backward_as_torch(how):
    def run(lib):
        x = pair([1.0, 2.0])[0 if lib == "ag" else 1]
        calls = []
        x.register_hook(lambda g: calls.append(("leaf", g.numpy().tolist()
                                                if lib == "ag" else g.tolist())) or g * 10)
        h = x * x
        h.register_hook(lambda g: calls.append(("h", g.numpy().tolist()
                                                if lib == "ag" else g.tolist())) or g * 2)
        if how == "backward":
            x.register_post_accumulate_grad_hook(lambda t: calls.append(("post", None)))
        y = (h * 3).sum()
        if how == "grad":
            (g,) = (ag.grad if lib == "ag" else torch.autograd.grad)(y, x, create_graph=True)
        else:
            y.backward(create_graph=True)
            g = x.grad
        second = (ag.grad if lib == "ag" else torch.autograd.grad)(g.sum(), x)[0]
        return calls, g, second

    ours, theirs = run("ag"), run("torch")
    assert ours[0][:3] == theirs[0][:3]  # the same hooks, order and gradients they saw
    close(ours[1], theirs[1], "first derivative through the hooks")
    close(ours[2], theirs[2], "second derivative")
