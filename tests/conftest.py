"""Shared fixtures: backends and engines to run on, hypothesis profiles, the native requirement.

``AUTOGRAD_REQUIRE_NATIVE=1`` (set by .ci/run) turns "native core not built" from a skip into a
failure, so CI can never pass on the NumPy fallback alone.
"""
from __future__ import annotations

import importlib
import os

import pytest
from hypothesis import HealthCheck, settings

import autograd
from autograd import backend

settings.register_profile("dev", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=40, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REQUIRE_NATIVE = os.environ.get("AUTOGRAD_REQUIRE_NATIVE", "") == "1"


def import_built(name: str, what: str):
    """The compiled module ``name`` (``what`` names it in messages), or a skip (a failure when
    AUTOGRAD_REQUIRE_NATIVE=1, so CI cannot pass without it)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if REQUIRE_NATIVE:
            pytest.fail(f"AUTOGRAD_REQUIRE_NATIVE=1 but {what} does not import: {exc}")
        pytest.skip(f"{what} not built: {exc}")


def need_native() -> None:
    """Skip (or, when native is required, fail) a test that needs the compiled core."""
    if backend.native_available():
        return
    message = f"native core not available: {backend.BUILD_HINT}"
    if REQUIRE_NATIVE:
        pytest.fail(message)
    pytest.skip(message)


def need_compiled_engine() -> None:
    """Skip (or fail when native is required) a test that needs the Cython-compiled engine."""
    if backend._compiled_engine is not None:
        return
    message = "compiled engine (autograd._cengine) not built"
    from autograd import hotpath
    if hotpath.core_name() == "python" and os.environ.get("AUTOGRAD_ENGINE") == "python":
        pytest.skip("this process runs the pure-Python twin (AUTOGRAD_ENGINE=python)")
    if REQUIRE_NATIVE:
        pytest.fail(message)
    pytest.skip(message)


def stdout_of_both_twins(script: str, provider: str, cwd, timeout: float = 120) -> dict[str, str]:
    """Run ``script`` (argv[1] = provider) once on each engine twin, in fresh processes from
    ``cwd`` (not the source tree, which has no extensions): {engine: its standard output}."""
    import subprocess
    import sys
    need_compiled_engine()
    if provider == "native":
        need_native()
    outs = {}
    for engine in ("compiled", "python"):
        env = dict(os.environ, AUTOGRAD_ENGINE=engine)
        res = subprocess.run([sys.executable, "-c", script, provider], env=env, cwd=cwd,
                             capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, res.stderr[-2000:]
        outs[engine] = res.stdout
    return outs


def digests_of_both_twins(script: str, provider: str, cwd) -> dict[str, str]:
    """As :func:`stdout_of_both_twins` for a script printing ``hot_path engine digest``: the
    digest of each twin, once each run is checked to be the twin it should be."""
    outs = {}
    for engine, out in stdout_of_both_twins(script, provider, cwd).items():
        hot_path, ran, digest = out.split()
        assert (hot_path, ran) == (engine, engine)
        outs[engine] = digest
    return outs


@pytest.fixture(params=["numpy", "native"])
def backend_name(request):
    """Run the test once per kernel provider."""
    if request.param == "native":
        need_native()
    with backend.use(request.param):
        yield request.param


@pytest.fixture(params=["python", "compiled"])
def engine_name(request):
    """Run the test once per graph engine (plain Python and Cython-compiled)."""
    if request.param == "compiled":
        need_compiled_engine()
    with backend.use_engine(request.param):
        yield request.param


@pytest.fixture
def rng():
    """A seeded NumPy generator, so failures reproduce."""
    import numpy as np
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _restore_global_state():
    """No test leaks grad mode, anomaly mode or a backend switch into the next."""
    from autograd.grad_mode import state
    before = (state.grad_enabled, state.anomaly, backend.active(), backend.engine())
    yield
    state.grad_enabled, state.anomaly = before[0], before[1]
    backend._set(before[2])
    backend._set_engine(before[3])


def pytest_report_header(config):
    return f"autograd {autograd.__version__}: {backend.info()}"
