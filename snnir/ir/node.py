"""The node base class and the registry of node kinds.

A node is a frozen dataclass holding parameters only; it never points back to its graph. Each
subclass registers itself under its class name (``Node.registry["LIF"] is LIF``); serialisation,
the YAML loader, error messages and the support matrix all read that one table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import NodeParameterError, ShapeError
from .fields import FieldSpec, Tensor
from .init import Initializer

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Node:
    """Base of every primitive. Subclasses are frozen dataclasses whose fields carry a FieldSpec.

    Class attributes describe the kind to compilers without ``isinstance`` ladders:

    * ``stateful``: keeps state across time steps (neurons);
    * ``spiking``: its output value is a spike train ``S * graded_spikes_factor``;
    * ``state_variables``: the names a probe or an Output can record besides ``"value"``;
    * ``training_only``: acts only while training (Dropout), identity otherwise;
    * ``keeps_spikes``: its output is a spike train whenever every input is one (it moves or picks
      values, never mixes them: Flatten, MaxPool2d, Dropout);
    * ``keeps_zeros``: a zero input gives a zero output, so sparse inputs give sparse outputs (pools,
      reshapes, scaling). Analyses read both (SynOps, :func:`snnir.passes.sparse_values`); a subclass may
      make either a property of its fields.
    """

    kind: ClassVar[str] = "Node"
    short_name: ClassVar[str] = "node"
    stateful: ClassVar[bool] = False
    spiking: ClassVar[bool] = False
    state_variables: ClassVar[tuple[str, ...]] = ()
    training_only: ClassVar[bool] = False
    keeps_spikes: ClassVar[bool] = False
    keeps_zeros: ClassVar[bool] = False
    #: Fields that only matter for training (surrogates, learn flags); inference backends ignore them.
    training_fields: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[dict[str, type[Node]]] = {}

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        cls.kind = cls.__name__
        existing = Node.registry.get(cls.kind)
        # The same class defined again (a reloaded module, a re-run notebook cell) replaces itself; a class
        # of the same name from another module would silently take over the kind files are read with.
        if existing is not None and _origin(existing) != _origin(cls):
            raise TypeError(
                f"node kind {cls.kind!r} is already registered by {'.'.join(_origin(existing))}; a kind is named "
                f"by its class name, so {'.'.join(_origin(cls))} needs another name"
            )
        Node.registry[cls.kind] = cls

    def __post_init__(self) -> None:
        self._prepare()
        for name, field_spec in self.field_specs().items():
            value = field_spec.normalize(getattr(self, name), f"{self.kind}.{name}")
            object.__setattr__(self, name, value)
        self._check()

    def _prepare(self) -> None:
        """Resolve user conveniences that depend on several fields, before normalisation."""

    def _check(self) -> None:
        """Cross-field checks and derived fields; runs after every field is normalised."""

    @classmethod
    def field_specs(cls) -> dict[str, FieldSpec]:
        """The spec of every serialised field: positional fields first, then keyword-only ones,
        each group in declaration order (so a LIF reads ``beta`` before the shared neuron fields)."""
        specified = [f for f in dataclasses.fields(cls) if "spec" in f.metadata]
        ordered = [f for f in specified if not f.kw_only] + [f for f in specified if f.kw_only]
        return {f.name: f.metadata["spec"] for f in ordered}

    @classmethod
    def field_defaults(cls) -> dict[str, Any]:
        """Default value of every field that has one."""
        defaults = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f.name] = f.default_factory()
        return defaults

    # -- shapes ---------------------------------------------------------------------------------
    def infer_output(self, input_shape: Shape | None) -> Shape:
        """Output shape (without batch and time) for a given input shape; raises ShapeError."""
        raise NotImplementedError(f"{self.kind} does not define a shape rule")

    def check_per_neuron(self, shape: Shape) -> None:
        """Raise if a per-neuron parameter does not broadcast to ``shape``."""
        for name, field_spec in self.field_specs().items():
            value = getattr(self, name)
            if not (isinstance(field_spec, Tensor) and field_spec.per_neuron and isinstance(value, np.ndarray)):
                continue
            try:
                broadcast = np.broadcast_shapes(value.shape, shape)
            except ValueError:
                broadcast = None
            if broadcast != tuple(shape):
                raise ShapeError(
                    f"{self.kind}.{name} has shape {value.shape}, which does not broadcast to the "
                    f"{self.kind}'s shape {tuple(shape)} (that of its input); give a scalar or an array of shape {tuple(shape)}"
                )

    # -- lazy parameters ------------------------------------------------------------------------
    def lazy_fields(self) -> list[str]:
        """Names of fields still holding an initialiser."""
        return [name for name in self.field_specs() if isinstance(getattr(self, name), Initializer)]

    @property
    def is_lazy(self) -> bool:
        return bool(self.lazy_fields())

    def parameter_shape(self, name: str, input_shape: Shape) -> Shape:
        """Shape a lazy parameter is drawn with; per-neuron parameters take the node's input shape."""
        return tuple(input_shape)

    def fan_in(self, input_shape: Shape) -> int | None:
        """Fan-in used by the default initialiser (None for nodes without weights)."""
        return None

    def materialize(self, input_shape: Shape, rng: np.random.Generator) -> Node:
        """Draw every lazy parameter; ``input_shape`` comes from shape inference."""
        changes = {}
        for name in self.lazy_fields():
            initializer: Initializer = getattr(self, name)
            shape = self.parameter_shape(name, input_shape)
            try:
                changes[name] = initializer.sample(shape, rng, self.fan_in(input_shape))
            except NodeParameterError as error:
                raise NodeParameterError(f"{self.kind}.{name}: {error}") from None
        return self.replace(**changes) if changes else self

    # -- introspection --------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Concrete array parameters, by field name."""
        return {
            name: value
            for name, spec_ in self.field_specs().items()
            if isinstance(spec_, Tensor) and isinstance(value := getattr(self, name), np.ndarray)
        }

    def parameter_count(self) -> int:
        return sum(int(a.size) for a in self.arrays().values())

    def macs(self, input_shape: Shape | None, output_shape: Shape) -> int:
        """Multiply-accumulates of one dense evaluation for one sample and step: synapses and pools count
        theirs, other nodes none. SynOps scale them by the input's activity (:mod:`snnir.analysis`)."""
        return 0

    def recordable(self) -> tuple[str, ...]:
        """What an Output or a probe may record of this node."""
        return ("value",) + (("spikes",) if self.spiking else ()) + self.state_variables

    def __reduce__(self) -> tuple:
        """Pickle and copy through the constructor, which checks and freezes the arrays again (a copy made
        from the instance's ``__dict__`` would hold writable arrays)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return (_rebuild, (type(self), values))

    def replace(self, **changes: Any) -> Node:
        """A copy with some fields changed (nodes are immutable)."""
        return dataclasses.replace(self, **changes)

    def equals(self, other: Node) -> bool:
        """Structural equality: same kind and equal fields (arrays compared element-wise)."""
        if type(self) is not type(other):
            return False
        return all(s.equal(getattr(self, n), getattr(other, n)) for n, s in self.field_specs().items())

    def describe(self, include_training: bool = False) -> str:
        """``field=value`` pairs that differ from the defaults, for the summary table."""
        hidden = self.implied_fields()
        parts = []
        for name, field_spec in self.field_specs().items():
            skipped = name in hidden or (name in self.training_fields and not include_training)
            if skipped or getattr(self, name) is None or self.is_default(name):
                continue
            parts.append(f"{name}={field_spec.describe(getattr(self, name))}")
        return " ".join(parts)

    def is_default(self, name: str) -> bool:
        """Whether field ``name`` holds its default (compared in normalised form: ``stride=1`` is ``(1, 1)``)."""
        defaults = self.field_defaults()
        if name not in defaults:
            return False
        field_spec = self.field_specs()[name]
        try:
            default = field_spec.normalize(defaults[name], f"{self.kind}.{name}")
        except NodeParameterError:  # sentinels such as AUTO normalise only together with their node
            return False
        value = getattr(self, name)
        if isinstance(default, tuple) and isinstance(value, tuple) and len(set(default)) == 1:
            return set(value) == set(default)  # a broadcast single int
        return field_spec.equal(value, default)

    def implied_fields(self) -> tuple[str, ...]:
        """Fields the summary leaves out because other fields imply them (sizes of a given weight)."""
        return ()

    def __repr__(self) -> str:
        return f"{self.kind}({self.describe(include_training=True)})"


def _origin(kind: type) -> tuple[str, str]:
    """Where a node class is defined: ``(module, qualified name)``."""
    return kind.__module__, kind.__qualname__


def _rebuild(kind: type[Node], values: dict[str, Any]) -> Node:
    """A node of ``kind`` from its field values (:meth:`Node.__reduce__`)."""
    return kind(**values)


__all__ = ["Node", "Shape"]

