"""The op table: every differentiable op, its forward and its gradient side by side.

Each module holds one family; importing this package registers every op in
:data:`autograd.function.REGISTRY`. Ops work on raw arrays and call named kernels of the active
backend (``backend.k``); the public, validated entry points are in :mod:`autograd.functional`.
"""
from . import activation, arith, linalg, loss, reduce, shape  # noqa: F401  (registers ops)
