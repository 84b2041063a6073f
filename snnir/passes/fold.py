"""Folding: merge a Scale into the Linear or Conv that feeds it.

``s ⊙ (W x + b)`` becomes ``(s W) x + s b`` when ``s`` is one factor per output feature or channel.
The result is mathematically equal but rounds differently in float32 unless every factor is a power
of two, so the reference interpreter never folds; backends opt in.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Edge, Graph
from ..ir.layers import Conv1d, Conv2d, Linear, Scale

_FOLDABLE = (Linear, Conv1d, Conv2d)


def _per_output_factor(factor: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """The factor as one value per output feature/channel, or None if it varies along other axes."""
    full = np.broadcast_to(factor, shape)
    per_channel = full.reshape(shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        return None
    return per_channel[:, 0].astype(np.float32)


def fold_scales(graph: Graph) -> Graph:
    """Return a graph where every foldable Scale is merged into its producer (see module doc)."""
    shapes = graph.shapes
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    for name, node in graph.nodes.items():
        incoming = [e for e in edges if e.dst == name]
        # a Scale the torch backend trains (learn_factor) keeps its own parameter
        if not isinstance(node, Scale) or node.learn_factor or len(incoming) != 1 or incoming[0].delay:
            continue
        source = incoming[0].src
        producer = nodes[source]
        if not isinstance(producer, _FOLDABLE) or sum(e.src == source for e in edges) != 1:
            continue
        factor = _per_output_factor(node.factor, shapes[name])
        if factor is None:
            continue
        expand = (slice(None),) + (None,) * (producer.weight.ndim - 1)
        bias = None if producer.bias is None else producer.bias * factor
        nodes[source] = producer.replace(weight=producer.weight * factor[expand], bias=bias)
        del nodes[name]
        edges = [
            Edge(source, e.dst, e.delay) if e.src == name else e for e in edges if e.dst != name
        ]
    return graph.replace(nodes=nodes, edges=tuple(edges))


__all__ = ["fold_scales"]
