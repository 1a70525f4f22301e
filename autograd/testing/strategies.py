"""Hypothesis strategies for tensors: small shapes up to 4-D (0-d and size-1 included), values
kept away from kinks and poles, and memory layouts that are not C-contiguous.

Values are drawn as float64 and cast later, so one example serves both float64 and float32.
Layouts are kept as names and applied with :func:`with_layout`, so a cast keeps the layout.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..creation import from_numpy
from ..tensor import Tensor

__all__ = [
    "LAYOUTS",
    "arrays",
    "away_from_zero",
    "axes",
    "broadcastable_shapes",
    "distinct_arrays",
    "floats",
    "grid",
    "layouts",
    "positive",
    "shapes",
    "tensors",
    "with_layout",
]

#: contiguous, transposed (F order), strided (every other element of a bigger array) and
#: reversed (negative strides): the layouts every op must accept.
LAYOUTS = ("contiguous", "transposed", "strided", "reversed")


def with_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """A copy of ``array`` with the same values laid out in memory as ``layout`` says."""
    if layout == "contiguous" or array.ndim == 0:
        return array.copy()
    if layout == "transposed":
        return array.T.copy().T
    if layout == "strided":
        big = np.zeros(tuple(2 * n for n in array.shape), dtype=array.dtype)
        view = big[(slice(None, None, 2),) * array.ndim]
        view[...] = array
        return view
    if layout == "reversed":
        return array[::-1].copy()[::-1]
    raise ValueError(f"with_layout: unknown layout {layout!r}; expected one of {LAYOUTS}")


def layouts() -> st.SearchStrategy[str]:
    """One of :data:`LAYOUTS`."""
    return st.sampled_from(LAYOUTS)


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1,
           max_side: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes; the defaults (up to 4-D, sides 1..3) keep full Jacobians cheap."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 4,
                         max_side: int = 3) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """``num_shapes`` shapes that broadcast together (size-1 axes and missing leading axes)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=1,
        max_side=max_side).map(lambda b: b.input_shapes)


def floats(lo: float = -2.0, hi: float = 2.0) -> st.SearchStrategy[float]:
    """Finite floats in [lo, hi], no subnormals."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from_zero(lo: float = 0.1, hi: float = 2.0) -> st.SearchStrategy[float]:
    """Floats with lo <= |x| <= hi: clear of the kink at 0 (abs, relu) or the pole (1/x)."""
    return st.one_of(floats(lo, hi), floats(-hi, -lo))


def positive(lo: float = 0.1, hi: float = 3.0) -> st.SearchStrategy[float]:
    """Floats in [lo, hi], for log and sqrt."""
    return floats(lo, hi)


def grid(step: float = 0.25, offset: float = 0.0, k: int = 8) -> st.SearchStrategy[float]:
    """offset + i * step for |i| <= k: values on two grids with offsets differing by step/2
    are never closer than step/2, which keeps maximum/minimum away from ties."""
    return st.integers(-k, k).map(lambda i: offset + i * step)


def arrays(shape: tuple[int, ...], elements: st.SearchStrategy[float] | None = None,
           ) -> st.SearchStrategy[np.ndarray]:
    """C-contiguous float64 arrays of ``shape`` with the given elements (default [-2, 2])."""
    return hnp.arrays(np.float64, shape, elements=elements if elements is not None
                      else floats())


def distinct_arrays(shape: tuple[int, ...], step: float = 1 / 16
                    ) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays with all values distinct and at least ``step`` apart (no ties for
    max/min); the values are exact in float32 too."""
    size = int(np.prod(shape))
    k = max(64, 2 * size)
    return hnp.arrays(np.int64, shape, elements=st.integers(-k, k), unique=True).map(
        lambda a: np.array(a * step, dtype=np.float64).reshape(shape))


@st.composite
def axes(draw: Any, ndim: int, allow_none: bool = True, allow_tuple: bool = True):
    """An ``axis`` argument for a reduction over an ``ndim``-D array: None, one int (maybe
    negative) or a tuple of distinct ints. A 0-d array always gets None."""
    if ndim == 0:
        return None
    kinds = (["none"] if allow_none else []) + ["int"] + (["tuple"] if allow_tuple else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


@st.composite
def tensors(draw: Any, shape: tuple[int, ...] | None = None, dtype: Any = np.float64,
            elements: st.SearchStrategy[float] | None = None, requires_grad: bool = False,
            layout: str | None = None) -> Tensor:
    """A Tensor wrapping (with :func:`autograd.from_numpy`) an array of any layout."""
    if shape is None:
        shape = draw(shapes())
    values = draw(arrays(shape, elements)).astype(dtype)
    chosen = layout if layout is not None else draw(layouts())
    return from_numpy(with_layout(values, chosen), requires_grad=requires_grad)
