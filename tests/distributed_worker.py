"""Run by tests/test_distributed.py under ``mpiexec -n N``: each scenario checks its results on
every rank and raises on a mismatch (which aborts the job with a non-zero exit); rank 0 prints
``ok <scenario> <details>`` per scenario that passed.

    mpiexec -n 3 python tests/distributed_worker.py all
"""
from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout

import numpy as np

import autograd as ag
import autograd.distributed as dist
from autograd import backend, nn, optim
from autograd.data import DataLoader, DistributedSampler, TensorDataset

N_SAMPLES = 11  # divides evenly by neither 2 nor 3 ranks
STEPS = 20


def report(name: str, detail: str = "") -> None:
    dist.barrier()
    if dist.get_rank() == 0:
        print(f"ok {name} {detail}".rstrip(), flush=True)


def same_on_every_rank(arrays: list[np.ndarray], what: str) -> None:
    """Bit-identical: gather every rank's bytes and compare them exactly."""
    blob = np.frombuffer(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays),
                         dtype=np.uint8).copy()
    gathered = dist.all_gather(ag.tensor(blob))
    for r, g in enumerate(gathered):
        if not np.array_equal(g.numpy(), gathered[0].numpy()):
            raise AssertionError(f"{what}: rank {r}'s values differ bitwise from rank 0's")


# ------------------------------------------------------------------ collectives
DTYPES = ["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
          "uint64", "bool"]


def collectives() -> None:
    rank, size = dist.get_rank(), dist.get_world_size()
    base = np.arange(6).reshape(2, 3)
    for name in DTYPES:
        dt = np.dtype(name)
        vals = [(base + 3 * r) % 2 == 0 if dt.kind == "b" else (base + 3 * r).astype(dt)
                for r in range(size)]
        stack = np.stack(vals)
        ops = {"sum": stack.any(0) if dt.kind == "b" else stack.sum(0, dtype=dt),
               "max": stack.max(0), "min": stack.min(0)}
        if dt.kind == "f":
            ops["mean"] = stack.sum(0, dtype=dt) / dt.type(size)
        for op, expect in ops.items():
            for async_op in (False, True):
                t = ag.tensor(vals[rank].copy())
                work = dist.all_reduce(t, op=op, async_op=async_op)
                if work is not None:
                    work.wait()
                if t.dtype != dt or not np.array_equal(t.numpy(), expect.astype(dt)):
                    raise AssertionError(f"all_reduce {op} {name} async={async_op}: "
                                         f"{t.numpy()} != {expect}")
        src = size - 1
        t = ag.tensor(vals[rank].copy())
        dist.broadcast(t, src=src)
        if not np.array_equal(t.numpy(), vals[src]):
            raise AssertionError(f"broadcast {name}: {t.numpy()} != {vals[src]}")
        # Ranks contribute different shapes: rank r gives r + 1 rows.
        mine = np.resize(vals[rank].reshape(-1), (rank + 1, 2))
        got = dist.all_gather(ag.tensor(mine))
        for r in range(size):
            want = np.resize(vals[r].reshape(-1), (r + 1, 2))
            if got[r].dtype != dt or not np.array_equal(got[r].numpy(), want):
                raise AssertionError(f"all_gather {name} from rank {r}: {got[r].numpy()}")
    # PyTorch's form fills a list in place.
    slots = [ag.tensor(np.zeros(3)) for _ in range(size)]
    dist.all_gather(slots, ag.tensor(np.full(3, float(rank))))
    assert [s.numpy().tolist() for s in slots] == [[float(r)] * 3 for r in range(size)]
    # A non-contiguous tensor is reduced and written back in place.
    t = ag.tensor(np.arange(6.0).reshape(2, 3)).T
    dist.all_reduce(t)
    if not np.array_equal(t.numpy(), size * np.arange(6.0).reshape(2, 3).T):
        raise AssertionError("all_reduce of a transposed view")
    dist.barrier()
    report("collectives", f"{len(DTYPES)} dtypes x sum/mean/max/min, broadcast, all_gather")


# ------------------------------------------------------------------ DDP against one process
def make_data() -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(7)
    return g.standard_normal((N_SAMPLES, 5)), g.standard_normal((N_SAMPLES, 3))


def make_net(seed: int) -> nn.Module:
    ag.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.ReLU(),
                         nn.Linear(8, 3)).double()


def make_opt(kind: str, params) -> optim.Optimizer:
    if kind == "sgd":
        return optim.SGD(params, lr=0.05, momentum=0.9)
    return optim.Adam(params, lr=0.01)


def train_single(kind: str) -> list[np.ndarray]:
    x, y = make_data()
    net = make_net(seed=0)
    opt = make_opt(kind, net.parameters())
    for _ in range(STEPS):
        opt.zero_grad()
        ag.functional.mse_loss(net(ag.tensor(x)), ag.tensor(y)).backward()
        opt.step()
    return [p.numpy().copy() for p in net.parameters()]


def shard(n: int) -> slice:
    """This rank's contiguous share of n samples (sizes differ by at most one)."""
    rank, size = dist.get_rank(), dist.get_world_size()
    bounds = np.linspace(0, n, size + 1).round().astype(int)
    return slice(bounds[rank], bounds[rank + 1])


def ddp_matches_single_process() -> None:
    rank, size = dist.get_rank(), dist.get_world_size()
    x, y = make_data()
    part = shard(N_SAMPLES)
    for engine in ("compiled", "python"):
        if engine == "compiled" and backend._compiled_engine is None:
            continue
        with backend.use_engine(engine):
            for kind in ("sgd", "adam"):
                ref = train_single(kind)
                # Different initial weights on every rank: DDP must broadcast rank 0's.
                net = make_net(seed=0)
                if rank:
                    with ag.no_grad():
                        for p in net.parameters():
                            p.add_(1.0)
                model = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=0.001)
                assert len(model.reducer.buckets) > 1, "want several buckets in flight"
                opt = make_opt(kind, model.parameters())
                weight = size * (part.stop - part.start) / N_SAMPLES
                for _ in range(STEPS):
                    opt.zero_grad()
                    out = model(ag.tensor(x[part]))
                    loss = ag.functional.mse_loss(out, ag.tensor(y[part])) * weight
                    loss.backward()
                    opt.step()
                got = [p.numpy() for p in model.parameters()]
                err = max(float(np.max(np.abs(a - b))) for a, b in zip(got, ref))
                if err > 1e-12:
                    raise AssertionError(f"DDP {kind} ({engine} engine) differs from one "
                                         f"process by {err:.3g} on rank {rank}")
                same_on_every_rank(got, f"DDP {kind} parameters")
                model.remove_hooks()
                report(f"ddp_{kind}_{engine}", f"max |ddp - single| = {err:.2e}, "
                       f"shard {part.stop - part.start} of {N_SAMPLES}")


def ddp_no_sync_and_unused() -> None:
    rank, size = dist.get_rank(), dist.get_world_size()
    x, y = make_data()
    # Gradient accumulation: two micro-batches without sync, then a synchronised one; the
    # result is the gradient of the sum of the three over all ranks, divided by the size.
    net = make_net(seed=1)
    model = nn.parallel.DistributedDataParallel(net)
    g = np.random.default_rng(100 + rank)
    xs = [g.standard_normal((4, 5)) for _ in range(3)]
    with model.no_sync():
        for xb in xs[:2]:
            model(ag.tensor(xb)).sum().backward()
    local = [p.grad.numpy().copy() for p in net.parameters()]
    model(ag.tensor(xs[2])).sum().backward()
    reference = make_net(seed=1)
    for r in range(size):
        gr = np.random.default_rng(100 + r)
        for xb in [gr.standard_normal((4, 5)) for _ in range(3)]:
            reference(ag.tensor(xb)).sum().backward()
    for p, q, lo in zip(net.parameters(), reference.parameters(), local):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy() / size, rtol=0, atol=1e-12)
        if size > 1 and np.allclose(lo, p.grad.numpy()):
            raise AssertionError("no_sync did not keep local gradients local")
    model.remove_hooks()
    # A parameter unused everywhere keeps grad None; one used on some ranks only gets the
    # average; without find_unused_parameters a missing gradient is an error on every rank.
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.dead = nn.Linear(2, 1), nn.Linear(2, 1), nn.Linear(2, 1)

        def forward(self, x, use_b):
            return self.a(x) + self.b(x) * 0.0 if use_b else self.a(x)

    heads = TwoHeads().double()
    model = nn.parallel.DistributedDataParallel(heads, find_unused_parameters=True)
    model(ag.tensor(np.ones((1, 2))), rank == 0).sum().backward()
    assert heads.dead.weight.grad is None and heads.dead.bias.grad is None
    np.testing.assert_array_equal(heads.b.weight.grad.numpy(), np.zeros((1, 2)))
    np.testing.assert_allclose(heads.a.weight.grad.numpy(), np.ones((1, 2)), atol=0)
    model.remove_hooks()
    heads.zero_grad()
    model = nn.parallel.DistributedDataParallel(heads)
    try:
        model(ag.tensor(np.ones((1, 2))), True).sum().backward()
    except RuntimeError as exc:
        assert "received no gradient" in str(exc) and "dead.weight" in str(exc), exc
    else:
        raise AssertionError("an unused parameter went unnoticed")
    # The next step still works (the failed one left nothing in flight).
    model.remove_hooks()
    heads.zero_grad()
    model = nn.parallel.DistributedDataParallel(heads, find_unused_parameters=True)
    model(ag.tensor(np.ones((1, 2))), True).sum().backward()
    model.remove_hooks()
    report("ddp_no_sync_unused")


def ddp_mismatch() -> None:
    rank = dist.get_rank()
    width = 4 if rank != 1 else 5  # rank 1 builds a different model
    ag.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, width), nn.Linear(width, 2))
    try:
        nn.parallel.DistributedDataParallel(net)
    except ValueError as exc:
        msg = str(exc)
        if dist.get_world_size() > 1:
            assert "rank 1" in msg and "'0.weight'" in msg, msg
    else:
        if dist.get_world_size() > 1:
            raise AssertionError("a model that differs between ranks was accepted")
    net = nn.Sequential(nn.Linear(3, 4))
    try:
        nn.parallel.DistributedDataParallel(net, bucket_cap_mb=25 if rank != 1 else 1)
    except ValueError as exc:
        assert "bucket_cap_mb is 1.0 on rank 1 but 25.0 on rank 0" in str(exc), exc
    else:
        if dist.get_world_size() > 1:
            raise AssertionError("different bucket settings were accepted")
    from autograd import keras
    model = keras.Sequential([keras.layers.Dense(2, input_dim=3)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((5 if rank != 1 else 6, 3))
    try:
        model.fit(x, np.ones((len(x), 2)), verbose=0)
    except ValueError as exc:
        assert "rank 1 has x (6, 3)" in str(exc), exc
    else:
        if dist.get_world_size() > 1:
            raise AssertionError("different training data on the ranks was accepted")
    report("ddp_mismatch")


def ddp_broadcasts_buffers() -> None:
    rank = dist.get_rank()
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    with ag.no_grad():
        net[1].running_mean.fill_(float(rank))
    model = nn.parallel.DistributedDataParallel(net)
    assert np.all(net[1].running_mean.numpy() == 0.0)
    out = model(ag.tensor(np.random.default_rng(rank).standard_normal((6, 3))))
    out.sum().backward()
    same_on_every_rank([p.grad.numpy() for p in net.parameters()], "BatchNorm model grads")
    model.remove_hooks()
    report("ddp_buffers")


# ------------------------------------------------------------------ sampler and Keras
def sampler_partitions() -> None:
    size = dist.get_world_size()
    for n in (12, N_SAMPLES):
        for drop_last in (False, True):
            sampler = DistributedSampler(range(n), shuffle=True, seed=3, drop_last=drop_last)
            seen = []
            for epoch in range(3):
                sampler.set_epoch(epoch)
                loader = DataLoader(TensorDataset(np.arange(n)), batch_size=2, sampler=sampler)
                mine = np.concatenate([b[0].numpy() for b in loader])
                everyone = dist.all_gather(ag.tensor(mine))
                total = np.concatenate([e.numpy() for e in everyone])
                counts = np.bincount(total, minlength=n)
                if drop_last:
                    assert np.all(counts <= 1) and len(total) == n - n % size
                else:
                    assert np.all(counts >= 1) and counts.sum() == -(-n // size) * size
                    assert (counts > 1).sum() == counts.sum() - n
                seen.append(tuple(everyone[0].numpy()))
            assert len(set(seen)) == 3, "set_epoch must change the order"
    report("sampler")


def keras_fit() -> None:
    from autograd import keras
    rank = dist.get_rank()
    x, y = make_data()

    def build():
        ag.manual_seed(5)
        m = keras.Sequential([keras.layers.Dense(8, input_dim=5, activation="tanh"),
                              keras.layers.Dense(3)])
        m.module.double()
        m.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
        return m

    # Single-process reference first (the group is taken away and restored around it).
    comm = dist._comm
    dist.destroy_process_group()
    ref = build()
    ag.manual_seed(9)
    ref_hist = ref.fit(x, y, batch_size=4, epochs=3, verbose=0)
    dist.init_process_group(comm=comm)
    model = build()
    if rank:
        model.set_weights([w + 1.0 for w in model.get_weights()])  # fit must broadcast
    ag.manual_seed(9 + rank)  # rank 0's shuffle is the one used
    out = io.StringIO()
    with redirect_stdout(out):
        hist = model.fit(x, y, batch_size=4, epochs=3, verbose=2)
    err = max(float(np.max(np.abs(a - b)))
              for a, b in zip(model.get_weights(), ref.get_weights()))
    assert err < 1e-12, f"Keras data-parallel fit differs from one process by {err}"
    np.testing.assert_allclose(hist.history["loss"], ref_hist.history["loss"], rtol=1e-12)
    printed = out.getvalue()
    assert (rank == 0) == ("Epoch 3/3" in printed), (rank, printed)
    same_on_every_rank(model.get_weights(), "Keras weights")
    # verbose=1 reduces the running loss at every step for the progress display.
    again = build()
    ag.manual_seed(9)
    with redirect_stdout(io.StringIO()):
        again.fit(x, y, batch_size=4, epochs=3, verbose=1)
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    report("keras_fit", f"max |ddp - single| = {err:.2e}")
    keras_classifier_with_validation_and_checkpoints()


def keras_classifier_with_validation_and_checkpoints() -> None:
    """Accuracy, validation_split, EarlyStopping and ModelCheckpoint: logs equal to one
    process's; checkpoints written by rank 0 only."""
    import os
    import shutil
    import tempfile

    from autograd import keras
    rank = dist.get_rank()
    g = np.random.default_rng(3)
    x = g.standard_normal((23, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    folder = dist.allgather_json(tempfile.mkdtemp() if rank == 0 else None)[0]

    def build():
        ag.manual_seed(1)
        m = keras.Sequential([keras.layers.Dense(6, input_dim=4, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
        m.module.double()
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    def fit(m, name):
        ag.manual_seed(2)
        cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=2),
               keras.callbacks.ModelCheckpoint(os.path.join(folder, name + "-{epoch}.st"),
                                               monitor="val_accuracy", save_best_only=False)]
        return m.fit(x, y, batch_size=5, epochs=4, validation_split=0.3, verbose=0,
                     callbacks=cbs).history

    comm = dist._comm
    dist.destroy_process_group()
    ref = fit(build(), "single")
    dist.init_process_group(comm=comm)
    hist = fit(build(), f"rank{rank}")
    assert sorted(hist) == ["accuracy", "loss", "val_accuracy", "val_loss"], sorted(hist)
    for k in ref:
        np.testing.assert_allclose(hist[k], ref[k], rtol=1e-10, atol=1e-12, err_msg=k)
    dist.barrier()
    if rank == 0:
        files = sorted(os.listdir(folder))
        epochs = len(hist["loss"])
        want = sorted([f"rank0-{e}.st" for e in range(1, epochs + 1)] +
                      [f"single-{e}.st" for e in range(1, epochs + 1)] * dist.get_world_size())
        assert sorted(set(files)) == sorted(set(want)), files  # no rank1-*, rank2-* files
        shutil.rmtree(folder)
    report("keras_classifier")


def main(argv: list[str]) -> None:
    dist.init_process_group()
    dist.init_process_group()  # idempotent
    which = argv[1] if len(argv) > 1 else "all"
    if which == "raise":
        if dist.get_rank() == 1:
            raise RuntimeError("rank 1 fails on purpose")
        dist.barrier()  # the others would wait here forever without the abort
        return
    scenarios = [collectives, ddp_matches_single_process, ddp_no_sync_and_unused, ddp_mismatch,
                 ddp_broadcasts_buffers, sampler_partitions, keras_fit]
    for fn in scenarios:
        if which in ("all", fn.__name__):
            fn()
    report("done", f"world size {dist.get_world_size()}")


if __name__ == "__main__":
    main(sys.argv)
