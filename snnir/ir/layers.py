"""Stateless primitives: synapses (Linear, Conv), pooling, reshaping, scaling and spike thresholds.

Shapes exclude batch and time and follow PyTorch's conventions: a convolution sees ``(C, L)`` or
``(C, H, W)``, its weight is ``(out_channels, in_channels / groups, *kernel_size)``.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import NodeParameterError, ShapeError
from .fields import Choice, Flag, Integer, Ints, Real, SurrogateField, Tensor, spec
from .init import DEFAULT, Initializer
from .node import Node, Shape
from .surrogate import Surrogate


class _Auto:
    """Sentinel: "decide from the other arguments" (see ``Linear.bias``)."""

    def __repr__(self) -> str:
        return "auto"


AUTO: Any = _Auto()


def _is_concrete(value: Any) -> bool:
    return isinstance(value, np.ndarray)


def _bias_from_weight(node: Node) -> None:
    """``bias`` left at AUTO: drawn lazily with a lazy weight, absent with an explicit weight."""
    if node.bias is AUTO:  # type: ignore[attr-defined]
        explicit_weight = node.weight is not None and not isinstance(node.weight, Initializer)  # type: ignore[attr-defined]
        object.__setattr__(node, "bias", None if explicit_weight else DEFAULT)


def _check_bias(node: Node, size: int | None) -> None:
    bias = node.bias  # type: ignore[attr-defined]
    if _is_concrete(bias) and size is not None and bias.shape != (size,):
        raise NodeParameterError(f"{node.kind}.bias: expected shape ({size},), found {bias.shape}")


def _set_derived(node: Node, name: str, derived: int) -> None:
    """Fill a size implied by the weight, or check the one the user gave."""
    given = getattr(node, name)
    if given is not None and given != derived:
        raise NodeParameterError(f"{node.kind}.{name}: given {given}, but the weight implies {derived}")
    object.__setattr__(node, name, derived)


@dataclass(frozen=True, eq=False, repr=False)
class Linear(Node):
    """Dense synapse ``y = W x + b`` on a flat input.

    Args:
        out_features: number of outputs (implied by ``weight`` when given).
        in_features: optional check of the input size; inferred otherwise.
        weight: ``(out_features, in_features)`` array, or an initialiser (PyTorch's default when omitted).
        bias: ``(out_features,)`` array, ``True`` (drawn), ``False``/``None`` (none). Left out, a bias is
            drawn when the weight is drawn and absent when the weight is given.
    """

    out_features: int | None = spec(Integer(minimum=1, optional=True), None)
    _: KW_ONLY
    in_features: int | None = spec(Integer(minimum=1, optional=True), None)
    weight: Any = spec(Tensor(lazy=True, missing=DEFAULT), None)
    bias: Any = spec(Tensor(optional=True, lazy=True, boolean=True), AUTO)

    short_name: ClassVar[str] = "fc"

    def _prepare(self) -> None:
        _bias_from_weight(self)

    def _check(self) -> None:
        if _is_concrete(self.weight):
            if self.weight.ndim != 2:
                raise NodeParameterError(f"Linear.weight: expected a 2-D array, found shape {self.weight.shape}")
            _set_derived(self, "out_features", self.weight.shape[0])
            _set_derived(self, "in_features", self.weight.shape[1])
        elif self.out_features is None:
            raise NodeParameterError("Linear: give out_features or a weight array")
        _check_bias(self, self.out_features)

    def implied_fields(self) -> tuple[str, ...]:
        return ("out_features", "in_features") if _is_concrete(self.weight) else ()

    def infer_output(self, input_shape: Shape | None) -> Shape:
        if input_shape is None or len(input_shape) != 1:
            raise ShapeError(f"Linear expects a flat input (features,), found {input_shape}; insert a Flatten first")
        if self.in_features is not None and input_shape[0] != self.in_features:
            raise ShapeError(f"Linear has in_features={self.in_features}, but its input has {input_shape[0]} features")
        return (self.out_features,)

    def parameter_shape(self, name: str, input_shape: Shape) -> Shape:
        return (self.out_features, input_shape[0]) if name == "weight" else (self.out_features,)

    def fan_in(self, input_shape: Shape) -> int:
        return int(input_shape[0])

    def macs(self, input_shape: Shape | None, output_shape: Shape) -> int:
        return math.prod(output_shape) * self.fan_in(input_shape)

    def materialize(self, input_shape: Shape, rng: np.random.Generator) -> Node:
        return super().materialize(input_shape, rng).replace(in_features=int(input_shape[0]))


@dataclass(frozen=True, eq=False, repr=False)
class _ConvNd(Node, abstract=True):
    """Shared fields and shape rule of Conv1d and Conv2d (PyTorch semantics, zero padding).

    ``L_out = floor((L_in + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`` per spatial axis.
    ``padding`` also accepts ``"valid"`` (0) and ``"same"`` (stride 1, symmetric padding only).
    """

    out_channels: int | None = spec(Integer(minimum=1, optional=True), None)
    kernel_size: Any = spec(Ints(minimum=1, optional=True), None)
    _: KW_ONLY
    stride: Any = spec(Ints(minimum=1), 1)
    padding: Any = spec(Ints(minimum=0), 0)
    dilation: Any = spec(Ints(minimum=1), 1)
    groups: int = spec(Integer(minimum=1), 1)
    in_channels: int | None = spec(Integer(minimum=1, optional=True), None)
    weight: Any = spec(Tensor(lazy=True, missing=DEFAULT), None)
    bias: Any = spec(Tensor(optional=True, lazy=True, boolean=True), AUTO)

    spatial_dims: ClassVar[int] = 0
    short_name: ClassVar[str] = "conv"

    def _prepare(self) -> None:
        _bias_from_weight(self)
        if _is_concrete_like(self.weight) and self.kernel_size is None:
            object.__setattr__(self, "kernel_size", tuple(int(k) for k in np.shape(self.weight)[2:]))
        if isinstance(self.padding, str):
            object.__setattr__(self, "padding", self._padding_from_string(self.padding))

    def _padding_from_string(self, mode: str) -> Any:
        if mode == "valid":
            return 0
        if mode != "same":
            raise NodeParameterError(f"{self.kind}.padding: expected ints, 'valid' or 'same', found {mode!r}")
        kernel = self._spatial(Ints(minimum=1).normalize(self.kernel_size, f"{self.kind}.kernel_size"), "kernel_size")
        dilation = self._spatial(Ints(minimum=1).normalize(self.dilation, f"{self.kind}.dilation"), "dilation")
        if set(self._spatial(Ints(minimum=1).normalize(self.stride, f"{self.kind}.stride"), "stride")) != {1}:
            raise NodeParameterError(f"{self.kind}.padding: 'same' needs stride 1 (as in PyTorch)")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise NodeParameterError(
                f"{self.kind}.padding: 'same' with kernel {kernel} and dilation {dilation} needs asymmetric "
                "padding, which snnir does not support; pad explicitly"
            )
        return tuple(t // 2 for t in total)

    def _spatial(self, value: tuple[int, ...], name: str) -> tuple[int, ...]:
        n = self.spatial_dims
        if len(value) == 1:
            return value * n
        if len(value) != n:
            raise NodeParameterError(f"{self.kind}.{name}: expected 1 or {n} ints, found {value}")
        return value

    def _check(self) -> None:
        for name in ("stride", "padding", "dilation"):
            object.__setattr__(self, name, self._spatial(getattr(self, name), name))
        if _is_concrete(self.weight):
            expected_ndim = 2 + self.spatial_dims
            if self.weight.ndim != expected_ndim:
                raise NodeParameterError(
                    f"{self.kind}.weight: expected a {expected_ndim}-D array (out, in/groups, *kernel), "
                    f"found shape {self.weight.shape}"
                )
            _set_derived(self, "out_channels", self.weight.shape[0])
            _set_derived(self, "in_channels", self.weight.shape[1] * self.groups)
            object.__setattr__(self, "kernel_size", self._spatial(self.kernel_size, "kernel_size"))
            if self.kernel_size != self.weight.shape[2:]:
                raise NodeParameterError(
                    f"{self.kind}.kernel_size: given {self.kernel_size}, but the weight implies {self.weight.shape[2:]}"
                )
        else:
            if self.out_channels is None or self.kernel_size is None:
                raise NodeParameterError(f"{self.kind}: give out_channels and kernel_size, or a weight array")
            object.__setattr__(self, "kernel_size", self._spatial(self.kernel_size, "kernel_size"))
        if self.out_channels % self.groups:
            raise NodeParameterError(
                f"{self.kind}: out_channels={self.out_channels} is not divisible by groups={self.groups}"
            )
        _check_bias(self, self.out_channels)

    def implied_fields(self) -> tuple[str, ...]:
        return ("out_channels", "in_channels") if _is_concrete(self.weight) else ()

    def infer_output(self, input_shape: Shape | None) -> Shape:
        n = self.spatial_dims
        if input_shape is None or len(input_shape) != n + 1:
            layout = "(C, L)" if n == 1 else "(C, H, W)"
            raise ShapeError(f"{self.kind} expects an input {layout}, found {input_shape}")
        channels, *size = input_shape
        if self.in_channels is not None and channels != self.in_channels:
            raise ShapeError(f"{self.kind} has in_channels={self.in_channels}, but its input has {channels} channels")
        if channels % self.groups:
            raise ShapeError(f"{self.kind}: input channels {channels} are not divisible by groups={self.groups}")
        out = []
        for axis, (length, k, s, p, d) in enumerate(zip(size, self.kernel_size, self.stride, self.padding, self.dilation)):
            span = length + 2 * p - d * (k - 1) - 1
            if span < 0:
                raise ShapeError(
                    f"{self.kind}: spatial axis {axis} of size {length} (padding {p}) is smaller than the "
                    f"dilated kernel {d * (k - 1) + 1}"
                )
            out.append(span // s + 1)
        return (self.out_channels, *out)

    def parameter_shape(self, name: str, input_shape: Shape) -> Shape:
        if name == "weight":
            return (self.out_channels, input_shape[0] // self.groups, *self.kernel_size)
        return (self.out_channels,)

    def fan_in(self, input_shape: Shape) -> int:
        return int(input_shape[0] // self.groups * math.prod(self.kernel_size))

    def macs(self, input_shape: Shape | None, output_shape: Shape) -> int:
        return math.prod(output_shape) * self.fan_in(input_shape)

    def materialize(self, input_shape: Shape, rng: np.random.Generator) -> Node:
        return super().materialize(input_shape, rng).replace(in_channels=int(input_shape[0]))


def _is_concrete_like(value: Any) -> bool:
    """Whether a not-yet-normalised weight looks like an array of rank >= 3 (ragged input is left to normalisation)."""
    if value is None or isinstance(value, Initializer):
        return False
    try:
        return np.ndim(value) >= 3
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True, eq=False, repr=False)
class Conv1d(_ConvNd):
    """1-D convolution over ``(C, L)``: ``y[o, l] = b[o] + Σ_{c,k} W[o, c, k] · x[c, l·stride + k·dilation − padding]``."""

    spatial_dims: ClassVar[int] = 1


@dataclass(frozen=True, eq=False, repr=False)
class Conv2d(_ConvNd):
    """2-D convolution over ``(C, H, W)`` with PyTorch's ``nn.Conv2d`` semantics (cross-correlation)."""

    spatial_dims: ClassVar[int] = 2


@dataclass(frozen=True, eq=False, repr=False)
class _Pool2d(Node, abstract=True):
    """Shared fields and shape rule of the 2-D pools.

    ``H_out = floor((H_in + 2·padding − kernel) / stride) + 1``; ``stride`` defaults to the kernel size
    and ``padding`` may be at most half the kernel, as in PyTorch.
    """

    kernel_size: Any = spec(Ints(2, minimum=1))
    _: KW_ONLY
    stride: Any = spec(Ints(2, minimum=1, optional=True), None)
    padding: Any = spec(Ints(2, minimum=0), 0)

    short_name: ClassVar[str] = "pool"
    keeps_zeros: ClassVar[bool] = True

    def _check(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise NodeParameterError(
                f"{self.kind}.padding: {self.padding} must be at most half the kernel {self.kernel_size}"
            )

    def macs(self, input_shape: Shape | None, output_shape: Shape) -> int:
        return math.prod(output_shape) * math.prod(self.kernel_size)

    def infer_output(self, input_shape: Shape | None) -> Shape:
        if input_shape is None or len(input_shape) != 3:
            raise ShapeError(f"{self.kind} expects an input (C, H, W), found {input_shape}")
        channels, *size = input_shape
        out = []
        for axis, (length, k, s, p) in enumerate(zip(size, self.kernel_size, self.stride, self.padding)):
            span = length + 2 * p - k
            if span < 0:
                raise ShapeError(f"{self.kind}: spatial axis {axis} of size {length} is smaller than the kernel {k}")
            out.append(span // s + 1)
        return (channels, *out)


@dataclass(frozen=True, eq=False, repr=False)  # its own __init__, so errors name the class
class MaxPool2d(_Pool2d):
    """Maximum over each window; padded positions never win (they count as −inf)."""

    keeps_spikes: ClassVar[bool] = True


@dataclass(frozen=True, eq=False, repr=False)  # its own __init__, so errors name the class
class AvgPool2d(_Pool2d):
    """Mean over each window: the window sum divided by ``kernel_h · kernel_w``, padded zeros included
    (PyTorch's ``count_include_pad=True``)."""


@dataclass(frozen=True, eq=False, repr=False)  # its own __init__, so errors name the class
class SumPool2d(_Pool2d):
    """Sum over each window (Sinabs' and NIR's SumPool2d), padded positions counting as zero."""


@dataclass(frozen=True, eq=False, repr=False)
class Flatten(Node):
    """Merge the axes ``start_dim..end_dim`` (of the shape without batch) into one, as ``torch.flatten``."""

    _: KW_ONLY
    start_dim: int = spec(Integer(minimum=None), 0)
    end_dim: int = spec(Integer(minimum=None), -1)

    short_name: ClassVar[str] = "flatten"
    keeps_spikes: ClassVar[bool] = True
    keeps_zeros: ClassVar[bool] = True

    def infer_output(self, input_shape: Shape | None) -> Shape:
        if input_shape is None:
            raise ShapeError("Flatten needs an input")
        rank = len(input_shape)
        start = self.start_dim + rank if self.start_dim < 0 else self.start_dim
        end = self.end_dim + rank if self.end_dim < 0 else self.end_dim
        if rank == 0:
            return (1,)
        if not (0 <= start <= end < rank):
            raise ShapeError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not fit an input of rank {rank} "
                f"{tuple(input_shape)}"
            )
        merged = math.prod(input_shape[start : end + 1])
        return (*input_shape[:start], merged, *input_shape[end + 1 :])


@dataclass(frozen=True, eq=False, repr=False)
class Scale(Node):
    """Element-wise gain ``y = s ⊙ x``; ``factor`` is a scalar or broadcasts to the input shape.

    ``learn_factor``: a training attribute, trained by the torch backend when set (snnTorch's one-to-one
    recurrent weight ``V`` of ``RLeaky``/``RSynaptic`` is such a factor).
    """

    factor: Any = spec(Tensor(per_neuron=True))
    learn_factor: bool = spec(Flag(), False)

    short_name: ClassVar[str] = "scale"
    keeps_zeros: ClassVar[bool] = True
    training_fields: ClassVar[tuple[str, ...]] = ("learn_factor",)

    def infer_output(self, input_shape: Shape | None) -> Shape:
        self.check_per_neuron(input_shape or ())
        return tuple(input_shape or ())


@dataclass(frozen=True, eq=False, repr=False)
class Dropout(Node):
    """Zeroes each element with probability ``p`` while training (scaling the rest by ``1/(1−p)``,
    as ``nn.Dropout``); the identity at inference."""

    p: float = spec(Real(minimum=0.0, maximum=1.0, exclusive_max=True), 0.5)

    short_name: ClassVar[str] = "dropout"
    training_only: ClassVar[bool] = True
    keeps_spikes: ClassVar[bool] = True
    keeps_zeros: ClassVar[bool] = True

    def infer_output(self, input_shape: Shape | None) -> Shape:
        return tuple(input_shape or ())


@dataclass(frozen=True, eq=False, repr=False)
class Threshold(Node):
    """Stateless spike function ``y = H(x − θ)`` with ``H(z) = 1 if z > 0 else 0`` (NIR's Threshold)."""

    threshold: Any = spec(Tensor(per_neuron=True), 1.0)
    _: KW_ONLY
    surrogate: Surrogate = spec(SurrogateField(), "atan")

    short_name: ClassVar[str] = "threshold"
    spiking: ClassVar[bool] = True
    training_fields: ClassVar[tuple[str, ...]] = ("surrogate",)

    def infer_output(self, input_shape: Shape | None) -> Shape:
        self.check_per_neuron(input_shape or ())
        return tuple(input_shape or ())


__all__ = [
    "AUTO",
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
]
