"""Materialisation: draw every lazy parameter once shapes are known."""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import NodeParameterError
from ..ir.graph import Graph


def node_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream of one node: fixed by the seed and the node's name, so adding or removing
    another node never changes this node's draws."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


def materialize(graph: Graph, seed: int = 0) -> Graph:
    """Return ``graph`` with every initialiser replaced by a drawn float32 array.

    Weights follow PyTorch's default initialisation (see :mod:`snnir.ir.init`); sizes left open
    (``in_features``, ``in_channels``) are filled from shape inference. A graph without lazy
    parameters is returned unchanged.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise NodeParameterError(f"seed must be a non-negative integer, found {seed!r}")
    if not graph.is_lazy:
        return graph
    updates = {}
    for name, node in graph.nodes.items():
        if node.is_lazy:
            try:
                updates[name] = node.materialize(graph.input_shape(name), node_rng(int(seed), name))
            except NodeParameterError as error:
                raise NodeParameterError(f"node {name!r}: {error}") from None
    return graph.with_nodes(updates)


__all__ = ["materialize", "node_rng"]
