"""Exceptions the engine raises, each naming what went wrong and where."""
from __future__ import annotations

from typing import Any


class GradcheckError(AssertionError):
    """An analytical gradient disagrees with its finite-difference estimate."""


class AnomalyError(RuntimeError):
    """Under ``detect_anomaly()``, a backward produced NaN or inf; names the op and its origin."""


class FreedGraphError(RuntimeError):
    """A backward ran through a graph whose saved arrays an earlier backward freed."""


class InplaceModificationError(RuntimeError):
    """An array a pending backward saved was changed in place since the forward pass."""


_CAST_METHOD = {"float32": ".float()", "float64": ".double()"}


def mixed_dtypes_message(op_name: str, dtype: Any, other: Any, inputs: tuple = ()) -> str:
    """The TypeError text for an op given mixed dtypes: names the argument to convert and the
    cast that fixes it.

    The cast goes towards what is being trained: an integer tensor becomes the float dtype; of
    two float dtypes, the one of the inputs that require grad (a model's parameters) wins, else
    the default float32. So float64 NumPy data fed to a float32 model is told to use .float().
    """
    import numpy as np

    if other.kind in "iu":
        target, wrong = dtype, other
    else:
        trained = {t._data.dtype for t in inputs if t._requires_grad}
        target = trained.pop() if len(trained) == 1 else np.dtype(np.float32)
        wrong = other if target == dtype else dtype
    where = next((i for i, t in enumerate(inputs) if t._data.dtype == wrong), None)
    which = f"argument {where} ({wrong})" if where is not None else f"the {wrong} tensor"
    cast = _CAST_METHOD.get(target.name, f".astype('{target}')")
    return (f"{op_name}: mixed dtypes {dtype} and {other}; convert one explicitly: "
            f"{which} to {target} with {cast} (or .astype('{target}'); for NumPy data, "
            f"ag.tensor(data, dtype='{target}')) - autograd never casts silently")
