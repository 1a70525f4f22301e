"""Training-step benchmarks: the XOR net, the 784-256-128-10 MLP, and per-op overhead.

Each case runs on every available autograd backend, on a NumPy script with hand-derived
backprop (the baseline our users would otherwise write) and, when installed, PyTorch eager.
Prints medians and ratios from one run:

    python benchmarks/bench_training.py [--quick]
"""
from __future__ import annotations

import argparse
import resource

import numpy as np
from timing import (
    XOR_X,
    XOR_Y,
    ag_xor_step,
    fmt_time,
    median_seconds,
    table,
    torch_or_none,
    torch_xor_step,
)

import autograd as ag
from autograd import backend, nn, optim
from autograd import functional as F


# ------------------------------------------------------------------------------ autograd
def ag_mlp_step(batch: int = 128):
    """One Adam step of a 784-256-128-10 ReLU MLP with cross-entropy."""
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.random((batch, 784), dtype=np.float32))
    y = rng.integers(0, 10, batch)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def ag_small_op():
    """One small recorded op (2x2 add with grad)."""
    a = ag.randn(2, 2, requires_grad=True)
    b = ag.randn(2, 2)
    return lambda: a + b


# ------------------------------------------------------------------------------ NumPy by hand
def numpy_xor_step():
    """The same XOR step written as a NumPy script with hand-derived gradients."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((2, 10)).astype(np.float32) * 0.5
    b1 = np.zeros(10, np.float32)
    w2 = rng.standard_normal((10, 1)).astype(np.float32) * 0.5
    b2 = np.zeros(1, np.float32)
    x, y = XOR_X, XOR_Y

    def step():
        nonlocal w1, b1, w2, b2
        h = np.tanh(x @ w1 + b1)
        p = 1 / (1 + np.exp(-(h @ w2 + b2)))
        dz2 = (p - y) / len(x)
        dh = dz2 @ w2.T * (1 - h * h)
        w2 -= 0.1 * (h.T @ dz2)
        b2 -= 0.1 * dz2.sum(0)
        w1 -= 0.1 * (x.T @ dh)
        b1 -= 0.1 * dh.sum(0)
    return step


def numpy_mlp_step(batch: int = 128):
    """The MLP Adam step as a NumPy script with hand-derived gradients."""
    rng = np.random.default_rng(0)
    sizes = [784, 256, 128, 10]
    ws = [(rng.standard_normal((i, o)) * (2 / i) ** 0.5).astype(np.float32)
          for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o, np.float32) for o in sizes[1:]]
    params = ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    t = [0]

    def step():
        acts = [x]
        for i in range(3):
            z = acts[-1] @ ws[i] + bs[i]
            acts.append(np.maximum(z, 0) if i < 2 else z)
        z = acts[-1]
        e = np.exp(z - z.max(1, keepdims=True))
        d = e / e.sum(1, keepdims=True)
        d[np.arange(batch), y] -= 1
        d /= batch
        gw, gb = [None] * 3, [None] * 3
        for i in (2, 1, 0):
            gw[i] = acts[i].T @ d
            gb[i] = d.sum(0)
            if i:
                d = (d @ ws[i].T) * (acts[i] > 0)
        t[0] += 1
        for p, g, mi, vi in zip(params, gw + gb, m, v):
            mi *= 0.9
            mi += 0.1 * g
            vi *= 0.999
            vi += 0.001 * g * g
            p -= 1e-3 / (1 - 0.9 ** t[0]) * mi / (np.sqrt(vi / (1 - 0.999 ** t[0])) + 1e-8)
    return step


def numpy_small_op():
    """One small NumPy add, the floor for any Python-level op."""
    a = np.random.randn(2, 2).astype(np.float32)
    b = np.random.randn(2, 2).astype(np.float32)
    return lambda: a + b


# ------------------------------------------------------------------------------ PyTorch
def torch_cases(torch):
    """The same three cases in PyTorch eager (float32, CPU)."""
    torch.manual_seed(0)
    tn = torch.nn

    def mlp(batch=128):
        model = tn.Sequential(tn.Linear(784, 256), tn.ReLU(), tn.Linear(256, 128), tn.ReLU(),
                              tn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand(batch, 784)
        y = torch.randint(0, 10, (batch,))
        lossf = tn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            lossf(model(x), y).backward()
            opt.step()
        return step

    def small():
        a = torch.randn(2, 2, requires_grad=True)
        b = torch.randn(2, 2)
        return lambda: a + b
    return {"xor": lambda: torch_xor_step(torch), "mlp": mlp, "small_op": small}


CASES = {"xor": (ag_xor_step, numpy_xor_step, "XOR 2-10-1 SGD step"),
         "mlp": (ag_mlp_step, numpy_mlp_step, "MLP 784-256-128-10 Adam step, batch 128"),
         "small_op": (ag_small_op, numpy_small_op, "one small op (2x2 add, recorded)")}


def main(argv: list[str] | None = None) -> None:
    """Run every case everywhere and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 9
    min_time = 0.02 if args.quick else 0.2
    print(f"autograd {ag.__version__}: {backend.info()}")
    torch = torch_or_none()
    rows = []
    for key, (ag_case, np_case, title) in CASES.items():
        times = {}
        for name in backend.available():
            with backend.use(name):
                times[f"autograd/{name}"] = median_seconds(ag_case(), repeat, min_time)
        times["numpy by hand"] = median_seconds(np_case(), repeat, min_time)
        if torch is not None:
            torch.set_num_threads(ag.get_num_threads())
            times["torch eager"] = median_seconds(torch_cases(torch)[key](), repeat, min_time)
        base = times["autograd/numpy"]
        for who, t in times.items():
            torch_ratio = f"{times['torch eager'] / t:.2f}x" if "torch eager" in times else "-"
            rows.append([title if who == "autograd/numpy" else "", who, fmt_time(t),
                         f"{base / t:.2f}x", torch_ratio])
    print(table(["case", "engine", "median", "speed vs autograd/numpy", "speed vs torch"],
                rows))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    note = " (includes PyTorch, imported for comparison)" if torch is not None else ""
    print(f"peak resident memory of this process: {rss:.0f} MB{note}")


if __name__ == "__main__":
    main()
