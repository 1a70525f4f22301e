"""Numerical gradient checking: central finite differences against ``backward()``.

Follows PyTorch's gradcheck: float64, eps 1e-6, atol 1e-5, rtol 1e-3; the full mode compares
whole Jacobians, the fast mode compares one random projection u^T J v per input.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

from .errors import GradcheckError
from .grad_mode import enable_grad
from .tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck"]


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, fast_mode: bool = False,
              seed: int | None = 0) -> bool:
    """Check ``fn``'s analytical gradients against central differences; True if they agree.

    ``inputs`` are the tensors passed to ``fn``; those with ``requires_grad=True`` are checked.
    ``fn`` returns a Tensor (any shape). In full mode every Jacobian entry must satisfy
    ``|analytical - numerical| <= atol + rtol * |numerical|``; in fast mode (``fast_mode=True``)
    one random projection per input must. A mismatch raises :class:`GradcheckError` naming the
    input and showing both Jacobians (or both projections). Inputs should be float64: float32
    ones are checked as given, with a warning that the check is unreliable.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}, not float64; finite "
                          f"differences at eps={eps} are unreliable in this precision",
                          UserWarning, stacklevel=2)
    base = [t._data.copy() if isinstance(t, Tensor) else t for t in inputs]

    def evaluate(arrays: list, grad: bool = False):
        args = [Tensor(a, requires_grad=(grad and i in checked)) if isinstance(inputs[i], Tensor)
                else a for i, a in enumerate(arrays)]
        with enable_grad():
            out = fn(*args)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
        return args, out

    _, out0 = evaluate(base)
    out_shape = out0.shape
    rng = np.random.default_rng(seed)

    def analytical(cotangent: np.ndarray) -> list[np.ndarray]:
        args, out = evaluate(base, grad=True)
        if not out.requires_grad:
            return [np.zeros_like(base[i]) for i in checked]
        out.backward(cotangent.astype(out.dtype))
        return [np.zeros_like(base[i]) if args[i].grad is None else args[i].grad._data
                for i in checked]

    def numerical(i: int, direction: np.ndarray) -> np.ndarray:
        """(f(x + eps d) - f(x - eps d)) / (2 eps), flattened."""
        plus = list(base)
        minus = list(base)
        plus[i] = base[i] + eps * direction
        minus[i] = base[i] - eps * direction
        fp = evaluate(plus)[1]._data.astype(np.float64)
        fm = evaluate(minus)[1]._data.astype(np.float64)
        return ((fp - fm) / (2 * eps)).ravel()

    if fast_mode:
        u = rng.standard_normal(out_shape)
        grads = analytical(u)
        for k, i in enumerate(checked):
            v = rng.standard_normal(base[i].shape).astype(base[i].dtype)
            a = float(np.sum(grads[k] * v))
            n = float(np.dot(u.ravel(), numerical(i, v)))
            if not abs(a - n) <= atol + rtol * abs(n):
                raise GradcheckError(
                    f"gradcheck (fast mode): input {i} of shape {base[i].shape}: the random "
                    f"projection u^T J v differs\n  analytical: {a!r}\n  numerical:  {n!r}")
        return True

    n_out = int(np.prod(out_shape))
    analytic = [np.zeros((n_out, base[i].size)) for i in checked]
    for r in range(n_out):  # one backward per output element gives row r of every Jacobian
        u = np.zeros(n_out)
        u[r] = 1
        for k, g in enumerate(analytical(u.reshape(out_shape))):
            analytic[k][r] = g.ravel()
    for k, i in enumerate(checked):
        shape = base[i].shape
        numeric = np.zeros((n_out, base[i].size))
        for j in range(base[i].size):
            d = np.zeros(base[i].size, dtype=base[i].dtype)
            d[j] = 1
            numeric[:, j] = numerical(i, d.reshape(shape))
        if not np.all(np.abs(analytic[k] - numeric) <= atol + rtol * np.abs(numeric)):
            with np.printoptions(precision=6, suppress=True, threshold=200):
                raise GradcheckError(
                    f"gradcheck: Jacobian mismatch for input {i} of shape {shape} "
                    f"(output shape {out_shape})\nanalytical:\n{analytic[k]}\n"
                    f"numerical:\n{numeric}")
    return True


def gradgradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor] | Tensor,
                  grad_outputs: Sequence[Tensor] | Tensor | None = None, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, fast_mode: bool = False,
                  seed: int | None = 0) -> bool:
    """Check second derivatives: :func:`gradcheck` applied to ``fn``'s gradient.

    As PyTorch's gradgradcheck: the function checked maps (inputs, cotangents u) to
    ``grad(fn(inputs), inputs, u, create_graph=True)``, flattened into one tensor, so both
    d/dx (the Hessian-vector products) and d/du (the Jacobian again) of the recorded backward
    are compared with central differences of it. ``grad_outputs`` are the cotangents u (random
    normal, float64, by default). Raises :class:`GradcheckError` on a mismatch, else True.
    """
    from . import functional as F
    from .gradients import grad

    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradgradcheck: no input has requires_grad=True, so nothing to check")
    with enable_grad():
        out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradgradcheck: fn must return a Tensor, got {type(out).__name__}")
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        us = (Tensor(rng.standard_normal(out.shape).astype(out.dtype), requires_grad=True),)
    else:
        us = (grad_outputs,) if isinstance(grad_outputs, Tensor) else tuple(grad_outputs)
    n = len(inputs)

    def first_derivatives(*args: Tensor) -> Tensor:
        # gradcheck's finite differences pass inputs that do not require grad: make them
        # leaves that do, so the gradient exists (its dependence on them is what is checked)
        xs = [Tensor(a._data, requires_grad=True) if i in checked and not a.requires_grad
              else a for i, a in enumerate(args[:n])]
        y = fn(*xs)
        if not y.requires_grad:
            return F.concatenate([F.reshape(Tensor._wrap(np.zeros_like(xs[i]._data)), (-1,))
                                  for i in checked])
        gs = grad(y, [xs[i] for i in checked], grad_outputs=args[n], create_graph=True,
                  materialize_grads=True)
        return F.concatenate([F.reshape(g, (-1,)) for g in gs])

    return gradcheck(first_derivatives, inputs + us, eps=eps, atol=atol, rtol=rtol,
                     fast_mode=fast_mode, seed=seed)
