"""``nn.Sequential`` stacks of torch layers and init_hidden snnTorch neurons -> snnir graphs.

Each child becomes one node (nested Sequentials are walked; ``nn.Identity`` disappears), chained from
one input ``"x"``, named after the child (``conv1`` in an ``OrderedDict`` Sequential) or, for numbered
children, like snnir's builder (``conv1``, ``pool1``, ``lif1``...). An RLeaky/RSynaptic adds its
recurrent synapse ``<neuron>_rec``. The graph records what the last layer returns with ``output=True``:
``spikes`` and ``membrane`` (plus ``current`` for a Synaptic), or ``output`` when the stack ends in a
stateless layer.
"""

from __future__ import annotations

import keyword
import re
from typing import Iterator

from torch import nn

from snnir.builder import GraphBuilder
from snnir.errors import GraphError, ShapeError, UnsupportedNodeError
from snnir.ir.graph import Graph
from snnir.ir.node import Shape

from .layers import import_layer
from .neurons import is_snntorch_neuron, neuron_spec, supported_neurons

#: Output names of a neuron's returned tuple, by record.
OUTPUT_NAMES = {"value": "spikes", "current": "current", "membrane": "membrane"}


def walk(sequential: nn.Sequential, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``(path, module)`` of every layer in order, descending into nested Sequentials."""
    for name, child in sequential.named_children():
        path = f"{prefix}{name}"
        if type(child) is nn.Sequential:
            yield from walk(child, f"{path}.")
        else:
            yield path, child


def convert_sequential(
    sequential: nn.Sequential, input_shape: Shape, num_steps: int, dt: float, encoding: str, name: str
) -> Graph:
    """The graph of ``sequential`` stepped ``num_steps`` times (see the module docstring)."""
    layers = list(walk(sequential))
    builder = GraphBuilder(name, num_steps=num_steps, dt=dt)
    current = builder.input("x", input_shape, encoding)
    shape = tuple(input_shape)
    paths: dict[str, str] = {}
    last_neuron = None
    for index, (path, module) in enumerate(layers):
        where = f"{type(sequential).__name__}[{path}] ({type(module).__name__})"
        spec = neuron_spec(module)
        if spec is not None:
            _check_hidden(module, where, is_last=index == len(layers) - 1)
            node, recurrent = spec.convert(module, shape, where)
        elif is_snntorch_neuron(module):
            raise UnsupportedNodeError(f"{where}: snnTorch's {type(module).__name__} has no snnir equivalent; supported: {', '.join(supported_neurons())}")
        else:
            node, recurrent = import_layer(module, shape, where, supported_neurons()), None
            if node is None:
                continue
        try:
            shape = node.infer_output(shape)
        except ShapeError as error:
            raise ShapeError(f"{where}: {error}") from None
        current = builder.add(_node_name(path, builder), node, current)
        if recurrent is not None:
            feedback = builder.add(_node_name(f"{current}_rec", builder) or f"{current}_rec_", recurrent)
            builder.connect(current, feedback, delay=1)
            builder.connect(feedback, current)
        paths[current] = path
        last_neuron = (current, spec) if spec is not None else None
    if not paths:
        raise GraphError(f"{type(sequential).__name__} has no layer to convert")
    if last_neuron is not None:
        records = [(OUTPUT_NAMES[record], record) for record in last_neuron[1].outputs]
    else:
        records = [("output", "value")]
    hints = getattr(sequential, "snnir_spec", {}).get("outputs", {})  # set by to_snntorch: keep output names
    by_index = {index: output for output, index in hints.items()} if isinstance(hints, dict) else {}
    records = [(by_index.get(index, output), record) for index, (output, record) in enumerate(records)]
    for output, record in records:
        builder.output(output, current, record)
    metadata = {"snntorch": {"form": "sequential", "class": type(sequential).__name__, "modules": paths}}
    graph = builder.build()
    return graph.replace(metadata={**graph.metadata, **metadata})


def _node_name(path: str, builder: GraphBuilder) -> str | None:
    """The child's own name (``conv1`` in an OrderedDict Sequential); None (builder naming) for indices."""
    name = re.sub(r"\W", "_", path)
    if any(part.isdigit() for part in path.split(".")) or keyword.iskeyword(name) or name in OUTPUT_NAMES.values():
        return None
    try:
        builder.node(name)
    except GraphError:
        return name  # not taken yet
    return None


def _check_hidden(module: nn.Module, where: str, is_last: bool) -> None:
    if not module.init_hidden:
        raise GraphError(
            f"{where}: init_hidden=False; inside nn.Sequential a neuron must keep its own state (init_hidden=True), "
            "otherwise it returns (spk, mem) tuples to the next layer"
        )
    if module.output and not is_last:
        raise GraphError(f"{where}: output=True on a layer that is not the last; its (spk, mem) tuple would feed the next layer")


__all__ = ["convert_sequential", "walk", "OUTPUT_NAMES"]
