"""@ag.serializable: custom Module classes saved whole by registered name and constructor
arguments, rebuilt only from classes registered in the loading process."""
from __future__ import annotations

import json

import numpy as np
import pytest

import autograd as ag
from autograd import nn, optim
from autograd import registration
from autograd.serialization import CorruptFileError, load, save


@ag.serializable(name="test_serializable.Net")  # examples in this process register "Net"
class Net(nn.Module):
    """Positional, keyword and default arguments; a tuple, a string, a dtype."""

    def __init__(self, n_in, hidden=(4, 3), act="relu", dtype=np.float32):
        super().__init__()
        self.a = nn.Linear(n_in, hidden[0], dtype=dtype)
        self.b = nn.Linear(hidden[0], hidden[1], dtype=dtype)
        self.act = nn.ReLU() if act == "relu" else nn.Tanh()

    def forward(self, x):
        return self.b(self.act(self.a(x)))


@ag.serializable(name="tests.Wrapper")
class Wrapper(nn.Module):
    """A module argument, weight tying inside the class, and a BatchNorm buffer."""

    def __init__(self, body, width=3):
        super().__init__()
        self.body = body
        self.tied = nn.Linear(width, width)
        self.again = self.tied
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x):
        return self.norm(self.again(self.tied(self.body(x))))


def _tree(path):
    from autograd.serialization import _parse
    meta, _ = _parse(path.read_bytes(), ValueError)
    return json.loads(meta["autograd.tree"])


def _same(a, b, x):
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_round_trip_rebuilds_the_registered_class(tmp_path):
    ag.manual_seed(0)
    m = Net(2, act="tanh")
    save(m, tmp_path / "m.safetensors")
    m2 = load(tmp_path / "m.safetensors")
    assert type(m2) is Net and isinstance(m2.act, nn.Tanh)
    _same(m, m2, ag.randn(5, 2))
    arch = _tree(tmp_path / "m.safetensors")["arch"]
    # only the registered name and the arguments: no module path, nothing to import
    assert arch == {"type": "registered", "class": "test_serializable.Net", "args": {
        "args": [{"v": 2}, {"tuple": [{"v": 4}, {"v": 3}]}, {"v": "tanh"},
                 {"dtype": "float32"}], "kwargs": []}}


def test_module_arguments_tying_buffers_and_float64(tmp_path):
    ag.manual_seed(1)
    m = Wrapper(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), Net(3, hidden=(5, 3))), width=3)
    m.double()
    m(ag.randn(8, 2, dtype="float64"))  # training mode: BatchNorm's running stats move
    save({"model": m, "epoch": 7}, tmp_path / "ck.safetensors")
    back = load(tmp_path / "ck.safetensors")
    m2 = back["model"]
    assert back["epoch"] == 7 and type(m2) is Wrapper and type(m2.body[2]) is Net
    assert m2.tied is m2.again and m2.tied.weight.dtype == np.float64
    _same(m, m2, ag.randn(4, 2, dtype="float64"))


def test_checkpoint_with_optimizer_resumes(tmp_path):
    m = Net(2)
    opt = optim.Adam(m.parameters(), lr=0.01)
    x, y = ag.randn(6, 2), ag.randn(6, 3)
    nn.MSELoss()(m(x), y).backward()
    opt.step()
    save({"model": m, "optimizer": opt}, tmp_path / "c")
    back = load(tmp_path / "c")
    opt2 = optim.Adam(back["model"].parameters(), lr=0.01)
    opt2.load_state_dict(back["optimizer"])
    _same(m, back["model"], x)


def test_unregistered_class_fails_at_save_with_the_fix(tmp_path):
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(2, 2)

    class SubNet(Net):  # a subclass is a different class: it must opt in itself
        pass

    for bad in (Plain(), nn.Sequential(nn.Linear(2, 2), Plain()), SubNet(2)):
        with pytest.raises(ValueError, match=r"custom module class.*@autograd\.serializable"):
            save(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_instance_made_before_registration_is_refused(tmp_path):
    class Late(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.l = nn.Linear(n, n)

    early = Late(2)
    ag.serializable(Late)
    with pytest.raises(ValueError, match="created before Late was registered"):
        save(early, tmp_path / "x")
    save(Late(2), tmp_path / "ok")


def test_changes_after_construction_are_refused_at_save(tmp_path):
    m = Net(2)
    m.act = nn.Sigmoid()
    with pytest.raises(ValueError, match=r"differs from what its constructor builds .*"
                                         r"\('act', 'Sigmoid'\) vs \('act', 'ReLU'\)"):
        save(m, tmp_path / "x")
    m = Net(2)
    m.extra = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="differs from what its constructor builds"):
        save(m, tmp_path / "x")


def test_arguments_a_file_cannot_hold_are_refused_at_save(tmp_path):
    m = Net(2, act=lambda v: v)  # a callable: not describable
    with pytest.raises(ValueError, match="Net argument #2 is a function, which a file cannot"):
        save(m, tmp_path / "x")


def test_save_and_load_leave_the_random_streams_alone(tmp_path):
    m = Net(2)
    ag.manual_seed(5)
    np.random.seed(5)
    expected = (ag.randn(3).numpy(), np.random.rand(3))
    ag.manual_seed(5)
    np.random.seed(5)
    save(m, tmp_path / "m")
    load(tmp_path / "m")
    np.testing.assert_array_equal(ag.randn(3).numpy(), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])


def _edit_arch(path, edit):
    """Rewrite the stored tree (the file stays well-formed safetensors)."""
    import safetensors.numpy as st
    from autograd.serialization import _checksum_arrays, _parse
    meta, arrays = _parse(path.read_bytes(), ValueError)
    tree = json.loads(meta["autograd.tree"])
    edit(tree["arch"])
    meta["autograd.tree"] = json.dumps(tree)
    # Re-seal, so the checks behind the checksum (the registry's) are what refuses the edit.
    meta["autograd.checksum"] = _checksum_arrays(meta, arrays)
    path.write_bytes(st.save(arrays, metadata=meta))


@pytest.mark.parametrize("edit, match", [
    (lambda a: a.update({"class": "subprocess.Popen"}),
     r"class 'subprocess\.Popen', which is not registered in this process"),
    (lambda a: a.update({"class": "os.system"}), "not registered"),
    (lambda a: a["args"]["args"].__setitem__(0, {"v": "two"}),
     r"test_serializable\.Net cannot be built from its stored arguments"),
    (lambda a: a["args"]["args"].__setitem__(0, {"v": 3}), r"weights do not match|shape"),
    (lambda a: a["args"]["args"].__setitem__(0, {"call": "print"}),
     "unknown constructor argument kind 'call'"),
    (lambda a: a["args"].update({"kwargs": [["__class__", {"v": 1}], ["__class__", {"v": 1}]]}),
     "unique"),
    (lambda a: a["args"]["args"].__setitem__(3, {"dtype": "object"}), "unsupported dtype"),
])
def test_hostile_or_stale_files_are_refused(tmp_path, edit, match):
    save(Net(2), tmp_path / "m")
    _edit_arch(tmp_path / "m", edit)
    with pytest.raises(CorruptFileError, match=match):
        load(tmp_path / "m")


def test_loading_needs_the_class_registered_in_this_process(tmp_path, monkeypatch):
    save(Net(2), tmp_path / "m")
    monkeypatch.delitem(registration._CLASSES, "test_serializable.Net")
    with pytest.raises(CorruptFileError, match=r"import the code that defines it .* never "
                                               r"imported"):
        load(tmp_path / "m")


def test_registered_names(monkeypatch):
    monkeypatch.setattr(registration, "_CLASSES", dict(registration._CLASSES))

    class Net(nn.Module):  # another class with the module-level Net's class name
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(2, 2)

    assert ag.serializable(Net) is Net  # its own name: its qualified name
    assert registration.registered_class("test_registered_names.<locals>.Net") is Net
    first = globals()["Net"](2)
    # takes the name over, as in Keras: load builds this one from now on
    ag.serializable(name="test_serializable.Net")(Net)
    assert registration.registered_class("test_serializable.Net") is Net
    with pytest.raises(ValueError, match=r"registered as 'test_serializable\.Net', but that "
                                         r"name now belongs to .*which load would build "
                                         r"instead.*name="):
        save(first, "never-written")
    assert ag.serializable(name="other.Net")(Net) is Net
    with pytest.raises(ValueError, match="built-in layer"):
        ag.serializable(name="Linear")(Net)
    with pytest.raises(TypeError, match="only nn.Module subclasses"):
        ag.serializable(dict)


def test_add_safe_globals_is_the_same_opt_in(tmp_path, monkeypatch):
    monkeypatch.setattr(registration, "_CLASSES", dict(registration._CLASSES))

    class Small(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.l = nn.Linear(k, 1)

    ag.serialization.add_safe_globals([Small, nn.Linear, nn.Sequential])
    save(Small(3), tmp_path / "s")
    assert type(load(tmp_path / "s")) is Small
    with pytest.raises(TypeError, match="can only name nn.Module classes"):
        ag.serialization.add_safe_globals([print])


def test_registry_never_resolves_names_itself():
    from pathlib import Path
    source = Path(registration.__file__).read_text()
    for word in ("import pickle", "eval(", "exec(", "importlib", "__import__", "sys.modules",
                 "getattr("):
        assert word not in source, word
