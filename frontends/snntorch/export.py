"""``to_snntorch``: an snnir graph -> the equivalent snnTorch model.

Two forms, chosen automatically (``form="auto"``):

* ``nn.Sequential`` of torch layers and ``init_hidden=True`` neurons (the last with ``output=True``) when
  the graph is a chain from one input to recorded values of its last layer, as in the seed CNN. It is
  stepped the snnTorch way: ``utils.reset(net)``, then ``spk, mem = net(x)`` once per step.
* otherwise a generated module (:class:`~.codegen.SnnTorchLoop`) whose ``forward`` runs the time loop
  over explicit neuron states, like the snnTorch quickstart's ``Net``: ``forward(x)`` returns the
  recorded outputs stacked over time, ``[T, B, ...]``.

A neuron fed back through a shape-preserving synapse (Linear, Conv2d with padding k//2, Scale) by one
delayed edge becomes an ``RLeaky``/``RSynaptic`` (see :func:`~.neurons.recurrent_mismatch`).
"""

from __future__ import annotations

import keyword
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from torch import nn

from snnir.errors import GraphError
from snnir.ir.graph import Graph
from snnir.ir.io import Output
from snnir.ir.layers import Conv2d, Linear, Scale
from snnir.ir.neurons import LI, CubaLIF
from snnir.validate import validate

from .layers import EXPORTS
from .neurons import export_neuron, recurrent_mismatch

FORMS = ("auto", "sequential", "loop")
#: what a Sequential's last neuron returns per step with output=True, by snnir record
RETURNED = {"LIF": ("value", "membrane"), "IF": ("value", "membrane"), "CubaLIF": ("value", "current", "membrane")}


@dataclass
class Plan:
    """Which neurons absorb a recurrent synapse: ``groups[neuron] = synapse`` (``members`` holds the synapses)."""

    groups: dict[str, str] = field(default_factory=dict)

    @property
    def members(self) -> set[str]:
        return set(self.groups.values())

    def is_group_edge(self, src: str, dst: str) -> bool:
        return self.groups.get(src) == dst or self.groups.get(dst) == src


def plan(graph: Graph) -> Plan:
    """Find every neuron -> synapse -> neuron loop that an RLeaky/RSynaptic computes."""
    result = Plan()
    for name, node in graph.nodes.items():
        if not isinstance(node, (Linear, Conv2d, Scale)):
            continue
        incoming, outgoing = graph.incoming(name), graph.outgoing(name)
        if len(incoming) != 1 or len(outgoing) != 1 or incoming[0].src != outgoing[0].dst:
            continue
        neuron = incoming[0].src
        delays = (incoming[0].delay, outgoing[0].delay)
        if neuron in result.groups or not graph.nodes[neuron].stateful or sorted(delays) != [0, 1]:
            continue
        if recurrent_mismatch(graph.nodes[neuron], node, bias_from_step_zero=delays[0] == 1) is None:
            result.groups[neuron] = name
    return result


class Names:
    """Python identifiers for nodes, states and records: unique, never a keyword or a reserved name."""

    def __init__(self, reserved: set[str] = frozenset()):
        self.used = set(reserved)

    def fresh(self, base: str) -> str:
        ident = re.sub(r"\W", "_", base) or "v"
        if ident[0].isdigit() or keyword.iskeyword(ident):
            ident = f"n_{ident}"
        candidate, count = ident, 1
        while candidate in self.used:
            count += 1
            candidate = f"{ident}_{count}"
        self.used.add(candidate)
        return candidate


def export_layer(graph: Graph, plan_: Plan, name: str, **flags: bool) -> nn.Module:
    """The torch/snnTorch module computing node ``name`` (a neuron absorbs its recurrent synapse)."""
    node = graph.nodes[name]
    if node.stateful:
        recurrent = graph.nodes[plan_.groups[name]] if name in plan_.groups else None
        return export_neuron(node, name, recurrent, **flags)
    return EXPORTS.rule_for(node, name)(node)


def _chain(graph: Graph, plan_: Plan) -> tuple[list[str] | None, str]:
    """The layers from the single input to the last one, or None and the reason it is not a chain."""
    if len(graph.inputs) != 1:
        return None, f"it has {len(graph.inputs)} inputs"
    chain, current = [], graph.inputs[0]
    while True:
        onward = [e for e in graph.outgoing(current) if not plan_.is_group_edge(e.src, e.dst) and not isinstance(graph.nodes[e.dst], Output)]
        if not onward:
            break
        if len(onward) != 1 or onward[0].delay:
            return None, f"node {current!r} feeds {len(onward)} nodes or a delayed edge"
        current = onward[0].dst
        if len([e for e in graph.incoming(current) if not plan_.is_group_edge(e.src, e.dst)]) != 1:
            return None, f"node {current!r} sums several inputs"
        chain.append(current)
    covered = set(chain) | plan_.members | set(graph.inputs) | set(graph.outputs)
    if set(graph.nodes) - covered:
        return None, f"nodes {sorted(set(graph.nodes) - covered)} are off the main chain"
    return chain, ""


def sequential_mismatch(graph: Graph, plan_: Plan) -> str | None:
    """Why ``graph`` cannot be an ``nn.Sequential`` (None when it can)."""
    chain, reason = _chain(graph, plan_)
    if chain is None:
        return reason
    if not chain:
        return "it has no layer"
    for name in chain:
        node = graph.nodes[name]
        if isinstance(node, LI):
            return f"node {name!r} is an LI read-out, whose value (the membrane) no snnTorch neuron returns alone"
        if node.stateful and node.bias is not None:
            return f"node {name!r} ({node.kind}) has a bias, which is added to its input in an explicit loop"
    last = graph.nodes[chain[-1]]
    returned = RETURNED.get(last.kind, ("value",) if not last.stateful else ())
    for output in graph.outputs:
        record = graph.nodes[output].record
        if graph.output_source(output) != chain[-1] or ("value" if record == "spikes" else record) not in returned:
            return f"output {output!r} records something other than the last layer's {', '.join(returned)}"
    return None


def _child_names(graph: Graph, chain: list[str], reserved: set[str]) -> list[str]:
    """The children's names: the original module's (``'0'``, ``'1'``... from ``metadata["snntorch"]["modules"]``)
    when each layer has a plain, unique one, so that the original state dict loads; else the node names."""
    origin = graph.metadata.get("snntorch")
    paths = origin.get("modules") if isinstance(origin, dict) else None
    if isinstance(paths, dict):
        found = [paths.get(name) for name in chain]
        plain = all(isinstance(p, str) and p and "." not in p and p not in reserved for p in found)
        if plain and len(set(found)) == len(found):
            return found
    names = Names(reserved)
    return [names.fresh(name) for name in chain]


def build_sequential(graph: Graph, plan_: Plan, chain: list[str]) -> nn.Sequential:
    reserved = set(dir(nn.Sequential())) | {"snnir_spec"}  # children become attributes: avoid clashes (training...)
    layers = OrderedDict()
    for name, child in zip(chain, _child_names(graph, chain, reserved)):
        is_last = name == chain[-1]
        flags = {"init_hidden": True, "output": is_last} if graph.nodes[name].stateful else {}
        layers[child] = export_layer(graph, plan_, name, **flags)
    module = nn.Sequential(layers)
    last = graph.nodes[chain[-1]]
    returned = RETURNED.get(last.kind, ("value",))
    outputs = {}
    for output in graph.outputs:
        record = graph.nodes[output].record
        outputs[output] = returned.index("value" if record == "spikes" else record)
    module.snnir_spec = {
        "form": "sequential",
        "num_steps": graph.time.num_steps,
        "input": graph.inputs[0],
        "encoding": graph.nodes[graph.inputs[0]].encoding,
        "outputs": outputs,
    }
    return module


def to_snntorch(graph: Graph, *, form: str = "auto") -> nn.Module:
    """The snnTorch model computing ``graph``.

    Args:
        graph: a materialised snnir graph.
        form: ``"auto"`` (an ``nn.Sequential`` when possible, else a time-loop module; a graph made by
            ``from_snntorch`` from a time-loop module gets a time-loop module again), ``"sequential"`` or
            ``"loop"`` to insist on one.

    Returns:
        An ``nn.Sequential`` (step it yourself, or use :func:`~.running.simulate`) or an
        :class:`~.codegen.SnnTorchLoop` whose ``forward(*inputs)`` runs all ``num_steps`` and returns the
        recorded outputs ``[T, B, ...]`` (``module.output_names`` names them; ``module.code`` shows the loop).
        Both carry ``snnir_spec`` (form, steps, encoding, outputs) for :func:`~.running.simulate`.

    Raises:
        GraphError: a lazy graph, an unknown form, or ``form="sequential"`` for a graph that is not a chain.
        UnsupportedNodeError: a node snnTorch cannot express (named in the message).
    """
    from .codegen import build_loop

    if form not in FORMS:
        raise GraphError(f"form must be one of {list(FORMS)}, found {form!r}")
    validate(graph)
    if graph.is_lazy:
        raise GraphError("to_snntorch needs concrete parameters; call snnir.materialize(graph, seed) first")
    plan_ = plan(graph)
    origin = graph.metadata.get("snntorch")
    if form == "auto" and isinstance(origin, dict) and origin.get("form") == "loop":
        form = "loop"  # it came from a time-loop module: hand back the same calling convention
    if form != "loop":
        reason = sequential_mismatch(graph, plan_)
        if reason is None:
            return build_sequential(graph, plan_, _chain(graph, plan_)[0])
        if form == "sequential":
            raise GraphError(f"graph {graph.name!r} cannot be an nn.Sequential: {reason}; use form='loop' or 'auto'")
    return build_loop(graph, plan_)


__all__ = ["to_snntorch", "plan", "Plan", "Names", "export_layer", "sequential_mismatch", "FORMS"]
