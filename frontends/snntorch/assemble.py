"""Building the snnir graph of one folded time step (see :mod:`.folding`).

Starting from what the forward returns (and the last neuron's spikes and membrane), every call the
outputs depend on is converted: leaf modules through the layer and neuron tables, torch functions
through :mod:`.ops`. Values become fan-in *terms* ``(node, delay)``: an alias passes its operand's
terms on, a sum concatenates them (left to right, as snnir sums fan-in), and an operand read ``d``
steps back adds ``d`` to the delay. A neuron's own state operands (``mem``, ``syn``, ``spk``) must be
its outputs of the previous step; they are the node's state, not edges.
"""

from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from snnir.builder import GraphBuilder
from snnir.errors import GraphError, NodeParameterError, SemanticsWarning, UnsupportedNodeError
from snnir.ir.graph import Graph
from snnir.ir.neurons import LI, LIF

from .folding import Location, Program
from .layers import import_layer
from .neurons import STATE_VARIABLES, is_snntorch_neuron, neuron_spec, supported_neurons
from .ops import Op, function_op
from .tracer import Call, Ref


@dataclass
class Returned:
    """One tensor the forward returned: the graph output recording it, and how (whole sequence or last step)."""

    output: str
    last_step: bool
    tensor: torch.Tensor
    key: Any = None


#: what an all-zero constant of the batch's shape usually is, for messages
STALE_ZEROS = (
    "an all-zero tensor of the batch's shape made in forward, unchanged at every traced step: an initial state or a "
    "delayed value that reaches back num_steps or more steps, so the trace never sees what replaces it; convert with "
    "num_steps greater than the longest delay"
)


def _stale_zeros(value: Any, batch: int) -> bool:
    """Whether the operand ``value`` is :data:`STALE_ZEROS` (a constant ``[batch, ...]`` tensor of zeros)."""
    tensor = value.tensor if isinstance(value, Ref) and value.source == "const" else None
    return tensor is not None and tensor.ndim >= 2 and tensor.shape[0] == batch and not bool(tensor.any())


def _integrates_only(op: Op) -> bool:
    """Whether ``op`` is a neuron that never resets and has no recurrent synapse (which would read its
    spikes): its membrane is then an LI's value."""
    return op.kind == "neuron" and isinstance(op.node, LIF) and op.node.reset == "none" and op.recurrent is None


def _identifier(path: str) -> str:
    name = re.sub(r"\W", "_", path)
    return name if name and not name[0].isdigit() else f"m_{name}"


class Assembler:
    """Converts the needed calls of a :class:`Program` and wires them into a graph."""

    def __init__(self, program: Program, encoding: str):
        self.program = program
        self.encoding = encoding
        self.ops: dict[tuple, Op] = {}  # ("body", p) or ("pre", j) -> Op
        self.names: dict[tuple, str] = {}
        self.modules: dict[str, str] = {}
        self.synapses: dict[tuple, str] = {}  # recurrent synapse of a neuron key
        self._converting: set[tuple] = set()  # keys being converted (their operands may be converted first)
        self.membrane_reads: dict[tuple, str] = {}  # neuron key -> the first consumer of its membrane (see terms)
        self.spike_reads: set[tuple] = set()  # neuron keys whose spikes feed a consumer
        self.edges: list[tuple[str, str, int]] = []  # (source, node, delay), found by wire()
        self.input_name = "x"
        probe = program.trace.probe
        self.batch = probe.shape[0] if encoding == "direct" else probe.shape[1]
        for call in program.template:
            if call.target is torch.Tensor.__getitem__ and call.args and getattr(call.args[0], "source", None) == "input":
                if encoding != "sequence":
                    raise GraphError(f"{call.describe()}: indexing the input by the step needs encoding='sequence' (input [T, B, ...])")

    # -- calls -----------------------------------------------------------------------------------
    def call_of(self, key: tuple) -> tuple[Call, int]:
        """The call behind ``("body", p)`` or ``("pre", j)``, and the step whose operands describe it."""
        if key[0] == "body":
            return self.program.template[key[1]], self.program.num_steps - 1
        return self.program.calls[key[1]], -1

    def locate(self, ref: Ref, key: tuple) -> Location:
        return self.program.locate(ref, self.call_of(key)[1])

    def op(self, key: tuple) -> Op:
        if key not in self.ops:
            self._converting.add(key)
            try:
                self.ops[key] = self._convert(key)
            finally:
                self._converting.discard(key)
        return self.ops[key]

    def _convert_operands(self, call: Call, key: tuple) -> None:
        """Convert the calls producing ``call``'s tensor operands, so that their errors come first: in
        ``x.unsqueeze(1).squeeze(1)`` the unsqueeze is what has no snnir equivalent."""
        operands = [a for arg in call.args for a in (arg if isinstance(arg, (list, tuple)) else [arg])]
        for ref in operands:
            if isinstance(ref, Ref) and ref.source == "call":
                source = self.locate(ref, key).key[:2]
                if source[0] in ("body", "pre") and source not in self._converting:  # a state: its own key
                    self.op(source)

    def _convert(self, key: tuple) -> Op:
        call, _ = self.call_of(key)
        if not call.is_module:
            try:
                op = function_op(call)
            except (UnsupportedNodeError, NodeParameterError) as error:
                self._refuse_stale_zeros(call, error)
                self._convert_operands(call, key)  # an unsupported operation upstream is the one to name
                raise
            if op.kind == "sequence" and key[0] == "pre":
                raise GraphError(f"{call.describe()}: the input is indexed outside the loop; index it by the step, x[step]")
            if call.target is torch.Tensor.detach:
                self._warn_detach(call)
            return op
        module = call.target
        first = call.args[0] if call.args else None
        if not isinstance(first, Ref) or first.tensor.ndim < 2 or first.tensor.shape[0] != self.batch:
            found = tuple(first.tensor.shape) if isinstance(first, Ref) else type(first).__name__
            raise GraphError(f"{call.describe()}: takes {found}, expected a tensor whose first axis is the batch ({self.batch})")
        spec = neuron_spec(module)
        if spec is None and is_snntorch_neuron(module):
            raise UnsupportedNodeError(f"{call.describe()}: has no snnir equivalent; supported neurons: {', '.join(supported_neurons())}")
        if spec is None:
            if len(call.args) != 1 or call.kwargs:
                raise UnsupportedNodeError(f"{call.describe()}: a layer must take exactly one tensor")
            node = import_layer(module, tuple(call.args[0].tensor.shape[1:]), call.describe(), supported_neurons())
            return Op("alias", [call.args[0]]) if node is None else Op("node", [call.args[0]], node)
        if key[0] == "pre":
            raise GraphError(f"{call.describe()}: a neuron runs once, outside the time loop")
        bound = inspect.signature(module.forward).bind(*call.args, **call.kwargs).arguments
        source = next(iter(bound.values()))
        outputs = spec.outputs if call.returns_tuple else ("value",)
        if len(outputs) != len(call.outputs):
            raise GraphError(f"{call.describe()}: returned {len(call.outputs)} tensors, expected {len(outputs)}")
        for state in spec.state_args:
            self._check_state(call, key, state, bound.get(state), outputs)
        node, recurrent = spec.convert(module, tuple(source.tensor.shape[1:]), call.describe())
        location = self.locate(source, key)
        if location.key[0] in ("body", "pre") and location.delay == 0 and self.op(location.key[:2]).kind == "bias":
            drive = self.ops[location.key[:2]]
            if not isinstance(node, LIF):
                raise UnsupportedNodeError(
                    f"{call.describe()}: a constant added to the input of a {type(module).__name__} enters its synaptic "
                    "current, which snnir's CubaLIF bias (U = β·U + (J + b)) does not express"
                )
            node, source = node.replace(bias=drive.bias), drive.inputs[0]
        return Op("neuron", [source], node, recurrent, outputs)

    def _refuse_stale_zeros(self, call: Call, error: Exception) -> None:
        """Name :data:`STALE_ZEROS` as the cause when one is among ``call``'s operands: the operation (a sum, a
        layer) is then refused for a value the trace never saw, not for what the module computes."""
        operands = [a for arg in call.args for a in (arg if isinstance(arg, (list, tuple)) else [arg])]
        if any(_stale_zeros(ref, self.batch) for ref in operands):
            raise UnsupportedNodeError(f"{call.describe()}: is fed by {STALE_ZEROS}") from error

    def _warn_detach(self, call: Call) -> None:
        """``.detach()`` converts to the identity: the same values, but snnTorch's gradient stops there and the
        graph's does not. Warned once per converted site (each call key converts once)."""
        source = call.args[0] if call.args else None
        what = ""
        if isinstance(source, Ref) and source.source == "call":
            what = f", on {self.program.calls[source.call].describe()}"
        warnings.warn(
            f"{call.describe()}{what}: .detach() stops the gradient in snnTorch, but snnir's graph has no such operation "
            "and carries gradients through it; inference is unchanged, training (e.g. with the torch backend) computes "
            "different gradients from snnTorch here",
            SemanticsWarning,
            stacklevel=2,
        )

    def _check_state(self, call: Call, key: tuple, state: str, operand: Any, outputs: tuple[str, ...]) -> None:
        if operand is None:
            return  # the neuron keeps the state itself (init_hidden, or not passed)
        variable = STATE_VARIABLES[state]
        expected = Location(("body", key[1], outputs.index(variable)), 1) if variable in outputs else None
        if not isinstance(operand, Ref) or self.locate(operand, key) != expected:
            raise GraphError(
                f"{call.describe()}: its {state!r} argument must be its own {state!r} returned at the previous step "
                "(snnir neurons keep their own state, starting at zero)"
            )

    # -- what the outputs need ----------------------------------------------------------------------
    def collect(self, roots: list[tuple]) -> list[tuple]:
        """Convert every call the value keys ``roots`` depend on; returns the call keys in call order."""
        seen: set[tuple] = set()
        stack = [root[:2] for root in roots]
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen.add(key)
            op = self.op(key)
            operands = list(op.inputs)
            for ref in operands:
                location = self.locate(ref, key)
                if location.key[0] in ("body", "pre"):
                    stack.append(location.key[:2])
        return sorted(seen, key=lambda k: self.call_of(k)[0].index if k[0] == "pre" else len(self.program.calls) + k[1])

    def name_nodes(self, keys: list[tuple]) -> None:
        taken: set[str] = set()
        for key in keys:
            call, _ = self.call_of(key)
            if call.is_module and self.ops[key].kind in ("node", "neuron"):
                base = _identifier(call.path)
                name, count = base, 1
                while name in taken:
                    count += 1
                    name = f"{base}_{count}"
                taken.add(name)
                self.names[key] = name
                self.modules[name] = call.path
        counters: dict[str, int] = {}
        for key in keys:
            op = self.ops[key]
            if op.kind == "node" and key not in self.names:
                short = op.node.short_name
                while True:
                    counters[short] = counters.get(short, 0) + 1
                    name = f"{short}{counters[short]}"
                    if name not in taken:
                        break
                taken.add(name)
                self.names[key] = name
        for key, name in list(self.names.items()):
            if self.ops[key].recurrent is not None:
                synapse = f"{name}_rec"
                while synapse in taken:
                    synapse = f"{synapse}_"
                taken.add(synapse)
                self.synapses[key] = synapse
        while self.input_name in taken:
            self.input_name = f"_{self.input_name}"

    # -- values as fan-in terms ---------------------------------------------------------------------
    def terms(self, ref: Ref, key: tuple, consumer: str) -> list[tuple[str, int]]:
        """``[(node, delay), ...]`` whose sum is the operand ``ref`` of the call ``key``."""
        location = self.locate(ref, key)
        kind = location.key[0]
        if kind == "input":
            if self.encoding == "sequence":
                raise GraphError(f"{consumer}: uses the whole input sequence; index it by the step (x[step])")
            return [(self.input_name, 0)]
        if kind == "const":
            if _stale_zeros(ref, self.batch):
                raise UnsupportedNodeError(f"{consumer}: is fed by {STALE_ZEROS}")
            raise UnsupportedNodeError(f"{consumer}: is fed by a constant tensor, which snnir cannot express as an edge")
        source_key, output = location.key[:2], location.key[2]
        op = self.ops[source_key]
        if op.outputs[output] != "value":
            if not _integrates_only(op) or op.outputs[output] != "membrane":
                raise UnsupportedNodeError(
                    f"{consumer}: is fed by the {op.outputs[output]} of {self.names[source_key]!r}; snnir edges carry a neuron's spikes only"
                )
            self.membrane_reads.setdefault(source_key, consumer)  # an LI, if its spikes go unused (see build)
            return [(self.names[source_key], location.delay)]
        return [(node, delay + location.delay) for node, delay in self.value_terms(source_key, consumer)]

    def value_terms(self, key: tuple, consumer: str) -> list[tuple[str, int]]:
        op = self.ops[key]
        if op.kind == "neuron":
            self.spike_reads.add(key)
        if op.kind in ("node", "neuron"):
            return [(self.names[key], 0)]
        if op.kind == "sequence":
            return [(self.input_name, 0)]
        if op.kind == "alias":
            return self.terms(op.inputs[0], key, consumer)
        if op.kind == "bias":
            raise UnsupportedNodeError(
                f"{consumer}: is fed by a signal plus a constant; snnir adds a constant drive only as the bias of a "
                "LIF/IF/LI neuron, right before it"
            )
        terms = self.terms(op.inputs[0], key, consumer)
        for ref in op.inputs[1:]:
            more = self.terms(ref, key, consumer)
            if len(more) > 1:
                raise UnsupportedNodeError(f"{consumer}: sums as a + (b + c); snnir adds fan-in left to right, write (a + b) + c")
            terms += more
        return terms

    # -- the graph --------------------------------------------------------------------------------
    def wire(self, keys: list[tuple]) -> None:
        """Find every edge (``self.edges``), and with them the neurons whose membrane feeds a layer
        (:meth:`reads_as_li`); before :meth:`build`, and before the outputs are chosen."""
        self.edges = self._edges(keys)

    def reads_as_li(self, key: tuple) -> bool:
        """Whether the neuron ``key`` feeds a layer its membrane: it can only be an LI (see build)."""
        return key in self.membrane_reads

    def build(self, keys: list[tuple], outputs: list[tuple[str, str, str]], input_shape: tuple, time: Any, name: str) -> Graph:
        nodes = self._nodes_reading_as_li(outputs)
        builder = GraphBuilder(name, num_steps=time.num_steps, dt=time.dt)
        builder.input(self.input_name, input_shape, self.encoding)
        for key in keys:
            if key in self.names:
                builder.add(self.names[key], nodes.get(key, self.ops[key].node))
                if self.ops[key].recurrent is not None:
                    builder.add(self.synapses[key], self.ops[key].recurrent)
        for source, node, delay in self.edges:
            builder.connect(source, node, delay)
        for output, node, record in outputs:
            builder.output(output, node, record)
        graph = builder.build()
        self._check_shapes(graph, keys)
        return graph

    def _edges(self, keys: list[tuple]) -> list[tuple[str, str, int]]:
        """``(source, node, delay)`` of every edge, in the order the nodes' operands are summed."""
        edges = []
        for key in keys:
            if key not in self.names:
                continue
            node = self.names[key]
            consumer = self.call_of(key)[0].describe()
            for ref in self.ops[key].inputs:
                edges += [(source, node, delay) for source, delay in self.terms(ref, key, consumer)]
            if self.ops[key].recurrent is not None:  # see neurons.py: rec sees the previous spikes
                edges += [(node, self.synapses[key], 1), (self.synapses[key], node, 0)]
        return edges

    def _nodes_reading_as_li(self, outputs: list[tuple[str, str, str]]) -> dict[tuple, LI]:
        """The neurons whose membrane feeds a layer, as LI nodes. A Leaky that never resets integrates
        ``U = β·U + D`` whatever it spikes, exactly as LI, whose value is that membrane (``to_snntorch``
        writes an LI so); it can be one only if its spikes go unused (by layers and by the outputs)."""
        recorded_spikes = {node for _, node, record in outputs if record == "value"}
        nodes = {}
        for key, consumer in self.membrane_reads.items():
            name = self.names[key]
            if key in self.spike_reads or name in recorded_spikes:
                raise UnsupportedNodeError(
                    f"{consumer}: is fed by the membrane of {name!r}, whose spikes are used too; snnir edges carry a "
                    "neuron's value (the membrane alone is LI's value: a Leaky(reset_mechanism='none') whose spikes "
                    "go unused reads as one)"
                )
            neuron = self.ops[key].node
            nodes[key] = LI(neuron.beta, bias=neuron.bias, learn_beta=neuron.learn_beta)
        return nodes

    def _check_shapes(self, graph: Graph, keys: list[tuple]) -> None:
        for key in keys:
            if key in self.names:
                call = self.call_of(key)[0]
                traced = tuple(call.outputs[0].shape[1:])
                if graph.shapes[self.names[key]] != traced:
                    raise GraphError(
                        f"{call.describe()}: the converted node {self.names[key]!r} has shape {graph.shapes[self.names[key]]}, "
                        f"but the traced tensor has {traced} (batch excluded); is the batch the first axis?"
                    )


__all__ = ["Assembler", "Returned"]
