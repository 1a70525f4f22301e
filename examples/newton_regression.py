"""Newton's method on the seeds' regression (the data of examples/regression.py), with Hessians
from ``ag.hessian`` and gradients from ``ag.grad``.

1. The straight line y = w x + b under MSE: the loss is quadratic, so one Newton step
   theta - H^-1 g from any start lands on the least-squares solution.
2. The 1-2-5-1 sigmoid network of regression.py, its 25 parameters as one vector: damped
   Newton steps (H + lambda I) d = -g, lambda adapted as in Levenberg-Marquardt, reach the noise
   floor (MSE ~ 1) in a few dozen steps, where Adam takes about 1500.

    python examples/newton_regression.py [--steps 40]
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

import autograd as ag
from autograd import functional as F


def _regression_example():
    """examples/regression.py, for its data (examples are scripts, not a package)."""
    path = Path(__file__).resolve().parent / "regression.py"
    spec = importlib.util.spec_from_file_location("regression_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def newton_step(loss_fn, theta: ag.Tensor, damping: float = 0.0) -> ag.Tensor:
    """theta - (H + damping I)^-1 g for the scalar ``loss_fn(theta)``."""
    x = ag.tensor(theta.numpy(), requires_grad=True)
    (g,) = ag.grad(loss_fn(x), x)
    h = ag.hessian(loss_fn, theta).numpy()
    step = np.linalg.solve(h + damping * np.eye(h.shape[0]), g.numpy())
    return ag.tensor(theta.numpy() - step)


# ------------------------------------------------------------------------------ the network
SHAPES = [(2, 1), (2,), (5, 2), (5,), (1, 5), (1,)]  # hidden1, hidden2 and out: (w, b) each


def unflatten(theta: ag.Tensor) -> list[ag.Tensor]:
    """Weights and biases as differentiable slices of the one parameter vector."""
    out, start = [], 0
    for shape in SHAPES:
        n = int(np.prod(shape))
        out.append(theta[start:start + n].reshape(shape))
        start += n
    return out


def net(theta: ag.Tensor, x: ag.Tensor) -> ag.Tensor:
    """regression.py's Net (1 -> 2 -> 5 -> 1, sigmoid hidden units), on a parameter vector."""
    w1, b1, w2, b2, w3, b3 = unflatten(theta)
    h = F.linear(x, w1, b1, activation="sigmoid")
    h = F.linear(h, w2, b2, activation="sigmoid")
    return F.linear(h, w3, b3)


def main(argv: list[str] | None = None) -> dict:
    """Run both parts; returns the line's distance to least squares and the net's MSEs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)

    reg = _regression_example()
    x32, y32 = reg.make_data(200, seed=1)
    x, y = (ag.tensor(t.numpy().astype(np.float64)) for t in (x32, y32))

    # 1. the line: one Newton step from zero is the least-squares fit
    def line_loss(theta: ag.Tensor) -> ag.Tensor:
        return F.mse_loss(x * theta[0] + theta[1], y)

    theta = newton_step(line_loss, ag.tensor(np.zeros(2)))
    design = np.hstack([x.numpy(), np.ones_like(x.numpy())])
    exact = np.linalg.lstsq(design, y.numpy().ravel(), rcond=None)[0]
    line_error = float(np.max(np.abs(theta.numpy() - exact)))
    print(f"line after one Newton step: w = {theta.numpy()[0]:.6f}, b = {theta.numpy()[1]:.6f}"
          f" (least squares: {exact[0]:.6f}, {exact[1]:.6f}; difference {line_error:.1e})")

    # 2. the network: damped Newton from regression.py's initialisation
    ag.manual_seed(0)
    model = reg.Net()
    theta = ag.tensor(np.concatenate([p.numpy().astype(np.float64).ravel() for p in (
        model.hidden1.weight, model.hidden1.bias, model.hidden2.weight, model.hidden2.bias,
        model.out.weight, model.out.bias)]))

    def net_loss(theta: ag.Tensor) -> ag.Tensor:
        return F.mse_loss(net(theta, x), y)

    start = loss = net_loss(theta).item()
    damping = 1.0
    for step in range(args.steps):
        candidate = newton_step(net_loss, theta, damping)
        new = net_loss(candidate).item()
        if new < loss:  # accept, trust the quadratic model more
            theta, loss, damping = candidate, new, max(damping / 3, 1e-6)
        else:  # reject, move towards a short gradient step
            damping *= 4
        if step % (args.steps // 5 or 1) == 0:
            print(f"Newton step {step:3d}  train MSE {loss:.4f}  damping {damping:.1e}")
    print(f"network: train MSE {start:.2f} -> {loss:.4f} in {args.steps} damped Newton steps "
          f"(the noise variance is 1.0)")
    return {"line_error": line_error, "net_start_mse": start, "net_mse": loss}


if __name__ == "__main__":
    main()
