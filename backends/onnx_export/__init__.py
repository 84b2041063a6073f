"""The onnx backend: export a graph as ONNX plus state metadata, run it in onnxruntime, import it back.

* ``snnir.export_onnx(graph, "m.onnx", mode="step" | "sequence")`` writes a model built from the IR
  with ``onnx.helper`` (no torch), opset fixed in :mod:`.opset`, checked by ``onnx.checker``.
* ``snnir.compile(graph, "onnx")`` returns an :class:`OnnxModel` (``run``/``step``/``reset``/probes);
  ``Runtime("m.onnx")`` runs an exported file with the same API.
* ``snnir.load("m.onnx")`` rebuilds the identical graph from the metadata; ``snnir.save(graph, "m.onnx")``
  writes the step model.

docs/formats.md documents the metadata and a loop that needs only onnxruntime.
"""

from __future__ import annotations

from typing import Any, Mapping

from snnir.optional import require

require("onnx", "onnx", "snnir.backends.onnx_export")  # a missing dependency surfaces here, naming the extra
require("onnxruntime", "onnx", "snnir.backends.onnx_export")

from snnir.ir.graph import Graph

from .build import build_model
from .files import export_onnx, load_onnx, save_onnx
from .opset import IR_VERSION, METADATA_KEY, OPSET
from .rules import RULES
from .runtime import OnnxModel, Runtime



class OnnxBackend:
    """``snnir.compile(graph, "onnx", threads=None, optimization="all", providers=None, overrides=None)``."""

    name = "onnx"
    extra = "onnx"
    rules = RULES
    #: Every conformance case runs bit-identically: no gaps.
    known_gaps: Mapping[str, str] = {}
    #: The suite's graphs are tiny: one intra-op thread keeps parallel test workers from oversubscribing.
    conformance_options: Mapping[str, Any] = {"threads": 1}

    def compile(self, graph: Graph, *, overrides: Mapping | None = None, **options: Any) -> OnnxModel:
        unknown = sorted(set(options) - {"threads", "optimization", "providers"})
        if unknown:
            raise TypeError(f"the onnx backend takes threads, optimization, providers and overrides; found {unknown}")
        return OnnxModel(graph, rules=RULES.with_overrides(overrides), **options)


__all__ = [
    "OnnxBackend",
    "OnnxModel",
    "Runtime",
    "export_onnx",
    "load_onnx",
    "save_onnx",
    "build_model",
    "RULES",
    "OPSET",
    "IR_VERSION",
    "METADATA_KEY",
]
