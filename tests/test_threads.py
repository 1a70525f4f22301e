"""The native core's one thread pool: settings, small work on the caller, same numbers with any
thread count, Ctrl-C within 0.2 s, idle workers that use no CPU, threadpoolctl, fork."""
from __future__ import annotations

import json
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
    assert set(info["tile_steals"]) == {"tiles_stolen", "worker_finished_first"}


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
# Stealable tiles: no product waits for a preempted worker (issue 9)
# ---------------------------------------------------------------------------------------------

# The pool's test knob makes a worker sleep after it claims a tile of a product, as a preempted
# worker would: the caller steals the tile and returns while the worker still has to compute it
# (reading the operands). In a child process, so that a late worker reading freed memory shows
# as a crash of the child; operands of 600x600 and up have a mapping of their own, unmapped when
# freed. (Under ASan, see CMakeLists.txt, the same children run instrumented.)
LATE_WORKER = """
import gc, json, time, weakref
import numpy as np
import autograd as ag
from autograd import backend
C = backend._load_native()._C
ag.set_num_threads(2)
DELAY = 0.05
C._set_tile_worker_delay_us(int(DELAY * 1e6))

def stolen():
    return backend.info()["tile_steals"]["tiles_stolen"]

def settle():
    # the late worker finishes its tile and hands its references back; Python runs the pending
    # call that drops them at its next check (a backward jump), no kernel call needed
    time.sleep(2 * DELAY)
    for _ in range(3):
        pass
"""


def need_two_cpus(native):
    if native._C.max_threads() < 2:
        pytest.skip("stealing needs a worker: 2 or more CPUs")


def test_a_late_workers_tile_is_stolen_and_gives_the_same_bits(native):
    need_two_cpus(native)
    r = run_python(prelude=LATE_WORKER, code="""
        rng = np.random.default_rng(0)
        cases = [((768, 768), (768, 768), False, False, np.float32),
                 ((500, 300), (700, 300), False, True, np.float64),
                 ((640, 900), (640, 700), True, False, np.float32),
                 ((300, 1000), (900, 300), True, True, np.float64)]
        out = []
        for sa, sb, ta, tb, dt in cases:
            a, b = rng.standard_normal(sa).astype(dt), rng.standard_normal(sb).astype(dt)
            ag.set_num_threads(1)
            want = C.matmul(a, b, ta, tb)
            ag.set_num_threads(2)
            same, steals = True, 0
            for _ in range(4):
                s0 = stolen()
                same &= bool(np.array_equal(C.matmul(a, b, ta, tb), want))
                steals += stolen() - s0
                settle()
            out.append([same, steals])
        # linear (x @ w.T + b, relu) and linear_back (its dz scratch is read by the products)
        x = rng.standard_normal((700, 600)).astype(np.float32)
        w = rng.standard_normal((650, 600)).astype(np.float32)
        bias = rng.standard_normal(650).astype(np.float32)
        g = rng.standard_normal((700, 650)).astype(np.float32)
        ag.set_num_threads(1)
        y1 = C.linear(x, w, bias, "relu")
        back1 = C.linear_back(x, w, y1, g, "relu", True)
        ag.set_num_threads(2)
        s0 = stolen()
        y2 = C.linear(x, w, bias, "relu")
        settle()
        back2 = C.linear_back(x, w, y1, g, "relu", True)
        settle()
        same = bool(np.array_equal(y1, y2)) and all(
            bool(np.array_equal(p, q)) for p, q in zip(back1, back2))
        out.append([same, stolen() - s0])
        print(json.dumps(out))
    """)
    assert r.returncode == 0, r.stderr
    for same, steals in json.loads(r.stdout):
        assert same  # stolen tiles, handed-over tiles and 1 thread: the same bits
        assert steals >= 1


def test_operands_freed_right_after_a_call_with_a_stolen_tile_are_kept_for_the_late_worker(native):
    need_two_cpus(native)
    r = run_python(prelude=LATE_WORKER, code="""
        rng = np.random.default_rng(0)
        steals = kept = released = 0
        for i in range(30):
            a = rng.standard_normal((600, 700)).astype(np.float32)
            b = rng.standard_normal((700, 650)).astype(np.float32)
            s0 = stolen()
            c = C.matmul(a, b)
            stole = stolen() > s0
            refs = [weakref.ref(a), weakref.ref(b), weakref.ref(c)]
            del a, b, c
            gc.collect()
            if stole:
                steals += 1
                kept += all(r() is not None for r in refs)
            # reuse the memory while the late worker still computes
            junk = [np.full((600, 700), np.nan, np.float32) for _ in range(4)]
            settle()
            released += all(r() is None for r in refs)
            del junk
        print(steals, kept, released)
    """)
    assert r.returncode == 0, r.stderr  # a late worker reading freed memory crashes the child
    steals, kept, released = map(int, r.stdout.split())
    assert steals >= 10
    assert kept == steals  # held while the late worker reads them...
    assert released == 30  # ...and dropped once it is done (no leak)


def test_a_plan_and_its_buffers_are_kept_for_a_late_worker(native):
    need_two_cpus(native)
    r = run_python(prelude=LATE_WORKER, code="""
        rng = np.random.default_rng(0)
        steals = kept = released = 0
        ok = True
        for i in range(10):
            plan = C.Plan()
            plan.add("matmul", [0, 1], [2], [False, False])
            a = rng.standard_normal((700, 600)).astype(np.float32)
            b = rng.standard_normal((600, 800)).astype(np.float32)
            c = np.empty((700, 800), np.float32)
            plan.bind([a, b, c])
            want = C.matmul(a, b)
            settle()
            s0 = stolen()
            plan.run(np.zeros(0))
            stole = stolen() > s0
            ok = ok and bool(np.array_equal(c, want))
            refs = [weakref.ref(plan), weakref.ref(a), weakref.ref(b), weakref.ref(c)]
            del plan, a, b, c
            gc.collect()
            if stole:
                steals += 1
                kept += all(r() is not None for r in refs)
            settle()
            released += all(r() is None for r in refs)
        print(steals, kept, released, ok)
    """)
    assert r.returncode == 0, r.stderr
    steals, kept, released, ok = r.stdout.split()
    assert ok == "True"
    assert int(steals) >= 3 and int(kept) == int(steals)
    assert int(released) == 10


def test_the_pool_works_while_a_late_worker_finishes_a_stolen_tile(native):
    # Right after a call that left a worker computing a stolen tile: a plain parallel job (whose
    # completion count a late worker must not touch), NumPy's routed products (which need
    # every worker at once), resizing the pool (which waits for it).
    need_two_cpus(native)
    r = run_python(prelude=LATE_WORKER, code="""
        C.set_parallel_threshold("elementwise", 0)
        rng = np.random.default_rng(0)
        a = rng.standard_normal((768, 768)).astype(np.float32)
        x = rng.standard_normal(1 << 20)
        big = np.ones((300, 300))
        want = C.matmul(a, a)
        bad, steals = [], 0
        for i in range(12):
            s0 = stolen()
            if not np.array_equal(C.matmul(a, a), want):
                bad.append("matmul")
            steals += stolen() > s0
            if not np.array_equal(C.add(x, x), x + x):
                bad.append("add")
            if float((big @ big)[0, 0]) != 300.0:
                bad.append("numpy")
            if i % 4 == 3:
                ag.set_num_threads(1)  # joins the late worker
                ag.set_num_threads(2)
        C._set_tile_worker_delay_us(0)
        settle()
        if not np.array_equal(C.matmul(a, a), want):
            bad.append("last")
        print(len(bad), steals, C.live_workers())
    """)
    assert r.returncode == 0, r.stderr
    bad, steals, workers = map(int, r.stdout.split())
    assert bad == 0
    assert steals >= 3
    assert workers == 1


# ---------------------------------------------------------------------------------------------
# Ctrl-C, idle workers, fork
# ---------------------------------------------------------------------------------------------

# Per thread of this process, by thread id: its name (what pthread_setname_np gave it, else
# the process name) and its CPU ticks (utime + stime).
THREAD_NAMES = """
import json
import os

def _per_thread(read):
    out = {}
    for tid in os.listdir('/proc/self/task'):
        try:
            out[tid] = read(tid)
        except OSError:  # the thread ended
            pass
    return out

def thread_names():
    return _per_thread(lambda tid: open(f'/proc/self/task/{tid}/comm').read().strip())

def thread_ticks():
    def ticks(tid):
        fields = open(f'/proc/self/task/{tid}/stat').read().rsplit(')', 1)[1].split()
        return int(fields[11]) + int(fields[12])
    return _per_thread(ticks)
"""

# CPU ticks of each of our pool's threads, by thread id.
CPU_TICKS = THREAD_NAMES + """
def pool_ticks():
    names = thread_names()
    return {tid: n for tid, n in thread_ticks().items() if names.get(tid) == 'autograd-pool'}
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
        a @ a                                 # and NumPy's sections have run on them
        pid = os.fork()
        if pid == 0:
            ok = float(C.matmul(a, a, False, False)[0, 0]) == 400.0
            ok = ok and float((a @ a)[0, 0]) == 400.0   # NumPy's BLAS, routed onto the pool
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


# ---------------------------------------------------------------------------------------------
# NumPy's own OpenBLAS routed onto the pool
# ---------------------------------------------------------------------------------------------

OTHER_THREAD_TICKS = THREAD_NAMES + """
import threading

def other_ticks():
    # CPU ticks of every thread but the calling one (NumPy's BLAS threads, our workers, ...)
    me = str(threading.get_native_id())
    return {tid: n for tid, n in thread_ticks().items() if tid != me}
"""


def numpy_blas_or_skip(native) -> dict:
    state = backend.info()["numpy_blas"]
    if not state["routed"]:
        pytest.skip(f"NumPy's BLAS is not routed here: {state['reason']}")
    return state


def test_info_says_whether_numpy_blas_is_routed_and_why(native):
    state = backend.info()["numpy_blas"]
    assert set(state) >= {"routed", "library", "version", "reason", "sections_on_pool",
                          "sections_on_extra_threads"}
    if state["routed"]:
        assert state["reason"] == "" and "openblas" in state["library"].lower()
        assert tuple(map(int, state["version"].split(".")[:3])) >= (0, 3, 29)
        assert state["setter"].startswith(("openblas_set_threads_callback_function",
                                           "scipy_openblas_set_threads_callback_function"))
    else:
        assert state["reason"]  # a skip always says why


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/task")
def test_numpy_products_run_on_the_pool_and_leave_no_thread_spinning(native):
    numpy_blas_or_skip(native)
    if native._C.max_threads() < 2:
        pytest.skip("one CPU: NumPy's BLAS has no parallel sections")
    r = run_python(prelude=OTHER_THREAD_TICKS, code="""
        import time
        import numpy as np
        import autograd
        from autograd import backend
        C = backend._load_native()._C
        a = np.ones((512, 512), np.float32)
        # NumPy's OpenBLAS starts its own threads when NumPy is imported, and they spin for
        # about 0.1 s (2**28 cycles) before they first sleep: wait for that to end (two quiet
        # 50 ms windows in a row, at most 3 s), so the sample below sees only what the
        # products leave behind.
        quiet, deadline = 0, time.monotonic() + 3
        while quiet < 2 and time.monotonic() < deadline:
            s0 = other_ticks()
            time.sleep(0.05)
            s1 = other_ticks()
            quiet = quiet + 1 if sum(s1[t] - s0[t] for t in s0 if t in s1) == 0 else 0
        before = C.foreign_blas()["sections_on_pool"]
        for _ in range(20):
            a @ a
        ran = C.foreign_blas()["sections_on_pool"] - before
        # Sample at once: our workers spin 50 us; NumPy's own threads would spin for about
        # 0.1 s after each call (3-5 ticks measured here with AUTOGRAD_ROUTE_NUMPY_BLAS=0).
        time.sleep(0.002)
        t0 = other_ticks()
        time.sleep(0.5)
        t1 = other_ticks()
        names = thread_names()
        busy = {f"{names.get(t, '?')}:{t}": t1[t] - t0[t] for t in t0 if t in t1}
        print(ran, C.foreign_blas()["sections_on_extra_threads"], sum(busy.values()), busy)
    """)
    assert r.returncode == 0, r.stderr
    ran, extra, busy, per_thread = r.stdout.split(maxsplit=3)
    assert int(ran) >= 20   # every product's parallel section ran on our pool
    # Nobody spins after the last NumPy call (1 tick: a stray timer). The message names the
    # threads that used CPU (thread name:tid -> ticks) and how many sections ran off the pool.
    assert int(busy) <= 1, f"{busy} ticks after the products; per thread {per_thread}; " \
                           f"sections on extra threads: {extra}"


def test_numpy_results_are_the_same_bits_routed_or_not(native):
    from autograd.backend import threadpool
    numpy_blas_or_skip(native)
    rng = np.random.default_rng(7)
    cases = []
    for dt in (np.float32, np.float64):
        for m, k, n in ((3, 5, 4), (64, 64, 64), (200, 130, 170), (512, 512, 512)):
            cases.append((rng.standard_normal((m, k)).astype(dt),
                          rng.standard_normal((k, n)).astype(dt)))
    vec = rng.standard_normal(2000)
    mat = rng.standard_normal((2000, 2000))
    spd = mat[:300, :300] @ mat[:300, :300].T + 300 * np.eye(300)

    def compute():
        out = [a @ b for a, b in cases]
        out += [mat @ vec, vec @ mat, np.dot(mat[:700, :700], mat[:700, :700].T),
                np.linalg.solve(spd, vec[:300]), np.linalg.inv(spd)]
        return out

    routed = compute()
    try:
        state = threadpool.route_numpy_blas(native._C, on=False)
        assert not state["routed"]
        own = compute()
    finally:
        assert threadpool.route_numpy_blas(native._C)["routed"]
    again = compute()
    for x, y, z in zip(routed, own, again):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    for (a, b), got in zip(cases, routed):
        np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64),
                                   rtol=1e-4 if a.dtype == np.float32 else 1e-10,
                                   atol=1e-3 if a.dtype == np.float32 else 1e-9)


def test_routing_refuses_what_is_not_a_loaded_foreign_openblas(native):
    r = run_python("""
        import ctypes.util, json
        import numpy as np
        import autograd
        from autograd import backend
        C = backend._load_native()._C
        out = {"info": backend.info()["numpy_blas"]}
        ours = [p for p in C.loaded_libraries() if "scipy_openblas32" in p or
                ("openblas" in p and "numpy" not in p)]
        libc = [p for p in C.loaded_libraries() if "libc.so" in p]
        out["ours"] = C.route_foreign_blas(ours[0]) if ours else None
        out["libc"] = C.route_foreign_blas(libc[0]) if libc else None
        out["absent"] = C.route_foreign_blas("/nonexistent/libopenblas.so")
        a = np.arange(36.0).reshape(6, 6)
        out["numpy_ok"] = bool(np.array_equal(a @ a, np.einsum("ij,jk->ik", a, a)))
        print(json.dumps(out))
    """, AUTOGRAD_ROUTE_NUMPY_BLAS="0")
    assert r.returncode == 0, r.stderr
    import json
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert not out["info"]["routed"] and "AUTOGRAD_ROUTE_NUMPY_BLAS" in out["info"]["reason"]
    if out["ours"] is not None:
        assert not out["ours"]["routed"] and "engine's own BLAS" in out["ours"]["reason"]
    if out["libc"] is not None:
        assert not out["libc"]["routed"]
        assert out["libc"]["reason"].startswith("not an OpenBLAS with openblas_set_threads")
    assert not out["absent"]["routed"] and out["absent"]["reason"] == "not loaded in this process"
    assert out["numpy_ok"]


def test_threadpoolctl_still_limits_numpy_blas_when_routed(native):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    state = numpy_blas_or_skip(native)
    C = native._C
    libs = [lib for lib in threadpoolctl.threadpool_info()
            if lib["internal_api"] == "openblas" and "numpy" in lib["filepath"]]
    assert libs, "threadpoolctl no longer sees NumPy's OpenBLAS"
    a = np.ones((400, 400), np.float32)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        before = C.foreign_blas()
        assert float((a @ a)[0, 0]) == 400.0
        after = C.foreign_blas()
        # one NumPy thread: no parallel section at all, on our pool or elsewhere
        assert after["sections_on_pool"] == before["sections_on_pool"]
        assert after["sections_on_extra_threads"] == before["sections_on_extra_threads"]
    assert backend.info()["numpy_blas"]["routed"] and state["library"]


def test_numpy_blas_follows_the_pool_size_and_a_larger_section_still_runs(native):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    state = numpy_blas_or_skip(native)
    if native._C.max_threads() < 2:
        pytest.skip("needs 2 CPUs")
    C = native._C
    ctl = threadpoolctl.ThreadpoolController().select(filepath=state["library"])
    assert len(ctl.lib_controllers) == 1
    a = np.ones((400, 400), np.float32)
    before_threads = ag.get_num_threads()
    try:
        # Routed, NumPy's BLAS cuts its products for our pool: one section job per pool thread.
        ag.set_num_threads(1)
        assert ctl.info()[0]["num_threads"] == 1
        ag.set_num_threads(before_threads)
        assert ctl.info()[0]["num_threads"] == before_threads
        # Raised behind our back above the pool: correct, on extra threads.
        ag.set_num_threads(1)
        with ctl.limit(limits=2):
            before = C.foreign_blas()["sections_on_extra_threads"]
            assert float((a @ a)[0, 0]) == 400.0
            assert C.foreign_blas()["sections_on_extra_threads"] > before
    finally:
        ag.set_num_threads(before_threads)


def test_numpy_and_our_products_from_two_threads_at_once(native):
    # NumPy from a second Python thread while the main thread runs our tiled products (which
    # take the GIL between tiles to check for Ctrl-C): no deadlock, every result right.
    numpy_blas_or_skip(native)
    r = run_python("""
        import threading
        import numpy as np
        import autograd
        from autograd import backend
        C = backend._load_native()._C
        a = np.ones((700, 700), np.float32)
        bad = []
        def numpy_loop():
            for _ in range(60):
                if float((a @ a)[0, 0]) != 700.0:
                    bad.append("numpy")
        t = threading.Thread(target=numpy_loop)
        t.start()
        for _ in range(60):
            if float(C.matmul(a, a, False, False)[0, 0]) != 700.0:
                bad.append("ours")
        t.join()
        f = C.foreign_blas()
        print(len(bad), f["sections_on_pool"] + f["sections_on_extra_threads"])
    """, timeout=120)
    assert r.returncode == 0, r.stderr
    bad, sections = map(int, r.stdout.split())
    assert bad == 0
    assert sections >= (60 if native._C.max_threads() >= 2 else 0)


def test_a_numpy_whose_blas_is_not_bundled_is_left_alone_with_a_reason(native, monkeypatch):
    # MKL, Accelerate or a system BLAS is not inside NumPy's install: nothing is touched.
    from autograd.backend import threadpool
    was_routed = backend.info()["numpy_blas"]["routed"]
    threadpool.route_numpy_blas(native._C, on=False)
    try:
        monkeypatch.setattr(threadpool, "numpy_blas_paths", lambda core: [])
        state = threadpool.route_numpy_blas(native._C)
        assert not state["routed"] and "not a library bundled in its install" in state["reason"]
        info = backend.info()
        assert not info["numpy_blas"]["routed"]
        assert "not a library bundled" in info["numpy_blas"]["reason"]
        assert "not routed" in info["threading"]
        a = np.arange(16.0).reshape(4, 4)
        np.testing.assert_array_equal(a @ a, np.einsum("ij,jk->ik", a, a))
    finally:
        monkeypatch.undo()
        if was_routed:
            assert threadpool.route_numpy_blas(native._C)["routed"]
