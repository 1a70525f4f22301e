"""Every input in the fuzz corpora is read or refused with the documented error, within 5 s and
200 MB: the seed corpus in tests/fuzz/corpus, and any corpus directories named by
AUTOGRAD_FUZZ_CORPUS (os.pathsep-separated, each holding load/, idx/, model_json/ as the CI
fuzz step leaves them)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from resource_limits import run_bounded

FUZZ = Path(__file__).resolve().parent / "fuzz"
TARGETS = ("load", "idx", "model_json")
MAX_SECONDS, MAX_MB = 5.0, 200.0
MAX_FILES = 5000  # per target and corpus directory: a long fuzzing run keeps many


def _corpora() -> list[Path]:
    extra = os.environ.get("AUTOGRAD_FUZZ_CORPUS", "")
    return [FUZZ / "corpus", *(Path(p) for p in extra.split(os.pathsep) if p)]


def _files(target: str) -> list[str]:
    files = []
    for corpus in _corpora():
        d = corpus / target
        if d.is_dir():
            files += sorted(str(p) for p in d.iterdir() if p.is_file())[:MAX_FILES]
    return files


def test_seed_corpus_is_small_and_covers_every_target():
    for target in TARGETS:
        seeds = list((FUZZ / "corpus" / target).iterdir())
        assert len(seeds) >= 5, target
        assert all(p.stat().st_size <= 4096 for p in seeds), target


@pytest.mark.parametrize("target", TARGETS)
def test_every_corpus_input_is_read_or_refused_within_bounds(target):
    files = _files(target)
    out = run_bounded(f"import sys; sys.path.insert(0, {str(FUZZ)!r}); import targets",
                      f"targets.TARGETS[{target!r}](open(_arg, 'rb').read())", files,
                      timeout=600, limit_mb=2048)
    bad = [r for r in out["results"] if r["outcome"] != "ok"]
    assert not bad, bad[:5]
    slow = [r for r in out["results"] if r["seconds"] > MAX_SECONDS]
    assert not slow, slow[:5]
    # The peak is cumulative over the files: under the bound, every single file was too.
    assert out["results"][-1]["peak_growth_mb"] < MAX_MB, max(
        out["results"], key=lambda r: r["peak_growth_mb"])


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_harness_runs(target, tmp_path):
    """The atheris harness starts, instruments autograd and runs the seeds without a finding."""
    proc = subprocess.run([sys.executable, str(FUZZ / "fuzz.py"), target, "-runs=30",
                           "-timeout=5", str(tmp_path), str(FUZZ / "corpus" / target)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "instrumented" in proc.stderr and "Done 30 runs" in proc.stderr, proc.stderr[-2000:]
