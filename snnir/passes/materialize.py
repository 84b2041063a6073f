"""Materialisation: draw every lazy parameter once shapes are known."""

from __future__ import annotations

import math
import zlib

import numpy as np

from ..errors import NodeParameterError
from ..ir.graph import Graph


def node_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream of one node: fixed by the seed and the node's name, so adding or removing
    another node never changes this node's draws."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


#: Largest parameter array drawn (elements); a typo such as ``out_features: 1000000000`` must not
#: exhaust memory. Pass ``max_elements`` to lift it deliberately.
MAX_PARAMETER_ELEMENTS = 2**28


def materialize(graph: Graph, seed: int = 0, *, max_elements: int = MAX_PARAMETER_ELEMENTS) -> Graph:
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
            input_shape = graph.input_shape(name)
            for field in node.lazy_fields():
                size = math.prod(node.parameter_shape(field, input_shape))
                if size > max_elements:
                    raise NodeParameterError(
                        f"node {name!r} ({node.kind}).{field}: drawing {size:,} values exceeds the limit of "
                        f"{max_elements:,}; check the layer sizes, or pass max_elements to materialize()"
                    )
            try:
                updates[name] = node.materialize(input_shape, node_rng(int(seed), name))
            except NodeParameterError as error:
                raise NodeParameterError(f"node {name!r}: {error}") from None
    return graph.with_nodes(updates)


__all__ = ["materialize", "node_rng", "MAX_PARAMETER_ELEMENTS"]
