"""Graph inputs and outputs.

An :class:`Input` brings data in, either the same static tensor at every step (``direct``
encoding, as in the snnTorch tutorials) or one tensor per step (``sequence``: data already
``[T, B, ...]``, e.g. spikes from an encoder). An :class:`Output` records, at every step, one
quantity of the single node feeding it: its ``value`` (spikes for a spiking neuron), or one of its
state variables (``membrane``, ``current``). Recorded outputs come back as ``[T, B, *shape]``.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

from ..errors import ShapeError
from .fields import Choice, Shape as ShapeField, spec
from .node import Node, Shape

ENCODINGS = ("direct", "sequence")
RECORDS = ("value", "spikes", "membrane", "current")


@dataclass(frozen=True, eq=False, repr=False)
class Input(Node):
    """A graph input of ``shape`` (without batch and time) and an ``encoding``."""

    shape: Any = spec(ShapeField())
    _: KW_ONLY
    encoding: str = spec(Choice(*ENCODINGS), "direct")

    short_name: ClassVar[str] = "input"

    def implied_fields(self) -> tuple[str, ...]:
        return ("shape",)  # the summary's shape column shows it

    def infer_output(self, input_shape: Shape | None) -> Shape:
        if input_shape is not None:
            raise ShapeError("an Input takes no incoming edges")
        return tuple(self.shape)


@dataclass(frozen=True, eq=False, repr=False)
class Output(Node):
    """Records one quantity of its source node every step.

    ``record``: ``"value"`` (the node's output; spikes for spiking neurons), ``"spikes"`` (the same, but
    only valid on spiking nodes), ``"membrane"`` or ``"current"`` (state variables of neurons).
    """

    _: KW_ONLY
    record: str = spec(Choice(*RECORDS), "value")

    short_name: ClassVar[str] = "output"

    def infer_output(self, input_shape: Shape | None) -> Shape:
        if input_shape is None:
            raise ShapeError("an Output needs exactly one incoming edge")
        return tuple(input_shape)


__all__ = ["Input", "Output", "ENCODINGS", "RECORDS"]
