"""Write the seed corpus (small, deterministic files) into tests/fuzz/corpus/<target>/.

    python tests/fuzz/make_corpus.py

Rerun after a format change; the files are committed so the fuzzers and
tests/test_fuzz_corpus.py start from them.
"""
from __future__ import annotations

import gzip
import json
import pickle
import struct
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import safetensors.numpy as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import idx_input  # noqa: E402

import autograd  # noqa: E402
from autograd import nn  # noqa: E402
from autograd.keras.layers import Activation, Dense, Dropout  # noqa: E402
from autograd.keras.models import Sequential  # noqa: E402

HERE = Path(__file__).resolve().parent / "corpus"


def _saved(obj, tmp: Path, **kw) -> bytes:
    path = tmp / "f"
    autograd.save(obj, path, **kw)
    return path.read_bytes()


def load_seeds(tmp: Path) -> dict[str, bytes]:
    autograd.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    deep = nn.Sequential(nn.Linear(2, 2), nn.Residual(nn.Sequential(nn.Linear(2, 2),
                                                                    nn.ReLU())),
                         nn.BatchNorm1d(2), nn.LeakyReLU(0.1), nn.Dropout(0.5), nn.GELU(),
                         nn.Flatten(), nn.Softmax(dim=1))
    opt = autograd.optim.Adam(mlp.parameters(), lr=0.01)
    v1 = bytearray(_saved(mlp, tmp))
    (n,) = struct.unpack("<Q", v1[:8])
    header = json.loads(v1[8:8 + n])
    del header["__metadata__"]["autograd.checksum"]
    header["__metadata__"]["autograd.version"] = "1"
    raw = json.dumps(header).encode()
    half = np.array([1.5, -2.0], np.float16)
    bf16 = (np.array([1.0, -3.5], np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    bf_header = json.dumps({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})
    torch_zip = BytesIO()
    with zipfile.ZipFile(torch_zip, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
    return {
        "module": _saved(mlp, tmp),
        "module_deep": _saved(deep, tmp),
        "checkpoint": _saved({"model": mlp, "optimizer": opt, "epoch": 3,
                              "history": [0.5, 0.25], "flags": (True, None, "x")}, tmp,
                             metadata={"note": "seed"}),
        "state_dict": _saved(mlp.state_dict(), tmp),
        "arrays": _saved({"i": np.arange(3), "b": np.array([True]), "s": np.float64(2.5),
                          "e": np.zeros((0, 2), np.float32)}, tmp),
        "format1": struct.pack("<Q", len(raw)) + raw + bytes(v1[8 + n:]),
        "foreign_f16": st.save({"w": half, "x": np.ones((2, 2), np.float32)},
                               metadata={"format": "pt"}),
        "foreign_bf16": struct.pack("<Q", len(bf_header)) + bf_header.encode() + bf16,
        "pickle": pickle.dumps({"w": [1.0]}, protocol=4),
        "torch_zip": torch_zip.getvalue(),
        "empty": b"",
        "short": b"\x08\x00\x00",
    }


def _idx(magic: int, dims: tuple, payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def idx_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8).tobytes()
    images = _idx(2051, (2, 28, 28), pixels)
    labels = _idx(2049, (2,), bytes([3, 7]))
    return {
        "images_raw": idx_input(0, images),
        "images_gz": idx_input(0, gzip.compress(images, mtime=0)),
        "images_small": idx_input(0, _idx(2051, (1, 2, 3), bytes(6))),
        "labels_raw": idx_input(1, labels),
        "labels_gz": idx_input(1, gzip.compress(labels, mtime=0)),
        "mnist_raw": idx_input(2, labels, images),
        "mnist_gz": idx_input(2, gzip.compress(labels, mtime=0),
                              gzip.compress(images, mtime=0)),
        # a stream longer than its header says: a gzip bomb in miniature
        "mnist_long": idx_input(2, labels, gzip.compress(images, mtime=0)
                                + gzip.compress(bytes(1 << 16), mtime=0)),
        "mnist_count_mismatch": idx_input(2, _idx(2049, (3,), bytes(3)), images),
    }


def model_json_seeds() -> dict[str, bytes]:
    xor = Sequential([Dense(4, input_dim=2), Activation("tanh"), Dense(1),
                      Activation("sigmoid")], name="xor")
    mnist = Sequential([Dense(16, input_dim=784, activation="relu",
                              kernel_initializer="he_normal"), Dropout(0.2),
                        Dense(10, activation="softmax", use_bias=False)])
    keras_style = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "Dense", "config": {
            "name": "d", "trainable": True, "dtype": "float32", "batch_input_shape": [None, 3],
            "units": 4, "activation": "relu", "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None}},
        {"class_name": "Dropout", "config": {"rate": 0.5, "noise_shape": None, "seed": None}}]},
        "keras_version": "2.4.0", "backend": "tensorflow"}
    keras1 = {"class_name": "Sequential", "config": [
        {"class_name": "Dense", "config": {"units": 3, "input_shape": [5]}},
        {"class_name": "Activation", "config": {"activation": "linear"}}]}
    deferred = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"units": 8}}, {"class_name": "Dense",
                                                         "config": {"units": 1}}]}}
    return {"xor": xor.to_json().encode(), "mnist": mnist.to_json().encode(),
            "keras_style": json.dumps(keras_style).encode(), "keras1": json.dumps(keras1).encode(),
            "deferred": json.dumps(deferred).encode(), "not_json": b"{\"class_name\": "}


def main() -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        groups = {"load": load_seeds(Path(tmp)), "idx": idx_seeds(),
                  "model_json": model_json_seeds()}
    for target, seeds in groups.items():
        d = HERE / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        for name, data in seeds.items():
            (d / name).write_bytes(data)
        print(f"{target}: {len(seeds)} files, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()
