"""The eager fast paths of issue 10 (speed part): each shortcut keeps the results of the path it
replaces, and whole training loops give the same bits on the compiled hot path and its pure
Python twin."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import digests_of_both_twins, need_compiled_engine

import autograd as ag
from autograd import backend, nn, optim
from autograd import functional as F
from autograd.engine import count_consumers, topological_order

# Two tutorial loops: the Keras XOR net (SGD with momentum, BCE on a fused Linear + Sigmoid)
# and the seed-style 1-2-5-1 regression trained one sample at a time with Adam. The digest
# covers every loss and the final parameters.
_TRAIN_SCRIPT = r"""
import hashlib, sys
import numpy as np
import autograd as ag
from autograd import backend, nn, optim, functional as F
digest = hashlib.sha256()
with backend.use(sys.argv[1]):
    ag.manual_seed(0)
    xor = nn.Sequential(nn.Linear(2, 10), nn.Tanh(), nn.Linear(10, 1), nn.Sigmoid())
    opt = optim.SGD(xor.parameters(), lr=0.5, momentum=0.9)
    x = ag.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    y = ag.tensor([[0], [1], [1], [0]], dtype="float32")
    for _ in range(40):
        opt.zero_grad()
        loss = F.binary_cross_entropy(xor(x), y)
        loss.backward()
        opt.step()
        digest.update(loss.numpy().tobytes())
    reg = nn.Sequential(nn.Linear(1, 2), nn.Tanh(), nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1))
    opt = optim.Adam(reg.parameters(), lr=0.01)
    xs = np.linspace(-1, 1, 16, dtype=np.float32)
    for step in range(48):
        v = xs[step % 16]
        opt.zero_grad()
        loss = F.mse_loss(reg(ag.tensor([[v]])), ag.tensor([[v * v]]))
        loss.backward()
        opt.step()
        digest.update(loss.numpy().tobytes())
    for p in list(xor.parameters()) + list(reg.parameters()):
        digest.update(p.numpy().tobytes())
print(backend.info()["hot_path"], backend.info()["engine"], digest.hexdigest())
"""


@pytest.mark.parametrize("provider", ["numpy", "native"])
def test_training_loops_give_the_same_bits_on_both_twins(provider, tmp_path):
    outs = digests_of_both_twins(_TRAIN_SCRIPT, provider, tmp_path)
    assert outs["compiled"] == outs["python"]


def _xor_model(fuse: bool):
    ag.manual_seed(1)
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1), nn.Sigmoid(), fuse=fuse)


@pytest.mark.parametrize("fuse", [True, False])
def test_bce_of_a_sigmoid_output_skips_the_range_scan_and_keeps_the_result(fuse):
    # The recorded output of a sigmoid (alone, or fused into the Linear) lies in [0, 1] by
    # construction, so binary_cross_entropy does not scan it; the loss and the gradients are
    # those of the same probabilities given as a plain tensor (which is scanned).
    model = _xor_model(fuse)
    x = ag.tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
    y = ag.tensor(np.array([[0], [1], [1], [0]], np.float32))
    p = model(x)
    p.retain_grad()
    assert F._made_by_sigmoid(p)
    loss = F.binary_cross_entropy(p, y)
    plain = ag.tensor(p.numpy().copy(), requires_grad=True)
    assert not F._made_by_sigmoid(plain)
    ref = F.binary_cross_entropy(plain, y)
    assert loss.numpy().tobytes() == ref.numpy().tobytes()
    loss.backward()
    ref.backward()
    assert p.grad.numpy().tobytes() == plain.grad.numpy().tobytes()
    assert all(q.grad is not None for q in model.parameters())


def test_bce_still_refuses_values_outside_zero_one_when_not_made_by_a_sigmoid():
    y = ag.tensor(np.zeros((3, 1), np.float32))
    z = ag.tensor(np.array([[0.5], [1.5], [0.2]], np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must hold probabilities"):
        F.binary_cross_entropy(z * 1.0, y)  # made by an op, but not by a sigmoid
    relu_out = F.relu(z)  # a relu output can exceed 1
    assert not F._made_by_sigmoid(relu_out)
    with pytest.raises(ValueError, match=r"values in \[0.2, 1.5\]"):
        F.binary_cross_entropy(relu_out, y)
    with ag.no_grad():  # no node recorded: the values are scanned
        s = F.sigmoid(z)
        assert not F._made_by_sigmoid(s)
        assert np.isfinite(F.binary_cross_entropy(s, y).numpy())
    lin = F.linear(ag.tensor(np.ones((3, 2), np.float32)),
                   ag.tensor(np.ones((1, 2), np.float32), requires_grad=True), activation="tanh")
    assert not F._made_by_sigmoid(lin)
    sig = F.linear(ag.tensor(np.ones((3, 2), np.float32)),
                   ag.tensor(np.ones((1, 2), np.float32), requires_grad=True),
                   activation="sigmoid")
    assert F._made_by_sigmoid(sig)


def test_bce_fast_path_gradchecks():
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    w = ag.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = ag.tensor(rng.standard_normal(2), requires_grad=True)
    t = ag.tensor(rng.random((5, 2)))
    assert ag.gradcheck(
        lambda x, w, b: F.binary_cross_entropy(F.linear(x, w, b, activation="sigmoid"), t),
        (x, w, b))
    t3 = ag.tensor(rng.random((5, 3)))
    assert ag.gradcheck(lambda x: F.binary_cross_entropy(F.sigmoid(x), t3), (x,))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (3,), (2, 4, 3)])
def test_linear_layer_reads_its_parameters_directly(bias, shape):
    # Linear.forward and Sequential's fused path read the parameter registry, not attributes;
    # a layer without bias (bias a plain None attribute) and one whose bias was set to None
    # later both work, for 1-D, 2-D and batched inputs.
    ag.manual_seed(0)
    lin = nn.Linear(3, 2, bias=bias)
    x = ag.tensor(np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 10)
    expect = x.numpy() @ lin.weight.numpy().T + (lin.bias.numpy() if bias else 0)
    np.testing.assert_allclose(lin(x).numpy(), expect, rtol=1e-6)
    np.testing.assert_allclose(nn.Sequential(lin, nn.Tanh())(x).numpy(), np.tanh(expect),
                               rtol=1e-6)
    if bias:
        lin.bias = None
        np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.weight.numpy().T,
                                   rtol=1e-6)


def test_linear_shape_errors_still_name_the_shapes():
    w = ag.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=r"input of shape \(4, 5\) does not match weight of "
                                         r"shape \(2, 3\)"):
        F.linear(ag.tensor(np.ones((4, 5), np.float32)), w)
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) does not match weight"):
        F.linear(ag.tensor(np.ones((4, 3), np.float32)), w,
                 ag.tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match=r"input of shape \(\) does not match"):
        F.linear(ag.tensor(np.float32(1)), w)
    with pytest.raises(TypeError, match=r"linear: weight and bias must be Tensors .* got "
                                        r"ndarray and NoneType"):
        F.linear(ag.tensor(np.ones((4, 3), np.float32)), np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"got Tensor and list"):
        F.linear(ag.tensor(np.ones((4, 3), np.float32)), w, [1.0, 2.0])


def test_optimizer_step_restores_grad_mode_even_when_the_update_raises():
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = ag.tensor(np.ones(4, np.float32))  # wrong shape
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"SGD: gradient of shape \(4,\) \(float32\) does not "
                                         r"match its parameter \(3,\) \(float32\)"):
        opt.step()
    assert ag.is_grad_enabled()
    with ag.no_grad():
        with pytest.raises(ValueError):
            opt.step()
        assert not ag.is_grad_enabled()
    assert ag.is_grad_enabled()


def test_optimizer_step_bumps_every_updated_parameter_once_and_skips_the_rest():
    a = nn.Parameter(np.ones(3, np.float32))
    b = nn.Parameter(np.ones(2, np.float32))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = ag.tensor(np.ones(3, np.float32))
    va, vb = a._version, b._version
    opt.step()
    assert (a._version, b._version) == (va + 1, vb)
    ag.Tensor._updated_([a, b])
    assert (a._version, b._version) == (va + 2, vb + 1)


def test_engine_counts_and_order_are_keyed_as_documented():
    x = ag.tensor(np.ones(3), requires_grad=True)
    y = x * 2.0
    z = y * y + y  # y's node is consumed by three edges
    counts = count_consumers(z._node)
    assert counts[id(y._node)] == 3
    assert counts[id(z._node)] == 0
    order = topological_order(z._node)
    assert order[0] is z._node and order[-1] is y._node
    assert len(order) == len({id(n) for n in order}) == 3
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (2 * 2.0 + 1) * 2 * np.ones(3))  # dz/dx = (2y + 1) 2


def test_backward_of_a_scalar_seeds_a_one_of_its_dtype_and_shape():
    for dtype in (np.float32, np.float64):
        x = ag.tensor(np.array([[2.0]], dtype), requires_grad=True)
        (x * x).backward()  # one element, shape (1, 1): grad implied
        assert x.grad.dtype == dtype and x.grad.shape == (1, 1)
        assert x.grad.numpy()[0, 0] == 4.0
    with pytest.raises(ValueError, match=r"backward: grad of shape \(2,\) and dtype float32 "
                                         r"does not match"):
        y = ag.tensor(np.ones(3, np.float32), requires_grad=True) * 2.0
        y.backward(np.ones(2, np.float32))


def test_leaves_never_share_a_gradient_array():
    # Add's backward returns one array for both inputs: each leaf must get its own .grad, also
    # when one of them already had a gradient (accumulated out of place).
    a = ag.tensor(np.ones(3), requires_grad=True)
    b = ag.tensor(np.ones(3), requires_grad=True)
    c = ag.tensor(np.ones(3), requires_grad=True)
    b.grad = ag.tensor(np.zeros(3))
    (a + b + c).sum().backward()
    arrays = [a.grad.numpy(), b.grad.numpy(), c.grad.numpy()]
    assert not any(np.shares_memory(u, v) for i, u in enumerate(arrays) for v in arrays[i + 1:])
    a.grad.numpy()[:] = 7
    np.testing.assert_array_equal(c.grad.numpy(), np.ones(3))


def test_provider_switch_reaches_the_optimizer_kernels():
    # The optimizers call the kernels through the thread's provider by name (a recording or
    # create_graph provider may replace it): a wrapper provider sees every update.
    seen = []

    class Spy:
        def __getattr__(self, name):
            fn = getattr(backend.numpy_kernels, name)
            if name in ("sgd_step", "adam_step"):
                def call(*args, **kwargs):
                    seen.append(name)
                    return fn(*args, **kwargs)
                return call
            return fn

    from autograd.grad_mode import state
    p = nn.Parameter(np.ones(2, np.float32))
    p.grad = ag.tensor(np.ones(2, np.float32))
    prev = state.k
    state.k = Spy()
    try:
        optim.SGD([p], lr=0.1).step()
        optim.Adam([p], lr=0.1).step()
    finally:
        state.k = prev
    assert seen == ["sgd_step", "adam_step"]


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_a_backward_inside_a_hook_keeps_its_own_counts_and_callbacks(engine):
    # A hook runs a second backward through part of the same graph: each pass keeps its own
    # pending counts and gradients, and its own final callbacks, run when that pass ends.
    from autograd import hooks
    if engine == "compiled":
        need_compiled_engine()
    events = []
    with backend.use_engine(engine):
        x = ag.tensor(np.array([1.0, 2.0]), requires_grad=True)
        y = x * 2.0
        z = y * 3.0

        def inner(g):
            hooks.queue_callback(lambda: events.append("outer done"))
            w = y.sum()
            w.register_hook(lambda gw: hooks.queue_callback(lambda: events.append("inner done")))
            w.backward(retain_graph=True)  # through y's node, which the outer pass has pending
            events.append("inner returned")

        z.register_hook(inner)
        z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0 + 6.0, 2.0 + 6.0])  # inner + outer
    assert events == ["inner done", "inner returned", "outer done"]
    from autograd.grad_mode import state
    assert state.callbacks is None


# ------------------------------------------------------------------ declared op-table rows
def test_declared_rows_run_the_same_kernels_as_their_declaration_says():
    """A declared forward/backward, called as op.forward/op.backward (create_graph's route) or
    run by the hot path (apply), gives the bits of the kernels it names."""
    from autograd.ops import activation, arith
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32) + 3
    g = rng.standard_normal((3, 4)).astype(np.float32)
    k = backend.k
    assert arith.Mul.forward.declared_kernels == ("mul",)
    assert arith.Mul.backward.declared_kernels == ("mul", "mul")
    assert arith.Add.backward.declared_kernels == ()  # both gradients are g itself
    tx, ty = ag.tensor(x, requires_grad=True), ag.tensor(y, requires_grad=True)
    cases = [(arith.Mul, [k.mul(g, y), k.mul(g, x)]), (arith.Sub, [g, k.neg(g)]),
             (arith.Add, [g, g])]
    for op, expected in cases:
        out = ag.function.apply(op, tx, ty)
        (name,) = op.forward.declared_kernels
        np.testing.assert_array_equal(out.numpy(), getattr(k, name)(x, y))
        grads = op.backward(out._node, g)
        for got, want in zip(grads, expected):
            assert got.tobytes() == want.tobytes()
    for op, name in [(activation.Tanh, "tanh"), (activation.Relu, "relu"),
                     (activation.Sigmoid, "sigmoid")]:
        out = ag.function.apply(op, tx)
        ref = getattr(k, name)(x)
        assert out.numpy().tobytes() == ref.tobytes()
        assert out._node.saved is out._data  # save="output"
        (grad,) = op.backward(out._node, g)
        assert grad.tobytes() == getattr(k, name + "_back")(ref, g).tobytes()
    out = ag.function.apply(arith.Log, ty)
    assert out._node.saved is ty._data  # save="inputs" of a unary op: x itself
    (grad,) = arith.Log.backward(out._node, g)
    assert grad.tobytes() == k.div(g, y).tobytes()


def test_declared_backward_skips_inputs_that_need_no_gradient():
    from autograd.ops import arith
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    c = ag.tensor([3.0, 4.0])
    out = x * c
    assert out._node.needs == (True, False)
    dx, dc = arith.Mul.backward(out._node, np.ones(2, np.float32))
    assert dc is None
    np.testing.assert_array_equal(dx, [3.0, 4.0])


def test_declared_rows_refuse_malformed_declarations():
    from autograd.function import G, OUT, X, kernel_backward, kernel_forward
    with pytest.raises(ValueError, match="save='everything'"):
        kernel_forward("mul", save="everything")
    with pytest.raises(ValueError, match="neither G nor"):
        kernel_backward(("mul", G, "z"))
    with pytest.raises(ValueError, match="neither G nor"):
        kernel_backward("mul")
    with pytest.raises(ValueError, match="inputs or its output, not both"):
        kernel_backward(("mul", X, OUT))
    with pytest.raises(ValueError, match="got 3"):
        kernel_backward(G, G, G)


def test_declared_rows_with_attributes_run_their_kernels():
    """Linear and BCE are declared rows with a keyword attribute: forward and gradient, run by
    apply and the engine or called as op.forward/op.backward, give the named kernels' bits;
    a layer's input that wants no gradient gets no dx (need_dx=False), a frozen bias no db."""
    from autograd.ops import linalg, loss
    k = backend.k
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    g = rng.standard_normal((5, 2)).astype(np.float32)
    assert linalg.Linear.forward.declared_kernels == ("linear",)
    assert linalg.Linear.backward.declared_kernels == ("linear_back",)
    for needs_x in (False, True):
        tx = ag.tensor(x, requires_grad=needs_x)
        tw, tb = ag.tensor(w, requires_grad=True), ag.tensor(b, requires_grad=True)
        out = ag.function.apply(linalg.Linear, tx, tw, tb, activation="tanh")
        ref = k.linear(x, w, b, "tanh")
        assert out.numpy().tobytes() == ref.tobytes()
        assert out._node.saved[:3] == (tx._data, tw._data, tb._data)  # save="inputs+output"
        assert out._node.saved[3] is out._data
        grads = linalg.Linear.backward(out._node, g)
        want = k.linear_back(x, w, ref, g, "tanh", True, needs_x)
        assert (grads[0] is None) == (not needs_x)
        for got, exp in zip(grads, want):
            assert (got is None and exp is None) or got.tobytes() == exp.tobytes()
    # no bias and a frozen weight: two gradients, dx the kernel's; the default activation
    tx = ag.tensor(x, requires_grad=True)
    out = ag.function.apply(linalg.Linear, tx, ag.tensor(w))
    assert out.numpy().tobytes() == k.linear(x, w, None, None).tobytes()
    grads = linalg.Linear.backward(out._node, g)
    assert len(grads) == 2
    assert grads[0].tobytes() == k.linear_back(x, w, out._data, g, None, False)[0].tobytes()
    (gx,) = ag.grad(ag.function.apply(linalg.Linear, tx, ag.tensor(w)).sum(), [tx])
    assert gx.numpy().tobytes() == k.linear_back(x, w, out._data, np.ones_like(g), None,
                                                 False)[0].tobytes()
    with pytest.raises(TypeError, match=r"linear\(\) got an unexpected keyword argument 'act'"):
        ag.function.apply(linalg.Linear, tx, ag.tensor(w), act="tanh")
    # BCE: the target's gradient (a written function) only when the target wants one
    p = ag.tensor(rng.uniform(0.1, 0.9, (4, 1)).astype(np.float32), requires_grad=True)
    t = ag.tensor(rng.uniform(0, 1, (4, 1)).astype(np.float32))
    gl = np.float32(1.5) * np.ones((), np.float32)
    for reduction in ("mean", "sum", "none"):
        out = ag.function.apply(loss.BinaryCrossEntropy, p, t, reduction=reduction)
        assert out.numpy().tobytes() == k.bce(p._data, t._data, reduction).tobytes()
        gr = gl if reduction != "none" else np.ones((4, 1), np.float32)
        dp, dt = loss.BinaryCrossEntropy.backward(out._node, gr)
        assert dt is None
        assert dp.tobytes() == k.bce_back(p._data, t._data, gr, reduction).tobytes()
    out = ag.function.apply(loss.BinaryCrossEntropy, p, t)  # reduction's default: "mean"
    assert out.numpy().tobytes() == k.bce(p._data, t._data, "mean").tobytes()


def test_declared_attribute_rows_refuse_malformed_declarations():
    from autograd.function import G, OUT, X, Y, kernel_backward, kernel_forward, wants
    with pytest.raises(ValueError, match="attribute 'x' has a symbol's name"):
        kernel_forward("linear", attrs={"x": None})
    with pytest.raises(ValueError, match="argument 'activation' is neither"):
        kernel_backward(joint=("linear_back", X, Y, OUT, G, "activation"))  # not declared
    with pytest.raises(ValueError, match="joint= declares every gradient"):
        kernel_backward(G, joint=("linear_back", X, Y, OUT, G))
    with pytest.raises(ValueError, match="inputs or its output, not both"):
        kernel_backward(joint=("linear_back", X, Y, OUT, G))  # without save="inputs+output"
    with pytest.raises(ValueError, match=r"wants\(-1\)"):
        wants(-1)
    with pytest.raises(ValueError, match="save='inputs\\+outputs'"):
        kernel_backward(joint=("linear_back", X, Y, OUT, G), save="inputs+outputs")


def test_sequential_fused_layers_share_their_parameters_dict_unchanged():
    """Sequential's fused steps hand apply_to a {"activation": ...} made once per step: every
    node of that layer shares it, so nothing may change it (BCE's sigmoid test reads it)."""
    ag.manual_seed(0)
    seq = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1), nn.Sigmoid())
    x = ag.tensor(np.ones((4, 2), np.float32))
    outs = [seq(x) for _ in range(3)]  # the first through functional.linear, which checks
    params = [o._node.params for o in outs]
    assert all(p == {"activation": "sigmoid"} for p in params) and params[1] is params[2]
    y = ag.tensor(np.ones((4, 1), np.float32))
    F.binary_cross_entropy(outs[2], y).backward()  # the fast path: made by a fused sigmoid
    assert params[2] == {"activation": "sigmoid"}


def test_declared_forward_saves_nothing_when_nothing_is_recorded():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    with ag.no_grad():
        out = x * x
    assert out._node is None and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), [1.0, 4.0])


# ------------------------------------------------------------------ the XOR step's shortcuts
def test_sequential_replans_when_its_children_or_fuse_change():
    # Sequential plans which Linear + activation pairs fuse once, for the children it has; a
    # child replaced, added or removed by any route (even straight in the registry), or fuse
    # switched, is seen at the next call, and every plan gives the unfused layers' values.
    ag.manual_seed(0)
    x = ag.tensor(np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2))
    seq = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1), nn.Sigmoid())
    l1, l2 = seq[0], seq[2]

    def unfused(*mods):
        out = x
        for m in mods:
            out = m(out)
        return out.numpy()
    assert seq(x)._node.op.name == "linear"
    np.testing.assert_allclose(seq(x).numpy(), unfused(l1, nn.Tanh(), l2, nn.Sigmoid()),
                               rtol=1e-6)
    seq._modules["1"] = nn.ReLU()  # replaced behind Module's back
    np.testing.assert_allclose(seq(x).numpy(), unfused(l1, nn.ReLU(), l2, nn.Sigmoid()),
                               rtol=1e-6)
    del seq._modules["3"]
    out = seq(x)
    assert out._node.op.name == "linear" and out._node.params["activation"] is None
    seq.append(nn.Tanh())
    assert seq(x)._node.params["activation"] == "tanh"
    seq.fuse = False
    assert seq(x)._node.op.name == "tanh"
    np.testing.assert_allclose(seq(x).numpy(), unfused(l1, nn.ReLU(), l2, nn.Tanh()),
                               rtol=1e-6)
    seq.fuse = True
    l2.weight = nn.Parameter(np.zeros((1, 3), np.float32))  # a parameter replaced
    np.testing.assert_allclose(seq(x).numpy(), np.tanh(l2.bias.numpy()) * np.ones((4, 1)),
                               rtol=1e-6)


def test_module_call_passes_every_argument_and_keyword_on():
    class Two(nn.Module):
        def forward(self, a, b=1.0, *, scale=1.0):
            return (a + b) * scale

    m = Two()
    x = ag.tensor([1.0, 2.0])
    np.testing.assert_array_equal(m(x).numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(m(x, 2.0).numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(m(x, scale=2.0).numpy(), [4.0, 6.0])
    np.testing.assert_array_equal(m(a=x, b=0.0).numpy(), [1.0, 2.0])
    with pytest.raises(TypeError):
        m()


def test_optimizer_step_runs_a_custom_update_without_grad_and_a_closure_with_it():
    # SGD's and Adam's updates only call kernels, so their step leaves the grad-mode flag
    # alone; any other _update runs under no_grad (as PyTorch's step), the closure with grad.
    seen = []

    class Logged(optim.SGD):
        def _update(self, group, params, arrays, grads):
            seen.append(("update", ag.is_grad_enabled(), len(params), len(arrays), len(grads)))
            super()._update(group, params, arrays, grads)

    a = nn.Parameter(np.ones(2, np.float32))
    b = nn.Parameter(np.ones(3, np.float32))

    def closure():
        seen.append(("closure", ag.is_grad_enabled()))
        a.grad = ag.tensor(np.full(2, 0.5, np.float32))
        return 7.0

    opt = Logged([a, b], lr=0.1)  # b has no gradient: skipped, not handed to _update
    with ag.no_grad():
        assert opt.step(closure) == 7.0
    assert seen == [("closure", True), ("update", False, 1, 1, 1)]
    np.testing.assert_allclose(a.numpy(), np.full(2, 0.95, np.float32), rtol=1e-6)
    np.testing.assert_array_equal(b.numpy(), np.ones(3, np.float32))
    assert type(opt)._update not in optim.optimizer.KERNEL_ONLY_UPDATES
    assert optim.SGD._update in optim.optimizer.KERNEL_ONLY_UPDATES


def test_optimizer_live_calls_name_what_a_compiled_replay_runs():
    from autograd.optim.optimizer import Optimizer, _step, _zero_grad
    assert Optimizer.step.__wrapped_live__ is _step
    assert Optimizer.zero_grad.__wrapped_live__ is _zero_grad
    p = nn.Parameter(np.ones(2, np.float32))
    p.grad = ag.tensor(np.ones(2, np.float32))
    opt = optim.SGD([p], lr=0.5)
    _zero_grad(opt, set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    p.grad = ag.tensor(np.ones(2, np.float32))
    assert _step(opt) is None
    np.testing.assert_array_equal(p.numpy(), [0.5, 0.5])
    opt.zero_grad()
    assert p.grad is None


def test_bce_shortcut_leaves_every_other_call_to_the_checks():
    # The direct path is for a recorded sigmoid output with a target of its dtype and shape;
    # any other call still gets the general path's warnings and errors.
    ag.manual_seed(0)
    model = _xor_model(True)
    p = model(ag.tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)))
    with pytest.warns(UserWarning, match="target shape \\(4,\\) differs from input shape"):
        F.binary_cross_entropy(p, ag.tensor(np.zeros(4, np.float32)))
    with pytest.raises(TypeError, match="target dtype float64 differs from input dtype float32"):
        F.binary_cross_entropy(p, ag.tensor(np.zeros((4, 1))))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.binary_cross_entropy(p, ag.tensor(np.zeros((4, 1), np.float32)), reduction="avg")
    y = np.array([[0], [1], [1], [0]], np.float32)
    total = F.binary_cross_entropy(p, ag.tensor(y), reduction="sum")
    each = F.binary_cross_entropy(p, ag.tensor(y), reduction="none")
    assert each.shape == (4, 1)
    np.testing.assert_allclose(total.numpy(), each.numpy().sum(), rtol=1e-6)
    # a list target takes the general path and gives the same loss
    np.testing.assert_array_equal(F.binary_cross_entropy(p, y.tolist()).numpy(),
                                  F.binary_cross_entropy(p, ag.tensor(y)).numpy())


def test_unnamed_walks_match_the_named_ones():
    # parameters(), buffers() and modules() skip building dotted names, but list the same
    # objects in the same order, shared ones once, and stay generators (autograd.compile
    # takes a generator argument of a live call as a list).
    import types
    shared = nn.Linear(3, 3)
    inner = nn.Sequential(shared, nn.BatchNorm1d(3), nn.Tanh())
    model = nn.Sequential(nn.Linear(2, 3), inner, shared, nn.Residual(inner), nn.Linear(3, 1))
    model[4].bias = None
    for walk, named in ((model.parameters, model.named_parameters),
                        (model.buffers, model.named_buffers),
                        (model.modules, model.named_modules)):
        assert isinstance(walk(), types.GeneratorType)
        assert [id(t) for t in walk()] == [id(t) for _, t in named()]
    assert [id(p) for p in model.parameters(recurse=False)] == []
    assert [id(p) for p in shared.parameters(recurse=False)] == [id(shared.weight),
                                                                 id(shared.bias)]
    for p in model.parameters():
        p.grad = ag.tensor(np.ones(p.shape, p.dtype))
    model.zero_grad()
    assert all(p.grad is None for _, p in model.named_parameters())


def test_sequential_rechecks_a_layer_whose_parameters_or_input_changed():
    # Once functional.linear has accepted a fused layer's weight and bias, Sequential sends a
    # 2-D input of the same width straight to the op; a replaced parameter or array, or an
    # input of another shape or type, goes through functional.linear's checks again.
    ag.manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Sigmoid())
    x = ag.tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
    first = seq(x).numpy()
    ref = F.linear(F.linear(x, seq[0].weight, seq[0].bias, activation="tanh"),
                   seq[2].weight, seq[2].bias, activation="sigmoid")
    again = seq(x)  # the accepted path
    assert again.numpy().tobytes() == first.tobytes() == ref.numpy().tobytes()
    assert again._node.params == {"activation": "sigmoid"} and len(again._node.inputs) == 3
    np.testing.assert_array_equal(seq(x.numpy()).numpy(), first)  # an array: checked path
    np.testing.assert_allclose(seq(x[0]).numpy(), first[0], rtol=1e-6)  # 1-D input
    with pytest.raises(ValueError, match=r"linear: input of shape \(5, 2\) does not match "
                                         r"weight of shape \(4, 3\)"):
        seq(ag.tensor(np.ones((5, 2), np.float32)))
    with ag.no_grad():  # a weight array replaced by one of another width
        seq[0].weight._update_(array=np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"input of shape \(5, 3\) does not match weight of "
                                         r"shape \(4, 2\)"):
        seq(x)
    seq[0].weight = nn.Parameter(np.zeros((4, 3), np.float32))  # a parameter replaced
    np.testing.assert_allclose(seq(x).numpy()[:, 0], seq(x).numpy()[0, 0], rtol=1e-6)
    seq[2].bias = None
    out = seq(x)
    assert len(out._node.inputs) == 2
    seq[2].bias = nn.Parameter(np.zeros(3, np.float32))  # a bias of the wrong shape
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) does not match weight"):
        seq(x)
