"""Stateful neuron primitives in discrete time (snnTorch 1.0 semantics).

Notation for step ``t``: ``I[t]`` is the summed input of the node (fan-in in edge order), ``b`` the
optional constant ``bias`` drive, ``D[t] = I[t] + b`` (just ``I[t]`` without bias), ``U`` the
membrane, ``J`` the synaptic current, ``θ`` the threshold, ``H(z) = 1 if z > 0 else 0`` and
``g`` the graded spike factor. ``β`` and ``α`` are clamped to ``[0, 1]`` on use; every state
starts at zero. The spike is ``S[t] = H(U[t] − θ)`` and the node outputs ``g · S[t]``.

Reset (``reset_timing="next_step"``, snnTorch's default ``reset_delay=True``): the reset of step
``t`` comes from the previous membrane, ``R[t] = H(U[t−1] − θ)``, and carries no gradient.

``reset_timing="same_step"`` (snnTorch's ``reset_delay=False``): after the spike of step ``t`` the
membrane is corrected by ``(S[t] − R[t])``, so that the stored (and recorded) membrane is already
reset; ``R[t]`` then reads that stored membrane. docs/semantics.md has the equations and worked tables.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

from ..errors import NodeParameterError
from .fields import Choice, Flag, Real, SurrogateField, Tensor, spec
from .node import Node, Shape
from .surrogate import Surrogate

RESET_MODES = ("subtract", "zero", "none")
RESET_TIMINGS = ("next_step", "same_step")


@dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class _Neuron(Node, abstract=True):
    """Fields shared by every neuron: an optional constant drive ``bias`` added to the input."""

    bias: Any = spec(Tensor(optional=True, per_neuron=True), None)

    stateful: ClassVar[bool] = True

    def infer_output(self, input_shape: Shape | None) -> Shape:
        shape = tuple(input_shape or ())
        self.check_per_neuron(shape)
        return shape


@dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class _SpikingNeuron(_Neuron, abstract=True):
    """Fields shared by the spiking neurons: threshold, reset rule, graded spikes, surrogate."""

    threshold: Any = spec(Tensor(per_neuron=True, lazy=True), 1.0)
    reset: str = spec(Choice(*RESET_MODES), "subtract")
    reset_timing: str = spec(Choice(*RESET_TIMINGS), "next_step")
    graded_spikes_factor: float = spec(Real(), 1.0)
    surrogate: Surrogate = spec(SurrogateField(), "atan")
    learn_threshold: bool = spec(Flag(), False)

    spiking: ClassVar[bool] = True
    training_fields: ClassVar[tuple[str, ...]] = ("surrogate", "learn_threshold")

    def _check(self) -> None:
        if self.graded_spikes_factor == 0.0:
            raise NodeParameterError(f"{self.kind}.graded_spikes_factor: must be nonzero (spikes would vanish)")


@dataclass(frozen=True, eq=False, repr=False)
class LIF(_SpikingNeuron):
    """Leaky integrate-and-fire neuron (snnTorch ``Leaky``).

    ``R[t] = H(U[t−1] − θ)``; then by ``reset``::

        subtract:  U[t] = (β·U[t−1] + D[t]) − R[t]·θ
        zero:      U[t] = β·((1 − R[t])·U[t−1]) + D[t]
        none:      U[t] = β·U[t−1] + D[t]

    ``S[t] = H(U[t] − θ)``, output ``g·S[t]``. With ``reset_timing="same_step"`` the stored membrane
    becomes ``U[t] − (S[t] − R[t])·θ`` (subtract) or ``U[t] − (S[t] − R[t])·U[t]`` (zero).

    Args:
        beta: membrane decay, scalar or per neuron (broadcast to the neuron shape), clamped to [0, 1].
        threshold: firing threshold θ, scalar or per neuron.
        reset: ``"subtract"`` (default), ``"zero"`` or ``"none"``.
        reset_timing: ``"next_step"`` (default, snnTorch) or ``"same_step"``.
        bias: optional constant drive added to the input every step.
        graded_spikes_factor: spike amplitude ``g`` (snnTorch's ``graded_spikes_factor``).
        surrogate, learn_beta, learn_threshold: training attributes.
    """

    beta: Any = spec(Tensor(per_neuron=True, lazy=True))
    _: KW_ONLY
    learn_beta: bool = spec(Flag(), False)

    short_name: ClassVar[str] = "lif"
    state_variables: ClassVar[tuple[str, ...]] = ("membrane",)
    training_fields: ClassVar[tuple[str, ...]] = ("surrogate", "learn_threshold", "learn_beta")


@dataclass(frozen=True, eq=False, repr=False)
class CubaLIF(_SpikingNeuron):
    """Current-based LIF with a synaptic current state (snnTorch ``Synaptic``).

    ``R[t] = H(U[t−1] − θ)``; ``J[t] = α·J[t−1] + I[t]``; ``U[t] = β·U[t−1] + (J[t] + b)`` (``b`` only
    with a bias); then by ``reset``::

        subtract:  U[t] = U[t] − R[t]·θ
        zero:      U[t] = U[t] − U[t]·R[t]      (the whole new membrane is zeroed, as in Synaptic)
        none:      unchanged

    ``S[t] = H(U[t] − θ)``, output ``g·S[t]``; ``same_step`` timing as in :class:`LIF`.

    Args:
        alpha: synaptic current decay, clamped to [0, 1].
        beta: membrane decay, clamped to [0, 1].
        learn_alpha, learn_beta: training attributes (besides those of LIF).
    """

    alpha: Any = spec(Tensor(per_neuron=True, lazy=True))
    beta: Any = spec(Tensor(per_neuron=True, lazy=True))
    _: KW_ONLY
    learn_alpha: bool = spec(Flag(), False)
    learn_beta: bool = spec(Flag(), False)

    short_name: ClassVar[str] = "cuba"
    state_variables: ClassVar[tuple[str, ...]] = ("current", "membrane")
    training_fields: ClassVar[tuple[str, ...]] = ("surrogate", "learn_threshold", "learn_alpha", "learn_beta")


@dataclass(frozen=True, eq=False, repr=False)
class IF(_SpikingNeuron):
    """Integrate-and-fire neuron: :class:`LIF` with ``β = 1`` (no leak), same reset rules."""

    short_name: ClassVar[str] = "if"
    state_variables: ClassVar[tuple[str, ...]] = ("membrane",)


@dataclass(frozen=True, eq=False, repr=False)
class LI(_Neuron):
    """Leaky integrator read-out: ``U[t] = β·U[t−1] + D[t]``; never spikes, its output value is ``U[t]``."""

    beta: Any = spec(Tensor(per_neuron=True, lazy=True))
    _: KW_ONLY
    learn_beta: bool = spec(Flag(), False)

    short_name: ClassVar[str] = "li"
    state_variables: ClassVar[tuple[str, ...]] = ("membrane",)
    training_fields: ClassVar[tuple[str, ...]] = ("learn_beta",)


__all__ = ["LIF", "CubaLIF", "IF", "LI", "RESET_MODES", "RESET_TIMINGS"]
