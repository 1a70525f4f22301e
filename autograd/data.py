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

__all__ = ["DataLoader", "Dataset", "TensorDataset"]


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


class DataLoader:
    """Iterate over a dataset in batches, each a tuple of Tensors (one per dataset field).

    ``shuffle=True`` draws a new permutation every epoch (every ``iter()``) from a NumPy
    generator seeded with ``seed``; without a seed it draws from autograd's default generator,
    so :func:`autograd.manual_seed` makes the order reproducible. ``drop_last`` drops a final
    batch smaller than ``batch_size``.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None) -> None:
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
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> np.ndarray:
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
