"""The training demo: ``autograd-demo`` (or ``python -m autograd.demo``).

Trains a small classifier on built-in synthetic data (interleaved spirals, no download) with the
Keras-style front, showing the model summary, a progress bar per epoch and the final accuracy,
and says which backend ran. ``--data DIR`` trains the 784-256-128-10 MLP on MNIST instead.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import autograd
from autograd import backend
from autograd.datasets import load_mnist, spirals
from autograd.keras.layers import Dense
from autograd.keras.models import Sequential
from autograd.keras.optimizers import Adam


def _spirals_model() -> tuple[Sequential, tuple, tuple, int]:
    x, y = spirals(n_per_class=400, n_classes=3, noise=0.2, seed=0)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    model = Sequential()
    model.add(Dense(64, input_dim=2, activation="relu"))
    model.add(Dense(64, activation="relu"))
    model.add(Dense(3, activation="softmax"))
    return model, (x[:split], y[:split]), (x[split:], y[split:]), 60


def _mnist_model(directory: str) -> tuple[Sequential, tuple, tuple, int]:
    model = Sequential()
    model.add(Dense(256, input_dim=784, activation="relu", kernel_initializer="he_uniform"))
    model.add(Dense(128, activation="relu", kernel_initializer="he_uniform"))
    model.add(Dense(10, activation="softmax"))
    return model, load_mnist(directory, "train"), load_mnist(directory, "test"), 5


def run(argv: list[str] | None = None) -> float:
    """Run the demo; returns the test accuracy."""
    parser = argparse.ArgumentParser(prog="autograd-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="train on MNIST from this directory of IDX files")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    parser.add_argument("--backend", choices=["auto", "native", "numpy"], default=None,
                        help="kernel provider (default: AUTOGRAD_BACKEND, else auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.backend:
        backend.use(args.backend)
    autograd.manual_seed(0)

    info = backend.info()
    print(f"autograd {autograd.__version__}: kernels '{info['backend']}', "
          f"engine '{info['engine']}'" + (f", BLAS {info['blas_core']}, "
                                          f"{info['num_threads']} threads"
                                          if "blas_core" in info else ""))
    if args.data:
        model, (x, y), (x_test, y_test), epochs = _mnist_model(args.data)
        print(f"MNIST: {len(x)} training and {len(x_test)} test images")
    else:
        model, (x, y), (x_test, y_test), epochs = _spirals_model()
        print(f"spirals: {len(x)} training and {len(x_test)} test points, 3 classes")
    epochs = args.epochs or epochs

    model.compile(loss="sparse_categorical_crossentropy", optimizer=Adam(lr=1e-3 if args.data
                                                                          else 1e-2),
                  metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=128 if args.data else 32,
              validation_split=0.1, verbose=0 if args.quiet else 1)
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"trained {epochs} epochs in {elapsed:.1f} s on the '{backend.active()}' backend; "
          f"test loss {loss:.4f}, test accuracy {accuracy:.2%}")
    return accuracy


def main(argv: list[str] | None = None) -> None:
    """The ``autograd-demo`` command (its exit status is 0 when training completed)."""
    run(argv)


if __name__ == "__main__":
    main()
