"""The printed form of a graph: one row per node, and excerpts of it for error messages."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import SnnirError

if TYPE_CHECKING:
    from .graph import Graph

_HEADER = ("node", "kind", "inputs", "output shape", "parameters", "state")


def _shapes_or_none(graph: Graph) -> dict:
    try:
        return dict(graph.shapes)
    except SnnirError:  # an invalid graph still prints, with '?' where shapes are unknown
        return {}


def summary_rows(graph: Graph, shapes: dict | None = None) -> list[tuple[str, ...]]:
    """The table's rows (without header), one per node in node order; ``shapes`` defaults to inferred ones."""
    shapes = _shapes_or_none(graph) if shapes is None else shapes
    rows = []
    for name, node in graph.nodes.items():
        sources = [e.src if not e.delay else f"{e.src}@-{e.delay}" for e in graph.incoming(name)]
        shape = shapes.get(name)
        state = ", ".join(node.state_variables) if node.stateful else "-"
        rows.append(
            (
                name,
                node.kind,
                ", ".join(sources) or "-",
                str(shape) if shape is not None else "?",
                node.describe() or "-",
                state,
            )
        )
    return rows


def _format(rows: list[tuple[str, ...]], markers: list[str] | None = None) -> list[str]:
    table = [_HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    lines = []
    for index, row in enumerate(table):
        marker = "  " if markers is None else (markers[index - 1] if index else "  ")
        lines.append(marker + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return lines


def render_summary(graph: Graph) -> str:
    """Header line, the node table, and totals (parameters, neurons, state values per sample)."""
    shapes = _shapes_or_none(graph)
    lines = [f"Graph {graph.name!r}: {graph.time.num_steps} steps of {graph.time.dt * 1e3:g} ms"]
    lines += _format(summary_rows(graph, shapes))
    parameters = sum(node.parameter_count() for node in graph.nodes.values())
    neurons = sum(
        math.prod(shapes[name]) for name, node in graph.nodes.items() if node.stateful and name in shapes
    )
    state = sum(
        math.prod(shapes[name]) * len(node.state_variables)
        for name, node in graph.nodes.items()
        if node.stateful and name in shapes
    )
    delayed = sum(1 for e in graph.edges if e.delay)
    lines.append(
        f"{len(graph.nodes)} nodes, {len(graph.edges)} edges ({delayed} delayed), "
        f"{parameters:,} parameters, {neurons:,} neurons, {state:,} state values per sample"
    )
    if graph.is_lazy:
        lines.append("lazy: some parameters are still initialisers; materialise with snnir.materialize(graph, seed)")
    return "\n".join(lines)


def summary_excerpt(graph: Graph, node: str, shapes: dict | None = None, context: int = 2) -> str:
    """The rows around ``node``, marked with '>', to quote in an error message (as torch.fx's lint).

    ``shapes`` are the shapes known so far; the excerpt never runs shape inference itself, since it is
    built while inference is failing.
    """
    rows = summary_rows(graph, shapes or {})
    names = list(graph.nodes)
    if node not in names:
        return ""
    index = names.index(node)
    lo, hi = max(0, index - context), min(len(rows), index + context + 1)
    markers = ["> " if i == index else "  " for i in range(lo, hi)]
    return "\n".join(_format(rows[lo:hi], markers))


__all__ = ["render_summary", "summary_rows", "summary_excerpt"]
