"""The versioned graph schema shared by ``graph.json`` (inside .snnir) and the YAML form.

A document is a mapping::

    format: snnir            # required in graph.json, optional in YAML
    version: 1               # schema version; a newer one is refused with a clear message
    name: my_model
    time: {num_steps: 25, dt: 0.001}
    nodes:                   # a list of {name, kind, **fields} (or, in YAML, a mapping name -> fields)
      - {name: x, kind: Input, shape: [784]}
      - {name: fc1, kind: Linear, out_features: 10}
    edges:                   # [src, dst], [src, dst, delay] or {src, dst, delay}
      - [x, fc1]
    metadata: {}

Node fields are encoded by their FieldSpec, so this module never switches on node kinds. Arrays go
through a format-specific encoder (an .npy member of the archive, or an inline list in YAML).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Callable, Mapping

from ..errors import FormatError, GraphError, NodeParameterError
from ..ir.fields import ArrayDecoder, ArrayEncoder
from ..ir.graph import Edge, Graph, TimeSpec
from ..ir.node import Node

FORMAT_NAME = "snnir"
SCHEMA_VERSION = 1
TOP_LEVEL_KEYS = ("format", "version", "snnir_version", "name", "time", "nodes", "edges", "metadata")

#: Maps a path inside the document (keys and indices) to a human location such as "model.yaml:12:5".
Locator = Callable[[tuple], str]


def suggest(word: str, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(str(word), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(raw: Mapping, allowed: tuple[str, ...] | list[str], where: str, locate: Locator, path: tuple) -> None:
    """Refuse unknown keys, suggesting the closest allowed one (typos are the commonest file error)."""
    for key in raw:
        if key not in allowed:
            raise FormatError(
                f"{locate(path + (key,))}: {where}: unknown key {key!r}{suggest(key, list(allowed))}; "
                f"expected one of: {', '.join(allowed)}"
            )


def expect(value: Any, kind: type | tuple[type, ...], what: str, locate: Locator, path: tuple) -> Any:
    """Return ``value`` if it has one of the expected types (a bool never passes for an int)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise FormatError(f"{locate(path)}: {what}: expected {names}, found {type(value).__name__} {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- encoding -------------------------------------------------------------------------------------
def node_to_dict(name: str, node: Node, encode_array: ArrayEncoder, *, omit_defaults: bool = False) -> dict:
    """``{"name", "kind", **fields}``; with ``omit_defaults`` fields equal to their default are left out."""
    entry: dict[str, Any] = {"name": name, "kind": node.kind}
    for field_name, field_spec in node.field_specs().items():
        if omit_defaults and node.is_default(field_name):
            continue
        entry[field_name] = field_spec.encode(getattr(node, field_name), encode_array)
    return entry


def graph_to_dict(graph: Graph, encode_array: ArrayEncoder, *, omit_defaults: bool = False) -> dict:
    """The schema document of ``graph``."""
    from .. import __version__

    return {
        "format": FORMAT_NAME,
        "version": SCHEMA_VERSION,
        "snnir_version": __version__,
        "name": graph.name,
        "time": {"num_steps": graph.time.num_steps, "dt": graph.time.dt},
        "nodes": [node_to_dict(n, node, encode_array, omit_defaults=omit_defaults) for n, node in graph.nodes.items()],
        "edges": [
            [e.src, e.dst] if e.delay == 0 else [e.src, e.dst, e.delay] for e in graph.edges
        ],
        "metadata": dict(graph.metadata),
    }


# -- decoding -------------------------------------------------------------------------------------
def check_version(raw: Mapping, locate: Locator, *, required: bool) -> None:
    """Refuse documents of another format or of a schema version this snnir cannot read."""
    if "format" in raw or required:
        if raw.get("format") != FORMAT_NAME:
            raise FormatError(f"{locate(('format',))}: not a snnir graph (format {raw.get('format')!r}, expected 'snnir')")
    if "version" not in raw:
        if required:
            raise FormatError(f"{locate(())}: the schema version is missing")
        return
    version = raw["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{locate(('version',))}: the schema version must be a positive integer, found {version!r}")
    if version > SCHEMA_VERSION:
        written_by = raw.get("snnir_version", "a newer snnir")
        raise FormatError(
            f"{locate(('version',))}: schema version {version} (written by snnir {written_by}) is newer than this "
            f"snnir reads (up to {SCHEMA_VERSION}); upgrade snnir"
        )


def time_from_dict(raw: Any, locate: Locator) -> TimeSpec:
    if raw is None:
        return TimeSpec()
    expect(raw, dict, "time", locate, ("time",))
    check_keys(raw, ("num_steps", "dt"), "time", locate, ("time",))
    try:
        return TimeSpec(**raw)
    except GraphError as error:
        key = "num_steps" if "num_steps" in str(error) else "dt"
        raise FormatError(f"{locate(('time', key))}: {error}") from None


def node_from_dict(raw: Any, decode_array: ArrayDecoder, locate: Locator, path: tuple, name: str) -> Node:
    """Build one node from ``{"kind": ..., **fields}`` (the name is handled by the caller)."""
    expect(raw, dict, f"node {name!r}", locate, path)
    kind_name = raw.get("kind")
    kinds = sorted(Node.registry)
    if not isinstance(kind_name, str) or kind_name not in Node.registry:
        where = locate(path + ("kind",)) if "kind" in raw else locate(path)
        raise FormatError(
            f"{where}: node {name!r}: unknown kind {kind_name!r}{suggest(kind_name, kinds)}; "
            f"known kinds: {', '.join(kinds)}"
        )
    kind = Node.registry[kind_name]
    specs = kind.field_specs()
    check_keys({k: v for k, v in raw.items() if k not in ("kind", "name")}, list(specs), f"node {name!r} ({kind_name})", locate, path)
    values = {}
    for field_name, value in raw.items():
        if field_name in ("kind", "name"):
            continue
        where = f"node {name!r} ({kind_name}).{field_name}"
        try:
            values[field_name] = specs[field_name].decode(value, decode_array, where)
        except NodeParameterError as error:
            raise FormatError(f"{locate(path + (field_name,))}: {error}") from error
    missing = [f.name for f in dataclasses.fields(kind) if f.init and f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise FormatError(f"{locate(path)}: node {name!r} ({kind_name}): missing required field {missing[0]!r}")
    try:
        return kind(**values)
    except NodeParameterError as error:
        field_name = _field_in_message(str(error), kind_name, values)
        location = locate(path + (field_name,)) if field_name else locate(path)
        raise FormatError(f"{location}: node {name!r}: {error}") from error
    except TypeError as error:  # a required field is missing
        raise FormatError(f"{locate(path)}: node {name!r} ({kind_name}): {error}") from error


def _field_in_message(message: str, kind: str, values: Mapping) -> str | None:
    for field_name in values:
        if f"{kind}.{field_name}" in message:
            return field_name
    return None


def _nodes_from_raw(raw: Any, decode_array: ArrayDecoder, locate: Locator) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    if isinstance(raw, dict):  # YAML convenience: a mapping name -> fields
        items = [((name,), name, fields) for name, fields in raw.items()]
    else:
        expect(raw, list, "nodes", locate, ("nodes",))
        items = []
        for index, entry in enumerate(raw):
            expect(entry, dict, f"nodes[{index}]", locate, ("nodes", index))
            if not isinstance(entry.get("name"), str) or not entry.get("name"):
                raise FormatError(f"{locate(('nodes', index))}: nodes[{index}] needs a non-empty 'name' string")
            items.append(((index,), entry["name"], entry))
    for sub_path, name, fields in items:
        path = ("nodes",) + sub_path
        if not isinstance(name, str) or not name:
            raise FormatError(f"{locate(path)}: node names must be non-empty strings, found {name!r}")
        if isinstance(raw, dict) and isinstance(fields, dict) and fields.get("name", name) != name:
            raise FormatError(
                f"{locate(path + ('name',))}: node {name!r} also says name: {fields['name']!r}; in the mapping form the key "
                "names the node (drop 'name', or make it the key)"
            )
        if name in nodes:
            raise FormatError(f"{locate(path)}: duplicate node name {name!r}")
        nodes[name] = node_from_dict(fields, decode_array, locate, path, name)
    return nodes


def edge_from_raw(raw: Any, locate: Locator, path: tuple) -> Edge:
    if isinstance(raw, dict):
        check_keys(raw, ("src", "dst", "delay"), "edge", locate, path)
        args = (raw.get("src"), raw.get("dst"), raw.get("delay", 0))
    elif isinstance(raw, list) and len(raw) in (2, 3):
        args = tuple(raw) + ((0,) if len(raw) == 2 else ())
    else:
        raise FormatError(f"{locate(path)}: an edge is [src, dst], [src, dst, delay] or {{src, dst, delay}}, found {_short(raw)}")
    try:
        return Edge(*args)
    except GraphError as error:
        raise FormatError(f"{locate(path)}: {error}") from None


def graph_from_dict(raw: Any, decode_array: ArrayDecoder, locate: Locator, *, version_required: bool = True) -> Graph:
    """Rebuild a graph from a schema document; every problem is a FormatError naming its location."""
    expect(raw, dict, "the document", locate, ())
    check_version(raw, locate, required=version_required)
    check_keys(raw, TOP_LEVEL_KEYS, "the document", locate, ())
    name = raw.get("name", "graph")
    expect(name, str, "name", locate, ("name",))
    time = time_from_dict(raw.get("time"), locate)
    if "nodes" not in raw:
        raise FormatError(f"{locate(())}: the document has no 'nodes'")
    nodes = _nodes_from_raw(raw["nodes"], decode_array, locate)
    edges_raw = raw.get("edges", [])
    expect(edges_raw, list, "edges", locate, ("edges",))
    edges = tuple(edge_from_raw(e, locate, ("edges", i)) for i, e in enumerate(edges_raw))
    metadata = raw.get("metadata", {})
    expect(metadata, dict, "metadata", locate, ("metadata",))
    return Graph(nodes=nodes, edges=edges, time=time, name=name, metadata=metadata)


def check_json_value(value: Any, where: str) -> None:
    """Metadata must survive JSON: finite numbers, strings, lists and string-keyed mappings only."""
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GraphError(f"{where}: metadata must be finite, found {value}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json_value(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise GraphError(f"{where}: metadata keys must be strings, found {key!r}")
            check_json_value(item, f"{where}.{key}")
        return
    raise GraphError(f"{where}: metadata must be JSON-serialisable, found {type(value).__name__}")


__all__ = [
    "FORMAT_NAME",
    "SCHEMA_VERSION",
    "graph_to_dict",
    "graph_from_dict",
    "node_to_dict",
    "node_from_dict",
    "edge_from_raw",
    "time_from_dict",
    "check_keys",
    "check_version",
    "check_json_value",
    "expect",
]
