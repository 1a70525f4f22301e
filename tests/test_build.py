"""The compiled core: importable when required, reports its BLAS, and one thread setting."""
from __future__ import annotations

import importlib
import os

import pytest
from conftest import import_built


def _load_native():
    """autograd.backend.native, or a skip (a failure when AUTOGRAD_REQUIRE_NATIVE=1)."""
    return import_built("autograd.backend.native", "the native core")


@pytest.fixture(scope="module")
def native():
    return _load_native()


def test_native_core_imports(native):
    import autograd._C as C

    assert native._C is C
    assert C.__file__.endswith(".so")


def test_compiled_engine_imports(native):
    # Built by the same CMake project as _C, so when _C exists so must _cengine.
    mod = importlib.import_module("autograd._cengine")
    assert mod.__name__ == "autograd._cengine"
    assert hasattr(mod, "run_backward")


def test_compiled_hot_path_imports(native):
    # Built with _cengine from autograd/_core.py and _core.pxd; the default import runs it.
    from autograd import hotpath

    mod = importlib.import_module("autograd._ccore")
    assert mod.TensorBase.__module__ == "autograd._ccore"
    if os.environ.get("AUTOGRAD_ENGINE", "auto") != "python":
        assert hotpath.core is mod


def test_compiled_jit_runs_with_the_compiled_hot_path(native):
    # trace.py and compiler.py compiled by the same CMake project (section 6); the compiled
    # compiler records with the compiled trace; the pure hot path runs the .py modules.
    import autograd as ag
    from autograd import backend, hotpath, jit

    ccompiler = importlib.import_module("autograd.jit._ccompiler")
    ctrace = importlib.import_module("autograd.jit._ctrace")
    assert ccompiler.Tracer is ctrace.Tracer
    if hotpath.core_name() == "compiled":
        assert jit.twin == "compiled" and backend.info()["jit"] == "compiled"
        assert ag.compile is ccompiler.compile and ag.CompileError is ctrace.CompileError
    else:
        from autograd.jit import compiler, trace
        assert jit.twin == "python" and backend.info()["jit"] == "python"
        assert ag.compile is compiler.compile and ag.CompileError is trace.CompileError


def test_blas_info_reports_core(native):
    info = native.blas_info()
    assert info["library"] == "scipy-openblas32"
    assert isinstance(info["corename"], str) and info["corename"]
    assert "OpenBLAS" in info["config"]
    assert info["num_threads"] >= 1
    report = native.info()
    assert report["blas_core"] == info["corename"]


def test_avx512_cpu_gets_skylakex_kernels(native):
    flags = native._cpu_flags()
    if os.environ.get("OPENBLAS_CORETYPE") or not native._AVX512_FLAGS <= flags:
        pytest.skip("no AVX-512 (F/BW/DQ/VL) here, or OPENBLAS_CORETYPE chosen by the user")
    assert native.blas_info()["corename"].lower() == "skylakex"
    # the override is for the import only
    assert "OPENBLAS_CORETYPE" not in os.environ


def test_set_get_num_threads_round_trip(native):
    before = native.get_num_threads()
    try:
        for n in sorted({1, native._C.max_threads(), before}):
            native.set_num_threads(n)
            assert native.get_num_threads() == n
            # OpenBLAS itself stays single-threaded: the pool tiles large products
            assert native.blas_info()["num_threads"] == 1
    finally:
        native.set_num_threads(before)


def test_set_num_threads_rejects_zero(native):
    with pytest.raises(ValueError, match="n must be between 1 and"):
        native.set_num_threads(0)
