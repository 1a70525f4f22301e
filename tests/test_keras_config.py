"""model_from_json / load_model: every configuration is checked before anything is built, and
every problem is one ModelConfigError naming the place in the JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from resource_limits import run_bounded

import autograd
from autograd import keras, serialization
from autograd.keras.layers import Activation, Dense, Dropout
from autograd.keras.models import Sequential, load_model, model_from_json


def _model() -> Sequential:
    return Sequential([Dense(4, input_dim=3, activation="relu"), Dropout(0.25),
                       Dense(2), Activation("softmax")], name="net")


def _good() -> dict:
    return json.loads(_model().to_json())


def _layers(*layers: dict) -> str:
    return json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": list(layers)}})


def _dense(**cfg) -> dict:
    return {"class_name": "Dense", "config": {"units": 2, **cfg}}


def test_error_type_is_documented_and_exported():
    assert keras.ModelConfigError is autograd.keras.config.ModelConfigError
    assert issubclass(keras.ModelConfigError, ValueError)
    assert "path in the JSON" in keras.ModelConfigError.__doc__ or \
        "place in the JSON" in keras.ModelConfigError.__doc__
    assert "ModelConfigError" in model_from_json.__doc__ and "max_params" in \
        model_from_json.__doc__


def test_tiny_json_asking_for_gigabytes_is_refused_fast():
    """About 200 bytes asking for 2**30 weights (4 GB, and 8 GB more for the initial draw)."""
    text = _layers(_dense(units=2**15, batch_input_shape=[None, 2**15]))
    assert len(text) < 300
    out = run_bounded("from autograd.keras import model_from_json", "model_from_json(_arg)",
                      [text], limit_mb=1024)["results"][0]
    assert out["outcome"].startswith("ModelConfigError: model_from_json: "
                                     "$.config.layers[0].config.units:"), out
    assert "1073774592 weights" in out["outcome"] and "max_params=10000000" in out["outcome"]
    assert out["peak_growth_mb"] < 20 and out["seconds"] < 1, out


def test_max_params_is_the_callers_to_raise():
    text = _layers(_dense(units=300, input_dim=300), _dense(units=10))
    with pytest.raises(keras.ModelConfigError, match=r"layers\[0\]\.config\.units: .*90300 "
                                                     r"weights by this layer, over "
                                                     r"max_params=50000"):
        model_from_json(text, max_params=50_000)
    with pytest.raises(keras.ModelConfigError, match=r"layers\[1\]\.config\.units: .*93310 "
                                                     r"weights"):
        model_from_json(text, max_params=93_309)
    assert model_from_json(text, max_params=93_310).count_params() == 93_310
    with pytest.raises(ValueError, match="max_params must be a non-negative integer"):
        model_from_json(text, max_params=-1)


DEEP = "[" * 100_000 + "]" * 100_000
BAD = [
    # (json text, path named in the message, words of the reason)
    (DEEP, "$", "nested more than"),
    (json.dumps([[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]), "$", "nested more than 16"),
    ("{", "$", "not valid JSON"),
    (b"\xff\xfe", "$", "not valid JSON"),
    ('{"units": ' + "9" * 5000 + "}", "$", "not valid JSON"),
    ("[]", "$", "must be a JSON object"),
    ('{"class_name": "Functional"}', "$.class_name", "only Sequential"),
    ('{"class_name": "Sequential", "config": 5}', "$.config", "no layer list"),
    ('{"class_name": "Sequential", "config": {"layers": {}}}', "$.config.layers",
     "no layer list"),
    ('{"class_name": "Sequential", "config": {"name": 5, "layers": []}}', "$.config.name",
     "must be a string"),
    (_layers(5), "$.config.layers[0]", "must be a JSON object"),
    (_layers({"class_name": {"a": 1}}), "$.config.layers[0].class_name", "unsupported layer"),
    (_layers({"class_name": ["Dense"]}), "$.config.layers[0].class_name", "unsupported layer"),
    (_layers({"class_name": "Dense", "config": []}), "$.config.layers[0].config",
     "must be a JSON object"),
    (_layers({"class_name": "Dense"}), "$.config.layers[0].config", "missing 'units'"),
    (_layers(_dense(units="5")), "$.config.layers[0].config.units", "must be an integer"),
    (_layers(_dense(units=0)), "$.config.layers[0].config.units", "must be an integer"),
    (_layers(_dense(units=2.0)), "$.config.layers[0].config.units", "must be an integer"),
    (_layers(_dense(units=True)), "$.config.layers[0].config.units", "must be an integer"),
    (_layers(_dense(units=2**40)), "$.config.layers[0].config.units", "must be an integer"),
    (_layers(_dense(batch_input_shape=5)), "$.config.layers[0].config.batch_input_shape",
     "must be [null, width]"),
    (_layers(_dense(batch_input_shape=[])), "$.config.layers[0].config.batch_input_shape",
     "must be [null, width]"),
    (_layers(_dense(batch_input_shape=[None, -3])),
     "$.config.layers[0].config.batch_input_shape[1]", "must be an integer"),
    (_layers(_dense(batch_input_shape=[None, 4, 4])),
     "$.config.layers[0].config.batch_input_shape", "flat inputs only"),
    (_layers(_dense(input_shape={"a": 1})), "$.config.layers[0].config.input_shape",
     "must be [width]"),
    (_layers(_dense(input_shape=[3], input_dim=4)), "$.config.layers[0].config.input_dim",
     "declares input width 4, but the layer also declares 3"),
    (_layers(_dense(activation=["relu"])), "$.config.layers[0].config.activation",
     "unknown activation"),
    (_layers(_dense(activation="swish")), "$.config.layers[0].config.activation",
     "unknown activation 'swish'"),
    (_layers(_dense(use_bias="yes")), "$.config.layers[0].config.use_bias", "true or false"),
    (_layers(_dense(kernel_initializer={"class_name": ["x"]})),
     "$.config.layers[0].config.kernel_initializer.class_name", "unknown kernel_initializer"),
    (_layers(_dense(kernel_initializer={"class_name": "HeNormal", "config": 3})),
     "$.config.layers[0].config.kernel_initializer.config", "must be a JSON object"),
    (_layers(_dense(kernel_initializer="orthogonal")),
     "$.config.layers[0].config.kernel_initializer", "unknown kernel_initializer"),
    (_layers(_dense(kernel_regularizer={"class_name": "L2"})),
     "$.config.layers[0].config.kernel_regularizer", "is not supported"),
    (_layers(_dense(name=["x"])), "$.config.layers[0].config.name", "must be a string"),
    (_layers(_dense(surprise=1)), "$.config.layers[0].config.surprise",
     "bad config for Dense: unknown key 'surprise'"),
    (_layers({"class_name": "Dropout", "config": {"rate": "0.5"}}),
     "$.config.layers[0].config.rate", "must be a number in [0, 1)"),
    (_layers({"class_name": "Dropout", "config": {"rate": 1.0}}),
     "$.config.layers[0].config.rate", "must be a number in [0, 1)"),
    ('{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dropout", '
     '"config": {"rate": NaN}}]}}', "$.config.layers[0].config.rate", "[0, 1)"),
    (_layers({"class_name": "Activation", "config": {"activation": None}}),
     "$.config.layers[0].config.activation", "must name an activation"),
    (_layers(_dense(input_dim=3), _dense(input_dim=3)), "$.config.layers[1].config.input_dim",
     "declares input width 3, but the layer before outputs 2"),
]


@pytest.mark.parametrize("text,path,reason", BAD, ids=[str(i) for i in range(len(BAD))])
def test_malformed_config_names_the_json_path(text, path, reason):
    with pytest.raises(keras.ModelConfigError) as info:
        model_from_json(text)
    assert info.value.path == path
    assert str(info.value).startswith(f"model_from_json: {path}: ")
    assert reason in str(info.value)


def test_valid_configs_still_build():
    original = _model()
    model = model_from_json(original.to_json())
    assert model.get_config() == original.get_config() and model.name == "net"
    keras1 = {"class_name": "Sequential", "config": [_dense(input_dim=3)]}  # a bare layer list
    assert model_from_json(json.dumps(keras1)).count_params() == 8
    assert model_from_json(_layers(_dense(input_shape=[5]))).count_params() == 12
    deferred = model_from_json(_layers(_dense(units=3), _dense(units=1)))
    assert not deferred.built
    deferred.predict(np.zeros((2, 4)))
    assert deferred.count_params() == 4 * 3 + 3 + 3 * 1 + 1
    with pytest.raises(ValueError, match="custom_objects"):
        model_from_json(json.dumps(_good()), custom_objects={"Evil": object})


# Values that are wrong in every kind of way, dropped anywhere into a valid configuration.
_junk = hst.recursive(
    hst.none() | hst.booleans() | hst.integers(-2**70, 2**70) | hst.floats()
    | hst.text(max_size=8) | hst.sampled_from(["Dense", "relu", "Sequential", "zeros"]),
    lambda inner: hst.lists(inner, max_size=3) | hst.dictionaries(hst.text(max_size=6), inner,
                                                                   max_size=3),
    max_leaves=8)


def _places(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _places(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _places(v, (*path, i))


@settings(max_examples=300, deadline=None)
@given(data=hst.data())
def test_any_value_anywhere_builds_or_raises_model_config_error(data):
    spec = _good()
    places = list(_places(spec))[1:]
    for _ in range(data.draw(hst.integers(1, 3))):
        *parent, last = data.draw(hst.sampled_from(places))
        node = spec
        try:
            for k in parent:
                node = node[k]
            if data.draw(hst.booleans()) and isinstance(node, dict):
                node.pop(last, None)
            else:
                node[last] = data.draw(_junk)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced this place
    try:
        model = model_from_json(json.dumps(spec))
    except keras.ModelConfigError as exc:
        assert exc.path.startswith("$") and str(exc).startswith("model_from_json: $")
    else:
        assert model.count_params() <= 10_000_000 if model.built else True


def test_load_model_checks_the_stored_config_and_names_the_file(tmp_path):
    model = _model()
    path = tmp_path / "m.safetensors"
    model.save(path)
    again = load_model(path)
    x = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    # A file whose stored architecture asks for 2**34 weights (written with a valid checksum).
    huge = _layers(_dense(units=2**17, input_dim=2**17))
    serialization.save(model.module.state_dict(), path, metadata={"keras_model": huge})
    with pytest.raises(keras.ModelConfigError) as info:
        load_model(path)
    assert str(info.value).startswith(f"load_model: {path} (metadata 'keras_model'): "
                                      f"$.config.layers[0].config.units: ")
    assert info.value.path == "$.config.layers[0].config.units"
    with pytest.raises(keras.ModelConfigError, match=r"over max_params=100"):
        load_model(path, max_params=100)


def test_many_layers_build_in_linear_time_and_are_capped():
    relu = {"class_name": "Activation", "config": {"activation": "relu"}}
    many = _layers(_dense(input_dim=2), *[relu] * 9_999)
    out = run_bounded("from autograd.keras import model_from_json",
                      "assert len(model_from_json(_arg).layers) == 10_000", [many])
    assert out["results"][0]["outcome"] == "ok" and out["results"][0]["seconds"] < 5, out
    with pytest.raises(keras.ModelConfigError, match=r"\$\.config\.layers: 10001 layers, over "
                                                     r"the limit of 10000"):
        model_from_json(_layers(_dense(input_dim=2), *[relu] * 10_000))
