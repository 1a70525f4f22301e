"""The NumPy provider's two twins: ``numpy_kernels.py`` as Python (the pure hot path's) and the
same source compiled by Cython as ``autograd.backend._cnumpy_kernels`` (the compiled hot path's).
Same names, signatures, docs, errors, warnings and bits; the right one runs with each hot path."""
from __future__ import annotations

import ast
import inspect
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import import_built, need_native, stdout_of_both_twins
from hypothesis import given
from hypothesis import strategies as st

from autograd import backend, hotpath
from autograd.backend import numpy_kernels as pure

PKG = Path(backend.__file__).resolve().parent
KERNELS = sorted(n for n, v in vars(pure).items()
                 if not n.startswith("_") and isinstance(v, types.FunctionType)
                 and v.__module__ == pure.__name__)


@pytest.fixture(scope="module")
def cy():
    """autograd.backend._cnumpy_kernels (built with _C, _ccore and _cengine by one CMake
    project), or a skip (a failure under AUTOGRAD_REQUIRE_NATIVE=1)."""
    return import_built("autograd.backend._cnumpy_kernels", "the compiled NumPy provider")


def test_the_hot_path_picks_its_twin():
    compiled = hotpath.core_name() == "compiled"
    if compiled:
        assert backend.numpy_provider.__name__ == "autograd.backend._cnumpy_kernels"
    else:  # the pure twin keeps the source module, untouched
        assert backend.numpy_provider is pure
    assert backend.info()["numpy_kernels"] == ("compiled" if compiled else "python")
    with backend.use("numpy"):
        assert backend.k is backend.numpy_provider
        assert backend.active() == "numpy"
        assert backend.info()["backend"] == "numpy"


def test_a_compiled_hot_path_with_native_built_has_the_compiled_provider():
    need_native()
    if hotpath.core_name() != "compiled":
        pytest.skip("this process runs the pure-Python twin (AUTOGRAD_ENGINE=python)")
    assert backend.numpy_provider is not pure
    assert not inspect.isfunction(backend.numpy_provider.add)  # a C function, not a frame


def test_a_missing_compiled_provider_is_an_error_only_when_compiled_was_asked_for(monkeypatch):
    # A build without _cnumpy_kernels (stale, or partial) under the compiled hot path: `auto`
    # runs numpy_kernels (and info() says so), AUTOGRAD_ENGINE=compiled refuses with the fix.
    monkeypatch.setitem(sys.modules, "autograd.backend._cnumpy_kernels", None)  # ImportError
    monkeypatch.delattr(backend, "_cnumpy_kernels", raising=False)  # an imported submodule
    monkeypatch.setattr(hotpath, "core_name", lambda: "compiled")
    monkeypatch.setattr(hotpath, "requested", lambda: "auto")
    assert backend._load_numpy_provider() is pure
    monkeypatch.setattr(hotpath, "requested", lambda: "compiled")
    with pytest.raises(RuntimeError, match="_cnumpy_kernels is not built: reinstall"):
        backend._load_numpy_provider()


def test_native_falls_back_to_the_provider_of_its_hot_path():
    need_native()
    from autograd.backend import native
    others = [n for n in KERNELS if n not in native.TABLE]
    assert others  # getitem, reshape, where, ... are NumPy's on the native provider too
    for name in others:
        assert getattr(native, name) is getattr(backend.numpy_provider, name), name
    for name in KERNELS:  # and every name still reads as the specification
        assert inspect.signature(getattr(native, name)) == inspect.signature(getattr(pure, name))


def test_every_kernel_compiled_with_its_signature_and_doc(cy):
    assert cy.__name__ == "autograd.backend._cnumpy_kernels"
    for name in KERNELS:
        k, ref = getattr(cy, name), getattr(pure, name)
        assert not inspect.isfunction(k), name  # compiled, not re-exported Python
        assert k.__name__ == name and k.__doc__ == ref.__doc__, name
        assert inspect.signature(k) == inspect.signature(ref), name
    assert cy.ACTIVATIONS == pure.ACTIVATIONS


def test_stub_lists_the_compiled_kernels():
    tree = ast.parse((PKG / "_cnumpy_kernels.pyi").read_text())
    stubbed = {a.asname for node in tree.body if isinstance(node, ast.ImportFrom)
               for a in node.names}
    assert stubbed == set(KERNELS) | {"ACTIVATIONS", "Axis"}


# --------------------------------------------------------------------------------------------
# Same bits, errors and warnings, kernel by kernel
# --------------------------------------------------------------------------------------------

def _calls(x, y, pos, t, dt):
    """(kernel, args) pairs covering every family on x, y (one shape), pos (> 0), t (classes)."""
    n, c = x.shape
    row, col, s = y[0], y[:, 0], dt(0.5)
    lin = pure.linear(x, y, col, "tanh")  # (n, n): w is y, (out=n, in=c)
    return [
        ("add", (x, row)), ("sub", (x, s)), ("mul", (x, y)), ("div", (x, y * 0)),
        ("pow", (x, y)), ("maximum", (x, y)), ("minimum", (x, row)),
        ("maximum_back", (x, y, y)), ("minimum_back", (x, x, y)), ("neg", (x,)),
        ("exp", (x * 100,)), ("log", (x,)), ("sqrt", (x,)), ("abs", (x,)), ("sign", (x,)),
        ("clip", (x, -0.5, None)), ("clip_back", (x, y, -0.5, 0.5)),
        ("where", (x > 0, x, y)), ("compare", (x, y, "le")),
        ("sigmoid", (x * 50,)), ("sigmoid_back", (x, y)), ("tanh", (x,)),
        ("tanh_back", (x, y)), ("relu", (x,)), ("relu_back", (x, y)),
        ("leaky_relu", (x, 0.1)), ("leaky_relu_back", (x, y, 0.1)), ("gelu", (x,)),
        ("gelu_back", (x, y)), ("gelu_erf", (x,)), ("gelu_erf_back", (x, y)),
        ("softmax", (x, 1)), ("softmax_back", (x, y, -1)), ("log_softmax", (x, 0)),
        ("log_softmax_back", (x, y, 1)), ("logsumexp", (x, 1)),
        ("logsumexp_back", (x, pure.logsumexp(x, 1), col, 1)),
        ("sum", (x, 0, True)), ("max", (x, None)), ("min", (x, 1)),
        ("extremum_back", (x, pure.max(x, 1), col, 1, False)),
        ("sum_to", (y, (1, c))), ("broadcast_to", (row, (n, c))), ("cast", (x, np.float64)),
        ("reshape", (x, (c, n))), ("transpose", (x, None)), ("getitem", (x, (slice(None), 0))),
        ("index_add", ((n, c), (np.array([0, 0]),), y[:2])),
        ("concatenate", ([x, y], 0)), ("stack", ([x, y], 1)), ("split", (x, [1, n - 1], 0)),
        ("matmul", (x, y, False, True)), ("linear", (x, y, col, "sigmoid")),
        ("linear_back", (x, y, lin, lin * s, "tanh", True)), ("linear", (x, y, None, None)),
        ("mse", (x, y, "sum")), ("mse_back", (x, y, np.asarray(s), "mean")),
        ("bce", (np.clip(pos / pos.max(), 0, 1), np.clip(np.abs(y), 0, 1), "none")),
        ("bce_back", (np.clip(pos / pos.max(), 0, 1), np.clip(np.abs(y), 0, 1), x, "none")),
        ("bce_with_logits", (x, np.clip(np.abs(y), 0, 1), "mean")),
        ("bce_with_logits_back", (x, np.clip(np.abs(y), 0, 1), np.asarray(s), "sum")),
        ("cross_entropy", (x, t, "mean")),
        ("cross_entropy_back", (pure.log_softmax(x, 1), t, np.asarray(s), "mean")),
    ]


def _flat(out):
    """A result as comparable (dtype, shape, bytes) items (tuples and lists item by item)."""
    if isinstance(out, (tuple, list)):
        return [i for o in out for i in _flat(o)]
    if out is None:
        return [None]
    a = np.asarray(out)
    return [(a.dtype, a.shape, a.tobytes())]


def _run(fn, args):
    """fn(*args) on copies (a kernel must not write its inputs), with every warning an error,
    as (result items, None) or (None, (exception type, message))."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return _flat(fn(*args)), None
        except Exception as exc:  # compared between the twins below
            return None, (type(exc), str(exc))


@given(n=st.integers(2, 5), c=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       f64=st.booleans(), specials=st.booleans())
def test_compiled_kernels_give_the_pure_twins_bits(cy, n, c, seed, f64, specials):
    rng = np.random.default_rng(seed)
    dt = np.float64 if f64 else np.float32
    x = rng.standard_normal((n, c)).astype(dt)
    y = rng.standard_normal((n, c)).astype(dt)
    if specials:  # IEEE edge values: the errstate blocks must behave the same when compiled
        x.flat[rng.integers(0, x.size, 3)] = [np.inf, -np.inf, np.nan]
        y.flat[0] = 0
    pos = np.abs(x) + dt(0.1)
    t = rng.integers(0, c, n)
    with np.errstate(all="ignore"):  # building arguments from inf/nan may warn; not the test
        calls = _calls(x, y, pos, t, dt)
    err_before = np.geterr()
    for name, args in calls:
        want = _run(getattr(pure, name), args)
        got = _run(getattr(cy, name), args)
        assert got == want, name
    assert np.geterr() == err_before  # errstate restored on the way out, compiled too


def test_compiled_kernels_raise_the_pure_twins_errors(cy):
    x = np.ones((2, 3), np.float32)
    cases = [("linear", (x, x, None, "swish")), ("linear_back", (x, x, x, x, "swish")),
             ("max", (np.zeros((0,), np.float32), None)), ("compare", (x, x, "lte")),
             ("reshape", (x, (4, 2))), ("matmul", (x, x))]
    for name, args in cases:
        want, got = _run(getattr(pure, name), args), _run(getattr(cy, name), args)
        assert want[1] is not None, name  # each case really is an error
        assert got == want, name


def test_compiled_optimizer_steps_update_in_place_with_the_same_bits(cy):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s).astype(np.float32) for s in ((3, 2), (2,))]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in start]
    results = []
    for mod in (pure, cy):
        ps = [p.copy() for p in start]
        bufs = [np.zeros_like(p) for p in ps]
        m, v = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
        for step in range(1, 4):
            mod.sgd_step(ps, grads, bufs, 0.1, momentum=0.9, nesterov=True,
                         weight_decay=0.01, first_step=step == 1)
            mod.adam_step(ps, grads, m, v, step, 0.01, weight_decay=0.1, decoupled=True)
        results.append(_flat(ps + bufs + m + v))
    assert results[0] == results[1]
    assert not all(np.array_equal(a, b) for a, b in zip(start, ps))  # it really moved


# --------------------------------------------------------------------------------------------
# Whole programs: the compiled hot path with the compiled provider against the pure twin
# --------------------------------------------------------------------------------------------

_GRADS_SCRIPT = r"""
import hashlib, sys
import numpy as np
import autograd as ag
from autograd import backend, nn, functional as F
digest = hashlib.sha256()
with backend.use(sys.argv[1]):
    rng = np.random.default_rng(0)
    for dt in ("float32", "float64"):
        x = ag.tensor(rng.standard_normal((6, 5)), dtype=dt, requires_grad=True)
        w = ag.tensor(rng.standard_normal((4, 5)), dtype=dt, requires_grad=True)
        t = ag.tensor(rng.integers(0, 4, 6))
        h = F.linear(x, w).tanh() / (x[:, :4].abs() + 1)
        h = F.gelu(h) + F.log_softmax(h ** 2, dim=1) - h.exp().sqrt().log()
        loss = F.cross_entropy(h, t) + F.mse_loss(h.sigmoid(), h.relu().clip(0, 0.5))
        loss = loss + h.max(axis=0).sum() * ag.logsumexp(h, 1).mean()
        loss.backward()
        for a in (loss, x.grad, w.grad):
            digest.update(a.numpy().tobytes())
info = backend.info()
print(info["hot_path"], info["numpy_kernels"], digest.hexdigest())
"""


def test_gradients_are_the_same_bits_with_the_compiled_numpy_provider(tmp_path):
    """The compiled hot path runs the compiled NumPy provider, the pure twin numpy_kernels.py,
    and a graph of most ops gives the same loss and gradients to the bit."""
    outs = {}
    for engine, out in stdout_of_both_twins(_GRADS_SCRIPT, "numpy", tmp_path).items():
        hot_path, provider, digest = out.split()
        assert (hot_path, provider) == (engine, engine)
        outs[engine] = digest
    assert outs["compiled"] == outs["python"]
