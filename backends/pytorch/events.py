"""Event-driven Linear for binary spike inputs (opt-in: ``compile(graph, "torch", event_driven=True)``).

A Linear fed by a ``sequence`` input of sparse 0/1 spikes wastes most of a dense GEMM on zeros. Here
the forward pass sums, for every sample-step, the weight columns of the inputs that spiked
(``F.embedding_bag`` over the spike events), and the weight gradient sums, for every input, the
output gradients of the sample-steps where it spiked (the same primitive over events grouped by
input). Cost follows the number of spikes instead of ``T·B·in``.

The sums run in event order, not in a GEMM's blocked order, so results may differ from the dense
path in the last bits (bit-identical on dyadic data, like every snnir backend). Inputs that are not
binary, or denser than :data:`MAX_DENSITY`, take the dense path.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

#: Above this fraction of ones the dense GEMM is faster than gathering columns.
MAX_DENSITY = 0.25


#: Output columns per pass of ``F.embedding_bag`` on the CPU: one pass reads a slice of the table
#: (``columns × rows`` floats: 400 KB for a 784-row table) that stays in a core's L2 cache while every
#: bag adds its rows, where the whole 512-column table would stream from L3 once per bag. Each output
#: element still sums its bag in the same order, so the result is the same bit for bit.
COLUMNS_PER_PASS = 128


def _offsets(counts: torch.Tensor) -> torch.Tensor:
    """Start of each bag in the event list, from the number of events per bag."""
    offsets = torch.zeros(counts.shape[0], dtype=torch.long, device=counts.device)
    if counts.shape[0] > 1:
        torch.cumsum(counts[:-1], 0, out=offsets[1:])
    return offsets


def _bag_sums(indices: torch.Tensor, columns: Callable[[int, int], torch.Tensor], width: int,
              offsets: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``F.embedding_bag(indices, table, offsets, mode="sum")`` for a table of ``width`` columns,
    ``COLUMNS_PER_PASS`` columns at a time on the CPU; ``columns(lo, hi)`` gives the contiguous
    ``table[:, lo:hi]``."""
    step = COLUMNS_PER_PASS if device.type == "cpu" else width
    parts = [F.embedding_bag(indices, columns(lo, min(lo + step, width)), offsets, mode="sum") for lo in range(0, width, step)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def _binary_mask(x: torch.Tensor) -> torch.Tensor | None:
    """``x != 0`` when every nonzero of ``x`` is 1 and at most ``MAX_DENSITY`` of it is nonzero, else
    None (the dense path is the one to take)."""
    mask = x != 0
    count = int(torch.count_nonzero(mask))
    if count > MAX_DENSITY * x.numel() or int(torch.count_nonzero(x == 1)) != count:
        return None
    return mask


def _compact(inputs: torch.Tensor, width: int) -> torch.Tensor:
    """Input indices in the narrowest integer type that holds ``width`` (what the backward pass keeps)."""
    return inputs.to(torch.int16 if width <= torch.iinfo(torch.int16).max else torch.int32)


def _weight_grad(samples: torch.Tensor, per_input: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``gradᵀ·x`` from the events of ``x`` listed input by input: ``samples`` (the sample-step of each
    event) and ``per_input`` (the number of events of each input); weight column ``i`` is the sum of
    the output-gradient rows of input ``i``'s events."""
    sums = _bag_sums(samples, lambda lo, hi: grad[:, lo:hi].contiguous(), grad.shape[1], _offsets(per_input), grad.device)
    return sums.t()


class EventLinear(torch.autograd.Function):
    """``y = x Wᵀ + b`` for 0/1 ``x [N, in]``, computed from the spike events (see the module docstring).

    For the weight gradient it keeps the events compactly: each event's input index (int16 when
    ``in < 32768``) and the number of events per sample-step, about a sixteenth of a float32 ``x``
    at 10 % density.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        mask = _binary_mask(x)
        ctx.has_bias = bias is not None
        ctx.width = x.shape[1]
        if mask is None:
            ctx.save_for_backward(x, weight, None, None)
            return F.linear(x, weight, bias)
        samples, inputs = mask.nonzero().unbind(1)
        counts = torch.bincount(samples, minlength=x.shape[0])
        ctx.save_for_backward(None, weight, _compact(inputs, x.shape[1]), counts.to(torch.int32))
        y = _bag_sums(inputs, lambda lo, hi: weight[lo:hi].t().contiguous(), weight.shape[0], _offsets(counts), x.device)
        return y if bias is None else y.add_(bias)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight, inputs, counts = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = grad @ weight if needs[0] else None
        grad_weight = None
        if needs[1] and x is not None:
            grad_weight = grad.t() @ x
        elif needs[1]:
            # regroup the events input by input (a stable sort of the compact indices keeps each
            # input's sample-steps ascending)
            samples = torch.repeat_interleave(torch.arange(counts.shape[0], device=grad.device), counts.long())
            ordered, order = torch.sort(inputs, stable=True)
            per_input = torch.bincount(ordered.long(), minlength=ctx.width)
            grad_weight = _weight_grad(samples[order], per_input, grad.contiguous())
        grad_bias = grad.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias


def event_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Event-driven ``F.linear`` for 2-D binary ``x`` (dense fallback otherwise)."""
    return EventLinear.apply(x, weight, bias)


def event_weight_grad(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor | None:
    """``gradᵀ·x`` from the events of a 0/1 ``x [N, in]``, or None when ``x`` is not binary or too dense.

    Events are listed input by input (``nonzero`` of the transposed mask, made contiguous first:
    ``nonzero`` walks memory in order), so each weight column is one bag of output-gradient rows.
    """
    mask = _binary_mask(x)
    if mask is None:
        return None
    inputs, samples = mask.t().contiguous().nonzero().unbind(1)  # [(input, sample)], grouped by input
    return _weight_grad(samples, torch.bincount(inputs, minlength=x.shape[1]), grad.contiguous())


class SpikeGradLinear(torch.autograd.Function):
    """``F.linear`` whose weight gradient is computed from the input's spike events when it is binary.

    The forward pass is ``F.linear`` itself (bit for bit, so spikes stay identical to snnTorch's);
    only the weight gradient's summation order changes (float rounding, well within 1e-5 relative).
    The torch backend uses it by default for wide Linear layers on the CPU (see ``layers.Linear``).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = grad @ weight if needs[0] else None
        grad_weight = None
        if needs[1]:
            grad_weight = event_weight_grad(x, grad)
            if grad_weight is None:
                grad_weight = grad.t() @ x
        grad_bias = grad.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias


def spike_grad_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` with an event-driven weight gradient for binary ``x`` (:class:`SpikeGradLinear`)."""
    return SpikeGradLinear.apply(x, weight, bias)


__all__ = ["event_linear", "EventLinear", "MAX_DENSITY", "COLUMNS_PER_PASS", "event_weight_grad", "SpikeGradLinear", "spike_grad_linear"]
