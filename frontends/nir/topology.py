"""Graph wiring shared by import and export: nested graphs, pass-through nodes and NIR's cycles.

* **Nested graphs** are flattened: node ``n`` of subgraph ``s`` becomes ``"s.n"``. An edge naming
  ``s`` itself enters through ``s``'s only Input (or leaves through its only Output); an edge may also
  name an inner node as ``"s.n"``. Inner Input/Output nodes are pass-throughs.
* **Pass-through nodes** (inner Inputs/Outputs, Identity, and Delay nodes of ``d`` steps) are
  dissolved: every edge ``p → P`` (delay ``d1``) and ``P → s`` (delay ``d2``) becomes ``p → s`` with delay
  ``d1 + d + d2``, emitted at the position of ``P → s`` so that fan-in order is kept.
* **Cycles**: NIR delays every cycle by one step implicitly. Among the edges without delay, the back
  edges of a depth-first search get delay 1. The search starts from the Input nodes sorted by name,
  then from the remaining nodes sorted by name, and follows edges in edge order; sorting names
  makes the choice independent of node order, which HDF5 does not keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import nir

from snnir.errors import FormatError, UnsupportedNodeError


@dataclass
class Wiring:
    """A flat NIR graph: leaf nodes by full name and ``[src, dst, delay]`` edges in order."""

    nodes: dict[str, nir.NIRNode] = field(default_factory=dict)
    edges: list[tuple[str, str, int]] = field(default_factory=list)
    #: pass-through node name -> delay in steps (0 for inner Inputs/Outputs and Identity)
    passthrough: dict[str, int] = field(default_factory=dict)


def _ports(graph: nir.NIRGraph, kind: type, label: str, name: str) -> str:
    ports = [n for n, node in graph.nodes.items() if isinstance(node, kind)]
    if len(ports) != 1:
        raise FormatError(
            f"edge to subgraph {name!r} is ambiguous: it has {len(ports)} {label} nodes {ports}; "
            f"name one as '{name}.<{label}>'"
        )
    return ports[0]


def _resolve(graph: nir.NIRGraph, endpoint: str, prefix: str, flat: Wiring, incoming: bool, where: str) -> str:
    if not isinstance(endpoint, str):
        raise FormatError(f"{where}: edge endpoint {endpoint!r} is not a node name")
    node = graph.nodes.get(endpoint)
    if isinstance(node, nir.NIRGraph):
        port = _ports(node, nir.Input if incoming else nir.Output, "Input" if incoming else "Output", endpoint)
        return f"{prefix}{endpoint}.{port}"
    full = prefix + endpoint
    if node is None and full not in flat.nodes and full not in flat.passthrough:
        known = ", ".join(sorted(graph.nodes))
        raise FormatError(f"{where}: an edge names {endpoint!r}, which is not a node of the graph; nodes: {known}")
    return full


def flatten(
    graph: nir.NIRGraph, delay_steps: Callable[[str, nir.Delay], int], prefix: str = "", flat: Wiring | None = None
) -> Wiring:
    """Flatten ``graph`` (recursively) into a :class:`Wiring`; ``delay_steps`` converts a Delay node."""
    flat = Wiring() if flat is None else flat
    where = f"NIR subgraph {prefix[:-1]!r}" if prefix else "NIR graph"
    for name, node in graph.nodes.items():
        full = prefix + name
        if full in flat.nodes or full in flat.passthrough:
            raise FormatError(f"{where}: flattening gives two nodes named {full!r}; rename one of them")
        if isinstance(node, nir.NIRGraph):
            flatten(node, delay_steps, f"{full}.", flat)
        elif isinstance(node, nir.Delay):
            flat.passthrough[full] = delay_steps(full, node)
        elif prefix and isinstance(node, (nir.Input, nir.Output)) or isinstance(node, nir.ir.graph.Identity):
            flat.passthrough[full] = 0
        else:
            flat.nodes[full] = node
    for edge in graph.edges:
        if len(edge) != 2:
            raise FormatError(f"{where}: an edge is a (source, destination) pair, found {edge!r}")
        src = _resolve(graph, edge[0], prefix, flat, False, where)
        dst = _resolve(graph, edge[1], prefix, flat, True, where)
        flat.edges.append((src, dst, 0))
    return flat


def dissolve(flat: Wiring) -> list[tuple[str, str, int]]:
    """The edges with every pass-through node replaced by direct (possibly delayed) edges."""
    edges = list(flat.edges)
    for name, delay in flat.passthrough.items():
        ins = [e for e in edges if e[1] == name]
        if any(e[0] == name for e in ins):
            raise UnsupportedNodeError(f"NIR node {name!r} feeds itself; a loop through a {delay}-step pass-through cannot run")
        rewired = []
        for edge in edges:
            if edge[1] == name:
                continue
            if edge[0] == name:
                rewired.extend((src, edge[1], d_in + delay + edge[2]) for src, _, d_in in ins)
            else:
                rewired.append(edge)
        edges = rewired
    return edges


def back_edges(nodes: Iterable[str], inputs: Iterable[str], edges: Sequence[tuple[str, str, int]]) -> set[int]:
    """Indices of the edges without delay that close a cycle (see the module docstring)."""
    successors: dict[str, list[tuple[int, str]]] = {name: [] for name in nodes}
    for index, (src, dst, delay) in enumerate(edges):
        if delay == 0:
            successors.setdefault(src, []).append((index, dst))
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    back: set[int] = set()
    for root in [*sorted(inputs), *sorted(successors)]:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(successors.get(root, ())))]
        while stack:
            node, pending = stack[-1]
            for index, dst in pending:
                if state.get(dst) == 1:
                    back.add(index)
                elif dst not in state:
                    state[dst] = 1
                    stack.append((dst, iter(successors.get(dst, ()))))
                    break
            else:
                state[node] = 2
                stack.pop()
    return back


__all__ = ["Wiring", "flatten", "dissolve", "back_edges"]
