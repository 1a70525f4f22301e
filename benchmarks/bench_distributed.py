"""Data-parallel benchmarks on MPI, in one run:

1. allreduce latency and bandwidth against message size, ours (``autograd.distributed``)
   against raw ``mpi4py`` on the same buffers, interleaved, at 2 ranks;
2. the MNIST MLP (784-256-128-10) training step with DistributedDataParallel at 1 and 2 ranks
   (128 samples per rank), with the fraction of the allreduce time hidden behind backward;
3. a ring-allreduce model of that step at 8-64 ranks, from the latency and bandwidth fitted
   in (1) and, for comparison, two assumed cluster networks.

    python benchmarks/bench_distributed.py [--quick]

The script launches itself under ``mpiexec`` (the one next to the Python running it, else the
one on PATH) for each part; rank 0 of each part prints one JSON line that this parent reads.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SIZES = [2 ** k for k in range(3, 25, 2)]  # bytes: 8 B .. 16 MiB (float32 elements)
MLP = [784, 256, 128, 10]


# ------------------------------------------------------------------ workers (under mpiexec)
def _stats(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def worker_allreduce(quick: bool) -> dict:
    """Seconds per blocking allreduce (sum, float32, in place) per size, ours and mpi4py's,
    timed call by call in alternating pairs so both see the same machine load; a call's time
    is its slowest rank's."""
    from mpi4py import MPI

    import autograd as ag
    import autograd.distributed as dist
    dist.init_process_group()
    comm = MPI.COMM_WORLD
    rows = []
    for nbytes in SIZES:
        n = nbytes // 4
        t = ag.tensor(np.ones(n, dtype=np.float32))
        raw = np.ones(n, dtype=np.float32)
        pairs = max(40, min(400, int(4e7 // max(nbytes, 1 << 16)))) // (4 if quick else 1)

        def run_ours(t=t) -> None:
            dist.all_reduce(t)

        def run_raw(raw=raw) -> None:
            comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM)

        for fn in (run_ours, run_raw, run_ours, run_raw):  # warm up both paths
            fn()
        times = np.empty((pairs, 2))
        for i in range(pairs):
            order = ((0, run_ours), (1, run_raw)) if i % 2 == 0 else \
                ((1, run_raw), (0, run_ours))
            for col, fn in order:
                comm.Barrier()
                t0 = time.perf_counter()
                fn()
                times[i, col] = time.perf_counter() - t0
            if i % 16 == 15:  # keep the values finite: x * size ** k grows
                t._data[...] = 1.0
                raw[...] = 1.0
        comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
        rows.append({"bytes": nbytes, "ours": _stats(times[:, 0].tolist()),
                     "mpi4py": _stats(times[:, 1].tolist()),
                     "pair_ratio": float(np.median(times[:, 0] / times[:, 1])),
                     "pairs": pairs})
    return {"world": comm.Get_size(), "rows": rows}


def worker_step(quick: bool) -> dict:
    """The MNIST MLP step (Adam, cross-entropy, 128 samples per rank): plain (no
    communication), naive data-parallel (one blocking allreduce of all gradients after
    backward: nothing overlaps) and DDP (default and small buckets)."""
    from mpi4py import MPI

    import autograd as ag
    import autograd.distributed as dist
    from autograd import nn, optim
    dist.init_process_group()
    ag.set_num_threads(1)  # one thread per rank at any world size: ranks, not threads, vary
    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    g = np.random.default_rng(rank)
    x = ag.tensor(g.standard_normal((128, MLP[0])).astype(np.float32))
    y = ag.tensor(g.integers(0, 10, 128))

    def build() -> nn.Module:
        ag.manual_seed(0)
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))

    loss_fn = nn.CrossEntropyLoss()
    steps = 40 if quick else 200
    out: dict = {"world": world, "threads": ag.get_num_threads()}
    for label, cap in (("plain", None), ("naive", None), ("ddp", 25),
                       ("ddp_small_buckets", 0.1)):
        model = build() if cap is None else \
            nn.parallel.DistributedDataParallel(build(), bucket_cap_mb=cap)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        params = list(model.parameters())
        flat = np.empty(sum(p.size for p in params), dtype=np.float32)
        times, waits, backward = [], [], []
        for i in range(steps + 5):
            comm.Barrier()
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            t1 = time.perf_counter()
            loss.backward()
            if label == "naive":  # what DDP replaces: reduce everything after backward
                np.concatenate([p.grad.numpy().reshape(-1) for p in params], out=flat)
                comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
                start = 0
                for p in params:
                    np.divide(flat[start:start + p.size].reshape(p.shape), world,
                              out=p.grad.numpy())
                    start += p.size
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if i >= 5:
                times.append(t3 - t0)
                backward.append(t2 - t1)
                if cap is not None:
                    waits.append(model.reducer.last_wait_s)
        step = comm.allreduce(statistics.median(times), op=MPI.MAX)
        out[label] = {"step": _stats(times), "step_slowest_rank_median": step,
                      "backward": _stats(backward)}
        if cap is not None:
            out[label]["wait"] = _stats(waits)
            # The same buckets reduced on their own, blocking: what overlap could hide.
            buffers = [b.buffer for b in model.reducer.buckets]
            alone = []
            for _ in range(steps // 4):
                comm.Barrier()
                t0 = time.perf_counter()
                for buf in buffers:
                    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                alone.append(time.perf_counter() - t0)
            out[label]["allreduce_alone"] = _stats(alone)
            out[label]["buckets"] = len(buffers)
            out[label]["grad_bytes"] = int(sum(b.nbytes for b in buffers))
            model.remove_hooks()
    return out


def _worker(part: str, quick: bool) -> None:
    result = {"allreduce": worker_allreduce, "step": worker_step}[part](quick)
    from mpi4py import MPI
    if MPI.COMM_WORLD.Get_rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------ the parent
def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        raise SystemExit("mpiexec not found: pip install \"autograd-engine[mpi]\"")
    return found


def _launch(n: int, part: str, quick: bool) -> dict:
    cmd = [_mpiexec(), "-n", str(n), sys.executable, str(HERE), "--worker", part]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def fit_alpha_beta(rows: list[dict], p: int) -> tuple[float, float]:
    """Per-message latency (s) and per-byte time (s/B) of a link, from mpi4py's medians, via
    the ring model t(n) = 2(p-1) alpha + 2(p-1)/p n beta (least squares, relative error)."""
    n = np.array([r["bytes"] for r in rows], dtype=float)
    t = np.array([r["mpi4py"]["median"] for r in rows])
    a = np.stack([np.full_like(n, 2 * (p - 1)), 2 * (p - 1) / p * n], axis=1)
    coef, *_ = np.linalg.lstsq(a / t[:, None], np.ones_like(t), rcond=None)
    return max(float(coef[0]), 0.0), max(float(coef[1]), 1e-15)


def ring_seconds(p: int, nbytes: float, alpha: float, beta: float) -> float:
    """Ring allreduce: reduce-scatter then all-gather, 2(p-1) steps of nbytes/p each."""
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--worker", choices=["allreduce", "step"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.quick)
        return {}
    from timing import fmt_time, table

    print(f"machine: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    ar = _launch(2, "allreduce", args.quick)
    rows = []
    for r in ar["rows"]:
        ours, raw = r["ours"]["median"], r["mpi4py"]["median"]
        rows.append([f"{r['bytes']:,}", r["pairs"], fmt_time(ours), fmt_time(raw),
                     f"{r['pair_ratio']:.3f}", fmt_time(r["ours"]["max"]),
                     fmt_time(r["mpi4py"]["max"]), f"{r['bytes'] / ours / 1e9:.3f}"])
    print(f"\nallreduce (sum, float32, in place) at {ar['world']} ranks: medians over pairs of "
          f"calls (ours, mpi4py, alternating), the median of the pairs' ratios, slowest calls")
    print(table(["bytes", "pairs", "ours", "mpi4py", "ours/mpi4py", "ours slowest",
                 "mpi4py slowest", "ours GB/s"], rows))
    big = [r for r in ar["rows"] if r["bytes"] >= 1 << 20]
    worst = max(r["pair_ratio"] for r in big)
    print(f"largest overhead at >= 1 MiB (median pair ratio): {100 * (worst - 1):+.1f}%")
    alpha, beta = fit_alpha_beta(ar["rows"], ar["world"])
    print(f"fitted link (ring model): latency alpha = {fmt_time(alpha)}, "
          f"bandwidth 1/beta = {1 / beta / 1e9:.2f} GB/s")

    steps = {n: _launch(n, "step", args.quick) for n in (1, 2)}
    print("\nMNIST MLP step (Adam, 128 samples per rank, 1 thread per rank): medians (slowest "
          "step). plain: no communication; naive: one blocking allreduce after backward;\n"
          "'waited': time DDP's backward spent waiting for its allreduces at the end; 'hidden' "
          "= 1 - waited / (the same allreduces alone, right after a barrier)")
    rows = []
    for n, s in steps.items():
        for label in ("plain", "naive", "ddp", "ddp_small_buckets"):
            d = s[label]
            extra = ["", "", "", ""]
            if label.startswith("ddp"):
                alone, wait = d["allreduce_alone"]["median"], d["wait"]["median"]
                hidden = "n/a" if n == 1 else f"{max(0.0, min(1.0, 1 - wait / alone)):.0%}"
                extra = [d["buckets"], fmt_time(alone), fmt_time(wait), hidden]
            rows.append([n, label, f"{fmt_time(d['step']['median'])} "
                         f"({fmt_time(d['step']['max'])})", fmt_time(d["backward"]["median"]),
                         *extra, f"{n * 128 / d['step_slowest_rank_median']:,.0f}"])
    print(table(["ranks", "step", "median (slowest)", "backward", "buckets",
                 "allreduce alone", "waited", "hidden", "samples/s"], rows))
    two = steps[2]["ddp"]
    grad_bytes = two["grad_bytes"]
    hidden2 = max(0.0, min(1.0, 1 - two["wait"]["median"] / two["allreduce_alone"]["median"]))
    # The per-rank compute of a step is the same at any rank count; on a loaded machine the
    # lower of the two plain medians is the one less inflated by preemption.
    compute = min(s["plain"]["step"]["median"] for s in steps.values())
    print(f"\nring-allreduce model, weak scaling (128 samples per rank, {grad_bytes:,} bytes of "
          f"gradients in {two['buckets']} bucket(s)); step = compute {fmt_time(compute)} "
          f"+ allreduce not hidden (measured hidden fraction {hidden2:.0%}; 0% = no overlap)")
    networks = {"measured (this machine, shared memory)": (alpha, beta),
                "assumed 100 Gb/s InfiniBand (2 us, 12 GB/s)": (2e-6, 1 / 12e9),
                "assumed 10 Gb/s Ethernet (25 us, 1.1 GB/s)": (25e-6, 1 / 1.1e9)}
    model = {}
    for name, (a, b) in networks.items():
        rows = []
        for p in (2, 8, 16, 32, 64):
            comm_s = ring_seconds(p, grad_bytes, a, b)
            exposed = comm_s * (1 - hidden2)
            eff = compute / (compute + exposed)
            eff0 = compute / (compute + comm_s)
            rows.append([p, fmt_time(comm_s), f"{eff:.0%}", f"{eff0:.0%}",
                         f"{p * eff:.1f}x"])
            model.setdefault(name, []).append({"p": p, "allreduce_s": comm_s,
                                               "efficiency": eff, "efficiency_no_overlap": eff0})
        print(f"\n{name}")
        print(table(["ranks", "allreduce", "efficiency", "no overlap", "speedup"], rows))
    return {"allreduce": ar, "steps": steps, "alpha": alpha, "beta": beta, "model": model}


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
