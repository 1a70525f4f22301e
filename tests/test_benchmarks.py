"""The benchmark scripts keep working: each case runs once (untimed; speed is never a test)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("bench_training"), importlib.import_module("bench_kernels")
    finally:
        sys.path.remove(str(BENCH))


def test_every_training_case_runs_on_every_backend(bench):
    training, _ = bench
    from autograd import backend
    for ag_case, np_case, _ in training.CASES.values():
        for name in backend.available():
            with backend.use(name):
                ag_case()()
        np_case()()


def test_every_kernel_case_runs_on_every_provider(bench):
    _, kernels = bench
    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    for mod in kernels.providers().values():
        for call in kernels.ELEMENTWISE.values():
            assert call(mod, x, x).size > 0
        assert mod.matmul(x.reshape(10, 100), x.reshape(100, 10)).shape == (10, 10)


def test_median_timer_returns_a_positive_time(bench):
    from timing import median_seconds
    assert median_seconds(lambda: sum(range(100)), repeat=3, min_time=0.001) > 0


def test_crossover_table_restores_the_adapter_thresholds(bench):
    from conftest import need_native

    from autograd import backend
    need_native()
    _, kernels = bench
    native = backend._load_native()
    before = native.add
    rows = kernels.crossover_rows(native, repeat=1, min_time=1e-6)
    assert [r[0] for r in rows] == list(kernels.CROSSOVER_FAMILIES)
    assert native.add is not before  # rebound with the measured crossovers
    assert native.routes_native("add", np.ones(4), np.ones(4))  # native at every size


def test_second_order_benchmark_runs_and_restores_threads(bench, capsys):
    import autograd as ag
    sys.path.insert(0, str(BENCH))
    try:
        grad_bench = importlib.import_module("bench_grad")
    finally:
        sys.path.remove(str(BENCH))
    threads = ag.get_num_threads()
    grad_bench.second_order(quick=True)
    assert ag.get_num_threads() == threads
    assert "hvp" in capsys.readouterr().out


def test_every_eager_case_runs_for_everyone():
    sys.path.insert(0, str(BENCH))
    try:
        eager = importlib.import_module("bench_eager")
    finally:
        sys.path.remove(str(BENCH))
    from autograd import backend
    for name in backend.available():
        with backend.use(name):
            for factory in eager.ours_cases().values():
                factory()()
    for factory in list(eager.numpy_cases().values()) + list(eager.micrograd_cases().values()):
        factory()()
    torch = eager.torch_or_none()
    if torch is not None:
        for factory in eager.torch_cases(torch).values():
            factory()()
    assert set(eager.numpy_cases()) == set(eager.TARGETS_US) == set(eager.TITLES)
    for name in backend.available():  # --xor-pieces: every piece and the kernels alone
        with backend.use(name):
            pieces = eager.xor_pieces()
            assert {"whole step", "kernels alone (7 calls)", "opt.step()"} <= set(pieces)
            for piece in pieces.values():
                piece()


def test_plan_benchmark_runs(capsys):
    from conftest import need_native
    need_native()
    sys.path.insert(0, str(BENCH))
    try:
        bench_plan = importlib.import_module("bench_plan")
    finally:
        sys.path.remove(str(BENCH))
    bench_plan.main(["--quick"])
    assert "plan replay" in capsys.readouterr().out
