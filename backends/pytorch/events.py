"""Event-driven Linear for binary spike inputs.

A Linear fed by sparse 0/1 spikes (a ``sequence`` input or a spiking layer) wastes most of a dense
GEMM on zeros. Here the forward pass sums, for every sample-step, the weight columns of the inputs
that spiked (``F.embedding_bag`` over the spike events), and the weight gradient sums, for every
input, the output gradients of the sample-steps where it spiked (the same primitive over events
grouped by input). Cost follows the number of spikes instead of ``T·B·in``.

The forward sums follow the GEMM's own order where :mod:`.gemm_order` could calibrate it for the
call's shape (on x86 CPUs with oneDNN/MKL: blocks of 192 inputs for float32), so they equal
``F.linear`` bit for bit and the spikes stay those of snnTorch; that is the default (``exact``).
Elsewhere the default keeps the GEMM, and ``compile(..., event_driven=True)`` (``always``) sums in
input order, which may differ from the GEMM in the last bits (bit-identical on dyadic data, like
every snnir backend). Inputs that are not binary, or denser than :data:`MAX_DENSITY`, take the dense
path in every mode. The weight gradient's summation order always differs from a GEMM's (float
rounding, far inside the 1e-5 contract).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .gemm_order import bag_offsets, block_starts, blocked_sums, column_passes, known_unblocked

#: Above this fraction of ones the dense GEMM is faster than gathering columns.
MAX_DENSITY = 0.25
#: Modes of an event-driven layer: sums in GEMM order only (else the GEMM), or always.
EXACT, ALWAYS = "exact", "always"


#: Output columns per pass of ``F.embedding_bag`` on the CPU: one pass reads a slice of the table
#: (``columns × rows`` floats: 200 KB for a 784-row table) that stays in a core's L2 cache while every
#: bag adds its rows, and writes block sums small enough to stay there until they are combined, where
#: the whole table would stream from L3 once per bag. Each output element still sums its bag in the
#: same order, so the result is the same bit for bit. (64 measured fastest on workload (b), against
#: 32, 128 and one pass.)
COLUMNS_PER_PASS = 64


def _per_pass(tensor: torch.Tensor, width: int) -> int:
    """Output columns per embedding-bag pass: :data:`COLUMNS_PER_PASS` on the CPU, all elsewhere."""
    return COLUMNS_PER_PASS if tensor.device.type == "cpu" else width


#: Rows of an input looked at first: an analog input is turned away without a pass over all of it.
HEAD_ROWS = 4


def _binary_mask(x: torch.Tensor) -> torch.Tensor | None:
    """``x != 0`` when every nonzero of ``x`` is 1 and at most ``MAX_DENSITY`` of it is nonzero, else
    None (the dense path is the one to take)."""
    head = x[:HEAD_ROWS]
    if not bool(((head == 0) | (head == 1)).all()):
        return None
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
    width = grad.shape[1]
    passes = column_passes(samples, bag_offsets(per_input), lambda lo, hi: grad[:, lo:hi].contiguous(), width,
                           _per_pass(grad, width))
    parts = [sums for _, _, sums in passes]
    return (parts[0] if len(parts) == 1 else torch.cat(parts, 1)).t()


class EventLinear(torch.autograd.Function):
    """``y = x Wᵀ + b`` for 0/1 ``x [N, in]`` from its events ``mask``, summed in the blocks of inputs
    that begin at ``starts`` (see :func:`.gemm_order.blocked_sums`; ``(0,)``: input order).

    For the weight gradient it keeps the events compactly: each event's input index (int16 when
    ``in < 32768``) and the number of events per sample-step, about a sixteenth of a float32 ``x``
    at 10 % density.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mask, starts):  # type: ignore[override]
        rows, width = x.shape
        ctx.has_bias = bias is not None
        ctx.width = width
        samples, inputs = mask.nonzero().unbind(1)
        counts = torch.bincount(samples, minlength=rows)
        ctx.save_for_backward(weight, _compact(inputs, width), counts.to(torch.int32))
        outputs = weight.shape[0]
        return blocked_sums(samples, inputs, (rows, width, outputs), starts,
                            lambda lo, hi: weight[lo:hi].t().contiguous(), bias, _per_pass(x, outputs))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        weight, inputs, counts = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = grad @ weight if needs[0] else None
        grad_weight = None
        if needs[1]:
            # regroup the events input by input (a stable sort of the compact indices keeps each
            # input's sample-steps ascending)
            samples = torch.repeat_interleave(torch.arange(counts.shape[0], device=grad.device), counts.long())
            ordered, order = torch.sort(inputs, stable=True)
            per_input = torch.bincount(ordered.long(), minlength=ctx.width)
            grad_weight = _weight_grad(samples[order], per_input, grad.contiguous())
        grad_bias = grad.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias, None, None


def event_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mode: str = ALWAYS) -> torch.Tensor | None:
    """Event-driven ``F.linear`` for a 2-D binary ``x``, or None where the dense path is the one to take
    (``x`` not binary or too dense, a non-finite weight, or in :data:`EXACT` mode an unknown GEMM order).

    ``mode`` :data:`EXACT`: only where the sums can follow the GEMM's order (calibrated on the CPU);
    :data:`ALWAYS`: in the GEMM's order when known, else in input order.
    """
    cpu = x.device.type == "cpu"
    if mode == EXACT and cpu and known_unblocked(x, weight, bias is not None):
        return None  # decided before, without the event test (streaming steps of one sample, say)
    mask = _binary_mask(x)
    if mask is None:
        return None
    starts = block_starts(x, weight, bias is not None) if cpu else None
    if starts is None and mode == EXACT:
        return None
    if not _surely_finite(weight):
        return None  # a GEMM turns 0·inf into NaN where event sums skip the zero
    return EventLinear.apply(x, weight, bias, mask, starts or (0,))


def _surely_finite(weight: torch.Tensor) -> bool:
    """Whether every weight is finite, tested on every call (a write through ``.data`` advances no version
    counter a cache could key on) and cheaply: a finite sum implies finite terms (an inf or NaN term makes
    the sum inf or NaN), 30x faster than ``isfinite(weight).all()``. A sum that overflows from finite
    terms only sends the layer to the GEMM, which is exact anyway."""
    return bool(torch.isfinite(weight.detach().sum()))


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


__all__ = ["event_linear", "EventLinear", "MAX_DENSITY", "EXACT", "ALWAYS", "COLUMNS_PER_PASS", "event_weight_grad", "SpikeGradLinear", "spike_grad_linear"]
