"""Captured steps: :func:`compile` traces a step once and replays its kernel calls.

See :mod:`autograd.jit.compiler` (guards, cache, fallback) and :mod:`autograd.jit.trace`
(recording provider, buffers, replay).
"""
from .compiler import Compiled, compile
from .trace import CompileError

__all__ = ["compile", "Compiled", "CompileError"]
