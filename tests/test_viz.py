"""ag.viz: the graph behind a tensor as DOT text, rendered by Graphviz when it is installed."""
from __future__ import annotations

import re
import shutil
import sys

import pytest

import autograd as ag
from autograd import nn, viz


def _nodes(dot: str) -> dict[str, str]:
    """node id -> label."""
    return dict(re.findall(r"^\s*(n\d+) \[label=\"([^\"]*)\"", dot, re.M))


def _edges(dot: str) -> list[tuple[str, str]]:
    return re.findall(r"^\s*(n\d+) -> (n\d+);", dot, re.M)


def test_ops_show_output_shape_and_dtype_and_parameters_their_names():
    ag.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x = ag.randn(5, 3, dtype="float64").float()
    loss = ((model(x) - 1.0) ** 2).mean()
    dot = viz.to_dot(loss, params=model)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    labels = _nodes(dot)
    by_label = {v: k for k, v in labels.items()}
    # The root: the mean, a 0-d float32, drawn with a double border.
    assert "mean\\n() float32" in by_label
    assert "peripheries=2" in dot.split(by_label["mean\\n() float32"] + " [", 1)[1].split("\n")[0]
    assert "linear\\n(5, 4) float32" in by_label and "linear\\n(5, 1) float32" in by_label
    # Every parameter is a named, gradient-carrying leaf; the input is an unnamed constant.
    for name, p in model.named_parameters():
        shape = "(" + ", ".join(map(str, p.shape)) + ("," if p.ndim == 1 else "") + ")"
        label = f"{name}\\n{shape} float32\\nrequires_grad"
        assert label in by_label, (label, labels)
        assert '#cfe2ff' in dot.split(by_label[label] + " [", 1)[1].split("\n")[0]
    assert "tensor\\n(5, 3) float32" in by_label
    assert "tensor = 1\\n() float32" in by_label and "tensor = 2\\n() float32" in by_label
    # Data flows from the parameters into the op that uses them.
    w0 = by_label["0.weight\\n(4, 3) float32\\nrequires_grad"]
    assert (w0, by_label["linear\\n(5, 4) float32"]) in _edges(dot)
    assert len(_edges(dot)) == 11  # 2 linears x 3 inputs, sub x 2, pow x 2, mean x 1


def test_a_reused_tensor_is_one_node_with_an_edge_per_use():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x * x + x
    dot = viz.to_dot(y, params={"x": x})
    labels = _nodes(dot)
    assert sum(1 for v in labels.values() if v.startswith("x\\n")) == 1
    xid = next(k for k, v in labels.items() if v.startswith("x\\n"))
    assert sum(1 for a, _ in _edges(dot) if a == xid) == 3  # mul twice, add once


def test_gradient_marks_and_plain_leaves():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    dot = viz.to_dot(x)  # a leaf alone is a one-node graph
    assert list(_nodes(dot).values()) == ["tensor\\n(2,) float32\\nrequires_grad (has .grad)"]
    assert _edges(dot) == []


def test_a_long_chain_needs_no_recursion():
    x = ag.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    dot = viz.to_dot(y)
    assert len(_nodes(dot)) == 5000 + 1 + 5000  # ops, x, and each op's constant
    assert len(_edges(dot)) == 2 * 5000


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="to_dot: expected a Tensor"):
        viz.to_dot([1.0])
    with pytest.raises(TypeError, match="params"):
        viz.to_dot(ag.tensor(1.0), params=3)
    with pytest.raises(TypeError, match="not a Tensor"):
        viz.to_dot(ag.tensor(1.0), params={"w": 1.0})


def test_labels_are_escaped():
    x = ag.tensor([1.0], requires_grad=True)
    dot = viz.to_dot(x * 2.0, params={'say "hi"\\': x})
    assert r'say \"hi\"\\' in dot


def test_dot_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if not installed
    y = ag.tensor([1.0], requires_grad=True).exp()
    graph = viz.draw(y, tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == viz.to_dot(y) == graph.source


def test_without_graphviz_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    y = ag.tensor([1.0], requires_grad=True).exp()
    for call in (lambda: viz.draw(y, tmp_path / "g.svg"), lambda: viz.draw(y)):
        with pytest.raises(ImportError, match=re.escape('pip install "autograd-engine[viz]"')):
            call()
    assert not (tmp_path / "g.svg").exists()


needs_graphviz = pytest.mark.skipif(
    shutil.which("dot") is None or not __import__("importlib").util.find_spec("graphviz"),
    reason="the graphviz package or Graphviz's dot program is not installed")


@needs_graphviz
def test_draw_renders_svg_and_png(tmp_path):
    model = nn.Linear(2, 1)
    loss = model(ag.ones(4, 2)).sum()
    graph = viz.draw(loss, tmp_path / "g.svg", params=model)
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "weight" in svg and "linear" in svg
    assert graph.path == str(tmp_path / "g.svg")
    viz.draw(loss, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_graphviz
def test_jupyter_shows_the_graph_as_svg():
    loss = (ag.tensor([1.0, 2.0], requires_grad=True) ** 2).sum()
    graph = viz.draw(loss)
    assert graph._repr_svg_().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
    bundle = graph._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"] and "edges" in bundle["text/plain"]


@needs_graphviz
def test_missing_dot_program_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    graph = viz.draw(ag.tensor([1.0], requires_grad=True).exp())
    with pytest.raises(RuntimeError, match="`dot` program is not on PATH"):
        graph._repr_svg_()
