"""Memory layouts of node values inside a generated kernel.

A value of canonical (PyTorch) shape ``(C, H, W)`` is stored per sample as a flat float32 buffer.
Convolutions write **channels-last** (``H, W, C``) so that the patch of one input spike is added to
contiguous runs of output channels (SIMD); elementwise nodes keep whatever layout they receive, with
their per-neuron parameters arranged to match; Flatten keeps the element order and only renames the
shape. A layout is therefore the canonical shape plus ``order``: ``order[p]`` is the canonical flat
index of the element stored at position ``p`` (``None`` when the two coincide).

Layouts never change numbers, only where they are stored: outputs and probes are written back in
canonical order, and a consumer that needs another layout reads through an index map.
"""

from __future__ import annotations

import math

import numpy as np


def _channels_last_order(shape: tuple[int, ...]) -> np.ndarray:
    """Canonical indices in channels-last storage order for ``(C, L)`` or ``(C, H, W)``."""
    canonical = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    return np.ascontiguousarray(np.moveaxis(canonical, 0, -1)).ravel()


class Layout:
    """Canonical ``shape`` plus the storage ``order`` (see the module docstring)."""

    __slots__ = ("shape", "order", "kind")

    def __init__(self, shape: tuple[int, ...], order: np.ndarray | None = None):
        self.shape = tuple(int(s) for s in shape)
        size = math.prod(self.shape)
        if order is not None and np.array_equal(order, np.arange(size)):
            order = None
        self.order = order
        if order is None:
            self.kind = "canonical"
        elif len(self.shape) in (2, 3) and np.array_equal(order, _channels_last_order(self.shape)):
            self.kind = "channels_last"
        else:
            self.kind = "permuted"

    @classmethod
    def channels_last(cls, shape: tuple[int, ...]) -> Layout:
        """Channels-last storage of a ``(C, L)`` or ``(C, H, W)`` value."""
        return cls(shape, _channels_last_order(tuple(shape)))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def reshaped(self, shape: tuple[int, ...]) -> Layout:
        """The same storage read as another canonical shape of equal size (what Flatten does)."""
        return Layout(shape, self.order)

    def same_order(self, other: Layout) -> bool:
        if self.order is None or other.order is None:
            return self.order is None and other.order is None
        return np.array_equal(self.order, other.order)

    def arrange(self, values: np.ndarray) -> np.ndarray:
        """A per-neuron parameter (scalar or broadcastable to ``shape``) as float32 in storage order."""
        flat = np.broadcast_to(np.asarray(values, np.float32), self.shape).ravel()
        return np.ascontiguousarray(flat if self.order is None else flat[self.order], dtype=np.float32)

    def _positions(self) -> np.ndarray:
        """``positions[j]``: where canonical element ``j`` is stored."""
        positions = np.empty(self.size, np.int64)
        positions[self.order] = np.arange(self.size, dtype=np.int64)
        return positions

    def gather_map(self, source: Layout) -> np.ndarray | None:
        """Index map reading ``source`` storage in this layout's order (None when they agree)."""
        if self.same_order(source):
            return None
        canonical = np.arange(self.size, dtype=np.int64) if self.order is None else self.order
        return canonical if source.order is None else source._positions()[canonical]

    def canonical_map(self) -> np.ndarray | None:
        """``map[j]``: storage position of canonical element ``j`` (None when canonical)."""
        return None if self.order is None else self._positions()

    def spatial(self) -> tuple[int, int, int, int, int, int]:
        """``(C, H, W, stride_c, stride_h, stride_w)`` of a canonical or channels-last ``(C, H, W)`` value.

        A ``(C, L)`` value reads as ``(C, 1, L)``, so Conv1d lowers like Conv2d with a height of one.
        """
        if self.kind not in ("canonical", "channels_last") or len(self.shape) not in (2, 3):
            raise ValueError(f"no spatial view of a {self.kind} layout of shape {self.shape}")
        c, h, w = self.shape if len(self.shape) == 3 else (self.shape[0], 1, self.shape[1])
        if self.kind == "canonical":
            return c, h, w, h * w, w, 1
        return c, h, w, 1, w * c, c

    def __repr__(self) -> str:
        return f"Layout({self.shape}, {self.kind})"


__all__ = ["Layout"]
