"""Datasets: MNIST from its IDX files (checked, never trusted), and small synthetic sets for demos.

Everything returns NumPy arrays, ready for :class:`autograd.data.TensorDataset`.
"""
from __future__ import annotations

import gzip
import math
import os
import stat
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


# A deflate stream expands at most 1032-fold; with the gzip framing, 1100 is a safe bound on
# what a compressed file of a given size can hold (used to refuse impossible headers early).
_MAX_GZIP_RATIO = 1100
_MAX_IDX_BYTES = 1 << 30  # default cap on one file's payload; raise it with max_bytes=
_CHUNK = 1 << 20


def _open(path: Path) -> tuple[Any, Any, int, bool]:
    """(file, stream to read, file size, gzipped?) for a regular file; gzip by name or by
    content."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):  # /dev/zero, a FIFO: nothing bounds what they yield
        os.close(fd)
        raise CorruptDatasetError(f"{path}: not a regular file; IDX files are read only from "
                                  f"regular files")
    f = os.fdopen(fd, "rb")
    try:
        gz = path.suffix == ".gz" or f.read(2) == b"\x1f\x8b"
        f.seek(0)
        return f, (gzip.GzipFile(fileobj=f, mode="rb") if gz else f), st.st_size, gz
    except BaseException:
        f.close()
        raise


def _read_exactly(f: Any, out: memoryview) -> int:
    """Fill ``out`` from ``f`` (stopping early at end of stream); return the bytes read."""
    got = 0
    while got < len(out):
        n = f.readinto(out[got:got + _CHUNK])
        if not n:
            break
        got += n
    return got


class _IdxReader:
    """One IDX file read in two steps: the header (cheap, so callers can check shapes and counts
    across files first), then the payload, decompressing at most what the header declares plus
    one byte, so an over-long stream (a gzip bomb) costs no more memory than an honest one."""

    def __init__(self, path: Path, magic: int, max_bytes: int) -> None:
        self.path = path
        self._file, self._f, size, self.gz = _open(path)
        try:
            self._read_header(magic, size, self.gz, max_bytes)
        except BaseException:
            self.close()
            raise

    def _fail(self, what: str) -> CorruptDatasetError:
        return CorruptDatasetError(f"{self.path}: {what}")

    def _read(self, n: int) -> bytes:
        buf = bytearray(n)
        return bytes(buf[:self._guarded(lambda: _read_exactly(self._f, memoryview(buf)))])

    def _guarded(self, read: Any) -> Any:
        try:
            return read()
        except EOFError:
            raise self._fail("the gzip stream is truncated") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            if not self.gz:
                raise self._fail(f"read error ({exc})") from None
            raise self._fail(f"corrupt gzip stream ({exc})") from None

    def _read_header(self, magic: int, size: int, gz: bool, max_bytes: int) -> None:
        head = self._read(4)
        if len(head) < 4:
            raise self._fail(f"{len(head)} bytes is too short for an IDX header")
        (found,) = struct.unpack(">I", head)
        if found != magic:
            raise self._fail(f"bad magic number {found} (expected {magic}); not an IDX file "
                             f"of the expected kind")
        ndim = magic & 0xFF
        raw = self._read(4 * ndim)
        if len(raw) < 4 * ndim:
            raise self._fail(f"truncated header: {4 + len(raw)} bytes, the header alone needs "
                             f"{4 + 4 * ndim}")
        self.shape = struct.unpack(f">{ndim}I", raw)
        self.header = 4 + 4 * ndim
        self.payload = math.prod(self.shape)
        expected = self.header + self.payload
        if not gz and size != expected:
            # Known before reading a byte of the payload: an uncompressed file must be exact.
            problem = "truncated" if size < expected else "has trailing bytes"
            raise self._fail(f"{problem}: the header declares shape {self.shape}, so "
                             f"{expected} bytes, but the file holds {size}")
        if gz and expected > _MAX_GZIP_RATIO * size + 1024:
            raise self._fail(f"truncated: the header declares shape {self.shape}, so "
                             f"{expected} bytes, more than a {size}-byte gzip file can hold")
        if self.payload > max_bytes:
            raise self._fail(f"the header declares shape {self.shape}, {self.payload} bytes, "
                             f"over the max_bytes={max_bytes} limit (raise it to read this "
                             f"file)")

    def read(self) -> np.ndarray:
        """The payload as a uint8 array of the declared shape (refusing any size mismatch)."""
        try:
            out = np.empty(self.payload, dtype=np.uint8)
            got = self._guarded(lambda: _read_exactly(self._f, memoryview(out)))
            if got < self.payload:
                raise self._fail(f"truncated: the header declares shape {self.shape}, so "
                                 f"{self.header + self.payload} bytes, but the "
                                 f"{'decompressed ' if self.gz else ''}"
                                 f"stream holds {self.header + got}")
            if self._guarded(lambda: self._f.read(1)):
                raise self._fail(f"has trailing bytes: the header declares shape {self.shape}, "
                                 f"so {self.header + self.payload} bytes, but the stream "
                                 f"holds more")
            return out.reshape(self.shape)
        finally:
            self.close()

    def __enter__(self) -> _IdxReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file (and the gzip decompressor over it); safe to call twice."""
        self._f.close()  # a GzipFile does not close the file it was given
        self._file.close()


def read_idx(path: str | os.PathLike, magic: int, *, max_bytes: int = _MAX_IDX_BYTES
             ) -> np.ndarray:
    """Read an unsigned-byte IDX file (raw or gzipped) whose magic number must be ``magic``.

    The header is the magic number then one 32-bit big-endian size per dimension; the payload
    must hold exactly the product of the sizes in bytes. The header is read first: at most the
    declared payload plus one byte is ever decompressed (a longer or shorter stream is refused),
    and a payload over ``max_bytes`` (default 1 GiB) is refused before any is read.
    """
    return _IdxReader(Path(path), magic, max_bytes).read()


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"load_mnist: neither {stem} nor {stem}.gz found in {directory}")


def load_mnist(directory: str | os.PathLike, kind: str = "train", normalize: bool = True,
               flatten: bool = True, dtype: Any = np.float32, *,
               max_bytes: int = _MAX_IDX_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels from the standard IDX files in ``directory`` (gzipped or not).

    Returns ``(images, labels)``: images of ``dtype`` with shape (n, 784) when ``flatten``
    else (n, 28, 28), scaled to [0, 1] when ``normalize`` (else 0..255); labels int64 in 0..9.
    Both headers are read and checked first (28x28 images, at least one, as many labels as
    images); then at most the declared bytes plus one are decompressed from each file, so a
    stream longer than its header says (a gzip bomb) is refused after using no more memory than
    the real data set. Raises :class:`CorruptDatasetError` (a ValueError) naming the file for a
    bad magic number, a truncated or over-long stream, a corrupt gzip stream, images that are
    not 28x28, zero images, counts that disagree, bad labels, a file that is not a regular file,
    or a payload over ``max_bytes`` (default 1 GiB; raise it for larger IDX sets).
    """
    if kind not in _MNIST_FILES:
        raise ValueError(f"load_mnist: kind must be 'train' or 'test', got {kind!r}")
    directory = Path(directory)
    image_path, label_path = (_find(directory, stem) for stem in _MNIST_FILES[kind])
    # Both headers first: shapes and counts are checked before a byte of pixels is inflated.
    with _IdxReader(image_path, IMAGES_MAGIC, max_bytes) as images, \
            _IdxReader(label_path, LABELS_MAGIC, max_bytes) as labels:
        n, rows, cols = images.shape
        if (rows, cols) != (28, 28):
            raise CorruptDatasetError(f"{image_path}: images are {rows}x{cols}; MNIST images "
                                      f"are 28x28 (use read_idx for other IDX files)")
        if n == 0:
            raise CorruptDatasetError(f"{image_path}: the header declares zero images")
        if n != labels.shape[0]:
            raise CorruptDatasetError(f"{image_path} holds {n} images but {label_path} "
                                      f"holds {labels.shape[0]} labels")
        y = labels.read()
        if y.max() > 9:
            raise CorruptDatasetError(f"{label_path}: label {int(y.max())} is not a digit")
        x_raw = images.read()
    dtype = np.dtype(dtype)
    x = x_raw.astype(dtype)
    del x_raw
    if normalize:
        x /= 255
    if flatten:
        x = x.reshape(len(x), -1)
    return x, y.astype(np.int64)


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
