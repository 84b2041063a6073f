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

import torch
import torch.nn.functional as F

#: Above this fraction of ones the dense GEMM is faster than gathering columns.
MAX_DENSITY = 0.25


def _offsets(counts: torch.Tensor) -> torch.Tensor:
    """Start of each bag in the event list, from the number of events per bag."""
    offsets = torch.zeros(counts.shape[0], dtype=torch.long, device=counts.device)
    if counts.shape[0] > 1:
        torch.cumsum(counts[:-1], 0, out=offsets[1:])
    return offsets


def _events(x: torch.Tensor) -> torch.Tensor | None:
    """``[n_events, 2]`` (sample-step, input) of the ones of ``x``, or None when the dense path is better."""
    events = x.nonzero()
    if events.shape[0] > MAX_DENSITY * x.numel():
        return None
    if events.shape[0] and not bool((x[events[:, 0], events[:, 1]] == 1).all()):
        return None
    return events


def _compact(inputs: torch.Tensor, width: int) -> torch.Tensor:
    """Input indices in the narrowest integer type that holds ``width`` (what the backward pass keeps)."""
    return inputs.to(torch.int16 if width <= torch.iinfo(torch.int16).max else torch.int32)


class EventLinear(torch.autograd.Function):
    """``y = x Wᵀ + b`` for 0/1 ``x [N, in]``, computed from the spike events (see the module docstring).

    For the weight gradient it keeps the events compactly: each event's input index (int16 when
    ``in < 32768``) and the number of events per sample-step, about a sixteenth of a float32 ``x``
    at 10 % density.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        events = _events(x)
        ctx.has_bias = bias is not None
        ctx.width = x.shape[1]
        if events is None:
            ctx.save_for_backward(x, weight, None, None)
            return F.linear(x, weight, bias)
        samples, inputs = events.unbind(1)
        counts = torch.bincount(samples, minlength=x.shape[0])
        ctx.save_for_backward(None, weight, _compact(inputs, x.shape[1]), counts.to(torch.int32))
        y = F.embedding_bag(inputs, weight.t().contiguous(), _offsets(counts), mode="sum")
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
            samples = torch.repeat_interleave(torch.arange(counts.shape[0], device=grad.device), counts.long())
            inputs = inputs.long()
            order = torch.argsort(inputs, stable=True)
            per_input = torch.bincount(inputs, minlength=ctx.width)
            grad_weight = F.embedding_bag(samples[order], grad.contiguous(), _offsets(per_input), mode="sum").t()
        grad_bias = grad.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias


def event_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Event-driven ``F.linear`` for 2-D binary ``x`` (dense fallback otherwise)."""
    return EventLinear.apply(x, weight, bias)


def event_weight_grad(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor | None:
    """``gradᵀ·x`` from the events of a 0/1 ``x [N, in]``, or None when ``x`` is not binary or too dense.

    Events are listed input by input (``nonzero`` of the transposed ``x``), so each weight column is
    one bag of output-gradient rows: no sort needed.
    """
    ones = x.t() == 1
    count = int(torch.count_nonzero(ones))
    if count > MAX_DENSITY * x.numel() or count != int(torch.count_nonzero(x)):
        return None  # too dense, or some nonzero is not 1
    inputs, samples = ones.nonzero().unbind(1)  # [(input, sample)], grouped by input
    per_input = torch.bincount(inputs, minlength=x.shape[1])
    return F.embedding_bag(samples, grad.contiguous(), _offsets(per_input), mode="sum").t()


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


__all__ = ["event_linear", "EventLinear", "MAX_DENSITY", "event_weight_grad", "SpikeGradLinear", "spike_grad_linear"]
