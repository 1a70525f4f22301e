"""Captured steps: :func:`compile` traces a step once and replays its kernel calls.

See :mod:`autograd.jit.compiler` (guards, cache, fallback) and :mod:`autograd.jit.trace`
(recording provider, buffers, replay).

Like the hot path, ``trace`` and ``compiler`` have compiled twins: the same sources compiled by
Cython as ``autograd.jit._ctrace`` and ``_ccompiler`` (CMakeLists.txt, section 6; the compiled
compiler imports the compiled trace; both use the ``.py`` ``fast`` and ``native_plan``, whose
closures Cython would keep in reference cycles: one scope object shared by all of a function's
inner functions), which run with the compiled hot path (a fresh step's first call, the trace, costs
about 15% less); the pure hot path (``AUTOGRAD_ENGINE=python``) runs the ``.py`` modules.
:data:`twin` says which runs (``backend.info()["jit"]``).
"""
from typing import TYPE_CHECKING

from .. import hotpath

#: Which twin of the jit runs: ``"compiled"`` or ``"python"`` (the compiled compiler imports
#: the compiled trace, built with it).
twin: str = "compiled" if hotpath.compiled_twin("autograd.jit._ccompiler") else "python"

if TYPE_CHECKING or twin == "python":
    from .compiler import Compiled, compile
    from .trace import CompileError
else:
    from ._ccompiler import Compiled, compile
    from ._ctrace import CompileError

__all__ = ["compile", "Compiled", "CompileError", "twin"]
