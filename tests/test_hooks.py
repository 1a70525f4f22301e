"""Tensor.register_hook, register_post_accumulate_grad_hook and queue_callback, with PyTorch's
meaning, on both graph engines."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import autograd as ag
from autograd import hooks


def leaf(values, dtype=np.float64):
    return ag.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def test_leaf_hook_sees_gradient_and_can_replace_it(engine_name):
    x = leaf([1.0, 2.0, 3.0])
    seen = []

    def double(g):
        seen.append(g.numpy().copy())
        return g * 2.0

    x.register_hook(double)
    (x * x).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0, 12.0])


def test_leaf_used_twice_gets_hooks_once_with_the_total(engine_name):
    x = leaf([1.0, -2.0])
    calls, post = [], []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    x.register_post_accumulate_grad_hook(lambda t: post.append(t.grad.numpy().copy()))
    y = (x * 3.0).sum() + (x * x).sum() + x[0]
    y.backward()
    expect = np.array([3.0 + 2.0 + 1.0, 3.0 - 4.0])
    assert len(calls) == 1 and len(post) == 1
    np.testing.assert_array_equal(calls[0], expect)
    np.testing.assert_array_equal(post[0], expect)
    np.testing.assert_array_equal(x.grad.numpy(), expect)


def test_post_accumulate_hook_sees_accumulated_grad(engine_name):
    x = leaf([1.0, 2.0])
    post = []
    x.register_post_accumulate_grad_hook(lambda t: post.append(t.grad.numpy().copy()))
    (x * 2.0).sum().backward()
    (x * 5.0).sum().backward()
    np.testing.assert_array_equal(post[0], [2.0, 2.0])
    np.testing.assert_array_equal(post[1], [7.0, 7.0])  # after accumulating the second pass


def test_post_hook_may_change_grad_in_place_but_not_return(engine_name):
    x = leaf([1.0, 2.0])
    def halve(t):
        t.grad.numpy()[...] *= 0.5

    h = x.register_post_accumulate_grad_hook(halve)
    (x * 4.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    h.remove()
    x.register_post_accumulate_grad_hook(lambda t: t.grad)
    with pytest.raises(RuntimeError, match="must return None"):
        (x * 4.0).sum().backward()


def test_non_leaf_hook_changes_what_flows_on(engine_name):
    x = leaf([1.0, 2.0])
    h = x * 3.0
    seen = []

    def hook(g):
        seen.append(g.numpy().copy())
        return g + 1.0

    h.register_hook(hook)
    (h * h).sum().backward()
    np.testing.assert_array_equal(seen[0], [6.0, 12.0])  # d(h*h)/dh = 2h
    np.testing.assert_array_equal(x.grad.numpy(), [21.0, 39.0])  # 3 * (2h + 1)


def test_hook_on_root_and_on_a_leaf_root(engine_name):
    x = leaf([1.0, 2.0])
    y = x * 2.0
    y.register_hook(lambda g: g * 10.0)
    y.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad.numpy(), [20.0, 20.0])
    z = leaf([1.0, 1.0])
    post = []
    z.register_hook(lambda g: g * 3.0)
    z.register_post_accumulate_grad_hook(lambda t: post.append(t))
    g = np.array([1.0, 2.0])
    z.backward(g)
    np.testing.assert_array_equal(z.grad.numpy(), [3.0, 6.0])
    np.testing.assert_array_equal(g, [1.0, 2.0])  # the caller's array is untouched
    assert post == [z]


def test_hooks_run_in_registration_order_and_remove(engine_name):
    x = leaf([1.0])
    order = []
    h1 = x.register_hook(lambda g: order.append(1))
    x.register_hook(lambda g: order.append(2))
    (x * 1.0).sum().backward()
    assert order == [1, 2]
    h1.remove()
    h1.remove()  # harmless
    (x * 1.0).sum().backward()
    assert order == [1, 2, 2]


def test_handle_as_context_manager_and_tables_emptied(engine_name):
    x = leaf([1.0])
    calls = []
    with x.register_hook(lambda g: calls.append(1)):
        (x * 1.0).sum().backward()
    (x * 1.0).sum().backward()
    assert calls == [1]
    assert id(x) not in hooks.LEAF


def test_hooks_die_with_their_tensor():
    x = leaf([1.0])
    y = x * 2.0
    # Hooks that refer back to their tensors: a cycle the collector must free.
    y.register_hook(lambda g, y=y: None)
    x.register_post_accumulate_grad_hook(lambda t, x=x: None)
    assert id(x) in hooks.LEAF and id(y._node) in hooks.NODE
    del x, y
    gc.collect()
    assert not hooks.LEAF and not hooks.NODE


def test_a_copied_tensor_keeps_its_own_hooks(engine_name):
    import copy
    x = leaf([1.0, 2.0])
    calls = []
    x.register_hook(lambda g: calls.append("x"))
    y = copy.deepcopy(x)
    y.register_hook(lambda g: calls.append("y"))
    (x * 1.0).sum().backward()
    assert calls == ["x"]
    (y * 1.0).sum().backward()
    assert calls == ["x", "x", "y"]  # the copy carries the original's hook, then its own


def test_leaf_that_required_grad_only_for_part_of_the_graph(engine_name):
    x = ag.tensor(np.array([1.0, 2.0]))
    w = leaf([3.0, 3.0])
    a = x * w  # recorded while x did not require grad: no gradient flows to x here
    x.requires_grad = True
    calls = []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (a * x).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [3.0, 6.0])  # d(x*w*x)/dx through the 2nd edge
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 6.0])


def test_hook_changing_shape_or_dtype_is_refused(engine_name):
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: ag.tensor(np.ones(3)))
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*\(2,\)"):
        (x * 1.0).sum().backward()


def test_registration_errors():
    x = ag.tensor(np.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.register_hook(lambda g: None)
    y = leaf([1.0]) * 2.0
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        y.register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="callable"):
        y.register_hook(3)


def test_unhooked_leaves_unaffected_by_hooks_elsewhere(engine_name):
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    b.register_hook(lambda g: g * 0.0)
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.0, 0.0])


def test_queue_callback_runs_after_all_leaves(engine_name):
    a, b = leaf([1.0]), leaf([2.0])
    events = []

    def on_a(t):
        events.append("a")
        hooks.queue_callback(lambda: events.append(("end", a.grad.item(), b.grad.item())))

    a.register_post_accumulate_grad_hook(on_a)
    b.register_post_accumulate_grad_hook(lambda t: events.append("b"))
    (a * b).sum().backward()
    assert sorted(events[:2]) == ["a", "b"]
    assert events[2] == ("end", 2.0, 1.0)


def test_queue_callback_outside_backward_and_after_a_failure(engine_name):
    with pytest.raises(RuntimeError, match="only be queued while a backward"):
        hooks.queue_callback(lambda: None)
    x = leaf([1.0])
    ran = []

    def boom(g):
        hooks.queue_callback(lambda: ran.append(1))
        raise ValueError("boom")

    x.register_hook(boom)
    with pytest.raises(ValueError, match="boom"):
        (x * 2.0).sum().backward()
    assert ran == []  # a failed pass drops its callbacks
    with pytest.raises(RuntimeError):
        hooks.queue_callback(lambda: None)  # and leaves no open pass behind


def test_hooks_do_not_change_gradients_of_an_mlp(engine_name, rng):
    """With identity hooks on every parameter, gradients equal those without hooks."""
    ag.manual_seed(0)
    net = ag.nn.Sequential(ag.nn.Linear(4, 5), ag.nn.Tanh(), ag.nn.Linear(5, 2)).double()
    x = ag.tensor(rng.standard_normal((6, 4)))
    net(x).sum().backward()
    ref = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    post = []
    for p in net.parameters():
        p.register_hook(lambda g: g)
        p.register_post_accumulate_grad_hook(post.append)
    net(x).sum().backward()
    assert len(post) == 4
    for p, r in zip(net.parameters(), ref):
        np.testing.assert_array_equal(p.grad.numpy(), r)
