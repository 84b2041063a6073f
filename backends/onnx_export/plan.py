"""The signature of an exported model: its inputs, states, recorded outputs and probes.

States come in two kinds, both zero at the start of every sequence and after every ``reset``:

* neuron states, one per state variable of each stateful node (``lif1:membrane``, ``cuba:current``);
* delay lines: for a node feeding delayed edges (up to delay ``D``), its values at ``t − 1 … t − D``,
  one state tensor per lag, so shifting the line is pure renaming (``next[k] = previous[k − 1]``).

Every ONNX name here is claimed from one :class:`~.context.Names` table: the graph's own Input and
Output names are kept verbatim (they are the public signature), the others get readable unique names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from snnir.errors import InputError
from snnir.ir.graph import Graph
from snnir.runtime import Probe, parse_probes

from .context import Names
from .opset import MODES, NUM_STEPS_INPUT


@dataclass(frozen=True)
class State:
    """One state tensor: ``[batch, *shape]`` float32, fed as ``input``, returned as ``output``.

    ``lag == 0``: state ``variable`` of neuron ``node``; ``lag >= 1``: the value of ``node`` at ``t − lag``.
    """

    key: str
    node: str
    variable: str
    lag: int
    input: str
    output: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Recorded:
    """A per-step quantity the model returns: ``variable`` (``"value"`` or a state) of ``node`` after the step."""

    key: str
    node: str
    variable: str
    onnx_name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    mode: str
    inputs: tuple[str, ...]
    num_steps_input: str | None
    states: tuple[State, ...]
    outputs: tuple[Recorded, ...]
    probes: tuple[Recorded, ...]

    @property
    def recorded(self) -> tuple[Recorded, ...]:
        return self.outputs + self.probes


def resolve_probes(graph: Graph, probes: Iterable | str) -> list[Probe]:
    """The probes of :func:`parse_probes` (``"all"`` included), each once: one ONNX output per probe."""
    unique: dict[str, Probe] = {}
    for probe in parse_probes(graph, probes):
        unique.setdefault(probe.key, probe)
    return list(unique.values())


def make_plan(graph: Graph, names: Names, mode: str, probes: Iterable | str = ()) -> Plan:
    """Claim every public name of the model of ``graph`` in ``mode`` (``"step"`` or ``"sequence"``)."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {list(MODES)}, found {mode!r}")
    shapes = graph.shapes
    for name in graph.inputs + graph.outputs:
        names.fresh(name)  # node names are unique, so these keep their exact spelling
    sequence_inputs = [n for n in graph.inputs if graph.nodes[n].encoding == "sequence"]  # type: ignore[attr-defined]
    num_steps = names.fresh(NUM_STEPS_INPUT) if mode == "sequence" and not sequence_inputs else None
    states = []
    for name, node in graph.nodes.items():
        for variable in node.state_variables if node.stateful else ():
            base = f"state.{name}.{variable}"
            states.append(State(f"{name}:{variable}", name, variable, 0, names.fresh(base), names.fresh(f"{base}.next"), shapes[name]))
    depth: dict[str, int] = {}
    for edge in graph.edges:
        if edge.delay:
            depth[edge.src] = max(depth.get(edge.src, 0), edge.delay)
    for name in (n for n in graph.nodes if n in depth):
        for lag in range(1, depth[name] + 1):
            base = f"delay.{name}.{lag}"
            states.append(State(f"{name}[t-{lag}]", name, "value", lag, names.fresh(base), names.fresh(f"{base}.next"), shapes[name]))
    outputs = []
    for name in graph.outputs:
        record = graph.nodes[name].record  # type: ignore[attr-defined]
        source = graph.output_source(name)
        outputs.append(Recorded(name, source, "value" if record in ("value", "spikes") else record, name, shapes[source]))
    recorded_probes = [
        Recorded(p.key, p.node, p.variable, names.fresh(f"probe.{p.key}"), shapes[p.node]) for p in resolve_probes(graph, probes)
    ]
    return Plan(mode, graph.inputs, num_steps, tuple(states), tuple(outputs), tuple(recorded_probes))


__all__ = ["State", "Recorded", "Plan", "make_plan", "resolve_probes"]
