"""snnir: a graph compiler for spiking neural networks.

Declare a model once as a graph of layers, neurons and time semantics, then compile it::

    import snnir
    from snnir import Conv2d, MaxPool2d, Flatten, Linear, LIF

    graph = snnir.Sequential(Conv2d(8, 5), MaxPool2d(2), LIF(0.9), Flatten(), Linear(10), LIF(0.9),
                             input_shape=(1, 28, 28), num_steps=25)
    model = snnir.compile(graph, "reference")      # or "torch", "numba", "onnx"
    result = model.run(images)                     # result["spikes"]: [T, B, 10]
    snnir.save(graph, "model.snnir")
"""

__version__ = "0.1.0"

from .builder import GraphBuilder, Recurrent, Sequential
from .compiler import compile
from .errors import (
    BackendNotFoundError,
    BackendUnavailableError,
    FormatError,
    GraphError,
    InputError,
    NodeNotFoundError,
    NodeParameterError,
    ShapeError,
    SnnirError,
    UnsupportedNodeError,
    WriteError,
)
from .formats import load, save
from .ir import (
    IF,
    LI,
    LIF,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLIF,
    Default,
    Dropout,
    Edge,
    Flatten,
    Graph,
    Initializer,
    Input,
    Linear,
    MaxPool2d,
    Node,
    Normal,
    Output,
    PerNeuron,
    Scale,
    SumPool2d,
    Surrogate,
    Threshold,
    TimeSpec,
    Uniform,
)
from .passes import materialize
from .registry import backend_names, get_backend
from .runtime import CompiledModel, Result
from .validate import validate


def export_onnx(graph, path, mode="step", **options):
    """Export ``graph`` as ONNX plus state metadata (``mode="step"`` or ``"sequence"``); needs ``snnir[onnx]``.

    See :func:`snnir.backends.onnx_export.export_onnx` for the options and docs/formats.md for the metadata.
    """
    from .registry import get_backend

    get_backend("onnx")  # a clear error naming the extra when onnx is missing
    from .backends.onnx_export import export_onnx as _export

    return _export(graph, path, mode=mode, **options)

__all__ = [
    "__version__",
    "compile",
    "export_onnx",
    "load",
    "save",
    "validate",
    "materialize",
    "Sequential",
    "GraphBuilder",
    "Recurrent",
    "Graph",
    "Edge",
    "TimeSpec",
    "Node",
    "Input",
    "Output",
    "Linear",
    "Conv1d",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "SumPool2d",
    "Flatten",
    "Scale",
    "Dropout",
    "Threshold",
    "LIF",
    "CubaLIF",
    "IF",
    "LI",
    "Surrogate",
    "Initializer",
    "Default",
    "Uniform",
    "Normal",
    "PerNeuron",
    "CompiledModel",
    "Result",
    "get_backend",
    "backend_names",
    "NodeNotFoundError",
    "SnnirError",
    "NodeParameterError",
    "GraphError",
    "ShapeError",
    "FormatError",
    "WriteError",
    "InputError",
    "UnsupportedNodeError",
    "BackendNotFoundError",
    "BackendUnavailableError",
]
