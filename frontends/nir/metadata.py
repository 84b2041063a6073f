"""What NIR cannot say, said in NIR metadata: snnir's own choices, kept as one JSON string per node.

Each NIR node written by snnir carries ``metadata["snnir"] = json.dumps(record)`` with::

    {"kind": "LIF",                                  # the snnir node kind
     "fields": {"reset": "subtract", ...},           # fields NIR has no place for (field-spec encoded)
     "shapes": {"beta": [], "bias": null, ...}}      # declared shapes of parameters NIR broadcasts

and the graph carries the time spec, name, node order and graph metadata (see :func:`graph_record`).
JSON in one string survives HDF5 unchanged (nested groups would turn lists into arrays and drop
``None``). On import the NIR parameters stay authoritative; the record only fills in the rest.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

from snnir.errors import FormatError
from snnir.ir.fields import Tensor
from snnir.ir.node import Node

KEY = "snnir"
FORMAT = "snnir-nir"
VERSION = 1


def dump(record: Mapping[str, Any]) -> dict[str, str]:
    """The NIR ``metadata`` dict holding ``record``."""
    return {KEY: json.dumps(record, sort_keys=True, allow_nan=False, ensure_ascii=False)}


def load(metadata: Any, where: str) -> dict[str, Any] | None:
    """The snnir record in a NIR ``metadata`` dict, or None when the node was not written by snnir."""
    if not isinstance(metadata, Mapping) or KEY not in metadata:
        return None
    raw = metadata[KEY]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        record = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError as error:
        raise FormatError(f"{where}: metadata['snnir'] is not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise FormatError(f"{where}: metadata['snnir'] must hold a JSON object, found {type(raw).__name__}")
    return record


def graph_record(graph: Any, dt: float, scheme: str) -> dict[str, Any]:
    """The graph-level record of a snnir graph exported with ``dt`` and ``scheme``."""
    from snnir import __version__

    return {
        "format": FORMAT,
        "version": VERSION,
        "snnir_version": __version__,
        "name": graph.name,
        "num_steps": graph.time.num_steps,
        "dt": dt,
        "discretization": scheme,
        "node_order": list(graph.nodes),
        "metadata": dict(graph.metadata),
    }


def check_graph_record(record: dict[str, Any] | None, where: str) -> dict[str, Any] | None:
    """Refuse records of another format or a newer version; None passes (a foreign file)."""
    if record is None:
        return None
    if record.get("format") != FORMAT:
        raise FormatError(f"{where}: metadata['snnir'] has format {record.get('format')!r}, expected {FORMAT!r}")
    version = record.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise FormatError(
            f"{where}: snnir metadata version {version!r} is not readable by this snnir (reads 1 to {VERSION}); "
            "upgrade snnir"
        )
    expected = {"name": str, "metadata": dict, "node_order": list}
    for key, kind in expected.items():
        if key in record and not isinstance(record[key], kind):
            raise FormatError(f"{where}: metadata['snnir'].{key} must be a {kind.__name__}, found {record[key]!r}")
    return record


def _refuse_arrays(array: np.ndarray) -> Any:
    raise ValueError("array fields are carried by NIR parameters, not by metadata")


def _refuse_array_reference(raw: Any, where: str) -> Any:
    raise FormatError(f"{where}: arrays are carried by NIR parameters, not by metadata['snnir']")


def node_record(node: Node, carried: set[str]) -> dict[str, Any]:
    """The record of ``node``: its kind, the fields NIR does not carry, the shapes of those it does."""
    fields, shapes = {}, {}
    for name, field_spec in node.field_specs().items():
        value = getattr(node, name)
        if name not in carried:
            fields[name] = field_spec.encode(value, _refuse_arrays)
        elif isinstance(field_spec, Tensor):
            shapes[name] = None if value is None else list(np.shape(value))
    return {"kind": node.kind, "fields": fields, "shapes": shapes}


def node_fields(record: dict[str, Any] | None, kind: type[Node], where: str) -> dict[str, Any]:
    """Decoded non-NIR fields of ``record`` if it describes a node of ``kind`` (else nothing)."""
    if record is None or record.get("kind") != kind.kind:
        return {}
    raw = record.get("fields", {})
    if not isinstance(raw, dict):
        raise FormatError(f"{where}: metadata['snnir'].fields must be an object, found {type(raw).__name__}")
    specs = kind.field_specs()
    unknown = sorted(set(raw) - set(specs))
    if unknown:
        raise FormatError(f"{where}: metadata['snnir'] names fields {unknown} that {kind.kind} does not have")
    return {name: specs[name].decode(value, _refuse_array_reference, f"{where}.{name}") for name, value in raw.items()}


def declared_shape(record: dict[str, Any] | None, kind: type[Node], field: str) -> tuple[str, Any]:
    """``("absent", None)``, ``("shape", tuple)`` or ``("unknown", None)`` for a carried parameter."""
    if record is None or record.get("kind") != kind.kind or field not in record.get("shapes", {}):
        return "unknown", None
    shape = record["shapes"][field]
    if shape is None:
        return "absent", None
    if isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
        return "shape", tuple(shape)
    return "unknown", None


def reduce(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` shrunk to ``shape`` when it is exactly that smaller array broadcast (else unchanged)."""
    full = array.shape
    try:
        if np.broadcast_shapes(shape, full) != full:
            return array
    except ValueError:
        return array
    lead = len(full) - len(shape)
    index = (0,) * lead + tuple(slice(None) if s == f else slice(0, 1) for s, f in zip(shape, full[lead:]))
    reduced = array[index].reshape(shape)
    return reduced if np.array_equal(np.broadcast_to(reduced, full), array) else array


__all__ = [
    "KEY",
    "FORMAT",
    "VERSION",
    "dump",
    "load",
    "graph_record",
    "check_graph_record",
    "node_record",
    "node_fields",
    "declared_shape",
    "reduce",
]
