"""Analyses every backend shares: which nodes are time-invariant, which are dead."""

from __future__ import annotations

from ..ir.graph import Graph
from ..ir.io import Input, Output


def time_invariant_nodes(graph: Graph, *, training: bool = False) -> frozenset[str]:
    """Nodes whose value is the same at every step, so a backend may compute them once (hoisting).

    A node is time-invariant when it is a ``direct`` Input, or a stateless node (not an Output) whose
    incoming edges are all undelayed and come from time-invariant nodes. While ``training``,
    training-only nodes (Dropout) draw a new mask every step and are not invariant.
    """
    invariant: set[str] = set()
    for name in graph.topological_order():
        node = graph.nodes[name]
        if isinstance(node, Input):
            if node.encoding == "direct":
                invariant.add(name)
            continue
        if node.stateful or isinstance(node, Output) or (training and node.training_only):
            continue
        edges = graph.incoming(name)
        if edges and all(e.delay == 0 and e.src in invariant for e in edges):
            invariant.add(name)
    return frozenset(invariant)


def spike_carriers(graph: Graph) -> frozenset[str]:
    """Nodes whose value is a spike train: spiking nodes, and nodes that keep spikes (``Node.keeps_spikes``:
    Flatten, MaxPool2d, Dropout) fed only by spikes.

    A synapse fed by a spike carrier can be event-driven (numba) and its cost counted in SynOps.
    Graded spikes (``graded_spikes_factor != 1``) still count: they are zero or one fixed value.
    """
    carriers: set[str] = set()
    for name in graph.topological_order():
        node = graph.nodes[name]
        edges = graph.incoming(name)
        if node.spiking or (node.keeps_spikes and edges and all(e.src in carriers for e in edges)):
            carriers.add(name)
    return frozenset(carriers)


def sparse_values(graph: Graph) -> frozenset[str]:
    """Nodes whose values are mostly zeros: spike carriers, ``sequence`` inputs (encoded spike trains)
    and zero-preserving nodes (``Node.keeps_zeros``: pools, Flatten, Dropout, Scale) fed only by those (a SumPool of spikes counts spikes). A synapse fed by
    such a value can skip its zeros (numba's event-driven synapses); its cost follows their fraction."""
    sparse: set[str] = set(spike_carriers(graph))
    for name in graph.topological_order():
        node = graph.nodes[name]
        edges = graph.incoming(name)
        if isinstance(node, Input) and node.encoding == "sequence":
            sparse.add(name)
        elif node.keeps_zeros and edges and all(e.src in sparse for e in edges):
            sparse.add(name)
    return frozenset(sparse)


def live_nodes(graph: Graph) -> frozenset[str]:
    """Nodes whose value reaches an Output, plus every Input (inputs define the calling convention)."""
    live = set(graph.outputs)
    frontier = list(graph.outputs)
    while frontier:
        for edge in graph.incoming(frontier.pop()):
            if edge.src not in live:
                live.add(edge.src)
                frontier.append(edge.src)
    return frozenset(live | set(graph.inputs))


def remove_dead_nodes(graph: Graph) -> Graph:
    """Drop nodes (and their edges) whose value reaches no Output; Inputs are kept."""
    live = live_nodes(graph)
    dead = [name for name in graph.nodes if name not in live]
    return graph.without_nodes(dead) if dead else graph


__all__ = ["time_invariant_nodes", "spike_carriers", "sparse_values", "live_nodes", "remove_dead_nodes"]
