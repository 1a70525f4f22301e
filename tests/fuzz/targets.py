"""Fuzz targets for the three readers of untrusted files: ``autograd.load``, the IDX reader
(``read_idx`` / ``load_mnist``) and ``keras.model_from_json``.

Each target takes the fuzzer's bytes and returns normally when the input is either read or
refused with the documented error naming the file (or the place in the JSON); any other
exception is a bug. They are plain functions: ``fuzz.py`` runs them under atheris, and
``tests/test_fuzz_corpus.py`` runs every corpus file through them with time and memory bounds.
"""
from __future__ import annotations

import atexit
import json
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import autograd
from autograd.datasets import IMAGES_MAGIC, LABELS_MAGIC, CorruptDatasetError, load_mnist, read_idx
from autograd.keras import ModelConfigError, model_from_json
from autograd.keras.config import DEFAULT_MAX_PARAMS
from autograd.serialization import CorruptFileError

_scratch: Path | None = None


def _dir() -> Path:
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="autograd-fuzz-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def resealed(data: bytes) -> bytes | None:
    """``data`` with its autograd checksum recomputed, as a forger would (None when there is
    none to recompute): the checks behind the checksum must hold on their own, and without
    this nearly every mutation of our own files would stop at the checksum."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        meta = header["__metadata__"]
        if "autograd.checksum" not in meta:
            return None
        body = data[8 + n:]
        meta["autograd.checksum"] = autograd.serialization._digest(meta, [
            (k, v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"])
        raw = json.dumps(header).encode()
    except Exception:  # noqa: BLE001 - harness code: anything unparsable is not resealed
        return None
    return struct.pack("<Q", len(raw)) + raw + body


def target_load(data: bytes) -> None:
    """``autograd.load`` and ``load_metadata`` of a file holding ``data``, and of the same file
    with its checksum recomputed."""
    path = _dir() / "input.safetensors"
    for content in (data, resealed(data)):
        if content is None:
            continue
        path.write_bytes(content)
        for read in (autograd.load, autograd.serialization.load_metadata):
            try:
                read(path)
            except CorruptFileError as exc:
                if not str(exc).startswith(f"{path}: "):
                    raise AssertionError(f"the refusal does not name the file: {exc}") \
                        from exc


# The IDX input's first byte picks the reader: 0 an images file, 1 a labels file, 2 the MNIST
# loader, whose two files follow as a 2-byte big-endian length, the labels file, the images file.
def idx_input(mode: int, first: bytes, second: bytes = b"") -> bytes:
    """Build an input for :func:`target_idx` (used to make the seed corpus)."""
    if mode < 2:
        return bytes([mode]) + first
    return bytes([2]) + struct.pack(">H", len(first)) + first + second


def target_idx(data: bytes) -> None:
    """``read_idx`` of one file, or ``load_mnist`` of a directory of two (gzip by content)."""
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    d = _dir() / "mnist"
    d.mkdir(exist_ok=True)
    if mode < 2:
        path = d / "input-idx"
        path.write_bytes(rest)
        files, call = [path], lambda: read_idx(path, (IMAGES_MAGIC, LABELS_MAGIC)[mode])
    else:
        n = struct.unpack(">H", rest[:2])[0] if len(rest) >= 2 else 0
        labels, images = rest[2:2 + n], rest[2 + n:]
        files = [d / "train-labels-idx1-ubyte", d / "train-images-idx3-ubyte"]
        files[0].write_bytes(labels)
        files[1].write_bytes(images)
        call = lambda: load_mnist(d)  # noqa: E731
    try:
        call()
    except CorruptDatasetError as exc:
        if not any(str(f) in str(exc) for f in files):
            raise AssertionError(f"the refusal does not name the file: {exc}") from exc


def target_model_json(data: bytes) -> None:
    """``model_from_json`` of ``data`` decoded as UTF-8 (undecodable bytes replaced)."""
    try:
        model = model_from_json(data.decode("utf-8", "replace"))
    except ModelConfigError as exc:
        if not exc.path.startswith("$"):
            raise AssertionError(f"the refusal does not name a JSON path: {exc}") from exc
        return
    if model.built and model.count_params() > DEFAULT_MAX_PARAMS:
        raise AssertionError(f"built {model.count_params()} weights, over the cap")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "load": target_load, "idx": target_idx, "model_json": target_model_json}
