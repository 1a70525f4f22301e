"""MNIST IDX reading (real files when present, small self-made ones for corruption) and toy sets."""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from resource_limits import run_bounded

from autograd.data import DataLoader, TensorDataset
from autograd.datasets import CorruptDatasetError, blobs, load_mnist, read_idx, spirals, xor


def _mnist_dir() -> Path:
    """MNIST lives in shared/ beside the repository (and in CI's clone); an env var overrides."""
    if os.environ.get("AUTOGRAD_MNIST_DIR"):
        return Path(os.environ["AUTOGRAD_MNIST_DIR"])
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


MNIST_DIR = _mnist_dir()
REAL = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                          reason=f"MNIST files not found in {MNIST_DIR}")


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


def _write_mnist(d: Path, n=5, rows=28, cols=28, gz=False, kind="train", labels=None,
                 n_labels=None):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels
    n_labels = n if n_labels is None else n_labels
    prefix = "train" if kind == "train" else "t10k"
    files = {f"{prefix}-images-idx3-ubyte": _idx(2051, (n, rows, cols), pixels.tobytes()),
             f"{prefix}-labels-idx1-ubyte": _idx(2049, (n_labels,),
                                                 bytes(labels[:n_labels].tolist()))}
    for name, data in files.items():
        if gz:
            (d / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (d / name).write_bytes(data)
    return pixels, labels


@pytest.mark.parametrize("gz", [False, True])
def test_small_files_read_back(tmp_path, gz):
    pixels, labels = _write_mnist(tmp_path, gz=gz)
    x, y = load_mnist(tmp_path)
    assert x.dtype == np.float32 and x.shape == (5, 784) and y.dtype == np.int64
    np.testing.assert_allclose(x, pixels.reshape(5, 784) / 255, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    raw, _ = load_mnist(tmp_path, normalize=False, flatten=False, dtype=np.float64)
    assert raw.shape == (5, 28, 28) and raw.dtype == np.float64
    np.testing.assert_array_equal(raw, pixels)


def test_kind_selects_test_files(tmp_path):
    _write_mnist(tmp_path, kind="test", n=2)
    assert load_mnist(tmp_path, kind="test")[0].shape == (2, 784)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, kind="train")
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="validation")


def _corrupt(path: Path, data: bytes):
    path.write_bytes(data)


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b[:-3], r"images-idx3-ubyte: truncated.*\(5, 28, 28\)"),
    (lambda b: b + b"\0", "trailing bytes"),
    (lambda b: b[:9], "truncated header"),
    (lambda b: b[:2], "too short"),
    (lambda b: struct.pack(">I", 2049) + b[4:], "bad magic number 2049 .expected 2051"),
    (lambda b: b"PK\x03\x04" + b[4:], "bad magic number"),
])
def test_corrupt_image_file_refused(tmp_path, mutate, match):
    _write_mnist(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte"
    _corrupt(f, mutate(f.read_bytes()))
    with pytest.raises(CorruptDatasetError, match=match):
        load_mnist(tmp_path)


def test_count_mismatch_and_bad_label(tmp_path):
    _write_mnist(tmp_path, n_labels=4)
    with pytest.raises(CorruptDatasetError, match="5 images but .*4 labels"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path, labels=np.array([0, 1, 2, 3, 200], dtype=np.uint8))
    with pytest.raises(CorruptDatasetError, match="labels-idx1-ubyte: label 200"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b[: len(b) // 2], "gzip stream is truncated"),
    (lambda b: b[:10] + bytes(x ^ 0xFF for x in b[10:20]) + b[20:], "corrupt gzip"),
    (lambda b: b[:-8] + b"\0\0\0\0" + b[-4:], "corrupt gzip"),  # CRC damaged
    (lambda b: b"\x1f\x8cXX" + b[4:], "corrupt gzip"),
])
def test_corrupt_gzip_refused(tmp_path, mutate, match):
    _write_mnist(tmp_path, gz=True, n=40)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(mutate(f.read_bytes()))
    with pytest.raises(CorruptDatasetError, match=match) as info:
        load_mnist(tmp_path)
    assert str(f) in str(info.value)
    assert isinstance(info.value, ValueError)


@REAL
def test_real_mnist_test_split():
    x, y = load_mnist(MNIST_DIR, kind="test")
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    loader = DataLoader(TensorDataset(x, y), batch_size=128)
    xb, yb = next(iter(loader))
    assert xb.shape == (128, 784) and yb.dtype == np.int64


@REAL
def test_real_mnist_train_split():
    x, y = load_mnist(MNIST_DIR, kind="train", flatten=False)
    assert x.shape == (60000, 28, 28) and len(y) == 60000
    assert y[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels


def test_spirals_and_blobs():
    x, y = spirals(50, 3, noise=0.1, seed=0)
    assert x.shape == (150, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50, 50, 50] and np.abs(x).max() <= 1.5
    np.testing.assert_array_equal(spirals(50, 3, seed=0)[0], spirals(50, 3, seed=0)[0])
    xb, yb = blobs(20, 4, seed=1)
    assert xb.shape == (80, 2) and np.bincount(yb).tolist() == [20] * 4
    with pytest.raises(ValueError):
        spirals(0)


def test_xor():
    x, y = xor()
    assert x.shape == (4, 2) and y.shape == (4, 1)
    assert (np.logical_xor(x[:, 0], x[:, 1]).astype(np.float32)[:, None] == y).all()


# ------------------------------------------------------------------- bounded reading
def _gz_member(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9)


def test_gzip_bomb_refused_fast_with_little_memory(tmp_path):
    """A valid header then a stream that expands to 1 GB (a 1 MB file): only the declared bytes
    plus one are ever inflated."""
    n = 1000
    _write_mnist(tmp_path, n=n, gz=True)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes() + _gz_member(bytes(10 << 20)) * 100)
    assert f.stat().st_size < 2 << 20
    out = run_bounded("from autograd.datasets import load_mnist", "load_mnist(_arg)",
                      [str(tmp_path)])["results"][0]
    assert out["outcome"].startswith("CorruptDatasetError")
    assert "train-images-idx3-ubyte.gz: has trailing bytes" in out["outcome"]
    assert "(1000, 28, 28)" in out["outcome"]
    assert out["peak_growth_mb"] < 50 and out["seconds"] < 5, out


@pytest.mark.parametrize("gz", [False, True])
def test_stream_longer_or_shorter_than_declared_refused(tmp_path, gz):
    _write_mnist(tmp_path, n=3)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    for data, match in [(raw + b"\x07", "has trailing bytes"), (raw[:-1], "truncated")]:
        for p in tmp_path.glob("train-images*"):
            p.unlink()
        (tmp_path / name).write_bytes(gzip.compress(data) if gz else data)
        with pytest.raises(CorruptDatasetError, match=f"{name}: {match}.*\\(3, 28, 28\\)"):
            load_mnist(tmp_path)


def test_header_larger_than_a_gzip_file_can_hold_refused_before_inflating(tmp_path):
    _write_mnist(tmp_path, n=2, gz=True)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(struct.pack(">IIII", 2051, 4_000_000, 28, 28)))
    with pytest.raises(CorruptDatasetError, match=r"images-idx3-ubyte.gz: truncated.*more "
                                                  r"than a \d+-byte gzip file can hold"):
        load_mnist(tmp_path)


def test_max_bytes_caps_a_file_and_can_be_raised(tmp_path):
    _write_mnist(tmp_path, n=5)
    with pytest.raises(CorruptDatasetError, match=r"images-idx3-ubyte: .*3920 bytes, over the "
                                                  r"max_bytes=1000 limit"):
        load_mnist(tmp_path, max_bytes=1000)
    assert load_mnist(tmp_path, max_bytes=3920)[0].shape == (5, 784)


def test_images_must_be_28x28(tmp_path):
    _write_mnist(tmp_path, n=2, rows=28, cols=27)
    with pytest.raises(CorruptDatasetError, match="images-idx3-ubyte: images are 28x27; MNIST "
                                                  "images are 28x28"):
        load_mnist(tmp_path)


def test_zero_images_refused(tmp_path):
    _write_mnist(tmp_path, n=0)
    with pytest.raises(CorruptDatasetError, match="images-idx3-ubyte: the header declares zero "
                                                  "images"):
        load_mnist(tmp_path)


def test_count_mismatch_found_from_the_headers_alone(tmp_path):
    """The labels file is checked against the images header before any pixel is read: a label
    count that disagrees is refused even when the images' payload is damaged."""
    _write_mnist(tmp_path, n=4, n_labels=3, gz=True)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    good = f.read_bytes()
    f.write_bytes(good[:40] + bytes(x ^ 0xFF for x in good[40:]))
    with pytest.raises(CorruptDatasetError, match="holds 4 images but .*labels-idx1-ubyte.gz "
                                                  "holds 3 labels"):
        load_mnist(tmp_path)


def test_not_a_regular_file_refused():
    """/dev/zero never ends: it is refused up front (in a subprocess with capped memory, so a
    reader that tries to read it all fails fast instead of exhausting the machine)."""
    out = run_bounded("from autograd.datasets import read_idx", "read_idx(_arg, 2051)",
                      ["/dev/zero"], limit_mb=1024)["results"][0]
    assert out["outcome"].startswith("CorruptDatasetError: /dev/zero: not a regular file"), out


def test_fifo_and_directory_refused_without_waiting(tmp_path):
    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    out = run_bounded("from autograd.datasets import read_idx", "read_idx(_arg, 2051)",
                      [str(fifo), str(tmp_path)], timeout=60)["results"]
    assert out[0]["outcome"].startswith(f"CorruptDatasetError: {fifo}: not a regular file")
    assert out[1]["outcome"].startswith(f"CorruptDatasetError: {tmp_path}: not a regular file")


def test_gzip_recognised_by_content_and_read_idx_keeps_other_shapes(tmp_path):
    data = struct.pack(">IIII", 2051, 2, 3, 4) + bytes(range(24))
    (tmp_path / "small").write_bytes(gzip.compress(data))  # no .gz in the name
    np.testing.assert_array_equal(read_idx(tmp_path / "small", 2051),
                                  np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
