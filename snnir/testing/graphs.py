"""Structural comparison of graphs, for tests (``==`` on graphs is identity, as arrays have no truth value)."""

from __future__ import annotations

from ..ir.graph import Graph


def graph_differences(a: Graph, b: Graph) -> list[str]:
    """Human-readable differences between two graphs (empty when structurally equal)."""
    problems = []
    if a.name != b.name:
        problems.append(f"name: {a.name!r} != {b.name!r}")
    if a.time != b.time:
        problems.append(f"time: {a.time} != {b.time}")
    if list(a.nodes) != list(b.nodes):
        problems.append(f"node names/order: {list(a.nodes)} != {list(b.nodes)}")
    for name in a.nodes:
        if name in b.nodes and not a.nodes[name].equals(b.nodes[name]):
            left, right = a.nodes[name], b.nodes[name]
            if type(left) is not type(right):
                problems.append(f"node {name!r}: kind {left.kind} != {right.kind}")
                continue
            for field, spec in left.field_specs().items():
                if not spec.equal(getattr(left, field), getattr(right, field)):
                    problems.append(f"node {name!r}.{field}: {getattr(left, field)!r} != {getattr(right, field)!r}")
    if a.edges != b.edges:
        problems.append(f"edges: {[str(e) for e in a.edges]} != {[str(e) for e in b.edges]}")
    if dict(a.metadata) != dict(b.metadata):
        problems.append(f"metadata: {dict(a.metadata)} != {dict(b.metadata)}")
    return problems


def assert_graph_equal(a: Graph, b: Graph) -> None:
    """Raise AssertionError listing every difference between ``a`` and ``b``."""
    problems = graph_differences(a, b)
    if problems:
        raise AssertionError("graphs differ:\n  " + "\n  ".join(problems))


__all__ = ["assert_graph_equal", "graph_differences"]
