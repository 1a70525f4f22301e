"""State dicts travel between autograd and PyTorch as safetensors files: the keys and layouts
of model.state_dict() are PyTorch's for the same architecture (the PyTorch tests skip cleanly
when torch is absent)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import safetensors.numpy as stn

import autograd as ag
from autograd import nn
from autograd.serialization import CorruptFileError

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _ours():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_round_trip_and_plain_file(tmp_path):
    ag.manual_seed(0)
    m = _ours()
    m(ag.randn(5, 3))
    ag.save_state_dict(m.state_dict(), tmp_path / "w.safetensors")
    raw = stn.load_file(str(tmp_path / "w.safetensors"))  # any safetensors reader
    assert set(raw) == set(m.state_dict())
    m2 = _ours()
    m2.load_state_dict(ag.load_state_dict(tmp_path / "w.safetensors"))
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a, b)


def test_reads_autograd_saves_and_refuses_other_structures(tmp_path):
    m = _ours()
    ag.save(m, tmp_path / "whole")
    assert set(ag.load_state_dict(tmp_path / "whole")) == set(m.state_dict())
    ag.save(m.state_dict(), tmp_path / "sd")
    assert set(ag.load_state_dict(tmp_path / "sd")) == set(m.state_dict())
    ag.save({"model": m, "epoch": 1}, tmp_path / "ck")
    with pytest.raises(ValueError, match="holds a dict saved by autograd.save, not a state"):
        ag.load_state_dict(tmp_path / "ck")
    (tmp_path / "bad").write_bytes(b"\x00" * 3)
    with pytest.raises(CorruptFileError, match="too short"):
        ag.load_state_dict(tmp_path / "bad")


def test_save_state_dict_refuses_non_tensors_and_keeps_old_file(tmp_path):
    p = tmp_path / "w"
    ag.save_state_dict({"a": np.ones(2, np.float32)}, p)
    before = p.read_bytes()
    with pytest.raises(TypeError, match="'b' is a str, not a tensor"):
        ag.save_state_dict({"a": np.ones(2), "b": "x"}, p)
    with pytest.raises(TypeError, match="unsupported dtype float16"):
        ag.save_state_dict({"h": np.zeros(2, np.float16)}, p)
    assert p.read_bytes() == before


class _TorchNet:
    """The same custom architecture in both libraries (nested containers, BatchNorm)."""

    @staticmethod
    def torch():
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layer1 = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5),
                                                  torch.nn.ReLU(True))
                self.head = torch.nn.Linear(5, 2)

            def forward(self, x):
                return self.head(self.layer1(x))
        return Net()

    @staticmethod
    def ours():
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer1 = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(True))
                self.head = nn.Linear(5, 2)

            def forward(self, x):
                return self.head(self.layer1(x))
        return Net()


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
@pytest.mark.parametrize("make", ["sequential", "custom"])
def test_keys_and_layouts_match_pytorch(make):
    import torch
    theirs = (torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                  torch.nn.ReLU(), torch.nn.Linear(4, 2))
              if make == "sequential" else _TorchNet.torch())
    ours = _ours() if make == "sequential" else _TorchNet.ours()
    t_sd, o_sd = theirs.state_dict(), ours.state_dict()
    assert list(o_sd) == list(t_sd)
    for k in t_sd:
        assert o_sd[k].shape == tuple(t_sd[k].shape), k
        assert o_sd[k].dtype == t_sd[k].numpy().dtype, k


def _pair(torch):
    torch.manual_seed(0)
    theirs = _TorchNet.torch()
    theirs(torch.randn(8, 3))  # moves BatchNorm's running statistics off their start
    return theirs, _TorchNet.ours()


def _check_same(torch, theirs, ours):
    theirs.eval()
    ours.eval()
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(ag.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_pytorch_file_loads_into_our_model(tmp_path):
    import safetensors.torch
    import torch
    theirs, ours = _pair(torch)
    safetensors.torch.save_file(theirs.state_dict(), str(tmp_path / "torch.safetensors"))
    ours.load_state_dict(ag.load_state_dict(tmp_path / "torch.safetensors"))
    assert ours.layer1[1].num_batches_tracked.item() == 1
    _check_same(torch, theirs, ours)


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_our_file_loads_into_a_pytorch_model(tmp_path):
    import safetensors.torch
    import torch
    theirs, ours = _pair(torch)
    ours(ag.randn(6, 3))
    ag.save_state_dict(ours.state_dict(), tmp_path / "ours.safetensors")
    theirs.load_state_dict(safetensors.torch.load_file(str(tmp_path / "ours.safetensors")))
    _check_same(torch, theirs, ours)
