"""Captured training steps: ``autograd.compile`` against eager autograd and the peers, one run.

Times, in one process and with one clock (elapsed time by default: jax.jit, PyTorch and our
thread pool compute on other threads, which a CPU clock of this thread would not count;
``--clock cpu`` for this thread's CPU time), the median and the slowest of the repeats:

* the XOR step (2-10-1, tanh, sigmoid, BCE, SGD lr 0.1, batch 4, float32; the net of
  ``timing.ag_xor_step``): autograd eager and compiled, hand-written NumPy, PyTorch eager and
  ``torch.compile``, ``jax.jit`` (peers where installed);
* the 784-256-128-10 ReLU MLP, cross-entropy, Adam, batch 128, float32: the same peers;
* the cost of tracing (first call of a fresh compiled step) and of the whole set-up (its
  first calls until it replays steadily, minus as many steady replays) in eager steps;
* resident memory over ``--steps`` compiled XOR steps (the issue's figure is 100,000);
* with ``--mnist DIR``: ``examples/mnist_mlp.py --compile`` seconds per epoch and accuracy.

    python benchmarks/bench_compile.py [--mnist /work/shared/data/mnist] [--steps 100000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import XOR_X, XOR_Y, ag_xor_step, fmt_time, sample_seconds, table  # noqa: E402


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------
# XOR
# ------------------------------------------------------------------------------------------

def numpy_xor_step():
    """The XOR step written by hand in NumPy (forward, BCE gradient, SGD)."""
    rng = np.random.default_rng(0)
    w1 = rng.uniform(-0.7, 0.7, (2, 10)).astype(np.float32)
    b1 = np.zeros(10, np.float32)
    w2 = rng.uniform(-0.3, 0.3, (10, 1)).astype(np.float32)
    b2 = np.zeros(1, np.float32)
    x, y, lr = XOR_X, XOR_Y, np.float32(0.1)

    def step():
        # in place, as a hand-written loop would (no rebinding)
        h = np.tanh(x @ w1 + b1)
        p = 1 / (1 + np.exp(-(h @ w2 + b2)))
        dz2 = (p - y) / len(x)  # BCE through the sigmoid
        dh = (dz2 @ w2.T) * (1 - h * h)
        np.subtract(w2, lr * (h.T @ dz2), out=w2)
        np.subtract(b2, lr * dz2.sum(0), out=b2)
        np.subtract(w1, lr * (x.T @ dh), out=w1)
        np.subtract(b1, lr * dh.sum(0), out=b1)
    return step


def torch_steps(torch, model, x, y, lossf, opt, compiled: bool):
    fwd = torch.compile(model) if compiled else model

    def step():
        opt.zero_grad()
        lossf(fwd(x), y).backward()
        opt.step()
    return step


def jax_xor_step(jax):
    jnp = jax.numpy
    rng = np.random.default_rng(0)
    params = [jnp.asarray(rng.uniform(-0.7, 0.7, (2, 10)), jnp.float32),
              jnp.zeros(10, jnp.float32),
              jnp.asarray(rng.uniform(-0.3, 0.3, (10, 1)), jnp.float32),
              jnp.zeros(1, jnp.float32)]
    x, y = jnp.asarray(XOR_X), jnp.asarray(XOR_Y)

    def loss(ps, x, y):
        h = jnp.tanh(x @ ps[0] + ps[1])
        p = jax.nn.sigmoid(h @ ps[2] + ps[3])
        p = jnp.clip(p, 1e-7, 1 - 1e-7)
        return -jnp.mean(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))

    @jax.jit
    def update(ps, x, y):
        g = jax.grad(loss)(ps, x, y)
        return [p - 0.1 * gi for p, gi in zip(ps, g)]

    state = [params]

    def step():
        state[0] = update(state[0], x, y)
        jax.block_until_ready(state[0])
    return step


# ------------------------------------------------------------------------------------------
# MLP 784-256-128-10, Adam, batch 128
# ------------------------------------------------------------------------------------------

def mlp_data(batch: int = 128):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((batch, 784)).astype(np.float32),
            rng.integers(0, 10, batch))


def ag_mlp_step(compiled: bool):
    import autograd as ag
    from autograd import nn, optim
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    xa, ya = mlp_data()
    x, y = ag.tensor(xa), ag.tensor(ya)

    def step(x, y):
        opt.zero_grad()
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = ag.compile(step) if compiled else step
    return lambda: fn(x, y)


def jax_mlp_step(jax):
    jnp = jax.numpy
    rng = np.random.default_rng(0)
    sizes = [(784, 256), (256, 128), (128, 10)]
    params = []
    for i, o in sizes:
        params += [jnp.asarray(rng.standard_normal((i, o)) * np.sqrt(2 / i), jnp.float32),
                   jnp.zeros(o, jnp.float32)]
    xa, ya = mlp_data()
    x, y = jnp.asarray(xa), jnp.asarray(ya)

    def loss(ps, x, y):
        h = x
        for i in range(0, 4, 2):
            h = jax.nn.relu(h @ ps[i] + ps[i + 1])
        z = h @ ps[4] + ps[5]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))

    @jax.jit
    def update(ps, m, v, t, x, y):
        g = jax.grad(loss)(ps, x, y)
        t = t + 1
        m = [0.9 * a + 0.1 * b for a, b in zip(m, g)]
        v = [0.999 * a + 0.001 * b * b for a, b in zip(v, g)]
        bc1, bc2 = 1 - 0.9 ** t, 1 - 0.999 ** t
        ps = [p - 1e-3 / bc1 * a / (jnp.sqrt(b / bc2) + 1e-8) for p, a, b in zip(ps, m, v)]
        return ps, m, v, t

    zeros = [jnp.zeros_like(p) for p in params]
    state = [params, zeros, list(zeros), jnp.float32(0)]

    def step():
        state[:] = update(*state, x, y)
        jax.block_until_ready(state[0])
    return step


def torch_mlp(torch):
    tn = torch.nn
    torch.manual_seed(0)
    model = tn.Sequential(tn.Linear(784, 256), tn.ReLU(), tn.Linear(256, 128), tn.ReLU(),
                          tn.Linear(128, 10))
    xa, ya = mlp_data()
    return (model, torch.tensor(xa), torch.tensor(ya), tn.CrossEntropyLoss(),
            torch.optim.Adam(model.parameters(), lr=1e-3))


# ------------------------------------------------------------------------------------------


#: calls of a fresh compiled step until it replays steadily: the trace, two interpreted
#: replays (the events are mapped to the tape at the first), the replay that builds the
#: native plan and the generated code, and two more
SETUP_CALLS = 6


def _first_call_ratios(make, eager_step, n: int, k: int, clock) -> list[float]:
    """The first call of ``n`` fresh compiled steps, each over the median of ``k`` steady eager
    steps timed just before it: both under the same load, which on a shared machine moves
    the eager step by up to 1.5x between moments (a ratio of two medians taken apart swung
    from 2.0 to 4.4 eager steps between runs of the same code)."""
    ratios = []
    for _ in range(n):
        es = []
        for _ in range(k):
            t0 = clock()
            eager_step()
            es.append(clock() - t0)
        fn = make()
        t0 = clock()
        fn()
        ratios.append((clock() - t0) / statistics.median(es))
    return ratios


def _setup_samples(make, n: int, clock
                   ) -> tuple[float, list[float], list[list[float]], list[float]]:
    """The first call of the process's first compiled step (one-time costs: imports, code
    objects); the first calls of ``n`` fresh compiled steps traced one after another (``make()``
    builds one; two more traced untimed first, as the eager step is timed warm); the
    first SETUP_CALLS calls of ``n`` other fresh steps; and the first calls of ``n`` more
    fresh steps, traced after all those (the process has then traced 2n + 3 steps, so
    one-time warm-up of code run once per trace, such as CPython's specialisation of the
    tracer's own functions, is behind it)."""
    fn = make()
    t0 = clock()
    fn()
    cold = clock() - t0
    firsts = []
    for _ in range(n + 2):
        fn = make()
        t0 = clock()
        fn()
        firsts.append(clock() - t0)
    rows = []
    for _ in range(n):
        fn = make()
        row = []
        for _ in range(SETUP_CALLS):
            t0 = clock()
            fn()
            row.append(clock() - t0)
        rows.append(row)
    later = []
    for _ in range(n):
        fn = make()
        t0 = clock()
        fn()
        later.append(clock() - t0)
    return cold, firsts[2:], rows, later


def setup_costs(clock, repeat: int = 15) -> list[str]:
    """What a fresh compiled step costs before it replays steadily, in eager steps of the
    same network: its first call (the trace) and the set-up in all (the first SETUP_CALLS
    calls minus as many steady replays), for XOR (``repeat`` fresh steps) and the MLP (a
    third as many, at least 2)."""
    import autograd as ag
    out = []
    cases = [("XOR", lambda: ag.compile(ag_xor_step()), ag_xor_step, max(2, repeat)),
             ("MLP", lambda: ag_mlp_step(True), lambda: ag_mlp_step(False),
              max(2, repeat // 3))]
    for name, make, make_eager, n in cases:
        reps = min(7, max(2, repeat))
        eager_step = make_eager()
        eager = statistics.median(sample_seconds(eager_step, repeat=reps, clock=clock))
        steady = statistics.median(sample_seconds(make(), repeat=reps, clock=clock))
        cold, firsts, rows, later = _setup_samples(make, n, clock)
        totals = [sum(r) - SETUP_CALLS * steady for r in rows]
        paired = sorted(_first_call_ratios(make, eager_step, 8 * n, 20 if name == "XOR" else 2,
                                           clock))
        out.append(
            f"{name}: tracing (first call of a fresh compiled step) costs "
            f"{statistics.median(paired):.2f} eager steps, each against the eager step timed "
            f"just before it ({len(paired)} fresh steps, p90 "
            f"{paired[int(0.9 * (len(paired) - 1))]:.2f}); against this run's eager median: "
            f"{statistics.median(firsts) / eager:.2f} (slowest "
            f"{max(firsts) / eager:.2f}; the process's first trace {cold / eager:.2f}; "
            f"later, after {2 * n + 3} traces, {statistics.median(later) / eager:.2f}); "
            f"set-up in all (first {SETUP_CALLS} calls - {SETUP_CALLS} steady replays) "
            f"{statistics.median(totals) / eager:.2f} (slowest {max(totals) / eager:.2f}); "
            f"eager step {fmt_time(eager)}, steady replay {fmt_time(steady)}, "
            f"{n} fresh steps")
    return out


def _make(case: str, peer: str):
    """The step function of one (case, peer), built in this process."""
    if peer.startswith("autograd"):
        import autograd as ag
        if case == "xor":
            step = ag_xor_step()
            return ag.compile(step) if peer == "autograd compiled" else step
        return ag_mlp_step(peer == "autograd compiled")
    if peer == "hand NumPy":
        return numpy_xor_step()
    if peer in ("PyTorch eager", "torch.compile"):
        import torch
        tn = torch.nn
        if case == "xor":
            torch.manual_seed(0)
            model = tn.Sequential(tn.Linear(2, 10), tn.Tanh(), tn.Linear(10, 1), tn.Sigmoid())
            parts = (model, torch.tensor(XOR_X), torch.tensor(XOR_Y), tn.BCELoss(),
                     torch.optim.SGD(model.parameters(), lr=0.1))
        else:
            parts = torch_mlp(torch)
        return torch_steps(torch, *parts, compiled=peer == "torch.compile")
    import jax
    jax.config.update("jax_platforms", "cpu")
    return jax_xor_step(jax) if case == "xor" else jax_mlp_step(jax)


def _worker(case: str, peer: str, repeat: int, clock_name: str) -> None:
    """Time one (case, peer) in this process; print its samples as JSON."""
    import json
    clock = time.thread_time if clock_name == "cpu" else time.perf_counter
    if peer in ("PyTorch eager", "torch.compile"):
        import autograd as ag
        import torch
        torch.set_num_threads(ag.get_num_threads())  # as many threads as ours
    fn = _make(case, peer)
    print(json.dumps(sample_seconds(fn, repeat=repeat, clock=clock)))


def _installed(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(name) is not None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clock", choices=["cpu", "wall"], default="wall")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100_000,
                        help="compiled XOR steps for the resident-memory figure")
    parser.add_argument("--mnist", default=None, help="MNIST directory: time the example")
    parser.add_argument("--no-peers", action="store_true", help="autograd only")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "PEER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], args.worker[1], args.repeat, args.clock)
        return
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    import json
    import subprocess

    import autograd as ag
    info = ag.backend.info()
    print(f"autograd backend {info['backend']}, engine {info['engine']}, "
          f"threads {ag.get_num_threads()}, clock {args.clock}; load {os.getloadavg()}; "
          f"each peer in its own process")
    peers = ["autograd compiled", "autograd eager"]
    if not args.no_peers:
        if _installed("torch"):
            peers += ["PyTorch eager", "torch.compile"]
        if _installed("jax"):
            peers += ["jax.jit"]
    if args.clock == "cpu" and len(peers) > 2:
        print("note: --clock cpu counts the CPU time of the timing thread only; jax.jit and "
              "PyTorch (and our pool, for large products) compute on other threads too, so "
              "their CPU-clock figures undercount them: compare with jax.jit on the wall "
              "clock (the default)")

    def run(case: str, peer: str) -> list[float] | str:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", case, peer,
               "--repeat", str(args.repeat), "--clock", args.clock]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            return "failed: " + (res.stderr.strip().splitlines() or ["?"])[-1][:60]
        return json.loads(res.stdout.strip().splitlines()[-1])

    titles = {"xor": "XOR step (2-10-1, float32, batch 4, SGD lr 0.1, BCE)",
              "mlp": "784-256-128-10 ReLU MLP step (float32, batch 128, Adam, cross-entropy)"}
    for case in ("xor", "mlp"):
        rows = []
        base = None
        for peer in peers[:2] + (["hand NumPy"] if case == "xor" else []) + peers[2:]:
            s = run(case, peer)
            if isinstance(s, str):
                rows.append([peer, s, "", ""])
                continue
            med = statistics.median(s)
            base = base or med
            rows.append([peer, fmt_time(med), fmt_time(max(s)), f"{med / base:.2f}"])
        print(f"\n{titles[case]}: median, slowest repeat, time relative to compiled")
        print(table(["", "median", "slowest", "x compiled"], rows))

    # tracing cost -----------------------------------------------------------------------
    for line in setup_costs(clock, args.repeat):
        print(line)

    # memory ------------------------------------------------------------------------------
    compiled_xor = ag.compile(ag_xor_step())
    for _ in range(1000):
        compiled_xor()
    before = _rss()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        compiled_xor()
    wall = time.perf_counter() - t0
    print(f"resident memory over {args.steps} compiled XOR steps: "
          f"{(_rss() - before) / 1024:+.0f} KiB ({wall:.2f} s wall)")

    # MNIST example -------------------------------------------------------------------------
    if args.mnist:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "examples"))
        import mnist_mlp
        for flag in (["--compile"], []):
            out = mnist_mlp.main(["--data", args.mnist, "--epochs", "5"] + flag)
            times = out["epoch_seconds"]
            print(f"examples/mnist_mlp.py {' '.join(flag) or '(eager)'}: "
                  f"{statistics.median(times):.3f} s/epoch median (slowest "
                  f"{max(times):.3f}), test accuracy {out['test_accuracy']:.2%}")


if __name__ == "__main__":
    main()
