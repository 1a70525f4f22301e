"""The backward engine, on both engines (plain Python and Cython-compiled): graph shapes, long
chains, accumulation, grad modes, freed graphs, the version counter, leaks and anomaly mode."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import autograd
from autograd.engine import topological_order
from autograd.function import Node, Op, apply


def _leaf(values, dtype=np.float64):
    return autograd.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# -------------------------------------------------------------------------------- graph shapes

def test_tensor_used_twice_in_one_op_sums_both_gradients(engine_name):
    x = _leaf([1.0, -2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_same_array_for_two_inputs_is_not_shared_with_the_leaf(engine_name):
    x = _leaf([1.0, 2.0])
    u = np.ones(2)
    (x + x).backward(u)  # Add returns the one upstream array for both inputs
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    u[:] = 100.0  # the caller's cotangent must not alias the leaf's gradient
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_diamond_graph_sums_the_paths(engine_name):
    x = _leaf([0.5, -1.5])
    a = x * 2.0
    b = a + 1.0
    c = a * 3.0
    d = (b * c).sum()  # d = (2x + 1) * 6x = 12x^2 + 6x
    d.backward()
    np.testing.assert_allclose(x.grad.numpy(), 24 * x.numpy() + 6)
    assert a.grad is None and b.grad is None, "only leaves keep .grad"


def test_reused_intermediate_and_broadcast_leaf(engine_name):
    x = _leaf(np.arange(6.0).reshape(2, 3))
    b = _leaf([1.0, 2.0, 3.0])
    h = x * b  # b broadcast over the rows
    loss = (h * h + h).sum()
    loss.backward()
    dh = 2 * (x.numpy() * b.numpy()) + 1
    np.testing.assert_allclose(x.grad.numpy(), dh * b.numpy())
    np.testing.assert_allclose(b.grad.numpy(), (dh * x.numpy()).sum(axis=0))
    assert b.grad.shape == (3,)


def test_chain_of_100_000_ops_needs_no_recursion(engine_name):
    x = _leaf([1.5])
    y = x
    for _ in range(100_000):
        y = -y
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0])
    del y  # freeing the chain must not recurse either


# The engine follows a chain (each node run so far had at most one input made by a node)
# without counting consumers, and counts them from the first node with two such inputs on.
# These graphs sit on that boundary: the nodes must run in topological_order's order (the
# counted walk's), so every node's gradient is complete when it runs and leaves sum their
# gradients in one order on both engines.

class _Logged(Op):
    """Identity (private, unregistered) whose backward logs its ``label``; ``drop=True`` makes
    it return no gradient for its input."""

    log: list = []

    @staticmethod
    def forward(ctx, x, label, drop=False):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        _Logged.log.append(ctx.params["label"])
        return (None if ctx.params["drop"] else g,)


def _tag(t, label, drop=False):
    return apply(_Logged, t, label=label, drop=drop)


def _run_logged(root, grad):
    """Backward from ``root``; returns (labels in the order their nodes ran, the labels of
    topological_order, taken before)."""
    expected = [n.params["label"] for n in topological_order(root._node)
                if n.op is _Logged]
    _Logged.log = []
    root.backward(grad)
    return _Logged.log, expected


def test_a_chain_runs_top_down(engine_name):
    x = _leaf([1.0, -2.0])
    w = _leaf([3.0, 0.5])
    y = _tag(_tag(_tag(x, "a") * w, "b"), "c")  # a chain: mul's other input is a leaf
    ran, expected = _run_logged(y, np.array([1.0, 2.0]))
    assert ran == expected == ["c", "b", "a"]
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 1.0])
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, -4.0])


def test_a_chain_that_forks_below_its_top(engine_name):
    x = _leaf([0.5, 1.5])
    a = _tag(x, "a")
    d = _tag(_tag(a, "b") + _tag(a, "c"), "top")  # a is consumed by two nodes
    ran, expected = _run_logged(d, np.array([1.0, 10.0]))
    assert ran == expected
    assert ran.index("a") > max(ran.index("b"), ran.index("c")), \
        "a ran before both of its consumers delivered"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0])


def test_an_input_consumed_again_further_down_the_chain(engine_name):
    x = _leaf([0.5, -3.0])
    a = _tag(x, "a")
    c = _tag(_tag(a, "b") * a, "top")  # a feeds b and, further up, the product
    ran, expected = _run_logged(c, np.ones(2))
    assert ran == expected and ran[-1] == "a"
    np.testing.assert_array_equal(x.grad.numpy(), 2 * x.numpy())


def test_one_intermediate_used_twice_by_one_node(engine_name):
    x = _leaf([1.0, -2.0, 3.0])
    h = _tag(x, "h")
    y = _tag(h * h, "top")  # two edges from one node: h's gradient is their sum
    ran, expected = _run_logged(y, np.ones(3))
    assert ran == expected == ["top", "h"]
    np.testing.assert_array_equal(x.grad.numpy(), 2 * x.numpy())


def test_the_second_input_made_by_a_node_comes_after_a_leaf(engine_name):
    x = _leaf([[1.0, 2.0]])
    w = _leaf([[0.5, -1.0], [2.0, 1.0], [0.0, 3.0]])
    bias = _leaf([1.0, 2.0, 3.0])
    y = _tag(autograd.functional.linear(_tag(x, "x"), w, _tag(bias, "b")), "top")
    ran, expected = _run_logged(y, np.array([[1.0, 2.0, 3.0]]))
    assert ran == expected and ran[0] == "top" and set(ran[1:]) == {"x", "b"}
    np.testing.assert_array_equal(bias.grad.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.grad.numpy(), [[4.5, 10.0]])
    np.testing.assert_array_equal(w.grad.numpy(), [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])


def test_a_chain_cut_by_a_missing_gradient_frees_the_rest_unrun(engine_name):
    x = _leaf([1.0, 2.0])
    a = _tag(x, "a")
    y = _tag(_tag(a, "b", drop=True), "c")
    ran, _ = _run_logged(y, np.ones(2))
    assert ran == ["c", "b"], "a node that no gradient reaches must not run"
    assert x.grad is None
    assert a._node.freed, "the unrun node's saved arrays are released all the same"


class _HandsBack(Op):
    """Identity (private, unregistered) whose backward returns, per ``kind``, an array of its
    own, a view, a read-only array owning its memory, or a read-only broadcast (kept in
    ``returned``)."""

    returned: list = []

    @staticmethod
    def forward(ctx, x, kind):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        kind = ctx.params["kind"]
        if kind == "own":
            out = g * 1.0
        elif kind == "view":
            out = np.concatenate([g, g])[: g.shape[0]]
        elif kind == "read-only":
            out = g * 1.0
            out.flags.writeable = False
        else:
            out = np.broadcast_to(g[:1], g.shape)
        _HandsBack.returned.append(out)
        return (out,)


@pytest.mark.parametrize("kind", ["own", "view", "read-only", "broadcast"])
def test_a_leaf_keeps_its_first_gradient_only_if_it_owns_it(engine_name, kind):
    x = _leaf([1.0, 2.0, 3.0])
    _HandsBack.returned = []
    apply(_HandsBack, x, kind=kind).backward(np.array([5.0, 5.0, 5.0]))
    (out,) = _HandsBack.returned
    kept = x.grad.numpy()
    np.testing.assert_array_equal(kept, [5.0, 5.0, 5.0])
    if kind == "own":  # an array nobody else holds is kept as it is, not copied
        assert kept is out
    else:
        assert not np.shares_memory(kept, out) and kept.flags.writeable
        assert kept.base is None


def test_detach_stops_the_gradient(engine_name):
    x = _leaf([2.0])
    (x * x.detach()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0])


# -------------------------------------------------------------------------------- accumulation

def test_gradients_accumulate_across_backward_calls_until_cleared(engine_name):
    p = _leaf([1.0, 2.0])
    (p * 3.0).sum().backward()
    (p * 3.0).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [6.0, 6.0])
    p.grad = None
    (p * 3.0).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 3.0])


def test_backward_with_explicit_cotangent(engine_name):
    x = _leaf([1.0, 2.0, 3.0])
    (x * x).backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, -6.0])


# -------------------------------------------------------------------------------- grad modes

def test_no_grad_context_records_nothing(engine_name):
    x = _leaf([1.0])
    with autograd.no_grad():
        assert not autograd.is_grad_enabled()
        y = x * 2.0
        with autograd.enable_grad():
            assert autograd.is_grad_enabled()
            z = x * 2.0
    assert autograd.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf


def test_no_grad_and_enable_grad_as_decorators(engine_name):
    x = _leaf([1.0])

    @autograd.no_grad()
    def frozen(t):
        return t * 2.0

    @autograd.enable_grad()
    def tracked(t):
        return t * 2.0

    assert not frozen(x).requires_grad
    with autograd.no_grad():
        assert tracked(x).requires_grad
        assert not autograd.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception(engine_name):
    with pytest.raises(KeyError), autograd.no_grad():
        raise KeyError("inside no_grad")
    assert autograd.is_grad_enabled()


# -------------------------------------------------------------------------------- misuse

def test_second_backward_through_a_freed_graph_raises(engine_name):
    x = _leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(autograd.FreedGraphError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward(engine_name):
    x = _leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * 2 * x.numpy())


def test_backward_of_a_non_scalar_needs_a_gradient(engine_name):
    x = _leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"shape \(2,\), so pass grad="):
        (x * 2.0).backward()


def test_backward_gradient_must_match_shape_and_dtype(engine_name):
    x = _leaf([1.0, 2.0])
    with pytest.raises(ValueError, match="does not match"):
        (x * 2.0).backward(np.ones(3))
    with pytest.raises(ValueError, match="does not match"):
        (x * 2.0).backward(np.ones(2, dtype=np.float32))


def test_backward_on_a_tensor_without_grad_raises(engine_name):
    x = autograd.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.sum().backward()


def test_in_place_change_of_a_leaf_requiring_grad(engine_name):
    w = _leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"add_: in-place change of a leaf that requires "
                                           r"grad.*no_grad"):
        w.add_(1.0)
    with autograd.no_grad():
        w.add_(1.0)
    np.testing.assert_array_equal(w.numpy(), [2.0, 3.0])
    with pytest.raises(RuntimeError, match="only allowed on leaf tensors"):
        (w * 2.0).mul_(2.0)


def test_modifying_a_saved_input_before_backward_raises(engine_name):
    x = _leaf([1.0, 2.0])
    w = _leaf([3.0, 4.0])
    y = x * w  # mul saves both inputs
    with autograd.no_grad():
        w.add_(1.0)
    with pytest.raises(autograd.InplaceModificationError, match=r"mul: .*modified in place"):
        y.sum().backward()


def test_index_target_and_condition_arrays_are_not_aliased(engine_name):
    # getitem, cross_entropy and where keep these arrays for backward; the caller refilling
    # them before backward (a reused batch buffer) must not move the gradient
    x = _leaf(np.arange(4.0))
    index = np.array([0, 1])
    y = x[index]
    index[:] = 3
    y.backward(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 0.0, 0.0])

    logits = _leaf(np.zeros((2, 3)))
    target = np.array([0, 1])
    loss = autograd.cross_entropy(logits, target, reduction="sum")
    target[:] = 2
    loss.backward()
    expected = np.full((2, 3), 1 / 3) - np.eye(2, 3)
    np.testing.assert_allclose(logits.grad.numpy(), expected)

    a = _leaf([1.0, 2.0])
    cond = np.array([True, False])
    y = autograd.where(cond, a, 0.0)
    cond[:] = False
    y.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 0.0])


def test_modifying_an_unsaved_input_before_backward_is_fine(engine_name):
    x = _leaf([1.0, 2.0])
    w = _leaf([3.0, 4.0])
    y = x + w  # add saves nothing
    with autograd.no_grad():
        w.add_(1.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_mixed_float_dtypes_raise_naming_the_op(engine_name):
    a = _leaf([1.0], dtype=np.float32)
    b = _leaf([1.0], dtype=np.float64)
    with pytest.raises(TypeError, match=r"mul: mixed dtypes float32 and float64"):
        a * b
    with pytest.raises(TypeError, match=r"matmul: mixed dtypes"):
        autograd.matmul(a, b)


def test_integer_tensors_take_the_float_dtype(engine_name):
    x = _leaf([1.0, 2.0], dtype=np.float32)
    # NumPy would give float64 (and a float64 .grad on a float32 leaf); PyTorch's rule keeps
    # the float tensor's dtype
    for other in (np.array([1, 2]), autograd.tensor(np.array([1, 2], dtype=np.int32))):
        y = x * other
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32
        x.grad = None
    assert (autograd.tensor(np.array([1, 2], dtype=np.uint8)) + x).dtype == np.float32
    with pytest.raises(TypeError, match=r"add: mixed dtypes float64 and float32"):
        autograd.tensor(np.array([1, 2], dtype=np.float64)) + x
    y = x * (x > 1.5)  # a boolean mask keeps the float dtype, so it stays allowed
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0])
    i = autograd.tensor([1, 2])
    assert (i + i).dtype == np.int64  # integer-only arithmetic is untouched


# -------------------------------------------------------------------------------- memory

def _live_nodes() -> int:
    # type() rather than isinstance(): isinstance reads __class__, which some objects (e.g.
    # deprecated torch attributes, when torch is imported) turn into a warning.
    return sum(type(o) is Node for o in gc.get_objects())


def test_graph_is_freed_by_reference_counting_alone(engine_name):
    gc.collect()
    baseline = _live_nodes()
    gc.disable()
    try:
        x = _leaf(np.linspace(-1.0, 1.0, 50))
        h = x * 2.0
        e = h.exp()
        loss = (e * h).sum()
        refs = [weakref.ref(t) for t in (h, e, loss)] + [weakref.ref(e.numpy())]
        assert _live_nodes() == baseline + 4
        del h, e
        loss.backward()
        del loss
        assert [r() for r in refs] == [None] * len(refs), "graph kept alive by a cycle"
        assert _live_nodes() == baseline
        assert x.grad is not None and x.grad.is_leaf and x.grad._node is None
    finally:
        gc.enable()


def test_backward_frees_saved_arrays(engine_name):
    x = _leaf(np.arange(10.0))
    loss = x.var()
    saved = weakref.ref(loss._node.saved[0])  # var keeps x - mean for its backward
    loss.backward(retain_graph=True)
    assert saved() is not None, "retain_graph=True keeps saved arrays"
    loss.backward()
    assert saved() is None, "backward must drop saved arrays unless retain_graph=True"


# -------------------------------------------------------------------------------- anomalies

def _sqrt_forward(x):
    return autograd.sqrt(x)  # the creation site anomaly mode must report


def test_detect_anomaly_names_the_op_and_its_creation_site(engine_name):
    x = _leaf([0.0, 4.0])
    with autograd.detect_anomaly():
        y = _sqrt_forward(x)
        with pytest.raises(autograd.AnomalyError) as info:
            y.sum().backward()
    message = str(info.value)
    assert message.startswith("sqrt:")
    assert "NaN or inf" in message
    assert __file__ in message or "test_engine.py" in message
    assert f"line {_sqrt_forward.__code__.co_firstlineno + 1}" in message


def test_detect_anomaly_on_log_of_zero(engine_name):
    x = _leaf([0.0, 1.0])
    with autograd.detect_anomaly():
        y = autograd.log(x) * 2.0
        with pytest.raises(autograd.AnomalyError, match=r"(?s)^log: .*test_engine\.py"):
            y.sum().backward()


def test_without_anomaly_mode_an_infinite_gradient_passes_silently(engine_name):
    x = _leaf([0.0, 4.0])
    autograd.sqrt(x).sum().backward()
    assert np.isinf(x.grad.numpy()[0]) and x.grad.numpy()[1] == 0.25


def test_anomaly_mode_is_restored(engine_name):
    from autograd.grad_mode import is_anomaly_enabled
    with autograd.detect_anomaly():
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()


@pytest.mark.parametrize("make_view", [
    lambda w: w.T,
    lambda w: w.reshape(-1),
    lambda w: w[1:],
    lambda w: w.T[0],
])
def test_in_place_change_through_the_base_of_a_saved_view_raises(engine_name, make_view):
    # The view shares the version counter of the memory it looks at, as in PyTorch.
    x = _leaf(np.arange(1.0, 5.0))
    w = _leaf(np.arange(8.0).reshape(4, 2))
    v = make_view(w)
    y = (v * v).sum() + (x * 2).sum()
    with autograd.no_grad():
        w.add_(1.0)
    with pytest.raises(autograd.InplaceModificationError, match="modified in place"):
        y.backward()


def test_in_place_change_through_a_detached_alias_raises(engine_name):
    x = _leaf(np.arange(6.0).reshape(3, 2))
    w = _leaf(np.arange(8.0).reshape(4, 2))
    y = (x @ w.T).sum()
    w.detach().mul_(5.0)  # shares w's memory, so it shares w's version counter
    with pytest.raises(autograd.InplaceModificationError, match="matmul"):
        y.backward()


def test_a_copy_does_not_share_the_version_counter(engine_name):
    w = _leaf(np.arange(8.0).reshape(4, 2))
    c = w.T.reshape(-1)  # transposed then flattened: NumPy must copy, so nothing is shared
    assert np.shares_memory(c.numpy(), w.numpy()) is False
    y = (c * c).sum()
    with autograd.no_grad():
        w.add_(1.0)
    y.backward()  # c's saved values are its own, unchanged: the gradient is still right
    np.testing.assert_allclose(w.grad.numpy(), 2 * np.arange(8.0).reshape(4, 2))
