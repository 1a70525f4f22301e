"""The XOR 2-10-1 SGD step as one _C.Plan replay, against the same kernels called eagerly.

What a compiled step (autograd.compile) can cost at best on the native backend: the plan runs
the kernel calls of forward, backward and the SGD update in one native call. Prints medians and
the slowest of the repeats, in microseconds of CPU time:

    python benchmarks/bench_plan.py [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from autograd.backend import native

C = native._C


def xor_step(dtype=np.float32):
    """(plan, scalars, eager step): the same 2-10-1 tanh/sigmoid MSE SGD step both ways."""
    rng = np.random.default_rng(0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype)
    t = np.array([[0], [1], [1], [0]], dtype)
    w1, b1 = rng.standard_normal((10, 2)).astype(dtype), np.zeros(10, dtype)
    w2, b2 = rng.standard_normal((1, 10)).astype(dtype), np.zeros(1, dtype)
    one = np.ones((), dtype)
    e = lambda *s: np.empty(s, dtype)  # noqa: E731
    bufs = [x, t, w1, b1, w2, b2, one, e(4, 10), e(4, 1), e(), e(4, 1), e(4, 10), e(10, 2),
            e(10), e(4, 2), e(1, 10), e(1)]
    X, T, W1, B1, W2, B2, ONE, H, Y, L, GY, GH, GW1, GB1, GX, GW2, GB2 = range(17)
    plan = C.Plan()
    plan.add("linear", [X, W1, B1], [H], ["tanh"])
    plan.add("linear", [H, W2, B2], [Y], ["sigmoid"])
    plan.add("mse", [Y, T], [L], ["mean"])
    plan.add("mse_back", [Y, T, ONE], [GY], ["mean"])
    plan.add("linear_back", [H, W2, Y, GY], [GH, GW2, GB2], ["sigmoid", True])
    plan.add("linear_back", [X, W1, H, GH], [GX, GW1, GB1], ["tanh", True])
    plan.add("sgd_step", [[W1, B1, W2, B2], [GW1, GB1, GW2, GB2], None], [], [0.1], [(0, 0)])
    plan.bind(bufs)
    lr = np.array([0.1])
    params = [w1.copy(), b1.copy(), w2.copy(), b2.copy()]

    def eager():
        h = C.linear(x, params[0], params[1], "tanh")
        y = C.linear(h, params[2], params[3], "sigmoid")
        C.mse(y, t, "mean")
        gy = C.mse_back(y, t, one, "mean")
        gh, gw2, gb2 = C.linear_back(h, params[2], y, gy, "sigmoid", True)
        _, gw1, gb1 = C.linear_back(x, params[0], h, gh, "tanh", True)
        C.sgd_step(params, [gw1, gb1, gw2, gb2], None, 0.1)

    return (lambda: plan.run(lr)), eager


def per_call_us(fn, n: int, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        times.append((time.process_time() - t0) / n * 1e6)
    times.sort()
    return times[len(times) // 2], times[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    args = parser.parse_args(argv)
    n, repeat = (200, 3) if args.quick else (20000, 7)
    for dtype in (np.float32, np.float64):
        replay, eager = xor_step(dtype)
        r, e = per_call_us(replay, n, repeat), per_call_us(eager, n, repeat)
        print(f"XOR 2-10-1 SGD step, {np.dtype(dtype).name}: plan replay {r[0]:.2f} us "
              f"(slowest {r[1]:.2f}), eager _C calls {e[0]:.2f} us (slowest {e[1]:.2f})")


if __name__ == "__main__":
    main()
