"""autograd: a reverse-mode automatic-differentiation engine with a compiled numeric core.

Build tensors, apply differentiable operations, call ``backward()``; check any gradient with
:func:`gradcheck`. ``autograd.backend.info()`` says which kernels and which engine run.
"""
from __future__ import annotations

# Marks this __init__ as autograd-engine's, for the mixed-installation check (_install_check).
_AUTOGRAD_ENGINE = True

import os as _os

from . import _install_check

_install_check.check_mixed_installation(_os.path.dirname(__file__))

import numpy as np

from . import backend, data, datasets, functional, nn, optim, viz
from .creation import (
    arange,
    default_generator,
    eye,
    from_numpy,
    full,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .errors import AnomalyError, FreedGraphError, GradcheckError, InplaceModificationError
from .functional import (  # PyTorch's names, beside the NumPy ones above
    abs,
    argmax,
    argmin,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cat,
    clamp,
    clip,
    clone,
    concatenate,
    cross_entropy,
    exp,
    expand,
    flatten,
    gelu,
    leaky_relu,
    linear,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mse_loss,
    norm,
    permute,
    pow,
    prod,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sum,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
)
from .grad_mode import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .gradcheck import gradcheck, gradgradcheck
from .gradients import grad
from .jit import CompileError, compile
from .registration import serializable
from .serialization import load, load_state_dict, save, save_state_dict
from .tensor import Tensor
from .transforms import hessian, hvp, jacobian, jvp, vhp, vjp

__version__ = "0.1.0"

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)


def set_num_threads(n: int) -> None:
    """Threads of the native core's one pool: its kernels and its BLAS (one setting for both).

    1 <= n <= the CPUs this process may run on (``backend.info()["max_threads"]``); anything
    else raises ValueError naming the range. The default is every such CPU, or the environment
    variable ``AUTOGRAD_NUM_THREADS``. Small work never leaves the calling thread whatever n is.
    """
    from .backend.threadpool import check_num_threads
    if backend.native_available():
        native = backend._load_native()
        native.set_num_threads(check_num_threads(n, native._C.max_threads()))
    else:
        import os
        check_num_threads(n, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else os.cpu_count() or 1)


def get_num_threads() -> int:
    """Threads the native core uses (1 when it is not built)."""
    if backend.native_available():
        return int(backend._load_native().get_num_threads())
    return 1


__all__ = [
    "Tensor", "tensor", "from_numpy", "zeros", "ones", "full", "arange", "eye", "rand", "randn",
    "zeros_like", "ones_like", "manual_seed", "default_generator", "float32", "float64", "int64",
    "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly", "gradcheck",
    "GradcheckError", "AnomalyError", "FreedGraphError", "InplaceModificationError", "backend",
    "functional", "set_num_threads", "get_num_threads", "nn", "optim", "data", "datasets",
    "save", "load", "serializable", "save_state_dict", "load_state_dict",
    "grad", "gradgradcheck", "vjp", "jvp", "jacobian", "hessian", "hvp", "vhp",
    "abs", "clip", "concatenate", "cross_entropy", "exp", "expand", "flatten", "gelu",
    "leaky_relu", "linear", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum",
    "mean", "min", "minimum", "mse_loss", "permute", "relu", "reshape", "sigmoid", "softmax",
    "sqrt", "stack", "sum", "tanh", "transpose", "var", "where", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "clamp", "square",
    "linspace", "argmax", "argmin", "cat", "clone", "norm", "pow", "prod", "squeeze", "std",
    "unsqueeze",
]
__all__ += ["viz"]
__all__ += ["compile", "CompileError"]

# Submodules that load on first access: keras (the Keras front) and testing (hypothesis
# strategies, which need the test extra) cost nothing until used.
_LAZY_SUBMODULES = ("keras", "testing")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'autograd' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API only: internals (np, tensor, ops, engine, ...) stay importable but hidden."""
    return sorted(set(__all__) | set(_LAZY_SUBMODULES) | {"__version__"})


# AUTOGRAD_ENGINE=python asks for the pure-Python twin: the compiled engine is not missing then.
_install_check.warn_if_source_tree(_os.path.dirname(__file__), backend.native_available(),
                                   backend._compiled_engine is not None
                                   or backend.hotpath.requested() == "python")
