"""Regression, PyTorch style: fit y = 2.3 x + 4.7 (plus noise) with a 1-2-5-1 sigmoid network.

Adam, MSELoss, train/eval modes, and save/load of the trained model:

    python examples/regression.py [--epochs 1500] [--out model.safetensors]
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import autograd as ag
from autograd import nn, optim


@ag.serializable  # lets ag.save store the model whole, and ag.load rebuild it by name
class Net(nn.Module):
    """1 -> 2 -> 5 -> 1 with sigmoid hidden units and a linear output."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden1 = nn.Linear(1, 2)
        self.hidden2 = nn.Linear(2, 5)
        self.out = nn.Linear(5, 1)
        self.act = nn.Sigmoid()

    def forward(self, x: ag.Tensor) -> ag.Tensor:
        return self.out(self.act(self.hidden2(self.act(self.hidden1(x)))))


def make_data(n: int, seed: int) -> tuple[ag.Tensor, ag.Tensor]:
    """x in [0, 10), y = 2.3 x + 4.7 + N(0, 1); x standardised, as a tutorial would."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, (n, 1)).astype(np.float32)
    y = (2.3 * x + 4.7 + rng.normal(0, 1, (n, 1))).astype(np.float32)
    return ag.tensor((x - 5) / 2.9), ag.tensor(y)


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate, save, reload; returns the losses and the reload check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--out", help="where to save the model (default: a temporary file)")
    args = parser.parse_args(argv)

    ag.manual_seed(0)
    x_train, y_train = make_data(200, seed=1)
    x_test, y_test = make_data(50, seed=2)
    model = Net()
    opt = optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.MSELoss()

    for epoch in range(args.epochs):
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(x_train), y_train)
        loss.backward()
        opt.step()
        if epoch % (args.epochs // 5 or 1) == 0:
            print(f"epoch {epoch:5d}  train MSE {loss.item():.4f}")

    model.eval()
    with ag.no_grad():
        test_mse = loss_fn(model(x_test), y_test).item()
    print(f"test MSE {test_mse:.4f} (the noise variance is 1.0)")

    path = args.out or os.path.join(tempfile.mkdtemp(), "regression.safetensors")
    # As torch.save(model, path) / torch.load(path) in the PyTorch tutorial: the whole model.
    # The file holds the registered name "Net", its (here no) constructor arguments and the
    # weights; loading calls the registered class, never anything named by the file.
    ag.save(model, path)
    reloaded = ag.load(path)
    assert type(reloaded) is Net
    reloaded.eval()
    with ag.no_grad():
        same = np.array_equal(reloaded(x_test).numpy(), model(x_test).numpy())
    print(f"saved to {path}; reloaded model predicts identically: {same}")
    return {"train_mse": loss.item(), "test_mse": test_mse, "reload_identical": same}


if __name__ == "__main__":
    main()
