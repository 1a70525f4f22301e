"""Kernel sweep: matmul 16..2048 and elementwise kernels 1e3..1e7, native against NumPy.

Times both providers of the kernel API in one run and prints medians, GFLOP/s for matmul,
the native/NumPy speed ratio, and the size where native starts to win (the crossover):

    python benchmarks/bench_kernels.py [--quick]
"""
from __future__ import annotations

import argparse

import numpy as np
from timing import fmt_time, median_seconds, table

import autograd as ag
from autograd import backend
from autograd.backend import numpy_kernels

MATMUL_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048]
ELEMENTWISE_SIZES = [10**3, 10**4, 10**5, 10**6, 10**7]
ELEMENTWISE = {
    "relu": lambda k, x, g: k.relu(x),
    "relu_back": lambda k, x, g: k.relu_back(x, g),
    "sigmoid": lambda k, x, g: k.sigmoid(x),
    "tanh": lambda k, x, g: k.tanh(x),
    "gelu": lambda k, x, g: k.gelu(x),
    "gelu_erf": lambda k, x, g: k.gelu_erf(x),
    "exp": lambda k, x, g: k.exp(x),
    "add": lambda k, x, g: k.add(x, g),
    "mul": lambda k, x, g: k.mul(x, g),
    "sum_rows (bias grad)": lambda k, x, g: k.sum(x.reshape(-1, 100), (0,), False),
    "softmax (rows of 100)": lambda k, x, g: k.softmax(x.reshape(-1, 100), 1),
}


def providers() -> dict:
    """The kernel modules to compare: NumPy always, native when built."""
    out = {"numpy": numpy_kernels}
    if backend.native_available():
        out["native"] = backend._load_native()
    return out


def matmul_rows(mods: dict, repeat: int, min_time: float) -> list[list[str]]:
    """GFLOP/s of float32 (n x n) @ (n x n) per provider and the ratio."""
    rows = []
    rng = np.random.default_rng(0)
    for n in MATMUL_SIZES:
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        flops = 2.0 * n ** 3
        t = {name: median_seconds(lambda m=m, a=a, b=b: m.matmul(a, b), repeat, min_time)
             for name, m in mods.items()}
        row = [f"matmul {n}"] + [f"{flops / t[name] / 1e9:.1f} GFLOP/s" for name in mods]
        row.append(f"{t['numpy'] / t['native']:.2f}x" if "native" in t else "-")
        rows.append(row)
    return rows


def elementwise_rows(mods: dict, repeat: int, min_time: float) -> list[list[str]]:
    """Median time per call for each elementwise kernel and size, with the crossover."""
    rows = []
    rng = np.random.default_rng(0)
    for kname, call in ELEMENTWISE.items():
        crossover = None
        for n in ELEMENTWISE_SIZES:
            x = rng.standard_normal(n).astype(np.float32)
            g = rng.standard_normal(n).astype(np.float32)
            t = {name: median_seconds(lambda m=m, c=call, x=x, g=g: c(m, x, g), repeat, min_time)
                 for name, m in mods.items()}
            ratio = t["numpy"] / t["native"] if "native" in t else None
            if ratio is not None and ratio >= 1 and crossover is None:
                crossover = n
            rows.append([f"{kname} {n:.0e}"] + [fmt_time(t[name]) for name in mods]
                        + [f"{ratio:.2f}x" if ratio else "-"])
        if "native" in mods:
            rows.append([f"  -> native wins from {crossover:.0e}" if crossover
                         else "  -> native never wins here", *[""] * (len(mods) + 1)])
    return rows


CROSSOVER_FAMILIES = {  # family -> (kernel, arguments for n elements)
    "binary (exact)": lambda rng, n: ("add", (rng.random(n), rng.random(n))),
    "unary (libm)": lambda rng, n: ("tanh", (rng.random(n),)),
    "unary (fused)": lambda rng, n: ("sigmoid", (rng.random(n),)),
    "unary_back": lambda rng, n: ("tanh_back", (rng.random(n), rng.random(n))),
    "rowwise": lambda rng, n: ("softmax", (rng.random((max(n // 64, 1), 64)), -1)),
    "reduction": lambda rng, n: ("sum", (rng.random(n), None)),
    "reduction (sum_to)": lambda rng, n: ("sum_to", (rng.random((max(n // 64, 1), 64)), (64,))),
    "loss": lambda rng, n: ("mse", (rng.random(n), rng.random(n))),
    "loss_back": lambda rng, n: ("mse_back", (rng.random(n), rng.random(n), np.ones(()))),
    "matmul": lambda rng, n: ("matmul", (rng.random((max(int(n ** 0.5), 1),) * 2),) * 2),
    "optim": lambda rng, n: ("sgd_step", ([rng.random(n)], [rng.random(n)], None, 1e-3)),
    "optim (adam)": lambda rng, n: ("adam_step", ([rng.random(n)], [rng.random(n)],
                                                  [rng.random(n)], [rng.random(n)], 1, 1e-3)),
}


def crossover_rows(native, repeat: int, min_time: float) -> list[list[str]]:
    """Per kernel family: the smallest size (powers of 4) at which the native kernel, forced
    past its route's size test, beats the NumPy kernel; beside the crossover the adapter uses."""
    rng = np.random.default_rng(0)
    rows = []
    try:
        native._bind(all_sizes=True)  # every route's crossover 0: native at every size
        for family, make in CROSSOVER_FAMILIES.items():
            found, ratios = None, []
            for e in range(0, 21, 2):
                name, args = make(rng, 1 << e)
                fn_native, fn_numpy = getattr(native, name), getattr(numpy_kernels, name)
                t_nat = median_seconds(lambda f=fn_native, a=args: f(*a), repeat, min_time)
                t_np = median_seconds(lambda f=fn_numpy, a=args: f(*a), repeat, min_time)
                ratios.append(f"{t_np / t_nat:.2f}")
                if found is None and t_nat < t_np:
                    found = 1 << e
            rows.append([family, name, str(found) if found else "never",
                         str(native._MIN.get(name, native._MIN_ALL)), " ".join(ratios)])
    finally:
        native._bind()
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run the sweep and print two tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    args = parser.parse_args(argv)
    repeat, min_time = (3, 0.01) if args.quick else (7, 0.1)
    print(f"autograd {ag.__version__}: {backend.info()}")
    mods = providers()
    headers = ["kernel"] + list(mods) + ["native speed vs numpy"]
    print(table(headers, matmul_rows(mods, repeat, min_time)))
    print()
    print(table(headers, elementwise_rows(mods, repeat, min_time)))
    if "native" in mods:
        print("\nCrossovers, native forced at every size "
              "(native speed vs numpy at 1, 4, ..., 2^20):")
        print(table(["family", "kernel", "native wins from", "adapter threshold",
                     "speed ratios"], crossover_rows(mods["native"], repeat, min_time / 10)))


if __name__ == "__main__":
    main()
