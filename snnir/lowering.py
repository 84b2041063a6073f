"""Lowering tables: one per backend, mapping node kinds to small rules (NIRTorch style).

A backend fills its table with ``@RULES.register(LIF)`` over a function; ``rule_for`` finds the rule
of a node (walking the class hierarchy, so a user subclass of LIF lowers like LIF) or raises
UnsupportedNodeError listing what the backend supports. Users may override rules per compile call:
``snnir.compile(graph, "torch", overrides={LIF: my_rule})``; a package adding a node kind registers its
rules for every compile with ``snnir.get_backend("torch").rules.register(MyKind)(rule)``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

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
                self._rules[kind] = _callable(rule, kind)
            return rule

        return decorate

    def rule_for(self, node: Node, name: str = "?") -> Callable:
        for kind in type(node).__mro__:
            if kind in self._rules:
                return self._rules[kind]
        raise UnsupportedNodeError(
            f"backend {self.backend!r} cannot lower node {name!r} ({node.kind}); "
            f"it supports: {', '.join(self.supported())}. Give {node.kind} a rule for one compile with "
            f"overrides={{{node.kind}: rule}}, or for every compile with "
            f"snnir.get_backend({self.backend!r}).rules.register({node.kind})(rule)"
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
            merged[kind] = _callable(rule, kind)
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


def _callable(rule: Any, kind: type[Node]) -> Callable:
    """Refuse a rule that is not callable (a module or a rule's name) when it is given, not when a
    compile first calls it far from the cause."""
    if not callable(rule):
        raise UnsupportedNodeError(f"the rule given for {getattr(kind, '__name__', kind)} is not callable: {rule!r}")
    return rule


__all__ = ["LoweringTable"]
