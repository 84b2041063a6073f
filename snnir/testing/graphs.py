"""Structural comparison of graphs, for tests (``==`` on graphs is identity, as arrays have no truth value)."""

from __future__ import annotations

import numpy as np

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
                x, y = getattr(left, field), getattr(right, field)
                if not spec.equal(x, y):
                    detail = _array_difference(x, y) if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) else f"{x!r} != {y!r}"
                    problems.append(f"node {name!r}.{field}: {detail}")
    if a.edges != b.edges:
        problems.append(f"edges: {[str(e) for e in a.edges]} != {[str(e) for e in b.edges]}")
    if dict(a.metadata) != dict(b.metadata):
        problems.append(f"metadata: {dict(a.metadata)} != {dict(b.metadata)}")
    return problems


def _array_difference(a: np.ndarray, b: np.ndarray) -> str:
    """Where two arrays differ, in one line (a weight matrix printed whole would run to pages)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape {list(a.shape)} {a.dtype} != {list(b.shape)} {b.dtype}"
    differ = ~((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else (a == b))
    first = tuple(int(i) for i in np.argwhere(differ)[0])
    largest = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))[differ]))
    return f"{int(differ.sum())} of {a.size} values differ, first at {first}: {a[first].item()!r} != {b[first].item()!r}; largest difference {largest:.3g}"


def assert_graph_equal(a: Graph, b: Graph) -> None:
    """Raise AssertionError listing every difference between ``a`` and ``b``."""
    problems = graph_differences(a, b)
    if problems:
        raise AssertionError("graphs differ:\n  " + "\n  ".join(problems))


__all__ = ["assert_graph_equal", "graph_differences"]
