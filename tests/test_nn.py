"""autograd.nn: Module bookkeeping, every layer against a NumPy reference, gradients through
layers (gradcheck in float64), train/eval behaviour, state_dict, repr and Sequential fusion."""
from __future__ import annotations

import math

from collections import OrderedDict

import numpy as np
import pytest

import autograd as ag
import autograd.nn as nn
import autograd.nn.functional as F
from autograd.nn import Parameter


def t64(a, requires_grad=False):
    return ag.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def _owner(module, dotted):
    *path, leaf = dotted.split(".")
    for p in path:
        module = module._modules[p]
    return module, leaf


def module_gradcheck(module, x, **kw):
    """autograd.gradcheck of module(x) w.r.t. x and every parameter: the parameters are swapped
    for the checker's tensors during each evaluation."""
    names = [n for n, _ in module.named_parameters()]
    originals = [p for _, p in module.named_parameters()]

    def fn(x, *ps):
        for n, p in zip(names, ps):
            owner, leaf = _owner(module, n)
            owner._parameters[leaf] = p
        try:
            return module(x)
        finally:
            for n, p in zip(names, originals):
                owner, leaf = _owner(module, n)
                owner._parameters[leaf] = p

    inputs = [x] + [t64(p.numpy(), requires_grad=True) for p in originals]
    return ag.gradcheck(fn, inputs, **kw)


# ------------------------------------------------------------------------------ Module basics

class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(4, 2, bias=False)
        self.scale = 2.0

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_registration_and_traversal():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight"]
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert list(m.children()) == [m.fc1, m.act, m.fc2]
    assert list(m.modules()) == [m, m.fc1, m.act, m.fc2]
    assert m.num_parameters() == 3 * 4 + 4 + 4 * 2
    assert all(isinstance(p, Parameter) and p.requires_grad for p in m.parameters())
    assert m.scale == 2.0 and "scale" not in dict(m.named_parameters())
    assert m.fc2.bias is None


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias"]


def test_setattr_rules():
    class NoInit(nn.Module):
        def __init__(self):
            self.w = Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        NoInit()
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="registered parameter"):
        m.weight = np.zeros((2, 2))
    m.bias = None  # a registered parameter may be set to None
    assert m.bias is None and "bias" not in m.state_dict()
    m.extra = nn.ReLU()
    assert "extra" in dict(m.named_children())
    del m.extra
    assert "extra" not in dict(m.named_children())
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = m.nope


def test_parameter_and_buffer_registration():
    m = nn.Module()
    m.register_buffer("count", ag.zeros(1))
    m.register_buffer("scratch", ag.zeros(2), persistent=False)
    m.register_parameter("w", Parameter([1.0, 2.0]))
    assert list(m.state_dict()) == ["w", "count"]  # parameters first, as PyTorch
    assert [n for n, _ in m.named_buffers()] == ["count", "scratch"]
    m.count = ag.ones(1)  # assigning to a buffer name replaces the buffer
    assert m.state_dict()["count"][0] == 1
    with pytest.raises(TypeError, match="buffer 'count'"):
        m.count = 3
    with pytest.raises(TypeError, match="must be a Parameter"):
        m.register_parameter("v", ag.zeros(2))
    with pytest.raises(KeyError, match="without '.'"):
        m.register_buffer("a.b", ag.zeros(1))
    p = Parameter(ag.ones(3))
    assert p.requires_grad and "Parameter containing" in repr(p)
    with pytest.raises(TypeError, match="floating"):
        Parameter(np.arange(3))


def test_train_eval_propagate_and_zero_grad():
    m = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(3)))
    assert all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m(ag.randn(4, 2)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_requires_grad_apply_and_dtype_conversion():
    m = TwoLayer()
    m.requires_grad_(False)
    assert m.num_parameters(trainable_only=True) == 0
    m.requires_grad_(True)
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "TwoLayer" and len(seen) == 4
    w = m.fc1.weight
    m.double()
    assert m.fc1.weight is w and w.dtype == np.float64
    assert m(t64(np.ones((1, 3)))).dtype == np.float64


def test_repr_matches_pytorch_layout():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Residual(nn.Sequential(nn.Linear(3, 3))),
                      nn.Dropout(0.25), nn.LeakyReLU(0.2))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Residual(\n"
        "    (block): Sequential(\n"
        "      (0): Linear(in_features=3, out_features=3, bias=True)\n"
        "    )\n"
        "  )\n"
        "  (3): Dropout(p=0.25)\n"
        "  (4): LeakyReLU(negative_slope=0.2)\n"
        ")")
    assert repr(nn.BatchNorm1d(4)) == ("BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, "
                                       "track_running_stats=True)")


# ------------------------------------------------------------------------------ state_dict

def test_state_dict_round_trip_and_keys():
    ag.manual_seed(0)
    a = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    a(ag.randn(8, 3))  # moves the running statistics off their initial values
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                        "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["0.weight"][...] = 0  # a copy: editing it leaves the model alone
    assert np.any(a[0].weight.numpy() != 0)
    sd = a.state_dict()
    b = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    w_before = b[0].weight
    assert b.load_state_dict(sd) == ([], [])
    assert b[0].weight is w_before  # loaded in place
    a.eval(), b.eval()
    x = ag.randn(5, 3)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])


def test_shared_module_is_in_state_dict_under_each_name():
    # As PyTorch: parameters() lists a shared layer once, but state_dict() walks the tree and
    # names it at every place it sits, so checkpoints of weight-tied models keep their keys.
    lin = nn.Linear(2, 2)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    sd = m.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    np.testing.assert_array_equal(sd["2.weight"], lin.weight.numpy())
    sd["0.weight"][...] = 1.0
    sd["2.weight"][...] = 1.0
    assert m.load_state_dict(sd) == ([], [])
    assert np.all(lin.weight.numpy() == 1.0)


def test_load_state_dict_errors_name_the_keys():
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    sd = m.state_dict()
    bad = dict(sd)
    del bad["1.bias"]
    bad["2.weight"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['1.bias'\].*unexpected keys "
                                       r"\['2.weight'\]"):
        m.load_state_dict(bad)
    missing, unexpected = m.load_state_dict(bad, strict=False)
    assert missing == ["1.bias"] and unexpected == ["2.weight"]
    wrong = dict(sd, **{"0.weight": np.zeros((4, 2))})
    with pytest.raises(ValueError, match=r"0.weight: checkpoint \(4, 2\) vs model \(4, 3\)"):
        m.load_state_dict(wrong)


# ------------------------------------------------------------------------------ layers vs NumPy

def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


ACTIVATIONS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Sigmoid(), _np_sigmoid),
    (nn.Tanh(), np.tanh),
    (nn.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (nn.GELU(approximate="tanh"), _np_gelu),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (nn.Softmax(dim=1), lambda x: _np_softmax(x, 1)),
    (nn.Softmax(dim=0), lambda x: _np_softmax(x, 0)),
    (nn.LogSoftmax(dim=-1), lambda x: np.log(_np_softmax(x, -1))),
    (nn.Identity(), lambda x: x),
    (nn.Flatten(), lambda x: x.reshape(x.shape[0], -1)),
]


@pytest.mark.parametrize("layer,ref", ACTIVATIONS, ids=lambda v: repr(v)[:20])
def test_activation_layers_forward_and_grad(layer, ref, rng, backend_name):
    x = rng.standard_normal((4, 5)) + 0.05  # away from relu's kink at exactly 0
    np.testing.assert_allclose(layer(t64(x)).numpy(), ref(x), rtol=1e-12, atol=1e-12)
    assert ag.gradcheck(layer, [t64(x, requires_grad=True)])


def test_linear_forward_matches_numpy(rng, backend_name):
    lin = nn.Linear(5, 3, dtype=np.float64)
    W, b = lin.weight.numpy(), lin.bias.numpy()
    assert W.shape == (3, 5) and b.shape == (3,)
    x = rng.standard_normal((7, 5))
    np.testing.assert_allclose(lin(t64(x)).numpy(), x @ W.T + b, rtol=1e-12)
    x3 = rng.standard_normal((2, 4, 5))  # leading axes are kept
    np.testing.assert_allclose(lin(t64(x3)).numpy(), x3 @ W.T + b, rtol=1e-12)
    nobias = nn.Linear(5, 3, bias=False, dtype=np.float64)
    np.testing.assert_allclose(nobias(t64(x)).numpy(), x @ nobias.weight.numpy().T)
    assert nn.Linear(2, 2).weight.dtype == np.float32
    with pytest.raises(ValueError, match="does not match weight"):
        lin(t64(np.ones((2, 4))))


def test_linear_and_mlp_gradcheck(rng, backend_name):
    mlp = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Sigmoid(),
                        nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.GELU()).double()
    x = t64(rng.standard_normal((5, 3)), requires_grad=True)
    assert module_gradcheck(mlp, x)
    assert module_gradcheck(nn.Linear(3, 2, bias=False).double(), x)


def test_residual_and_flatten(rng):
    block = nn.Sequential(nn.Linear(3, 3), nn.Tanh()).double()
    res = nn.Residual(block)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(res(t64(x)).numpy(), x + block(t64(x)).numpy())
    assert module_gradcheck(res, t64(x, requires_grad=True))
    with pytest.raises(ValueError, match="same shape"):
        nn.Residual(nn.Linear(3, 2))(ag.ones(1, 3))
    x4 = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    assert nn.Flatten()(t64(x4)).shape == (2, 60)
    assert nn.Flatten(1, 2)(t64(x4)).shape == (2, 12, 5)
    assert nn.Flatten(0)(t64(x4)).shape == (120,)
    assert nn.Flatten()(t64(np.zeros((0, 3, 2)))).shape == (0, 6)


# ------------------------------------------------------------------------------ Dropout

def test_dropout_training_and_eval():
    x = ag.ones(200, 100, dtype=np.float64)
    drop = nn.Dropout(0.3)
    ag.manual_seed(5)
    y = drop(x).numpy()
    assert set(np.unique(y)) <= {0.0, 1 / 0.7}
    assert abs((y == 0).mean() - 0.3) < 0.01
    ag.manual_seed(5)
    np.testing.assert_array_equal(drop(x).numpy(), y)  # seeded: the same mask
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert np.all(nn.Dropout(1.0)(x).numpy() == 0)
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


def test_dropout_gradcheck_with_fixed_mask(rng):
    drop = nn.Dropout(0.4)
    x = t64(rng.standard_normal((6, 5)), requires_grad=True)

    def fn(x):
        drop.generator = np.random.default_rng(7)  # the same mask at every evaluation
        return drop(x)

    assert ag.gradcheck(fn, [x])
    y = fn(x)
    y.backward(np.ones(y.shape))
    mask = fn(t64(np.ones((6, 5)))).numpy()
    np.testing.assert_array_equal(x.grad.numpy(), mask)


# ------------------------------------------------------------------------------ BatchNorm1d

def _np_batchnorm(x, w, b, eps=1e-5):
    axes = (0,) if x.ndim == 2 else (0, 2)
    shape = (-1,) if x.ndim == 2 else (-1, 1)
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batchnorm_training_forward_and_running_stats(shape, rng, backend_name):
    bn = nn.BatchNorm1d(3, momentum=0.2, dtype=np.float64)
    with ag.no_grad():
        bn.weight.copy_(t64([0.5, 1.0, 2.0]))
        bn.bias.copy_(t64([0.1, -0.2, 0.3]))
    rm, rv = np.zeros(3), np.ones(3)
    axes = (0,) if len(shape) == 2 else (0, 2)
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        np.testing.assert_allclose(bn(t64(x)).numpy(),
                                   _np_batchnorm(x, bn.weight.numpy(), bn.bias.numpy()),
                                   rtol=1e-10, atol=1e-12)
        rm = 0.8 * rm + 0.2 * x.mean(axis=axes)
        rv = 0.8 * rv + 0.2 * x.var(axis=axes, ddof=1)  # unbiased for the running variance
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 3
    bn.eval()
    x = rng.standard_normal(shape)
    s = (-1,) if len(shape) == 2 else (-1, 1)
    ref = ((x - rm.reshape(s)) / np.sqrt(rv.reshape(s) + 1e-5) * bn.weight.numpy().reshape(s)
           + bn.bias.numpy().reshape(s))
    np.testing.assert_allclose(bn(t64(x)).numpy(), ref, rtol=1e-10)
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)  # eval leaves them alone


def test_batchnorm_cumulative_momentum_and_no_affine(rng):
    bn = nn.BatchNorm1d(2, momentum=None, affine=False, dtype=np.float64)
    assert list(bn.parameters()) == []
    xs = [rng.standard_normal((5, 2)) for _ in range(4)]
    for x in xs:
        bn(t64(x))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0))
    no_stats = nn.BatchNorm1d(2, track_running_stats=False, dtype=np.float64).eval()
    x = rng.standard_normal((6, 2))
    np.testing.assert_allclose(no_stats(t64(x)).numpy(), _np_batchnorm(x, np.ones(2),
                                                                        np.zeros(2)))
    assert "running_mean" not in no_stats.state_dict()


@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 4)])
def test_batchnorm_gradcheck_train_and_eval(shape, rng, backend_name):
    bn = nn.BatchNorm1d(3, dtype=np.float64)
    with ag.no_grad():
        bn.weight.copy_(t64(rng.standard_normal(3)))
    x = t64(rng.standard_normal(shape), requires_grad=True)
    assert module_gradcheck(bn, x)
    assert module_gradcheck(bn.eval(), x)


def test_batchnorm_errors():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\)"):
        bn(ag.ones(4, 2))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(ag.ones(1, 3))
    assert bn.eval()(ag.ones(1, 3)).shape == (1, 3)


# ------------------------------------------------------------------------------ Sequential

def test_sequential_container_protocol():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b)
    assert len(s) == 2 and s[0] is a and s[-1] is b and list(s) == [a, b]
    s.append(c)
    assert len(s) == 3 and s[2] is c
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    named = nn.Sequential(OrderedDict([("enc", a), ("act", b)]))
    assert list(named.state_dict()) == ["enc.weight", "enc.bias"]
    with pytest.raises(IndexError, match="out of range"):
        s[5]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(a, lambda x: x)


@pytest.mark.parametrize("act", [nn.ReLU, nn.Sigmoid, nn.Tanh])
def test_sequential_fusion_matches_unfused(act, rng, backend_name):
    ag.manual_seed(3)
    fused = nn.Sequential(nn.Linear(4, 6), act(), nn.Linear(6, 3), act(), nn.Linear(3, 2),
                          nn.Identity()).double()
    unfused = nn.Sequential(*fused, fuse=False)
    x = rng.standard_normal((5, 4)) + 0.01
    xs = [t64(x, requires_grad=True) for _ in range(2)]
    outs = [m(xi) for m, xi in zip((fused, unfused), xs)]
    np.testing.assert_array_equal(outs[0].numpy(), outs[1].numpy())
    cot = rng.standard_normal(outs[0].shape)
    grads = []
    for o, xi in zip(outs, xs):
        fused.zero_grad()  # the two containers share their layers
        o.backward(cot)
        grads.append([xi.grad.numpy().copy()] + [p.grad.numpy().copy()
                                                 for p in fused.parameters()])
    for g_f, g_u in zip(*grads):
        np.testing.assert_allclose(g_f, g_u, rtol=1e-14, atol=1e-15)


def test_fusion_runs_one_linear_op():
    lin, act = nn.Linear(3, 2), nn.Tanh()
    x = ag.randn(4, 3)
    assert nn.Sequential(lin, act)(x)._node.op.name == "linear"
    assert nn.Sequential(lin, act, fuse=False)(x)._node.op.name == "tanh"
    # a subclass of ReLU may change its forward, so it is not fused
    class Shifted(nn.ReLU):
        def forward(self, x):
            return F.relu(x) + 1.0
    assert nn.Sequential(lin, Shifted())(x)._node.op.name == "add"


# ------------------------------------------------------------------------------ losses

def test_loss_modules_match_functional(rng):
    p = t64(rng.uniform(0.05, 0.95, (6, 2)), requires_grad=True)
    t = t64(rng.integers(0, 2, (6, 2)))
    z = t64(rng.standard_normal((6, 4)))
    y = rng.integers(0, 4, 6)
    for red in ("mean", "sum", "none"):
        np.testing.assert_array_equal(nn.MSELoss(red)(p, t).numpy(),
                                      F.mse_loss(p, t, red).numpy())
        np.testing.assert_array_equal(nn.BCELoss(reduction=red)(p, t).numpy(),
                                      F.binary_cross_entropy(p, t, red).numpy())
        np.testing.assert_array_equal(nn.BCEWithLogitsLoss(red)(p, t).numpy(),
                                      F.binary_cross_entropy_with_logits(p, t, red).numpy())
        np.testing.assert_array_equal(nn.CrossEntropyLoss(red)(z, y).numpy(),
                                      F.cross_entropy(z, y, red).numpy())
    np.testing.assert_allclose(nn.MSELoss()(p, t).item(), np.mean((p.numpy() - t.numpy()) ** 2))
    logp = z.numpy() - np.log(np.exp(z.numpy()).sum(1, keepdims=True))
    np.testing.assert_allclose(nn.CrossEntropyLoss()(z, y).item(), -logp[np.arange(6), y].mean())
    assert ag.gradcheck(lambda p: nn.BCELoss()(p, t), [p])
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss("avg")
    with pytest.warns(UserWarning, match="broadcast"):
        nn.MSELoss()(t64(np.zeros((4, 1))), t64(np.zeros(4)))
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"


def test_nn_functional_reexports():
    import autograd.functional as core
    for name in core.__all__:
        assert getattr(F, name) is getattr(core, name)


def test_deepcopy_and_pickle_keep_parameters():
    import copy
    import pickle
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU())
    x = ag.randn(4, 2)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert all(isinstance(p, Parameter) and p.requires_grad for p in clone.parameters())
        assert clone[0].weight is not m[0].weight
        np.testing.assert_array_equal(clone(x).numpy(), m(x).numpy())
        assert list(clone.state_dict()) == list(m.state_dict())
