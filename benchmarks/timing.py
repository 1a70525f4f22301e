"""Timing helpers shared by the benchmarks: medians over repeats, never a single run.

The machine is shared and noisy, so every figure is the median of several repeats of a
timed loop, and comparisons are ratios taken in the same process run.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable


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
