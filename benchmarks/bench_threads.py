"""One thread pool, no stalls: float32 matmul against NumPy, call by call, and MNIST epochs.

    python benchmarks/bench_threads.py                       # 1 thread, then all cores
    python benchmarks/bench_threads.py --threads 2 --sizes 128 512 --calls 50
    python benchmarks/bench_threads.py --mnist-epochs 0      # matmul only
    python benchmarks/bench_threads.py --thresholds          # measure the parallel thresholds

Matmul: for each size, our call (the native kernel behind ``Tensor.__matmul__``,
``backend.k.matmul``) and NumPy's ``a @ b`` alternate in one loop, so both see the same machine
load; each call is timed alone. The table gives the median GFLOP/s of both, their ratio, the
slowest call over the median (a stall shows there even when the median is fine), the same among
the calls during which the calling thread kept its core (``getrusage(RUSAGE_THREAD)``: no
involuntary context switch, so a stall there is the pool's, not another process's), how many
calls had the caller preempted, and how many tiles of our products the calling thread stole:
recomputed because the pool worker holding them was late, i.e. preempted (in parentheses:
steals where the worker still finished first).

NumPy's own BLAS pool is limited to the same thread count (threadpoolctl, when installed), so the
1-thread rows compare one core with one core. By default NumPy's bundled OpenBLAS has its parallel
sections routed onto the engine's pool (``info()["numpy_blas"]``); ``--numpy-blas own`` runs
the same table with NumPy on its own OpenBLAS threads (``AUTOGRAD_ROUTE_NUMPY_BLAS=0``), which
spin after every call and take the core our next product needs.

MNIST: ``examples/mnist_mlp.py`` (784-256-128-10, Adam, batch 128) trained for N epochs back to
back on the real data; median and slowest epoch. Each configuration runs in a fresh process.

The output is markdown, ready for the README.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (16, 32, 64, 128, 256, 512, 768, 1024, 2048, 4096)
MNIST = Path(os.environ.get("AUTOGRAD_MNIST_DIR", "/work/shared/data/mnist"))


def calls_for(size: int, calls: int) -> int:
    """200 (or --calls) per size; fewer for the big ones so one run stays a few minutes."""
    if size >= 4096:
        return min(calls, 20)
    if size >= 2048:
        return min(calls, 50)
    return calls


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def numpy_blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "NumPy's bundled BLAS (threadpoolctl not installed)"
    for lib in threadpool_info():
        if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
            return f"{lib['internal_api']} {lib.get('version')} ({lib.get('architecture')})"
    return "unknown"


def time_matmul(size: int, calls: int) -> dict:
    """Interleaved timings of our matmul and NumPy's, one call at a time."""
    from autograd import backend
    rng = np.random.default_rng(size)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    ours = backend.k.matmul
    for _ in range(3):  # warm up: pages, workers, BLAS buffers
        ours(a, b)
        a @ b
    t_ours, t_np = [], []
    # per call: whether the calling thread was involuntarily switched out during it (another
    # runnable thread took its core): such a stall is the machine's, not the pool's
    pre_ours, pre_np = [], []
    steals = _tile_steals()
    clock = time.perf_counter
    for i in range(calls):
        # alternate which goes first, so neither always runs just after the other's pool
        first, second = ((ours, t_ours, pre_ours), (np.matmul, t_np, pre_np)) if i % 2 else \
            ((np.matmul, t_np, pre_np), (ours, t_ours, pre_ours))
        for fn, out, pre in (first, second):
            s0 = _preemptions()
            t0 = clock()
            fn(a, b)
            out.append(clock() - t0)
            pre.append(_preemptions() != s0)
    steals = {key: n - steals[key] for key, n in _tile_steals().items()}
    flop = 2.0 * size ** 3
    med_o, med_n = statistics.median(t_ours), statistics.median(t_np)
    kept_o = [t for t, p in zip(t_ours, pre_ours) if not p] or [med_o]
    kept_n = [t for t, p in zip(t_np, pre_np) if not p] or [med_n]
    return {"size": size, "calls": calls, "stolen": steals.get("tiles_stolen"),
            "stolen_late": steals.get("worker_finished_first"),
            "ours_preempted": sum(pre_ours), "numpy_preempted": sum(pre_np),
            "ours_worst_kept": max(kept_o) / med_o, "numpy_worst_kept": max(kept_n) / med_n,
            "ours_gflops": flop / med_o / 1e9, "numpy_gflops": flop / med_n / 1e9,
            "ratio": med_n / med_o,
            "ours_worst": max(t_ours) / med_o, "numpy_worst": max(t_np) / med_n}


def _preemptions() -> int:
    """Involuntary context switches of the calling thread so far."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def _tile_steals() -> dict:
    """The pool's steal counters (tiles of our products the caller recomputed because the
    worker holding them was late); empty for a build without stealable tiles."""
    from autograd import backend
    counters = getattr(backend._load_native()._C, "tile_steals", None)
    return dict(counters()) if counters is not None else {}


def mnist_epochs(epochs: int) -> list[float]:
    sys.path.insert(0, str(ROOT / "examples"))
    import contextlib
    import io

    import mnist_mlp
    with contextlib.redirect_stdout(io.StringIO()):
        res = mnist_mlp.main(["--data", str(MNIST), "--epochs", str(epochs)])
    return res["epoch_seconds"]


def worker(args: argparse.Namespace) -> dict:
    """One configuration, in this process (AUTOGRAD_NUM_THREADS already set by the parent)."""
    import autograd as ag
    from autograd import backend
    if backend.active() != "native":
        raise SystemExit("bench_threads needs the native backend")
    native = backend._load_native()
    if args.blas_mode:
        native.set_blas_mode(args.blas_mode)
    if args.spin_us is not None:
        native.set_spin_us(args.spin_us)
    if args.tile_work is not None:
        native.set_parallel_threshold("gemm_tile", args.tile_work)
    if args.gemm_threshold is not None:
        native.set_parallel_threshold("gemm", args.gemm_threshold)
    n = ag.get_num_threads()
    limiter = None
    try:
        from threadpoolctl import threadpool_limits
        # NumPy's BLAS gets the same number of threads as ours (this also sets our pool, which
        # is registered with threadpoolctl, to n: a no-op).
        limiter = threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        pass
    out = {"threads": n, "info": backend.info(), "load_before": os.getloadavg()[0],
           "numpy_blas": numpy_blas(), "rows": [], "epochs": []}
    try:
        for size in args.sizes:
            out["rows"].append(time_matmul(size, calls_for(size, args.calls)))
            print(f"  size {size} done", file=sys.stderr, flush=True)
        if args.mnist_epochs > 0:
            if (MNIST / "train-images-idx3-ubyte.gz").exists() or \
                    (MNIST / "train-images-idx3-ubyte").exists():
                out["epochs"] = mnist_epochs(args.mnist_epochs)
            else:
                out["mnist_missing"] = str(MNIST)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    out["load_after"] = os.getloadavg()[0]
    out["numpy_sections"] = dict(native._C.foreign_blas())
    return out


def numpy_threads(info: dict) -> str:
    """Where NumPy's BLAS ran its parallel sections in the run."""
    state = info.get("numpy_blas") or {}
    if state.get("routed"):
        return "its parallel sections on our pool"
    return f"on its own threads ({state.get('reason', 'not routed')})"


def report(res: dict, args: argparse.Namespace) -> str:
    info = res["info"]
    lines = [
        f"### {res['threads']} thread{'s' if res['threads'] > 1 else ''}",
        "",
        f"{cpu_model()}, {os.cpu_count()} CPUs; ours: {info.get('blas')} "
        f"{info.get('blas_core')} kernels, threading `{info.get('threading')}` on the engine's "
        f"pool of {info.get('num_threads')}; NumPy {np.__version__}: {res['numpy_blas']} limited "
        f"to {res['threads']} thread(s), {numpy_threads(info)}. Load average "
        f"{res['load_before']:.1f} before, {res['load_after']:.1f} after.",
        "",
        "| n | calls | ours GFLOP/s | NumPy GFLOP/s | ours / NumPy | ours slowest / median "
        "| NumPy slowest / median | ours, NumPy slowest / median, caller not preempted "
        "| calls caller preempted | tiles stolen |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        # stolen (worker still first): tiles the caller recomputed because their worker was late
        stolen = "n/a" if r.get("stolen") is None else \
            f"{r['stolen']}" + (f" ({r['stolen_late']})" if r.get("stolen_late") else "")
        lines.append(f"| {r['size']} | {r['calls']} | {r['ours_gflops']:.1f} | "
                     f"{r['numpy_gflops']:.1f} | {r['ratio']:.2f} | {r['ours_worst']:.1f} | "
                     f"{r['numpy_worst']:.1f} | {r['ours_worst_kept']:.1f}, "
                     f"{r['numpy_worst_kept']:.1f} | {r['ours_preempted']}, "
                     f"{r['numpy_preempted']} | {stolen} |")
    if res["epochs"]:
        e = res["epochs"]
        med = statistics.median(e)
        lines += ["", f"MNIST MLP (examples/mnist_mlp.py), {len(e)} epochs back to back: "
                      f"median epoch {med:.2f} s, slowest {max(e):.2f} s "
                      f"({max(e) / med:.2f}x the median), fastest {min(e):.2f} s."]
    elif "mnist_missing" in res:
        lines += ["", f"MNIST skipped: no data in {res['mnist_missing']}."]
    sec = res.get("numpy_sections") or {}
    if sec.get("routed"):
        lines += ["", f"NumPy's parallel sections in this run: {sec['sections_on_pool']} on our "
                      f"pool, {sec['sections_on_extra_threads']} on extra threads."]
    return "\n".join(lines)


def measure_thresholds() -> None:
    """Where two threads start to beat one, per kernel family (pool thresholds at 0 / inf)."""
    from timing import median_seconds

    from autograd import backend
    native = backend._load_native()
    C = native._C
    saved = C.get_parallel_thresholds()
    nt = native.get_num_threads()
    if nt < 2:
        raise SystemExit("--thresholds needs at least 2 threads")
    cases = {
        "elementwise": lambda x: C.add(x, x),
        "transcendental": lambda x: C.exp(x),
    }
    print(f"all threads / one thread, median of repeats ({nt} threads; load average "
          f"{os.getloadavg()[0]:.1f}; current thresholds {saved}):\n")

    def ratio(fam, call):
        C.set_parallel_threshold(fam, 1 << 62)
        one = median_seconds(call, repeat=9, min_time=0.02)
        C.set_parallel_threshold(fam, 0)
        return median_seconds(call, repeat=9, min_time=0.02) / one

    def suggest(fam, rows):
        # the smallest size from which the pool wins by 10% or more at every larger size
        good = [w for w, r in rows if all(r2 < 0.9 for w2, r2 in rows if w2 >= w)]
        print(f"  suggested {fam} threshold: "
              + (f"{min(good) - 1}" if good else "above the largest size measured") + "\n")

    try:
        for fam, fn in cases.items():
            print(f"{fam}:")
            rows = []
            for p in range(10, 21):
                x = np.linspace(-1, 1, 1 << p, dtype=np.float32)
                rows.append((1 << p, ratio(fam, lambda: fn(x))))
                print(f"  2^{p:<3} {rows[-1][1]:.2f}")
            suggest(fam, rows)
        print("gemm (square n, work n^3):")
        rows = []
        for n in (32, 48, 64, 80, 96, 128, 160, 192, 256):
            a = np.ones((n, n), np.float32)
            rows.append((n ** 3, ratio("gemm", lambda: C.matmul(a, a, False, False))))
            print(f"  {n:<4} (2^{np.log2(float(n) ** 3):.1f}) {rows[-1][1]:.2f}")
        suggest("gemm", rows)
    finally:
        for fam, v in saved.items():
            C.set_parallel_threshold(fam, v)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="*", default=None,
                        help="thread counts to run (default: 1 and all cores)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(DEFAULT_SIZES))
    parser.add_argument("--calls", type=int, default=200, help="calls per size (max)")
    parser.add_argument("--mnist-epochs", type=int, default=20)
    parser.add_argument("--blas-mode", choices=("tiles", "callback"), default=None)
    parser.add_argument("--spin-us", type=int, default=None,
                        help="how long idle workers spin before blocking")
    parser.add_argument("--tile-work", type=int, default=None,
                        help="largest m*n*k of one tile of a large product")
    parser.add_argument("--gemm-threshold", type=int, default=None,
                        help="m*n*k at or below which a product stays on the calling thread")
    parser.add_argument("--numpy-blas", choices=("routed", "own"), default="routed",
                        help="NumPy's OpenBLAS on our pool (default) or on its own threads")
    parser.add_argument("--thresholds", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.thresholds:
        measure_thresholds()
        return
    if args.worker:
        print(json.dumps(worker(args)))
        return
    counts = args.threads or sorted({1, os.cpu_count() or 1})
    print(f"## bench_threads: {' '.join(sys.argv[1:]) or '(defaults)'}\n")
    for n in counts:
        cmd = [sys.executable, __file__, "--worker", "--sizes", *map(str, args.sizes),
               "--calls", str(args.calls), "--mnist-epochs", str(args.mnist_epochs)]
        if args.blas_mode:
            cmd += ["--blas-mode", args.blas_mode]
        if args.spin_us is not None:
            cmd += ["--spin-us", str(args.spin_us)]
        if args.tile_work is not None:
            cmd += ["--tile-work", str(args.tile_work)]
        if args.gemm_threshold is not None:
            cmd += ["--gemm-threshold", str(args.gemm_threshold)]
        env = dict(os.environ, AUTOGRAD_NUM_THREADS=str(n),
                   AUTOGRAD_ROUTE_NUMPY_BLAS="1" if args.numpy_blas == "routed" else "0")
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, check=True, text=True)
        print(report(json.loads(proc.stdout.strip().splitlines()[-1]), args), "\n", flush=True)


if __name__ == "__main__":
    main()
