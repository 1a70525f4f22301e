"""ag.load is bounded and says why it refuses: devices and pipes, huge headers, pickles, half
precision, checksums, and the temporary files of killed saves."""
from __future__ import annotations

import gzip
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as st
from resource_limits import run_bounded

import autograd
from autograd import nn
from autograd import serialization as ser
from autograd.serialization import CorruptFileError, load, load_metadata, save


def _craft(header: dict, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _module() -> nn.Module:
    autograd.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


# ------------------------------------------------------------------ what is read at all
def test_dev_zero_refused_up_front():
    """/dev/zero never ends; it used to be read until MemoryError (here: a capped subprocess,
    so the old behaviour fails fast instead of exhausting the machine)."""
    out = run_bounded("import autograd", "autograd.load(_arg)", ["/dev/zero"],
                      limit_mb=1024)["results"][0]
    assert out["outcome"] == ("CorruptFileError: /dev/zero: not a regular file (only regular "
                              "files are read, never a device, a pipe or a directory)"), out
    assert out["peak_growth_mb"] < 5, out


def test_fifo_and_directory_refused_without_waiting(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = []
    worker = threading.Thread(target=lambda: done.append(_refusal(fifo)), daemon=True)
    worker.start()
    worker.join(5)
    if not done:  # unblock the reader stuck in open() before failing
        with open(fifo, "wb"):
            pass
        worker.join(5)
        pytest.fail("load waited for a writer on a FIFO")
    assert "pipe: not a regular file" in done[0]
    assert "not a regular file" in _refusal(tmp_path)
    with pytest.raises(CorruptFileError, match="pipe: not a regular file"):
        load_metadata(fifo)


def _refusal(path: Path) -> str:
    try:
        load(path)
    except CorruptFileError as exc:
        return str(exc)
    return "loaded"


def _pickle_files(d: Path) -> list[Path]:
    """What torch.save writes (a zip holding data.pkl; the legacy format: a bare pickle) and
    what pickle.dump writes, in every protocol a file can start with."""
    z = d / "model.pt"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("archive/data.pkl", pickle.dumps({"weight": [1.0, 2.0]}, protocol=2))
        f.writestr("archive/version", "3\n")
    files = [z]
    for proto in (2, 3, 4, 5):
        p = d / f"legacy{proto}.pth"
        p.write_bytes(pickle.dumps({"weight": list(range(100))}, protocol=proto))
        files.append(p)
    short = d / "short.pkl"
    short.write_bytes(pickle.dumps(1, protocol=2))  # under 8 bytes
    return [*files, short]


def test_pickle_and_torch_zip_files_are_named_as_such(tmp_path):
    for path in _pickle_files(tmp_path):
        with pytest.raises(CorruptFileError) as info:
            load(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and "header length" not in msg
        assert "this is a pickle file, which is never loaded; save it with safetensors" in msg


def test_real_torch_save_files_are_named_as_pickles(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(2, 2)
    torch.save(model.state_dict(), tmp_path / "zip.pt")
    torch.save(model.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("zip.pt", "legacy.pt"):
        with pytest.raises(CorruptFileError, match="this is a pickle file, which is never "
                                                   "loaded; save it with safetensors"):
            load(tmp_path / name)


# ------------------------------------------------------------------ header memory
def _big_header_file(path: Path, kind: str) -> int:
    target = 99_000_000
    if kind == "values":  # ~25 million tiny JSON values: json.loads would need ~1 GB
        filler = "[" + "[]," * (target // 3 - 20) + "[]]"
        meta = {"x": "y"}
        raw = ('{"__metadata__": {"x": "y"}, "junk": ' + filler + "}").encode()
    else:  # one huge string in the metadata: few values, all of it text
        meta = {"notes": "n" * target}
        raw = json.dumps({"__metadata__": meta}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return len(raw)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["values", "text"])
def test_header_near_the_100_mb_limit_costs_bounded_memory(tmp_path, kind):
    path = tmp_path / "big.safetensors"
    n = _big_header_file(path, kind)
    assert 98_000_000 < n < 100_000_000
    out = run_bounded("import autograd", "autograd.load(_arg)", [str(path)],
                      limit_mb=2048)["results"][0]
    if kind == "values":
        assert out["outcome"].startswith(f"CorruptFileError: {path}: header holds about "), out
        assert "JSON values, over the limit of 1000000" in out["outcome"]
        assert out["peak_growth_mb"] < 130, out  # the file itself, ~95 MiB
    else:
        assert out["outcome"] == "ok", out
        assert out["peak_growth_mb"] < 3.3 * n / 2**20, out  # file, decoded text, the string
    assert out["seconds"] < 5, out


def test_many_json_values_refused_before_parsing(tmp_path):
    path = tmp_path / "many.safetensors"
    path.write_bytes(_craft({"__metadata__": {"a": "b"}, "x": [[]] * 1_000_001}))
    with pytest.raises(CorruptFileError, match=r"many.safetensors: header holds about "
                                               r"\d+ JSON values, over the limit"):
        load(path)
    # The stored structure is JSON inside a metadata string: counted with the header.
    tree = json.dumps({"t": "list", "items": [{"t": "value", "v": 0}] * 400_000})
    bad = tmp_path / "tree.safetensors"
    bad.write_bytes(_craft({"__metadata__": {"autograd.version": "1", "autograd.tree": tree}}))
    with pytest.raises(CorruptFileError, match=r"tree.safetensors: header holds about "):
        load(bad)


# ------------------------------------------------------------------ half precision
def _bf16(values: np.ndarray) -> bytes:
    return (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def test_float16_and_bfloat16_load_as_float32(tmp_path):
    half = np.array([[1.5, -2.25], [65504.0, 6.1e-5]], dtype=np.float16)
    exact = np.array([1.0, -3.5, 0.15625, 2.0**-10, np.inf], dtype=np.float32)
    path = tmp_path / "half.safetensors"
    path.write_bytes(_craft({"h": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]},
                             "b": {"dtype": "BF16", "shape": [5], "data_offsets": [8, 18]},
                             "e": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [18, 18]}},
                            half.astype("<f2").tobytes() + _bf16(exact)))
    out = load(path)
    assert {k: v.dtype for k, v in out.items()} == {"h": np.float32, "b": np.float32,
                                                    "e": np.float32}
    np.testing.assert_array_equal(out["h"], half.astype(np.float32))
    np.testing.assert_array_equal(out["b"], exact)  # all exactly representable in bfloat16
    assert out["e"].shape == (0, 3)
    # safetensors' own writer, as a PyTorch user would use it for a float16 state dict
    st_path = tmp_path / "st.safetensors"
    st_path.write_bytes(st.save({"w": half}))
    np.testing.assert_array_equal(load(st_path)["w"], half.astype(np.float32))
    assert "float16" in load.__doc__ and "float32" in load.__doc__


def test_half_precision_module_weights_load_into_the_module(tmp_path):
    model = _module()
    path = tmp_path / "m.safetensors"
    save(model, path)
    header, body = _split(path.read_bytes())
    # As another tool might store it: the same file with the first weight in bfloat16.
    w = model[0].weight.numpy()
    w_bf16 = _bf16(w)
    first = header["0.weight"]["data_offsets"]
    new_body = body[:first[0]] + w_bf16 + body[first[1]:]
    shift = len(w_bf16) - (first[1] - first[0])
    for k, v in header.items():
        if k != "__metadata__" and v["data_offsets"][0] > first[0]:
            v["data_offsets"] = [v["data_offsets"][0] + shift, v["data_offsets"][1] + shift]
    header["0.weight"].update(dtype="BF16", data_offsets=[first[0], first[0] + len(w_bf16)])
    meta = header["__metadata__"]
    meta["autograd.checksum"] = ser._digest(meta, [
        (k, v["dtype"], v["shape"], new_body[v["data_offsets"][0]:v["data_offsets"][1]])
        for k, v in header.items() if k != "__metadata__"])
    path.write_bytes(_craft(header, new_body))
    again = load(path)
    assert isinstance(again, nn.Sequential) and again[0].weight.dtype == np.float32
    np.testing.assert_allclose(again[0].weight.numpy(), w, rtol=2**-7)


# ------------------------------------------------------------------ checksums
def test_checksum_is_stored_and_covers_metadata_and_tensors(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"model": _module(), "epoch": 3}, path, metadata={"note": "hello"})
    meta = _split(path.read_bytes())[0]["__metadata__"]
    assert meta["autograd.version"] == "2" and meta["autograd.checksum"].startswith("sha256:")
    assert len(meta["autograd.checksum"]) == len("sha256:") + 64
    assert load(path)["epoch"] == 3 and load_metadata(path) == {"note": "hello"}


def test_flipped_tree_key_no_longer_loads_as_a_dict(tmp_path):
    """The reported bug: one bit in 'autograd.tree' made load return the bare arrays."""
    path = tmp_path / "m.safetensors"
    save(_module(), path)
    data = bytearray(path.read_bytes())
    at = data.index(b'"autograd.tree"') + 1
    data[at] ^= 0x04  # 'a' -> 'e'
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="m.safetensors: the autograd metadata is "
                                               "damaged: 'autograd.tree' is missing"):
        load(path)


def test_every_single_bit_flip_is_refused(tmp_path):
    """A flip anywhere (header, metadata, tensor bytes) is refused, never loaded as something
    else: one bit per byte, rotating through the bit positions."""
    path = tmp_path / "m.safetensors"
    save({"model": _module(), "note": "kept"}, path, metadata={"user": "x"})
    good = path.read_bytes()
    loaded = []
    for i in range(len(good)):
        data = bytearray(good)
        data[i] ^= 1 << (i % 8)
        path.write_bytes(bytes(data))
        try:
            load(path)
        except CorruptFileError as exc:
            assert str(path) in str(exc)
        else:
            loaded.append(i)
    assert not loaded, f"{len(loaded)} of {len(good)} single-bit flips loaded: {loaded[:10]}"


def test_tensor_bytes_changed_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": np.arange(6.0)}, path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="m.safetensors: checksum mismatch"):
        load(path)


def test_files_from_before_the_checksum_still_load(tmp_path):
    """Format 1 (written before this change): loaded, unverified, as before."""
    path = tmp_path / "old.safetensors"
    model = _module()
    save(model, path)
    header, body = _split(path.read_bytes())
    meta = header["__metadata__"]
    del meta["autograd.checksum"]
    meta["autograd.version"] = "1"
    path.write_bytes(_craft(header, body))
    again = load(path)
    x = autograd.tensor(np.ones((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())
    meta["autograd.checksum"] = "sha256:" + "0" * 64  # a checksum a version 1 file never had
    path.write_bytes(_craft(header, body))
    with pytest.raises(CorruptFileError, match="a version 1 file has no 'autograd.checksum'"):
        load(path)
    del meta["autograd.checksum"]
    meta["autograd.version"] = "2"  # a version 2 file must carry one
    path.write_bytes(_craft(header, body))
    with pytest.raises(CorruptFileError, match="'autograd.checksum' is missing"):
        load(path)


def test_files_of_other_tools_need_no_checksum(tmp_path):
    path = tmp_path / "foreign.safetensors"
    path.write_bytes(st.save({"w": np.ones((2, 2), np.float32)}, metadata={"format": "pt"}))
    np.testing.assert_array_equal(load(path)["w"], np.ones((2, 2)))
    assert load_metadata(path) == {"format": "pt"}


# ------------------------------------------------------------------ killed saves
_KILLED_SAVE = r"""
import sys, time
import numpy as np
from autograd import serialization
real = serialization._write_all
def slow(f, data):
    f.write(data[: len(data) // 2])
    f.flush()
    print("halfway", flush=True)
    time.sleep(60)
    real(f, data)
serialization._write_all = slow
serialization.save({"w": np.zeros(100_000)}, sys.argv[1])
"""


def _start_save(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(path)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    proc.stdout.close()
    assert line == "halfway"
    return proc


def _temps(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp"))


def test_next_save_removes_the_temp_file_of_a_killed_save(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"w": np.ones(3)}, path)
    proc = _start_save(path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_temps(path)) == 1  # the orphan
    np.testing.assert_array_equal(load(path)["w"], np.ones(3))  # the old file is intact
    other = tmp_path / "other.safetensors"
    save({"v": np.zeros(1)}, other)  # a save to another path leaves it alone
    assert len(_temps(path)) == 1
    save({"w": np.full(3, 2.0)}, path)
    assert _temps(path) == []
    np.testing.assert_array_equal(load(path)["w"], np.full(3, 2.0))


def test_a_concurrent_saves_temp_file_is_left_alone(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    proc = _start_save(path)
    try:
        (live,) = _temps(path)
        save({"w": np.ones(3)}, path)
        assert _temps(path) == [live]
    finally:
        proc.kill()
        proc.wait()
    save({"w": np.ones(3)}, path)
    assert _temps(path) == []


def test_gzip_is_not_a_safetensors_file(tmp_path):
    path = tmp_path / "m.safetensors.gz"
    path.write_bytes(gzip.compress(b"x" * 100))
    with pytest.raises(CorruptFileError, match="m.safetensors.gz: header length"):
        load(path)


def test_forged_file_resealed_from_decoded_arrays_loads(tmp_path):
    """A test (or a forger) that rewrites metadata with safetensors' own writer re-seals it with
    _checksum_arrays; without that the checksum refuses the edit."""
    path = tmp_path / "m.safetensors"
    save({"w": np.arange(4.0), "n": 2}, path, metadata={"a": "1"})
    meta, arrays = ser._parse(path.read_bytes(), ValueError)
    meta["a"] = "2"
    path.write_bytes(st.save(arrays, metadata=meta))
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        load(path)
    meta["autograd.checksum"] = ser._checksum_arrays(meta, arrays)
    path.write_bytes(st.save(arrays, metadata=meta))
    assert load_metadata(path) == {"a": "2"} and load(path)["n"] == 2
