"""Input encoders (NumPy): turn static data into spike sequences ``[T, B, ...]`` before the graph.

They follow snnTorch's ``spikegen`` conventions so that data prepared for snnTorch and for snnir agree;
feed the result to a graph whose Input has ``encoding="sequence"``. The torch backend provides the same
functions on tensors (``snnir.backends.pytorch.encoders``).

* :func:`rate`: ``S[t] ~ Bernoulli(clip(gain·x + offset, 0, 1))`` independently per step.
* :func:`latency`: one spike per element at ``t = tau·ln(x / (x − threshold))`` (or linearly
  ``tau·(1 − x)``), optionally normalised to span ``[0, num_steps − 1]``; brighter means earlier.
* :func:`delta`: ``S[t] = 1`` where ``x[t] − x[t−1] >= threshold`` (and ``−1`` where ``<= −threshold``
  with ``off_spike``), ``x[−1]`` being zero or, with ``padding``, ``x[0]``.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError


def _as_array(data, name: str = "data") -> np.ndarray:
    array = np.asarray(data, dtype=np.float32)
    if array.size and not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or inf")
    return array


def _check_steps(num_steps) -> int:
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise InputError(f"num_steps must be a positive integer, found {num_steps!r}")
    return int(num_steps)


def rate(
    data,
    num_steps: int | None = None,
    *,
    gain: float = 1.0,
    offset: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Rate (Poisson-like) code: each step spikes with probability ``clip(gain·x + offset, 0, 1)``.

    Args:
        data: static data ``[B, ...]`` (repeated ``num_steps`` times), or already time-varying
            ``[T, ...]`` when ``num_steps`` is None.
        rng: a Generator or a seed, for reproducible spikes.
    """
    array = _as_array(data)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if num_steps is None:
        probability = array
    else:
        probability = np.broadcast_to(array * np.float32(gain) + np.float32(offset), (_check_steps(num_steps), *array.shape))
    probability = np.clip(probability, 0.0, 1.0)
    return (generator.random(probability.shape, dtype=np.float32) < probability).astype(np.float32)


def latency(
    data,
    num_steps: int,
    *,
    threshold: float = 0.01,
    tau: float = 1.0,
    first_spike_time: int = 0,
    normalize: bool = False,
    linear: bool = False,
    clip: bool = False,
    epsilon: float = 1e-7,
) -> np.ndarray:
    """Latency code: one spike per element, earlier for larger values (data in ``[0, 1]``).

    Spike times (snnTorch's ``latency_code``): log code ``tau·ln(x / (x − threshold))`` for
    ``x = max(x, threshold + epsilon)``; linear code ``min(−tau·(x − 1), −tau·(threshold − 1))``; both
    shifted by ``first_spike_time`` and, with ``normalize``, scaled to end at ``num_steps − 1``. Times are
    rounded to the nearest step. With ``clip``, elements below ``threshold`` do not spike at all.
    """
    array = _as_array(data)
    steps = _check_steps(num_steps)
    if array.size and (array.min() < 0 or array.max() > 1):
        raise InputError(f"latency coding needs data in [0, 1], found [{array.min()}, {array.max()}]")
    if not 0 < threshold < 1:
        raise InputError(f"threshold must lie in (0, 1), found {threshold}")
    silent = array < threshold
    if linear:
        scale = steps - 1 - first_spike_time if normalize else tau
        times = np.minimum(-scale * (array - 1), -scale * (threshold - 1)) + first_spike_time
    else:
        clipped = np.maximum(array, np.float32(threshold + epsilon))
        times = tau * np.log(clipped / (clipped - threshold)) + first_spike_time
        if normalize and times.size:
            span = np.max(times - first_spike_time)
            times = (times - first_spike_time) * (steps - first_spike_time - 1) / span + first_spike_time
    rounded = np.round(times).astype(np.int64)
    if rounded.size and rounded.max() > steps - 1:
        raise InputError(
            f"spike time {int(rounded.max())} exceeds num_steps - 1 = {steps - 1}; decrease tau or set normalize=True"
        )
    spikes = np.zeros((steps, *array.shape), np.float32)
    np.put_along_axis(spikes, rounded[None], 1.0, axis=0)
    if clip:
        spikes[:, silent] = 0.0
    return spikes


def delta(data, *, threshold: float = 0.1, padding: bool = False, off_spike: bool = False) -> np.ndarray:
    """Delta modulation of a time-varying ``[T, ...]`` signal: spikes where it rises (or falls) by ``threshold``."""
    array = _as_array(data)
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputError(f"delta coding needs a [T, ...] sequence, found shape {array.shape}")
    previous = np.concatenate([array[:1] if padding else np.zeros_like(array[:1]), array[:-1]])
    change = array - previous
    spikes = (change >= threshold).astype(np.float32)
    if off_spike:
        spikes -= (change <= -threshold).astype(np.float32)
    return spikes


__all__ = ["rate", "latency", "delta"]
