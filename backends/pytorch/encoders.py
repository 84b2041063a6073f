"""Input encoders on torch tensors (snnTorch ``spikegen`` conventions), time first.

The same functions, arguments and formulas as the numpy encoders of :mod:`snnir.encoders`, on tensors
that stay on their device, so that they run inside a training loop
(``fit(..., encode=lambda x: rate(x, 25))``). Only the random source differs: a ``torch.Generator``
(``generator=``) instead of a numpy one.

* ``rate(data, num_steps=None, *, gain=1, offset=0, generator=None)``: ``S[t] ~ Bernoulli(clamp(gain·x +
  offset, 0, 1))`` independently per step; ``data`` ``[B, ...]`` is repeated ``num_steps`` times, or is
  already time-varying ``[T, ...]`` when ``num_steps`` is None. With the default generator it draws
  exactly what ``spikegen.rate`` draws after the same ``torch.manual_seed``.
* ``latency(data, num_steps, *, threshold=0.01, tau=1, first_spike_time=0, normalize=False,
  linear=False, clip=False, epsilon=1e-7)``: one spike per element at ``round(t)``, with the RC time
  ``t = tau·ln(x / (x − threshold))`` (``x`` floored at ``threshold + epsilon``) or the linear time
  ``min(−tau·(x − 1), −tau·(threshold − 1))``, shifted by ``first_spike_time``; ``normalize`` stretches the
  times to end at ``num_steps − 1``; ``clip`` silences elements below ``threshold``. Data must lie in
  ``[0, 1]``; a spike time beyond ``num_steps − 1`` raises (as snnTorch without ``bypass``).
* ``delta(data, *, threshold=0.1, padding=False, off_spike=False)``: for a sequence ``[T, ...]``, ``+1``
  where ``x[t] − x[t−1] ≥ threshold`` (``x[−1]`` zero, or ``x[0]`` with ``padding``), and ``−1`` where it is
  ``≤ −threshold`` with ``off_spike``.
"""

from __future__ import annotations

import torch

from snnir.errors import InputError


def _steps(num_steps) -> int:
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise InputError(f"num_steps must be a positive integer, found {num_steps!r}")
    return num_steps


def _tensor(data) -> torch.Tensor:
    tensor = data if isinstance(data, torch.Tensor) else torch.as_tensor(data)
    if not tensor.dtype.is_floating_point:
        tensor = tensor.float()
    if tensor.numel() and not torch.isfinite(tensor).all():
        raise InputError("data contains NaN or inf")
    return tensor


def rate(data, num_steps: int | None = None, *, gain: float = 1.0, offset: float = 0.0,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Rate (Bernoulli) code: spikes with probability ``clamp(gain·x + offset, 0, 1)`` at every step."""
    data = _tensor(data)
    if num_steps is None:
        probability = data
    else:
        probability = data.repeat((_steps(num_steps),) + (1,) * data.dim()) * gain + offset
    return torch.bernoulli(torch.clamp(probability, min=0, max=1), generator=generator)


def latency(data, num_steps: int, *, threshold: float = 0.01, tau: float = 1.0, first_spike_time: int = 0,
            normalize: bool = False, linear: bool = False, clip: bool = False, epsilon: float = 1e-7) -> torch.Tensor:
    """Latency code: one spike per element, earlier for larger values (see the module docstring)."""
    data, steps = _tensor(data), _steps(num_steps)
    if data.numel() and (float(data.min()) < 0 or float(data.max()) > 1):
        raise InputError(f"latency coding needs data in [0, 1], found [{float(data.min())}, {float(data.max())}]")
    if not 0 < threshold < 1:
        raise InputError(f"threshold must lie in (0, 1), found {threshold}")
    if linear:
        scale = steps - 1 - first_spike_time if normalize else tau
        times = torch.clamp_max(-scale * (data - 1), -scale * (threshold - 1)) + first_spike_time
    else:
        floored = torch.clamp(data, min=threshold + epsilon)
        times = tau * torch.log(floored / (floored - threshold)) + first_spike_time
        if normalize and times.numel():
            span = torch.max(times - first_spike_time)
            times = (times - first_spike_time) * (steps - first_spike_time - 1) / span + first_spike_time
    rounded = torch.round(times).long()
    if rounded.numel() and int(rounded.max()) > steps - 1:
        raise InputError(
            f"spike time {int(rounded.max())} exceeds num_steps - 1 = {steps - 1}; decrease tau or set normalize=True"
        )
    spikes = torch.zeros((steps, *data.shape), dtype=data.dtype, device=data.device).scatter_(0, rounded.unsqueeze(0), 1.0)
    if clip:
        spikes = spikes * ~(data < threshold)
    return spikes


def delta(data, *, threshold: float = 0.1, padding: bool = False, off_spike: bool = False) -> torch.Tensor:
    """Delta modulation of a sequence ``[T, ...]``: spikes where the value rose (or fell) by ``threshold``."""
    data = _tensor(data)
    if data.dim() < 1 or data.shape[0] == 0:
        raise InputError(f"delta coding needs a [T, ...] sequence, found shape {list(data.shape)}")
    first = data[:1] if padding else torch.zeros_like(data[:1])
    change = data - torch.cat((first, data[:-1]))
    on = (change >= threshold).to(data.dtype)
    return on - (change <= -threshold).to(data.dtype) if off_spike else on


__all__ = ["rate", "latency", "delta"]
