"""Keras's HDF5 files, written and read through ``h5py`` (the optional ``h5`` extra).

Two layouts, chosen by the file name as Keras chooses them:

* ``*.weights.h5`` - Keras 3's weights file: ``layers/<layer key>/vars/<i>``, where the layer
  key is the class name in snake case, numbered within the model (``dense``, ``dense_1``);
* any other ``*.h5`` / ``*.hdf5`` - the legacy (Keras 2) layout, which Keras 2 writes and
  Keras 2 and 3 both read: the ``layer_names`` attribute lists the layers, each layer's group
  lists its ``weight_names``, matched to the model's layers by order. A whole model
  (:meth:`Sequential.save`) adds the ``model_config`` attribute (the ``to_json`` text) and puts
  the weights under ``model_weights``, as ``keras.models.load_model`` expects.

Kernels are stored as Keras stores them, (inputs, units). Files are written into memory and
then atomically over the path (a failed save leaves the old file intact). Reading checks every
dataset's shape against the model before reading it.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["is_hdf5", "save_weights", "load_weights", "save_model", "read_model_config"]

_WEIGHT_NAMES = {"Dense": ("kernel", "bias")}


def is_hdf5(path: Any) -> bool:
    """Whether ``path`` names a Keras HDF5 file (``.h5``, ``.hdf5``, ``.weights.h5``)."""
    return str(os.fspath(path)).lower().endswith((".h5", ".hdf5"))


def _h5py(path: Any) -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{os.fspath(path)}: a .h5 name means Keras's HDF5 format, written "
                          f"through h5py, which is not installed: pip install h5py (or "
                          f"autograd-engine[h5]), or use a .safetensors name") from None
    return h5py


def _keras3(path: Any) -> bool:
    return str(os.fspath(path)).lower().endswith(".weights.h5")


def _version() -> bytes:
    from .. import __version__
    return f"autograd-engine {__version__}".encode()


def _layer_keys(model: Any) -> list[str]:
    """Keras 3's key for each layer: its class in snake case, numbered per class."""
    counts: dict[str, int] = {}
    keys = []
    for layer in model.layers:
        base = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
        n = counts.get(base, 0)
        counts[base] = n + 1
        keys.append(base if n == 0 else f"{base}_{n}")
    return keys


def _write_legacy(group: Any, model: Any) -> None:
    group.attrs["layer_names"] = np.array([layer.name.encode() for layer in model.layers])
    group.attrs["backend"] = b"autograd"
    group.attrs["keras_version"] = _version()
    for layer in sorted(model.layers, key=lambda x: x.name):
        g = group.create_group(layer.name)
        weights = layer.get_weights()
        names = [f"{layer.name}/{n}:0".encode()
                 for n in _WEIGHT_NAMES.get(type(layer).__name__, ())[:len(weights)]]
        g.attrs["weight_names"] = np.array(names) if names else np.zeros(0)
        for name, w in zip(names, weights):
            g.create_dataset(name.decode(), data=w)
    group.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros(0)


def _write_keras3(f: Any, model: Any) -> None:
    layers = f.create_group("layers")
    for key, layer in zip(_layer_keys(model), model.layers):
        v = layers.create_group(key).create_group("vars")
        v.attrs["name"] = layer.name
        for i, w in enumerate(layer.get_weights()):
            v.create_dataset(str(i), data=w)
    f.create_group("vars").attrs["name"] = model.name


def _write(path: Any, fill: Any) -> None:
    from ..serialization import _atomic_write
    h5py = _h5py(path)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        fill(f)
    _atomic_write(Path(path), buf.getvalue())


def save_weights(model: Any, path: Any) -> None:
    """Write ``model``'s weights to ``path`` in the layout its name asks for."""
    _write(path, (lambda f: _write_keras3(f, model)) if _keras3(path)
           else (lambda f: _write_legacy(f, model)))


def save_model(model: Any, path: Any) -> None:
    """Architecture and weights in one legacy HDF5 file, as Keras 2's ``model.save``."""
    if _keras3(path):
        raise ValueError(f"save: {os.fspath(path)} is a weights-only name; save the whole "
                         f"model to a .h5 name, or use save_weights")

    def fill(f: Any) -> None:
        f.attrs["model_config"] = model.to_json().encode()
        f.attrs["backend"] = b"autograd"
        f.attrs["keras_version"] = _version()
        _write_legacy(f.create_group("model_weights"), model)
    _write(path, fill)


def read_model_config(path: Any) -> str:
    """The ``model_config`` JSON of a whole-model HDF5 file."""
    h5py = _h5py(path)
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"load_model: {os.fspath(path)} has no model_config: it holds "
                             f"weights only (use load_weights on a built model)")
        text = f.attrs["model_config"]
    return text.decode() if isinstance(text, bytes) else str(text)


def _attr_list(group: Any, name: str) -> list[str]:
    """A string-list attribute, also in Keras's chunked form (name0, name1, ...)."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values.extend(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _read(ds: Any, expected: np.ndarray, where: str, path: Any) -> np.ndarray:
    import h5py
    if not isinstance(ds, h5py.Dataset) or ds.shape != expected.shape \
            or ds.dtype.kind != "f":
        shape = getattr(ds, "shape", None)
        held = "no array" if shape is None else f"an array of shape {shape} ({ds.dtype})"
        raise ValueError(f"load_weights: {os.fspath(path)}: {where} holds {held}, the model "
                         f"needs a float array of shape {expected.shape}")
    return np.asarray(ds[()], dtype=expected.dtype)


def load_weights(model: Any, path: Any) -> None:
    """Set ``model``'s weights from a Keras HDF5 file (either layout, written by Keras or by
    :func:`save_weights`)."""
    h5py = _h5py(path)
    ours = [(layer, layer.get_weights()) for layer in model.layers]
    values: list[np.ndarray] = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs \
            else f
        if "layer_names" in root.attrs or "layer_names0" in root.attrs:
            saved = [n for n in _attr_list(root, "layer_names")
                     if n in root and _attr_list(root[n], "weight_names")]
            weighted = [(layer, ws) for layer, ws in ours if ws]
            if len(saved) != len(weighted):
                raise ValueError(f"load_weights: {os.fspath(path)} holds weights for "
                                 f"{len(saved)} layers, the model has {len(weighted)}")
            for name, (layer, ws) in zip(saved, weighted):
                names = _attr_list(root[name], "weight_names")
                if len(names) != len(ws):
                    raise ValueError(f"load_weights: {os.fspath(path)}: layer {name} holds "
                                     f"{len(names)} arrays, {layer.name} needs {len(ws)}")
                values += [_read(root[name].get(n), w, f"{name}/{n}", path)
                           for n, w in zip(names, ws)]
        elif "layers" in root:
            for key, (layer, ws) in zip(_layer_keys(model), ours):
                g = root["layers"].get(f"{key}/vars") if ws else None
                if ws and g is None:
                    raise ValueError(f"load_weights: {os.fspath(path)} has no weights for "
                                     f"layer {key}")
                values += [_read(g.get(str(i)), w, f"layers/{key}/vars/{i}", path)
                           for i, w in enumerate(ws)]
        else:
            raise ValueError(f"load_weights: {os.fspath(path)} is an HDF5 file without Keras "
                             f"weights (no layer_names attribute, no layers group)")
    model.set_weights(values)
