"""Higher-order gradients: what create_graph costs, and that plain backward did not slow down.

Two parts, each from one run:

1. Second order on an MLP loss (64-128-128-10, tanh, cross-entropy, batch 128, float64): the
   time of one gradient, one ``ag.hvp`` (should be a small multiple of a gradient, never a
   Hessian's cost), one ``ag.grad(create_graph=True)``; and the same with PyTorch when installed.
2. The eager per-op cost (forward + backward of a chain of small 16x16 float32 ops): this tree,
   and with ``--against REV`` the autograd package of another git revision, alternating
   processes so both see the same machine load. Only the Python sources of REV are taken; the
   compiled core and engine are this tree's, so REV must not differ in C++ or Cython.

    python benchmarks/bench_grad.py [--quick] [--against REV] [--rounds 8]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import fmt_time, table, torch_or_none

import autograd as ag
from autograd import functional as F

# ------------------------------------------------------------------------------ part 1

def cpu_median(fn, repeat: int = 7, min_time: float = 0.2) -> float:
    """Median CPU seconds (this process, all threads) per call: on a shared, oversubscribed
    machine wall time measures the other processes more than this one."""
    fn()
    number = 1
    while True:
        t0 = time.process_time()
        for _ in range(number):
            fn()
        elapsed = time.process_time() - t0
        if elapsed >= min_time or number >= 1 << 16:
            break
        number *= 2
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        samples.append((time.process_time() - t0) / number)
    return statistics.median(samples)



def mlp_case(batch: int = 128, sizes=(64, 128, 128, 10)):
    """(params, loss(params...), v): an MLP classification loss of its weights."""
    rng = np.random.default_rng(0)
    shapes = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        shapes += [(b, a), (b,)]
    params = tuple(rng.standard_normal(s) / np.sqrt(s[-1]) for s in shapes)
    x = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], batch)
    vs = tuple(rng.standard_normal(p.shape) for p in params)
    return params, x, y, vs


def ag_loss(x, y):
    xt = ag.tensor(x)

    def loss(*p):
        h = xt
        for i in range(0, len(p) - 2, 2):
            h = F.linear(h, p[i], p[i + 1], activation="tanh")
        return F.cross_entropy(F.linear(h, p[-2], p[-1]), y)
    return loss


def torch_loss(torch, x, y):
    tf = torch.nn.functional
    xt, yt = torch.tensor(x), torch.tensor(y)

    def loss(*p):
        h = xt
        for i in range(0, len(p) - 2, 2):
            h = torch.tanh(tf.linear(h, p[i], p[i + 1]))
        return tf.cross_entropy(tf.linear(h, p[-2], p[-1]), yt)
    return loss


def second_order(quick: bool) -> None:
    # one thread each: CPU time is then this computation's, not BLAS workers spinning while
    # other processes hold the cores
    threads = ag.get_num_threads()
    ag.set_num_threads(1)
    try:
        _second_order(quick)
    finally:
        ag.set_num_threads(threads)


def _second_order(quick: bool) -> None:
    params, x, y, vs = mlp_case()
    loss = ag_loss(x, y)
    ps = tuple(ag.tensor(p, requires_grad=True) for p in params)
    vt = tuple(ag.tensor(v) for v in vs)
    kw = dict(repeat=3 if quick else 7, min_time=0.02 if quick else 0.2)

    def gradient():
        ag.grad(loss(*ps), ps)

    def recorded():
        ag.grad(loss(*ps), ps, create_graph=True)

    def hvp():
        ag.hvp(loss, ps, vt)

    rows = []
    base = cpu_median(gradient, **kw)
    for name, fn in (("gradient", gradient), ("grad(create_graph=True)", recorded),
                     ("hvp", hvp)):
        t = base if fn is gradient else cpu_median(fn, **kw)
        rows.append(["ours", name, fmt_time(t), f"{t / base:.2f}x"])
    torch = torch_or_none()
    if torch is not None:
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        tl = torch_loss(torch, x, y)
        tp = tuple(torch.tensor(p, requires_grad=True) for p in params)
        tv = tuple(torch.tensor(v) for v in vs)
        cases = (("gradient", lambda: torch.autograd.grad(tl(*tp), tp)),
                 ("grad(create_graph=True)",
                  lambda: torch.autograd.grad(tl(*tp), tp, create_graph=True)),
                 ("hvp", lambda: torch.autograd.functional.hvp(tl, tp, tv)))
        tbase = None
        for name, fn in cases:
            t = cpu_median(fn, **kw)
            tbase = tbase or t
            rows.append(["torch", name, fmt_time(t), f"{t / tbase:.2f}x"])
        torch.set_num_threads(torch_threads)
    n = sum(p.size for p in params)
    print(f"MLP 64-128-128-10, batch 128, float64, 1 thread, {n} parameters (a Hessian would "
          f"need {n} backward passes of the recorded gradient)")
    print(table(["library", "case", "median CPU", "vs its gradient"], rows))


# ------------------------------------------------------------------------------ part 2

PER_OP = r"""
import statistics, sys, time
sys.path[:0] = [{root!r}, {site!r}]
import numpy as np
import autograd as ag
assert ag.__file__.startswith({root!r}), ag.__file__
rng = np.random.default_rng(0)
a = ag.tensor(rng.standard_normal((16, 16)).astype(np.float32), requires_grad=True)
b = ag.tensor(rng.standard_normal((16, 16)).astype(np.float32))
def step():
    y = a
    for _ in range(20):
        y = (y * b + b).tanh()
    y.sum().backward()
    a.grad = None
for _ in range(30):
    step()
samples = []
for _ in range({repeat}):
    t0 = time.thread_time()  # CPU time of this thread: other processes' load counts less
    for _ in range(50):
        step()
    samples.append((time.thread_time() - t0) / 50 / 61)
print(statistics.median(samples), ag.backend.info()["backend"], ag.backend.engine())
"""


def _package_copy(dest: Path, rev: str | None) -> Path:
    """The autograd package of ``rev`` (None: this tree), with this tree's compiled modules."""
    here = Path(ag.__file__).resolve().parent
    repo = here.parent
    target = dest / (rev or "this")
    target.mkdir()
    if rev is None:
        shutil.copytree(here, target / "autograd",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    else:
        archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "autograd"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for mod in (ag.backend._compiled_engine, sys.modules.get("autograd._C")):
        if mod is not None:
            shutil.copy(mod.__file__, target / "autograd")
            libs = Path(mod.__file__).resolve().parent.parent / "scipy_openblas32"
            if libs.exists() and not (target / "scipy_openblas32").exists():
                os.symlink(libs, target / "scipy_openblas32")
    return target


def per_op(against: str | None, rounds: int, quick: bool) -> None:
    site = str(Path(np.__file__).resolve().parent.parent)
    repeat = 3 if quick else 9
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": _package_copy(Path(tmp), None)}
        if against:
            trees[against] = _package_copy(Path(tmp), against)
        times: dict[str, list[float]] = {k: [] for k in trees}
        what = ""
        for _ in range(1 if quick else rounds):
            for name, root in trees.items():  # alternate, so both see the same load
                code = PER_OP.format(root=str(root), site=site, repeat=repeat)
                out = subprocess.run([sys.executable, "-S", "-c", code], check=True,
                                     capture_output=True, text=True).stdout.split()
                times[name].append(float(out[0]))
                what = f"backend {out[1]}, engine {out[2]}"
    rows = []
    ref = statistics.median(times["this tree"])
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append([name, fmt_time(med), fmt_time(min(ts)), fmt_time(max(ts)),
                     f"{med / ref:.3f}"])
    print(f"eager per-op cost, forward + backward, 16x16 float32 ({what}; median over "
          f"{len(ts)} alternating processes of each process's median CPU time)")
    print(table(["tree", "median", "fastest", "slowest", "vs this tree"], rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke test)")
    parser.add_argument("--against", help="a git revision to compare the per-op cost with")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"autograd {ag.backend.info()}")
    t0 = time.perf_counter()
    second_order(args.quick)
    print()
    per_op(args.against, args.rounds, args.quick)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
