"""save/load: round trips, atomic writes, and refusal of corrupt, truncated or hostile files."""
from __future__ import annotations

import json
import math
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as st
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

import autograd
from autograd import nn
from autograd import serialization as ser
from autograd.serialization import CorruptFileError, load, load_metadata, save


def _model():
    autograd.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Residual(nn.Sequential(
        nn.Linear(5, 5), nn.Tanh())), nn.BatchNorm1d(5), nn.LeakyReLU(0.2), nn.Dropout(0.25),
        nn.GELU(), nn.Flatten(), nn.Identity(), nn.Linear(5, 2, bias=False), nn.Sigmoid(),
        nn.Softmax(dim=1), nn.LogSoftmax())


def _same_outputs(a, b, x):
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


# ------------------------------------------------------------------------------ round trips
def test_module_round_trip_rebuilds_architecture(tmp_path):
    m = _model()
    m.train()
    m(autograd.randn(8, 3))  # move BatchNorm's running statistics away from their defaults
    save(m, tmp_path / "m.safetensors")
    m2 = load(tmp_path / "m.safetensors")
    assert repr(m2) == repr(m)
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    _same_outputs(m, m2, autograd.randn(4, 3))


def test_file_is_standard_safetensors(tmp_path):
    m = _model()
    save(m, tmp_path / "m.safetensors", metadata={"author": "me"})
    arrays = st.load_file(str(tmp_path / "m.safetensors"))
    assert set(arrays) == set(m.state_dict())
    np.testing.assert_array_equal(arrays["0.weight"], m.state_dict()["0.weight"])
    assert load_metadata(tmp_path / "m.safetensors") == {"author": "me"}
    with pytest.raises(ValueError, match="reserved"):
        save(m, tmp_path / "x", metadata={"autograd.tree": "{}"})


def test_float64_model_keeps_its_precision(tmp_path):
    m = nn.Sequential(nn.Linear(2, 3), nn.Tanh()).double()
    save(m, tmp_path / "m")
    m2 = load(tmp_path / "m")
    assert m2[0].weight.dtype == np.float64
    _same_outputs(m, m2, autograd.randn(3, 2, dtype=np.float64))


def test_linear_init_name_survives(tmp_path):
    save(nn.Linear(2, 2, init="he"), tmp_path / "m")
    assert load(tmp_path / "m").init == "he"


def test_state_dict_round_trip(tmp_path):
    sd = _model().state_dict()
    save(sd, tmp_path / "sd")
    back = load(tmp_path / "sd")
    assert list(back) == list(sd)
    for k in sd:
        assert isinstance(back[k], np.ndarray) and back[k].dtype == sd[k].dtype
        np.testing.assert_array_equal(back[k], sd[k])


def test_checkpoint_structure_round_trip(tmp_path):
    t = autograd.tensor([1.0, 2.0], requires_grad=True)
    obj = {"epoch": 3, "lr": 0.1, "best": float("inf"), "name": "run", "none": None,
           "flag": True, 7: "int key", "betas": (0.9, 0.999), "steps": [1, 2, [3]],
           "np_scalar": np.float32(1.5), "count": np.int64(4), "t": t,
           "ints": autograd.tensor([1, 2]), "arr": np.arange(6.0).reshape(2, 3),
           "empty": np.zeros((0, 3)), "nested": {"a.b": np.ones(2), "a": {"b": np.zeros(2)}}}
    save(obj, tmp_path / "c")
    back = load(tmp_path / "c")
    assert list(back) == list(obj)
    assert back["epoch"] == 3 and back["lr"] == 0.1 and back["best"] == math.inf
    assert back[7] == "int key" and back["betas"] == (0.9, 0.999) and back["none"] is None
    assert back["steps"] == [1, 2, [3]] and back["flag"] is True
    assert type(back["np_scalar"]) is np.float32 and back["np_scalar"] == 1.5
    assert type(back["count"]) is np.int64
    assert isinstance(back["t"], autograd.Tensor) and back["t"].requires_grad
    assert back["ints"].dtype == np.int64 and not back["ints"].requires_grad
    np.testing.assert_array_equal(back["arr"], obj["arr"])
    assert back["empty"].shape == (0, 3)
    # "a.b" and the nested a -> b map to the same dotted path; both survive.
    np.testing.assert_array_equal(back["nested"]["a.b"], np.ones(2))
    np.testing.assert_array_equal(back["nested"]["a"]["b"], np.zeros(2))


def test_foreign_safetensors_file_loads_as_arrays(tmp_path):
    st.save_file({"w": np.ones((2, 2), np.float32), "n": np.arange(3)}, str(tmp_path / "f"))
    back = load(tmp_path / "f")
    assert set(back) == {"w", "n"} and back["n"].tolist() == [0, 1, 2]


def test_unsupported_things_refused_at_save(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return x

    class MyLinear(nn.Linear):
        pass

    for bad in (Custom(), nn.Sequential(nn.Linear(2, 2), Custom()), MyLinear(2, 2)):
        with pytest.raises(ValueError, match="custom module class, .* decorate the class with "
                                             "@autograd.serializable .* model.state_dict"):
            save(bad, tmp_path / "x")
    lin = nn.Linear(2, 2)  # weight tying: the file could only describe two separate layers
    with pytest.raises(ValueError, match="Linear appears twice .* save model.state_dict"):
        save(nn.Sequential(lin, nn.ReLU(), lin), tmp_path / "x")
    act = nn.Tanh()  # a shared layer without weights is the same computation twice: fine
    save(nn.Sequential(nn.Linear(2, 2), act, nn.Linear(2, 2), act), tmp_path / "ok")
    assert [type(m).__name__ for m in load(tmp_path / "ok")] == ["Linear", "Tanh"] * 2
    with pytest.raises(TypeError, match="cannot store a set"):
        save({"s": {1, 2}}, tmp_path / "x")
    with pytest.raises(TypeError, match="unsupported dtype float16"):
        save({"h": np.zeros(2, np.float16)}, tmp_path / "x")
    with pytest.raises(TypeError, match="dict keys"):
        save({(1, 2): 3}, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_no_code_execution_primitives_in_loader():
    source = Path(ser.__file__).read_text()
    for word in ("import pickle", "eval(", "exec(", "importlib", "__import__", "getattr(nn"):
        assert word not in source


# ------------------------------------------------------------------------------ atomic writes
def test_interrupted_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save({"w": np.zeros(10)}, path)
    before = path.read_bytes()

    def half_then_fail(f, data):
        f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(ser, "_write_all", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save({"w": np.ones(100_000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_keyboard_interrupt_during_fsync_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m"

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(ser.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        save({"w": np.zeros(3)}, path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_file_gets_the_mode_a_plain_write_gives(tmp_path):
    # A new file: 0666 minus the umask (not a temp file's private 0600); a replaced file
    # keeps its mode (a checkpoint the user made private stays private).
    path = tmp_path / "m"
    umask = os.umask(0o027)
    try:
        save({"a": np.zeros(2)}, path)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path.chmod(0o604)
    save({"a": np.ones(2)}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "m"
    save({"a": np.zeros(3)}, path)
    save({"b": np.ones(2)}, path)
    assert list(load(path)) == ["b"]


# ------------------------------------------------------------------------------ refusal
def _craft(header: dict, body: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + body


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _reseal(header: dict, body: bytes) -> None:
    """Recompute the checksum after an edit, as a deliberate forger would: the checks behind
    the checksum must hold on their own."""
    meta = header.get("__metadata__", {})
    if "autograd.checksum" in meta:
        meta["autograd.checksum"] = ser._digest(meta, [
            (k, v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"])


def _edit(path: Path, fn) -> None:
    header, body = _split(path.read_bytes())
    fn(header)
    _reseal(header, body)
    path.write_bytes(_craft(header, body))


def _edit_arch(path: Path, fn) -> None:
    def go(header):
        tree = json.loads(header["__metadata__"]["autograd.tree"])
        fn(tree)
        header["__metadata__"]["autograd.tree"] = json.dumps(tree)
    _edit(path, go)


W = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
RAW_CASES = [
    (b"\x01\x02", "too short for the 8-byte header length"),
    (struct.pack("<Q", 10**12) + b"{}", "exceeds the 100000000-byte limit"),
    (struct.pack("<Q", 50) + b"{}", "header length 50 runs past the end"),
    (struct.pack("<Q", 4) + b"{abc", "header is not valid JSON"),
    (struct.pack("<Q", 2) + b"\xff\xfe", "header is not valid JSON"),
    (_craft([1, 2]), "not a JSON object"),  # type: ignore[arg-type]
    (_craft({"w": W}, b"\0" * 4), r"out of range for a 4-byte data section"),
    (_craft({"w": W}, b"\0" * 12), "4 trailing bytes"),
    (_craft({"w": W, "v": {**W, "data_offsets": [4, 12]}}, b"\0" * 12), "overlap"),
    (_craft({"w": {**W, "data_offsets": [4, 12]}}, b"\0" * 12), "gap"),
    (_craft({"w": {**W, "data_offsets": [0, 12]}}, b"\0" * 12),
     "12 bytes of data, but dtype F32 and shape \\[2\\] need 8"),
    (_craft({"w": {**W, "dtype": "F8_E4M3"}}, b"\0" * 8),
     "unknown or unsupported dtype 'F8_E4M3'"),
    (_craft({"w": {**W, "dtype": "PICKLE"}}, b"\0" * 8), "unknown or unsupported dtype"),
    (_craft({"w": {**W, "shape": [-2]}}, b"\0" * 8), "bad shape"),
    (_craft({"w": {**W, "shape": [2.0]}}, b"\0" * 8), "bad shape"),
    (_craft({"w": {**W, "data_offsets": [8, 0]}}, b"\0" * 8), "bad data_offsets"),
    (_craft({"w": {**W, "extra": 1}}, b"\0" * 8), "exactly dtype, shape, data_offsets"),
    (_craft({"__metadata__": {"a": 1}}), "__metadata__ must map strings to strings"),
    (struct.pack("<Q", 19) + b'{"a": 1, "a": 2}   ', "duplicate key in header: 'a'"),
    (_craft({"__metadata__": {"autograd.version": "9", "autograd.tree": "{}"}}),
     "unsupported autograd format version '9'"),
    (_craft({"__metadata__": {"autograd.version": "1", "autograd.tree": "{no"}}),
     "stored structure is not valid JSON"),
    (_craft({"__metadata__": {"autograd.version": "1",
                              "autograd.tree": '{"t": "array", "key": "nope"}'}}),
     "missing tensor 'nope'"),
    (_craft({"__metadata__": {"autograd.version": "1", "autograd.tree": '{"t": "value", '
                              '"v": null}'}, "w": W}, b"\0" * 8), "not referred to.*'w'"),
    (_craft({"__metadata__": {"autograd.version": "1", "autograd.tree": '{"t": "pickle"}'}}),
     "malformed structure node"),
    (_craft({"__metadata__": {"autograd.version": "1", "autograd.tree": '{"t": ["x"]}'}}),
     "malformed structure node"),
    (_craft({"__metadata__": {"autograd.version": "1",
                              "autograd.tree": "[" * 5000 + "]" * 5000}}),
     "not valid JSON|malformed"),
    # Integers past Python's 4300-digit conversion limit make json.loads raise a plain
    # ValueError, in the header and in the stored structure alike.
    (struct.pack("<Q", 5020) + b'{"w": ' + b"9" * 5000 + b"}" + b" " * 13,
     "header is not valid JSON"),
    (_craft({"__metadata__": {"autograd.version": "1",
                              "autograd.tree": '{"t": "value", "v": ' + "9" * 5000 + "}"}}),
     "stored structure is not valid JSON"),
    # Empty tensors whose other dimensions no array can have (NumPy refuses to make them).
    (_craft({"w": {**W, "shape": [0, 2**70], "data_offsets": [0, 0]}}), "bad shape"),
    (_craft({"w": {**W, "shape": [0, 2**31, 2**31], "data_offsets": [0, 0]}}), "bad shape"),
]


@pytest.mark.parametrize("data,match", RAW_CASES)
def test_malformed_files_refused_with_reason(tmp_path, data, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(CorruptFileError, match=match) as info:
        load(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def _saved(tmp_path, obj=None) -> Path:
    path = tmp_path / "m.safetensors"
    save(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))
         if obj is None else obj, path)
    return path


ARCH_EDITS = [
    (lambda t: t["arch"]["children"][0][1].update(type="os.system"), "unknown layer type"),
    (lambda t: t["arch"]["children"][0][1].update(type="__import__"), "unknown layer type"),
    (lambda t: t["arch"]["children"][0][1]["args"].update(in_features=2),
     "'0.weight' has shape \\(4, 3\\).*needs shape \\(4, 2\\)"),
    (lambda t: t["arch"]["children"][0][1]["args"].update(bias=False), "unexpected \\['0.bias'"),
    (lambda t: t["arch"]["children"][0][1]["args"].update(in_features=2**20,
                                                          out_features=2**20),
     "needs at least 10995116277\\d\\d weights but the file holds 26"),
    (lambda t: t["arch"]["children"][0][1]["args"].update(in_features="3"), "bad value '3'"),
    (lambda t: t["arch"]["children"][0][1]["args"].update(evil=1), "arguments must be exactly"),
    (lambda t: t["arch"]["children"][2][1]["args"].update(p=5.0), "Dropout cannot be built"),
    (lambda t: t["arch"]["children"].append(["9", {"type": "ReLU", "args": {}, "x": 1}]),
     "unexpected fields"),
    (lambda t: t["arch"]["children"].append(["0", {"type": "ReLU", "args": {}}]),
     "duplicate child names"),
    (lambda t: t["arch"]["children"].pop(), "unexpected \\['3.bias', '3.weight'\\]"),
]


@pytest.mark.parametrize("edit,match", ARCH_EDITS)
def test_architecture_mismatch_or_hostile_layer_refused(tmp_path, edit, match):
    path = _saved(tmp_path)
    _edit_arch(path, edit)
    with pytest.raises(CorruptFileError, match=match):
        load(path)


def test_dtype_swapped_to_same_size_integer_refused(tmp_path):
    path = _saved(tmp_path)
    _edit(path, lambda h: h["0.weight"].update(dtype="I32"))
    with pytest.raises(CorruptFileError, match="'0.weight' has shape .* dtype int32"):
        load(path)


def test_shape_edited_consistently_still_refused(tmp_path):
    path = _saved(tmp_path)
    _edit(path, lambda h: h["0.weight"].update(shape=[3, 4]))
    with pytest.raises(CorruptFileError, match="architecture needs shape \\(4, 3\\)"):
        load(path)


def test_deeply_nested_architecture_refused(tmp_path):
    node = {"type": "ReLU", "args": {}}
    for _ in range(100):
        node = {"type": "Residual", "args": {}, "children": [["block", node]]}
    tree = {"t": "module", "arch": node, "state": {"t": "dict", "items": []}}
    path = tmp_path / "deep"
    path.write_bytes(_craft({"__metadata__": {"autograd.version": "1",
                                              "autograd.tree": json.dumps(tree)}}))
    with pytest.raises(CorruptFileError, match="nested too deeply"):
        load(path)


# ------------------------------------------------------------------------------ fuzzing
@pytest.fixture(scope="module")
def good_file(tmp_path_factory) -> bytes:
    autograd.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.BatchNorm1d(3), nn.Linear(3, 1))
    path = tmp_path_factory.mktemp("fuzz") / "good"
    save({"model": model, "epoch": 2, "opt": {"lr": 0.1, "state": {0: np.ones(3)}}}, path)
    return path.read_bytes()


def _check_mutation(tmp_path, data: bytes) -> None:
    path = tmp_path / "mutated"
    path.write_bytes(data)
    try:
        load(path)
    except CorruptFileError as exc:
        assert str(path) in str(exc)


mutations = hst.one_of(
    hst.tuples(hst.just("flip"), hst.lists(hst.tuples(hst.integers(0, 10**6),
                                                      hst.integers(1, 255)), min_size=1,
                                           max_size=4)),
    hst.tuples(hst.just("truncate"), hst.integers(0, 10**6)),
    hst.tuples(hst.just("header"), hst.tuples(hst.integers(0, 10**6),
                                               hst.sampled_from(['"', "{", "}", "0", "9", "-1",
                                                                 "1e308", "[", ",", "null", ""]))),
    hst.tuples(hst.just("length"), hst.integers(0, 2**64 - 1)),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_mutated_files_only_raise_corrupt_file_error(tmp_path, good_file, mutation):
    kind, arg = mutation
    data = bytearray(good_file)
    if kind == "flip":
        for pos, x in arg:
            data[pos % len(data)] ^= x
    elif kind == "truncate":
        data = data[: arg % len(data)]
    elif kind == "header":
        (n,) = struct.unpack("<Q", data[:8])
        header = data[8:8 + n].decode()
        pos, text = arg
        pos %= n
        header = header[:pos] + text + header[pos + 1:]
        raw = header.encode()
        data = bytearray(struct.pack("<Q", len(raw)) + raw + bytes(data[8 + n:]))
    else:
        data[:8] = struct.pack("<Q", arg)
    _check_mutation(tmp_path, bytes(data))


def test_every_single_truncation_refused(tmp_path, good_file):
    for cut in range(0, len(good_file), max(1, len(good_file) // 200)):
        path = tmp_path / "t"
        path.write_bytes(good_file[:cut])
        with pytest.raises(CorruptFileError):
            load(path)


# ------------------------------------------------------------------------------ resuming
def _epochs(model, opt, loader, start, stop):
    for _ in range(start, stop):
        for xb, yb in loader:
            opt.zero_grad()
            autograd.mse_loss(model(xb), yb).backward()
            opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: autograd.optim.Adam(p, lr=0.01),
    lambda p: autograd.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
], ids=["adam", "sgd-nesterov"])
def test_resumed_training_matches_uninterrupted_run(tmp_path, make_opt):
    import autograd.optim
    from autograd.data import DataLoader, TensorDataset

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 3)), rng.standard_normal((32, 1))
    loader = DataLoader(TensorDataset(x, y), batch_size=8)

    def fresh():
        autograd.manual_seed(5)
        model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.BatchNorm1d(6),
                              nn.Linear(6, 1)).double()
        return model, make_opt(model.parameters())

    straight, opt = fresh()
    _epochs(straight, opt, loader, 0, 6)

    first, opt = fresh()
    _epochs(first, opt, loader, 0, 3)
    save({"model": first, "optimizer": opt, "epoch": 3}, tmp_path / "ckpt.safetensors")
    del first, opt

    ckpt = load(tmp_path / "ckpt.safetensors")
    model = ckpt["model"]
    opt = make_opt(model.parameters())
    opt.load_state_dict(ckpt["optimizer"])
    _epochs(model, opt, loader, ckpt["epoch"], 6)
    for (k, a), (_, b) in zip(straight.state_dict().items(), model.state_dict().items()):
        assert a.dtype in (np.float64, np.int64)
        np.testing.assert_array_equal(a, b, err_msg=k)
