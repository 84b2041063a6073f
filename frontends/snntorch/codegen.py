"""The time-loop form of ``to_snntorch``: Python source for ``forward``, compiled into a module.

For the snnTorch quickstart's FC net the generated forward reads::

    def forward(self, x):
        batch = x.shape[0]
        mem_lif1 = torch.zeros((batch, 300), dtype=x.dtype, device=x.device)
        ...
        for step in range(self.num_steps):
            flatten1 = self.flatten1(x)
            fc1 = self.fc1(flatten1)
            lif1, mem_lif1 = self.lif1(fc1, mem_lif1)
            ...
            spikes_rec.append(lif2)
        return torch.stack(spikes_rec), torch.stack(membrane_rec)

Each node runs in topological order; fan-in is summed left to right in edge order (``a + b + c``);
a delayed edge reads a history variable ``<node>_d<k>`` shifted at the end of each step; a LIF/LI
``bias`` is added to the summed input, as snnir does (``D = I + b``). The source is registered in
``linecache``, so tracebacks show the generated lines; ``module.code`` returns it.
"""

from __future__ import annotations

import hashlib
import linecache
from typing import Any

import torch
from torch import nn

from snnir.errors import InputError
from snnir.ir.graph import Graph
from snnir.ir.io import Input, Output
from snnir.ir.neurons import LI, CubaLIF

from .export import Names, Plan, export_layer
from .tensors import to_tensor

_INDENT = "    "


class SnnTorchLoop(nn.Module):
    """An snnTorch model whose ``forward(*inputs)`` runs the whole time loop (made by ``to_snntorch``).

    Inputs follow the graph: ``[B, ...]`` for a ``direct`` input, ``[T, B, ...]`` for a ``sequence``. The loop
    runs ``num_steps`` steps, or ``T`` when the graph has sequence inputs (as the snnir backends do).
    ``forward`` returns what the original snnTorch module returned when the graph came from
    ``from_snntorch``, else a tuple of every recorded output ``[T, B, ...]``, in ``output_names`` order.
    """

    def __init__(self, layers: dict[str, nn.Module], buffers: dict[str, torch.Tensor], code: str, num_steps: int, output_names: list[str], spec: dict):
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)
        for name, tensor in buffers.items():
            self.register_buffer(name, tensor)
        self.code = code
        self.num_steps = num_steps
        self.output_names = list(output_names)
        self.snnir_spec = spec
        self._compile()

    def _compile(self) -> None:
        filename = f"<snnir-snntorch-{hashlib.sha1(self.code.encode()).hexdigest()[:12]}>"
        linecache.cache[filename] = (len(self.code), None, self.code.splitlines(keepends=True), filename)
        namespace: dict[str, Any] = {"torch": torch}
        exec(compile(self.code, filename, "exec"), namespace)  # noqa: S102 - our own generated source
        self._forward = namespace["forward"]

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self._forward(self, *inputs)

    def sequence_steps(self, sequences: dict[str, torch.Tensor]) -> int:
        """The number of steps of a forward with sequence inputs ``{graph input: [T, B, ...]}``: their common ``T``."""
        lengths = {name: int(tensor.shape[0]) for name, tensor in sequences.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"sequence inputs disagree on the number of steps: {lengths}")
        if not all(lengths.values()):
            raise InputError(f"sequence inputs hold zero steps: {lengths}")
        return next(iter(lengths.values()))


#: names a node may not take: they are module attributes (layers become attributes of the module) or locals
#: names a child module may not take: the class's and every nn.Module instance's attributes (training, _modules...)
_RESERVED = set(dir(SnnTorchLoop)) | set(dir(nn.Module())) | {"code", "num_steps", "output_names", "snnir_spec", "_forward", "self", "torch", "step", "batch", "_"}


class _Writer:
    """Emits the forward's source for one graph."""

    def __init__(self, graph: Graph, plan_: Plan):
        self.graph = graph
        self.plan = plan_
        self.names = Names(_RESERVED)
        self.var = {name: self.names.fresh(name) for name in graph.nodes if not isinstance(graph.nodes[name], Output)}
        self.params = {
            name: self.names.fresh(f"{self.var[name]}_all") if graph.nodes[name].encoding == "sequence" else self.var[name]
            for name in graph.inputs
        }
        first = graph.inputs[0]
        self.ref = self.params[first]
        self.states: dict[tuple[str, str], str] = {}
        self.history: dict[tuple[str, int], str] = {}
        depth: dict[str, int] = {}
        for edge in graph.edges:
            if edge.delay and not plan_.is_group_edge(edge.src, edge.dst):
                depth[edge.src] = max(depth.get(edge.src, 0), edge.delay)
        for src, deepest in depth.items():
            for k in range(1, deepest + 1):
                self.history[(src, k)] = self.names.fresh(f"{self.var[src]}_d{k}")
        self.layers: dict[str, nn.Module] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.setup = [f"batch = {self.ref}.shape[{0 if graph.nodes[first].encoding == 'direct' else 1}]"]
        self.steps = "self.num_steps"
        sequences = {n: self.params[n] for n in graph.inputs if graph.nodes[n].encoding == "sequence"}
        if sequences:  # the length of the sequences, as in snnir's runs, not the steps the graph was made with
            self.steps = self.names.fresh("steps")
            given = ", ".join(f"{name!r}: {param}" for name, param in sequences.items())
            self.setup.insert(0, f"{self.steps} = self.sequence_steps({{{given}}})")
        self.body = [f"{self.var[n]} = {self.params[n]}[step]" for n in graph.inputs if self.params[n] != self.var[n]]

    def zeros(self, node: str) -> str:
        shape = "".join(f", {n}" for n in self.graph.shapes[node])
        return f"torch.zeros((batch{shape}), dtype={self.ref}.dtype, device={self.ref}.device)"

    def state(self, node: str, variable: str) -> str:
        if (node, variable) not in self.states:
            prefix = {"membrane": "mem", "current": "syn", "value": "spk"}[variable]
            self.states[(node, variable)] = name = self.names.fresh(f"{prefix}_{self.var[node]}")
            self.setup.append(f"{name} = {self.zeros(node)}")
        return self.states[(node, variable)]

    def term(self, src: str, delay: int) -> str:
        return self.var[src] if delay == 0 else self.history[(src, delay)]

    def emit_node(self, name: str) -> None:
        node, var = self.graph.nodes[name], self.var[name]
        terms = [self.term(e.src, e.delay) for e in self.graph.incoming(name) if not self.plan.is_group_edge(e.src, e.dst)]
        drive = " + ".join(terms)
        self.layers[var] = export_layer(self.graph, self.plan, name)
        if not node.stateful:
            self.body.append(f"{var} = self.{var}({drive})")
            return
        if getattr(node, "bias", None) is not None and not isinstance(node, CubaLIF):
            bias = self.names.fresh(f"{var}_bias")
            self.buffers[bias] = to_tensor(node.bias)
            drive = f"({drive}) + self.{bias}"
        states = [self.state(name, v) for v in (("current", "membrane") if isinstance(node, CubaLIF) else ("membrane",))]
        if name in self.plan.groups:  # RLeaky/RSynaptic take their previous spikes as a state
            spikes = self.state(name, "value")
            self.body.append(f"{', '.join([spikes, *states])} = self.{var}({', '.join([drive, spikes, *states])})")
            self.body.append(f"{var} = {spikes}")
        elif isinstance(node, LI):  # a Leaky without reset: its membrane is LI's value
            self.body.append(f"_, {states[0]} = self.{var}({drive}, {states[0]})")
            self.body.append(f"{var} = {states[0]}")
        else:
            self.body.append(f"{var}, {', '.join(states)} = self.{var}({drive}, {', '.join(states)})")

    def this_step(self, node: str) -> str:
        """The expression a history variable takes at the end of a step: the node's value of this step.

        A direct input is the same tensor object at every step, so a delayed read of it is kept as a per-step
        ``.clone()``: then a trace of the module (``from_snntorch``) sees which step's value each read is.
        """
        var = self.var[node]
        return f"{var}.clone()" if node in self.graph.inputs and self.params[node] == var else var

    def recorded(self, output: str) -> str:
        source = self.graph.output_source(output)
        record = self.graph.nodes[output].record
        if record in ("value", "spikes") or isinstance(self.graph.nodes[source], LI):
            return self.var[source]
        return self.state(source, record)

    def write(self) -> tuple[str, list[str]]:
        graph = self.graph
        for name in graph.topological_order():
            if not isinstance(graph.nodes[name], (Input, Output)) and name not in self.plan.members:
                self.emit_node(name)
        records = {}
        for output in graph.outputs:
            records[output] = self.names.fresh(f"{output}_rec")
            self.setup.append(f"{records[output]} = []")
            self.body.append(f"{records[output]}.append({self.recorded(output)})")
        for (src, k), name in sorted(self.history.items(), key=lambda item: (item[0][0], -item[0][1])):
            self.setup.append(f"{name} = {self.zeros(src)}")
            self.body.append(f"{name} = {self.history[(src, k - 1)] if k > 1 else self.this_step(src)}")
        returned, names = self._returned(records)
        lines = [f"def forward(self, {', '.join(self.params.values())}):"]
        lines += [_INDENT + line for line in self.setup]
        lines.append(f"{_INDENT}for step in range({self.steps}):")
        lines += [2 * _INDENT + line for line in self.body]
        lines.append(f"{_INDENT}return {returned}")
        return "\n".join(lines) + "\n", names

    def _returned(self, records: dict[str, str]) -> tuple[str, list[str]]:
        """The return expression: the original module's structure when the graph remembers it."""
        origin = self.graph.metadata.get("snntorch")
        meta = origin.get("returns") if isinstance(origin, dict) else None
        items = meta.get("items") if isinstance(meta, dict) else None
        if not isinstance(items, list) or not items or any(not isinstance(i, dict) or i.get("output") not in records for i in items):
            meta, items = {"structure": "tuple"}, [{"output": output} for output in self.graph.outputs]
        values = [f"{records[i['output']]}[-1]" if i.get("last_step") else f"torch.stack({records[i['output']]})" for i in items]
        names = [item["output"] for item in items]
        structure = meta.get("structure")
        if structure == "tensor" and len(values) == 1:
            return values[0], names
        if structure == "dict" and all(isinstance(i.get("key"), str) for i in items):
            return "{" + ", ".join(f"{i['key']!r}: {v}" for i, v in zip(items, values)) + "}", names
        if structure == "list":
            return f"[{', '.join(values)}]", names
        return f"({', '.join(values)},)" if len(values) == 1 else ", ".join(values), names


def build_loop(graph: Graph, plan_: Plan) -> SnnTorchLoop:
    """The time-loop module of ``graph`` (see the module docstring)."""
    writer = _Writer(graph, plan_)
    code, names = writer.write()
    encodings = {name: graph.nodes[name].encoding for name in graph.inputs}
    spec = {"form": "loop", "num_steps": graph.time.num_steps, "encoding": encodings, "outputs": names}
    return SnnTorchLoop(writer.layers, writer.buffers, code, graph.time.num_steps, names, spec)


__all__ = ["SnnTorchLoop", "build_loop"]
