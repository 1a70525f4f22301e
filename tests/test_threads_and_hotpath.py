"""State per thread (grad mode, anomaly mode, kernel provider), the compiled hot path against
its pure-Python twin, and the one in-place update path (version counter)."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from conftest import digests_of_both_twins, need_native, stdout_of_both_twins

import autograd as ag
from autograd import backend, hotpath, nn, optim
from autograd import functional as F
from autograd.errors import InplaceModificationError
from autograd.grad_mode import state


def _in_thread(fn):
    """Run ``fn`` in a new thread and return its result (re-raising its exception)."""
    box = {}

    def run():
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: B902 - handed back to the test
            box["exc"] = exc
    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "exc" in box:
        raise box["exc"]
    return box["out"]


# ------------------------------------------------------------------------- state per thread

def test_new_thread_starts_with_grad_enabled_and_the_default_backend():
    default = backend.active()
    other = "numpy" if default == "native" else backend.available()[0]
    with ag.no_grad(), backend.use(other), ag.detect_anomaly():
        seen = _in_thread(lambda: (ag.is_grad_enabled(), ag.grad_mode.is_anomaly_enabled(),
                                   backend.active()))
        assert not ag.is_grad_enabled() and backend.active() == other
    assert seen == (True, False, default)


def test_no_grad_in_one_thread_never_leaks_into_another():
    # Two threads toggle grad mode in lockstep; each must always see its own setting.
    errors = []
    barrier = threading.Barrier(2)

    def worker(disable: bool):
        x = ag.tensor([1.0, 2.0], requires_grad=True)
        for _ in range(200):
            barrier.wait()
            if disable:
                with ag.no_grad():
                    barrier.wait()
                    if (x * 2).requires_grad:
                        errors.append("no_grad thread recorded a graph")
            else:
                barrier.wait()
                if not (x * 2).requires_grad:
                    errors.append("grad thread saw the other thread's no_grad")
    threads = [threading.Thread(target=worker, args=(d,)) for d in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ag.is_grad_enabled()


def test_backend_switch_in_one_thread_does_not_move_another(backend_name):
    other = "numpy" if backend_name == "native" else "native"
    if other == "native":
        need_native()
    seen = []
    barrier = threading.Barrier(2)

    def switcher():
        with backend.use(other):
            barrier.wait()
            barrier.wait()

    t = threading.Thread(target=switcher)
    t.start()
    barrier.wait()
    seen.append(backend.active())
    barrier.wait()
    t.join()
    assert seen == [backend_name]


def _train_xor(seed: int, lock=None, steps: int = 150) -> tuple[float, list[np.ndarray]]:
    x = ag.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    y = ag.tensor([[0], [1], [1], [0]], dtype="float32")
    with lock or threading.Lock():  # manual_seed is process-wide: build one model at a time
        ag.manual_seed(seed)
        model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())
    opt = optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.binary_cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        with ag.no_grad():  # evaluation in the middle of training, as users write it
            model(x)
    return float(loss.item()), [p.numpy().copy() for p in model.parameters()]


def test_two_threads_train_two_models_at_once(backend_name):
    # Each model is built under a lock (the seed is process-wide); the training runs in
    # parallel, and each thread must reach exactly what it reaches alone.
    alone = [_train_xor(s) for s in (1, 2)]
    out: dict[int, tuple] = {}
    lock = threading.Lock()

    def worker(seed):
        with backend.use(backend_name):
            out[seed] = _train_xor(seed, lock)
    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, (loss, params) in zip((1, 2), alone):
        assert out[seed][0] == loss
        for a, b in zip(out[seed][1], params):
            np.testing.assert_array_equal(a, b)
    assert alone[0][0] < 0.6 and alone[1][0] < 0.6


# --------------------------------------------------------- compiled hot path and its twin

def test_info_says_which_hot_path_runs():
    info = backend.info()
    assert info["hot_path"] == hotpath.core_name()
    assert isinstance(ag.tensor([1.0]), hotpath.core.TensorBase)


_GRADS_SCRIPT = r"""
import hashlib, sys
import numpy as np
import autograd as ag
from autograd import backend, nn, functional as F
with backend.use(sys.argv[1]):
    ag.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.ReLU(),
                          nn.Linear(7, 3))
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.standard_normal((9, 5)).astype(np.float32), requires_grad=True)
    h = model(x)
    loss = (F.cross_entropy(h, rng.integers(0, 3, 9)) + (h * h).mean()
            + F.logsumexp(h / 3.0, axis=1).sum() + (x[2:5] - 1.5).abs().max())
    loss.backward()
    digest = hashlib.sha256()
    for t in [x] + list(model.parameters()):
        digest.update(t.grad.numpy().tobytes())
    print(backend.info()["hot_path"], backend.info()["engine"], digest.hexdigest())
"""


@pytest.mark.parametrize("provider", ["numpy", "native"])
def test_compiled_and_pure_twins_give_the_same_gradients_bit_for_bit(provider, tmp_path):
    outs = digests_of_both_twins(_GRADS_SCRIPT, provider, tmp_path)
    assert outs["compiled"] == outs["python"]


_OPDB_SCRIPT = r"""
import hashlib, json, sys, warnings
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
import autograd as ag
from autograd import backend
from autograd.testing.opdb import OP_DB

digests = {}
with backend.use(sys.argv[1]):
    def runner(info, out):
        @settings(max_examples=4, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def run(data):
            sample = data.draw(info.samples)
            for dtype in (np.float32, np.float64):
                args = sample.tensors(dtype)
                y = info.op(*args, **sample.kwargs)
                y.backward(np.linspace(-1, 1, y.size).reshape(y.shape).astype(y.dtype))
                h = hashlib.sha256(y.numpy().tobytes())
                for a in args:
                    if isinstance(a, ag.Tensor) and a.grad is not None:
                        h.update(a.grad.numpy().tobytes())
                out.append(h.hexdigest())
        return run

    for info in OP_DB:
        runner(info, digests.setdefault(info.id, []))()
print(json.dumps(digests))
"""


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["numpy", "native"])
def test_every_op_gives_the_same_bits_on_both_twins(provider, tmp_path):
    # Every entry of the op database, float32 and float64, the same hypothesis samples
    # (derandomized) in a compiled and a pure-Python process: outputs and gradients agree bit
    # for bit.
    import json
    outs = {engine: json.loads(out) for engine, out in
            stdout_of_both_twins(_OPDB_SCRIPT, provider, tmp_path, timeout=600).items()}
    assert outs["compiled"].keys() == outs["python"].keys()
    differ = [k for k in outs["compiled"] if outs["compiled"][k] != outs["python"][k]]
    assert not differ, f"ops whose bits differ between the twins: {differ}"
    assert sum(len(v) for v in outs["compiled"].values()) >= 4 * len(outs["compiled"])


@pytest.mark.parametrize("module", ["engine.py", "_core.py", "grad_mode.py", "hotpath.py"])
def test_engine_and_hot_path_never_import_the_backend(module):
    # The backend imports hotpath (which imports the engine); an import back would be a cycle.
    import ast
    src = os.path.join(os.path.dirname(ag.__file__), module)
    with open(src, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert not {n for n in imported if "backend" in n}, imported


def test_apply_refuses_a_non_tensor_input():
    from autograd.function import apply
    from autograd.ops import arith
    with pytest.raises((TypeError, AttributeError)):
        apply(arith.Add, ag.tensor([1.0]), np.ones(1, np.float32))


def test_a_new_thread_never_sees_the_state_a_finished_thread_left():
    # The compiled twin keeps the last reader's state dict in C, keyed by its thread state;
    # a thread that ends with grad off and another provider must not leak them into the next
    # thread, even one that reuses its thread ident (sequential threads often do).
    default = backend.active()
    other = "numpy" if default == "native" else backend.available()[0]
    x = ag.tensor([1.0, 2.0], requires_grad=True)

    def leave_a_mess():
        state.grad_enabled = False  # set and never restored: this thread's own value
        backend.use(other)          # (no context manager: left switched)
        state.anomaly = True
        return (x * 2).requires_grad, backend.active(), threading.get_ident()

    def look():
        return ((x * 2).requires_grad, (x + x).requires_grad, ag.is_grad_enabled(),
                backend.active(), ag.grad_mode.is_anomaly_enabled(), threading.get_ident())

    for _ in range(20):
        recorded, active, _ident = _in_thread(leave_a_mess)
        assert (recorded, active) == (False, other)
        assert _in_thread(look)[:5] == (True, True, True, default, False)
    assert (x * 2).requires_grad and backend.active() == default  # this thread: untouched


def test_threads_taking_turns_read_their_own_grad_mode_every_op():
    # Turn by turn on one tensor: the hot path must see each thread's own flag at every op,
    # never the flag of the thread that ran just before it.
    x = ag.tensor(np.ones((4, 4), np.float32), requires_grad=True)
    seen = {True: [], False: []}
    turn = threading.Condition()
    state_of = {"next": True}

    def worker(enabled: bool):
        with ag.enable_grad() if enabled else ag.no_grad():
            for _ in range(50):
                with turn:
                    turn.wait_for(lambda: state_of["next"] is enabled)
                    seen[enabled].append(((x * x).requires_grad, (x + 1.0).requires_grad,
                                          ag.function.apply(_arith().Exp, x).requires_grad))
                    state_of["next"] = not enabled
                    turn.notify_all()
    threads = [threading.Thread(target=worker, args=(e,)) for e in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen[True] == [(True, True, True)] * 50
    assert seen[False] == [(False, False, False)] * 50


def _arith():
    from autograd.ops import arith
    return arith


def test_grad_mode_default_of_the_state_class_reaches_threads_without_their_own(monkeypatch):
    # state.<flag> falls back to the _State class attribute in a thread that never set its
    # own; the compiled twin's C read of the thread's dict must fall back the same way.
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    monkeypatch.setattr(type(state), "grad_enabled", False)
    assert _in_thread(lambda: ((x * x).requires_grad, ag.is_grad_enabled())) == (False, False)
    with ag.enable_grad():  # this thread's own value wins over the class default
        assert (x * x).requires_grad


def test_declared_rows_called_from_python_with_any_ctx():
    # create_graph (gradients.py) calls a row's forward and backward from Python with its own
    # ctx objects; the compiled twin's declared rows (C objects there, closures in the pure
    # twin) must read and write any ctx as the closures do.
    from types import SimpleNamespace

    from autograd.ops import activation, arith
    k = backend.k
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = rng.standard_normal((2, 3)).astype(np.float32)
    g = rng.standard_normal((2, 3)).astype(np.float32)
    ctx = SimpleNamespace(saved=None)
    out = arith.Mul.forward(ctx, x, y)
    assert out.tobytes() == k.mul(x, y).tobytes() and ctx.saved == (x, y)
    ctx.needs = (False, True)
    dx, dy = arith.Mul.backward(ctx, g)
    assert dx is None and dy.tobytes() == k.mul(g, x).tobytes()
    ctx = SimpleNamespace(saved=None, needs=(True,))
    out = activation.Tanh.forward(ctx, x)
    assert ctx.saved is out
    (dx,) = activation.Tanh.backward(ctx, g)
    assert dx.tobytes() == k.tanh_back(out, g).tobytes()
    ctx = SimpleNamespace(saved=None, needs=(True, True))
    assert arith.Add.forward(ctx, x, y).tobytes() == k.add(x, y).tobytes()
    assert ctx.saved is None  # add saves nothing
    assert arith.Add.backward(ctx, g) == (g, g)
    with pytest.raises(TypeError):
        arith.Mul.forward(ctx, x, y, z=1)


class _Sub(np.ndarray):
    """An ndarray subclass: the compiled twin reads shapes of exact ndarrays only."""


def test_shapes_of_array_subclasses_are_checked_and_reduced_as_plain_arrays():
    from autograd.hotpath import core
    a = core.wrap(np.ones((3, 1), np.float32).view(_Sub))
    a._requires_grad = True
    b = ag.tensor(np.ones((3, 4), np.float32), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (3, 4)
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 4.0, np.float32))
    c = core.wrap(np.ones((2, 5), np.float32).view(_Sub))
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 5\) and \(3, 4\) cannot be"):
        c * b
    with pytest.raises(ValueError, match=r"\(2, 5\) and \(3, 4\)"):
        ag.function.apply(_arith().Maximum, c, b)


def test_the_tensor_class_must_derive_from_tensor_base():
    from autograd.hotpath import core
    with pytest.raises(TypeError, match="not a subclass of TensorBase"):
        core.set_tensor_class(dict, lambda data, like=None: data)
    assert isinstance(ag.tensor([1.0]), ag.Tensor)  # the registered class is still Tensor


# ------------------------------------------------------------- the one in-place path

def test_update_bumps_the_version_and_invalidates_saved_graphs():
    w = ag.tensor([1.0, 2.0], requires_grad=True)
    x = ag.tensor([3.0, 4.0])
    y = (w * x).sum()
    v = x._version
    x._update_([5.0, 6.0])
    assert x._version == v + 1
    np.testing.assert_array_equal(x.numpy(), [5.0, 6.0])
    with pytest.raises(InplaceModificationError):
        y.backward()


def test_batchnorm_running_stats_update_bumps_their_version():
    bn = nn.BatchNorm1d(3)
    v_mean, v_var = bn.running_mean._version, bn.running_var._version
    bn(ag.tensor(np.arange(12, dtype=np.float32).reshape(4, 3)))
    assert bn.running_mean._version == v_mean + 1
    assert bn.running_var._version == v_var + 1
    assert int(bn.num_batches_tracked.item()) == 1


def test_optimizer_step_and_load_bump_parameter_versions():
    lin = nn.Linear(2, 1)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    lin(ag.tensor([[1.0, 2.0]])).sum().backward()
    before = [p._version for p in lin.parameters()]
    opt.step()
    assert [p._version for p in lin.parameters()] == [b + 1 for b in before]
    lin.load_state_dict(lin.state_dict())
    assert [p._version for p in lin.parameters()] == [b + 2 for b in before]


def test_thread_state_is_the_grad_mode_state():
    # The thread-local object the compiled hot path reads is the one no_grad sets.
    with ag.no_grad():
        assert state.grad_enabled is False
    assert state.grad_enabled is True
