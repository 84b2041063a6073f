"""The numba backend's lowering table: one small emit rule per node kind.

A rule receives a :class:`~.generator.NodeContext`, declares the node's parameters (arranged in the
storage order of its input, see :mod:`.layout`), state and output buffer, and emits the call of a
kernel from :mod:`.kernels`, which holds the equations. A user rule passed as
``compile(graph, "numba", overrides={Kind: rule})`` does the same with its own ``@njit`` function.

Attributes on a rule tell the generator about its node kind: ``synapse`` (Linear/Conv: event-driven
or dense, ``ctx.event_driven``) and ``keeps_zeros`` (maps zeros to zeros, so spikes stay sparse
through it and the synapses they feed default to event-driven).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from snnir.ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from snnir.ir.neurons import IF, LI, LIF, CubaLIF
from snnir.lowering import LoweringTable

from . import kernels
from .generator import NodeContext
from .layout import Layout

RULES = LoweringTable("numba")


def synapse(rule: Callable) -> Callable:
    """Mark a rule as a synapse, whose ``ctx.event_driven`` says whether to skip zero inputs."""
    rule.synapse = True  # type: ignore[attr-defined]
    return rule


def keeps_zeros(rule: Callable) -> Callable:
    """Mark a rule whose node maps zero inputs to zero outputs."""
    rule.keeps_zeros = True  # type: ignore[attr-defined]
    return rule


def _clamp01(values: np.ndarray) -> np.ndarray:
    return np.clip(values, np.float32(0), np.float32(1)).astype(np.float32)


# -- synapses --------------------------------------------------------------------------------------
@RULES.register(Linear)
@synapse
def linear(ctx: NodeContext) -> None:
    """``y = x Wᵀ + b``: weight rows in input order (only the nonzero inputs' rows when
    event-driven), then the bias; dense and fed by a graph input: one BLAS product instead."""
    node, x = ctx.node, ctx.x
    n_out, n_in = node.weight.shape
    weight = np.ascontiguousarray(node.weight.T if x.layout.order is None else node.weight.T[x.layout.order])
    if ctx.batched_linear(weight, node.bias):
        return
    w = ctx.param("weight", weight)
    y = ctx.output(Layout((n_out,)))
    ev_i, ev_v = ctx.events(n_in)
    mode = "event-driven" if ctx.event_driven else "dense"
    ctx.code(f"# {ctx.title}: {n_in} -> {n_out}, {mode}")
    ctx.call(kernels.linear, x.expr, w, y, ev_i, ev_v, ctx.event_driven)
    if node.bias is not None:
        ctx.call(kernels.add_bias, y, ctx.param("bias", node.bias))


def _taps(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> np.ndarray:
    """``taps[i, k]``: the output position input position ``i`` reaches through kernel tap ``k``
    (``o·stride − padding + k·dilation = i``), or -1 when there is none."""
    taps = np.full((size, kernel), -1, np.int64)
    for i in range(size):
        for k in range(kernel):
            offset = i + padding - k * dilation
            if offset >= 0 and offset % stride == 0 and offset // stride < out:
                taps[i, k] = offset // stride
    return taps


@RULES.register(Conv1d, Conv2d)
@synapse
def conv(ctx: NodeContext) -> None:
    """Convolution as a scatter of kernel patches into a channels-last output (see kernels.conv and
    kernels.conv_rows), then the bias; Conv1d is a Conv2d of height one."""
    node = ctx.node
    x = ctx.spatial_input()
    c_in, h, w, sc, sh, sw = x.layout.spatial()
    planar = node.weight.ndim == 4
    kernel = node.weight if planar else node.weight[:, :, None, :]
    stride = node.stride if planar else (1, node.stride[0])
    padding = node.padding if planar else (0, node.padding[0])
    dilation = node.dilation if planar else (1, node.dilation[0])
    out_layout = Layout.channels_last(ctx.shape)
    c_out, oh, ow = out_layout.spatial()[:3]
    kh, kw = kernel.shape[2:]
    in_group, out_group = c_in // node.groups, c_out // node.groups
    # patch[c, kh, kw, j]: what input channel c adds at kernel offset (kh, kw) to channel j of its group
    patch = np.stack([kernel[(c // in_group) * out_group : (c // in_group + 1) * out_group, c % in_group].transpose(1, 2, 0) for c in range(c_in)])
    taps_h = ctx.integers("taps_h", _taps(h, kh, stride[0], padding[0], dilation[0], oh))
    y = ctx.output(out_layout)
    mode = "event-driven" if ctx.event_driven else "dense"
    ctx.code(f"# {ctx.title}: {c_in}x{h}x{w} -> {c_out}x{oh}x{ow} (channels-last), kernel {(kh, kw)}, {mode}")
    if node.groups == 1 and stride[1] == 1 and dilation[1] == 1:
        rows = np.ascontiguousarray(patch[:, :, ::-1, :]).reshape(c_in, kh, kw * c_out)  # kernel columns reversed
        geometry = ctx.integers("geometry", (c_in, h, w, sc, sh, sw, ow, c_out, kw, padding[1]))
        ev_c, ev_v = ctx.events(c_in)
        ctx.call(kernels.conv_rows, x.expr, ctx.param("weight", rows), y, geometry, taps_h, ev_c, ev_v, ctx.event_driven)
    else:
        geometry = ctx.integers("geometry", (c_in, h, w, sc, sh, sw, ow, c_out, in_group, out_group))
        taps_w = ctx.integers("taps_w", _taps(w, kw, stride[1], padding[1], dilation[1], ow))
        ctx.call(kernels.conv, x.expr, ctx.param("weight", patch), y, geometry, taps_h, taps_w, ctx.event_driven)
    if node.bias is not None:
        ctx.call(kernels.add_bias, y, ctx.per_neuron("bias", node.bias.reshape(-1, *(1,) * (len(ctx.shape) - 1)), out_layout))


# -- pooling and reshaping -------------------------------------------------------------------------
def _pool(ctx: NodeContext, take_max: bool) -> str:
    """Window max or sum over a canonical or channels-last input; the output keeps the layout kind."""
    node = ctx.node
    x = ctx.spatial_input()
    c, h, w, sc, sh, sw = x.layout.spatial()
    out_layout = Layout(ctx.shape) if x.layout.kind == "canonical" else Layout.channels_last(ctx.shape)
    _, oh, ow, oc, ohs, ows = out_layout.spatial()
    geometry = (c, h, w, sc, sh, sw, oh, ow, oc, ohs, ows, *node.kernel_size, *node.stride, *node.padding)
    y = ctx.output(out_layout)
    ctx.code(f"# {ctx.title}: window {node.kernel_size}, stride {node.stride}, padding {node.padding}")
    pool = kernels.pool_channels_last if out_layout.kind == "channels_last" else kernels.pool
    ctx.call(pool, x.expr, y, ctx.integers("geometry", geometry), take_max)
    return y


@RULES.register(MaxPool2d)
@keeps_zeros
def max_pool(ctx: NodeContext) -> None:
    _pool(ctx, True)


@RULES.register(SumPool2d)
@keeps_zeros
def sum_pool(ctx: NodeContext) -> None:
    _pool(ctx, False)


@RULES.register(AvgPool2d)
@keeps_zeros
def avg_pool(ctx: NodeContext) -> None:
    """The window sum divided by ``kh·kw`` (padding included), as the reference."""
    y = _pool(ctx, False)
    ctx.call(kernels.divide, y, f"np.float32({ctx.node.kernel_size[0] * ctx.node.kernel_size[1]})")


@RULES.register(Flatten)
@keeps_zeros
def flatten(ctx: NodeContext) -> None:
    """No code: the storage is unchanged, only its canonical shape is renamed."""
    ctx.alias(replace(ctx.x, layout=ctx.x.layout.reshaped(ctx.shape)))


@RULES.register(Dropout)
@keeps_zeros
def dropout(ctx: NodeContext) -> None:
    """The identity at inference."""
    ctx.alias(ctx.x)


@RULES.register(Scale)
@keeps_zeros
def scale(ctx: NodeContext) -> None:
    factor = ctx.per_neuron("factor", ctx.node.factor, ctx.x.layout)
    ctx.call(kernels.scale, ctx.x.expr, factor, ctx.output(ctx.x.layout))


@RULES.register(Threshold)
def threshold(ctx: NodeContext) -> None:
    theta = ctx.per_neuron("threshold", ctx.node.threshold, ctx.x.layout)
    ctx.call(kernels.threshold, ctx.x.expr, theta, ctx.output(ctx.x.layout))


# -- neurons ---------------------------------------------------------------------------------------
@RULES.register(LIF, IF)
def lif(ctx: NodeContext) -> None:
    node, layout = ctx.node, ctx.x.layout
    beta = ctx.per_neuron("beta", _clamp01(getattr(node, "beta", np.float32(1.0))), layout)  # IF: beta = 1
    theta = ctx.per_neuron("threshold", node.threshold, layout)
    bias = ctx.optional("bias", node.bias, layout)
    graded = ctx.scalar("graded", node.graded_spikes_factor)
    membrane = ctx.state("membrane", layout)
    ctx.code(f"# {ctx.title}: reset {node.reset}, {node.reset_timing}")
    args = (beta, theta, bias, graded, ctx.output(layout), kernels.RESET_CODES[node.reset], node.reset_timing == "same_step")
    ctx.call(kernels.lif, ctx.x.expr, membrane, *args)


@RULES.register(CubaLIF)
def cuba_lif(ctx: NodeContext) -> None:
    node, layout = ctx.node, ctx.x.layout
    alpha = ctx.per_neuron("alpha", _clamp01(node.alpha), layout)
    beta = ctx.per_neuron("beta", _clamp01(node.beta), layout)
    theta = ctx.per_neuron("threshold", node.threshold, layout)
    bias = ctx.optional("bias", node.bias, layout)
    graded = ctx.scalar("graded", node.graded_spikes_factor)
    current, membrane = ctx.state("current", layout), ctx.state("membrane", layout)
    ctx.code(f"# {ctx.title}: reset {node.reset}, {node.reset_timing}")
    args = (alpha, beta, theta, bias, graded, ctx.output(layout), kernels.RESET_CODES[node.reset], node.reset_timing == "same_step")
    ctx.call(kernels.cuba_lif, ctx.x.expr, current, membrane, *args)


@RULES.register(LI)
def li(ctx: NodeContext) -> None:
    layout = ctx.x.layout
    beta = ctx.per_neuron("beta", _clamp01(ctx.node.beta), layout)
    bias = ctx.optional("bias", ctx.node.bias, layout)
    membrane = ctx.state("membrane", layout)
    ctx.call(kernels.li, ctx.x.expr, membrane, beta, bias, ctx.output(layout))


__all__ = ["RULES", "synapse", "keeps_zeros"]
