"""A PyTorch tutorial-style program runs on autograd with `torch` bound to our module and its
text unchanged: a custom Module class, linspace, unsqueeze, size(), pow, .item(), Adam, and
saving and loading the whole model (tests/programs/torch_regression.py)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = Path(__file__).parent / "programs" / "torch_regression.py"

# Runs the program with the module name `torch` (and its submodules) bound to autograd's.
_AS_TORCH = """
import runpy, sys
import autograd
sys.modules.update({"torch": autograd, "torch.nn": autograd.nn, "torch.optim": autograd.optim,
                    "torch.nn.functional": autograd.nn.functional,
                    "torch.serialization": autograd.serialization})
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def _run(tmp_path: Path, *args: str) -> dict[str, str]:
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(" ", 1) for line in proc.stdout.splitlines()]
    out = {}
    for line in proc.stdout.splitlines():
        for key in ("final loss", "reloaded difference", "parameters"):
            if line.startswith(key + " "):
                out[key] = line[len(key) + 1:]
    assert lines and set(out) == {"final loss", "reloaded difference", "parameters"}, \
        proc.stdout
    return out


def test_program_text_is_plain_pytorch():
    code = [line for line in PROGRAM.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    assert code[:2] == ["import torch", "from torch import nn"]
    assert not any("autograd" in line for line in code)


def test_runs_unchanged_with_torch_bound_to_autograd(tmp_path):
    out = _run(tmp_path, "-c", _AS_TORCH, str(PROGRAM))
    assert float(out["final loss"]) < 0.01  # the noise alone has variance 0.2^2 / 12 = 0.0033
    assert float(out["reloaded difference"]) == 0.0
    assert int(out["parameters"]) == 1 * 10 + 10 + 10 * 10 + 10 + 10 * 1 + 1
    saved = (tmp_path / "activation_net.pt").read_bytes()
    assert saved[8:9] == b"{"  # a safetensors header, not a pickle


@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_same_program_runs_on_pytorch(tmp_path):
    out = _run(tmp_path, str(PROGRAM))
    assert float(out["final loss"]) < 0.01
    assert float(out["reloaded difference"]) == 0.0
