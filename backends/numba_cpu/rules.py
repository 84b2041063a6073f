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
from functools import partial
from typing import Callable

import numpy as np

from snnir.ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from snnir.ir.neurons import IF, LI, LIF, CubaLIF
from snnir.lowering import LoweringTable

from . import convolution, kernels, synapses
from .generator import NodeContext, Value
from .layout import Layout

RULES = LoweringTable("numba")


def synapse(rule: Callable) -> Callable:
    """Mark a rule as a synapse, whose ``ctx.event_driven`` says whether to skip zero inputs."""
    rule.synapse = True  # type: ignore[attr-defined]
    return rule


def keeps_zeros(rule: Callable) -> Callable:
    """Mark a rule whose node maps zero inputs to zero outputs, for a kind whose node does not say so
    itself (``Node.keeps_zeros``, which the built-in pools, Flatten, Dropout and Scale set)."""
    rule.keeps_zeros = True  # type: ignore[attr-defined]
    return rule


def _clamp01(values: np.ndarray) -> np.ndarray:
    return np.clip(values, np.float32(0), np.float32(1)).astype(np.float32)


# -- synapses --------------------------------------------------------------------------------------
@RULES.register(Linear)
@synapse
def linear(ctx: NodeContext) -> None:
    """``y = x Wᵀ + b``: weight rows in input order (only the nonzero inputs' rows when
    event-driven, found from the caller's spike masks when fed by a spike-train input), then the
    bias; dense and fed by a graph input: one BLAS product instead."""
    node, x = ctx.node, ctx.x
    n_out, n_in = node.weight.shape
    weight = np.ascontiguousarray(node.weight.T if x.layout.order is None else node.weight.T[x.layout.order])
    if ctx.batched_linear(weight, node.bias):
        return
    w = ctx.param("weight", weight.ravel())
    y = ctx.output(Layout((n_out,)))
    ev_i, ev_v = ctx.events(n_in)
    mode = "event-driven" if ctx.event_driven else "dense"
    ctx.code(f"# {ctx.title}: {n_in} -> {n_out}, {mode}")
    masks = ctx.spike_masks() if ctx.event_driven else None
    if masks is None:
        ctx.call(synapses.linear, x.expr, w, y, ev_i, ev_v, ctx.event_driven)
    else:
        with ctx.code.block("if mode == 2:  # the input is a spike train, listed by the caller"):
            ctx.call(synapses.linear_spikes, masks, w, y, ev_i, ev_v)
        with ctx.code.block("else:"):
            ctx.call(synapses.linear, x.expr, w, y, ev_i, ev_v, True)
    if node.bias is not None:
        ctx.call(kernels.add_bias, y, ctx.param("bias", node.bias))


def _planes(ctx: NodeContext, x: Value, kernel: np.ndarray, g: dict, y: str) -> None:
    """Dense, unit stride: taps over the zero-padded input plane (``synapses.conv_planes``)."""
    c_in, h, w, sc, sh, sw = x.layout.spatial()
    (ph, pw), channels_last = g["padding"], x.layout.kind == "channels_last"
    hp, wp = h + 2 * ph, w + 2 * pw
    direct = not channels_last and ph == pw == 0  # read in place
    offsets, weights = convolution.plane_taps(kernel, ctx.node.groups, g, channels_last)
    numbers = (c_in, h, w, sc, sh, sw, hp, wp, ph, pw, g["oh"], g["ow"], kernel.shape[0], direct)
    padded = ctx.buffer(f"pad_{ctx.ident}", 0 if direct else c_in * hp * wp)
    plane = ctx.buffer(f"plane_{ctx.ident}", g["oh"] * wp)
    ctx.call(synapses.conv_planes, x.expr, y, ctx.integers("geometry", numbers), ctx.integers("taps", offsets), ctx.param("weight", weights), padded, plane)


def _band(ctx: NodeContext, x: Value, kernel: np.ndarray, g: dict, y: str) -> None:
    """Unit stride and dilation along the height: band rows per input row (``synapses.conv_band``)."""
    c_in, h, w, sc, sh, _ = x.layout.spatial()
    channels_last = x.layout.kind == "channels_last"
    band = convolution.band_table(kernel, ctx.node.groups, g, channels_last)
    row = (1, 0, w * c_in, w * c_in) if channels_last else (c_in, sc, w, sh)  # runs of contiguous elements
    numbers = (h, *row, g["oh"], g["ow"] * kernel.shape[0], kernel.shape[2], g["padding"][0])
    ev_i, ev_v = ctx.events(c_in * w)
    ctx.call(synapses.conv_band, x.expr, ctx.param("weight", band.ravel()), y, ctx.integers("geometry", numbers), ev_i, ev_v, ctx.event_driven)


def _scatter(ctx: NodeContext, x: Value, kernel: np.ndarray, g: dict, y: str, rows: bool = False) -> None:
    """The rest: every (nonzero) input scatters its kernel patch (``kernels.conv_rows`` with
    ``rows``: one group, unit stride and dilation along the width; else ``kernels.conv``)."""
    c_in, h, w, sc, sh, sw = x.layout.spatial()
    c_out, _, kh, kw = kernel.shape
    (ph, pw), stride, dilation = g["padding"], g["stride"], g["dilation"]
    in_group, out_group = c_in // ctx.node.groups, c_out // ctx.node.groups
    # patch[c, kh, kw, j]: what input channel c adds at kernel offset (kh, kw) to channel j of its group
    patch = np.stack([kernel[(c // in_group) * out_group : (c // in_group + 1) * out_group, c % in_group].transpose(1, 2, 0) for c in range(c_in)])
    taps_h = ctx.integers("taps_h", convolution.taps(h, kh, stride[0], ph, dilation[0], g["oh"]))
    if rows:
        reversed_columns = np.ascontiguousarray(patch[:, :, ::-1, :]).reshape(c_in, kh, kw * c_out)
        numbers = (c_in, h, w, sc, sh, sw, g["ow"], c_out, kw, pw)
        ev_c, ev_v = ctx.events(c_in)
        ctx.call(kernels.conv_rows, x.expr, ctx.param("weight", reversed_columns), y, ctx.integers("geometry", numbers), taps_h, ev_c, ev_v, ctx.event_driven)
    else:
        numbers = (c_in, h, w, sc, sh, sw, g["ow"], c_out, in_group, out_group)
        taps_w = ctx.integers("taps_w", convolution.taps(w, kw, stride[1], pw, dilation[1], g["ow"]))
        ctx.call(kernels.conv, x.expr, ctx.param("weight", patch), y, ctx.integers("geometry", numbers), taps_h, taps_w, ctx.event_driven)


#: The emitters of the kernels :func:`.convolution.choose` names.
CONVOLUTIONS = {"planes": _planes, "band": _band, "rows": partial(_scatter, rows=True), "taps": _scatter}


@RULES.register(Conv1d, Conv2d)
@synapse
def conv(ctx: NodeContext) -> None:
    """Convolution into a channels-last output with the kernel :func:`.convolution.choose` picks
    (tap planes, band rows, or a scatter), then the bias; Conv1d is a Conv2d of height one."""
    node = ctx.node
    x = ctx.spatial_input()
    c_in, h, w = x.layout.spatial()[:3]
    planar = node.weight.ndim == 4
    kernel = node.weight if planar else node.weight[:, :, None, :]
    out_layout = Layout.channels_last(ctx.shape)
    c_out, oh, ow = out_layout.spatial()[:3]
    geometry = {
        "c": c_in, "h": h, "w": w, "oh": oh, "ow": ow,
        "stride": tuple(node.stride) if planar else (1, node.stride[0]),
        "padding": tuple(node.padding) if planar else (0, node.padding[0]),
        "dilation": tuple(node.dilation) if planar else (1, node.dilation[0]),
    }
    strategy = convolution.choose(ctx.event_driven, kernel, node.groups, geometry)
    y = ctx.output(out_layout)
    mode = "event-driven" if ctx.event_driven else "dense"
    ctx.code(f"# {ctx.title}: {c_in}x{h}x{w} -> {c_out}x{oh}x{ow} (channels-last), kernel {kernel.shape[2:]}, {mode}, {strategy}")
    CONVOLUTIONS[strategy](ctx, x, kernel, geometry, y)
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
def max_pool(ctx: NodeContext) -> None:
    _pool(ctx, True)


@RULES.register(SumPool2d)
def sum_pool(ctx: NodeContext) -> None:
    _pool(ctx, False)


@RULES.register(AvgPool2d)
def avg_pool(ctx: NodeContext) -> None:
    """The window sum divided by ``kh·kw`` (padding included), as the reference."""
    y = _pool(ctx, False)
    ctx.call(kernels.divide, y, f"np.float32({ctx.node.kernel_size[0] * ctx.node.kernel_size[1]})")


@RULES.register(Flatten)
def flatten(ctx: NodeContext) -> None:
    """No code: the storage is unchanged, only its canonical shape is renamed."""
    ctx.alias(replace(ctx.x, layout=ctx.x.layout.reshaped(ctx.shape)))


@RULES.register(Dropout)
def dropout(ctx: NodeContext) -> None:
    """The identity at inference."""
    ctx.alias(ctx.x)


@RULES.register(Scale)
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
