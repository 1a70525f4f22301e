"""Typing and help: py.typed and stubs ship, the public API is typed and documented, dir() is
the public API, compiled tracebacks name source paths, the dtype error names the right cast."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import linecache
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

import autograd as ag
from autograd import backend
from autograd.tensor import Tensor

PKG = Path(ag.__file__).parent  # the package under test (installed, or the checkout's)
ROOT = Path(__file__).resolve().parents[1]  # the checkout these tests belong to
# Modules whose public names (their __all__, else names without "_") must be typed and
# documented: everything a user imports.
PUBLIC_MODULES = [
    "autograd", "autograd.functional", "autograd.backend", "autograd.data", "autograd.datasets",
    "autograd.viz", "autograd.gradcheck", "autograd.grad_mode", "autograd.serialization",
    "autograd.creation", "autograd.nn", "autograd.nn.init", "autograd.nn.utils",
    "autograd.nn.functional", "autograd.optim", "autograd.keras", "autograd.keras.models",
]


def _missing(fn, skip_return: bool = False) -> list[str]:
    problems = []
    if not (inspect.getdoc(fn) or "").strip():
        problems.append("docstring")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return problems
    for name, p in sig.parameters.items():
        if name not in ("self", "cls") and p.annotation is inspect.Parameter.empty:
            problems.append(f"type hint for {name!r}")
    if not skip_return and sig.return_annotation is inspect.Signature.empty:
        problems.append("return type")
    return problems


def test_every_public_tensor_method_has_type_hints_and_a_docstring():
    bad = {}
    for name in dir(Tensor):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(Tensor, name)
        if isinstance(attr, property):
            if not attr.__doc__:
                bad[name] = ["docstring"]
        elif callable(attr):
            if problems := _missing(getattr(Tensor, name)):
                bad[name] = problems
    assert not bad, f"Tensor methods lacking hints or docs: {bad}"
    assert len([n for n in dir(Tensor) if not n.startswith("_")]) >= 40


def test_every_public_function_has_type_hints_and_a_docstring():
    bad, checked = {}, 0
    for modname in PUBLIC_MODULES:
        mod = importlib.import_module(modname)
        assert (mod.__doc__ or "").strip(), f"{modname} has no module docstring"
        names = getattr(mod, "__all__", [n for n in vars(mod) if not n.startswith("_")])
        for name in names:
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                checked += 1
                if problems := _missing(obj):
                    bad[f"{modname}.{name}"] = problems
            elif inspect.isclass(obj) and obj.__module__.startswith("autograd"):
                if not (obj.__doc__ or "").strip():
                    bad[f"{modname}.{name}"] = ["class docstring"]
    assert checked > 100
    assert not bad, f"public functions lacking hints or docs: {bad}"


def test_dir_shows_the_public_api_only():
    names = dir(ag)
    for hidden in ("np", "tensor_module", "engine", "function", "ops", "grad_mode", "creation",
                   "errors", "demo", "_install_check", "_os", "annotations"):
        assert hidden not in names, hidden
    assert set(names) == set(ag.__all__) | {"__version__", "keras", "testing"}
    for name in names:
        assert getattr(ag, name) is not None  # everything listed is really there
    for public in ("Tensor", "tensor", "nn", "optim", "viz", "backend", "gradcheck", "no_grad"):
        assert public in names
    assert ag.keras.Sequential is not None  # loaded on first use


def test_star_import_gives_the_public_api(tmp_path):
    ns: dict = {}
    exec("from autograd import *", ns)
    assert "Tensor" in ns and "viz" in ns and "np" not in ns


def test_py_typed_and_stubs_ship():
    assert (PKG / "py.typed").exists()
    for stub in ("_C.pyi", "_cengine.pyi", "_ccore.pyi"):
        ast.parse((PKG / stub).read_text())  # valid Python syntax


def test_cengine_stub_matches_the_engine():
    tree = ast.parse((PKG / "_cengine.pyi").read_text())
    stubbed = {a.asname for node in tree.body if isinstance(node, ast.ImportFrom)
               for a in node.names}
    from autograd import engine
    assert stubbed == set(engine.__all__)


def test_ccore_stub_matches_the_hot_path():
    tree = ast.parse((PKG / "_ccore.pyi").read_text())
    stubbed = {a.asname for node in tree.body if isinstance(node, ast.ImportFrom)
               for a in node.names}
    from autograd import _core
    assert stubbed == set(_core.__all__)


@pytest.mark.skipif(not backend.native_available(), reason="the native core is not built")
def test_C_stub_is_current():
    spec = importlib.util.spec_from_file_location("stubgen", ROOT / "csrc" / "stubgen.py")
    if spec is None or not (ROOT / "csrc" / "stubgen.py").exists():
        pytest.skip("not a source checkout")
    stubgen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stubgen)
    expected = stubgen.render(importlib.import_module("autograd._C"))
    assert (ROOT / "autograd" / "_C.pyi").read_text() == expected, (
        "autograd/_C.pyi is out of date with csrc/bindings.cpp: run `python csrc/stubgen.py`")
    tree = ast.parse(expected)
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    import autograd._C as C
    assert stubbed == {n for n in dir(C) if not n.startswith("_") and callable(getattr(C, n))}


@pytest.mark.skipif(backend._compiled_engine is None, reason="the compiled engine is not built")
def test_compiled_engine_tracebacks_show_the_source_path(monkeypatch):
    x = ag.randn(3, requires_grad=True)
    y = (x * x).sum()
    with backend.use_engine("compiled"):
        y.backward()
        with pytest.raises(ag.FreedGraphError) as info:
            y.backward()
    frames = traceback.extract_tb(info.value.__traceback__)
    engine_frames = [f for f in frames if "engine" in f.filename]
    assert engine_frames, frames
    for f in engine_frames:
        # Not the build directory (../../autograd/engine.py) nor the build machine's checkout.
        assert f.filename in ("autograd/engine.py", str(PKG / "engine.py")), f.filename
        assert "build" not in f.filename and not f.filename.startswith("..")
    # The relative path resolves, through sys.path, to the engine source beside the package.
    f = engine_frames[-1]
    monkeypatch.syspath_prepend(str(PKG.parent))
    linecache.clearcache()
    line = linecache.getline(f.filename, f.lineno).strip()
    assert line and line in (PKG / "engine.py").read_text()


@pytest.mark.skipif(not backend.native_available(), reason="the native core is not built")
def test_native_core_has_no_build_paths():
    import autograd._C as C
    data = Path(C.__file__).read_bytes()
    build_dir = str(ROOT / "build").encode()
    assert build_dir not in data
    assert str(ROOT / "csrc").encode() not in data, "compiled with absolute source paths"
    if backend._compiled_engine is not None:
        engine = Path(backend._compiled_engine.__file__).read_bytes()
        assert b"autograd/engine.py" in engine
        assert str(ROOT / "autograd" / "engine.py").encode() not in engine
        assert b"../autograd/engine.py" not in engine


def test_dtype_mixing_error_suggests_the_cast_towards_the_model():
    w = ag.randn(3, 2, requires_grad=True)                      # a float32 parameter
    x = ag.tensor(np.ones((4, 3)))                              # float64 NumPy data
    with pytest.raises(TypeError) as info:
        x @ w
    msg = str(info.value)
    assert msg.startswith("matmul: mixed dtypes float64 and float32; convert one explicitly")
    assert "argument 0 (float64) to float32 with .float()" in msg
    assert ".float()" in msg and ".double()" not in msg
    # Converting as told works.
    (x.float() @ w).sum().backward()
    # The same the other way round: a float64 model is told to convert float32 data up.
    w64 = ag.randn(3, 2, dtype="float64", requires_grad=True)
    with pytest.raises(TypeError, match=r"argument 0 \(float32\) to float64 with \.double\(\)"):
        ag.ones(4, 3) @ w64
    # An integer tensor with a float one takes the float's dtype, as in PyTorch (issue 13).
    assert (ag.ones(2) * ag.tensor([1, 2])).dtype == np.float32
    # Neither requires grad: towards the float32 default.
    with pytest.raises(TypeError, match=r"argument 1 \(float64\) to float32"):
        ag.ones(2) + ag.ones(2, dtype="float64")


def test_a_type_checker_sees_the_types(tmp_path):
    """py.typed and the stubs work in practice: mypy checks user code against our hints (and
    would report 'missing library stubs or py.typed marker' without them)."""
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")

    user = tmp_path / "user.py"
    user.write_text(
        "import autograd as ag\n"
        "from autograd import nn, viz\n"
        "import autograd._C as C\n"
        "x = ag.tensor([[1.0, 2.0]], requires_grad=True)\n"
        "y: ag.Tensor = (x * 2.0).sum(axis=1).mean()\n"
        "n: int = C.get_num_threads()\n"
        "dot: str = viz.to_dot(y, params=nn.Linear(2, 1))\n"
        "wrong: str = x.sum()\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), str(user)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "user.py:8: error: Incompatible types in assignment (expression has type \"Tensor\"" \
        in errors[0]
