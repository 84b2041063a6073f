"""Python builders: :func:`Sequential` for a layer stack, :class:`GraphBuilder` for any graph.

The seed tutorial's CNN reads::

    graph = snnir.Sequential(
        Conv2d(8, 5), MaxPool2d(2), LIF(beta=0.9, surrogate="fast_sigmoid"),
        Conv2d(16, 5), MaxPool2d(2), LIF(beta=0.9, surrogate="fast_sigmoid"),
        Flatten(), Linear(10), LIF(beta=0.9, surrogate="fast_sigmoid"),
        input_shape=(1, 28, 28), num_steps=25,
    )

Sizes are inferred and weights drawn from ``seed`` with PyTorch's default initialisation.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .errors import GraphError
from .ir.graph import Edge, Graph, TimeSpec
from .ir.io import Input, Output
from .ir.node import Node
from .passes.materialize import materialize as materialize_graph
from .validate import validate


@dataclass(frozen=True)
class Recurrent:
    """A layer-stack macro for a recurrent neuron layer (snnTorch ``RLeaky``/``RSynaptic``).

    Expands to ``neuron`` plus a stateless ``synapse`` (usually a ``Linear`` or ``Scale``) that carries
    the neuron's output back into its own input: the edge neuron -> synapse is delayed by ``delay``
    steps, so the synapse sees the spikes of step ``t - delay`` and, like snnTorch's ``recurrent(spk)``,
    contributes its bias from the very first step::

        Sequential(Linear(128), Recurrent(LIF(0.9), Linear(128)), Linear(10), LIF(0.9), input_shape=(784,))
    """

    neuron: Node
    synapse: Node
    delay: int = 1


class GraphBuilder:
    """Builds a general graph node by node; names are the handles.

    Example (a recurrent LIF layer)::

        b = GraphBuilder(num_steps=100)
        x = b.input("x", shape=(784,), encoding="sequence")
        lif = b.add("lif1", LIF(0.9), b.add("fc1", Linear(128), x))
        rec = b.add("rec1", Linear(128))
        b.connect(lif, rec, delay=1)  # the synapse reads last step's spikes (snnTorch RLeaky)
        b.connect(rec, lif)
        b.output("spikes", b.add("lif2", LIF(0.9), b.add("fc2", Linear(10), lif)))
        graph = b.build(seed=0)
    """

    def __init__(self, name: str = "graph", *, num_steps: int = 25, dt: float = 1e-3):
        self.name = name
        self.time = TimeSpec(num_steps, dt)
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []
        self._counters: dict[str, int] = {}

    def _fresh_name(self, node: Node) -> str:
        while True:
            count = self._counters.get(node.short_name, 0) + 1
            self._counters[node.short_name] = count
            candidate = f"{node.short_name}{count}"
            if candidate not in self._nodes:
                return candidate

    def _require(self, name: str) -> str:
        if name not in self._nodes:
            close = difflib.get_close_matches(str(name), list(self._nodes), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GraphError(f"unknown node {name!r}{hint}")
        return name

    def node(self, name: str) -> Node:
        """The node added under ``name``."""
        return self._nodes[self._require(name)]

    def input(self, name: str, shape: Iterable[int] | int, encoding: str = "direct") -> str:
        """Declare an input of ``shape`` (without batch and time); returns its name."""
        return self.add(name, Input(tuple(shape) if not isinstance(shape, int) else (shape,), encoding=encoding))

    def add(self, name: str | None, node: Node, *inputs: str) -> str:
        """Add ``node`` (auto-named when ``name`` is None) fed by ``inputs`` (summed); returns its name."""
        if not isinstance(node, Node):
            raise GraphError(f"expected a snnir node, found {type(node).__name__}")
        name = self._fresh_name(node) if name is None else name
        if not isinstance(name, str) or not name:
            raise GraphError(f"node names must be non-empty strings, found {name!r}")
        if name in self._nodes:
            raise GraphError(f"a node named {name!r} already exists")
        for source in inputs:
            self._require(source)
        self._nodes[name] = node
        self._edges.extend(Edge(source, name) for source in inputs)
        return name

    def connect(self, src: str, dst: str, delay: int = 0) -> None:
        """Add an edge; use ``delay >= 1`` for recurrent connections."""
        self._edges.append(Edge(self._require(src), self._require(dst), delay))

    def chain(self, source: str, *layers: Node | Recurrent | tuple[str, Node | Recurrent]) -> str:
        """Stack ``layers`` after ``source`` (each feeds the next); returns the last node's name.

        A layer may be given as ``(name, layer)`` to choose its name.
        """
        current = source
        for item in layers:
            name, layer = item if isinstance(item, tuple) else (None, item)
            if isinstance(layer, Recurrent):
                current = self.add(name, layer.neuron, current)
                feedback = self.add(f"{current}_rec", layer.synapse)
                self.connect(current, feedback, delay=layer.delay)
                self.connect(feedback, current)
            else:
                current = self.add(name, layer, current)
        return current

    def output(self, name: str, source: str, record: str = "value") -> str:
        """Record ``record`` (value, spikes, membrane or current) of ``source`` under ``name``."""
        return self.add(name, Output(record=record), self._require(source))

    def build(self, *, seed: int = 0, materialize: bool = True, check: bool = True) -> Graph:
        """The graph, validated and (unless ``materialize=False``) with every lazy parameter drawn."""
        graph = Graph(nodes=dict(self._nodes), edges=tuple(self._edges), time=self.time, name=self.name)
        if check:
            validate(graph)
        return materialize_graph(graph, seed) if materialize else graph


def default_outputs(last: Node) -> dict[str, str]:
    """What a layer stack records of its last layer by default: ``{output_name: record}``."""
    if last.spiking and "membrane" in last.state_variables:
        return {"spikes": "value", "membrane": "membrane"}
    if "membrane" in last.state_variables:
        return {"membrane": "membrane"}
    return {"output": "value"}


def Sequential(  # noqa: N802 - reads as a layer container, like torch.nn.Sequential
    *layers: Node | Recurrent | tuple[str, Node | Recurrent] | Mapping[str, Node | Recurrent],
    input_shape: Iterable[int] | int,
    num_steps: int = 25,
    dt: float = 1e-3,
    encoding: str = "direct",
    name: str = "sequential",
    outputs: Mapping[str, str] | Iterable[str] | None = None,
    seed: int = 0,
    materialize: bool = True,
) -> Graph:
    """A graph where each layer feeds the next, from one input named ``"x"``.

    Args:
        layers: nodes, ``(name, node)`` pairs, :class:`Recurrent` macros, or one mapping name -> node.
        input_shape: the input's shape without batch and time.
        num_steps, dt: the time spec. encoding: ``"direct"`` or ``"sequence"``.
        outputs: what to record of the last layer, as ``{output_name: record}`` or a list of records;
            by default spikes and membrane of a spiking neuron, the membrane of an LI, else the value.
        seed: seed of the drawn weights. materialize: False keeps the graph lazy.
    """
    if len(layers) == 1 and isinstance(layers[0], Mapping):
        layers = tuple(layers[0].items())
    if not layers:
        raise GraphError("Sequential needs at least one layer")
    builder = GraphBuilder(name, num_steps=num_steps, dt=dt)
    last = builder.chain(builder.input("x", input_shape, encoding), *layers)
    last_node = builder.node(last)
    if outputs is None:
        records = default_outputs(last_node)
    elif isinstance(outputs, Mapping):
        records = dict(outputs)
    else:
        records = {record: record for record in outputs}
    for output_name, record in records.items():
        builder.output(output_name, last, record)
    return builder.build(seed=seed, materialize=materialize)


__all__ = ["Sequential", "GraphBuilder", "Recurrent"]
