"""Export rules: one small function per snnir node kind, returning the NIR node it becomes.

A rule returns an :class:`Exported`: the NIR node, the snnir fields whose values the NIR node
carries (every other field goes into the node's snnir metadata), and the snnir node as NIR holds
it (the node itself, or with its decays clamped to [0, 1] as every backend applies them). Neuron
parameters are chosen so that the input gain is exactly 1 (snnTorch's convention ``r = τ/dt``,
``w_in = τ_syn/dt`` under Euler) and ``v_reset = 0``; see :mod:`.discretize` for the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from snnir.errors import UnsupportedNodeError
from snnir.ir.io import Input, Output
from snnir.ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, Scale, SumPool2d, Threshold
from snnir.ir.neurons import IF, LI, LIF, CubaLIF
from snnir.ir.node import Node, Shape
from snnir.lowering import LoweringTable

from . import discretize


@dataclass(frozen=True)
class Context:
    """The time step and scheme of the export, and the shapes around the node being exported."""

    dt: float
    scheme: str
    input_shape: Shape
    output_shape: Shape


@dataclass(frozen=True)
class Exported:
    """What a rule returns: the NIR node, the snnir fields it carries, the snnir node it stands for."""

    node: Any
    carried: frozenset[str]
    as_exported: Node


RULES = LoweringTable("nir")
_NEURON = frozenset({"beta", "threshold", "bias"})


def _full(value: Any, shape: Shape, dtype: Any = np.float32) -> np.ndarray:
    """``value`` broadcast to ``shape`` as a fresh array (NIR gives every neuron its own parameters)."""
    return np.array(np.broadcast_to(np.asarray(value, dtype), shape), dtype=dtype)


def _clamped(node: Node, *names: str) -> Node:
    changes = {n: np.clip(getattr(node, n), 0, 1).astype(np.float32) for n in names}
    changed = any(not np.array_equal(changes[n], getattr(node, n)) for n in names)
    return node.replace(**changes) if changed else node


def _leaky(node: LIF | LI, ctx: Context) -> dict[str, np.ndarray]:
    bias = None if node.bias is None else _full(node.bias, ctx.output_shape, np.float64)
    return discretize.to_leaky(_full(node.beta, ctx.output_shape), bias, ctx.dt, ctx.scheme)


# -- wiring -------------------------------------------------------------------------------------------
@RULES.register(Input)
def _input(node: Input, ctx: Context) -> Exported:
    return Exported(nir.Input(input_type=np.array(node.shape, dtype=np.int64)), frozenset({"shape"}), node)


@RULES.register(Output)
def _output(node: Output, ctx: Context) -> Exported:
    return Exported(nir.Output(output_type=np.array(ctx.output_shape, dtype=np.int64)), frozenset(), node)


# -- synapses and layers ------------------------------------------------------------------------------
@RULES.register(Linear)
def _linear(node: Linear, ctx: Context) -> Exported:
    weight = np.array(node.weight)
    exported = nir.Linear(weight=weight) if node.bias is None else nir.Affine(weight=weight, bias=np.array(node.bias))
    return Exported(exported, frozenset({"weight", "bias", "in_features", "out_features"}), node)


@RULES.register(Conv1d, Conv2d)
def _conv(node: Conv1d | Conv2d, ctx: Context) -> Exported:
    bias = np.zeros(node.out_channels, np.float32) if node.bias is None else np.array(node.bias)
    common = {"weight": np.array(node.weight), "groups": node.groups, "bias": bias}
    if isinstance(node, Conv1d):
        exported = nir.Conv1d(
            input_shape=int(ctx.input_shape[1]), stride=node.stride[0], padding=node.padding[0], dilation=node.dilation[0], **common
        )
    else:
        exported = nir.Conv2d(
            input_shape=tuple(ctx.input_shape[1:]), stride=node.stride, padding=node.padding, dilation=node.dilation, **common
        )
    carried = {"weight", "bias", "stride", "padding", "dilation", "groups", "kernel_size", "in_channels", "out_channels"}
    return Exported(exported, frozenset(carried), node)


@RULES.register(SumPool2d, AvgPool2d)
def _pool(node: SumPool2d | AvgPool2d, ctx: Context) -> Exported:
    kind = nir.SumPool2d if isinstance(node, SumPool2d) else nir.AvgPool2d
    exported = kind(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride), padding=np.array(node.padding))
    return Exported(exported, frozenset({"kernel_size", "stride", "padding"}), node)


@RULES.register(Flatten)
def _flatten(node: Flatten, ctx: Context) -> Exported:
    exported = nir.Flatten(input_type={"input": np.array(ctx.input_shape)}, start_dim=node.start_dim, end_dim=node.end_dim)
    return Exported(exported, frozenset({"start_dim", "end_dim"}), node)


@RULES.register(Scale)
def _scale(node: Scale, ctx: Context) -> Exported:
    return Exported(nir.Scale(scale=_full(node.factor, ctx.input_shape)), frozenset({"factor"}), node)


@RULES.register(Dropout)
def _dropout(node: Dropout, ctx: Context) -> Exported:
    # NIR has no dropout; at inference Dropout is the identity, which a Scale of ones says exactly.
    return Exported(nir.Scale(scale=np.ones(ctx.input_shape, np.float32)), frozenset(), node)


@RULES.register(Threshold)
def _threshold(node: Threshold, ctx: Context) -> Exported:
    return Exported(nir.Threshold(threshold=_full(node.threshold, ctx.output_shape)), frozenset({"threshold"}), node)


# -- neurons ------------------------------------------------------------------------------------------
def _spiking_common(node: LIF | IF | CubaLIF, ctx: Context) -> dict[str, np.ndarray]:
    shape = ctx.output_shape
    return {"v_threshold": _full(node.threshold, shape), "v_reset": np.zeros(shape, np.float32)}


@RULES.register(LIF)
def _lif(node: LIF, ctx: Context) -> Exported:
    exported = nir.LIF(**_leaky(node, ctx), **_spiking_common(node, ctx))
    return Exported(exported, _NEURON, _clamped(node, "beta"))


@RULES.register(IF)
def _if(node: IF, ctx: Context) -> Exported:
    if node.bias is not None:
        raise UnsupportedNodeError("NIR's IF has no leak voltage to carry a bias; use an LIF with beta=1 to export a biased IF")
    exported = nir.IF(r=discretize.to_integrator(ctx.output_shape, ctx.dt), **_spiking_common(node, ctx))
    return Exported(exported, frozenset({"threshold", "bias"}), node)


@RULES.register(CubaLIF)
def _cuba(node: CubaLIF, ctx: Context) -> Exported:
    shape = ctx.output_shape
    bias = None if node.bias is None else _full(node.bias, shape, np.float64)
    parameters = discretize.to_current_based(_full(node.alpha, shape), _full(node.beta, shape), bias, ctx.dt, ctx.scheme)
    exported = nir.CubaLIF(**parameters, **_spiking_common(node, ctx))
    return Exported(exported, _NEURON | {"alpha"}, _clamped(node, "alpha", "beta"))


@RULES.register(LI)
def _li(node: LI, ctx: Context) -> Exported:
    return Exported(nir.LI(**_leaky(node, ctx)), frozenset({"beta", "bias"}), _clamped(node, "beta"))


__all__ = ["RULES", "Context", "Exported"]
