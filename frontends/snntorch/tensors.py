"""Moving parameters between torch tensors and snnir's float32 arrays, without changing a bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from snnir.errors import NodeParameterError, UnsupportedNodeError
from snnir.ir.node import Shape


def to_numpy(value: Any, where: str) -> np.ndarray:
    """A float32 copy of a tensor (or number). Other dtypes are refused: a silent cast would change results."""
    if isinstance(value, torch.Tensor):
        if value.dtype != torch.float32:
            raise UnsupportedNodeError(
                f"{where}: is {value.dtype}; snnir computes in float32 and a cast would change the results. "
                "Convert the model first with module.float()"
            )
        return value.detach().cpu().numpy().copy()
    return np.asarray(value, dtype=np.float32)


def per_neuron(value: Any, shape: Shape, where: str) -> np.ndarray:
    """A scalar or per-neuron parameter for a layer of neuron shape ``shape`` (batch excluded).

    torch broadcasts parameters against ``[B, *shape]``; leading axes of size one (``(1, N)`` for ``(N,)``)
    broadcast to the batch and are dropped. Anything that would broadcast to more than the neuron
    shape (a batch-dependent parameter) is refused.
    """
    array = to_numpy(value, where)
    extra = array.ndim - len(shape)
    if extra > 0:
        if any(n != 1 for n in array.shape[:extra]):
            raise NodeParameterError(
                f"{where}: shape {tuple(array.shape)} does not broadcast to the neuron shape {tuple(shape)} "
                "(batch excluded); give a scalar or one value per neuron"
            )
        array = array.reshape(array.shape[extra:])
    try:
        broadcast = np.broadcast_shapes(array.shape, tuple(shape))
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise NodeParameterError(
            f"{where}: shape {tuple(array.shape)} does not broadcast to the neuron shape {tuple(shape)} (batch excluded)"
        )
    return array


def scalar(value: Any, where: str) -> float:
    """A single float32 value (graded spike factors), exactly."""
    array = to_numpy(value, where)
    if array.size != 1:
        raise UnsupportedNodeError(f"{where}: snnir takes one value for the whole layer, found shape {tuple(array.shape)}")
    return float(array.reshape(()))


def is_learnable(value: Any) -> bool:
    """snnTorch makes a parameter learnable by registering it as an ``nn.Parameter`` instead of a buffer."""
    return isinstance(value, nn.Parameter)


def to_tensor(array: Any) -> torch.Tensor:
    """A writable float32 tensor copy of an snnir array (snnir arrays are read-only)."""
    return torch.tensor(np.array(array, dtype=np.float32))


__all__ = ["to_numpy", "per_neuron", "scalar", "is_learnable", "to_tensor"]
