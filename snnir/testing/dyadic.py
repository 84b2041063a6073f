"""Random dyadic data: multiples of 2^-bits small enough that every sum is exact in float32.

On such data the order of additions cannot matter, so every backend must agree with the reference
bit for bit (docs/semantics.md); products with spikes (0/1) stay dyadic too.
"""

from __future__ import annotations

import numpy as np


def dyadic(rng: np.random.Generator, shape: tuple[int, ...] | int, *, bits: int = 4, scale: float = 1.0) -> np.ndarray:
    """Uniform multiples of ``2^-bits`` in ``[-scale, scale]`` as float32."""
    steps = int(scale * 2**bits)
    return (rng.integers(-steps, steps + 1, size=shape) / 2**bits).astype(np.float32)


def dyadic_positive(rng: np.random.Generator, shape: tuple[int, ...] | int, *, bits: int = 4, scale: float = 1.0) -> np.ndarray:
    """Uniform multiples of ``2^-bits`` in ``[0, scale]`` as float32."""
    steps = int(scale * 2**bits)
    return (rng.integers(0, steps + 1, size=shape) / 2**bits).astype(np.float32)


def spike_train(rng: np.random.Generator, shape: tuple[int, ...], p: float = 0.3) -> np.ndarray:
    """Bernoulli(p) spikes as float32 0/1."""
    return (rng.random(shape) < p).astype(np.float32)


__all__ = ["dyadic", "dyadic_positive", "spike_train"]
