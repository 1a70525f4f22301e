"""Datasets and a batching loader: full-batch, stochastic and mini-batch training are all one
``batch_size`` away (``len(dataset)`` / ``1`` / ``k``).

A :class:`TensorDataset` holds whole arrays, and :class:`DataLoader` gathers each batch by
fancy-indexing those arrays at once, so no Python loop runs per sample. Any other object with
``__len__`` and ``__getitem__`` works too (samples are then fetched one by one and stacked), and a
dataset may offer ``__getitems__(indices)`` to fetch a whole batch itself.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import creation
from .tensor import Tensor, _to_array

__all__ = ["DataLoader", "Dataset", "DistributedSampler", "TensorDataset"]


@runtime_checkable
class Dataset(Protocol):
    """What a loader needs: a length and integer indexing returning one sample (a tuple)."""

    def __len__(self) -> int:
        """The number of samples."""
        ...

    def __getitem__(self, index: int) -> Any:
        """Sample ``index``: a tuple of arrays or Tensors (or a single one)."""
        ...


class TensorDataset:
    """Samples are the rows of several arrays sharing their first dimension (e.g. inputs and
    targets). Arrays are kept as given (Tensors as their underlying arrays, no copy)."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: need at least one array")
        self.arrays: tuple[np.ndarray, ...] = tuple(
            a._data if isinstance(a, Tensor) else _to_array(a, copy=False) for a in arrays)
        for i, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is a scalar; every array needs a "
                                 f"first (sample) dimension")
        lengths = [a.shape[0] for a in self.arrays]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(f"TensorDataset: arrays must share their first dimension (the "
                             f"number of samples); got shapes {shapes}")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        """Sample ``index`` (an int, slice or index array) from every array, as Tensors."""
        return tuple(Tensor._wrap(np.asarray(a[index])) for a in self.arrays)

    def __getitems__(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        """A whole batch in one fancy-indexing gather per array (copies, never views)."""
        return tuple(Tensor._wrap(a[indices]) for a in self.arrays)


def _collate(samples: list[Any]) -> tuple[Tensor, ...]:
    """Stack per-sample tuples field by field into batch Tensors."""
    first = samples[0]
    if not isinstance(first, (tuple, list)):
        samples = [(s,) for s in samples]
        first = samples[0]
    fields = []
    for j in range(len(first)):
        parts = [s[j]._data if isinstance(s[j], Tensor) else np.asarray(s[j]) for s in samples]
        fields.append(Tensor._wrap(_to_array(np.stack(parts), copy=False)))
    return tuple(fields)


class DistributedSampler:
    """The indices of one rank's share of ``dataset`` for data-parallel training (PyTorch's
    ``DistributedSampler``): each epoch every rank draws the same permutation (seeded by
    ``seed + epoch``; call :meth:`set_epoch` at the start of each epoch) and takes every
    ``num_replicas``-th index from position ``rank``. Every rank gets the same number of
    samples, so all take the same number of steps: unless ``drop_last``, the permutation is
    padded by repeating its first indices up to a multiple of ``num_replicas``; with
    ``drop_last`` its tail is dropped instead. ``num_replicas`` and ``rank`` default to the
    process group's (:mod:`autograd.distributed`)."""

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from . import distributed
            if not distributed.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas= and rank=, or call "
                                   "autograd.distributed.init_process_group() first")
            num_replicas = distributed.get_world_size() if num_replicas is None \
                else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) \
                or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, "
                             f"got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) \
                or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in 0..{num_replicas - 1}, "
                             f"got {rank!r}")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        self.num_samples = n // self.num_replicas if self.drop_last \
            else -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (the same on every rank) from the next iteration."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, as an int64 array."""
        n = len(self.dataset)
        order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle \
            else np.arange(n)
        if self.total_size > n:  # pad by repeating the start (as often as needed)
            order = np.resize(order, self.total_size)
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples


class DataLoader:
    """Iterate over a dataset in batches, each a tuple of Tensors (one per dataset field).

    ``shuffle=True`` draws a new permutation every epoch (every ``iter()``) from a NumPy
    generator seeded with ``seed``; without a seed it draws from autograd's default generator,
    so :func:`autograd.manual_seed` makes the order reproducible. ``drop_last`` drops a final
    batch smaller than ``batch_size``. ``sampler`` (e.g. a :class:`DistributedSampler`), an
    iterable of indices with a length, chooses the samples and their order instead of
    ``shuffle``.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None,
                 sampler: Any = None) -> None:
        if sampler is not None:
            if shuffle:
                raise ValueError("DataLoader: sampler and shuffle=True are exclusive (the "
                                 "sampler decides the order; DistributedSampler shuffles "
                                 "itself)")
            if not hasattr(sampler, "__iter__") or not hasattr(sampler, "__len__"):
                raise TypeError(f"DataLoader: sampler must be an iterable of indices with a "
                                f"length, got {type(sampler).__name__}")
        self.sampler = sampler
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__, got "
                            f"{type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        # Its own generator, so a seeded loader's order does not depend on other random draws.
        self._generator = np.random.default_rng(seed) if seed is not None else None

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        g = self._generator if self._generator is not None else creation.default_generator()
        return g.permutation(n)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order = self._order()
        getitems = getattr(self.dataset, "__getitems__", None)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if getitems is not None:
                yield tuple(getitems(idx))
            else:
                yield _collate([self.dataset[int(i)] for i in idx])
