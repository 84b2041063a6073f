"""The order in which the CPU GEMM sums a 0/1 input, found by calibration, so that event sums can follow it.

``F.linear(x, W, b)`` with a binary ``x`` adds, to each output, the weights of the inputs that are 1
(products by 1 are exact; a product by 0 adds nothing). Only the order of those additions decides
the rounding. The GEMM kernels of oneDNN/MKL cut the inputs into blocks and sum each block from zero
in input order, then add the block sums one after the other to the bias::

    y = ((b + s₁) + s₂) + …,    s_k = Σ_{i ∈ block k, x_i = 1} W[:, i]   (ascending i)

The blocks depend on the library, the instruction set and the shape: with float32 on the AVX-512
machines measured, blocks of 192 inputs above 384 inputs, of about half the width below; narrow outputs,
single rows and float64 take other kernels, whose order is not of this form. Event sums in the
GEMM's order give its result bit for bit, hence spikes identical to snnTorch's, which calls the
same GEMM.

:func:`block_starts` finds the blocks for one call shape by running the GEMM once on a random 0/1
probe of that shape and comparing it with the blocked event sums of every candidate (blocks of
``k`` inputs for every ``k``, and even splits into a few blocks, the larger ones last): a candidate
must reproduce every output of the probe exactly (a wrong order misses most of them). None when no
candidate does; the caller then keeps the GEMM. Results are cached per call shape, dtype, layout
and thread count (the library may pick its kernel by any of them).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

#: Even splits into up to this many blocks are candidates too (besides blocks of equal size ``k``).
MAX_SPLIT = 8
#: Density of the probe: every block of every output gets many terms, so a wrong order shows.
PROBE_DENSITY = 0.5
#: Rows of the probe on which the candidates are screened before the full check.
SCREEN_ROWS = 8

_found: dict[tuple, tuple[int, ...] | None] = {}


def bag_offsets(counts: torch.Tensor) -> torch.Tensor:
    """Start of each bag in an event list, from the number of events per bag."""
    offsets = torch.zeros(counts.shape[0], dtype=torch.long, device=counts.device)
    if counts.shape[0] > 1:
        torch.cumsum(counts[:-1], 0, out=offsets[1:])
    return offsets


def column_passes(indices: torch.Tensor, offsets: torch.Tensor, columns: Callable[[int, int], torch.Tensor],
                  width: int, per_pass: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(lo, hi, sums)`` for each slice of ``per_pass`` output columns: ``sums`` is
    ``F.embedding_bag(indices, columns(lo, hi), offsets, mode="sum")``, ``columns(lo, hi)`` the
    contiguous table ``[:, lo:hi]``. Each output element sums its bag in the same order whatever the
    slicing (see :data:`.events.COLUMNS_PER_PASS` for why slices)."""
    for lo in range(0, width, per_pass):
        hi = min(lo + per_pass, width)
        yield lo, hi, F.embedding_bag(indices, columns(lo, hi), offsets, mode="sum")


def uniform(width: int, size: int) -> tuple[int, ...]:
    """Starts of blocks of ``size`` inputs (the last one shorter) over ``width`` inputs."""
    return tuple(range(0, width, size))


def _block_of(inputs: torch.Tensor, starts: tuple[int, ...], width: int) -> torch.Tensor:
    """The block of each input index (``starts``: first input of each block, of ``width`` inputs)."""
    size = starts[1]
    if starts == uniform(width, size):  # equal blocks: one division
        return torch.div(inputs, size, rounding_mode="floor")
    return torch.bucketize(inputs, torch.tensor(starts[1:], device=inputs.device), right=True)


def blocked_sums(samples: torch.Tensor, inputs: torch.Tensor, shape: tuple[int, int, int], starts: tuple[int, ...],
                 columns: Callable[[int, int], torch.Tensor], bias: torch.Tensor | None,
                 per_pass: int) -> torch.Tensor:
    """``[rows, out]`` event sums in GEMM order: ``((b + s₁) + s₂) + …`` over the blocks of inputs that
    begin at ``starts`` (``(0,)``: one block, plain input order).

    ``shape`` is ``(rows, in, out)``; ``samples``/``inputs`` the events (row, input) sorted by row
    then input, as ``nonzero`` lists them; ``columns(lo, hi)`` gives the contiguous table
    ``Wᵀ[:, lo:hi]``, summed ``per_pass`` columns at a time (:func:`column_passes`).
    """
    rows, width_in, width_out = shape
    blocks = len(starts)
    bags = samples * blocks + _block_of(inputs, starts, width_in) if blocks > 1 else samples
    offsets = bag_offsets(torch.bincount(bags, minlength=rows * blocks))
    out = None
    for lo, hi, sums in column_passes(inputs, offsets, columns, width_out, per_pass):
        sums = sums.view(rows, blocks, hi - lo)
        if out is None:
            out = sums.new_empty(rows, width_out)
        target = out[:, lo:hi]
        if bias is None:
            target.copy_(sums[:, 0])
        else:
            torch.add(bias[lo:hi], sums[:, 0], out=target)
        for k in range(1, blocks):
            target.add_(sums[:, k])
    return out


def _candidates(width: int) -> list[tuple[int, ...]]:
    """Block layouts to try, those found for other shapes first."""
    splits = [tuple(width * k // n for k in range(n)) for n in range(2, MAX_SPLIT + 1) if n <= width]
    every = dict.fromkeys([uniform(width, size) for size in range(width, 0, -1)] + splits)
    known = {uniform(width, found[1]) for found in _found.values() if found and len(found) > 1}
    return sorted(every, key=lambda layout: layout not in known)  # stable: known ones first


def block_starts(x: torch.Tensor, weight: torch.Tensor, has_bias: bool) -> tuple[int, ...] | None:
    """Where the blocks begin in which ``F.linear`` sums a 0/1 input shaped like ``x`` (None: the
    GEMM's order is not of the blocked form).

    Calibrated once per key (see the module docstring) on a seeded random probe of the same shape,
    dtype, device and layout as ``x`` and ``weight``.
    """
    key = _key(x, weight, has_bias)
    if key not in _found:
        _found[key] = _calibrate(x, weight, has_bias)
    return _found[key]


def known_unblocked(x: torch.Tensor, weight: torch.Tensor, has_bias: bool) -> bool:
    """Whether calibration has already found that ``F.linear`` does not sum inputs shaped like ``x`` in
    blocks (one row, say, where the BLAS runs a matrix-vector kernel): the caller may skip its event test."""
    return _found.get(_key(x, weight, has_bias), ()) is None


def _key(x: torch.Tensor, weight: torch.Tensor, has_bias: bool) -> tuple:
    return (tuple(x.shape), x.stride(), tuple(weight.shape), weight.stride(), has_bias, x.dtype, x.device,
            torch.get_num_threads())


def _calibrate(x: torch.Tensor, weight: torch.Tensor, has_bias: bool) -> tuple[int, ...] | None:
    generator = torch.Generator().manual_seed(0)
    rows, width_in = x.shape
    width_out = weight.shape[0]
    like = dict(dtype=x.dtype, device=x.device)
    probe = torch.empty_strided(x.shape, x.stride(), **like)
    probe.copy_((torch.rand(x.shape, generator=generator) < PROBE_DENSITY).to(x.dtype))
    table = torch.empty_strided(weight.shape, weight.stride(), **like)
    table.copy_(torch.randn(weight.shape, generator=generator, dtype=torch.float64).to(x.dtype))
    bias = torch.randn(width_out, generator=generator, dtype=torch.float64).to(**like) if has_bias else None
    with torch.no_grad():
        expected = F.linear(probe, table, bias)
    transposed = table.t().contiguous()

    def sums(events, count, starts):
        return blocked_sums(*events, (count, width_in, width_out), starts, lambda lo, hi: transposed[:, lo:hi], bias, width_out)

    screen = min(rows, SCREEN_ROWS)
    screened = probe[:screen].nonzero().unbind(1)
    for starts in _candidates(width_in):
        if torch.equal(sums(screened, screen, starts), expected[:screen]):
            return starts if torch.equal(sums(probe.nonzero().unbind(1), rows, starts), expected) else None
    return None


__all__ = ["block_starts", "known_unblocked", "blocked_sums", "column_passes", "bag_offsets", "uniform"]
