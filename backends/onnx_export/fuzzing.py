"""The ``.onnx`` formats for snnir's loader fuzzer (:mod:`snnir.testing.fuzz` reads :data:`FORMATS`).

Two formats: ``onnx`` (``snnir.save``'s step model) and ``onnx_sequence`` (a sequence model with every
probe). Mutations hit the bytes (truncation, bit flips...), the metadata document (caught by the
checksum), or the metadata document with its checksum recomputed, which reaches the checks behind the
checksum. A mutated file must load (graph and :class:`~.runtime.Runtime`) or raise an SnnirError.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from onnx import ModelProto

from snnir.testing.mutations import FuzzFormat, mutate_bytes, mutate_document

from .files import export_onnx, load_onnx, save_onnx
from .metadata import digest
from .opset import METADATA_KEY
from .runtime import Runtime


def mutate_metadata(data: bytes, rng: np.random.Generator, *, reseal: bool = False) -> tuple[bytes, str]:
    """Replace, delete or add one value of the metadata JSON (the ONNX graph stays intact); with
    ``reseal`` the checksum is recomputed, as a crafted file would do."""
    model = ModelProto()
    model.ParseFromString(data)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            document, what = mutate_document(json.loads(prop.value), rng)
            if reseal and isinstance(document, dict):
                document["sha256"] = digest(model.graph, document)
            prop.value = json.dumps(document, allow_nan=True)
            return model.SerializeToString(), f"metadata{' (resealed)' if reseal else ''}: {what}"
    return data, "no metadata to mutate"


def mutate_metadata_resealed(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    return mutate_metadata(data, rng, reseal=True)


def load_and_open(path: Path) -> Runtime:
    """Both readers: the graph import and the runner (which checks the signature and opens a session)."""
    load_onnx(path)
    return Runtime(path, threads=1)


MUTATORS = {"bytes": mutate_bytes, "metadata": mutate_metadata, "metadata_resealed": mutate_metadata_resealed}
def export_sequence(graph, path: Path) -> Path:
    return export_onnx(graph, path, "sequence", probes="all")


#: Read by snnir.testing.fuzz (PLUGIN_FORMAT_MODULES).
FORMATS = {
    "onnx": FuzzFormat(".onnx", save_onnx, load_and_open, MUTATORS),
    "onnx_sequence": FuzzFormat(".onnx", export_sequence, load_and_open, MUTATORS),
}
