"""The one place that fixes the ONNX dialect snnir writes, and the names its files share with readers.

Opset 17 with IR version 8 (what onnx 1.12 wrote) keeps exported files readable by old and
non-Python runtimes; every operator the lowering uses (Gemm, Conv, MaxPool, Scan, Clip, Cast...)
exists unchanged at that opset.
"""

from __future__ import annotations

#: ONNX operator set of the default domain used by every exported model.
OPSET = 17
#: ONNX IR version matching OPSET (the oldest that reads opset 17).
IR_VERSION = 8

#: ``metadata_props`` key holding the snnir metadata JSON (docs/formats.md documents it).
METADATA_KEY = "snnir"
#: ``format`` field of that JSON, and its version (a newer version is refused with a clear error).
METADATA_FORMAT = "snnir-onnx"
METADATA_VERSION = 1

PRODUCER_NAME = "snnir"
#: Symbolic dimension names of the batch and time axes.
BATCH_DIM = "batch"
TIME_DIM = "time"
#: Graph input carrying the number of steps of a sequence model whose inputs are all ``direct``.
NUM_STEPS_INPUT = "num_steps"

MODES = ("step", "sequence")

__all__ = [
    "OPSET",
    "IR_VERSION",
    "METADATA_KEY",
    "METADATA_FORMAT",
    "METADATA_VERSION",
    "PRODUCER_NAME",
    "BATCH_DIM",
    "TIME_DIM",
    "NUM_STEPS_INPUT",
    "MODES",
]
