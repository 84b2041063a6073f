"""The onnx backend's lowering table: ``rule(ctx, name, node, x) -> value`` emits ONNX nodes for one step.

``x`` is the name of the node's summed input (fan-in added in edge order by the builder); the rule
returns the name of the node's output value. Neuron rules read ``ctx.previous(node, variable)`` and
record ``ctx.set_next(...)``, writing one ONNX node per float32 operation in the order of
``snnir/reference/neurons.py`` (docs/semantics.md): Mul and Add stay separate nodes, so no runtime
can contract them into a fused multiply-add. Two exact identities are used: ``β = 1`` (IF) and
``g = 1`` (graded factor) skip their multiplication, since ``v·1 = v`` in IEEE arithmetic.
"""

from __future__ import annotations

import numpy as np

from snnir.ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from snnir.ir.neurons import IF, LI, LIF, CubaLIF
from snnir.lowering import LoweringTable

from .context import Lowering

RULES = LoweringTable("onnx")


@RULES.register(Linear)
def _linear(ctx: Lowering, name: str, node: Linear, x: str) -> str:
    """``y = x Wᵀ`` (Gemm with transB, W stored as the IR holds it), then ``+ b`` as its own Add."""
    y = ctx.op("Gemm", x, ctx.param(name, "weight"), hint=f"{name}/matmul" if node.bias is not None else name, transB=1)
    return y if node.bias is None else ctx.op("Add", y, ctx.param(name, "bias"), hint=name)


@RULES.register(Conv1d, Conv2d)
def _conv(ctx: Lowering, name: str, node: Conv1d | Conv2d, x: str) -> str:
    """ONNX Conv has PyTorch's semantics; pads are ``[begin..., end...]``, symmetric here."""
    inputs = [x, ctx.param(name, "weight")] + ([ctx.param(name, "bias")] if node.bias is not None else [])
    return ctx.op(
        "Conv",
        *inputs,
        hint=name,
        kernel_shape=list(node.kernel_size),
        strides=list(node.stride),
        pads=list(node.padding) * 2,
        dilations=list(node.dilation),
        group=node.groups,
    )


@RULES.register(MaxPool2d)
def _max_pool(ctx: Lowering, name: str, node: MaxPool2d, x: str) -> str:
    """ONNX MaxPool ignores padded positions, as the reference's −inf padding does."""
    pool = dict(kernel_shape=list(node.kernel_size), strides=list(node.stride), pads=list(node.padding) * 2)
    return ctx.op("MaxPool", x, hint=name, **pool)


def _window_sum(ctx: Lowering, name: str, node: SumPool2d | AvgPool2d, x: str, hint: str) -> str:
    """Window sums, padded zeros included, as a depthwise Conv with all-one kernels (ONNX has no SumPool)."""
    channels = ctx.graph.input_shape(name)[0]
    ones = ctx.const(np.ones((channels, 1, *node.kernel_size), np.float32))
    return ctx.op(
        "Conv",
        x,
        ones,
        hint=hint,
        kernel_shape=list(node.kernel_size),
        strides=list(node.stride),
        pads=list(node.padding) * 2,
        group=channels,
    )


@RULES.register(SumPool2d)
def _sum_pool(ctx: Lowering, name: str, node: SumPool2d, x: str) -> str:
    return _window_sum(ctx, name, node, x, name)


@RULES.register(AvgPool2d)
def _avg_pool(ctx: Lowering, name: str, node: AvgPool2d, x: str) -> str:
    """The reference's definition: window sum divided by ``kh·kw`` (a true division, not a reciprocal)."""
    total = _window_sum(ctx, name, node, x, f"{name}/sum")
    return ctx.op("Div", total, ctx.const(node.kernel_size[0] * node.kernel_size[1]), hint=name)


@RULES.register(Flatten)
def _flatten(ctx: Lowering, name: str, node: Flatten, x: str) -> str:
    """Reshape to ``[B, *output_shape]``; the leading 0 copies the (symbolic) batch size."""
    shape = ctx.const([0, *ctx.shapes[name]], np.int64)
    return ctx.op("Reshape", x, shape, hint=name)


@RULES.register(Scale)
def _scale(ctx: Lowering, name: str, node: Scale, x: str) -> str:
    return ctx.op("Mul", x, ctx.param(name, "factor"), hint=name)


@RULES.register(Dropout)
def _dropout(ctx: Lowering, name: str, node: Dropout, x: str) -> str:
    return x  # the identity at inference: no node at all


@RULES.register(Threshold)
def _threshold(ctx: Lowering, name: str, node: Threshold, x: str) -> str:
    return ctx.heaviside(ctx.op("Sub", x, ctx.param(name, "threshold"), hint=f"{name}/minus_threshold"), name)


# -- neurons --------------------------------------------------------------------------------------------
def _drive(ctx: Lowering, name: str, node: LIF | IF | CubaLIF | LI, x: str) -> str:
    """``D = I + b``, or ``I`` itself without bias."""
    return x if node.bias is None else ctx.op("Add", x, ctx.param(name, "bias"), hint=f"{name}/drive")


def _decay(ctx: Lowering, name: str, field: str) -> str:
    """β or α clamped to [0, 1] on use: a Clip of the stored parameter, emitted outside the time loop."""
    return ctx.prepare("Clip", ctx.param(name, field), ctx.const(0.0), ctx.const(1.0), hint=f"{name}/{field}_clamped")


def _leak(ctx: Lowering, name: str, decay: str | None, value: str, what: str) -> str:
    return value if decay is None else ctx.op("Mul", decay, value, hint=f"{name}/{what}")


def _reset_signal(ctx: Lowering, name: str, node: LIF | IF | CubaLIF, previous: str) -> str | None:
    """``R = H(U' − θ)`` from the previous membrane; None when the reset rule never reads it."""
    if node.reset == "none":
        return None
    above = ctx.op("Sub", previous, ctx.param(name, "threshold"), hint=f"{name}/previous_minus_threshold")
    return ctx.heaviside(above, f"{name}/reset")


def _fire(ctx: Lowering, name: str, node: LIF | IF | CubaLIF, u: str, reset: str | None) -> str:
    """``S = H(U − θ)``; with same-step timing the stored membrane is corrected by ``(S − R)``."""
    threshold = ctx.param(name, "threshold")
    spike = ctx.heaviside(ctx.op("Sub", u, threshold, hint=f"{name}/minus_threshold"), f"{name}/spike")
    if node.reset_timing == "same_step" and reset is not None:
        correction = ctx.op("Sub", spike, reset, hint=f"{name}/correction")
        amount = threshold if node.reset == "subtract" else u
        u = ctx.op("Sub", u, ctx.op("Mul", correction, amount, hint=f"{name}/correction_amount"), hint=f"{name}/membrane_reset")
    ctx.set_next(name, "membrane", u)
    if node.graded_spikes_factor == 1.0:
        return spike
    return ctx.op("Mul", spike, ctx.const(node.graded_spikes_factor), hint=f"{name}/graded")


@RULES.register(LIF, IF)
def _lif(ctx: Lowering, name: str, node: LIF | IF, x: str) -> str:
    """subtract ``(β·U' + D) − R·θ``; zero ``β·((1 − R)·U') + D``; none ``β·U' + D`` (IF: β = 1)."""
    previous = ctx.previous(name, "membrane")
    drive = _drive(ctx, name, node, x)
    reset = _reset_signal(ctx, name, node, previous)
    beta = _decay(ctx, name, "beta") if isinstance(node, LIF) else None
    if node.reset == "zero":
        keep = ctx.op("Sub", ctx.const(1.0), reset, hint=f"{name}/keep")
        kept = ctx.op("Mul", keep, previous, hint=f"{name}/kept")
        u = ctx.op("Add", _leak(ctx, name, beta, kept, "leak"), drive, hint=f"{name}/membrane")
    else:
        u = ctx.op("Add", _leak(ctx, name, beta, previous, "leak"), drive, hint=f"{name}/integrated")
        if node.reset == "subtract":
            amount = ctx.op("Mul", reset, ctx.param(name, "threshold"), hint=f"{name}/reset_amount")
            u = ctx.op("Sub", u, amount, hint=f"{name}/membrane")
    return _fire(ctx, name, node, u, reset)


@RULES.register(CubaLIF)
def _cuba(ctx: Lowering, name: str, node: CubaLIF, x: str) -> str:
    """``J = α·J' + I``; ``U = β·U' + (J + b)``; subtract ``U − R·θ``, zero ``U − U·R``."""
    previous = ctx.previous(name, "membrane")
    reset = _reset_signal(ctx, name, node, previous)
    alpha, beta = _decay(ctx, name, "alpha"), _decay(ctx, name, "beta")
    current = ctx.op("Add", _leak(ctx, name, alpha, ctx.previous(name, "current"), "current_leak"), x, hint=f"{name}/current")
    ctx.set_next(name, "current", current)
    u = ctx.op("Add", _leak(ctx, name, beta, previous, "leak"), _drive(ctx, name, node, current), hint=f"{name}/integrated")
    if node.reset == "subtract":
        u = ctx.op("Sub", u, ctx.op("Mul", reset, ctx.param(name, "threshold"), hint=f"{name}/reset_amount"), hint=f"{name}/membrane")
    elif node.reset == "zero":
        u = ctx.op("Sub", u, ctx.op("Mul", u, reset, hint=f"{name}/reset_amount"), hint=f"{name}/membrane")
    return _fire(ctx, name, node, u, reset)


@RULES.register(LI)
def _li(ctx: Lowering, name: str, node: LI, x: str) -> str:
    """``U = β·U' + D``; the output is the membrane."""
    leak = _leak(ctx, name, _decay(ctx, name, "beta"), ctx.previous(name, "membrane"), "leak")
    u = ctx.op("Add", leak, _drive(ctx, name, node, x), hint=f"{name}/membrane")
    ctx.set_next(name, "membrane", u)
    return u


__all__ = ["RULES"]
