"""Timing helpers shared by the benchmarks (medians over repeats, never a single run), and the
XOR step that two of them time.

The machine is shared and noisy, so every figure is the median of several repeats of a
timed loop, and comparisons are ratios taken in the same process run.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np


def median_seconds(fn: Callable[[], object], repeat: int = 7, min_time: float = 0.05,
                   warmup: int = 2) -> float:
    """Median seconds per call of ``fn``: each repeat loops long enough to last ``min_time``."""
    for _ in range(warmup):
        fn()
    number = 1
    while True:  # grow the loop until one repeat is long enough to time reliably
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2 if elapsed == 0 else max(2, min(10, int(min_time / elapsed) + 1))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


def fmt_time(seconds: float) -> str:
    """Seconds as a short human figure (ns, us, ms or s)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain aligned text table."""
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def torch_or_none():
    """PyTorch if installed (optional: only for comparison), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def sample_seconds(fn: Callable[[], object], repeat: int = 15, min_time: float = 0.05,
                   warmup: int = 2, clock: Callable[[], float] = time.perf_counter
                   ) -> list[float]:
    """Seconds per call of ``fn`` in each of ``repeat`` timed loops (for median and spread).

    ``clock=time.thread_time`` counts only the CPU time of this thread: on a machine shared
    with other busy processes it leaves out the time the thread waited for a core.
    """
    for _ in range(warmup):
        fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2 if elapsed == 0 else max(2, min(10, int(min_time / elapsed) + 1))
    samples = []
    for _ in range(repeat):
        t0 = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - t0) / number)
    return samples


# The Keras-tutorial XOR net (2-10-1, tanh then sigmoid, BCE, SGD lr 0.1): timed by both
# bench_training.py and bench_eager.py, defined once here so the two measure the same step.
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def ag_xor_step() -> Callable[[], None]:
    """One SGD step of the XOR net with autograd (the backend and engine of this process)."""
    import autograd as ag
    from autograd import functional as F
    from autograd import nn, optim
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 10), nn.Tanh(), nn.Linear(10, 1), nn.Sigmoid())
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = ag.tensor(XOR_X), ag.tensor(XOR_Y)

    def step() -> None:
        opt.zero_grad()
        F.binary_cross_entropy(model(x), y).backward()
        opt.step()
    return step


def torch_xor_step(torch) -> Callable[[], None]:
    """The same XOR step in PyTorch eager (float32, CPU)."""
    tn = torch.nn
    torch.manual_seed(0)
    model = tn.Sequential(tn.Linear(2, 10), tn.Tanh(), tn.Linear(10, 1), tn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.tensor(XOR_X), torch.tensor(XOR_Y)
    lossf = tn.BCELoss()

    def step() -> None:
        opt.zero_grad()
        lossf(model(x), y).backward()
        opt.step()
    return step
