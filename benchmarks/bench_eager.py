"""Eager overhead on tutorial-sized work: per small op, the XOR step and a 1-2-5-1 Adam step.

One run times, on this machine and in the same conditions:

* ours with each kernel provider (numpy, native) and each hot path (compiled, python: the hot
  path is chosen at import, so each runs in its own subprocess with ``AUTOGRAD_ENGINE``);
* hand-written NumPy (forward and hand-derived backward), and, where installed, micrograd
  (scalars, pure Python) and PyTorch eager.

Cases: one recorded op (16x16 float32 add, requires grad); forward + backward per op (a chain
``z = z * a + b`` of 32 ops on 16x16 float32, then backward, divided by 32); the Keras-tutorial
XOR 2-10-1 SGD step; a seed-style 1-2-5-1 tanh MLP Adam step on one sample. Each figure is the
median over repeats of a timed loop, with the fastest and slowest repeat (the machine is shared).
``--clock cpu`` times the CPU time of the benchmarking thread instead of the wall clock, which
leaves out the time spent waiting for a core while other processes keep the machine busy:

    python benchmarks/bench_eager.py [--quick] [--clock wall|cpu] [--xor-pieces]
    python benchmarks/bench_eager.py --alternate 5 --provider numpy --clock cpu
    python benchmarks/bench_eager.py --paired-xor 40 --clock cpu

``--alternate N`` times only the per-op cases (one recorded op; forward + backward per op) for
one provider, in N rounds that each run a compiled and a pure-twin process back to back (the
order swapped every round), so a busy spell on the shared machine lands on both twins alike;
it prints each round's compiled/python ratio and, over all repeats, both medians and slowest.

``--paired-xor N`` times the XOR step of this process (native provider, compiled hot path by
default) against NumPy by hand in N pairs of back-to-back loops, so a slow spell of the shared
machine (seen here: both steps ~1.6x slower for seconds at a time, on the CPU clock too) lands on
both sides of a pair; it prints both medians and slowest loops and the pairs' speed ratios
(median, 10th percentile, lowest). The plain table times each figure after the other, so such
a spell can land on one side only.

``--xor-pieces`` times the XOR step's pieces instead (zero_grad, forward, loss, backward, the
optimizer step) and the seven kernel calls it makes, called directly: its arithmetic floor.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from timing import XOR_X, XOR_Y, ag_xor_step, sample_seconds, table, torch_or_none, torch_xor_step

CHAIN = 32  # ops in the forward+backward chain (16 multiply-add pairs)
SAMPLE_X, SAMPLE_Y = 0.5, 0.25  # the one sample of the 1-2-5-1 regression step
TARGETS_US = {"op": 1.5, "op_fb": 2.0, "xor": 15.0, "adam1251": 30.0}
XOR_VS_HAND = 1.8  # the XOR step must also be this many times faster than hand NumPy
TITLES = {"op": "one recorded op (16x16 add)", "op_fb": "per op, forward+backward",
          "xor": "XOR 2-10-1 SGD step", "adam1251": "1-2-5-1 Adam step, 1 sample"}


# ------------------------------------------------------------------------------------ ours
def ours_cases():
    """name -> factory of a zero-argument step, for the autograd imported in this process."""
    import autograd as ag
    from autograd import functional as F
    from autograd import nn, optim

    rng = np.random.default_rng(0)

    def op():
        x = ag.tensor(rng.random((16, 16), dtype=np.float32), requires_grad=True)
        y = ag.tensor(rng.random((16, 16), dtype=np.float32), requires_grad=True)
        return lambda: x + y

    def op_fb():
        x = ag.tensor(rng.random((16, 16), dtype=np.float32), requires_grad=True)
        a = ag.tensor(rng.random((16, 16), dtype=np.float32) * 0.1, requires_grad=True)
        b = ag.tensor(rng.random((16, 16), dtype=np.float32), requires_grad=True)
        g = np.ones((16, 16), np.float32)

        def step():
            a.grad = b.grad = x.grad = None
            z = x
            for _ in range(CHAIN // 2):
                z = z * a + b
            z.backward(g)
        return step

    def adam1251():
        ag.manual_seed(0)
        model = nn.Sequential(nn.Linear(1, 2), nn.Tanh(), nn.Linear(2, 5), nn.Tanh(),
                              nn.Linear(5, 1))
        opt = optim.Adam(model.parameters(), lr=0.01)
        x, y = ag.tensor([[SAMPLE_X]]), ag.tensor([[SAMPLE_Y]])

        def step():
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
        return step
    return {"op": op, "op_fb": op_fb, "xor": ag_xor_step, "adam1251": adam1251}


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def run_ours(repeat: int, min_time: float, clock: str, provider: str | None = None,
             cases: tuple[str, ...] | None = None) -> dict:
    """Time every case (or ``cases``) on every provider (or ``provider``) in this process:
    {case: {provider: samples}}."""
    from autograd import backend
    out: dict = {"info": backend.info()}
    for case, factory in ours_cases().items():
        if cases is not None and case not in cases:
            continue
        out[case] = {}
        for name in [provider] if provider else backend.available():
            with backend.use(name):
                out[case][name] = sample_seconds(factory(), repeat, min_time,
                                                 clock=CLOCKS[clock])
    return out


# ------------------------------------------------------------------------------ NumPy by hand
def numpy_cases():
    """The same cases written as NumPy scripts with hand-derived gradients."""
    rng = np.random.default_rng(0)

    def op():
        a = rng.random((16, 16), dtype=np.float32)
        b = rng.random((16, 16), dtype=np.float32)
        return lambda: a + b

    def op_fb():
        x = rng.random((16, 16), dtype=np.float32)
        a = rng.random((16, 16), dtype=np.float32) * np.float32(0.1)
        b = rng.random((16, 16), dtype=np.float32)
        g = np.ones((16, 16), np.float32)

        def step():
            zs = [x]
            z = x
            for _ in range(CHAIN // 2):
                z = z * a + b
                zs.append(z)
            gz, ga, gb = g, np.zeros_like(a), np.zeros_like(b)
            for zp in reversed(zs[:-1]):
                ga = ga + gz * zp
                gb = gb + gz
                gz = gz * a
            return gz, ga, gb
        return step

    def xor():
        w1 = rng.standard_normal((2, 10)).astype(np.float32) * np.float32(0.5)
        b1 = np.zeros(10, np.float32)
        w2 = rng.standard_normal((10, 1)).astype(np.float32) * np.float32(0.5)
        b2 = np.zeros(1, np.float32)
        x, y = XOR_X, XOR_Y

        def step():
            nonlocal w1, b1, w2, b2
            h = np.tanh(x @ w1 + b1)
            p = 1 / (1 + np.exp(-(h @ w2 + b2)))
            dz2 = (p - y) / len(x)
            dh = dz2 @ w2.T * (1 - h * h)
            w2 -= np.float32(0.1) * (h.T @ dz2)
            b2 -= np.float32(0.1) * dz2.sum(0)
            w1 -= np.float32(0.1) * (x.T @ dh)
            b1 -= np.float32(0.1) * dh.sum(0)
        return step

    def adam1251():
        sizes = [1, 2, 5, 1]
        ws = [rng.standard_normal((i, o)).astype(np.float32) for i, o in zip(sizes, sizes[1:])]
        bs = [np.zeros(o, np.float32) for o in sizes[1:]]
        params = ws + bs
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        x = np.array([[SAMPLE_X]], np.float32)
        y = np.array([[SAMPLE_Y]], np.float32)
        t = [0]

        def step():
            acts = [x]
            for i in range(3):
                z = acts[-1] @ ws[i] + bs[i]
                acts.append(np.tanh(z) if i < 2 else z)
            d = 2 * (acts[-1] - y)
            gw, gb = [None] * 3, [None] * 3
            for i in (2, 1, 0):
                gw[i] = acts[i].T @ d
                gb[i] = d.sum(0)
                if i:
                    d = (d @ ws[i].T) * (1 - acts[i] * acts[i])
            t[0] += 1
            c1, c2 = 1 - 0.9 ** t[0], 1 - 0.999 ** t[0]
            for p, g, mi, vi in zip(params, gw + gb, m, v):
                mi *= 0.9
                mi += 0.1 * g
                vi *= 0.999
                vi += 0.001 * g * g
                p -= 0.01 / c1 * mi / (np.sqrt(vi / c2) + 1e-8)
        return step
    return {"op": op, "op_fb": op_fb, "xor": xor, "adam1251": adam1251}


# ------------------------------------------------------------------------------ micrograd
def micrograd_cases():
    """Per-op cases on micrograd's scalar Value (pure Python), or {} when not installed."""
    try:
        from micrograd.engine import Value
    except ImportError:
        return {}

    def op():
        x, y = Value(0.3), Value(0.7)
        return lambda: x + y

    def op_fb():
        x, a, b = Value(0.3), Value(0.05), Value(0.7)

        def step():
            z = x
            for _ in range(CHAIN // 2):
                z = z * a + b
            z.backward()
        return step
    return {"op": op, "op_fb": op_fb}


# ------------------------------------------------------------------------------ PyTorch
def torch_cases(torch):
    """The same cases in PyTorch eager (float32, CPU)."""
    tn = torch.nn

    def op():
        x = torch.rand(16, 16, requires_grad=True)
        y = torch.rand(16, 16, requires_grad=True)
        return lambda: x + y

    def op_fb():
        x = torch.rand(16, 16, requires_grad=True)
        a = (torch.rand(16, 16) * 0.1).requires_grad_()
        b = torch.rand(16, 16, requires_grad=True)
        g = torch.ones(16, 16)

        def step():
            a.grad = b.grad = x.grad = None
            z = x
            for _ in range(CHAIN // 2):
                z = z * a + b
            z.backward(g)
        return step

    def adam1251():
        torch.manual_seed(0)
        model = tn.Sequential(tn.Linear(1, 2), tn.Tanh(), tn.Linear(2, 5), tn.Tanh(),
                              tn.Linear(5, 1))
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        x, y = torch.tensor([[SAMPLE_X]]), torch.tensor([[SAMPLE_Y]])
        lossf = tn.MSELoss()

        def step():
            opt.zero_grad()
            lossf(model(x), y).backward()
            opt.step()
        return step
    return {"op": op, "op_fb": op_fb, "xor": lambda: torch_xor_step(torch),
            "adam1251": adam1251}


# ------------------------------------------------------------------------------ XOR pieces
def xor_pieces():
    """name -> zero-argument call: the XOR step's pieces, each timed on its own (the step's
    state between them: the loss and its graph are remade where a piece consumes them), and
    its kernel floor: the native calls the step makes, on the same arrays, called directly.
    For ``--xor-pieces``: where the step's time goes (which part is arithmetic and which is
    Python and Cython bookkeeping)."""
    import autograd as ag
    from autograd import backend
    from autograd import functional as F
    from autograd import nn, optim
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 10), nn.Tanh(), nn.Linear(10, 1), nn.Sigmoid())
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = ag.tensor(XOR_X), ag.tensor(XOR_Y)

    def forward_loss():
        opt.zero_grad()
        return F.binary_cross_entropy(model(x), y)

    def backward():  # forward + loss + backward, less forward + loss (taken below)
        forward_loss().backward()

    forward_loss().backward()  # gradients in place for opt.step
    out = model(x)
    pieces = {"opt.zero_grad()": opt.zero_grad, "model(x)": lambda: model(x),
              "binary_cross_entropy": lambda: F.binary_cross_entropy(out, y),
              "zero_grad + forward + loss": forward_loss,
              "zero_grad + forward + loss + backward": backward}
    # the step's kernels on its own arrays (opt.step last: it needs the gradients)
    k = backend.k
    l1, l2 = model[0], model[2]
    w1, b1, w2, b2 = (p.numpy() for p in (l1.weight, l1.bias, l2.weight, l2.bias))
    h = k.linear(XOR_X, w1, b1, "tanh")
    p = k.linear(h, w2, b2, "sigmoid")
    g = np.ones((), np.float32)
    dp = k.bce_back(p, XOR_Y, g, "mean")
    dh = k.linear_back(h, w2, p, dp, "sigmoid", True)[0]
    params = [w1.copy(), b1.copy(), w2.copy(), b2.copy()]
    grads = [np.zeros_like(a) for a in params]

    def kernels():
        k.linear(XOR_X, w1, b1, "tanh")
        k.linear(h, w2, b2, "sigmoid")
        k.bce(p, XOR_Y, "mean")
        k.bce_back(p, XOR_Y, g, "mean")
        k.linear_back(h, w2, p, dp, "sigmoid", True)
        k.linear_back(XOR_X, w1, h, dh, "tanh", True)
        k.sgd_step(params, grads, None, 0.1, 0.0, 0.0, False, 0.0)
    pieces["opt.step()"] = opt.step
    pieces["kernels alone (7 calls)"] = kernels
    pieces["whole step"] = ag_xor_step()
    return pieces


def paired_xor(pairs: int, min_time: float, clock: str) -> str:
    """``--paired-xor``: the XOR step of this process (its default provider) against NumPy by
    hand, in ``pairs`` back-to-back timed loops of each (order swapped every pair)."""
    from autograd import backend
    ours, hand = ag_xor_step(), numpy_cases()["xor"]()
    tick = CLOCKS[clock]
    sample_seconds(hand, 1, min_time)  # warm up both
    per_step = min(sample_seconds(ours, 3, min_time))  # calibrates: loops of ~min_time of ours
    number = max(1, int(min_time / max(per_step, 1e-9)))
    times: dict[str, list[float]] = {"ours": [], "hand": []}
    for i in range(pairs):
        for who in (("ours", "hand") if i % 2 == 0 else ("hand", "ours")):
            fn = ours if who == "ours" else hand
            t0 = tick()
            for _ in range(number):
                fn()
            times[who].append((tick() - t0) / number)
    ratios = sorted(h / o for o, h in zip(times["ours"], times["hand"]))
    o, h = times["ours"], times["hand"]
    info = backend.info()
    return "\n".join([
        f"clock: {clock}; {pairs} pairs of {number} steps each; provider {info['backend']}, "
        f"{info['hot_path']} hot path, {info['engine']} engine",
        f"ours {statistics.median(o) * 1e6:.2f} us (slowest loop {max(o) * 1e6:.2f}), NumPy by "
        f"hand {statistics.median(h) * 1e6:.2f} us (slowest loop {max(h) * 1e6:.2f})",
        f"speed vs hand NumPy per pair: median {statistics.median(ratios):.2f}x, 10th percentile "
        f"{ratios[len(ratios) // 10]:.2f}x, lowest {ratios[0]:.2f}x (target >= {XOR_VS_HAND}x: "
        f"{'holds' if statistics.median(ratios) >= XOR_VS_HAND else 'MISSED'} at the median)"])


def run_xor_pieces(repeat: int, min_time: float, clock: str) -> str:
    """The XOR step's pieces on every provider of this process, as a table (median, spread)."""
    from autograd import backend
    rows = []
    for name in backend.available():
        with backend.use(name):
            for i, (piece, fn) in enumerate(xor_pieces().items()):
                samples = sample_seconds(fn, repeat, min_time, clock=CLOCKS[clock])
                rows.append([name if i == 0 else "", piece,
                             f"{statistics.median(samples) * 1e6:.2f}",
                             f"{min(samples) * 1e6:.2f}-{max(samples) * 1e6:.2f}"])
    hand = sample_seconds(numpy_cases()["xor"](), repeat, min_time, clock=CLOCKS[clock])
    rows.append(["numpy by hand", "whole step", f"{statistics.median(hand) * 1e6:.2f}",
                 f"{min(hand) * 1e6:.2f}-{max(hand) * 1e6:.2f}"])
    return table(["provider", "XOR step piece", "median us", "fastest-slowest"], rows)


# ------------------------------------------------------------------------------ report
def _per_op(case: str, samples: list[float]) -> list[float]:
    return [s / CHAIN for s in samples] if case == "op_fb" else samples


def _ours_in_subprocess(engine: str, repeat: int, min_time: float, clock: str,
                        provider: str | None = None) -> dict | None:
    env = dict(os.environ, AUTOGRAD_ENGINE=engine)
    extra = ["--provider", provider] if provider else []
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--ours",
                          "--repeat", str(repeat), "--min-time", str(min_time),
                          "--clock", clock] + extra,
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        print(f"(ours with AUTOGRAD_ENGINE={engine} did not run: "
              f"{res.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(res.stdout)


def collect(repeat: int, min_time: float, clock: str = "wall") -> dict:
    """{case: {who: samples (seconds per step, per op for op_fb)}} and what ran."""
    results: dict = {case: {} for case in TITLES}
    infos = {}
    for engine in ("compiled", "python"):
        ours = _ours_in_subprocess(engine, repeat, min_time, clock)
        if ours is None:
            continue
        infos[engine] = ours.pop("info")
        for case, per_provider in ours.items():
            for provider, samples in per_provider.items():
                results[case][f"ours {provider}/{engine}"] = _per_op(case, samples)
    others = [("numpy by hand", numpy_cases()), ("micrograd", micrograd_cases())]
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(1)
        others.append(("torch eager", torch_cases(torch)))
    for who, cases in others:
        for case, factory in cases.items():
            results[case][who] = _per_op(case, sample_seconds(factory(), repeat, min_time,
                                                              clock=CLOCKS[clock]))
    return {"results": results, "infos": infos}


PER_OP = ("op", "op_fb")


def alternate(rounds: int, provider: str, repeat: int, min_time: float, clock: str) -> str:
    """The per-op cases of ``provider``, compiled against the pure twin, in ``rounds`` rounds of
    one process each (order swapped every round): each round's ratio, then over all repeats
    the medians and slowest repeats of both twins and the ratio of the medians."""
    samples: dict = {(e, c): [] for e in ("compiled", "python") for c in PER_OP}
    lines, ratios = [], {c: [] for c in PER_OP}
    for r in range(rounds):
        med = {}
        for engine in ("compiled", "python") if r % 2 == 0 else ("python", "compiled"):
            ours = _ours_in_subprocess(engine, repeat, min_time, clock, provider)
            if ours is None:
                raise SystemExit(f"the {engine} twin did not run")
            info = ours.pop("info")
            if info["hot_path"] != engine:
                raise SystemExit(f"AUTOGRAD_ENGINE={engine} ran the {info['hot_path']} hot path")
            for case in PER_OP:
                s = _per_op(case, ours[case][provider])
                samples[engine, case] += s
                med[engine, case] = statistics.median(s)
        for case in PER_OP:
            ratios[case].append(med["python", case] / med["compiled", case])
        lines.append(f"round {r + 1}: " + "; ".join(
            f"{TITLES[case]} {med['compiled', case] * 1e6:.3f} vs {med['python', case] * 1e6:.3f}"
            f" us = {ratios[case][-1]:.2f}x" for case in PER_OP))
    for case in PER_OP:
        c, p = samples["compiled", case], samples["python", case]
        lines.append(
            f"{provider}, {TITLES[case]}: compiled {statistics.median(c) * 1e6:.3f} us "
            f"(slowest {max(c) * 1e6:.3f}), python twin {statistics.median(p) * 1e6:.3f} us "
            f"(slowest {max(p) * 1e6:.3f}): {statistics.median(p) / statistics.median(c):.2f}x "
            f"(rounds {min(ratios[case]):.2f}-{max(ratios[case]):.2f}x; target >= 2x)")
    return "\n".join(lines)


def report(data: dict) -> str:
    """The table: median, fastest and slowest repeat in us, and ratios in the same run."""
    rows = []
    for case, by_who in data["results"].items():
        hand = statistics.median(by_who["numpy by hand"])
        torch_t = statistics.median(by_who["torch eager"]) if "torch eager" in by_who else None
        for i, (who, samples) in enumerate(by_who.items()):
            med = statistics.median(samples)
            rows.append([TITLES[case] if i == 0 else "", who, f"{med * 1e6:.2f}",
                         f"{min(samples) * 1e6:.2f}-{max(samples) * 1e6:.2f}",
                         f"{hand / med:.2f}x", f"{torch_t / med:.2f}x" if torch_t else "-"])
    lines = [table(["case", "who", "median us", "fastest-slowest", "speed vs hand numpy",
                    "speed vs torch"], rows), "", "targets (compiled hot path, median):"]
    for case, target in TARGETS_US.items():
        by_who = data["results"][case]
        for who in sorted(w for w in by_who if w.endswith("/compiled")):
            med = statistics.median(by_who[who]) * 1e6
            lines.append(f"  {TITLES[case]:<30} {who:<22} {med:6.2f} us  (target <= {target} us:"
                         f" {'holds' if med <= target else 'MISSED'})")
    by_who = data["results"]["xor"]
    hand = statistics.median(by_who["numpy by hand"])
    for who in sorted(w for w in by_who if w.endswith("/compiled")):
        speed = hand / statistics.median(by_who[who])
        lines.append(f"  {TITLES['xor']:<30} {who:<22} {speed:5.2f}x hand NumPy's speed "
                     f"(target >= {XOR_VS_HAND}x: {'holds' if speed >= XOR_VS_HAND else 'MISSED'})")
    for case in ("op", "op_fb"):
        by_who = data["results"][case]
        for provider in ("numpy", "native"):
            c, p = by_who.get(f"ours {provider}/compiled"), by_who.get(f"ours {provider}/python")
            if c and p:
                lines.append(f"  {TITLES[case]:<30} {provider}: compiled is "
                             f"{statistics.median(p) / statistics.median(c):.2f}x the python "
                             f"twin (target >= 2x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every case for everyone and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--min-time", type=float, default=None)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall clock (default) or this thread's CPU time")
    parser.add_argument("--xor-pieces", action="store_true",
                        help="time the pieces of the XOR step (this process's hot path) and "
                             "its kernels alone, instead of the comparison table")
    parser.add_argument("--alternate", type=int, metavar="N", default=0,
                        help="only the per-op cases of --provider, compiled against the pure "
                             "twin in N rounds of alternating processes")
    parser.add_argument("--paired-xor", type=int, metavar="N", default=0,
                        help="the XOR step of this process against NumPy by hand, in N pairs "
                             "of back-to-back loops")
    parser.add_argument("--provider", choices=("numpy", "native"), default=None,
                        help="the kernel provider --alternate times (default: numpy)")
    parser.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 15)
    min_time = args.min_time or (0.005 if args.quick else 0.1)
    if args.xor_pieces:
        from autograd import backend
        print(f"clock: {args.clock}; {repeat} repeats per figure; {backend.info()['hot_path']} "
              f"hot path, {backend.info()['engine']} engine")
        print(run_xor_pieces(repeat, min_time, args.clock))
        return
    if args.ours:  # the worker: this process's hot path, every provider, JSON on stdout
        print(json.dumps(run_ours(repeat, min_time, args.clock, args.provider,
                                  PER_OP if args.provider else None)))
        return
    if args.paired_xor:
        print(paired_xor(args.paired_xor, min_time, args.clock))
        return
    if args.alternate:
        print(f"clock: {args.clock}; {repeat} repeats per figure and process; "
              f"{args.alternate} rounds")
        print(alternate(args.alternate, args.provider or "numpy", repeat, min_time, args.clock))
        return
    data = collect(repeat, min_time, args.clock)
    print(f"clock: {args.clock}; {repeat} repeats per figure")
    for engine, info in data["infos"].items():
        print(f"AUTOGRAD_ENGINE={engine}: {info}")
    print(report(data))


if __name__ == "__main__":
    main()
