"""Datasets: MNIST from its IDX files (checked, never trusted), and small synthetic sets for demos.

Everything returns NumPy arrays, ready for :class:`autograd.data.TensorDataset`.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CorruptDatasetError", "blobs", "load_mnist", "read_idx", "spirals", "xor"]

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)

_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class CorruptDatasetError(ValueError):
    """A dataset file is truncated, corrupt or not what its name says; the message names it."""


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when the name ends in .gz (a bad stream is refused)."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except EOFError:
        raise CorruptDatasetError(f"{path}: the gzip stream is truncated") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise CorruptDatasetError(f"{path}: corrupt gzip stream ({exc})") from None


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Read an unsigned-byte IDX file whose magic number must be ``magic``.

    The header is the magic number then one 32-bit big-endian size per dimension; the payload
    must hold exactly the product of the sizes in bytes.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise CorruptDatasetError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise CorruptDatasetError(f"{path}: bad magic number {found} (expected {magic}); "
                                  f"not an IDX file of the expected kind")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDatasetError(f"{path}: truncated header: {len(raw)} bytes, the header "
                                  f"alone needs {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=object))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise CorruptDatasetError(f"{path}: {problem}: the header declares shape {dims}, "
                                  f"so {expected} bytes, but the file holds {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"load_mnist: neither {stem} nor {stem}.gz found in {directory}")


def load_mnist(directory: str | os.PathLike, kind: str = "train", normalize: bool = True,
               flatten: bool = True, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels from the standard IDX files in ``directory`` (gzipped or not).

    Returns ``(images, labels)``: images of ``dtype`` with shape (n, 784) when ``flatten``
    else (n, 28, 28), scaled to [0, 1] when ``normalize`` (else 0..255); labels int64 in 0..9.
    Raises :class:`CorruptDatasetError` (a ValueError) naming the file for a bad magic number,
    a truncated or oversized file, a corrupt gzip stream, counts that disagree or bad labels.
    """
    if kind not in _MNIST_FILES:
        raise ValueError(f"load_mnist: kind must be 'train' or 'test', got {kind!r}")
    directory = Path(directory)
    image_path, label_path = (_find(directory, stem) for stem in _MNIST_FILES[kind])
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise CorruptDatasetError(f"{image_path} holds {images.shape[0]} images but "
                                  f"{label_path} holds {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise CorruptDatasetError(f"{label_path}: label {int(labels.max())} is not a digit")
    dtype = np.dtype(dtype)
    x = images.astype(dtype)
    if normalize:
        x /= 255
    if flatten:
        x = x.reshape(len(x), -1)
    return x, labels.astype(np.int64)


# -------------------------------------------------------------------------- synthetic sets
def spirals(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2,
            seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals (the CS231n toy set): not linearly separable.

    Returns ``(x, y)``: x float32 (n_per_class * n_classes, 2) in roughly [-1, 1], y int64.
    """
    if n_per_class < 1 or n_classes < 1:
        raise ValueError("spirals: need at least one class and one point per class")
    rng = np.random.default_rng(seed)
    radius = np.linspace(0.0, 1.0, n_per_class)
    xs, ys = [], []
    for c in range(n_classes):
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class)
        theta = theta + noise * rng.standard_normal(n_per_class)
        xs.append(np.c_[radius * np.sin(theta), radius * np.cos(theta)])
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def blobs(n_per_class: int = 100, n_classes: int = 3, spread: float = 0.5,
          seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around centres evenly placed on the unit circle scaled by 3.

    Returns ``(x, y)``: x float32 (n_per_class * n_classes, 2), y int64.
    """
    if n_per_class < 1 or n_classes < 1:
        raise ValueError("blobs: need at least one class and one point per class")
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    centres = 3.0 * np.c_[np.cos(angles), np.sin(angles)]
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = centres[y] + spread * rng.standard_normal((len(y), 2))
    return x.astype(np.float32), y.astype(np.int64)


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: x float32 (4, 2), y float32 (4, 1) (the Keras tutorial's shape)."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return x, y
