"""Two small torch modules for snnir primitives that neither torch nor snnTorch provides.

:func:`~snnir.frontends.snntorch.to_snntorch` uses them; :func:`~snnir.frontends.snntorch.from_snntorch`
reads them back, so graphs with ``Scale`` or ``Threshold`` nodes survive the round trip.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from snntorch import surrogate
from torch import nn


def _buffer(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().to(torch.float32)
    return torch.tensor(np.array(value, dtype=np.float32))  # a private, writable copy


class Scale(nn.Module):
    """Element-wise gain ``y = x * factor`` (snnir's ``Scale``); ``factor`` is a scalar or per-element buffer."""

    def __init__(self, factor: Any):
        super().__init__()
        self.register_buffer("factor", _buffer(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Threshold(nn.Module):
    """Stateless spike ``y = H(x − θ)`` through an snnTorch surrogate (snnir's ``Threshold``).

    Args:
        threshold: θ, scalar or per element.
        spike_grad: an snnTorch surrogate closure (default ``surrogate.atan()``, as in snnTorch's neurons).
    """

    def __init__(self, threshold: Any = 1.0, spike_grad: Callable | None = None):
        super().__init__()
        self.register_buffer("threshold", _buffer(threshold))
        self.spike_grad = spike_grad if spike_grad is not None else surrogate.atan()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spike_grad(x - self.threshold)


__all__ = ["Scale", "Threshold"]
