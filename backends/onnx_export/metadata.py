"""The snnir metadata of an exported model: one JSON document in ``metadata_props["snnir"]``.

It says how to drive the model (inputs, states, outputs, probes, time) and carries the graph itself,
whose arrays point at the model's initializers, so that :func:`snnir.load` rebuilds the identical
graph. docs/formats.md documents every key. Reading checks the document before anything uses it:
a checksum over the ONNX graph and the document catches corrupted weights, nodes or metadata, and the
document must describe the embedded graph as the exporter would (a defence against crafted files).
"""

from __future__ import annotations

import hashlib
import json
import numbers
from typing import Any

import numpy as np
from onnx import GraphProto, ModelProto, TensorProto, numpy_helper

from snnir import __version__
from snnir.errors import FormatError, SnnirError
from snnir.formats.schema import check_json_value, graph_from_dict, graph_to_dict
from snnir.ir.graph import Graph
from snnir.validate import validate

from .context import Names, Parameters
from .opset import BATCH_DIM, METADATA_FORMAT, METADATA_KEY, METADATA_VERSION, MODES, OPSET, PRODUCER_NAME, TIME_DIM
from .plan import Plan, make_plan

#: Fields of each entry of the lists in the document, with their JSON types.
ENTRY_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "inputs": {"name": (str,), "encoding": (str,), "shape": (list,), "dtype": (str,)},
    "outputs": {"name": (str,), "node": (str,), "record": (str,), "spiking": (bool,), "shape": (list,), "dtype": (str,)},
    "probes": {"name": (str,), "key": (str,), "node": (str,), "variable": (str,), "shape": (list,), "dtype": (str,)},
    "states": {
        "name": (str,),
        "node": (str,),
        "variable": (str,),
        "lag": (int,),
        "input": (str,),
        "output": (str,),
        "shape": (list,),
        "dtype": (str,),
        "initial_value": (int, float),
        "reset": (dict, type(None)),
    },
}


def digest(graph_proto: GraphProto, doc: dict[str, Any]) -> str:
    """SHA-256 of the ONNX graph (deterministic protobuf bytes) then of the document without its ``sha256``
    (canonical JSON: sorted keys, compact, ASCII): any corrupted weight, node or metadata value changes it."""
    body = {key: value for key, value in doc.items() if key != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(graph_proto.SerializeToString(deterministic=True) + text.encode("ascii")).hexdigest()


def _dims(shape: tuple[int, ...], *, time: bool = False) -> list:
    return ([TIME_DIM] if time else []) + [BATCH_DIM, *shape]


def _reset_rule(graph: Graph, node_name: str, lag: int) -> dict | None:
    """What a spike does to a neuron's state (delay lines and non-spiking neurons: nothing). A user's
    spiking kind without snnir's ``reset``/``reset_timing`` fields resets its own way: ``"custom"``."""
    node = graph.nodes[node_name]
    if lag or not node.spiking:
        return None
    return {"mode": getattr(node, "reset", "custom"), "timing": getattr(node, "reset_timing", "custom")}


def signature(graph: Graph, plan: Plan) -> dict[str, Any]:
    """The part of the metadata that says how to drive the model: time, inputs, outputs, probes, states."""
    timed = plan.mode == "sequence"
    f32 = {"dtype": "float32"}
    inputs = []
    for name in plan.inputs:
        encoding = graph.nodes[name].encoding  # type: ignore[attr-defined]
        shape = _dims(graph.shapes[name], time=timed and encoding == "sequence")
        inputs.append({"name": name, "encoding": encoding, "shape": shape, **f32})
    outputs = []
    for out in plan.outputs:
        record = graph.nodes[out.key].record  # type: ignore[attr-defined]
        spiking = record == "spikes" or (record == "value" and graph.nodes[out.node].spiking)
        entry = {"name": out.onnx_name, "node": out.node, "record": record, "spiking": spiking}
        outputs.append({**entry, "shape": _dims(out.shape, time=timed), **f32})
    probes = [
        {"name": p.onnx_name, "key": p.key, "node": p.node, "variable": p.variable, "shape": _dims(p.shape, time=timed), **f32}
        for p in plan.probes
    ]
    states = [
        {
            "name": s.key,
            "node": s.node,
            "variable": s.variable,
            "lag": s.lag,
            "input": s.input,
            "output": s.output,
            "shape": _dims(s.shape),
            "dtype": "float32",
            "initial_value": 0.0,
            "reset": _reset_rule(graph, s.node, s.lag),
        }
        for s in plan.states
    ]
    return {
        "mode": plan.mode,
        "time": {"num_steps": graph.time.num_steps, "dt": graph.time.dt},
        "num_steps_input": plan.num_steps_input,
        "inputs": inputs,
        "outputs": outputs,
        "probes": probes,
        "states": states,
    }


def build_metadata(graph: Graph, plan: Plan, parameters: Parameters, graph_proto: GraphProto) -> dict[str, Any]:
    """The metadata document of ``graph_proto``, built from ``graph`` by ``plan`` (see docs/formats.md)."""
    check_json_value(dict(graph.metadata), "metadata")
    header = {"format": METADATA_FORMAT, "version": METADATA_VERSION, "snnir_version": __version__}
    dims = {"opset": OPSET, "batch_dim": BATCH_DIM, "time_dim": TIME_DIM}
    doc = {**header, **dims, **signature(graph, plan), "graph": graph_to_dict(graph, parameters.encode)}
    doc["sha256"] = digest(graph_proto, doc)
    return doc


# -- reading --------------------------------------------------------------------------------------------
def _fail(label: str, where: str, message: str) -> FormatError:
    return FormatError(f"{label}: metadata {METADATA_KEY!r}{where}: {message}")


def _check_type(label: str, where: str, value: Any, kinds: tuple[type, ...]) -> None:
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise _fail(label, where, f"expected {names}, found {type(value).__name__} {str(value)[:60]}")


def read_metadata(model: ModelProto, label: str) -> dict[str, Any]:
    """Parse and check the metadata document of ``model``; FormatError for foreign or damaged files."""
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        if model.producer_name == PRODUCER_NAME:
            reason = "the producer is snnir, so the file is probably truncated"
        else:
            reason = f"it was written by {model.producer_name or 'an unknown producer'!r}, not by snnir.export_onnx"
        raise FormatError(
            f"{label}: not a snnir ONNX file: metadata_props has no {METADATA_KEY!r} entry ({reason}); snnir imports "
            "only ONNX files it exported, bring other models in through the NIR or snnTorch frontends"
        )
    text = props[METADATA_KEY]
    if not isinstance(text, str):  # protobuf hands back bytes when a string field is not valid UTF-8
        raise _fail(label, "", "the value is not UTF-8 text (corrupted file?)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(label, "", f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise _fail(label, "", "the JSON is nested too deeply") from None
    _check_type(label, "", doc, (dict,))
    if doc.get("format") != METADATA_FORMAT:
        raise _fail(label, ".format", f"expected {METADATA_FORMAT!r}, found {doc.get('format')!r}")
    version = doc.get("version")
    _check_type(label, ".version", version, (int,))
    if version > METADATA_VERSION:
        writer = doc.get("snnir_version", "?")
        message = f"version {version} (snnir {writer}) is newer than this snnir reads ({METADATA_VERSION}); upgrade snnir"
        raise _fail(label, ".version", message)
    _check_digest(model, doc, label)
    _check_document(doc, label)
    return doc


def _check_document(doc: dict, label: str) -> None:
    top = {"mode": (str,), "time": (dict,), "num_steps_input": (str, type(None)), "graph": (dict,)}
    for key, kinds in {**top, **{k: (list,) for k in ENTRY_FIELDS}}.items():
        if key not in doc:
            raise _fail(label, "", f"the key {key!r} is missing")
        _check_type(label, f".{key}", doc[key], kinds)
    if doc["mode"] not in MODES:
        raise _fail(label, ".mode", f"expected one of {list(MODES)}, found {doc['mode']!r}")
    for key, fields in ENTRY_FIELDS.items():
        for index, entry in enumerate(doc[key]):
            _check_type(label, f".{key}[{index}]", entry, (dict,))
            for field, kinds in fields.items():
                if field not in entry:
                    raise _fail(label, f".{key}[{index}]", f"the field {field!r} is missing")
                _check_type(label, f".{key}[{index}].{field}", entry[field], kinds)
            if entry["dtype"] != "float32":
                raise _fail(label, f".{key}[{index}].dtype", f"expected 'float32', found {entry['dtype']!r}")


def _check_digest(model: ModelProto, doc: dict, label: str) -> None:
    """Refuse a model whose graph or metadata no longer matches the checksum written at export."""
    _check_type(label, ".sha256", doc.get("sha256"), (str,))
    try:
        intact = digest(model.graph, doc) == doc["sha256"]
    except (RecursionError, ValueError):
        intact = False
    if not intact:
        raise FormatError(
            f"{label}: the ONNX graph or its snnir metadata does not match the checksum written at export: the "
            "file is corrupted or was modified after export; export it again from the .snnir model"
        )


def graph_from_metadata(doc: dict, model: ModelProto, label: str) -> Graph:
    """Rebuild the exported graph; its arrays come from the initializers the document points at."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}

    def decode(raw: Any, where: str) -> np.ndarray:
        if not isinstance(raw, dict) or set(raw) != {"initializer"} or not isinstance(raw["initializer"], str):
            raise _fail(label, ".graph", f"{where}: expected an array reference {{'initializer': name}}, found {str(raw)[:60]}")
        tensor = initializers.get(raw["initializer"])
        if tensor is None:
            raise _fail(label, ".graph", f"{where}: the model has no initializer {raw['initializer']!r}")
        if tensor.data_type != TensorProto.FLOAT:
            raise _fail(label, ".graph", f"{where}: initializer {tensor.name!r} is not float32")
        try:
            return numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as error:
            raise _fail(label, ".graph", f"{where}: cannot read initializer {tensor.name!r}: {error}") from None

    def locate(path: tuple) -> str:
        inner = "".join(f"[{p}]" if isinstance(p, numbers.Integral) else f".{p}" for p in path)
        return f"{label}: metadata {METADATA_KEY!r}.graph{inner}"

    graph = graph_from_dict(doc["graph"], decode, locate)
    try:
        validate(graph, require_materialized=True)
    except SnnirError as error:
        raise FormatError(f"{label}: the graph in the snnir metadata is invalid: {error}") from None
    return graph


#: Fields that hold ONNX value names, which a reader takes from the document rather than derives.
_ONNX_NAME_FIELDS = {"probes": ("name",), "states": ("input", "output")}


def check_against_graph(doc: dict, graph: Graph, label: str) -> None:
    """The document must describe the embedded graph: same time, inputs, outputs, probes and states.

    The expected entries are derived from the graph as the exporter derives them; only the ONNX value
    names (which a reader takes from the document) may differ.
    """
    try:
        plan = make_plan(graph, Names(), doc["mode"], [entry["key"] for entry in doc["probes"]])
    except SnnirError as error:
        raise _fail(label, ".probes", str(error)) from None
    expected = signature(graph, plan)
    if (doc["num_steps_input"] is None) != (expected["num_steps_input"] is None):
        needed = "needs" if expected["num_steps_input"] else "cannot have"
        raise _fail(label, ".num_steps_input", f"a {doc['mode']} model of this graph {needed} a num_steps input")
    if doc["time"] != expected["time"]:
        raise _fail(label, ".time", f"{doc['time']} does not match the embedded graph's {expected['time']}")
    for key in ("inputs", "outputs", "probes", "states"):
        if len(doc[key]) != len(expected[key]):
            raise _fail(label, f".{key}", f"lists {len(doc[key])} entries, the embedded graph implies {len(expected[key])}")
        skip = _ONNX_NAME_FIELDS.get(key, ())
        for index, (found, implied) in enumerate(zip(doc[key], expected[key])):
            for field in sorted((set(found) | set(implied)) - set(skip)):
                given, derived = found.get(field, "(missing)"), implied.get(field, "(missing)")
                if given != derived:
                    message = f"{given!r} does not match the embedded graph, which implies {derived!r}"
                    raise _fail(label, f".{key}[{index}].{field}", message)


def _shape_of(value_info: Any) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim]


def check_signature(model: ModelProto, doc: dict, graph: Graph, label: str) -> None:
    """The metadata describes the embedded graph, and the ONNX graph's inputs and outputs are the ones it names."""
    check_against_graph(doc, graph, label)
    fed = {i["name"]: i["shape"] for i in doc["inputs"]}
    if doc["num_steps_input"]:
        fed[doc["num_steps_input"]] = []
    fetched = {e["name"]: e["shape"] for e in doc["outputs"] + doc["probes"]}
    for state in doc["states"]:
        fed[state["input"]] = fetched[state["output"]] = state["shape"]
    fed_count = len(doc["inputs"]) + bool(doc["num_steps_input"]) + len(doc["states"])
    if (len(fed), len(fetched)) != (fed_count, len(doc["outputs"]) + len(doc["probes"]) + len(doc["states"])):
        raise _fail(label, "", "two inputs or two outputs share one ONNX name")
    declared = {v.name: v for v in model.graph.input}
    produced = {v.name: v for v in model.graph.output}
    extra = sorted(set(declared) - set(fed))
    if extra:
        raise FormatError(f"{label}: the ONNX graph has input {extra[0]!r}, which the snnir metadata does not describe")
    for table, expected, kind in ((declared, fed, "input"), (produced, fetched, "output")):
        for name, shape in expected.items():
            if name not in table:
                raise FormatError(f"{label}: the snnir metadata names the {kind} {name!r}, which the ONNX graph lacks")
            found = _shape_of(table[name])
            if len(found) != len(shape) or any(isinstance(s, int) and f != s for f, s in zip(found, shape)):
                raise FormatError(f"{label}: {kind} {name!r} has shape {found} in the ONNX graph but {shape} in the snnir metadata")


__all__ = ["build_metadata", "read_metadata", "graph_from_metadata", "check_signature", "check_against_graph", "digest", "signature"]
