"""What emit rules write into: unique names, initializers, and the node list of one ONNX graph scope.

An exported model has up to two scopes, the main graph and the body of its Scan; they share one
:class:`Names` (ONNX wants every value name unique across a graph and its subgraphs) and one
:class:`Initializers` table (the body reads weights from the outer scope). Emit rules see only
:class:`Lowering`, which adds the per-step view: parameters, constants, and the previous and next
value of every state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from snnir.errors import UnsupportedNodeError
from snnir.ir.graph import Graph


class Names:
    """Hands out value names that are unique within one model, readable ones first."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def fresh(self, hint: str) -> str:
        """``hint`` itself if free, else ``hint_2``, ``hint_3``..."""
        name, count = hint, 1
        while name in self.taken:
            count += 1
            name = f"{hint}_{count}"
        self.taken.add(name)
        return name


class Initializers:
    """The main graph's initializers, in creation order (so equal graphs give equal bytes)."""

    def __init__(self, names: Names):
        self.names = names
        self.tensors: dict[str, TensorProto] = {}
        self._constants: dict[tuple, str] = {}

    def add(self, hint: str, array: np.ndarray) -> str:
        name = self.names.fresh(hint)
        # np.asarray with order="C", not ascontiguousarray, which would turn a 0-d array into shape (1,)
        self.tensors[name] = numpy_helper.from_array(np.asarray(array, order="C"), name)
        return name

    def constant(self, value: Any, dtype: type = np.float32) -> str:
        """A shared constant initializer (one per distinct dtype, shape and value)."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            text = "x".join(map(str, array.shape)) if array.ndim else format(array.item(), "g")
            self._constants[key] = self.add(f"const.{array.dtype.name}.{text}", array)
        return self._constants[key]


class Parameters:
    """One initializer per array parameter of the graph, named ``<node>.<field>``.

    The metadata's copy of the graph points at these initializers (see :mod:`.metadata`), so every
    array is stored once, exactly as the IR holds it; 0-d arrays get an initializer too, for the ops.
    """

    def __init__(self, graph: Graph, initializers: Initializers):
        self.names: dict[tuple[str, str], str] = {}
        self.by_id: dict[int, str] = {}
        for node_name, node in graph.nodes.items():
            for field, array in node.arrays().items():
                name = self.by_id.get(id(array)) or initializers.add(f"{node_name}.{field}", array)
                self.names[(node_name, field)] = name
                self.by_id.setdefault(id(array), name)

    def encode(self, array: np.ndarray) -> dict[str, str]:
        """Array encoder for :func:`snnir.formats.schema.graph_to_dict`: a reference to the initializer."""
        return {"initializer": self.by_id[id(array)]}


class Scope:
    """The node list of one ONNX graph (main graph or Scan body)."""

    def __init__(self, names: Names):
        self.names = names
        self.nodes: list = []

    def op(self, op_type: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        """Append one single-output node; returns the name of its output."""
        output = self.names.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output


class Lowering:
    """The view emit rules get of one step: ops, parameters, constants and states.

    Ops on parameters alone go through :meth:`prepare` into the ``setup`` scope (the main graph), so a
    Scan body never recomputes them. States are keyed ``(node, variable)``: :meth:`previous` is the
    value at ``t − 1`` (an input of the step), :meth:`set_next` records the value at ``t``. The builder
    checks that every state declared by the plan receives a next value.
    """

    def __init__(
        self,
        graph: Graph,
        scope: Scope,
        initializers: Initializers,
        parameters: Parameters,
        previous: dict[tuple[str, str], str],
        setup: Scope | None = None,
    ):
        self.graph = graph
        self.shapes = graph.shapes
        self.scope = scope
        self.setup = setup or scope
        self.initializers = initializers
        self.parameters = parameters
        self._previous = previous
        self.next: dict[tuple[str, str], str] = {}

    def op(self, op_type: str, *inputs: str, hint: str, **attributes: Any) -> str:
        return self.scope.op(op_type, list(inputs), hint, **attributes)

    def prepare(self, op_type: str, *inputs: str, hint: str, **attributes: Any) -> str:
        """An op on parameters only (a clamp): emitted once, outside the time loop of a sequence model."""
        return self.setup.op(op_type, list(inputs), hint, **attributes)

    def param(self, node: str, field: str) -> str:
        """The initializer holding array parameter ``field`` of ``node``."""
        return self.parameters.names[(node, field)]

    def const(self, value: Any, dtype: type = np.float32) -> str:
        return self.initializers.constant(value, dtype)

    def heaviside(self, z: str, hint: str) -> str:
        """``H(z) = 1 if z > 0 else 0`` as float32: ``Cast(Greater(z, 0))``."""
        positive = self.op("Greater", z, self.const(0.0), hint=f"{hint}/positive")
        return self.op("Cast", positive, hint=hint, to=TensorProto.FLOAT)

    def previous(self, node: str, variable: str) -> str:
        try:
            return self._previous[(node, variable)]
        except KeyError:
            raise UnsupportedNodeError(f"node {node!r}: the onnx lowering has no state {variable!r}") from None

    def set_next(self, node: str, variable: str, value: str) -> None:
        self.next[(node, variable)] = value


__all__ = ["Names", "Initializers", "Parameters", "Scope", "Lowering"]
