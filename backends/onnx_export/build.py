"""Build the ONNX model of a graph: a *step* graph, or a *sequence* graph that Scans the step over time.

One step is lowered exactly as the reference interpreter runs it: nodes in topological order (of the
graph without delayed edges), each node's incoming edges summed in edge order with separate Add nodes,
a delayed edge reading the delay-line state of its lag, then the node's emit rule.

Step model::

    inputs:  graph inputs [batch, *shape] (the tensor of this step), then every state [batch, *shape]
    outputs: graph outputs [batch, *shape], probes [batch, *shape], then every next state

Sequence model: the same state interface around one ``Scan``. Sequence inputs ``[time, batch, *shape]``
are scanned; ``direct`` inputs ``[batch, *shape]`` are read by the loop body from the outer scope, and
everything that depends only on them (time-invariant nodes, see :func:`snnir.passes.analysis.
time_invariant_nodes`) is computed once before the loop. Without sequence inputs a ``num_steps`` int64
scalar input drives the loop. Outputs and probes come back as ``[time, batch, *shape]``, the states
after the last step as the next-state outputs.
"""

from __future__ import annotations

import json
from typing import Iterable

from onnx import GraphProto, ModelProto, TensorProto, helper

from snnir import __version__
from snnir.errors import SnnirError, UnsupportedNodeError, add_note
from snnir.ir.graph import Graph
from snnir.ir.io import Output
from snnir.lowering import LoweringTable
from snnir.passes.analysis import time_invariant_nodes
from snnir.validate import validate

from .context import Initializers, Lowering, Names, Parameters, Scope
from .metadata import build_metadata
from .opset import BATCH_DIM, IR_VERSION, METADATA_KEY, OPSET, PRODUCER_NAME, TIME_DIM
from .plan import Plan, make_plan
from .rules import RULES


def _tensor(name: str, shape: Iterable, elem_type: int = TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def _batched(name: str, shape: tuple[int, ...], *, time: bool = False):
    return _tensor(name, ([TIME_DIM] if time else []) + [BATCH_DIM, *shape])


def _lower_nodes(graph: Graph, rules: LoweringTable, ctx: Lowering, names: Iterable[str], values: dict, delayed: dict) -> None:
    """Emit ``names`` (in topological order) into ``ctx``; ``values`` maps node -> ONNX value name."""
    for name in names:
        node = graph.nodes[name]
        if name in values or isinstance(node, Output):
            continue
        terms = [values[e.src] if e.delay == 0 else delayed[(e.src, e.delay)] for e in graph.incoming(name)]
        total = terms[0]
        for term in terms[1:]:
            total = ctx.op("Add", total, term, hint=f"{name}/fan_in")
        try:
            values[name] = rules.rule_for(node, name)(ctx, name, node, total)
        except SnnirError as error:
            add_note(error, f"while exporting node {name!r} ({node.kind}) to onnx")
            raise


def _lower_step(graph: Graph, rules: LoweringTable, plan: Plan, ctx: Lowering, values: dict, state_inputs: dict) -> tuple[dict, dict]:
    """Lower one step (nodes already in ``values`` are computed elsewhere); returns the next value of every
    state and the value of every recorded quantity, by key."""
    delayed = {(s.node, s.lag): state_inputs[s.key] for s in plan.states if s.lag}
    _lower_nodes(graph, rules, ctx, graph.topological_order(), values, delayed)
    next_values = {}
    for state in plan.states:
        if state.lag == 0:
            if (state.node, state.variable) not in ctx.next:
                raise UnsupportedNodeError(f"the onnx rule of node {state.node!r} set no next value for state {state.variable!r}")
            next_values[state.key] = ctx.next[(state.node, state.variable)]
        elif state.lag == 1:
            next_values[state.key] = values[state.node]
        else:
            next_values[state.key] = delayed[(state.node, state.lag - 1)]
    recorded = {r.key: values[r.node] if r.variable == "value" else ctx.next[(r.node, r.variable)] for r in plan.recorded}
    return next_values, recorded


def _emit_outputs(scope: Scope, pairs: list[tuple[str, str]]) -> None:
    """Identity nodes giving each value its public name (a value may be an input or feed two outputs)."""
    for value, name in pairs:
        scope.nodes.append(helper.make_node("Identity", [value], [name], name=name))


def _step_graph(
    graph: Graph, rules: LoweringTable, plan: Plan, names: Names, initializers: Initializers, parameters: Parameters
) -> GraphProto:
    scope = Scope(names)
    state_inputs = {s.key: s.input for s in plan.states}
    ctx = Lowering(graph, scope, initializers, parameters, {(s.node, s.variable): s.input for s in plan.states if s.lag == 0})
    values = {name: name for name in plan.inputs}
    next_values, recorded = _lower_step(graph, rules, plan, ctx, values, state_inputs)
    _emit_outputs(scope, [(recorded[r.key], r.onnx_name) for r in plan.recorded])
    _emit_outputs(scope, [(next_values[s.key], s.output) for s in plan.states])
    inputs = [_batched(n, graph.shapes[n]) for n in plan.inputs] + [_batched(s.input, s.shape) for s in plan.states]
    outputs = [_batched(r.onnx_name, r.shape) for r in plan.recorded] + [_batched(s.output, s.shape) for s in plan.states]
    return helper.make_graph(scope.nodes, graph.name, inputs, outputs, list(initializers.tensors.values()))


def _sequence_graph(
    graph: Graph, rules: LoweringTable, plan: Plan, names: Names, initializers: Initializers, parameters: Parameters
) -> GraphProto:
    main = Scope(names)
    sequence_inputs = [n for n in plan.inputs if graph.nodes[n].encoding == "sequence"]  # type: ignore[attr-defined]
    values = {name: name for name in plan.inputs if name not in sequence_inputs}
    invariant = time_invariant_nodes(graph)
    hoisted = [n for n in graph.topological_order() if n in invariant]
    _lower_nodes(graph, rules, Lowering(graph, main, initializers, parameters, {}), hoisted, values, {})

    body = Scope(names)
    state_inputs = {s.key: names.fresh(f"{s.input}.t") for s in plan.states}
    body_inputs = [_batched(state_inputs[s.key], s.shape) for s in plan.states]
    scanned = list(sequence_inputs)
    for name in sequence_inputs:
        values[name] = names.fresh(f"{name}.t")
        body_inputs.append(_batched(values[name], graph.shapes[name]))
    if not sequence_inputs:  # only direct inputs: scan over the step index 0..num_steps-1 (the body ignores it)
        zero, one = initializers.constant(0, "int64"), initializers.constant(1, "int64")
        scanned = [main.op("Range", [zero, plan.num_steps_input, one], "step_index")]
        body_inputs.append(_tensor(names.fresh("step_index.t"), [], TensorProto.INT64))
    previous = {(s.node, s.variable): state_inputs[s.key] for s in plan.states if s.lag == 0}
    ctx = Lowering(graph, body, initializers, parameters, previous, setup=main)
    next_values, recorded = _lower_step(graph, rules, plan, ctx, values, state_inputs)
    body_state_out = [(next_values[s.key], names.fresh(f"{s.output}.t")) for s in plan.states]
    body_recorded = [(recorded[r.key], names.fresh(f"{r.onnx_name}.t")) for r in plan.recorded]
    _emit_outputs(body, body_state_out + body_recorded)
    body_outputs = [_batched(name, s.shape) for (_, name), s in zip(body_state_out, plan.states)]
    body_outputs += [_batched(name, r.shape) for (_, name), r in zip(body_recorded, plan.recorded)]
    body_graph = helper.make_graph(body.nodes, f"{graph.name}/step", body_inputs, body_outputs)

    main.nodes.append(
        helper.make_node(
            "Scan",
            [s.input for s in plan.states] + scanned,
            [s.output for s in plan.states] + [r.onnx_name for r in plan.recorded],
            name="time_loop",
            body=body_graph,
            num_scan_inputs=len(scanned),
        )
    )
    inputs = [_batched(n, graph.shapes[n], time=n in sequence_inputs) for n in plan.inputs]
    if plan.num_steps_input:
        inputs.append(_tensor(plan.num_steps_input, [], TensorProto.INT64))
    inputs += [_batched(s.input, s.shape) for s in plan.states]
    outputs = [_batched(r.onnx_name, r.shape, time=True) for r in plan.recorded] + [_batched(s.output, s.shape) for s in plan.states]
    return helper.make_graph(main.nodes, graph.name, inputs, outputs, list(initializers.tensors.values()))


def build_model(
    graph: Graph, mode: str = "step", *, probes: Iterable | str = (), rules: LoweringTable = RULES
) -> tuple[ModelProto, dict]:
    """The ONNX model of ``graph`` in ``mode`` with extra ``probes`` outputs, and its metadata document."""
    validate(graph, require_materialized=True)
    names = Names()
    plan = make_plan(graph, names, mode, probes)
    initializers = Initializers(names)
    parameters = Parameters(graph, initializers)
    make = _step_graph if mode == "step" else _sequence_graph
    graph_proto = make(graph, rules, plan, names, initializers, parameters)
    model = helper.make_model(
        graph_proto,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER_NAME,
        producer_version=__version__,
        doc_string=f"snnir graph {graph.name!r} as a {mode} model; metadata_props[{METADATA_KEY!r}] describes its states",
    )
    metadata = build_metadata(graph, plan, parameters, graph_proto)
    helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata, separators=(",", ":"), allow_nan=False, ensure_ascii=False)})
    return model, metadata


__all__ = ["build_model"]
