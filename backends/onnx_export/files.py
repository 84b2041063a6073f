"""Writing and reading ``.onnx`` files: ``export_onnx``, ``save_onnx``, ``load_onnx``.

Writes are atomic and checked with ``onnx.checker`` (full check, shape inference included) before any
byte reaches the disk. Reads turn every problem into a :class:`~snnir.errors.FormatError`: missing,
empty, truncated or corrupted files, ONNX files that snnir did not write, damaged metadata.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto

from snnir.errors import FormatError, InputError, SnnirError
from snnir.formats.atomic import atomic_write
from snnir.ir.graph import Graph

from .build import build_model
from .metadata import check_signature, graph_from_metadata, read_metadata
from .rules import RULES


def serialize(model: ModelProto) -> bytes:
    """Deterministic bytes of ``model`` (equal graphs give byte-identical files)."""
    try:
        return model.SerializeToString(deterministic=True)
    except ValueError as error:  # protobuf refuses messages over 2 GiB
        raise FormatError(f"the ONNX model of this graph cannot be serialised: {error}") from None


def check(model: ModelProto) -> None:
    """``onnx.checker`` with the full check; a failure here is a bug in a lowering rule."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise SnnirError(f"the exported ONNX model fails onnx.checker (a bug in an onnx lowering rule): {error}") from None


def export_onnx(
    graph: Graph,
    path: str | os.PathLike,
    mode: str = "step",
    *,
    probes: Iterable | str = (),
    overrides: Mapping | None = None,
    check_model: bool = True,
) -> Path:
    """Write ``graph`` as an ONNX model plus snnir metadata (docs/formats.md).

    Args:
        graph: a validated, materialised graph.
        path: the ``.onnx`` file to write (atomically).
        mode: ``"step"`` (one time step per call: inputs and states in, outputs and next states out)
            or ``"sequence"`` (a Scan over all steps: ``[time, batch, ...]`` outputs).
        probes: extra outputs, ``"lif1"``/``"lif1:membrane"`` as for ``run(probes=...)``, or ``"all"``
            (every node's value and every neuron state).
        overrides: replacement emit rules by node class or kind name (see :mod:`.rules`).
        check_model: run ``onnx.checker.check_model(full_check=True)`` before writing.

    Returns:
        The path written.
    """
    if not isinstance(mode, str):
        raise InputError(f"mode must be 'step' or 'sequence', found {mode!r}")
    model, _ = build_model(graph, mode, probes=probes, rules=RULES.with_overrides(overrides))
    if check_model:
        check(model)
    data = serialize(model)
    return atomic_write(path, lambda handle: handle.write(data))


def save_onnx(graph: Graph, path: str | os.PathLike) -> Path:
    """``snnir.save(graph, "m.onnx")``: the step model, which any runtime can stream or loop over time."""
    return export_onnx(graph, path, "step")


def read_model(path: str | os.PathLike) -> tuple[ModelProto, bytes]:
    """Parse an ONNX file; FormatError if it is missing, empty, truncated or not protobuf."""
    label = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{label}: is a directory, not an ONNX file") from None
    except OSError as error:
        raise FormatError(f"{label}: cannot read: {error.strerror or error}") from None
    if not data:
        raise FormatError(f"{label}: the file is empty")
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, RecursionError) as error:
        raise FormatError(f"{label}: not a readable ONNX file (truncated or corrupted?): {error}") from None
    if not model.HasField("graph"):
        raise FormatError(f"{label}: not an ONNX model (it holds no graph); truncated, or another kind of file")
    return model, data


def open_onnx(path: str | os.PathLike) -> tuple[ModelProto, bytes, dict[str, Any], Graph]:
    """Read and check an exported file: the model, its bytes, its metadata and the embedded graph."""
    label = str(path)
    model, data = read_model(path)
    doc = read_metadata(model, label)
    graph = graph_from_metadata(doc, model, label)
    check_signature(model, doc, graph, label)
    return model, data, doc, graph


def load_onnx(path: str | os.PathLike) -> Graph:
    """``snnir.load("m.onnx")``: the graph an snnir ONNX file was exported from, weights included."""
    return open_onnx(path)[3]


__all__ = ["export_onnx", "save_onnx", "load_onnx", "read_model", "open_onnx", "serialize", "check"]
