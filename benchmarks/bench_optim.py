"""What an optimizer step costs on a tutorial-sized network, and how much of it is bookkeeping.

For the XOR 2-10-1 net's SGD (plain and with momentum; 4 parameters) and the 1-2-5-1 net's Adam
(6 parameters), in this process (its hot path: ``AUTOGRAD_ENGINE`` picks it) on one kernel
provider, times:

* ``opt.step()`` as a training loop calls it;
* the update kernel alone (``sgd_step`` / ``adam_step``) on the same arrays;
* ``opt.step()`` with a null update kernel (``"".format``, which takes any arguments and does
  nothing): the Python/Cython part alone, whatever the kernel costs;
* ``opt.zero_grad()``.

Each figure is the median of ``--repeat`` timed loops, with the slowest; ``--clock cpu`` counts
this thread's CPU time (stable while other processes keep a shared machine busy)::

    python benchmarks/bench_optim.py [--clock wall|cpu] [--provider native|numpy] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time
import types

import numpy as np
from timing import XOR_X, XOR_Y, sample_seconds, table

CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
NULL_KERNELS = types.SimpleNamespace(sgd_step="".format, adam_step="".format)


def cases() -> dict:
    """name -> (optimizer with gradients in place, the update kernel's call on its arrays)."""
    import autograd as ag
    from autograd import functional as F
    from autograd import nn, optim
    from autograd.grad_mode import state

    ag.manual_seed(0)
    xor = nn.Sequential(nn.Linear(2, 10), nn.Tanh(), nn.Linear(10, 1), nn.Sigmoid())
    F.binary_cross_entropy(xor(ag.tensor(XOR_X)), ag.tensor(XOR_Y)).backward()
    small = nn.Sequential(nn.Linear(1, 2), nn.Tanh(), nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1))
    F.mse_loss(small(ag.tensor([[0.5]])), ag.tensor([[0.25]])).backward()
    out = {}
    # lr 0: the parameters stay put however many steps are timed (the kernels' cost does not
    # depend on the values)
    for name, model, opt in (
            ("XOR 2-10-1 SGD", xor, optim.SGD(xor.parameters(), lr=0.0)),
            ("XOR 2-10-1 SGD momentum", xor, optim.SGD(xor.parameters(), lr=0.0, momentum=0.9)),
            ("1-2-5-1 Adam", small, optim.Adam(small.parameters(), lr=0.0))):
        opt.step()  # state (momentum buffers, Adam's moments) in place
        params = list(model.parameters())
        arrays = [p._data for p in params]
        grads = [p.grad._data for p in params]
        if isinstance(opt, optim.Adam):
            st = [opt.state[p] for p in params]
            ms, vs = [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st]

            def kernel(arrays=arrays, grads=grads, ms=ms, vs=vs):
                state.k.adam_step(arrays, grads, ms, vs, 2, 0.0, 0.9, 0.999, 1e-8, 0.0, False)
        elif opt.param_groups[0]["momentum"]:
            bufs = [opt.state[p]["momentum_buffer"] for p in params]

            def kernel(arrays=arrays, grads=grads, bufs=bufs):
                state.k.sgd_step(arrays, grads, bufs, 0.0, 0.9, 0.0, False, 0.0, False)
        else:
            def kernel(arrays=arrays, grads=grads):
                state.k.sgd_step(arrays, grads, None, 0.0, 0.0, 0.0, False, 0.0)
        out[name] = (opt, kernel)
    return out


def run(provider: str, repeat: int, min_time: float, clock: str) -> str:
    """The table for ``provider`` in this process."""
    from autograd import Tensor, backend
    from autograd.grad_mode import state
    clk = CLOCKS[clock]

    def fig(fn) -> tuple[str, float]:
        s = sample_seconds(fn, repeat, min_time, clock=clk)
        return f"{statistics.median(s) * 1e6:.3f} ({max(s) * 1e6:.3f})", statistics.median(s)

    rows = []
    with backend.use(provider):
        for name, (opt, kernel) in cases().items():
            step, t_step = fig(opt.step)
            alone, t_kernel = fig(kernel)
            kernels, state.k = state.k, NULL_KERNELS  # this thread's provider
            try:
                null, _ = fig(opt.step)
            finally:
                state.k = kernels
            zero, _ = fig(opt.zero_grad)
            for g in opt.param_groups:  # gradients back for the next case (ones)
                for p in g["params"]:
                    p.grad = Tensor._wrap(np.ones_like(p._data))
            rows.append([name, step, alone, f"{(t_step - t_kernel) * 1e6:.3f}", null, zero])
    info = backend.info()
    head = (f"provider {provider}; hot path {info['hot_path']}, optimizer step "
            f"{info.get('optim', '(no twin)')}; clock {clock}; median (slowest) of {repeat} "
            f"repeats, us")
    return head + "\n" + table(["case", "opt.step()", "kernel alone", "step - kernel",
                                "step, null kernel", "opt.zero_grad()"], rows)


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--provider", choices=("native", "numpy"), default=None,
                        help="default: native when built, else numpy")
    args = parser.parse_args(argv)
    from autograd import backend
    provider = args.provider or ("native" if backend.native_available() else "numpy")
    print(run(provider, 3 if args.quick else 15, 0.005 if args.quick else 0.1, args.clock))


if __name__ == "__main__":
    main()
