"""MNIST data-parallel: the MLP of mnist_mlp.py trained by several processes on MPI.

Each process trains the same model on its share of every global batch; DistributedDataParallel
averages the gradients while backward runs, so every process steps to the same weights:

    mpiexec -n 2 python examples/mnist_ddp.py --data ../shared/data/mnist [--epochs 5]
    python examples/mnist_ddp.py --data ...       # alone: a world of size 1, same code

On a cluster, launch it with the cluster's MPI (``mpiexec -f hostfile -n 16 ...`` or ``srun``);
see the README's section on data-parallel training. Only rank 0 prints.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import autograd as ag
import autograd.distributed as dist
from autograd import nn, optim
from autograd.data import DataLoader, DistributedSampler, TensorDataset
from autograd.datasets import load_mnist


def build() -> nn.Module:
    """784 -> 256 -> 128 -> 10 with ReLU, as in mnist_mlp.py."""
    return nn.Sequential(nn.Linear(784, 256, init="he"), nn.ReLU(),
                         nn.Linear(256, 128, init="he"), nn.ReLU(),
                         nn.Linear(128, 10, init="he"))


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    """Test accuracy over all ranks: each scores its slice, the counts are summed."""
    mine = np.array_split(np.arange(len(x)), dist.get_world_size())[dist.get_rank()]
    model.eval()
    correct = 0
    with ag.no_grad():
        for i in range(0, len(mine), batch):
            idx = mine[i:i + batch]
            correct += int((model(ag.tensor(x[idx])).numpy().argmax(1) == y[idx]).sum())
    model.train()
    counts = ag.tensor(np.array([correct, len(mine)], dtype=np.int64))
    dist.all_reduce(counts, "sum")
    return int(counts[0]) / int(counts[1])


def main(argv: list[str] | None = None) -> dict:
    """Train and test; returns the test accuracy, seconds per epoch and the world size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="directory holding the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128,
                        help="the global batch, split evenly across the processes")
    parser.add_argument("--limit", type=int, default=None,
                        help="train on only the first N images (for a quick check)")
    args = parser.parse_args(argv)

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the number "
                         f"of processes ({world})")
    x_train, y_train = load_mnist(args.data, kind="train")
    x_test, y_test = load_mnist(args.data, kind="test")
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    say = print if rank == 0 else (lambda *a, **k: None)
    say(f"{world} process(es); training on {len(x_train)} images, testing on {len(x_test)}")

    ag.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(build())  # rank 0's weights everywhere
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    data = TensorDataset(x_train, y_train)
    sampler = DistributedSampler(data, shuffle=True, seed=0)  # this rank's share
    loader = DataLoader(data, batch_size=args.batch_size // world, sampler=sampler)
    epoch_times, acc = [], 0.0
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)  # a new shuffle, the same on every rank
        start = time.perf_counter()
        waited = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()  # returns with the gradients averaged over the ranks
            waited += model.reducer.last_wait_s
            opt.step()
        epoch_times.append(time.perf_counter() - start)
        acc = evaluate(model, x_test, y_test)
        say(f"epoch {epoch}: last batch loss {loss.item():.4f}  test accuracy {acc:.2%}  "
            f"({epoch_times[-1]:.2f} s, {waited:.2f} s waiting for gradients)")
    dist.destroy_process_group()
    return {"test_accuracy": acc, "epoch_seconds": epoch_times, "world_size": world}


if __name__ == "__main__":
    main()
