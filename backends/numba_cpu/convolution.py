"""Compile-time planning of a convolution: which kernel runs it, and the weight tables it reads.

A convolution ``(C, H, W) -> (O, OH, OW)`` (Conv1d: a height of one) is lowered to one of
(see :mod:`.synapses` for the kernels and the summation order):

``planes`` (dense, unit stride): tap offsets into the zero-padded input and one weight per tap.
``band`` (event-driven or strided dense, unit stride and dilation along the height): per input row
    element, a weight row covering every output row and column it can reach (zeros elsewhere).
    Chosen when that table is small (it must stay in cache) and not mostly zeros: the kernel adds
    ``OW·O`` floats per nonzero input and kernel row where the scatter adds ``KW·O`` plus a fixed
    cost per loop, so the band is taken while ``(OW − KW)·O`` stays under about that fixed cost.
``rows`` / ``taps`` (``kernels.conv_rows`` / ``kernels.conv``): the scatter kernels, for the rest.
"""

from __future__ import annotations

import numpy as np

#: Largest band table, in floats (4 MiB): beyond, it would not stay in the caches.
BAND_LIMIT = 1 << 20
#: ``(OW − KW)·O`` up to which a band row (mostly useful floats) beats a scatter loop (fixed cost).
BAND_WASTE = 256


def taps(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> np.ndarray:
    """``taps[i, k]``: the output position input position ``i`` reaches through kernel tap ``k``
    (``o·stride − padding + k·dilation = i``), or -1 when there is none."""
    table = np.full((size, kernel), -1, np.int64)
    for i in range(size):
        for k in range(kernel):
            offset = i + padding - k * dilation
            if offset >= 0 and offset % stride == 0 and offset // stride < out:
                table[i, k] = offset // stride
    return table


def row_elements(c_in: int, w: int, channels_last: bool) -> np.ndarray:
    """``index[c, iw]``: position of input element ``(c, iw)`` within a row in storage order."""
    c, iw = np.meshgrid(np.arange(c_in), np.arange(w), indexing="ij")
    return iw * c_in + c if channels_last else c * w + iw


def choose(event_driven: bool, kernel: np.ndarray, groups: int, geometry: dict) -> str:
    """The kernel for a convolution: "planes", "band", "rows" or "taps" (see the module docstring)."""
    g = geometry
    o_n, kh_n, kw_n = kernel.shape[0], kernel.shape[2], kernel.shape[3]
    if not event_driven and g["stride"] == (1, 1):
        return "planes"
    band = g["c"] * g["w"] * kh_n * g["ow"] * o_n
    if g["stride"][0] == 1 and g["dilation"][0] == 1 and band <= BAND_LIMIT and (g["ow"] - kw_n) * o_n <= BAND_WASTE:
        return "band"
    return "rows" if groups == 1 and g["stride"][1] == 1 and g["dilation"][1] == 1 else "taps"


def band_table(kernel: np.ndarray, groups: int, geometry: dict, channels_last: bool) -> np.ndarray:
    """``band[e, r, ow·O + o]``: what row element ``e`` adds to output ``(ih + p − (KH−1) + r, ow, o)``."""
    g = geometry
    o_n, in_group, kh_n, kw_n = kernel.shape
    out_group = o_n // groups
    elements = row_elements(g["c"], g["w"], channels_last)
    table = np.zeros((g["c"] * g["w"], kh_n, g["ow"], o_n), np.float32)
    for kh in range(kh_n):
        for kw in range(kw_n):
            for ow in range(g["ow"]):
                iw = ow * g["stride"][1] - g["padding"][1] + kw * g["dilation"][1]
                if not 0 <= iw < g["w"]:
                    continue
                for group in range(groups):
                    channels = slice(group * in_group, (group + 1) * in_group)
                    outputs = slice(group * out_group, (group + 1) * out_group)
                    table[elements[channels, iw], kh_n - 1 - kh, ow, outputs] = kernel[outputs, :, kh, kw].T
    return table


def plane_taps(kernel: np.ndarray, groups: int, geometry: dict, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the taps of ``conv_planes`` in summation order (kernel row, then the row's
    storage order): where each starts in the padded input, and its weight."""
    g = geometry
    o_n, in_group, kh_n, kw_n = kernel.shape
    out_group = o_n // groups
    hp, wp = g["h"] + 2 * g["padding"][0], g["w"] + 2 * g["padding"][1]
    offsets = np.empty((o_n, in_group * kh_n * kw_n), np.int64)
    weights = np.empty((o_n, in_group * kh_n * kw_n), np.float32)
    for o in range(o_n):
        first = (o // out_group) * in_group
        order = [(kh, kw, c) for kh in range(kh_n) for kw in range(kw_n) for c in range(in_group)] if channels_last else \
            [(kh, kw, c) for kh in range(kh_n) for c in range(in_group) for kw in range(kw_n)]
        for k, (kh, kw, c) in enumerate(order):
            offsets[o, k] = (first + c) * hp * wp + kh * g["dilation"][0] * wp + kw * g["dilation"][1]
            weights[o, k] = kernel[o, c, kh, kw]
    return offsets, weights


__all__ = ["choose", "band_table", "plane_taps", "taps", "row_elements", "BAND_LIMIT", "BAND_WASTE"]
