"""Keras's files: .h5 weights and whole models in Keras's HDF5 layouts (through h5py), and
to_json text that Keras's own model_from_json reads. With Keras installed (Keras 3, on the
torch backend here), Keras loads what we write and we load what Keras writes; those tests
skip cleanly without keras, torch or h5py."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

import autograd
from autograd.keras.layers import Activation, Dense, Dropout
from autograd.keras.models import Sequential, load_model, model_from_json

X = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
HAVE_H5PY = importlib.util.find_spec("h5py") is not None
HAVE_KERAS = HAVE_H5PY and all(importlib.util.find_spec(m) is not None
                               for m in ("keras", "torch"))
needs_h5py = pytest.mark.skipif(not HAVE_H5PY, reason="h5py not installed")


def _model(seed=0):
    autograd.manual_seed(seed)
    return Sequential([Dense(4, input_dim=3, activation="tanh"), Dropout(0.2), Dense(2),
                       Activation("softmax")])


def test_h5_without_h5py_is_refused_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"w\.h5: a \.h5 name means Keras's HDF5 format.*"
                                          r"pip install h5py.*\.safetensors name"):
        _model().save_weights(tmp_path / "w.h5")
    assert not (tmp_path / "w.h5").exists()


@needs_h5py
@pytest.mark.parametrize("name", ["w.h5", "w.hdf5", "w.weights.h5"])
def test_h5_weights_round_trip(tmp_path, name):
    import h5py
    model = _model(0)
    model.save_weights(tmp_path / name)
    assert h5py.is_hdf5(tmp_path / name)
    other = _model(1)
    assert not np.allclose(other.predict(X), model.predict(X))
    other.load_weights(tmp_path / name)
    np.testing.assert_array_equal(other.predict(X), model.predict(X))
    wrong = Sequential([Dense(5, input_dim=3), Dense(2)])
    with pytest.raises(ValueError, match="load_weights: .* shape|load_weights: .*layers"):
        wrong.load_weights(tmp_path / name)


@needs_h5py
def test_h5_layout_is_kerass(tmp_path):
    import h5py
    model = _model()
    model.save_weights(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names == [layer.name for layer in model.layers]
        dense = model.layers[0].name
        assert [n.decode() for n in f[dense].attrs["weight_names"]] == [
            f"{dense}/kernel:0", f"{dense}/bias:0"]
        np.testing.assert_array_equal(f[dense][f"{dense}/kernel:0"][()],
                                      model.get_weights()[0])  # (inputs, units), as Keras
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5") as f:
        assert sorted(f["layers"]) == ["activation", "dense", "dense_1", "dropout"]
        assert f["layers/dense_1/vars/0"].shape == (4, 2)


@needs_h5py
def test_whole_model_h5_round_trip(tmp_path):
    model = _model()
    model.save(tmp_path / "m.h5")
    back = load_model(tmp_path / "m.h5")
    assert back.get_config() == model.get_config()
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ValueError, match="has no model_config"):
        load_model(tmp_path / "w.h5")


def test_to_json_is_kerass_and_ours():
    model = _model()
    spec = json.loads(model.to_json())
    assert spec["module"] == "keras"
    assert all(layer["module"] == "keras.layers" for layer in spec["config"]["layers"])
    assert spec["config"]["layers"][0]["config"]["input_shape"] == [3]
    assert model_from_json(model.to_json()).get_config() == model.get_config()


# ------------------------------------------------------------------------------ with Keras
@pytest.fixture
def keras():
    if not HAVE_KERAS:
        pytest.skip("keras (with torch as its backend) or h5py not installed")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras


# Keras warns that input_shape belongs in an Input layer (it reads the width all the same),
# and its variables' __array__ trips NumPy 2's copy= deprecation: Keras's own warnings.
def quiet(test):
    test = pytest.mark.filterwarnings("ignore::UserWarning")(test)
    return pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")(test)


@quiet
def test_kerass_model_from_json_reads_our_json(keras):
    model = _model()
    km = keras.models.model_from_json(model.to_json())
    assert [type(layer).__name__ for layer in km.layers] == ["Dense", "Dropout", "Dense",
                                                              "Activation"]
    assert [tuple(w.shape) for w in km.get_weights()] == [w.shape for w in model.get_weights()]
    assert km.count_params() == model.count_params()


@quiet
@pytest.mark.parametrize("name", ["w.h5", "w.weights.h5"])
def test_keras_loads_our_weights(keras, tmp_path, name):
    model = _model()
    model.save_weights(tmp_path / name)
    km = keras.models.model_from_json(model.to_json())
    km.load_weights(str(tmp_path / name))
    np.testing.assert_allclose(km.predict(X, verbose=0), model.predict(X), rtol=1e-5,
                               atol=1e-6)


@quiet
def test_keras_loads_our_whole_model(keras, tmp_path):
    model = _model()
    model.save(tmp_path / "m.h5")
    km = keras.models.load_model(str(tmp_path / "m.h5"), compile=False)
    np.testing.assert_allclose(km.predict(X, verbose=0), model.predict(X), rtol=1e-5,
                               atol=1e-6)


@quiet
@pytest.mark.parametrize("name", ["k.weights.h5", "k.h5"])
def test_we_load_kerass_files(keras, tmp_path, name):
    km = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                           keras.layers.Dropout(0.2), keras.layers.Dense(2),
                           keras.layers.Activation("softmax")])
    if name.endswith(".weights.h5"):
        km.save_weights(str(tmp_path / name))
    else:
        km.save(str(tmp_path / name))  # Keras's legacy whole-model HDF5 file
    model = _model(3)
    model.load_weights(tmp_path / name)
    np.testing.assert_allclose(model.predict(X), km.predict(X, verbose=0), rtol=1e-5,
                               atol=1e-6)
