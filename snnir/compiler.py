"""``snnir.compile``: validate, then hand the graph to a backend's lowering."""

from __future__ import annotations

import difflib
import inspect
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
    _check_options(backend, chosen.compile, options)
    validate(graph, require_materialized=True)
    return chosen.compile(graph, **options)


def _check_options(backend: str, compile_graph: Any, options: dict[str, Any]) -> None:
    """A TypeError naming the backend, the closest option and the ones it takes, for an option its
    ``compile`` does not declare (a backend taking ``**options`` checks them itself)."""
    parameters = inspect.signature(compile_graph).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    known = [name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY]
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"the {backend!r} backend has no option {name!r}{hint}; it takes: {', '.join(known) or 'none'}")


__all__ = ["compile"]
