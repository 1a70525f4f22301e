"""The README's tour runs as written: every ```python block, in order, in one namespace (as a
reader pasting them into one session would), so the documentation cannot drift from the code."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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
    for i, block in enumerate(blocks, 1):
        code = compile(block, f"README.md python block {i}", "exec")
        exec(code, namespace)  # noqa: S102 - our own README, which is the point of the test
