"""``snnir.compile``: validate, then hand the graph to a backend's lowering."""

from __future__ import annotations

import os
from typing import Any

from .formats import load
from .ir.graph import Graph
from .registry import get_backend
from .validate import validate


def compile(graph: Graph | str | os.PathLike, backend: str = "reference", **options: Any) -> Any:  # noqa: A001
    """Compile ``graph`` (or a model file) for ``backend``.

    Runs validation and shape inference, requires every parameter to be materialised, then calls the
    backend, which applies the passes it benefits from (hoisting, folding...) and lowers node by node.

    Args:
        graph: a Graph, or a path to a ``.snnir``/``.yaml`` file.
        backend: ``"reference"``, ``"torch"``, ``"numba"``, ``"onnx"`` or a plug-in's name.
        options: backend options, e.g. ``overrides={LIF: rule}``; see each backend's documentation.

    Returns:
        The backend's compiled model (a :class:`~snnir.runtime.CompiledModel`, or an ``nn.Module`` for torch).
    """
    if isinstance(graph, (str, os.PathLike)):
        graph = load(graph)
    chosen = get_backend(backend)
    validate(graph, require_materialized=True)
    return chosen.compile(graph, **options)


__all__ = ["compile"]
