"""The README's tour runs as written: every ```python block, in order, in one namespace (as a
reader pasting them into one session would), so the documentation cannot drift from the code."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

#: A block that imports one of these needs the optional package named: where that package is
#: absent (its extra not installed) the block is left out; CI installs every extra.
OPTIONAL = {"autograd.distributed": "mpi4py"}


def missing_requirement(block: str) -> str | None:
    """The optional package ``block`` needs and this environment lacks, if any."""
    for module, package in OPTIONAL.items():
        if re.search(rf"^\s*(import|from) {re.escape(module)}\b", block, flags=re.M) \
                and importlib.util.find_spec(package) is None:
            return package
    return None


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_extracts_the_blocks():
    assert python_blocks("a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny\n```\n") \
        == ["x = 1\n", "y\n"]


def test_every_python_block_runs_in_order(tmp_path, monkeypatch):
    from autograd import registration
    monkeypatch.chdir(tmp_path)  # the tour saves files
    # the tour registers a class named Net, as a reader's session would; keep it out of the
    # registry the other tests see
    monkeypatch.setattr(registration, "_CLASSES", dict(registration._CLASSES))
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 4, "the README's Python blocks were not found"
    namespace: dict = {"__name__": "__readme__"}
    ran = 0
    for i, block in enumerate(blocks, 1):
        if missing_requirement(block):
            continue
        code = compile(block, f"README.md python block {i}", "exec")
        exec(code, namespace)  # noqa: S102 - our own README, which is the point of the test
        ran += 1
    assert ran >= 4


def test_optional_blocks_are_recognised():
    block = "import numpy as np\nimport autograd.distributed as dist\n"
    expected = None if importlib.util.find_spec("mpi4py") else "mpi4py"
    assert missing_requirement(block) == expected
    assert missing_requirement("import autograd as ag\n") is None
