"""Lowering tables: one per backend, mapping node kinds to small rules (NIRTorch style).

A backend fills its table with ``@RULES.register(LIF)`` over a function; ``rule_for`` finds the rule
of a node (walking the class hierarchy, so a user subclass of LIF lowers like LIF) or raises
UnsupportedNodeError listing what the backend supports. Users may override rules per compile call:
``snnir.compile(graph, "torch", overrides={LIF: my_rule})``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from .errors import UnsupportedNodeError
from .ir.io import Input, Output
from .ir.node import Node


class LoweringTable:
    """Rules of one backend, keyed by node class."""

    def __init__(self, backend: str, rules: Mapping[type[Node], Callable] | None = None):
        self.backend = backend
        self._rules: dict[type[Node], Callable] = dict(rules or {})

    def register(self, *kinds: type[Node]) -> Callable[[Callable], Callable]:
        """Decorator registering a rule for one or more node classes."""

        def decorate(rule: Callable) -> Callable:
            for kind in kinds:
                self._rules[kind] = rule
            return rule

        return decorate

    def rule_for(self, node: Node, name: str = "?") -> Callable:
        for kind in type(node).__mro__:
            if kind in self._rules:
                return self._rules[kind]
        raise UnsupportedNodeError(
            f"backend {self.backend!r} cannot lower node {name!r} ({node.kind}); "
            f"it supports: {', '.join(self.supported())}"
        )

    def with_overrides(self, overrides: Mapping[type[Node] | str, Callable] | None) -> LoweringTable:
        """A copy where ``overrides`` (keyed by class or kind name) replace or add rules."""
        if not overrides:
            return self
        merged = dict(self._rules)
        for key, rule in overrides.items():
            kind = Node.registry.get(key) if isinstance(key, str) else key
            if not (isinstance(kind, type) and issubclass(kind, Node)):
                raise UnsupportedNodeError(f"override key {key!r} is not a node kind; known: {', '.join(sorted(Node.registry))}")
            merged[kind] = rule
        return LoweringTable(self.backend, merged)

    def supported(self) -> tuple[str, ...]:
        """Kinds (registry names) this table can lower, including subclasses of registered classes."""
        return tuple(sorted(name for name, kind in Node.registry.items() if any(k in self._rules for k in kind.__mro__)))

    def missing(self, kinds: Iterable[str] | None = None) -> tuple[str, ...]:
        """Registered kinds without a rule (for completeness checks and the support matrix).

        Inputs and Outputs are wiring that every backend handles itself, so they are never missing.
        """
        supported = set(self.supported()) | {Input.kind, Output.kind}
        return tuple(sorted(k for k in (kinds or Node.registry) if k not in supported))


__all__ = ["LoweringTable"]
