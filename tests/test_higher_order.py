"""grad(), create_graph, gradgradcheck and the transforms, without PyTorch (its parity tests are
in test_higher_order_torch.py): PyTorch's semantics of grad's arguments and errors, derivatives
of known functions to third order, the differentiable kernel provider's contract, and costs."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import autograd as ag
from autograd import backend, gradients
from autograd import functional as F
from autograd.backend import tensor_kernels
from autograd.errors import AnomalyError, FreedGraphError, GradcheckError, InplaceModificationError
from autograd.function import REGISTRY, Op, apply
from autograd.ops import shape as shape_ops


def t64(a, grad=True):
    return ag.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# --------------------------------------------------------------------------------------------
# Derivatives of known functions, to third order
# --------------------------------------------------------------------------------------------

def test_third_derivative_of_a_polynomial_and_exp(backend_name):
    x = t64([0.5, -1.5, 2.0])
    y = (x ** 3 * x.exp()).sum()  # d/dx = (3x^2 + x^3) e^x, and so on
    (g1,) = ag.grad(y, x, create_graph=True)
    (g2,) = ag.grad(g1.sum(), x, create_graph=True)
    (g3,) = ag.grad(g2.sum(), x)
    v, e = x.numpy(), np.exp(x.numpy())
    np.testing.assert_allclose(g1.numpy(), (3 * v**2 + v**3) * e, rtol=1e-12)
    np.testing.assert_allclose(g2.numpy(), (6 * v + 6 * v**2 + v**3) * e, rtol=1e-12)
    np.testing.assert_allclose(g3.numpy(), (6 + 18 * v + 9 * v**2 + v**3) * e, rtol=1e-12)
    assert g3.requires_grad is False  # create_graph=False: a plain result


def test_second_derivative_through_fused_linear_and_cross_entropy(backend_name):
    rng = np.random.default_rng(0)
    x = t64(rng.standard_normal((4, 3)))
    w = t64(rng.standard_normal((5, 3)))
    b = t64(rng.standard_normal(5))
    target = np.array([0, 4, 2, 1])

    def f(x, w, b):
        return F.cross_entropy(F.linear(x, w, b, activation="tanh"), target)
    assert ag.gradgradcheck(f, [x, w, b])


def test_gradient_of_a_linear_function_is_constant():
    x = t64([1.0, 2.0])
    (g,) = ag.grad((x * 3.0).sum(), x, create_graph=True)
    np.testing.assert_array_equal(g.numpy(), [3.0, 3.0])
    assert not g.requires_grad  # as in PyTorch: nothing left to differentiate
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        ag.grad(g.sum(), x)


def test_float32_keeps_its_dtype_through_second_order():
    x = ag.tensor(np.array([0.3, 0.7], dtype=np.float32), requires_grad=True)
    (g,) = ag.grad(x.tanh().sum(), x, create_graph=True)
    (h,) = ag.grad(g.sum(), x)
    assert g.dtype == np.float32 and h.dtype == np.float32
    t = np.tanh(x.numpy().astype(np.float64))
    np.testing.assert_allclose(h.numpy(), -2 * t * (1 - t * t), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# grad(): PyTorch's arguments and errors
# --------------------------------------------------------------------------------------------

def test_grad_leaves_dot_grad_alone_and_returns_a_tuple():
    x = t64([1.0, 2.0])
    result = ag.grad((x * x).sum(), x)
    assert isinstance(result, tuple) and len(result) == 1
    np.testing.assert_array_equal(result[0].numpy(), [2.0, 4.0])
    assert x.grad is None


def test_allow_unused_gives_none_and_materialize_gives_zeros():
    x, z = t64([1.0]), t64([5.0, 6.0])
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph. Set "
                                           "allow_unused=True"):
        ag.grad(y, [x, z], retain_graph=True)
    gx, gz = ag.grad(y, [x, z], allow_unused=True, retain_graph=True)
    assert gz is None and gx.numpy().tolist() == [2.0]
    gx, gz = ag.grad(y, [x, z], materialize_grads=True)
    assert gz.numpy().tolist() == [0.0, 0.0]


def test_input_that_does_not_require_grad_is_an_error():
    x, c = t64([1.0]), t64([2.0], grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        ag.grad((x * c).sum(), [x, c])


def test_output_errors_name_the_problem():
    x = t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        ag.grad(t64([1.0], grad=False).sum(), x)
    y = x * 2
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        ag.grad(y, x)
    with pytest.raises(RuntimeError, match=r"mismatch in shape: grad_output\[0\] has a shape of "
                                           r"\(3,\) and output\[0\] has a shape of \(2,\)"):
        ag.grad(y, x, grad_outputs=np.ones(3))
    with pytest.raises(RuntimeError, match="got 1 outputs but 2 grad_outputs"):
        ag.grad(y, x, grad_outputs=[np.ones(2), np.ones(2)])


def test_grad_with_respect_to_an_intermediate_and_several_outputs():
    x = t64([1.0, 2.0])
    h = x * x
    y1, y2 = (h * 3.0).sum(), h.exp().sum()
    gh, gx = ag.grad([y1, y2], [h, x])
    np.testing.assert_allclose(gh.numpy(), 3 + np.exp([1.0, 4.0]))
    np.testing.assert_allclose(gx.numpy(), gh.numpy() * 2 * x.numpy())
    (same,) = ag.grad(h, h, grad_outputs=np.array([5.0, 7.0]))  # the cotangent itself
    assert same.numpy().tolist() == [5.0, 7.0]


def test_retain_graph_defaults_to_create_graph():
    x = t64([0.5])
    y = x.exp().sum()
    ag.grad(y, x)
    with pytest.raises(FreedGraphError):
        ag.grad(y, x)
    y = x.exp().sum()
    ag.grad(y, x, create_graph=True)
    ag.grad(y, x)  # the first call retained the graph


def test_only_the_path_to_the_inputs_runs():
    a, b = t64([1.0]), t64([2.0])
    pa, pb = a.exp(), b.exp()
    y = (pa + pb).sum()
    ag.grad(y, a)
    assert pa._node.freed and not pb._node.freed  # b's branch was never visited


def test_backward_create_graph_records_dot_grad():
    x = t64([0.5, 1.5])
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    np.testing.assert_allclose(x.grad.numpy(), 3 * x.numpy() ** 2)
    g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def test_backward_inputs_limits_accumulation(engine_name):
    a, b = t64([1.0]), t64([2.0])
    (a * b).sum().backward(inputs=[a])
    assert a.grad.numpy().tolist() == [2.0] and b.grad is None
    (a * b).sum().backward(inputs=[a])
    assert a.grad.numpy().tolist() == [4.0]  # accumulates as backward() does


def test_in_place_change_after_forward_is_refused_by_create_graph():
    x = t64([1.0, 2.0])
    w = t64([3.0, 4.0])
    y = (x * w).exp().sum()
    with ag.no_grad():
        w.add_(1.0)
    with pytest.raises(InplaceModificationError):
        ag.grad(y, x, create_graph=True)


def test_detect_anomaly_names_the_op_in_a_recorded_backward():
    x = t64([0.0, 1.0])
    with ag.detect_anomaly():
        y = x.sqrt().sum()  # d sqrt / dx at 0 is inf
        with pytest.raises(AnomalyError, match="sqrt: backward produced NaN or inf"):
            ag.grad(y, x, create_graph=True)


def test_gradient_penalty_then_plain_backward_on_both_engines(engine_name):
    rng = np.random.default_rng(1)
    w = t64(rng.standard_normal((3, 4)))
    x = t64(rng.standard_normal((5, 4)))
    out = F.linear(x, w, activation="tanh").sum()
    (gx,) = ag.grad(out, x, create_graph=True)
    penalty = ((gx * gx).sum(axis=1).sqrt() - 1.0) ** 2
    penalty.mean().backward()  # the compiled or Python engine, through the recorded graph
    assert w.grad is not None and w.grad.shape == (3, 4)

    def loss(w):
        (g,) = ag.grad(F.linear(x, w, activation="tanh").sum(), x, create_graph=True)
        return (((g * g).sum(axis=1).sqrt() - 1.0) ** 2).mean()
    ag.gradcheck(loss, [w])


def test_create_graph_in_one_thread_while_another_trains():
    """The differentiable provider is installed process-wide while a recorded backward runs;
    ordinary ops in other threads must still get exactly the array kernels' results."""
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((8, 4))
    w0 = rng.standard_normal((3, 4))

    def plain_grad():
        w = t64(w0)
        F.linear(t64(xs, grad=False), w, activation="sigmoid").sum().backward()
        return w.grad.numpy().copy()

    expected = plain_grad()
    errors: list = []
    stop = threading.Event()

    def worker():
        try:
            while not stop.is_set():
                np.testing.assert_array_equal(plain_grad(), expected)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    th = threading.Thread(target=worker)
    th.start()
    try:
        for _ in range(30):
            x = t64(xs)
            (g,) = ag.grad(F.linear(x, t64(w0), activation="sigmoid").sum(), x,
                           create_graph=True)
            ag.grad((g * g).sum(), x)
    finally:
        stop.set()
        th.join()
    assert not errors, errors[0]
    assert backend.k is not tensor_kernels  # uninstalled afterwards


# --------------------------------------------------------------------------------------------
# The differentiable kernel provider
# --------------------------------------------------------------------------------------------

def test_tensor_kernels_fall_through_on_arrays():
    a = np.array([1.0, -2.0])
    with tensor_kernels.installed():
        assert backend.k is tensor_kernels
        np.testing.assert_array_equal(backend.k.mul(a, a), [1.0, 4.0])
        assert isinstance(backend.k.relu(a), np.ndarray)
        assert isinstance(backend.k.mul(ag.tensor(a), a), ag.Tensor)
        # a comparison is a constant mask, an array even for Tensor operands
        mask = backend.k.compare(ag.tensor(a), 0.0, "gt")
        assert isinstance(mask, np.ndarray) and mask.tolist() == [True, False]
    assert backend.k is not tensor_kernels


def test_a_kernel_without_a_differentiable_form_is_named():
    with pytest.raises(NotImplementedError, match="kernel 'no_such_kernel' has no "
                                                  "differentiable form.*tensor_kernels.py"):
        tensor_kernels.no_such_kernel(ag.tensor([1.0]))


def test_every_kernel_the_op_table_calls_has_a_differentiable_form():
    """Scan the op table's sources for B.k.<name> and getattr(B.k, ...) kernel families."""
    import inspect
    import re

    from autograd import ops
    names = set()
    for module in (ops.activation, ops.arith, ops.linalg, ops.loss, ops.reduce, ops.shape):
        src = inspect.getsource(module)
        names |= set(re.findall(r"B\.k\.(\w+)", src))
        for op in vars(module).values():
            if isinstance(op, type) and issubclass(op, Op):
                for part in (op.forward, op.backward):  # declared rows name their kernels
                    names.update(getattr(part, "declared_kernels", ()))
            kernel = getattr(op, "kernel", "")
            if isinstance(op, type) and issubclass(op, Op) and kernel:
                names.add(kernel)
                if any('kernel + "_back"' in inspect.getsource(base)
                       for base in op.__mro__ if base.__module__ == module.__name__):
                    names.add(kernel + "_back")
    names.add("sum_to")  # the engine's
    missing = [n for n in sorted(names) if not hasattr(getattr(tensor_kernels, n), "__wrapped__")]
    assert missing == []


def test_index_add_is_differentiable_to_second_order(backend_name):
    """The private adjoint of getitem, which records getitem's gradient."""
    g = t64(np.arange(3.0) + 1)
    index = (np.array([0, 2, 0]), np.array([1, 1, 1]))
    assert "index_add" not in REGISTRY

    def scatter(g):
        return apply(shape_ops._IndexAdd, g, shape=(3, 2), index=index) ** 2
    out = scatter(g)
    np.testing.assert_array_equal(out.numpy(), [[0, 16], [0, 0], [0, 4]])
    assert ag.gradcheck(scatter, [g])
    assert ag.gradgradcheck(scatter, [g])


class _CubeWithConstantDerivative(Op):
    """A deliberately wrong op (private, unregistered): its gradient reads the raw array, so
    create_graph sees a constant and the second derivative is lost."""

    @staticmethod
    def forward(ctx, x):
        ctx.saved = x
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        x = ctx.saved
        raw = x._data if isinstance(x, ag.Tensor) else x
        return (backend.k.mul(g, 3 * raw * raw),)


def test_gradgradcheck_catches_a_wrong_second_derivative():
    x = t64([0.5, 1.5])
    assert ag.gradcheck(lambda x: apply(_CubeWithConstantDerivative, x), [x])
    with pytest.raises(GradcheckError):
        ag.gradgradcheck(lambda x: apply(_CubeWithConstantDerivative, x), [x])


# --------------------------------------------------------------------------------------------
# Transforms (values checked against closed forms; PyTorch parity in the torch test file)
# --------------------------------------------------------------------------------------------

def test_jacobian_of_a_linear_map_is_its_matrix():
    m = np.random.default_rng(3).standard_normal((4, 3))
    x = t64(np.ones(3), grad=False)
    for strategy in ("reverse-mode", "forward-mode"):
        j = ag.jacobian(lambda v: ag.tensor(m) @ v, x, strategy=strategy)
        np.testing.assert_allclose(j.numpy(), m, rtol=1e-14)
    jac = ag.jacobian(lambda a, b: (a * b, a.sum()), (t64([1.0, 2.0]), t64([3.0, 4.0])))
    assert [[t.shape for t in row] for row in jac] == [[(2, 2), (2, 2)], [(2,), (2,)]]
    np.testing.assert_array_equal(jac[0][1].numpy(), np.diag([1.0, 2.0]))


def test_hvp_vhp_jvp_vjp_agree_with_the_full_matrices():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 3))

    def f(x):
        return (ag.tensor(a) @ x).tanh().sum() + (x ** 4).sum()
    x = t64(rng.standard_normal(3), grad=False)
    v = t64(rng.standard_normal(3), grad=False)
    h = ag.hessian(f, x).numpy()
    np.testing.assert_allclose(h, h.T, rtol=1e-12)
    _, hv = ag.hvp(f, x, v)
    _, vh = ag.vhp(f, x, v)
    np.testing.assert_allclose(hv.numpy(), h @ v.numpy(), rtol=1e-10)
    np.testing.assert_allclose(vh.numpy(), v.numpy() @ h, rtol=1e-10)

    def g(x):
        return (ag.tensor(a) @ x).sigmoid()
    j = ag.jacobian(g, x).numpy()
    out, jv = ag.jvp(g, x, v)
    _, vj = ag.vjp(g, x, v)
    np.testing.assert_allclose(jv.numpy(), j @ v.numpy(), rtol=1e-10)
    np.testing.assert_allclose(vj.numpy(), v.numpy() @ j, rtol=1e-10)
    assert not out.requires_grad and x.grad is None


def test_hvp_costs_two_backward_passes_not_a_hessian(monkeypatch):
    calls = []
    real = gradients.run
    monkeypatch.setattr(gradients, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    params = t64(np.random.default_rng(5).standard_normal(200), grad=False)
    ag.hvp(lambda p: (p.tanh() ** 2).sum(), params, t64(np.ones(200), grad=False))
    assert len(calls) == 2  # a Hessian would take 200 more


def test_transforms_strict_mode_and_unused_inputs():
    x, z = t64([1.0, 2.0], grad=False), t64([3.0], grad=False)
    _, (gx, gz) = ag.vjp(lambda x, z: (x * 2).sum(), (x, z))
    assert gz.numpy().tolist() == [0.0]
    with pytest.raises(RuntimeError, match="independent of input 1.*strict"):
        ag.vjp(lambda x, z: (x * 2).sum(), (x, z), strict=True)
    with pytest.raises(RuntimeError, match="v can only be None"):
        ag.vjp(lambda x: x * 2, x)


def test_transforms_with_create_graph_stay_differentiable():
    x = t64([0.5, 1.0])
    v = t64([1.0, 0.0], grad=False)
    _, hv = ag.hvp(lambda x: (x ** 3).sum(), x, v, create_graph=True)
    (d,) = ag.grad(hv.sum(), x)  # d/dx of 6 x0: [6, 0]
    np.testing.assert_allclose(d.numpy(), [6.0, 0.0])


def test_queue_callback_from_a_hook_runs_when_grad_returns():
    from autograd.hooks import queue_callback
    x = t64([1.0, 2.0])
    h = x * 2
    done = []
    h.register_hook(lambda g: queue_callback(lambda: done.append(True)))
    ag.grad((h * h).sum(), x, create_graph=True)
    assert done == [True]
