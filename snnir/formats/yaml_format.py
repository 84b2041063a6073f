"""The declarative YAML form: the graph.json schema with sizes and weights optional, plus a layer stack.

Two shapes of document are accepted (``snnir.load`` reads either):

* the general form of :mod:`snnir.formats.schema` (``nodes`` + ``edges``; nodes may be a mapping
  ``name: {kind: ..., fields...}``);
* a layer stack, where each layer feeds the next::

      name: quickstart_fc
      seed: 0
      time: {num_steps: 25}
      input: {shape: [784], encoding: direct}
      layers:
        - {kind: Linear, out_features: 1000}
        - {kind: LIF, name: lif1, beta: {init: per_neuron, value: 0.95}, learn_beta: true}
        - {kind: Recurrent, neuron: {kind: LIF, beta: 0.9}, synapse: {kind: Linear, out_features: 1000}}
      outputs: {spikes: value, membrane: membrane}

Lazy parameters are drawn with ``seed`` (default 0) when the file is loaded. Errors carry
``file:line:column``; unknown keys and kinds come with a did-you-mean suggestion. Parsing uses
PyYAML's safe loader only, with YAML 1.2's numbers (``1e-4`` is a float).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..builder import GraphBuilder, Recurrent, default_outputs
from ..errors import FormatError, GraphError, NodeParameterError, SnnirError
from ..ir.graph import Graph
from ..ir.io import ENCODINGS
from ..passes.materialize import materialize
from ..validate import validate
from .atomic import atomic_write
from .schema import (
    TOP_LEVEL_KEYS,
    Locator,
    check_json_value,
    check_keys,
    check_version,
    expect,
    graph_from_dict,
    graph_to_dict,
    node_from_dict,
    suggest,
    time_from_dict,
)

YAML_ONLY_KEYS = ("seed", "input", "layers", "outputs")
#: Upper bound on YAML nodes visited, so that alias bombs ("billion laughs") fail fast.
MAX_YAML_NODES = 2_000_000
#: Largest YAML file read (a model description with inline weights stays far below).
MAX_YAML_BYTES = 256 * 2**20


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-4`` and ``5E3`` are floats (YAML
    1.1 wants a dot in the mantissa and would read them as strings, though every doc writes dt so)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


class _Document:
    """A parsed YAML document plus the line and column of every key and item in it."""

    def __init__(self, text: str, label: str):
        self.label = label
        self.marks: dict[tuple, tuple[int, int]] = {}
        self._constructor = _Loader("")
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
            raise FormatError(f"{where}: invalid YAML: {error.problem or error.context}") from None
        except yaml.YAMLError as error:
            raise FormatError(f"{label}: invalid YAML: {error}") from None
        except RecursionError:
            raise FormatError(f"{label}: the YAML is nested too deeply") from None
        if root is None:
            raise FormatError(f"{label}: the file is empty")
        try:
            if _expanded_size(root, {}) > MAX_YAML_NODES:
                raise FormatError(f"{label}: the YAML expands to more than {MAX_YAML_NODES} values (alias bomb?)")
            self.data = self._convert(root, ())
        except RecursionError:
            raise FormatError(f"{label}: the YAML is nested too deeply") from None

    def _convert(self, node: yaml.Node, path: tuple) -> Any:
        self.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise FormatError(f"{self._at(key_node)}: mapping keys must be plain scalars")
                key = self._scalar(key_node)
                if key in result:
                    raise FormatError(f"{self._at(key_node)}: duplicate key {key!r}")
                self.marks[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self._convert(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as error:  # ValueError: a scalar its resolver took for a number
            raise FormatError(f"{self._at(node)}: {error}") from None

    def _at(self, node: yaml.Node) -> str:
        return f"{self.label}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def locate(self, path: tuple) -> str:
        """``file:line:column`` of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark:
                return f"{self.label}:{mark[0]}:{mark[1]}"
        return self.label


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of values ``node`` expands to once aliases are followed (memoised, so it is cheap)."""
    key = id(node)
    if key not in memo:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        memo[key] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[key]


def _decode_inline_array(raw: Any, where: str) -> np.ndarray:
    """YAML arrays are nested lists of numbers; node constructors convert and check them.

    Anything else is a bad parameter value: a NodeParameterError, which :func:`node_from_dict`
    prefixes with the field's ``file:line:column``.
    """
    if not isinstance(raw, list):
        raise NodeParameterError(f"{where}: expected a number, a nested list of numbers or {{init: ...}}, found {raw!r}")
    return raw  # type: ignore[return-value]


def _stack_graph(doc: dict, locate: Locator, positions: dict[str, tuple]) -> Graph:
    """Build the layer-stack form through the same builder as :func:`snnir.Sequential`."""
    for key in ("nodes", "edges"):
        if key in doc:
            raise FormatError(f"{locate((key,))}: a layer stack ('layers') cannot also declare '{key}'")
    if "input" not in doc:
        raise FormatError(f"{locate(())}: a layer stack needs an 'input' with its shape")
    spec = expect(doc["input"], dict, "input", locate, ("input",))
    check_keys(spec, ("name", "shape", "encoding"), "input", locate, ("input",))
    time = time_from_dict(doc.get("time"), locate)
    builder = GraphBuilder(doc.get("name", "graph"), num_steps=time.num_steps, dt=time.dt)
    encoding = spec.get("encoding", "direct")
    if encoding not in ENCODINGS:
        raise FormatError(f"{locate(('input', 'encoding'))}: encoding must be one of {list(ENCODINGS)}, found {encoding!r}")
    shape = spec.get("shape")
    if not isinstance(shape, (list, int)) or isinstance(shape, bool):
        raise FormatError(f"{locate(('input', 'shape'))}: input.shape must be a list of positive ints, found {shape!r}")
    try:
        current = builder.input(spec.get("name", "x"), shape, encoding)
    except SnnirError as error:
        raise FormatError(f"{locate(('input',))}: {error}") from None
    layers = expect(doc["layers"], list, "layers", locate, ("layers",))
    if not layers:
        raise FormatError(f"{locate(('layers',))}: 'layers' is empty")
    for index, entry in enumerate(layers):
        path = ("layers", index)
        expect(entry, dict, f"layers[{index}]", locate, path)
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise FormatError(f"{locate(path + ('name',))}: layer names must be strings, found {name!r}")
        label = name or f"layers[{index}]"
        if entry.get("kind") == "Recurrent":
            check_keys(entry, ("kind", "name", "neuron", "synapse", "delay"), f"layer {label!r} (Recurrent)", locate, path)
            for part in ("neuron", "synapse"):
                if part not in entry:
                    raise FormatError(f"{locate(path)}: a Recurrent layer needs '{part}'")
            layer: Any = Recurrent(
                node_from_dict(entry["neuron"], _decode_inline_array, locate, path + ("neuron",), label),
                node_from_dict(entry["synapse"], _decode_inline_array, locate, path + ("synapse",), f"{label}_rec"),
                entry.get("delay", 1),
            )
        else:
            layer = node_from_dict(entry, _decode_inline_array, locate, path, label)
        try:
            current = builder.chain(current, (name, layer) if name else layer)
        except GraphError as error:
            raise FormatError(f"{locate(path)}: {error}") from None
        positions[current] = path
        if isinstance(layer, Recurrent):  # its synapse node, named by the builder
            positions[f"{current}_rec"] = path + ("synapse",)
    records = doc.get("outputs")
    last = builder.node(current)
    if records is None:
        records = default_outputs(last)
    expect(records, dict, "outputs", locate, ("outputs",))
    for output_name, record in records.items():
        try:
            builder.output(str(output_name), current, record)
        except SnnirError as error:
            raise FormatError(f"{locate(('outputs', output_name))}: output {str(output_name)!r}: {error}") from error
    return builder.build(materialize=False, check=False)


def loads_yaml(text: str, label: str = "<yaml>") -> Graph:
    """Parse a YAML model description; lazy parameters are drawn with the document's ``seed``."""
    document = _Document(text, label)
    doc = expect(document.data, dict, "the document", document.locate, ())
    locate = document.locate
    check_version(doc, locate, required=False)
    check_keys(doc, TOP_LEVEL_KEYS + YAML_ONLY_KEYS, "the document", locate, ())
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise FormatError(f"{locate(('seed',))}: seed must be a non-negative integer, found {seed!r}")
    positions: dict = {}  # node name (and edge, in the general form) -> where it is written, for errors found later
    if "layers" in doc:
        graph = _stack_graph(doc, locate, positions)
    else:
        for key in ("input", "outputs"):
            if key in doc:
                raise FormatError(f"{locate((key,))}: '{key}' belongs to the layer-stack form (with 'layers')")
        general = {k: v for k, v in doc.items() if k != "seed"}
        graph = graph_from_dict(general, _decode_inline_array, locate, version_required=False)
        positions.update({name: ("nodes", name) for name in graph.nodes})
        positions.update({edge: ("edges", index) for index, edge in enumerate(graph.edges)})
        for index, edge in enumerate(graph.edges):
            for end in (edge.src, edge.dst):
                if end not in graph.nodes:
                    raise FormatError(
                        f"{locate(('edges', index))}: edge {edge}: unknown node {end!r}{suggest(end, list(graph.nodes))}"
                    )
        _warn_repeated_edges(graph, locate)
    try:
        validate(graph)
        return materialize(graph, seed)
    except SnnirError as error:
        raise type(error)(f"{_place(error, positions, locate, label)}: {error}") from None


def _warn_repeated_edges(graph: Graph, locate: Locator) -> None:
    """Warn of an edge written twice: it is legal (fan-in sums every edge, so the source counts twice),
    but in a hand-written file it is far more often a copy-paste slip than a deliberate doubling."""
    first: dict = {}
    for index, edge in enumerate(graph.edges):
        if edge in first:
            warnings.warn(
                f"{locate(('edges', index))}: edge {edge} repeats the one at {locate(('edges', first[edge]))}; "
                f"fan-in sums both, so {edge.dst!r} receives {edge.src!r}'s output twice (write it once, or a "
                f"Scale of 2 if the doubling is meant)",
                UserWarning,
                stacklevel=5,  # the caller of snnir.load
            )
        first.setdefault(edge, index)


def _place(error: SnnirError, positions: dict, locate: Locator, label: str) -> str:
    """Where the edge (general form) or else the node at fault is written: ``file:line:column``."""
    for key in (getattr(error, "edge", None), getattr(error, "node", None)):
        if key is not None and key in positions:
            return locate(positions[key])
    return label


def load_yaml(path: str | os.PathLike) -> Graph:
    """Read a YAML model file (see the module docstring for the two accepted forms)."""
    label = str(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_YAML_BYTES:
            raise FormatError(f"{label}: {size} bytes is larger than the {MAX_YAML_BYTES} a YAML model may have")
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{label}: no such file") from None
    except UnicodeDecodeError as error:
        raise FormatError(f"{label}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except IsADirectoryError:
        raise FormatError(f"{label}: is a directory, not a YAML file") from None
    return loads_yaml(text, label)


class _Dumper(yaml.SafeDumper):
    """Writes lists of numbers (weights, shapes, edges) in flow style, everything else in block style."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(not isinstance(item, dict) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def _shortest_list(array: np.ndarray) -> list:
    """Nested lists of the shortest decimals that read back as the same float32 values."""
    return array.astype(str).astype(np.float64).tolist()


def dumps_yaml(graph: Graph) -> str:
    """The YAML form of ``graph`` (general form; defaults omitted; arrays inline, exactly)."""
    validate(graph)
    check_json_value(dict(graph.metadata), "metadata")
    document = graph_to_dict(graph, _shortest_list, omit_defaults=True)
    document["nodes"] = {entry.pop("name"): entry for entry in document["nodes"]}
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def save_yaml(graph: Graph, path: str | os.PathLike) -> Path:
    """Write the YAML form of ``graph`` atomically."""
    text = dumps_yaml(graph)
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


__all__ = ["load_yaml", "loads_yaml", "dumps_yaml", "save_yaml"]
