"""Cost estimates: dense multiply-accumulates and event-driven synaptic operations (SynOps) per step.

A synapse layer (Linear, Conv) costs ``MACs`` per sample and step when its input is dense. Fed by a
sparse value (spikes, a spike-train input, a pool of spikes: :func:`snnir.passes.sparse_values`), an
event-driven implementation only touches the weights of nonzero inputs, so it costs
``SynOps = MACs × r`` where ``r`` is the fraction of the source's values that are nonzero (for spikes,
the firing rate: spikes per neuron and step), measured by running the model on data (:func:`activity`).
Pools cost one operation per window element.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .ir.graph import Graph
from .passes.analysis import sparse_values, spike_carriers


@dataclass(frozen=True)
class LayerCost:
    """Per sample and step: dense MACs, the source's firing rate (None if unmeasured or dense), SynOps."""

    node: str
    kind: str
    macs: int
    source_rate: float | None
    synops: float


def dense_macs(graph: Graph, name: str) -> int:
    """Multiply-accumulates of one synapse or pool node for one sample and step (``Node.macs``; 0 for
    other nodes)."""
    return int(graph.nodes[name].macs(graph.input_shape(name), graph.shapes[name]))


def synaptic_operations(graph: Graph, rates: dict[str, float] | None = None) -> list[LayerCost]:
    """Costs of every synapse and pool; ``rates`` maps sparse nodes to their measured nonzero fraction
    (:func:`activity`; :func:`firing_rates` covers the spike carriers only)."""
    rates = rates or {}
    sparse = sparse_values(graph)
    costs = []
    for name in graph.nodes:
        macs = dense_macs(graph, name)
        if not macs:
            continue
        sources = [e.src for e in graph.incoming(name)]
        measured = all(s in sparse and s in rates for s in sources)
        rate = float(np.mean([rates[s] for s in sources])) if measured else None
        costs.append(LayerCost(name, graph.nodes[name].kind, macs, rate, macs * rate if rate is not None else float(macs)))
    return costs


def firing_rates(model, inputs) -> dict[str, float]:
    """Mean firing rate (spikes per neuron and step, graded spikes counted as spikes) of every spike carrier."""
    graph = model.graph
    spiking = sorted(spike_carriers(graph), key=list(graph.nodes).index)
    result = model.run(inputs, probes=spiking)
    return {name: float(np.mean(result.probes[name] != 0)) for name in spiking}


def activity(model, inputs) -> dict[str, float]:
    """Fraction of nonzero values of every sparse node (:func:`snnir.passes.sparse_values`): the firing
    rate of spiking nodes, the spike density of ``sequence`` inputs, the fraction of nonempty windows of
    a pool of spikes. :func:`synaptic_operations` turns them into SynOps."""
    graph = model.graph
    sparse = sorted(sparse_values(graph), key=list(graph.nodes).index)
    given = inputs if isinstance(inputs, Mapping) else {graph.inputs[0]: inputs}
    result = model.run(inputs, probes=[name for name in sparse if name not in given])
    values = {**{name: np.asarray(given[name]) for name in sparse if name in given}, **result.probes}
    return {name: float(np.mean(values[name] != 0)) for name in sparse}


def format_costs(costs: list[LayerCost]) -> str:
    """A table of the costs with totals."""
    rows = [("node", "kind", "MACs/step", "input nonzero", "SynOps/step")]
    shown = [round(c.synops) for c in costs]  # the total is the sum of the rows as shown
    for c, synops in zip(costs, shown):
        rows.append((c.node, c.kind, f"{c.macs:,}", "dense" if c.source_rate is None else f"{c.source_rate:.3f}", f"{synops:,}"))
    rows.append(("total", "", f"{sum(c.macs for c in costs):,}", "", f"{sum(shown):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


__all__ = ["LayerCost", "dense_macs", "synaptic_operations", "activity", "firing_rates", "format_costs"]
