"""Modules with an explicit time loop (the snnTorch quickstart's ``Net``) -> snnir graphs.

The forward runs once on a probe input under the recorder of :mod:`.tracer`; :mod:`.folding` checks
that every step does the same thing and :mod:`.assemble` converts one step. What the forward returns
becomes the graph's outputs: ``torch.stack(records)`` of a per-step value records the whole sequence,
a value of the last step is recorded as a sequence too (``metadata["snntorch"]["returns"]`` says which).
The last neuron's spikes and membrane are always recorded (``spikes``, ``membrane``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from snnir.errors import GraphError
from snnir.ir.graph import Graph, TimeSpec

from .assemble import Assembler, Returned
from .folding import Program
from .neurons import neuron_spec
from .ops import bind
from .running import fresh_states
from .sequential import OUTPUT_NAMES
from .tracer import Ref, trace


def _flatten_returned(returned: Any) -> tuple[str, list[tuple[Any, Any]]]:
    if isinstance(returned, Ref):
        return "tensor", [(None, returned)]
    if isinstance(returned, (tuple, list)):
        return "list" if isinstance(returned, list) else "tuple", [(None, r) for r in returned]
    if isinstance(returned, dict) and all(isinstance(key, str) for key in returned):
        return "dict", list(returned.items())
    raise GraphError(f"forward returned {type(returned).__name__}; expected tensors (alone, or in a tuple, list or dict with string keys)")


def _locate_returned(program: Program, ref: Any, label: str) -> tuple[int, int, bool]:
    """``(body position, output index, last_step_only)`` of a returned tensor."""
    last = program.num_steps - 1
    if not isinstance(ref, Ref) or ref.source != "call":
        raise GraphError(f"forward's {label} is not computed by the time loop")
    call = program.calls[ref.call]
    if ref.call in program.position:
        block, p = program.position[ref.call]
        if block == last:
            return p, ref.index, True
    elif call in program.post and call.target is torch.stack:
        args = bind(call, ("tensors", "dim"), {"dim": 0})
        steps = [_step_value(program, r) for r in args["tensors"]]
        first = steps[0] if steps else None
        expected = [(b, *first[1:]) for b in range(program.num_steps)] if first else None
        if args["dim"] == 0 and steps == expected:
            return first[1], first[2], False
        raise GraphError(f"forward's {label} is {call.describe()}, which is not the stack (dim=0) of one value per step, in order")
    raise GraphError(f"forward's {label} comes from {call.describe()}; return torch.stack(records) of per-step values")


def _step_value(program: Program, ref: Any) -> tuple[int, int, int] | None:
    """``(step, body position, output index)`` of a per-step value, None for anything else."""
    if isinstance(ref, Ref) and ref.source == "call" and ref.call in program.position:
        return (*program.position[ref.call], ref.index)
    return None


class _Outputs:
    """Names the graph outputs: ``spikes``/``membrane``/``current`` for the last neuron, dict keys when the
    forward returns a dict, ``<node>_<record>`` otherwise; the same quantity is recorded once."""

    def __init__(self, taken: set[str], last_neuron: str | None, spiking: dict[str, bool]):
        self.taken = set(taken)
        self.last_neuron = last_neuron
        self.spiking = spiking
        self.records: dict[tuple[str, str], str] = {}

    def name(self, node: str, record: str, preferred: str | None = None) -> str:
        if (node, record) in self.records:
            return self.records[(node, record)]
        if preferred is None:
            suffix = OUTPUT_NAMES[record] if self.spiking[node] or record != "value" else "output"
            preferred = suffix if node == self.last_neuron else f"{node}_{suffix}"
        name = preferred
        while name in self.taken:
            name = f"{name}_out"
        self.taken.add(name)
        self.records[(node, record)] = name
        return name


def convert_traced(
    module: nn.Module, probe: torch.Tensor, input_shape: tuple, time: TimeSpec, encoding: str, name: str
) -> tuple[Graph, list[Returned]]:
    """The graph of ``module``'s time loop, and what its forward returned on ``probe`` (for the check)."""
    if time.num_steps < 2:
        raise GraphError("a module with a time loop is traced over its own loop; num_steps must be at least 2")
    with fresh_states(module):
        recorded = trace(module, probe)
    program = Program(recorded, time.num_steps)
    assembler = Assembler(program, encoding)
    structure, items = _flatten_returned(recorded.returned)
    located = [_locate_returned(program, ref, f"return value {key if key is not None else i!r}") for i, (key, ref) in enumerate(items)]
    neurons = [p for p, call in enumerate(program.template) if call.is_module and neuron_spec(call.target) is not None]
    roots = [("body", p, o) for p, o, _ in located] + [("body", p, 0) for p in neurons[-1:]]
    keys = assembler.collect(roots)
    assembler.name_nodes(keys)
    assembler.wire(keys)
    nodes = {assembler.names[k]: assembler.ops[k].node for k in assembler.names}
    last_neuron = assembler.names[("body", neurons[-1])] if neurons else None
    outputs = _Outputs(set(nodes) | {assembler.input_name}, last_neuron, {n: node.spiking for n, node in nodes.items()})
    hints = getattr(module, "output_names", None)  # set by to_snntorch: the round trip keeps output names
    if structure == "dict" or not isinstance(hints, list) or len(hints) != len(items):
        hints = [key for key, _ in items]
    returned = []
    for (key, ref), (p, o, last_step), hint in zip(items, located, hints):
        node, record = _record_of(assembler, p, o)
        preferred = hint if isinstance(hint, str) and hint.isidentifier() else None
        returned.append(Returned(outputs.name(node, record, preferred), last_step, recorded_tensor(program, ref), key))
    if last_neuron is not None:  # its spikes too, unless its membrane feeds a layer: it is an LI then
        spikes = () if assembler.reads_as_li(("body", neurons[-1])) else ("value",)
        for record in (*spikes, *nodes[last_neuron].state_variables):
            outputs.name(last_neuron, record)
    wiring = [(output, node, record) for (node, record), output in outputs.records.items()]
    graph = assembler.build(keys, wiring, input_shape, time, name)
    items_meta = [{"output": r.output, "last_step": r.last_step, **({"key": r.key} if structure == "dict" else {})} for r in returned]
    metadata = {
        "form": "loop",
        "class": type(module).__name__,
        "modules": assembler.modules,
        "returns": {"structure": structure, "items": items_meta},
    }
    return graph.replace(metadata={**graph.metadata, "snntorch": metadata}), returned


def recorded_tensor(program: Program, ref: Ref) -> torch.Tensor:
    return program.calls[ref.call].outputs[ref.index]


def _record_of(assembler: Assembler, p: int, o: int) -> tuple[str, str]:
    key = ("body", p)
    op = assembler.ops[key]
    if op.kind in ("node", "neuron"):
        return assembler.names[key], op.outputs[o]
    terms = assembler.value_terms(key, assembler.call_of(key)[0].describe())
    if len(terms) != 1 or terms[0][1] != 0 or terms[0][0] == assembler.input_name:
        raise GraphError(f"{assembler.call_of(key)[0].describe()}: a returned sum or input has no node to record; return a layer's output")
    return terms[0][0], "value"


__all__ = ["convert_traced"]
