"""A picture of the graph behind a tensor: Graphviz DOT text, and a rendering of it.

``to_dot(loss, params=model)`` needs nothing beyond autograd. ``draw(loss, "graph.svg")``
renders through the ``graphviz`` Python package (``pip install "autograd-engine[viz]"``) and
Graphviz's ``dot`` program (``apt-get install graphviz``); in Jupyter the object it returns
shows itself as SVG.

The picture reads like data flow, leaves at the top and the tensor at the bottom:

* an op is a box labelled with its name and its output's shape and dtype;
* a leaf is an ellipse, named (``0.weight``) when it is a parameter of the module passed as
  ``params``; leaves that carry a gradient (``requires_grad``) are filled blue, constants grey;
* the tensor itself is drawn with a double border.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .tensor import Tensor

__all__ = ["to_dot", "draw", "Graph", "VIZ_EXTRA_HINT"]

VIZ_EXTRA_HINT = ("drawing the graph needs the optional `graphviz` Python package and Graphviz's "
                  "`dot` program: pip install \"autograd-engine[viz]\" (and apt-get install "
                  "graphviz, or your system's Graphviz package); ag.viz.to_dot() needs neither")

_GRAD_FILL = "#cfe2ff"    # leaves that receive a gradient
_CONST_FILL = "#e9ecef"   # leaves that do not
_OP_FILL = "#fff3cd"


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _describe(t: Tensor) -> str:
    shape = "(" + ", ".join(str(n) for n in t.shape) + ("," if t.ndim == 1 else "") + ")"
    return f"{shape} {t.dtype}"


def _param_names(params: Any) -> dict[int, str]:
    """``id(tensor) -> name`` from a Module, a mapping of names to tensors, or (name, tensor)
    pairs such as ``model.named_parameters()``."""
    if params is None:
        return {}
    named_parameters = getattr(params, "named_parameters", None)
    if callable(named_parameters):
        items: Iterable = named_parameters()
    elif isinstance(params, Mapping):
        items = params.items()
    elif isinstance(params, Iterable):
        items = params
    else:
        raise TypeError(f"to_dot: params must be a Module, a mapping of names to tensors or "
                        f"(name, tensor) pairs, not {type(params).__name__}")
    names: dict[int, str] = {}
    for pair in items:
        try:
            name, tensor = pair
        except (TypeError, ValueError):
            raise TypeError(f"to_dot: params must yield (name, tensor) pairs, got {pair!r}"
                            ) from None
        if not isinstance(tensor, Tensor):
            raise TypeError(f"to_dot: params[{name!r}] is a {type(tensor).__name__}, "
                            f"not a Tensor")
        names.setdefault(id(tensor), str(name))
    return names


def to_dot(tensor: Tensor, params: Any = None, name: str = "autograd") -> str:
    """The graph that produced ``tensor`` as Graphviz DOT text.

    ``params`` names leaves: a Module (its ``named_parameters()``), a ``{name: tensor}``
    mapping, or ``(name, tensor)`` pairs. Each op node shows the op's name and its output's
    shape and dtype; leaves that require grad are filled blue, constants grey. A tensor that
    no op produced is drawn as a single leaf.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    names = _param_names(params)
    lines = [f"digraph {_quote(name)} {{",
             "  graph [rankdir=TB, fontname=\"Helvetica\"];",
             "  node [fontname=\"Helvetica\", fontsize=10, style=filled];",
             "  edge [arrowsize=0.7];"]
    ids: dict[int, str] = {}

    def key(t: Tensor) -> tuple[int, bool]:
        # An op output is identified by its Node (several Tensor objects may wrap one result);
        # a leaf by the Tensor itself.
        return (id(t._node), True) if t._node is not None else (id(t), False)

    def declare(t: Tensor, root: bool) -> str:
        k, is_op = key(t)
        if k in ids:
            return ids[k]
        ident = f"n{len(ids)}"
        ids[k] = ident
        extra = ", peripheries=2" if root else ""
        if is_op:
            label = f"{t._node.op.name}\n{_describe(t)}"
            lines.append(f"  {ident} [label={_quote(label)}, shape=box, "
                         f"fillcolor=\"{_OP_FILL}\"{extra}];")
        else:
            title = names.get(id(t))
            if title is None:
                title = type(t).__name__ if type(t) is not Tensor else "tensor"
            if t.size == 1 and not t.requires_grad and t.dtype.kind in "fiub":
                title += f" = {t.numpy().reshape(()).item():.4g}"  # a constant like the 2 in x**2
            marks = "\nrequires_grad" if t.requires_grad else ""
            if t.grad is not None:
                marks += " (has .grad)"
            fill = _GRAD_FILL if t.requires_grad else _CONST_FILL
            label = title + "\n" + _describe(t) + marks
            lines.append(f"  {ident} [label={_quote(label)}, shape=ellipse, "
                         f"fillcolor=\"{fill}\"{extra}];")
        return ident

    declare(tensor, root=True)
    # Iterative walk (a chain of 100,000 ops must not hit the recursion limit); each node's
    # inputs are emitted once, in order, so the edges keep the argument order.
    stack = [tensor] if tensor._node is not None else []
    seen: set[int] = set()
    while stack:
        out = stack.pop()
        node = out._node
        if id(node) in seen:
            continue
        seen.add(id(node))
        head = ids[key(out)[0]]
        for t in node.inputs:
            tail = declare(t, root=False)
            lines.append(f"  {tail} -> {head};")
            if t._node is not None and id(t._node) not in seen:
                stack.append(t)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _graphviz() -> Any:
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(f"autograd.viz.draw: {VIZ_EXTRA_HINT}") from exc
    return graphviz


class Graph:
    """A drawn graph: its DOT ``source``, and the ``path`` it was rendered to (if any).

    Jupyter displays it as SVG (``_repr_svg_`` / ``_repr_mimebundle_``).
    """

    def __init__(self, source: str, path: str | None = None):
        self.source = source
        self.path = path

    def pipe(self, format: str = "svg") -> bytes:  # noqa: A002  (graphviz's own name)
        """The rendering in ``format`` (svg, png, pdf, ...) as bytes, via Graphviz."""
        graphviz = _graphviz()
        try:
            return graphviz.Source(self.source).pipe(format=format)
        except graphviz.ExecutableNotFound as exc:
            raise RuntimeError(f"autograd.viz: Graphviz's `dot` program is not on PATH; "
                               f"{VIZ_EXTRA_HINT}") from exc

    def _repr_svg_(self) -> str:
        return self.pipe("svg").decode("utf-8")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"image/svg+xml": self._repr_svg_(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        where = f" at {self.path!r}" if self.path else ""
        return f"<autograd.viz.Graph{where}: {self.source.count('->')} edges>"


def draw(tensor: Tensor, path: str | os.PathLike | None = None, params: Any = None,
         format: str | None = None) -> Graph:  # noqa: A002
    """Render the graph behind ``tensor`` (see :func:`to_dot`) and return it as a :class:`Graph`.

    With ``path``, writes the picture there; the format comes from ``format`` or the file's
    suffix (``.svg``, ``.png``, ``.pdf``; ``.dot``/``.gv`` write the DOT text and need no
    Graphviz). Without ``path`` nothing is written: in Jupyter the result displays as SVG.
    Needs the ``viz`` extra (``pip install "autograd-engine[viz]"``) and Graphviz's ``dot``.
    """
    graph = Graph(to_dot(tensor, params=params))
    if path is None:
        _graphviz()  # fail now, with the hint, rather than at display time
        return graph
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".") or "svg").lower()
    if fmt in ("dot", "gv"):
        data = graph.source.encode("utf-8")
    else:
        data = graph.pipe(fmt)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:  # write then rename: a failed draw leaves an old file intact
        f.write(data)
    os.replace(tmp, path)
    graph.path = path
    return graph

