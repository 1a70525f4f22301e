"""An L-layer rain / no-rain classifier on a synthetic weather table.

Features: temperature, humidity, pressure (standardised). The same 3-16-8-1 network is trained
with He or Xavier initialisation, with or without L2 and dropout, by mini-batch SGD with
momentum or by Adam, and the runs are compared:

    python examples/deep_binary_classifier.py [--epochs 30]
"""
from __future__ import annotations

import argparse

import numpy as np

import autograd as ag
from autograd import nn, optim
from autograd.data import DataLoader, TensorDataset


def weather(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (temperature C, humidity %, pressure hPa) and whether it rained."""
    rng = np.random.default_rng(seed)
    temp = rng.normal(15, 8, n)
    humidity = rng.uniform(20, 100, n)
    pressure = rng.normal(1013, 8, n)
    # Rain is likelier when humid, at low pressure, and (a little) when cool.
    logit = 0.12 * (humidity - 70) - 0.25 * (pressure - 1010) - 0.05 * (temp - 15)
    rain = rng.random(n) < 1 / (1 + np.exp(-logit))
    x = np.stack([temp, humidity, pressure], axis=1)
    return x, rain.astype(np.float32).reshape(-1, 1)


def build(init: str, dropout: float) -> nn.Module:
    """3 -> 16 -> 8 -> 1: ReLU hidden layers, a logit output (sigmoid inside the loss)."""
    layers: list[nn.Module] = [nn.Linear(3, 16, init=init), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(16, 8, init=init), nn.ReLU(), nn.Linear(8, 1, init=init)]
    return nn.Sequential(*layers)


def accuracy(model: nn.Module, x: ag.Tensor, y: np.ndarray) -> float:
    """Share of rows whose predicted class (logit > 0) matches the label."""
    model.eval()
    with ag.no_grad():
        return float(((model(x).numpy() > 0) == (y > 0.5)).mean())


CONFIGS = [  # (name, init, optimizer, L2 weight decay, dropout)
    ("he + momentum", "he", "momentum", 0.0, 0.0),
    ("xavier + momentum", "xavier", "momentum", 0.0, 0.0),
    ("he + adam", "he", "adam", 0.0, 0.0),
    ("he + adam + L2", "he", "adam", 1e-3, 0.0),
    ("he + adam + dropout", "he", "adam", 0.0, 0.2),
]


def main(argv: list[str] | None = None) -> dict:
    """Train each configuration; returns test accuracy by configuration name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    x_train, y_train = weather(2000, seed=0)
    x_test, y_test = weather(500, seed=1)
    mean, std = x_train.mean(0), x_train.std(0)  # standardise with training statistics only
    x_train = ((x_train - mean) / std).astype(np.float32)
    x_test = ag.tensor(((x_test - mean) / std).astype(np.float32))
    print(f"rainy days: {y_train.mean():.0%} of the training set")

    results = {}
    for name, init, opt_name, l2, dropout in CONFIGS:
        ag.manual_seed(0)
        model = build(init, dropout)
        if opt_name == "momentum":
            opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=l2)
        else:
            opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=l2)
        loss_fn = nn.BCEWithLogitsLoss()
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size,
                            shuffle=True, seed=0)
        for _ in range(args.epochs):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
        results[name] = accuracy(model, x_test, y_test)
        print(f"{name:22s} final batch loss {loss.item():.3f}  test accuracy "
              f"{results[name]:.1%}")
    return results


if __name__ == "__main__":
    main()
