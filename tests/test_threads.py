"""The native core's one thread pool: settings, small work on the caller, same numbers with any
thread count, Ctrl-C within 0.2 s, idle workers that use no CPU, threadpoolctl, fork."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import autograd as ag
from autograd import backend
from conftest import need_native

ROOT = os.path.dirname(os.path.dirname(ag.__file__))


@pytest.fixture
def native():
    need_native()
    return backend._load_native()


def run_python(code: str, timeout: float = 120, prelude: str = "",
               **env: str) -> subprocess.CompletedProcess:
    """prelude + code in a fresh interpreter importing this autograd, from a neutral directory."""
    # The pool is the native core's: the child runs it even when the suite runs with
    # AUTOGRAD_BACKEND=numpy (which it would otherwise inherit).
    full_env = {**os.environ, "PYTHONPATH": ROOT, "AUTOGRAD_BACKEND": "native", **env}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=tempfile.gettempdir())


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, 100000, 2**40])
def test_set_num_threads_refuses_out_of_range_values_naming_the_range(native, bad):
    top = native._C.max_threads()
    before = ag.get_num_threads()
    with pytest.raises(ValueError, match=rf"between 1 and {top} .* got {bad}"):
        ag.set_num_threads(bad)
    assert ag.get_num_threads() == before


def test_the_core_itself_refuses_out_of_range_values(native):
    with pytest.raises(ValueError, match="between 1 and"):
        native.set_num_threads(native._C.max_threads() + 1)


def test_set_num_threads_refuses_non_integers(native):
    with pytest.raises(TypeError, match="integer"):
        ag.set_num_threads(1.5)


def test_every_value_in_the_range_is_accepted(native):
    before = ag.get_num_threads()
    try:
        for n in range(1, native._C.max_threads() + 1):
            ag.set_num_threads(n)
            assert ag.get_num_threads() == n
    finally:
        ag.set_num_threads(before)


def test_environment_variable_sets_the_default(native):
    r = run_python("import autograd; print(autograd.get_num_threads())",
                   AUTOGRAD_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_bad_environment_variable_warns_and_keeps_the_default(native):
    r = run_python("import autograd, os; print(autograd.get_num_threads())",
                   AUTOGRAD_NUM_THREADS="100000")
    assert r.returncode == 0, r.stderr
    assert "AUTOGRAD_NUM_THREADS" in r.stderr and "between 1 and" in r.stderr
    assert r.stdout.strip() == str(native._C.max_threads())


def test_info_reports_pool_blas_core_and_threading(native):
    info = backend.info()
    assert info["num_threads"] == ag.get_num_threads()
    assert 1 <= info["num_threads"] <= info["max_threads"]
    assert info["blas"] == "scipy-openblas32" and info["blas_core"]
    assert info["blas_mode"] == "tiles" and "pool" in info["threading"]
    assert set(info["parallel_thresholds"]) >= {"elementwise", "transcendental", "gemm"}


def test_thresholds_are_adjustable_and_checked(native):
    saved = native.get_parallel_thresholds()
    try:
        native.set_parallel_threshold("gemm", 12345)
        assert native.get_parallel_thresholds()["gemm"] == 12345
    finally:
        native.set_parallel_threshold("gemm", saved["gemm"])
    with pytest.raises(ValueError, match="unknown kernel family 'conv'"):
        native.set_parallel_threshold("conv", 1)
    with pytest.raises(ValueError, match=">= 0"):
        native.set_parallel_threshold("gemm", -1)


def test_openblas_starts_no_threads_of_its_own(native):
    # Importing autograd adds no thread at all: our OpenBLAS loads single-threaded and the
    # pool starts its workers on the first parallel job only.
    r = run_python("""
        import os, numpy
        before = len(os.listdir('/proc/self/task'))
        import autograd
        print(len(os.listdir('/proc/self/task')) - before)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


# ---------------------------------------------------------------------------------------------
# Small work stays on the calling thread
# ---------------------------------------------------------------------------------------------

def test_a_width_10_mlp_never_wakes_a_worker(native):
    r = run_python("""
        import numpy as np
        import autograd as ag
        from autograd import nn, optim, backend
        C = backend._load_native()._C
        assert backend.active() == "native"
        rng = np.random.default_rng(0)
        x = ag.tensor(rng.standard_normal((256, 10)).astype(np.float32))
        y = ag.tensor(rng.integers(0, 3, 256))
        model = nn.Sequential(nn.Linear(10, 10), nn.Tanh(), nn.Linear(10, 10), nn.ReLU(),
                              nn.Linear(10, 3))
        opt = optim.Adam(model.parameters(), lr=1e-2)
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(50):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        print(C.live_workers(), ag.get_num_threads())
        a = np.ones((512, 512), np.float32)
        C.matmul(a, a, False, False)   # large: the pool starts
        print(C.live_workers())
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    small, threads = map(int, lines[0].split())
    assert small == 0
    assert int(lines[1]) == threads - 1


# ---------------------------------------------------------------------------------------------
# Same numbers, whatever the thread count; tiles agree with one BLAS call
# ---------------------------------------------------------------------------------------------

SHAPES = [(1, 1, 1), (17, 5, 3), (128, 784, 256), (300, 1, 301), (333, 77, 129), (2, 4000, 3)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_tiled_matmul_matches_numpy(native, m, k, n, ta, tb):
    C = native._C
    rng = np.random.default_rng(m * 7 + n)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-12)):
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        want = (a.T if ta else a) @ (b.T if tb else b)
        saved = native.get_parallel_thresholds()
        try:
            # every product parallel, cut into many small tiles (edges included)
            native.set_parallel_threshold("gemm", 0)
            native.set_parallel_threshold("gemm_tile", 1 << 16)
            got = C.matmul(a, b, ta, tb)
        finally:
            for fam, v in saved.items():
                native.set_parallel_threshold(fam, v)
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale * max(1, k) ** 0.5)


@pytest.fixture
def all_parallel(native):
    """Every kernel family goes to the pool whatever the size (thresholds 0)."""
    saved = native.get_parallel_thresholds()
    for fam in ("elementwise", "transcendental", "gemm"):
        native.set_parallel_threshold(fam, 0)
    yield native
    for fam, v in saved.items():
        native.set_parallel_threshold(fam, v)


def _kernel_outputs(native, x, w):
    C = native._C
    return [C.add(x, x), C.exp(x), C.tanh(x), C.sum_axis(x.ravel(), 1, x.size, 1),
            C.sum_axis(x, 1, x.shape[0], x.shape[1]), C.softmax(x), C.log_softmax(x),
            C.matmul(x, w, False, False), C.linear(x, w.T.copy(), w[0].copy(), "relu")]


def test_pool_kernels_give_the_same_bits_with_one_thread_or_all(all_parallel):
    native = all_parallel
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 200)).astype(np.float32)
    w = rng.standard_normal((200, 150)).astype(np.float32)
    before = ag.get_num_threads()
    try:
        ag.set_num_threads(1)
        one = _kernel_outputs(native, x, w)
        ag.set_num_threads(native._C.max_threads())
        many = _kernel_outputs(native, x, w)
    finally:
        ag.set_num_threads(before)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_pool_kernels_match_numpy(all_parallel):
    native = all_parallel
    rng = np.random.default_rng(2)
    x = rng.standard_normal((257, 129)).astype(np.float64)
    C = native._C
    np.testing.assert_allclose(C.add(x, x), x + x)
    np.testing.assert_allclose(C.exp(x), np.exp(x), rtol=1e-14)
    np.testing.assert_allclose(C.sum_axis(x.ravel(), 1, x.size, 1)[0], x.sum(), rtol=1e-12)
    np.testing.assert_allclose(C.sum_axis(x, 1, 257, 129), x.sum(0), rtol=1e-12)
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(C.softmax(x), e / e.sum(1, keepdims=True), rtol=1e-12)
    p, g = x.copy(), np.full_like(x, 0.5)
    m, v = np.zeros_like(x), np.zeros_like(x)
    C.adam_step([p], [g], [m], [v], 1, 0.1, 0.9, 0.999, 1e-8, 0.0, False)
    np.testing.assert_allclose(m, 0.05)
    np.testing.assert_allclose(p, x - 0.1 / (1 - 0.9) * 0.05 / (np.sqrt(0.00025) / (1 - 0.999) ** 0.5 + 1e-8))


# ---------------------------------------------------------------------------------------------
# Ctrl-C, idle workers, fork
# ---------------------------------------------------------------------------------------------

# CPU ticks (utime + stime) of each of our pool's threads, by thread id.
CPU_TICKS = """
import os

def pool_ticks():
    out = {}
    for tid in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{tid}/comm') as f:
                if f.read().strip() != 'autograd-pool':
                    continue
            with open(f'/proc/self/task/{tid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        out[tid] = int(fields[11]) + int(fields[12])
    return out
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGINT timing and /proc")
def test_ctrl_c_interrupts_a_4096_matmul_loop_within_0_2_s(native):
    r = run_python(prelude=CPU_TICKS, code="""
        import signal, statistics, threading, time
        import numpy as np
        import autograd as ag
        from autograd import backend
        k = backend.k
        a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
        main = threading.get_ident()
        latencies = []
        for attempt in range(3):
            sent = []
            def fire():
                time.sleep(0.4)
                sent.append(time.perf_counter())
                signal.pthread_kill(main, signal.SIGINT)
            threading.Thread(target=fire).start()
            try:
                while True:
                    k.matmul(a, a)
            except KeyboardInterrupt:
                latencies.append(time.perf_counter() - sent[0])
        # nothing keeps running after the interrupt
        time.sleep(0.05)
        before = pool_ticks()
        time.sleep(0.5)
        after = pool_ticks()
        busy = sum(after[t] - before[t] for t in before if t in after)
        print(statistics.median(latencies), max(latencies), busy, len(before))
    """)
    assert r.returncode == 0, r.stderr
    median, worst, busy, workers = r.stdout.split()
    # the median of three (the machine is shared: one attempt may wait for a busy core)
    assert float(median) <= 0.2, r.stdout
    assert float(worst) <= 1.0, r.stdout
    assert int(busy) == 0
    assert int(workers) == native._C.max_threads() - 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/task")
def test_idle_workers_use_no_cpu_after_training(native):
    r = run_python(prelude=CPU_TICKS, code="""
        import time
        import numpy as np
        import autograd as ag
        from autograd import nn, optim
        rng = np.random.default_rng(0)
        x = ag.tensor(rng.standard_normal((512, 784)).astype(np.float32))
        y = ag.tensor(rng.integers(0, 10, 512))
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
        opt = optim.Adam(model.parameters())
        for _ in range(20):
            opt.zero_grad()
            nn.CrossEntropyLoss()(model(x), y).backward()
            opt.step()
        time.sleep(0.05)   # the workers' short spin (50 us by default) is long over
        before = pool_ticks()
        time.sleep(0.5)
        after = pool_ticks()
        print(len(before), sum(after[t] - before[t] for t in before if t in after))
    """)
    assert r.returncode == 0, r.stderr
    workers, busy = map(int, r.stdout.split())
    assert workers == native._C.max_threads() - 1   # the pool did run
    assert busy == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_use_the_pool(native):
    r = run_python("""
        import os
        import numpy as np
        import autograd as ag
        from autograd import backend
        C = backend._load_native()._C
        a = np.ones((400, 400), np.float32)
        C.matmul(a, a, False, False)          # the parent's workers exist
        pid = os.fork()
        if pid == 0:
            ok = float(C.matmul(a, a, False, False)[0, 0]) == 400.0
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


# ---------------------------------------------------------------------------------------------
# threadpoolctl
# ---------------------------------------------------------------------------------------------

def test_threadpoolctl_sees_and_limits_our_pool(native):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    ours = [lib for lib in threadpoolctl.threadpool_info() if lib["internal_api"] == "autograd"]
    assert len(ours) == 1 and ours[0]["user_api"] == "blas"
    assert ours[0]["num_threads"] == ag.get_num_threads()
    before = ag.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1):
        assert ag.get_num_threads() == 1
        a = np.ones((300, 300), np.float32)
        assert float(native._C.matmul(a, a, False, False)[0, 0]) == 300.0
    assert ag.get_num_threads() == before
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert ag.get_num_threads() == 1
    assert ag.get_num_threads() == before


# ---------------------------------------------------------------------------------------------
# The benchmark keeps working (one tiny untimed pass; speed is never a test)
# ---------------------------------------------------------------------------------------------

def test_bench_threads_runs_and_renders_a_table(native):
    import importlib
    # next to tests/, not next to the installed package (CI installs a non-editable copy)
    bench_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "benchmarks")
    sys.path.insert(0, bench_dir)
    try:
        bench = importlib.import_module("bench_threads")
        row = bench.time_matmul(32, 2)
        assert row["size"] == 32 and row["calls"] == 2 and row["ratio"] > 0
        res = {"threads": 1, "info": backend.info(), "load_before": 0.0, "load_after": 0.0,
               "numpy_blas": "x", "rows": [row], "epochs": [1.0, 1.2, 0.9]}
        table = bench.report(res, None)
        assert "| 32 | 2 |" in table and "median epoch 1.00 s, slowest 1.20 s" in table
        assert bench.calls_for(4096, 200) == 20 and bench.calls_for(512, 200) == 200
    finally:
        sys.path.remove(bench_dir)
