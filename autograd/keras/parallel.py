"""Data-parallel ``fit`` / ``evaluate`` for the Keras front, used when a process group of more
than one process is initialised (:mod:`autograd.distributed`).

As in Keras's distribution strategies, ``batch_size`` is the global batch: every rank walks the
same sequence of global batches (rank 0 draws the shuffle and broadcasts it) and computes on its
contiguous slice of each. Its loss is weighted by ``world_size * local / global`` samples, so the
averaged gradient is the gradient of the global batch's mean loss and training matches a single
process up to rounding. Logged values are reduced over the ranks; only rank 0 prints.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .. import creation
from .. import distributed as dist
from ..tensor import Tensor

__all__ = ["active", "is_rank0", "ShardedBatches", "reduce_sums", "shard_of",
           "broadcast_weights", "check_same_data"]


def active() -> bool:
    """Whether training should be data-parallel: a group of more than one process exists."""
    return dist.is_initialized() and dist.get_world_size() > 1


def is_rank0() -> bool:
    """Whether this process is the one that prints and writes files."""
    return not dist.is_initialized() or dist.get_rank() == 0


def shard_of(indices: np.ndarray) -> np.ndarray:
    """This rank's contiguous slice of ``indices`` (sizes differ by at most one)."""
    return np.array_split(indices, dist.get_world_size())[dist.get_rank()]


def reduce_sums(values: list[float]) -> list[float]:
    """Element-wise sums over all ranks (float64)."""
    t = Tensor._wrap(np.asarray(values, dtype=np.float64))
    dist.all_reduce(t, "sum")
    return t.numpy().tolist()


class ShardedBatches:
    """The global batches of ``x``, ``y``: yields (local x, local y, loss weight) per step;
    the same number of steps on every rank (a rank may get an empty slice)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool) -> None:
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def _order(self) -> np.ndarray:
        n = len(self.x)
        if not self.shuffle:
            return np.arange(n)
        order = Tensor._wrap(creation.default_generator().permutation(n).astype(np.int64))
        dist.broadcast(order, 0)  # every rank follows rank 0's shuffle
        return order.numpy()

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, float]]:
        order = self._order()
        size = dist.get_world_size()
        for b in range(len(self)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            mine = shard_of(batch)
            weight = size * len(mine) / len(batch)
            yield Tensor._wrap(self.x[mine]), Tensor._wrap(self.y[mine]), weight


def check_same_data(x: np.ndarray, y: np.ndarray) -> None:
    """Every rank must pass the same training arrays (each rank takes its slices of them):
    compare their shapes and a checksum, naming the first rank that differs."""
    mine = {"x": list(x.shape), "y": list(y.shape),
            "sum": [float(np.sum(x, dtype=np.float64)), float(np.sum(y, dtype=np.float64))]}
    everyone = dist.allgather_json(mine)
    first = everyone[0]
    for rank, theirs in enumerate(everyone):
        if theirs == first:
            continue
        if theirs["x"] == first["x"] and theirs["y"] == first["y"]:
            what = "the same shapes but other values"
        else:
            what = (f"x {tuple(theirs['x'])}, y {tuple(theirs['y'])} where rank 0 has "
                    f"x {tuple(first['x'])}, y {tuple(first['y'])}")
        raise ValueError(f"fit: in data-parallel training every rank passes the whole data "
                         f"set (each trains on its slices of every batch), but rank {rank} "
                         f"has {what}")


def broadcast_weights(module: Any) -> Any:
    """Wrap ``module`` in DistributedDataParallel (which sends rank 0's weights everywhere and
    averages gradients from then on); returns the wrapper."""
    from ..nn.parallel import DistributedDataParallel
    return DistributedDataParallel(module)
