"""The reference interpreter: runs any valid graph step by step with NumPy.

Per step ``t`` it visits nodes in topological order (of the graph without delayed edges). A node's
input is the sum, in edge order, of its sources' values, where an edge of delay ``d`` contributes
the source's value of step ``t − d`` (zero while ``t < d``). Inputs give their tensor (``direct``) or
the tensor of step ``t`` (``sequence``); Outputs record their source's value or state after the step.
Nothing is hoisted or fused: this is the definition the other backends are tested against.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

import numpy as np

from ..errors import InputError, add_note
from ..ir.graph import Graph
from ..ir.io import Input, Output
from ..lowering import LoweringTable
from ..runtime import (
    CompiledModel,
    Probe,
    Result,
    check_batch_size,
    parse_probes,
    prepare_sequence_inputs,
    prepare_step_inputs,
)
from .rules import RULES


class _Execution:
    """The mutable part of a run: per-node state and the history that delayed edges read."""

    def __init__(self, model: ReferenceModel, batch_size: int):
        self.model = model
        self.batch_size = batch_size
        self.step_index = 0
        self.state = {name: kernel.init_state(batch_size) for name, kernel in model.kernels.items()}
        self.history = {name: deque(maxlen=depth) for name, depth in model.history_depth.items()}

    def _delayed(self, source: str, delay: int) -> np.ndarray:
        past = self.history[source]
        if len(past) >= delay:
            return past[-delay]
        return np.zeros((self.batch_size, *self.model.shapes[source]), np.float32)

    def advance(self, inputs_t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step; returns the value of every node at this step."""
        graph = self.model.graph
        values: dict[str, np.ndarray] = {}
        for name in self.model.order:
            node = graph.nodes[name]
            if isinstance(node, Input):
                values[name] = inputs_t[name]
                continue
            if isinstance(node, Output):
                continue
            total = None
            for edge in graph.incoming(name):
                term = values[edge.src] if edge.delay == 0 else self._delayed(edge.src, edge.delay)
                total = term if total is None else total + term
            try:
                values[name], self.state[name] = self.model.kernels[name](total, self.state[name])
            except Exception as error:
                add_note(error, f"while executing node {name!r} ({node.kind}) at step {self.step_index}")
                raise
        for name in self.history:
            self.history[name].append(values[name])
        self.step_index += 1
        return values

    def read(self, values: dict[str, np.ndarray], node: str, variable: str) -> np.ndarray:
        return values[node] if variable == "value" else self.state[node][variable]


class ReferenceModel(CompiledModel):
    """A graph compiled for the reference interpreter (see the module docstring)."""

    backend = "reference"

    def __init__(self, graph: Graph, rules: LoweringTable = RULES):
        super().__init__(graph)
        self.order = graph.topological_order()
        self.kernels = {}
        for name in self.order:
            node = graph.nodes[name]
            if not isinstance(node, (Input, Output)):
                rule = rules.rule_for(node, name)
                self.kernels[name] = rule(node, graph.input_shape(name), self.shapes[name])
        self.history_depth: dict[str, int] = {}
        for edge in graph.edges:
            if edge.delay:
                self.history_depth[edge.src] = max(self.history_depth.get(edge.src, 0), edge.delay)
        self.recorded = [
            Probe(name, graph.output_source(name), _record_variable(graph.nodes[name].record))  # type: ignore[attr-defined]
            for name in graph.outputs
        ]
        self._stream: _Execution | None = None

    def _record(self, execution: _Execution, values: dict, probes: list[Probe]) -> tuple[dict, dict]:
        outputs = {p.key: execution.read(values, p.node, p.variable) for p in self.recorded}
        probed = {p.key: execution.read(values, p.node, p.variable) for p in probes}
        return outputs, probed

    def run(self, inputs: Any, *, num_steps: int | None = None, probes: Iterable = ()) -> Result:
        arrays, steps, batch = prepare_sequence_inputs(self.graph, inputs, num_steps)
        requested = parse_probes(self.graph, probes)
        execution = _Execution(self, batch)
        outputs = {p.key: np.empty((steps, batch, *self.shapes[p.node]), np.float32) for p in self.recorded}
        probed = {p.key: np.empty((steps, batch, *self.shapes[p.node]), np.float32) for p in requested}
        sequence = {n for n in arrays if self.graph.nodes[n].encoding == "sequence"}  # type: ignore[attr-defined]
        for t in range(steps):
            step_inputs = {n: (a[t] if n in sequence else a) for n, a in arrays.items()}
            values = execution.advance(step_inputs)
            out_t, probe_t = self._record(execution, values, requested)
            for key, value in out_t.items():
                outputs[key][t] = value
            for key, value in probe_t.items():
                probed[key][t] = value
        return Result(outputs, probed)

    def reset(self, batch_size: int = 1) -> None:
        self.batch_size = check_batch_size(batch_size)
        self._stream = _Execution(self, self.batch_size)

    def step(self, inputs: Any, *, probes: Iterable = ()) -> Result:
        if self._stream is None:
            raise InputError("step() needs a stream: call reset(batch_size) first")
        requested = parse_probes(self.graph, probes)
        arrays = prepare_step_inputs(self.graph, inputs, self._stream.batch_size)
        values = self._stream.advance(arrays)
        outputs, probed = self._record(self._stream, values, requested)
        return Result({k: v.copy() for k, v in outputs.items()}, {k: v.copy() for k, v in probed.items()})


def _record_variable(record: str) -> str:
    return "value" if record in ("value", "spikes") else record


__all__ = ["ReferenceModel"]
