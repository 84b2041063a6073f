"""Lazy parameter initialisers.

A declared node may leave an array parameter to be drawn later, when the graph is materialised
(``snnir.materialize``): shapes are known only after shape inference. An initialiser records *how*
to draw it; the graph's seed decides *which* draw. Initialisers are plain frozen values, so a lazy
graph can be saved to YAML and re-read.

``Default`` follows PyTorch's default initialisation of ``nn.Linear`` and ``nn.ConvNd``: weights
use ``kaiming_uniform_(a=sqrt(5))`` and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; both reduce to
the same bound ``1/sqrt(fan_in)`` with ``fan_in = in_features`` or ``in_channels / groups * prod(kernel)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from ..errors import NodeParameterError


class Initializer(ABC):
    """How to draw a parameter array once its shape is known."""

    name: ClassVar[str]
    _registry: ClassVar[dict[str, type[Initializer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Initializer._registry[cls.name] = cls

    @abstractmethod
    def sample(self, shape: tuple[int, ...], rng: np.random.Generator, fan_in: int | None) -> np.ndarray:
        """Return a float32 array of ``shape``."""

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form: ``{"init": name, **arguments}``."""
        return {"init": self.name, **asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> Initializer:
        """Inverse of :meth:`to_dict`; raises NodeParameterError naming ``where`` on bad input."""
        raw = dict(raw)
        name = raw.pop("init", None)
        kind = cls._registry.get(name) if isinstance(name, str) else None
        if kind is None:
            known = ", ".join(sorted(cls._registry))
            raise NodeParameterError(f"{where}: unknown initialiser {name!r}; expected one of: {known}")
        allowed = {f.name for f in fields(kind)}  # type: ignore[arg-type]
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise NodeParameterError(
                f"{where}: initialiser {name!r} takes {sorted(allowed) or 'no arguments'}, found {unknown}"
            )
        try:
            return kind(**{k: float(v) for k, v in raw.items()})
        except (TypeError, ValueError) as error:
            raise NodeParameterError(f"{where}: bad arguments for initialiser {name!r}: {error}") from None


@dataclass(frozen=True)
class Default(Initializer):
    """PyTorch's default for weights and biases: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""

    name: ClassVar[str] = "default"

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator, fan_in: int | None) -> np.ndarray:
        if not fan_in:
            raise NodeParameterError("the default initialiser needs a positive fan-in")
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)


@dataclass(frozen=True)
class Uniform(Initializer):
    """Independent draws from ``U(low, high)``, e.g. a per-neuron beta as in snnTorch's ``torch.rand``."""

    low: float = 0.0
    high: float = 1.0
    name: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise NodeParameterError(f"uniform initialiser needs finite low <= high, found {self.low}, {self.high}")

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator, fan_in: int | None) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=shape).astype(np.float32)


@dataclass(frozen=True)
class Normal(Initializer):
    """Independent draws from ``N(mean, std^2)``."""

    mean: float = 0.0
    std: float = 1.0
    name: ClassVar[str] = "normal"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std >= 0):
            raise NodeParameterError(f"normal initialiser needs finite mean and std >= 0, found {self.mean}, {self.std}")

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator, fan_in: int | None) -> np.ndarray:
        return rng.normal(self.mean, self.std, size=shape).astype(np.float32)


@dataclass(frozen=True)
class PerNeuron(Initializer):
    """One copy of ``value`` per neuron, so that each neuron can learn its own parameter.

    ``LIF(beta=PerNeuron(0.9), learn_beta=True)`` is snnTorch's ``Leaky(beta=torch.full((n,), 0.9),
    learn_beta=True)`` without having to know ``n`` in advance.
    """

    value: float = 0.0
    name: ClassVar[str] = "per_neuron"

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise NodeParameterError(f"per_neuron initialiser needs a finite value, found {self.value}")

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator, fan_in: int | None) -> np.ndarray:
        return np.full(shape, self.value, dtype=np.float32)


DEFAULT = Default()

__all__ = ["Initializer", "Default", "Uniform", "Normal", "PerNeuron", "DEFAULT"]
