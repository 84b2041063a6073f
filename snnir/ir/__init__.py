"""The snnir intermediate representation: nodes, edges, time and the graph."""

from .fields import FieldSpec
from .graph import Edge, Graph, TimeSpec
from .init import Default, Initializer, Normal, PerNeuron, Uniform
from .io import ENCODINGS, RECORDS, Input, Output
from .layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from .neurons import CubaLIF, IF, LI, LIF, RESET_MODES, RESET_TIMINGS
from .node import Node, Shape
from .surrogate import SURROGATE_DEFAULTS, Surrogate

__all__ = [
    "Node",
    "Shape",
    "FieldSpec",
    "Graph",
    "Edge",
    "TimeSpec",
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
    "SURROGATE_DEFAULTS",
    "Initializer",
    "Default",
    "Uniform",
    "Normal",
    "PerNeuron",
    "ENCODINGS",
    "RECORDS",
    "RESET_MODES",
    "RESET_TIMINGS",
]
