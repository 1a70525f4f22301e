"""Functions that make tensors, and the seedable random generator behind rand/randn."""
from __future__ import annotations

from typing import Any

import numpy as np

from .tensor import DEFAULT_DTYPE, Tensor, _check_dtype, _to_array

__all__ = ["tensor", "from_numpy", "zeros", "ones", "full", "arange", "eye", "rand", "randn",
           "zeros_like", "ones_like", "manual_seed", "default_generator", "linspace"]

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator behind ``rand``, ``randn``, initialisers and shuffling."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The generator used when no ``generator=`` is passed."""
    return _generator


def _dtype(dtype: Any) -> np.dtype:
    d = DEFAULT_DTYPE if dtype is None else np.dtype(dtype)
    _check_dtype(d)
    return d


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    if any(int(n) < 0 for n in shape):
        raise ValueError(f"negative dimension in shape {tuple(shape)}")
    return tuple(int(n) for n in shape)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, arrays or a Tensor).

    Python floats become float32, Python ints int64; NumPy arrays keep their dtype.
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array: np.ndarray, requires_grad: bool = False) -> Tensor:
    """A tensor sharing memory with ``array`` (its dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    t = Tensor._wrap(_to_array(array, copy=False))
    t.requires_grad = requires_grad
    return t


def _make(array: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._wrap(array)
    t.requires_grad = requires_grad
    return t


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return _make(np.zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _make(np.ones(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def full(shape: Any, value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor with every element ``value``."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return _make(np.full(_shape(shape), value, dtype=_dtype(dtype)), requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Zeros with ``t``'s shape and dtype."""
    return _make(np.zeros_like(t._data), requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Ones with ``t``'s shape and dtype."""
    return _make(np.ones_like(t._data), requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in [start, stop) (float32 unless ``dtype`` says otherwise)."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    return _make(np.arange(start, stop, step, dtype=_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix."""
    return _make(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False,
         generator: np.random.Generator | None = None) -> Tensor:
    """Uniform samples in [0, 1)."""
    g = generator or _generator
    return _make(g.random(_shape(shape)).astype(_dtype(dtype)), requires_grad)


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False,
          generator: np.random.Generator | None = None) -> Tensor:
    """Standard normal samples."""
    g = generator or _generator
    return _make(g.standard_normal(_shape(shape)).astype(_dtype(dtype)), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included (PyTorch's and
    NumPy's linspace; float32 unless ``dtype`` says otherwise)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    return _make(np.linspace(start, end, int(steps), dtype=_dtype(dtype)), requires_grad)
