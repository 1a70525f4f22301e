"""Backend and engine selection: visible, switchable, loud when something is missing."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import autograd as ag
from autograd import backend
from autograd.backend import numpy_kernels


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter importing the same autograd as this test run.

    It runs in a neutral directory: ``python -c`` puts the working directory first on the
    path, and from a source checkout that would import the uncompiled source tree instead.
    """
    root = os.path.dirname(os.path.dirname(ag.__file__))
    full_env = {**os.environ, "PYTHONPATH": root, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120, cwd=tempfile.gettempdir())


def test_import_prints_nothing():
    result = run_python("import autograd")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


@pytest.mark.parametrize("name", ["numpy", "auto"])
def test_environment_variable_picks_the_backend(name):
    result = run_python("import autograd; print(autograd.backend.active())",
                        AUTOGRAD_BACKEND=name)
    assert result.returncode == 0, result.stderr
    expected = "numpy" if name == "numpy" else ("native" if backend.native_available()
                                                else "numpy")
    assert result.stdout.strip() == expected


def test_unknown_backend_name_is_refused():
    result = run_python("import autograd", AUTOGRAD_BACKEND="cuda")
    assert result.returncode != 0
    assert "unknown backend 'cuda'" in result.stderr
    with pytest.raises(ValueError, match="unknown backend 'fpga'"):
        backend.use("fpga")


def test_asking_for_a_missing_native_core_raises_with_a_build_hint(monkeypatch):
    monkeypatch.setattr(backend, "_native", None)
    monkeypatch.setattr(backend, "_native_error", ImportError("no module named autograd._C"))
    assert not backend.native_available()
    assert backend.available() == ["numpy"]
    with pytest.raises(RuntimeError, match="pip install"):
        backend.use("native")
    assert backend.active() != "native" or backend.k is not backend.numpy_provider


def test_use_switches_at_once_and_restores_as_a_context_manager():
    before = backend.active()
    with backend.use("numpy"):
        assert backend.active() == "numpy"
        assert backend.k is backend.numpy_provider  # numpy_kernels, compiled on a compiled hot path
    assert backend.active() == before


def test_ops_follow_the_switch_mid_program(backend_name):
    x = ag.tensor([[-1.0, 2.0]], requires_grad=True)
    y = x.relu().sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0]])
    assert backend.active() == backend_name


def test_info_reports_backend_and_engine():
    info = backend.info()
    assert info["backend"] == backend.active()
    assert info["engine"] in ("compiled", "python")
    assert isinstance(info["native_available"], bool)
    if backend.native_available():
        assert info["blas_core"]  # which OpenBLAS kernels run is always visible


def test_engine_switch(engine_name):
    assert backend.engine() == engine_name
    a = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (a * a).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 4.0, 6.0])


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown engine"):
        backend.use_engine("jit")


def test_thread_setting_round_trips():
    if not backend.native_available():
        assert ag.get_num_threads() == 1
        return
    before = ag.get_num_threads()
    try:
        ag.set_num_threads(1)
        assert ag.get_num_threads() == 1
    finally:
        ag.set_num_threads(before)
    with pytest.raises(ValueError, match="between 1 and"):
        ag.set_num_threads(0)
