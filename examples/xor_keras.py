"""The Keras XOR tutorial, with only its imports changed.

Sequential, Dense, Activation, SGD, compile, fit, predict, summary, then to_json +
save_weights and a reload that predicts the same:

    python examples/xor_keras.py [--epochs 1000]
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import autograd
from autograd.keras.layers import Activation, Dense
from autograd.keras.models import Sequential, model_from_json
from autograd.keras.optimizers import SGD


def main(argv: list[str] | None = None) -> dict:
    """Train XOR; returns the accuracy and whether the reloaded model agrees."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args(argv)
    autograd.manual_seed(0)

    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    y = np.array([[0], [1], [1], [0]], dtype="float32")

    model = Sequential()
    model.add(Dense(10, input_dim=2))
    model.add(Activation("tanh"))
    model.add(Dense(1))
    model.add(Activation("sigmoid"))

    sgd = SGD(lr=0.1)
    model.compile(loss="binary_crossentropy", optimizer=sgd, metrics=["accuracy"])
    model.summary()
    model.fit(X, y, batch_size=1, epochs=args.epochs, verbose=0)

    print(model.predict(X))
    loss, accuracy = model.evaluate(X, y, verbose=0)
    print(f"loss {loss:.4f}, accuracy {accuracy:.0%}")

    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "model.json"), "w") as f:
            f.write(model.to_json())
        model.save_weights(os.path.join(folder, "model.safetensors"))
        with open(os.path.join(folder, "model.json")) as f:
            reloaded = model_from_json(f.read())
        reloaded.load_weights(os.path.join(folder, "model.safetensors"))
    same = np.allclose(reloaded.predict(X), model.predict(X))
    print(f"reloaded from JSON + weights: predictions identical: {same}")
    return {"accuracy": accuracy, "reload_identical": same}


if __name__ == "__main__":
    main()
