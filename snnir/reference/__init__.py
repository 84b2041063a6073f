"""The reference backend: a pure-NumPy interpreter that defines snnir's semantics."""

from __future__ import annotations

from typing import Any, Mapping

from ..ir.graph import Graph
from .interpreter import ReferenceModel
from .rules import RULES


class ReferenceBackend:
    """``snnir.compile(graph, "reference")``: every primitive, no gaps, no speed."""

    name = "reference"
    extra = None
    rules = RULES
    #: Features this backend cannot run, with the reason (none: it is the definition).
    known_gaps: Mapping[str, str] = {}

    def compile(self, graph: Graph, *, overrides: Mapping | None = None, **options: Any) -> ReferenceModel:
        if options:
            raise TypeError(f"the reference backend takes no options besides overrides, found {sorted(options)}")
        return ReferenceModel(graph, RULES.with_overrides(overrides))


__all__ = ["ReferenceBackend", "ReferenceModel", "RULES"]
