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
