"""Whole-sequence execution: the plan (hoisting, layer-wise scans, recurrent groups) and its interpreter.

The graph is cut into strongly connected components (delayed edges included) and run component by
component in topological order:

* a **time-invariant** node (:func:`snnir.passes.time_invariant_nodes`: everything fed only by
  ``direct`` inputs through stateless nodes) runs once on ``[B, ...]``; its value stands for every step;
* any other single node runs **layer-wise** over a time chunk: a stateless node once on the folded
  ``[t·B, ...]`` batch of the chunk's ``t`` steps, a neuron as one scan (:mod:`.scan`); a neuron fed
  only by invariant values receives a one-step drive ``[1, B, ...]`` that the scan broadcasts;
* a **recurrent group** (a cycle through delayed edges, e.g. RLeaky) runs step by step with autograd.

On the CPU the sequence runs in chunks of a few steps (:func:`chunk_steps`), each continuing from the
state the previous chunk left, so that no per-layer tensor grows beyond a few MiB; elsewhere in one.

A node's input is the sum of its incoming edges in edge order; an edge of delay ``d`` shifts its
source by ``d`` steps, taking the first ``d`` values from the carried history (zeros at the start).
The state (neuron states and the histories of delayed sources) is returned so that a run can be
continued: truncated BPTT and streaming both rely on it.

A single streaming step of a graph without delayed edges skips the plan (:func:`single_step`): every
layer once in topological order, each neuron through its ``step`` (the update its scan repeats), with
the same state dictionary, so such steps and whole runs continue each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import torch

from snnir.errors import add_note
from snnir.ir.graph import Graph
from snnir.ir.io import Input, Output
from snnir.passes import time_invariant_nodes

from .memory import spike_recomputation

#: Target size of the largest per-layer tensor of a time chunk on the CPU (see :func:`chunk_steps`).
CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class Plan:
    """Execution order: groups of node names; a group of several nodes (or a self-loop) is recurrent."""

    groups: tuple[tuple[str, ...], ...]
    recurrent: frozenset[int]
    invariant: frozenset[str]
    depth: dict[str, int]  # delayed source -> the largest delay it feeds (history length)


def build_plan(graph: Graph, *, training: bool) -> Plan:
    """Group and order the nodes of ``graph`` (see the module docstring)."""
    order = graph.topological_order()
    position = {name: i for i, name in enumerate(order)}
    full = graph.to_networkx(include_delayed=True)
    components = [tuple(sorted(c, key=position.__getitem__)) for c in nx.strongly_connected_components(full)]
    condensed = nx.condensation(full, [set(c) for c in components])
    members = {i: tuple(sorted(condensed.nodes[i]["members"], key=position.__getitem__)) for i in condensed.nodes}
    sequence = nx.lexicographical_topological_sort(condensed, key=lambda i: position[members[i][0]])
    groups = tuple(members[i] for i in sequence)
    self_loops = {e.src for e in graph.edges if e.src == e.dst}
    recurrent = frozenset(i for i, g in enumerate(groups) if len(g) > 1 or g[0] in self_loops)
    depth: dict[str, int] = {}
    for edge in graph.edges:
        if edge.delay:
            depth[edge.src] = max(depth.get(edge.src, 0), edge.delay)
    return Plan(groups, recurrent, time_invariant_nodes(graph, training=training), depth)


@dataclass
class Value:
    """A node's value over the run: ``[T, B, ...]``, or ``[B, ...]`` standing for every step (steady)."""

    tensor: torch.Tensor
    steady: bool

    def sequence(self, steps: int) -> torch.Tensor:
        return self.tensor.unsqueeze(0).expand(steps, *self.tensor.shape) if self.steady else self.tensor

    def at(self, t: int) -> torch.Tensor:
        return self.tensor if self.steady else self.tensor[t]


def _sum(terms: list[Value]) -> Value:
    """Fan-in sum, left to right in edge order; steady terms broadcast over time."""
    total = terms[0]
    for term in terms[1:]:
        if total.steady == term.steady:
            total = Value(total.tensor + term.tensor, total.steady)
        elif total.steady:
            total = Value(total.tensor.unsqueeze(0) + term.tensor, False)
        else:
            total = Value(total.tensor + term.tensor.unsqueeze(0), False)
    return total


@dataclass
class Run:
    """The mutable part of one simulation."""

    model: object
    steps: int
    batch: int
    like: torch.Tensor
    state: dict
    wanted: frozenset  # (node, variable) pairs to record
    values: dict[str, Value] = field(default_factory=dict)
    records: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)
    final: dict = field(default_factory=lambda: {"neurons": {}, "history": {}})

    def zeros(self, node: str, steps: int | None = None) -> torch.Tensor:
        lead = () if steps is None else (steps,)
        return self.like.new_zeros((*lead, self.batch, *self.model.shapes[node]))

    def history(self, node: str) -> torch.Tensor:
        depth = self.model.plan_depth[node]
        carried = self.state.get("history", {}).get(node)
        return self.zeros(node, depth) if carried is None else carried

    def delayed(self, source: str, delay: int) -> Value:
        """``source`` shifted by ``delay`` steps (its carried history first)."""
        depth = self.model.plan_depth[source]
        full = torch.cat((self.history(source), self.values[source].sequence(self.steps)))
        return Value(full[depth - delay : depth - delay + self.steps], False)

    def close_history(self, source: str, sequence: torch.Tensor) -> None:
        depth = self.model.plan_depth[source]
        self.final["history"][source] = torch.cat((self.history(source), sequence))[-depth:]


def chunk_steps(model, plan: Plan, batch: int, steps: int, like: torch.Tensor) -> int:
    """Steps per time chunk: whole sequences off the CPU, else chunks of about :data:`CHUNK_BYTES`.

    ``model.chunk_steps`` (an int) overrides the choice. Chunks have equal lengths (the last one may
    be shorter) so that every chunk costs the same.
    """
    chosen = getattr(model, "chunk_steps", None)
    if chosen is None:
        if like.device.type != "cpu":
            return steps
        widest = max((_numel(model.shapes[n]) for n in model.keys if n not in plan.invariant), default=1)
        chosen = max(1, CHUNK_BYTES // max(1, widest * batch * like.element_size()))
    chosen = max(1, min(int(chosen), steps))
    return -(-steps // -(-steps // chosen))  # equal chunks: ceil(steps / number of chunks)


def _numel(shape) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def simulate(model, plan: Plan, inputs: dict[str, torch.Tensor], steps: int, state: dict | None, wanted, *,
             recompute: bool = False) -> Run:
    """Run ``model`` (a TorchModel) over ``steps`` steps; inputs are already checked tensors.

    Time-invariant nodes run once; everything else runs chunk by chunk over time (:func:`chunk_steps`),
    each chunk continuing from the state the previous one left, so that intermediate tensors stay
    chunk-sized (no large allocation per layer: those cost a page fault per 4 KiB on every step). The
    state carries gradients between chunks, so the result, values and gradients, is that of one run
    over the whole sequence. ``recompute`` saves spikes for the backward pass as recipes
    (:mod:`.memory`), one table per chunk.
    """
    graph: Graph = model.graph
    wanted = frozenset(wanted)
    first = next(iter(inputs.values()))
    batch = first.shape[0] if graph.nodes[next(iter(inputs))].encoding == "direct" else first.shape[1]
    hoisted = Run(model, steps, batch, first, {}, wanted)
    with spike_recomputation(recompute):
        for index, group in enumerate(plan.groups):
            if index not in plan.recurrent and group[0] in plan.invariant:
                _execute(hoisted, group[0], inputs, 0, plan)
    size = chunk_steps(model, plan, batch, steps, first)
    pieces: dict[tuple[str, str], list[torch.Tensor]] = {}
    carried = state or {}
    for start in range(0, steps, size):
        run = Run(model, min(size, steps - start), batch, first, carried, wanted, dict(hoisted.values))
        with spike_recomputation(recompute):
            for index, group in enumerate(plan.groups):
                if index in plan.recurrent:
                    _recurrent(run, group)
                elif group[0] not in plan.invariant:
                    _execute(run, group[0], inputs, start, plan)
            for name in model.plan_depth:
                if name not in run.final["history"]:  # recurrent groups close their own histories
                    run.close_history(name, run.values[name].sequence(run.steps))
        for key in wanted:
            node, variable = key
            if variable != "value":
                pieces.setdefault(key, []).append(run.records[key])
            elif not run.values[node].steady:
                pieces.setdefault(key, []).append(run.values[node].tensor)
        carried = run.final
    whole = Run(model, steps, batch, first, state or {}, wanted, hoisted.values, final=carried)
    for (node, variable), parts in pieces.items():
        joined = parts[0] if len(parts) == 1 else torch.cat(parts)
        if variable == "value":
            whole.values[node] = Value(joined, False)
        else:
            whole.records[(node, variable)] = joined
    return whole


def _execute(run: Run, name: str, inputs: dict[str, torch.Tensor], start: int, plan: Plan) -> None:
    """Compute node ``name`` over the run's steps (``start`` is the run's first step in the sequence)."""
    node = run.model.graph.nodes[name]
    if isinstance(node, Output):
        return
    if isinstance(node, Input):
        data = inputs[name]
        run.values[name] = Value(data, True) if node.encoding == "direct" else Value(data[start : start + run.steps], False)
        return
    try:
        _layerwise(run, name, name in plan.invariant)
    except Exception as error:
        last = start + run.steps - 1
        add_note(error, f"while executing node {name!r} ({node.kind}) over steps {start}..{last}")
        raise


def _layerwise(run: Run, name: str, invariant: bool) -> None:
    model = run.model
    layer = model.layer(name)
    terms = [run.values[e.src] if e.delay == 0 else run.delayed(e.src, e.delay) for e in model.graph.incoming(name)]
    total = _sum(terms)
    if not layer.stateful:
        if invariant:
            run.values[name] = Value(layer(total.tensor), True)
            return
        sequence = total.sequence(run.steps)
        folded = sequence.reshape(run.steps * run.batch, *sequence.shape[2:])
        out = layer(folded)
        run.values[name] = Value(out.reshape(run.steps, run.batch, *out.shape[1:]), False)
        return
    drive = total.tensor.unsqueeze(0) if total.steady else total.tensor
    state = run.state.get("neurons", {}).get(name)
    value, recorded, final = layer.sequence(drive, state, run.steps)
    run.values[name] = Value(value, False)
    run.final["neurons"][name] = final
    for variable, sequence in recorded.items():
        if (name, variable) in run.wanted:
            run.records[(name, variable)] = sequence


def _recurrent(run: Run, group: tuple[str, ...]) -> None:
    """Step-by-step execution of a cycle through delayed edges (ordinary autograd)."""
    model, graph = run.model, run.model.graph
    members = set(group)
    external = {}
    for name in group:
        for edge in graph.incoming(name):
            if edge.src not in members:
                external[edge] = run.values[edge.src] if edge.delay == 0 else run.delayed(edge.src, edge.delay)
    past = {name: list(run.history(name).unbind(0)) for name in group if name in model.plan_depth}
    states = {}
    for name in group:
        layer = model.layer(name)
        if layer.stateful:
            carried = run.state.get("neurons", {}).get(name)
            states[name] = carried if carried is not None else layer.init_state(run.batch, run.like)
    outputs = {name: [] for name in group}
    recorded = {key: [] for key in run.wanted if key[0] in members and key[1] != "value"}
    for t in range(run.steps):
        current: dict[str, torch.Tensor] = {}
        for name in group:
            total = None
            for edge in graph.incoming(name):
                if edge.src not in members:
                    term = external[edge].at(t)
                elif edge.delay == 0:
                    term = current[edge.src]
                else:
                    term = past[edge.src][-edge.delay]
                total = term if total is None else total + term
            layer = model.layer(name)
            try:
                if layer.stateful:
                    current[name], states[name] = layer.step(total, states[name])
                else:
                    current[name] = layer(total)
            except Exception as error:
                add_note(error, f"while executing node {name!r} ({graph.nodes[name].kind}) at step {t}")
                raise
            outputs[name].append(current[name])
        for name in past:
            past[name].append(current[name])
            del past[name][: -model.plan_depth[name]]
        for (name, variable), steps in recorded.items():
            steps.append(states[name][variable])
    for name in group:
        run.values[name] = Value(torch.stack(outputs[name]), False)
        if name in states:
            run.final["neurons"][name] = states[name]
        if name in past:
            run.final["history"][name] = torch.stack(past[name])
    for key, steps in recorded.items():
        run.records[key] = torch.stack(steps)


def single_step(model, inputs: dict[str, torch.Tensor], neurons: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """One step of ``model`` (a TorchModel whose graph has no delayed edge) from the neuron states
    ``neurons`` (missing ones start at zero); inputs are ``[B, ...]``. Returns every node's value and
    the new neuron states. A third of the time of a one-step :func:`simulate` for a small network:
    no plan, chunks or scan functions around one update per layer."""
    graph = model.graph
    values = dict(inputs)
    final: dict = {}
    for name, edges in model.fan_in.items():
        total = values[edges[0]]
        for source in edges[1:]:
            total = total + values[source]
        layer = model.layer(name)
        try:
            if layer.stateful:
                state = neurons.get(name)
                values[name], final[name] = layer.step(total, layer.init_state(total.shape[0], total) if state is None else state)
            else:
                values[name] = layer(total)
        except Exception as error:
            add_note(error, f"while executing node {name!r} ({graph.nodes[name].kind}) in a streaming step")
            raise
    return values, final


__all__ = ["Plan", "build_plan", "simulate", "single_step", "chunk_steps", "CHUNK_BYTES", "Value", "Run"]
