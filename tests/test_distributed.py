"""autograd.distributed, DistributedDataParallel, DistributedSampler and data-parallel Keras.

The multi-process checks run tests/distributed_worker.py under ``mpiexec -n 2`` and ``-n 3``
(oversubscribed on small machines) and read its report; they skip when mpi4py or mpiexec is not
installed (``pip install ".[mpi]"`` installs both). The rest runs in this process: a world of
size 1 and the sampler's arithmetic.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import autograd as ag
from autograd import nn, optim
from autograd.data import DataLoader, DistributedSampler, TensorDataset

WORKER = Path(__file__).with_name("distributed_worker.py")
SCENARIOS = ["collectives", "ddp_sgd_compiled", "ddp_adam_compiled", "ddp_sgd_python",
             "ddp_adam_python", "ddp_no_sync_unused", "ddp_mismatch", "ddp_buffers",
             "sampler", "keras_fit", "keras_classifier"]


def _mpiexec() -> str:
    pytest.importorskip("mpi4py", reason="mpi4py not installed (pip install '.[mpi]')")
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        pytest.skip("mpiexec not found (pip install '.[mpi]' brings the mpich wheel's)")
    return found


def _run(n: int, scenario: str, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(ag.__file__).parent.parent)] +
                                        [p for p in [env.get("PYTHONPATH")] if p])
    start = time.monotonic()
    proc = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, str(WORKER), scenario],
                          capture_output=True, text=True, timeout=timeout, env=env)
    return proc, time.monotonic() - start


@pytest.mark.parametrize("n", [2, 3])
def test_under_mpiexec(n):
    """Every scenario of the worker passes on every rank: collectives in every dtype, DDP
    (SGD and Adam, float64, 11 samples split unevenly) equal to one process to 1e-12 and
    bit-identical across ranks, no_sync, unused parameters, mismatch errors, buffers, the
    sampler's partition and data-parallel Keras fit."""
    proc, _ = _run(n, "all", timeout=600)
    assert proc.returncode == 0, f"mpiexec -n {n} failed:\n{proc.stdout}\n{proc.stderr}"
    passed = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ok ")}
    # The *_compiled scenarios need the compiled engine, absent when AUTOGRAD_ENGINE=python.
    expected = {s for s in SCENARIOS
                if not s.endswith("_compiled") or ag.backend._compiled_engine is not None}
    assert expected <= passed, f"missing: {expected - passed}\n{proc.stdout}"
    assert f"ok done world size {n}" in proc.stdout


def test_a_raising_rank_aborts_the_job_quickly():
    """Rank 1 raises while the others wait in a barrier: mpiexec must end non-zero, fast,
    showing rank 1's traceback."""
    proc, elapsed = _run(3, "raise", timeout=60)
    assert proc.returncode != 0
    assert elapsed < 10, f"took {elapsed:.1f} s to abort"
    assert "[rank 1] RuntimeError: rank 1 fails on purpose" in proc.stderr, proc.stderr


# ------------------------------------------------------------------ a world of size 1
@pytest.fixture
def group():
    pytest.importorskip("mpi4py", reason="mpi4py not installed (pip install '.[mpi]')")
    from autograd import distributed as dist
    dist.init_process_group()
    yield dist
    dist.destroy_process_group()


def test_import_autograd_does_not_import_mpi4py():
    code = ("import sys, autograd, autograd.distributed, autograd.nn.parallel; "
            "assert 'mpi4py' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_not_initialised_errors():
    from autograd import distributed as dist
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="init_process_group"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="only the 'mpi' backend"):
        dist.init_process_group("nccl")


def test_world_of_one(group):
    dist = group
    dist.init_process_group()  # idempotent
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    dist.barrier()
    t = ag.tensor(np.array([1.0, 2.0]))
    for op in ("sum", "mean", "max", "min"):
        dist.all_reduce(t, op)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    assert t._version == 4  # an in-place change, seen by graphs that saved the array
    work = dist.all_reduce(t, dist.ReduceOp.SUM, async_op=True)
    assert work.wait() and work.is_completed()
    dist.broadcast(t, 0)
    out = dist.all_gather(t)
    assert len(out) == 1 and np.array_equal(out[0].numpy(), t.numpy())
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(t, "prod")
    with pytest.raises(TypeError, match="needs a floating tensor"):
        dist.all_reduce(ag.tensor(np.array([1, 2])), "mean")
    with pytest.raises(ValueError, match="src must be a rank"):
        dist.broadcast(t, 1)
    with pytest.raises(TypeError, match="expected a Tensor"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(ValueError, match="read-only"):
        dist.all_reduce(ag.tensor(np.ones(3)).expand(2, 3))
    assert sys.excepthook is sys.__excepthook__ or "autograd" not in repr(sys.excepthook)


def test_ddp_at_world_size_one_trains_like_the_module(group, engine_name, rng):
    """The whole reducer runs at size 1 (buckets, hooks, final callback); the result must
    equal plain training bit for bit, for several buckets and several optimizers."""
    x, y = rng.standard_normal((9, 4)), rng.standard_normal((9, 2))

    def net():
        ag.manual_seed(3)
        return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()

    for make in (lambda p: optim.SGD(p, lr=0.1, momentum=0.5), lambda p: optim.Adam(p)):
        plain, wrapped = net(), nn.parallel.DistributedDataParallel(net(), bucket_cap_mb=1e-4)
        assert len(wrapped.reducer.buckets) == 4
        for model in (plain, wrapped):
            opt = make(model.parameters())
            for _ in range(5):
                opt.zero_grad()
                ag.functional.mse_loss(model(ag.tensor(x)), ag.tensor(y)).backward()
                opt.step()
        for p, q in zip(plain.parameters(), wrapped.module.parameters()):
            np.testing.assert_array_equal(p.numpy(), q.numpy())
        assert list(wrapped.state_dict()) == ["module." + k for k in plain.state_dict()]
        wrapped.remove_hooks()


def test_ddp_buckets_reverse_order_and_dtype(group):
    a = nn.Linear(300, 300)  # 360 kB of float32 weights
    b = nn.Linear(300, 300).double()
    c = nn.Linear(300, 10)
    model = nn.Sequential(a, b, c)
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.5)
    names = [[n for n, _ in bk.params] for bk in ddp.reducer.buckets]
    # Reverse order; the first bucket is capped at 1 MiB; float64 gradients in their own.
    assert names[0][:2] == ["2.bias", "2.weight"]
    assert all(len({p.dtype for _, p in bk.params}) == 1 for bk in ddp.reducer.buckets)
    flat = [n for bucket in names for n in bucket]
    assert sorted(flat) == sorted(n for n, _ in model.named_parameters())
    ddp.remove_hooks()


def test_ddp_no_sync_at_size_one_accumulates(group):
    ag.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(nn.Linear(3, 1).double())
    x = ag.tensor(np.ones((2, 3)))
    with model.no_sync():
        model(x).sum().backward()
    model(x).sum().backward()
    np.testing.assert_array_equal(model.module.weight.grad.numpy(), np.full((1, 3), 4.0))
    model.remove_hooks()


# ------------------------------------------------------------------ the sampler
@pytest.mark.parametrize("n,replicas", [(12, 3), (11, 3), (10, 4), (2, 3), (7, 1)])
def test_distributed_sampler_partitions_every_epoch(n, replicas):
    for drop_last in (False, True):
        per_epoch = []
        for epoch in range(3):
            parts = []
            for rank in range(replicas):
                s = DistributedSampler(range(n), replicas, rank, seed=4, drop_last=drop_last)
                s.set_epoch(epoch)
                parts.append(list(s))
                assert len(parts[-1]) == len(s)
            assert len({len(p) for p in parts}) == 1  # every rank takes the same steps
            flat = np.concatenate(parts).astype(int)
            counts = np.bincount(flat, minlength=n)
            if drop_last:
                assert np.all(counts <= 1) and len(flat) == n - n % replicas
            else:
                assert np.all(counts >= 1) and len(flat) == -(-n // replicas) * replicas
                if n % replicas == 0:
                    assert np.all(counts == 1)
            per_epoch.append(tuple(flat))
        if n > 2:
            assert len(set(per_epoch)) == 3  # a new order each epoch


def test_distributed_sampler_no_shuffle_and_errors():
    s = DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    assert list(s) == [1, 3, 0]  # padded with the first index
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        DistributedSampler(range(5), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(range(5), num_replicas=0, rank=0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(5))


def test_dataloader_with_sampler():
    data = TensorDataset(np.arange(10.0), np.arange(10))
    sampler = DistributedSampler(data, num_replicas=3, rank=2, shuffle=False)
    loader = DataLoader(data, batch_size=3, sampler=sampler)
    batches = [b[1].numpy().tolist() for b in loader]
    assert batches == [[2, 5, 8], [1]] and len(loader) == 2
    with pytest.raises(ValueError, match="exclusive"):
        DataLoader(data, sampler=sampler, shuffle=True)
    with pytest.raises(TypeError, match="sampler must be"):
        DataLoader(data, sampler=5)


# ------------------------------------------------------------------ the benchmark's model
def _bench():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import bench_distributed
    finally:
        sys.path.pop(0)
    return bench_distributed


def test_ring_model_fit_recovers_latency_and_bandwidth():
    bench = _bench()
    alpha, beta = 3e-6, 1 / 5e9
    rows = [{"bytes": n, "mpi4py": {"median": bench.ring_seconds(4, n, alpha, beta)}}
            for n in bench.SIZES]
    a, b = bench.fit_alpha_beta(rows, 4)
    assert a == pytest.approx(alpha, rel=1e-6) and b == pytest.approx(beta, rel=1e-6)
    # 2(p-1) latency steps and 2(p-1)/p of the message through each link.
    assert bench.ring_seconds(8, 8e6, 1e-6, 1e-9) == pytest.approx(14e-6 + 14e-3)


def test_bench_step_worker_runs_at_world_size_one(group):
    bench = _bench()
    threads = ag.get_num_threads()
    try:
        out = bench.worker_step(quick=True)
    finally:
        ag.set_num_threads(threads)
    assert out["world"] == 1 and out["ddp_small_buckets"]["buckets"] > out["ddp"]["buckets"]
    assert out["ddp"]["grad_bytes"] == 4 * (784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10)


def test_mnist_ddp_example_trains_on_two_ranks():
    """examples/mnist_ddp.py under mpiexec -n 2 on a slice of the real data."""
    data = os.environ.get("AUTOGRAD_MNIST_DIR")
    if not data or not Path(data, "train-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST files not found (set AUTOGRAD_MNIST_DIR)")
    example = Path(__file__).resolve().parent.parent / "examples" / "mnist_ddp.py"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(ag.__file__).parent.parent)
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(example), "--data", data,
                           "--epochs", "1", "--limit", "12000"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("2 process(es)") == 1  # rank 0 alone prints
    accuracy = float(proc.stdout.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 88.0, proc.stdout  # 91.3% when last measured; chance is 10%


def test_readme_data_parallel_script_runs_alone_and_under_mpiexec(tmp_path):
    """The README's data-parallel script, as written there."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Training on several processes"):]
    script = section[section.index("```python\n") + 10:]
    script = script[:script.index("```")]
    path = tmp_path / "train.py"
    path.write_text(script)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(ag.__file__).parent.parent)
    for cmd in ([sys.executable, str(path)], [_mpiexec(), "-n", "2", sys.executable, str(path)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ranks = 1 if len(cmd) == 2 else 2
        assert proc.stdout.startswith(f"{ranks} process(es), last loss"), proc.stdout
        assert float(proc.stdout.split()[-1]) < 0.2  # the target is linear: it is learnt


def test_ddp_launches_each_bucket_as_soon_as_it_is_full(group):
    """The allreduce of the last layer's bucket starts while backward still has the first
    layer to do, and all are done when backward() returns."""
    ag.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    model = nn.parallel.DistributedDataParallel(net.double(), bucket_cap_mb=1e-4)
    reducer = model.reducer
    events = []

    class Spy:
        def __init__(self, comm):
            self.comm = comm

        def Iallreduce(self, *args, **kwargs):  # noqa: N802 (mpi4py's name)
            events.append(("launch", len(events)))
            return self.comm.Iallreduce(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.comm, name)

    reducer.comm = Spy(reducer.comm)
    for b in reducer.buckets:
        for name, p in b.params:
            p.register_post_accumulate_grad_hook(lambda t, name=name: events.append(name))
    model(ag.tensor(np.ones((2, 3)))).sum().backward()
    kinds = [e if isinstance(e, str) else "launch" for e in events]
    assert kinds.count("launch") == len(reducer.buckets) >= 3
    assert reducer.buckets[0].params[0][0] == "4.bias"  # reverse order: the last layer first
    first_launch = kinds.index("launch")
    # (these spies run after DDP's own hook, so a bucket's launch precedes its last name)
    assert set(kinds[:first_launch]) <= {"4.weight", "4.bias"}
    assert "0.weight" in kinds[first_launch:]  # the first layer's gradient came later
    assert all(not b.request for b in reducer.buckets)  # completed before backward returned
    model.remove_hooks()
