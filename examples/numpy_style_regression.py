"""The NumPy regression tutorial, without the hand-derived derivatives.

A 1-3-1 network fits a noisy line twice, once with ReLU and once with tanh hidden units, using
raw tensors and a hand-written gradient-descent loop (the tutorial's structure), with MSE. The
tutorial wrote relu', tanh' and the chain rule by hand; here ``backward()`` does it:

    python examples/numpy_style_regression.py [--epochs 2000]
"""
from __future__ import annotations

import argparse

import numpy as np

import autograd as ag

ACTIVATIONS = {"relu": ag.relu, "tanh": ag.tanh}


def fit(activation: str, x: ag.Tensor, y: ag.Tensor, epochs: int, lr: float) -> float:
    """Train a 1-3-1 net by plain gradient descent and return the final MSE."""
    act = ACTIVATIONS[activation]
    w1 = ag.randn(1, 3, requires_grad=True)
    b1 = ag.zeros(3, requires_grad=True)
    w2 = ag.randn(3, 1, requires_grad=True)
    b2 = ag.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    for _ in range(epochs):
        pred = act(x @ w1 + b1) @ w2 + b2
        loss = ((pred - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with ag.no_grad():
            for p in params:
                p -= lr * p.grad
    print(f"{activation:5s}: final MSE {loss.item():.4f}")
    return loss.item()


def main(argv: list[str] | None = None) -> dict:
    """Fit with each activation; returns the final MSE of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    xs = np.linspace(-1, 1, 100, dtype=np.float32).reshape(-1, 1)
    ys = (0.8 * xs + 0.3 + rng.normal(0, 0.05, xs.shape)).astype(np.float32)
    x, y = ag.tensor(xs), ag.tensor(ys)
    print(f"noise variance: {0.05 ** 2:.4f}")
    results = {}
    for name in ACTIVATIONS:
        ag.manual_seed(1)
        results[name] = fit(name, x, y, args.epochs, lr=0.05)
    return results


if __name__ == "__main__":
    main()
