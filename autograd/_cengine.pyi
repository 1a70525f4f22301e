"""Type stub for autograd._cengine: autograd/engine.py compiled by Cython (same functions)."""
from .engine import count_consumers as count_consumers
from .engine import run_backward as run_backward
from .engine import topological_order as topological_order

__all__ = ["run_backward", "topological_order", "count_consumers"]
