"""The Keras front: the XOR tutorial, summary, JSON and weight round trips, callbacks, losses."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autograd
import autograd as ag
from autograd import keras
from autograd.datasets import blobs
from autograd.keras import models as keras_models
from autograd.keras.callbacks import Callback, EarlyStopping
from autograd.keras.layers import Activation, Dense, Dropout
from autograd.keras.models import Sequential, load_model, model_from_json
from autograd.keras.optimizers import SGD, Adam

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
Y = np.array([[0], [1], [1], [0]])


def xor_model():
    model = Sequential()
    model.add(Dense(10, input_dim=2))
    model.add(Activation("tanh"))
    model.add(Dense(1))
    model.add(Activation("sigmoid"))
    return model


def test_xor_tutorial_reaches_full_accuracy(capsys):
    autograd.manual_seed(0)
    model = xor_model()
    model.compile(loss="binary_crossentropy", optimizer=SGD(lr=0.1), metrics=["accuracy"])
    history = model.fit(X, Y, batch_size=1, epochs=500, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict_classes(X).ravel().tolist() == [0, 1, 1, 0]
    loss, acc = model.evaluate(X, Y, verbose=0)
    assert acc == 1.0 and loss < 0.1
    assert capsys.readouterr().out == ""


def test_top_level_names_and_aliases():
    assert keras.Sequential is Sequential and keras.Dense is Dense and keras.SGD is SGD
    assert keras.Adam is Adam and keras.model_from_json is model_from_json
    assert SGD(learning_rate=0.3).lr == 0.3 and Adam().learning_rate == 0.001


def test_summary_and_counts(capsys):
    assert Dense(10, input_dim=2).count_params() == 30
    model = xor_model()
    assert model.count_params() == 41
    model.summary()
    out = capsys.readouterr().out
    assert re.search(r"dense(_\d+)? \(Dense\)\s+\(None, 10\)\s+30\n", out)
    assert re.search(r"activation(_\d+)? \(Activation\)\s+\(None, 10\)\s+0\n", out)
    assert re.search(r"dense_\d+ \(Dense\)\s+\(None, 1\)\s+11\n", out)
    assert "Total params: 41\nTrainable params: 41\nNon-trainable params: 0" in out
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[0].startswith("Model:") and len(lines) == 16


def test_layer_names_are_unique_and_kept():
    a, b = Dense(2, input_dim=1), Dense(2, input_dim=1)
    assert a.name != b.name and Dense(1, name="out").name == "out"


def test_json_round_trip():
    model = xor_model()
    model.add(Dropout(0.2))
    text = model.to_json()
    spec = json.loads(text)
    assert spec["class_name"] == "Sequential"
    assert [layer["class_name"] for layer in spec["config"]["layers"]] == \
        ["Dense", "Activation", "Dense", "Activation", "Dropout"]
    clone = model_from_json(text)
    assert clone.get_config() == model.get_config() and clone.count_params() == 41
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))


def test_model_from_json_refuses_unknown_things():
    good = json.loads(xor_model().to_json())
    evil = json.loads(json.dumps(good))
    evil["config"]["layers"][0] = {"class_name": "Lambda", "config": {"function": "os.system"}}
    with pytest.raises(ValueError, match="unsupported layer 'Lambda'"):
        model_from_json(json.dumps(evil))
    reg = json.loads(json.dumps(good))
    reg["config"]["layers"][0]["config"]["kernel_regularizer"] = {"class_name": "L2"}
    with pytest.raises(ValueError, match="kernel_regularizer"):
        model_from_json(json.dumps(reg))
    extra = json.loads(json.dumps(good))
    extra["config"]["layers"][0]["config"]["surprise"] = 1
    with pytest.raises(ValueError, match="bad config for Dense"):
        model_from_json(json.dumps(extra))
    with pytest.raises(ValueError, match="not valid JSON"):
        model_from_json("{")


def test_model_from_real_keras_style_json():
    text = json.dumps({"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "Dense", "config": {
            "name": "d", "trainable": True, "dtype": "float32", "batch_input_shape": [None, 3],
            "units": 4, "activation": "relu", "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}}]}})
    model = model_from_json(text)
    assert model.count_params() == 16 and model.layers[0].activation == "relu"


def test_save_and_load_weights(tmp_path):
    autograd.manual_seed(1)
    model = xor_model()
    model.save_weights(tmp_path / "w.safetensors")
    other = xor_model()
    assert not np.array_equal(other.predict(X), model.predict(X))
    other.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(other.predict(X), model.predict(X))
    wrong = Sequential([Dense(3, input_dim=2), Dense(1)])
    with pytest.raises(ValueError, match="does not fit this model"):
        wrong.load_weights(tmp_path / "w.safetensors")
    model.save(tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_adding_a_built_layer_keeps_its_weights():
    head = Dense(1, input_dim=3)
    weights = [np.arange(3.0).reshape(3, 1), np.array([0.5])]
    head.set_weights(weights)
    model = Sequential([Dense(3, input_dim=2), head])
    for got, want in zip(model.layers[1].get_weights(), weights):
        np.testing.assert_array_equal(got, want)


def test_weights_use_keras_layout():
    layer = Dense(3, input_dim=2)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (2, 3) and bias.shape == (3,) and not bias.any()
    np.testing.assert_array_equal(kernel, layer.linear.weight.numpy().T)
    new = [np.arange(6.0).reshape(2, 3), np.ones(3)]
    layer.set_weights(new)
    np.testing.assert_array_equal(layer.get_weights()[0], new[0])
    with pytest.raises(ValueError, match="shape"):
        layer.set_weights([np.zeros((3, 2)), np.zeros(3)])
    assert len(Dense(2, input_dim=2, use_bias=False).get_weights()) == 1


@pytest.mark.parametrize("init", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
                                  "random_normal", "zeros"])
def test_initializers(init):
    kernel = Dense(200, input_dim=100, kernel_initializer=init).get_weights()[0]
    if init == "zeros":
        assert not kernel.any()
        return
    assert kernel.std() > 0
    if init == "glorot_uniform":
        assert np.abs(kernel).max() <= np.sqrt(6 / 300)
    if init == "he_normal":
        np.testing.assert_allclose(kernel.std(), np.sqrt(2 / 100), rtol=0.05)
    with pytest.raises(ValueError, match="kernel_initializer"):
        Dense(2, kernel_initializer="orthogonal")


def test_predict_classes_softmax_and_sigmoid():
    model = Sequential([Dense(3, input_dim=2, activation="softmax")])
    probs = model.predict(X)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-6)
    assert model.predict_classes(X).tolist() == probs.argmax(1).tolist()
    binary = Sequential([Dense(1, input_dim=2, activation="sigmoid")])
    classes = binary.predict_classes(X)
    assert classes.shape == (4, 1) and classes.dtype == np.int32


def test_deferred_build_from_data():
    model = Sequential([Dense(4, activation="relu"), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((6, 5)), np.zeros(6), epochs=1, verbose=0)
    assert model.count_params() == 5 * 4 + 4 + 5
    with pytest.raises(ValueError, match="not built"):
        Sequential([Dense(2)]).summary()


def test_validation_split_holds_out_the_tail():
    autograd.manual_seed(3)
    x, y = blobs(20, 2, seed=0)
    x, y = x[np.r_[0:20:2, 1:20:2, 20:40]], y[np.r_[0:20:2, 1:20:2, 20:40]]
    model = Sequential([Dense(2, input_dim=2, activation="softmax")])
    model.compile(optimizer=SGD(lr=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in h.history.values())
    val_loss, val_acc = model.evaluate(x[30:], y[30:], verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert h.history["val_accuracy"][-1] == val_acc


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def test_early_stopping_stops_and_restores_best_weights():
    autograd.manual_seed(0)
    x, y = blobs(30, 2, spread=1.5, seed=1)
    model = Sequential([Dense(8, input_dim=2, activation="tanh"), Dense(2, activation="softmax")])
    model.compile(optimizer=Adam(lr=0.05), loss="sparse_categorical_crossentropy")
    # Validation labels are flipped: the better the fit, the worse val_loss gets.
    recorder = Recorder()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=50, batch_size=16, validation_data=(x, 1 - y), verbose=0,
                  callbacks=[recorder, stop])
    n = len(h.history["loss"])
    assert n < 50 and stop.stopped_epoch == n - 1
    best = int(np.argmin(h.history["val_loss"]))
    assert n - 1 - best == 2  # stopped exactly `patience` epochs after the best one
    for now, then in zip(model.get_weights(), recorder.weights[best]):
        np.testing.assert_array_equal(now, then)


def test_early_stopping_on_accuracy_maximises():
    assert EarlyStopping(monitor="val_accuracy").maximize
    assert not EarlyStopping().maximize


def test_verbosity(capsys, monkeypatch):
    model = xor_model()
    model.compile(loss="mse", optimizer="sgd", metrics=["accuracy"])
    model.fit(X, Y, epochs=2, verbose=0)
    model.evaluate(X, Y, verbose=0)
    model.predict(X)
    assert capsys.readouterr() == ("", "")
    # On a terminal verbose=1 draws a progress bar per epoch ...
    monkeypatch.setattr(keras_models, "_stdout_is_terminal", lambda: True)
    model.fit(X, Y, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss=" in out and "accuracy=" in out
    monkeypatch.undo()
    model.fit(X, Y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and re.match(r"Epoch 2/2 - loss: \d\.\d{4} - accuracy: ", lines[1])


def _numpy_loss(name, p, y):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    if name == "binary_crossentropy":
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    if name == "mse":
        return np.mean((p - y) ** 2)
    if name == "categorical_crossentropy":
        return -np.mean(np.sum(y * np.log(p), axis=1))
    return -np.mean(np.log(p[np.arange(len(y)), y]))


@pytest.mark.parametrize("loss,activation,units", [
    ("binary_crossentropy", "sigmoid", 1), ("mse", "sigmoid", 1),
    ("categorical_crossentropy", "softmax", 3), ("sparse_categorical_crossentropy", "softmax", 3),
])
def test_all_losses_match_numpy_and_train(loss, activation, units):
    autograd.manual_seed(2)
    x, labels = blobs(30, units if units > 1 else 2, seed=2)
    y = {"categorical_crossentropy": np.eye(3, dtype=np.float32)[labels],
         "sparse_categorical_crossentropy": labels}.get(loss, labels[:, None].astype(np.float32))
    model = Sequential([Dense(8, input_dim=2, activation="relu"),
                        Dense(units, activation=activation)])
    model.compile(optimizer=Adam(lr=0.02), loss=loss, metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)[0]
    np.testing.assert_allclose(before, _numpy_loss(loss, model.predict(x).astype(np.float64),
                                                   y), rtol=1e-4)
    h = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    after, acc = model.evaluate(x, y, verbose=0)
    assert after < before / 2 and acc >= 0.95 and h.history["accuracy"][-1] >= 0.9


def test_keras_sgd_matches_a_manual_step():
    model = Sequential([Dense(1, input_dim=2, kernel_initializer="zeros")])
    model.compile(optimizer=SGD(lr=0.5), loss="mse")
    x, y = np.array([[1.0, 2.0]]), np.array([[3.0]])
    model.fit(x, y, epochs=1, batch_size=1, verbose=0)
    kernel, bias = model.get_weights()
    # d/dw (w.x + b - y)^2 at w = 0, b = 0 is -2 y x; one step of lr 0.5 gives y x.
    np.testing.assert_allclose(kernel.ravel(), [3.0, 6.0])
    np.testing.assert_allclose(bias, [3.0])


def test_dropout_only_while_training():
    autograd.manual_seed(4)
    model = Sequential([Dense(50, input_dim=2), Dropout(0.5)])
    np.testing.assert_array_equal(model.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Activation("swish")
    model = xor_model()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(optimizer="sgd", loss="hinge")
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(optimizer="rmsprop", loss="mse")
    with pytest.raises(ValueError, match="width 2, got 3"):
        Sequential([Dense(3, input_dim=2), Dense(1, input_dim=2)])
    with pytest.raises(TypeError, match="Keras layer"):
        model.add(autograd.nn.Linear(1, 1))


def test_history_plot_without_matplotlib(monkeypatch):
    model = xor_model()
    model.compile(loss="mse", optimizer="sgd")
    h = model.fit(X, Y, epochs=2, verbose=0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install autograd-engine\[plot\]"):
        h.plot()


def test_history_plot_draws_curves():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    model = xor_model()
    model.compile(loss="mse", optimizer="sgd", metrics=["accuracy"])
    h = model.fit(X, Y, epochs=3, verbose=0, validation_data=(X, Y))
    fig = h.plot()
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_progress_is_one_line_per_epoch_when_stdout_is_not_a_terminal(capsys):
    """Piped to a file or a CI log, verbose=1 (the default) must not leave copies of a bar."""
    model = xor_model()
    model.compile(loss="mse", optimizer="sgd", metrics=["accuracy"])
    assert not keras_models._stdout_is_terminal()  # capsys: stdout is not a tty
    model.fit(X, Y, epochs=3, batch_size=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3, lines
    for i, line in enumerate(lines, 1):
        assert re.fullmatch(rf"Epoch {i}/3 - loss: \d\.\d{{4}} - accuracy: \d\.\d{{4}}", line)
    assert "\r" not in "".join(lines) and "it/s" not in "".join(lines)


def test_progress_bar_when_piped_to_a_file(tmp_path):
    """The same through a real pipe into a file, as `python train.py > log` does."""
    script = ("import numpy as np; from autograd import keras\n"
              "m = keras.Sequential([keras.layers.Dense(1, input_dim=2)])\n"
              "m.compile(loss='mse', optimizer='sgd')\n"
              "m.fit(np.zeros((64, 2)), np.zeros(64), epochs=4, batch_size=8)\n")
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-c", script], stdout=out, stderr=subprocess.PIPE,
                       check=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(Path(ag.__file__).parents[1])})
    lines = log.read_text().splitlines()
    assert [line.split(" - ")[0] for line in lines] == [f"Epoch {i}/4" for i in range(1, 5)]
