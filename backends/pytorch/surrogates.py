"""Surrogate gradients: the forward pass is the strict step ``H(z) = [z > 0]``, the backward a smooth stand-in.

Each function below maps ``(z, grad)`` to ``grad · dS/dz`` with the operation order of snnTorch 1.0's
``snntorch/surrogate.py`` (so gradients agree to the last few bits), ``z = U − θ``:

==================== ==============================================
atan(alpha)          alpha/2 / (1 + (π/2 · alpha · z)²) · grad
fast_sigmoid(slope)  grad / (slope·|z| + 1)²
sigmoid(slope)       grad · slope · e^(−slope·z) / (e^(−slope·z) + 1)²  (±0 where the denominator overflows, see below)
triangular(t)        grad · t, negated where z ≥ 0
straight_through     grad
spike_rate_escape    grad · slope · e^(−beta·|z − 1|)
heaviside            grad · H(z)
==================== ==============================================

One deliberate difference: snnTorch's ``sigmoid`` backward returns NaN for ``slope·z < −88`` (exp
overflow); here it is ±0 wherever ``(e^(−slope·z) + 1)²`` overflows, as snnTorch's finite neighbours, and
bit-identical elsewhere.

The neuron scans call :func:`surrogate_backward` directly; :class:`Spike` wraps the step in an
autograd function for the step-by-step paths (recurrent groups, streaming) and the Threshold node.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from snnir.ir.surrogate import Surrogate

SurrogateBackward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# Each backward takes the surrogate's parameters first, then (z, grad); surrogate_backward binds the
# parameters with functools.partial, which (unlike a closure) pickles: torch.save of a model works.
def _atan(alpha: float, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    # snnTorch: alpha/2 / (1 + (π/2·alpha·z)²) · grad; the reciprocal form rounds alike for alpha = 2.
    return z.mul_(math.pi / 2 * alpha).pow_(2).add_(1).reciprocal_().mul_(alpha / 2).mul_(grad)


def _fast_sigmoid(slope: float, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    denominator = z.abs_().mul_(slope).add_(1.0).pow_(2)
    return torch.div(grad, denominator, out=denominator)


def _sigmoid(slope: float, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    # snnTorch's formula and operation order, bit for bit where it is finite. Once (e^(−slope·z) + 1)²
    # overflows (slope·z < −44 in float32) snnTorch's quotient is ±0, or inf/inf = NaN where the numerator
    # overflows too (slope·z < −88 for |grad| ≈ 1: z < −3.5 at the default slope). Here it is ±0 wherever
    # the denominator overflows, as snnTorch's finite neighbours (NaN only if grad is).
    decay = z.mul_(-slope).exp_()  # e^(−slope·z), as snnTorch orders it: (−slope)·z
    denominator = (decay + 1) ** 2
    result = grad * slope * decay / denominator
    return torch.where(denominator.isinf(), grad * 0, result)


def _triangular(threshold: float, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    scaled = grad * threshold
    return torch.where(z >= 0, -scaled, scaled)


def _straight_through(z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return grad.clone()


def _spike_rate_escape(beta: float, slope: float, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return grad * slope * z.sub_(1).abs_().mul_(-beta).exp_()


def _heaviside(z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return grad * (z > 0).to(grad.dtype)


_BACKWARDS: dict[str, Callable[..., torch.Tensor]] = {
    "atan": _atan,
    "fast_sigmoid": _fast_sigmoid,
    "sigmoid": _sigmoid,
    "triangular": _triangular,
    "straight_through": _straight_through,
    "spike_rate_escape": _spike_rate_escape,
    "heaviside": _heaviside,
}


def surrogate_backward(spec: Surrogate) -> SurrogateBackward:
    """The function ``(z, grad) -> grad · dS/dz`` of a surrogate spec (parameters in snnTorch's order).

    ``z`` is scratch: the function may overwrite it (callers pass a temporary), never ``grad``.
    """
    return functools.partial(_BACKWARDS[spec.name], *(value for _, value in spec.params))


class Spike(torch.autograd.Function):
    """``S = H(z)`` in the forward pass, the surrogate in the backward pass (``z = U − θ``)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, backward: SurrogateBackward) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.surrogate = backward
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        return ctx.surrogate(z.clone(), grad), None


def spike(z: torch.Tensor, backward: SurrogateBackward) -> torch.Tensor:
    """Differentiable step: :class:`Spike` applied to ``z``."""
    return Spike.apply(z, backward)


__all__ = ["surrogate_backward", "spike", "Spike", "SurrogateBackward"]
