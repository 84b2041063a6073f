"""NumPy kernels of the stateless primitives, on a batch ``[B, *shape]`` in float32.

Written for clarity, not speed: they define what the other backends must compute. Every kernel keeps
float32 throughout and performs one operation per line, so no multiply-add is ever fused.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``y = x Wᵀ (+ b)`` for ``x`` of shape ``[B, in]``."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """View of ``x [B, C, H, W]`` as ``[B, C, H_out, W_out, kh, kw]`` windows (no copy)."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = sliding_window_view(x, span, axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    if not any(padding):
        return x
    widths = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    return np.pad(x, widths, constant_values=np.float32(value))


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """PyTorch's ``conv2d`` (cross-correlation) on ``x [B, C, H, W]`` with ``weight [O, C/groups, kh, kw]``."""
    windows = _windows(_pad(x, padding), weight.shape[2:], stride, dilation)
    in_per_group = weight.shape[1]
    out_per_group = weight.shape[0] // groups
    outputs = []
    for g in range(groups):
        patch = windows[:, g * in_per_group : (g + 1) * in_per_group]
        kernel = weight[g * out_per_group : (g + 1) * out_per_group]
        y = np.tensordot(patch, kernel, axes=([1, 4, 5], [1, 2, 3]))  # [B, H_out, W_out, O/groups]
        outputs.append(np.moveaxis(y, -1, 1))
    y = np.ascontiguousarray(np.concatenate(outputs, axis=1), dtype=np.float32)
    return y if bias is None else y + bias[:, None, None]


def conv1d(x, weight, bias, stride, padding, dilation, groups) -> np.ndarray:
    """``conv1d`` on ``x [B, C, L]`` as a ``conv2d`` over a height of one."""
    y = conv2d(x[:, :, None, :], weight[:, :, None, :], bias, (1, stride[0]), (0, padding[0]), (1, dilation[0]), groups)
    return y[:, :, 0, :]


def max_pool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Window maximum; padding is −inf so it never wins."""
    return _windows(_pad(x, padding, -np.inf), kernel, stride, (1, 1)).max(axis=(4, 5))


def sum_pool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Window sum; padding counts as zero."""
    return _windows(_pad(x, padding), kernel, stride, (1, 1)).sum(axis=(4, 5), dtype=np.float32)


def avg_pool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Window sum divided by ``kh·kw`` (padding included, PyTorch's ``count_include_pad=True``)."""
    return sum_pool2d(x, kernel, stride, padding) / np.float32(kernel[0] * kernel[1])


def heaviside(z: np.ndarray) -> np.ndarray:
    """``H(z) = 1 if z > 0 else 0`` (strict), as float32."""
    return (z > 0).astype(np.float32)


__all__ = ["linear", "conv1d", "conv2d", "max_pool2d", "sum_pool2d", "avg_pool2d", "heaviside"]
