"""Validation and shape inference.

:func:`validate` checks, in order: the graph has inputs and outputs; every edge joins known nodes;
Inputs have no incoming and Outputs no outgoing edges; every Output records exactly one source, with
no delay, and a quantity that source has; every other node has an input; every node reaches an Output;
the graph without delayed edges is acyclic; every node accepts its input shape and every edge agrees
with it. Errors name the node or edge and quote the surrounding rows of the printed graph.
"""

from __future__ import annotations

import difflib

from .errors import GraphError, NodeParameterError, ShapeError
from .ir.graph import Edge, Graph
from .ir.io import Input, Output
from .ir.node import Shape
from .ir.summary import summary_excerpt


def _where(graph: Graph, node: str, message: str, shapes: dict | None = None) -> str:
    excerpt = summary_excerpt(graph, node, shapes)
    return f"{message}\n{excerpt}" if excerpt else message


def _located(error_type: type[GraphError], graph: Graph, node: str, message: str, shapes: dict | None = None,
             edge: Edge | None = None) -> GraphError:
    """An error about ``node`` (and ``edge``, if one is at fault), quoting the rows of the printed graph
    around it; ``error.node``/``error.edge`` let readers of files point at where it was written."""
    error = error_type(_where(graph, node, message, shapes))
    error.node = node  # type: ignore[attr-defined]
    error.edge = edge  # type: ignore[attr-defined]
    return error


def _unknown_node(graph: Graph, name: str) -> str:
    close = difflib.get_close_matches(name, list(graph.nodes), n=1)
    return f"unknown node {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def check_structure(graph: Graph) -> None:
    """Everything about the graph's wiring that does not need shapes; raises GraphError."""
    if not graph.inputs:
        raise GraphError(f"graph {graph.name!r} has no Input node")
    if not graph.outputs:
        raise GraphError(f"graph {graph.name!r} has no Output node; add one to record spikes or membranes")
    for edge in graph.edges:
        for end in (edge.src, edge.dst):
            if end not in graph.nodes:
                raise GraphError(f"edge {edge}: {_unknown_node(graph, end)}")
    for name, node in graph.nodes.items():
        incoming = graph.incoming(name)
        if isinstance(node, Input):
            if incoming:
                raise _located(GraphError, graph, name, f"input {name!r} has incoming edges ({incoming[0]}); inputs take none")
            continue
        if isinstance(node, Output):
            _check_output(graph, name, node)
        elif not incoming:
            raise _located(GraphError, graph, name, f"node {name!r} ({node.kind}) is dangling: it has no incoming edge")
    _check_reaches_output(graph)
    graph.topological_order()  # raises on a cycle without delay


def _check_output(graph: Graph, name: str, node: Output) -> None:
    incoming = graph.incoming(name)
    if graph.outgoing(name):
        raise _located(GraphError, graph, name, f"output {name!r} has outgoing edges ({graph.outgoing(name)[0]}); outputs take none")
    if len(incoming) != 1:
        raise _located(GraphError, graph, name, f"output {name!r} must record exactly one node, found {len(incoming)} incoming edges")
    edge = incoming[0]
    if edge.delay:
        raise _located(GraphError, graph, name, f"output {name!r}: the edge from {edge.src!r} may not be delayed (delay {edge.delay})")
    source = graph.nodes[edge.src]
    if isinstance(source, Output):
        raise _located(GraphError, graph, name, f"output {name!r} records another output {edge.src!r}")
    if node.record not in source.recordable():
        raise _located(
            GraphError,
            graph,
            name,
            f"output {name!r} cannot record {node.record!r} of node {edge.src!r} ({source.kind}); "
            f"it can record: {', '.join(source.recordable())}",
        )


def _check_reaches_output(graph: Graph) -> None:
    reaching = set(graph.outputs)
    frontier = list(graph.outputs)
    while frontier:
        for edge in graph.incoming(frontier.pop()):
            if edge.src not in reaching:
                reaching.add(edge.src)
                frontier.append(edge.src)
    for name, node in graph.nodes.items():
        if name not in reaching:
            raise _located(GraphError, graph, name, f"node {name!r} ({node.kind}) is dangling: its value reaches no Output; connect or remove it")


def infer_shapes(graph: Graph) -> dict[str, Shape]:
    """Output shape of every node; validates the structure first. Raises GraphError/ShapeError."""
    check_structure(graph)
    order = graph.topological_order()
    shapes: dict[str, Shape] = {}
    progress = True
    # Delayed edges may come from nodes later in the order (recurrence): iterate to a fixpoint.
    while progress and len(shapes) < len(order):
        progress = False
        for name in order:
            if name in shapes:
                continue
            known = [e for e in graph.incoming(name) if e.src in shapes]
            if graph.incoming(name) and not known:
                continue
            input_shape = shapes[known[0].src] if known else None
            shapes[name] = _node_output(graph, name, input_shape, shapes)
            progress = True
    unresolved = [name for name in order if name not in shapes]
    if unresolved:
        raise _located(
            GraphError,
            graph,
            unresolved[0],
            f"cannot infer the shape of {unresolved[0]!r}: all its inputs are delayed edges from nodes that "
            "depend on it; feed the loop from an Input",
            shapes,
        )
    _check_edges(graph, shapes)
    return shapes


def _node_output(graph: Graph, name: str, input_shape: Shape | None, shapes: dict) -> Shape:
    node = graph.nodes[name]
    try:
        return tuple(node.infer_output(input_shape))
    except (ShapeError, NodeParameterError) as error:
        raise _located(type(error), graph, name, f"node {name!r} ({node.kind}): {error}", shapes) from None


def _check_edges(graph: Graph, shapes: dict[str, Shape]) -> None:
    for name in graph.nodes:
        incoming = graph.incoming(name)
        if not incoming:
            continue
        expected = shapes[incoming[0].src]
        for edge in incoming[1:]:
            found = shapes[edge.src]
            if found != expected:
                raise _located(
                    ShapeError,
                    graph,
                    name,
                    f"edge {edge}: {edge.src} outputs {found}, but {name} sums inputs of shape {expected} "
                    f"(from {incoming[0].src})",
                    shapes,
                    edge,
                )


def validate(graph: Graph, *, require_materialized: bool = False) -> dict[str, Shape]:
    """Check ``graph`` and return the output shape of every node.

    Args:
        require_materialized: also fail when a parameter is still an initialiser (compilers need values).

    Raises:
        GraphError, ShapeError, NodeParameterError: naming the node, edge or field at fault.
    """
    if not isinstance(graph, Graph):
        raise GraphError(f"expected a snnir Graph, found {type(graph).__name__}")
    shapes = dict(graph.shapes)
    if require_materialized:
        for name, node in graph.nodes.items():
            lazy = node.lazy_fields()
            if lazy:
                raise _located(
                    GraphError,
                    graph,
                    name,
                    f"node {name!r} ({node.kind}) still has lazy parameters {lazy}; "
                    "materialise them first: snnir.materialize(graph, seed=0)",
                    shapes,
                )
    return shapes


__all__ = ["validate", "infer_shapes", "check_structure"]
