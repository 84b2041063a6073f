"""What the backward pass keeps: spikes are recomputed from membranes instead of being stored.

A synapse after a neuron layer (``Linear``/``Conv`` over the folded batch) saves its input, the spike
tensor, for its weight gradient. Those spikes are exactly ``H(U − θ)·g`` of membranes the neuron scan
keeps anyway, so while a model runs with gradients, :func:`spike_recomputation` installs
saved-tensor hooks that store such a tensor as a recipe (membranes, threshold, factor, view geometry)
and rebuild it bit for bit when the backward pass asks for it. The memory kept for the backward pass
then approaches one potential per neuron-step (docs/torch.md).

:func:`saved_bytes` measures that memory for any training step (snnTorch's included): the bytes of the
distinct storages saved for backward, leaving out parameters and the inputs, which exist anyway.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch

_active = threading.local()


@dataclass(frozen=True)
class _Recipe:
    """How to rebuild a saved spike tensor: ``(potential > threshold)·graded``, then the saved view."""

    potential: torch.Tensor
    threshold: torch.Tensor
    graded: float
    shape: torch.Size
    stride: tuple[int, ...]
    offset: int

    def rebuild(self) -> torch.Tensor:
        """Only the rows (first axis of the potential) that the saved view covers are recomputed."""
        if 0 in self.shape:
            return self.potential.new_zeros(self.shape)
        row = self.potential.stride(0)  # the potential is a contiguous [T, B, ...] scan output
        last = self.offset + sum((size - 1) * step for size, step in zip(self.shape, self.stride))
        first_row, end_row = self.offset // row, last // row + 1
        rows = self.potential[first_row:end_row]
        spikes = torch.gt(rows, self.threshold, out=torch.empty_like(rows))  # 0/1 in the potential's dtype
        if self.graded != 1.0:
            spikes.mul_(self.graded)
        return spikes.as_strided(self.shape, self.stride, self.offset - first_row * row)


def register_spikes(spikes: torch.Tensor, potential: torch.Tensor, threshold: torch.Tensor, graded: float) -> None:
    """Declare ``spikes == H(potential − threshold)·graded`` for the running :func:`spike_recomputation`."""
    table = getattr(_active, "table", None)
    if table is not None and spikes.shape == potential.shape:
        # The strong reference keeps the storage alive while the forward pass runs, so that its address
        # cannot be reused by another tensor and mistaken for these spikes.
        table[spikes.untyped_storage().data_ptr()] = (spikes, potential, threshold.detach(), graded)


def _pack(tensor: torch.Tensor):
    table = getattr(_active, "table", None)
    entry = None if table is None else table.get(tensor.untyped_storage().data_ptr())
    packed = tensor
    if entry is not None and entry[0].dtype == tensor.dtype and entry[0].device == tensor.device:
        _, potential, threshold, graded = entry
        packed = _Recipe(potential, threshold, graded, tensor.shape, tensor.stride(), tensor.storage_offset())
    listener = getattr(_active, "listener", None)
    if listener is not None:
        listener(packed)
    return packed


def _unpack(packed):
    return packed.rebuild() if isinstance(packed, _Recipe) else packed


@contextlib.contextmanager
def spike_recomputation(enabled: bool = True) -> Iterator[None]:
    """Within this block, spike tensors declared with :func:`register_spikes` are saved as recipes."""
    if not enabled or getattr(_active, "table", None) is not None:
        yield
        return
    _active.table = {}
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            yield
    finally:
        _active.table = None


def saved_bytes(step: Callable[[], object], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes kept for the backward pass by ``step()`` (the forward pass and loss, before ``backward``).

    Counts each distinct storage once; storages of ``exclude`` (parameters, inputs) are left out, and
    recipes of recomputed spikes count nothing beyond the membranes they point to.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def record(packed) -> None:
        storage = (packed.potential if isinstance(packed, _Recipe) else packed).untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()

    def pack(tensor):  # foreign code (snnTorch): our own hooks report through the listener instead
        record(tensor)
        return tensor

    _active.listener = record
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda packed: packed):
            step()
    finally:
        _active.listener = None
    return sum(seen.values())


__all__ = ["spike_recomputation", "register_spikes", "saved_bytes"]
