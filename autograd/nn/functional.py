"""``autograd.nn.functional``: :mod:`autograd.functional` under PyTorch's familiar path, so
``import autograd.nn.functional as F`` works."""
from __future__ import annotations

from ..functional import *  # noqa: F401,F403
from ..functional import __all__  # noqa: F401
