"""The graph: named nodes, directed edges (fan-in sums, optional delays) and the time spec.

A graph is a value: construction only checks container types, :func:`snnir.validate` checks the
structure and shapes, and passes return new graphs. Nodes keep their insertion order, which is the
order of the printed summary, of the file formats and of the tie-breaks of the topological order.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping

import networkx as nx

from ..errors import GraphError, NodeNotFoundError
from .io import Input, Output
from .node import Node, Shape


@dataclass(frozen=True)
class Edge:
    """``src``'s output feeds ``dst``; with ``delay = d >= 1`` it arrives ``d`` steps later (zero before).

    Several edges into one node are summed in edge order. Recurrence is legal only through delayed edges.
    """

    src: str
    dst: str
    delay: int = 0

    def __post_init__(self) -> None:
        for end in ("src", "dst"):
            if not isinstance(getattr(self, end), str) or not getattr(self, end):
                raise GraphError(f"edge {self.src!r} -> {self.dst!r}: {end} must be a node name, found {getattr(self, end)!r}")
        if not isinstance(self.delay, numbers.Integral) or isinstance(self.delay, bool) or self.delay < 0:
            raise GraphError(f"edge {self.src!r} -> {self.dst!r}: delay must be an integer >= 0, found {self.delay!r}")
        object.__setattr__(self, "delay", int(self.delay))

    def __str__(self) -> str:
        suffix = f" (delay {self.delay})" if self.delay else ""
        return f"{self.src} -> {self.dst}{suffix}"


@dataclass(frozen=True)
class TimeSpec:
    """``num_steps`` steps of ``dt`` seconds each (dt matters only to conversions from continuous time)."""

    num_steps: int = 25
    dt: float = 1e-3

    def __post_init__(self) -> None:
        steps = self.num_steps
        if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
            raise GraphError(f"time.num_steps: expected an integer >= 1, found {steps!r}")
        dt = self.dt
        if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not math.isfinite(dt) or dt <= 0:
            raise GraphError(f"time.dt: expected a finite number of seconds > 0, found {dt!r}")
        object.__setattr__(self, "num_steps", int(steps))
        object.__setattr__(self, "dt", float(dt))


class NodeTable(Mapping[str, Node]):
    """A graph's nodes by name, in order, read-only; an unknown name is a :class:`NodeNotFoundError`
    (a KeyError) that names the closest node."""

    __slots__ = ("_nodes",)

    def __init__(self, nodes: Mapping[str, Node]):
        self._nodes = dict(nodes)

    def __getitem__(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._nodes), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise NodeNotFoundError(f"unknown node {name!r}{hint}; the graph's nodes are {list(self._nodes)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"NodeTable({self._nodes!r})"


def _as_edge(item: Any) -> Edge:
    if isinstance(item, Edge):
        return item
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return Edge(*item)
    raise GraphError(f"expected an Edge or a (src, dst[, delay]) tuple, found {item!r}")


@dataclass(frozen=True, eq=False, repr=False)
class Graph:
    """An SNN as a graph of named nodes.

    Args:
        nodes: mapping from name to node, in a meaningful order (inputs first reads best).
        edges: edges or ``(src, dst[, delay])`` tuples; fan-in is summed in this order.
        time: the :class:`TimeSpec` (number of steps and dt).
        name: a label for summaries and files.
        metadata: JSON-serialisable extra information (provenance, training history...).
    """

    nodes: Mapping[str, Node]
    edges: tuple[Edge, ...] = ()
    time: TimeSpec = field(default_factory=TimeSpec)
    name: str = "graph"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.nodes, Mapping):
            raise GraphError(f"nodes must be a mapping from name to node, found {type(self.nodes).__name__}")
        for key, node in self.nodes.items():
            if not isinstance(key, str) or not key:
                raise GraphError(f"node names must be non-empty strings, found {key!r}")
            if not isinstance(node, Node):
                raise GraphError(f"node {key!r}: expected a snnir node, found {type(node).__name__}")
        if not isinstance(self.time, TimeSpec):
            raise GraphError(f"time must be a TimeSpec, found {type(self.time).__name__}")
        if not isinstance(self.name, str):
            raise GraphError(f"the graph name must be a string, found {self.name!r}")
        object.__setattr__(self, "nodes", NodeTable(self.nodes))
        object.__setattr__(self, "edges", tuple(_as_edge(e) for e in self.edges))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __reduce__(self) -> tuple:
        """Pickle and copy through the constructor (the metadata's read-only view does not pickle), so that
        ``copy.deepcopy`` and ``pickle`` work on graphs and on the models that hold them."""
        return (type(self), (dict(self.nodes), self.edges, self.time, self.name, dict(self.metadata)))

    # -- structure ------------------------------------------------------------------------------
    @cached_property
    def inputs(self) -> tuple[str, ...]:
        """Names of the Input nodes, in node order (computed once: the graph is immutable, and every
        streaming step of every backend asks)."""
        return tuple(name for name, node in self.nodes.items() if isinstance(node, Input))

    @cached_property
    def outputs(self) -> tuple[str, ...]:
        """Names of the Output nodes, in node order."""
        return tuple(name for name, node in self.nodes.items() if isinstance(node, Output))

    @cached_property
    def _incoming(self) -> Mapping[str, tuple[Edge, ...]]:
        table: dict[str, list[Edge]] = {name: [] for name in self.nodes}
        for edge in self.edges:
            table.setdefault(edge.dst, []).append(edge)
        return {name: tuple(edges) for name, edges in table.items()}

    @cached_property
    def _outgoing(self) -> Mapping[str, tuple[Edge, ...]]:
        table: dict[str, list[Edge]] = {name: [] for name in self.nodes}
        for edge in self.edges:
            table.setdefault(edge.src, []).append(edge)
        return {name: tuple(edges) for name, edges in table.items()}

    def incoming(self, name: str) -> tuple[Edge, ...]:
        """Edges into ``name``, in summation order."""
        return self._incoming.get(name, ())

    def outgoing(self, name: str) -> tuple[Edge, ...]:
        return self._outgoing.get(name, ())

    def output_source(self, output: str) -> str:
        """The node an Output records."""
        edges = self.incoming(output)
        if len(edges) != 1:
            raise GraphError(f"output {output!r} must have exactly one incoming edge, found {len(edges)}")
        return edges[0].src

    def to_networkx(self, *, include_delayed: bool = True) -> nx.MultiDiGraph:
        """The graph as a networkx MultiDiGraph (edge attribute ``delay``)."""
        graph = nx.MultiDiGraph()
        graph.add_nodes_from(self.nodes)
        for edge in self.edges:
            if include_delayed or edge.delay == 0:
                graph.add_edge(edge.src, edge.dst, delay=edge.delay)
        return graph

    @cached_property
    def _topological_order(self) -> tuple[str, ...]:
        instant = self.to_networkx(include_delayed=False)
        position = {name: i for i, name in enumerate(self.nodes)}
        try:
            return tuple(nx.lexicographical_topological_sort(instant, key=position.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = [u for u, _v, *_ in nx.find_cycle(instant)]
            path = " -> ".join(cycle + cycle[:1])
            error = GraphError(
                f"cycle without delay: {path}; recurrence needs at least one edge with delay >= 1 "
                "(e.g. Edge(src, dst, delay=1))"
            )
            error.node = cycle[-1]  # type: ignore[attr-defined]  # the edge that closes the cycle, for file readers
            error.edge = Edge(cycle[-1], cycle[0])  # type: ignore[attr-defined]
            raise error from None

    def topological_order(self) -> tuple[str, ...]:
        """Execution order within one step: the graph without delayed edges, sorted (ties by node order)."""
        return self._topological_order

    @cached_property
    def shapes(self) -> Mapping[str, Shape]:
        """Output shape of every node (inferred; raises ShapeError/GraphError on an invalid graph)."""
        from ..validate import infer_shapes

        return MappingProxyType(infer_shapes(self))

    def input_shape(self, name: str) -> Shape | None:
        """Shape flowing into ``name`` (None for an Input)."""
        edges = self.incoming(name)
        return self.shapes[edges[0].src] if edges else None

    # -- values ---------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> Graph:
        """A copy with some of nodes, edges, time, name or metadata changed."""
        values = {"nodes": self.nodes, "edges": self.edges, "time": self.time, "name": self.name, "metadata": self.metadata}
        values.update(changes)
        return Graph(**values)

    def with_nodes(self, updates: Mapping[str, Node]) -> Graph:
        """A copy where the named nodes are replaced (order kept)."""
        missing = sorted(set(updates) - set(self.nodes))
        if missing:
            raise GraphError(f"cannot replace unknown nodes {missing}")
        return self.replace(nodes={name: updates.get(name, node) for name, node in self.nodes.items()})

    def without_nodes(self, names: Iterable[str]) -> Graph:
        """A copy without the named nodes and their edges."""
        drop = set(names)
        return self.replace(
            nodes={n: node for n, node in self.nodes.items() if n not in drop},
            edges=tuple(e for e in self.edges if e.src not in drop and e.dst not in drop),
        )

    @property
    def is_lazy(self) -> bool:
        """True while some parameter still awaits materialisation."""
        return any(node.is_lazy for node in self.nodes.values())

    def summary(self) -> str:
        """The readable summary table (node, kind, inputs, output shape, parameters, state)."""
        from .summary import render_summary

        return render_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"Graph(name={self.name!r}, nodes={len(self.nodes)}, edges={len(self.edges)}, "
            f"num_steps={self.time.num_steps}, dt={self.time.dt:g})"
        )


__all__ = ["Graph", "Edge", "TimeSpec"]
