"""The optimizer step's two twins: ``autograd/optim/_fused.py`` and its Cython build
``autograd.optim._cfused`` (which runs with the compiled hot path). They give the same updates,
state and version bumps bit for bit, and everything the compiled twin's C fast path does not
take (a mismatched gradient, an array subclass, a byte-swapped dtype, something that is not a
Tensor) falls back to the Python spelling and fails or succeeds exactly as the pure twin does."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from conftest import import_built

import autograd as ag
import autograd.nn as nn
import autograd.optim as optim
from autograd import backend, hotpath
from autograd.optim import _fused as pyfused
from autograd.optim import optimizer


def twins() -> list:
    """The twins this process can run: the pure one, and the compiled one when it runs (with
    the compiled hot path: its C structs are the compiled core's)."""
    return [pyfused] + ([optimizer.fused] if optimizer.fused is not pyfused else [])


def on_twin(cls: type, twin) -> type:
    """``cls`` with its zero_grad, step, loop and update taken from ``twin`` (same class name,
    so the same error messages)."""
    update = twin.adam_update if issubclass(cls, optim.Adam) else twin.sgd_update
    return type(cls.__name__, (cls,), {"zero_grad": twin.zero_grad, "step": twin.step,
                                       "_update": update})


def test_the_running_twin_is_reported():
    assert backend.info()["optim"] == optimizer.twin
    assert optimizer.twin == ("compiled" if optimizer.fused is not pyfused else "python")
    assert optim.SGD.step is optimizer.fused.step
    assert optim.Adam.zero_grad is optimizer.fused.zero_grad
    assert optim.SGD._update is optimizer.fused.sgd_update
    assert optim.AdamW._update is optimizer.fused.adam_update
    if hotpath.core_name() == "compiled":  # built with _ccore by the same CMake project
        compiled = import_built("autograd.optim._cfused", "the compiled optimizer step")
        assert optimizer.fused is compiled and optimizer.twin == "compiled"


def test_compiled_twin_stub_matches_the_source():
    import ast
    from pathlib import Path
    tree = ast.parse((Path(pyfused.__file__).parent / "_cfused.pyi").read_text())
    stubbed = {a.asname for node in tree.body if isinstance(node, ast.ImportFrom)
               for a in node.names}
    assert stubbed == set(pyfused.__all__)


SHAPES = [(2, 3), (3,), (1, 1), (), (4, 1)]
CONFIGS = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
]


def _run(cls, kw, dtype, steps=6):
    """Parameters in two groups (the second with its own lr), updated ``steps`` times with
    random gradients, some parameters without one on some steps (skipped; a late first
    gradient gives SGD a fresh buffer and Adam a second step count in the same group): the
    parameters, their versions and the optimizer's state, as bytes."""
    rng = np.random.default_rng(7)
    params = [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]
    opt = cls([{"params": params[:3]}, {"params": params[3:], "lr": 0.03}], **kw)
    for step in range(steps):
        for i, p in enumerate(params):
            has_grad = not ((step + i) % 4 == 1 or (i == 2 and step < 3))
            p.grad = ag.tensor(rng.standard_normal(p.shape).astype(dtype)) if has_grad else None
        opt.step()
    state = {}
    for i, p in enumerate(params):
        for k, v in sorted(opt.state.get(p, {}).items()):
            state[i, k] = v.tobytes() if isinstance(v, np.ndarray) else v
    return [p.numpy().tobytes() for p in params], [p._version for p in params], state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, kw", CONFIGS, ids=[f"{c.__name__}-{sorted(k)}" for c, k in CONFIGS])
def test_twins_update_bit_for_bit(cls, kw, dtype, backend_name):
    expected = _run(cls, kw, dtype)  # as the class runs by default
    assert expected[1] != [0] * len(SHAPES)
    for twin in twins():
        assert _run(on_twin(cls, twin), kw, dtype) == expected, twin.__name__


@pytest.mark.parametrize("twin", twins(), ids=lambda t: t.__name__)
def test_mismatched_gradients_raise_the_same_error(twin):
    a = nn.Parameter(np.ones(2, np.float32))
    opt = on_twin(optim.SGD, twin)([a], lr=0.1)
    for grad, message in [
            (np.ones(3, np.float32),
             r"SGD: gradient of shape \(3,\) \(float32\) does not match its parameter \(2,\) "
             r"\(float32\)"),
            (np.ones((2, 1), np.float32), r"gradient of shape \(2, 1\) \(float32\)"),
            (np.ones(2, np.float64), r"gradient of shape \(2,\) \(float64\) does not match its "
                                     r"parameter \(2,\) \(float32\)"),
            (np.ones(2, ">f4"), r"gradient of shape \(2,\) \(>f4\)")]:  # equal-looking, other order
        a.grad = ag.Tensor._wrap(grad)
        with pytest.raises(ValueError, match=message):
            opt.step()
        np.testing.assert_array_equal(a.numpy(), [1.0, 1.0])
        assert a._version == 0


@pytest.mark.parametrize("twin", twins(), ids=lambda t: t.__name__)
def test_what_the_fast_path_does_not_take_behaves_as_the_pure_twin(twin):
    class Sub(np.ndarray):
        pass

    a = nn.Parameter(np.ones(2, np.float32))
    b = nn.Parameter(np.ones((2, 2), np.float32))
    opt = on_twin(optim.SGD, twin)([a, b], lr=0.5)
    # an ndarray subclass and a strided view: updated as any gradient
    a.grad = ag.Tensor._wrap(np.full(2, 2.0, np.float32).view(Sub))
    b.grad = ag.Tensor._wrap(np.arange(4, dtype=np.float32).reshape(2, 2).T)
    opt.step()
    np.testing.assert_array_equal(a.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(b.numpy(), [[1.0, 0.0], [0.5, -0.5]])
    assert (a._version, b._version) == (1, 1)
    # a gradient that is not a Tensor, a parameter list holding something else: the Python
    # spelling's AttributeError, nothing updated
    a.grad = np.ones(2, np.float32)
    with pytest.raises(AttributeError, match="_data"):
        opt.step()
    a.grad = None
    opt.param_groups[0]["params"].append(np.ones(2, np.float32))
    with pytest.raises(AttributeError, match="grad"):
        opt.step()
    assert (a._version, b._version) == (1, 1)


@pytest.mark.parametrize("twin", twins(), ids=lambda t: t.__name__)
def test_only_parameters_with_a_gradient_are_updated_and_bumped(twin):
    ps = [nn.Parameter(np.ones(3, np.float32)) for _ in range(3)]
    opt = on_twin(optim.Adam, twin)(ps, lr=0.1)
    opt.step()  # no gradients: nothing happens
    assert [p._version for p in ps] == [0, 0, 0] and not opt.state
    ps[1].grad = ag.tensor(np.ones(3, np.float32))
    opt.step()
    assert [p._version for p in ps] == [0, 1, 0]
    assert list(opt.state) == [ps[1]] and opt.state[ps[1]]["step"] == 1
    np.testing.assert_array_equal(ps[0].numpy(), np.ones(3, np.float32))


@pytest.mark.parametrize("twin", twins(), ids=lambda t: t.__name__)
def test_hyper_parameters_are_read_at_each_step_and_converted_as_before(twin):
    # An int or NumPy-scalar lr updates float32 parameters exactly as the Python float does
    # (float() of each hyper-parameter at each step, so a float64 scalar never promotes), and a
    # change between steps (an LR scheduler's) takes effect at the next step.
    results = []
    for lr in (1, 1.0, np.float64(1.0), np.float32(1.0)):
        p = nn.Parameter(np.array([0.1, 0.2], np.float32))
        for kw in (dict(lr=lr), dict(lr=lr, momentum=np.float64(0.5))):
            opt = on_twin(optim.SGD, twin)([p], **kw)
            p.grad = ag.tensor(np.array([0.3, 0.7], np.float32))
            opt.step()
            opt.param_groups[0]["lr"] = 0.5
            opt.step()
        assert p.dtype == np.float32
        results.append(p.numpy().tobytes())
    assert len(set(results)) == 1


@pytest.mark.parametrize("twin", twins(), ids=lambda t: t.__name__)
def test_a_defaultdict_state_works(twin):
    # PyTorch keeps optimizer state in a defaultdict(dict); one put there by a user is read
    # with plain lookups, never through its default factory
    for cls, kw in ((optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.1))):
        p = nn.Parameter(np.ones(2, np.float32))
        q = nn.Parameter(np.ones(2, np.float32))
        opt = on_twin(cls, twin)([p, q], **kw)
        opt.state = collections.defaultdict(dict)
        p.grad = ag.tensor(np.ones(2, np.float32))
        opt.step()
        opt.step()
        assert list(opt.state) == [p]
        ref = on_twin(cls, pyfused)([nn.Parameter(np.ones(2, np.float32))], **kw)
        ref.param_groups[0]["params"][0].grad = ag.tensor(np.ones(2, np.float32))
        ref.step()
        ref.step()
        np.testing.assert_array_equal(p.numpy(), ref.param_groups[0]["params"][0].numpy())


@pytest.mark.parametrize("twin", twins(), ids=lambda t: t.__name__)
def test_zero_grad_on_each_twin(twin):
    a = nn.Parameter(np.ones(2, np.float32))
    b = nn.Parameter(np.ones(3, np.float64))
    opt = on_twin(optim.SGD, twin)([a, b], lr=0.1)
    a.grad = ag.tensor(np.ones(2, np.float32))
    opt.zero_grad(set_to_none=False)  # zeros of each parameter's dtype; no gradient stays None
    assert b.grad is None
    assert a.grad.dtype == np.float32 and np.array_equal(a.grad.numpy(), [0.0, 0.0])
    b.grad = ag.tensor(np.ones(3))
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    # the Python spelling's error for something that is not a Tensor, after the Tensors before
    # it are cleared
    a.grad = ag.tensor(np.ones(2, np.float32))
    opt.param_groups[0]["params"].append(np.ones(2))
    with pytest.raises(AttributeError, match="grad"):
        opt.zero_grad()
    assert a.grad is None


def test_bench_optim_runs_and_restores_the_provider():
    import sys
    from pathlib import Path

    from autograd.grad_mode import state
    bench_dir = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, bench_dir)
    try:
        import bench_optim
        before = state.k
        out = bench_optim.run("numpy", 1, 1e-6, "cpu")  # each case once or so: never timed here
    finally:
        sys.path.remove(bench_dir)
    assert state.k is before
    for case in ("XOR 2-10-1 SGD", "XOR 2-10-1 SGD momentum", "1-2-5-1 Adam"):
        assert case in out
