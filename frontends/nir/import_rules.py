"""Import rules: one small function per NIR node type, returning the snnir node(s) it becomes.

A rule returns a chain ``[(name, node), ...]``: incoming edges enter the first node, outgoing edges
leave the last. Neurons whose input gain (``g·r``, ``gs·w_in·gm·r`` or ``dt·r``, see
:mod:`.discretize`) is not exactly 1 in float32 get a ``Scale`` node ``"<name>.gain"`` in front.
Without snnir metadata, spiking neurons reset the way NIR's equations say (``v ← v_reset`` right
after the spike: ``reset="zero"``, ``reset_timing="same_step"``); metadata and then the caller's
``reset``/``reset_timing`` arguments override that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import nir
import numpy as np

from snnir.errors import NodeParameterError, UnsupportedNodeError
from snnir.ir.io import Input, Output
from snnir.ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, Scale, SumPool2d, Threshold
from snnir.ir.neurons import IF, LI, LIF, CubaLIF
from snnir.ir.node import Node

from . import discretize
from . import metadata as md

Chain = list[tuple[str, Node]]


@dataclass(frozen=True)
class Context:
    """What every rule needs besides the node: the time step, the scheme and the reset overrides."""

    dt: float
    scheme: str
    reset: str | None = None
    reset_timing: str | None = None


ImportRule = Callable[[str, Any, "dict | None", Context], Chain]
RULES: dict[type, ImportRule] = {}


def register(*types: type) -> Callable[[ImportRule], ImportRule]:
    def decorate(rule: ImportRule) -> ImportRule:
        for kind in types:
            RULES[kind] = rule
        return rule

    return decorate


def rule_for(name: str, node: Any) -> ImportRule:
    for kind in type(node).__mro__:
        if kind in RULES:
            return RULES[kind]
    supported = ", ".join(sorted(t.__name__ for t in RULES))
    raise UnsupportedNodeError(
        f"NIR node {name!r} ({type(node).__name__}) has no snnir equivalent; supported NIR types: "
        f"{supported}, Delay and nested NIRGraph"
    )


# -- helpers ------------------------------------------------------------------------------------------
def _array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _ints(value: Any) -> Any:
    """NIR stores sizes as numpy ints or arrays; snnir wants Python ints or tuples (strings pass)."""
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    flat = np.atleast_1d(np.asarray(value)).ravel()
    return tuple(int(v) for v in flat) if flat.size > 1 else int(flat[0])


def build(kind: type[Node], carried: dict[str, Any], record: dict | None, ctx: Context, name: str, *, optional: tuple[str, ...] = ()) -> Node:
    """The snnir node from NIR-carried values, the metadata record and the reset overrides.

    Arrays take the shape the record declares when they are that smaller array broadcast; a field
    the record declares absent (or, without a record, an ``optional`` field that is all zeros) is None.
    """
    values: dict[str, Any] = {}
    if kind.spiking and kind is not Threshold:
        values.update(reset="zero", reset_timing="same_step")
    where = f"NIR node {name!r}"
    values.update(md.node_fields(record, kind, where))
    for field, value in carried.items():
        if isinstance(value, np.ndarray):
            status, shape = md.declared_shape(record, kind, field)
            zeros = not np.any(value)
            if (status == "absent" or (status == "unknown" and field in optional)) and zeros:
                value = None
            elif status == "shape":
                value = md.reduce(value, shape)
        values[field] = value
    if "reset" in values and ctx.reset is not None:
        values["reset"] = ctx.reset
    if "reset_timing" in values and ctx.reset_timing is not None:
        values["reset_timing"] = ctx.reset_timing
    try:
        return kind(**values)
    except NodeParameterError as error:
        raise NodeParameterError(f"{where} ({kind.kind}): {error}") from None


def _with_gain(name: str, gain: np.ndarray, neuron: Node) -> Chain:
    """``neuron``, preceded by ``Scale(gain)`` unless the gain is exactly 1 everywhere."""
    if np.all(gain == np.float32(1)):
        return [(name, neuron)]
    return [(f"{name}.gain", Scale(gain)), (name, neuron)]


def _check_reset(name: str, node: Any, neuron: Node) -> None:
    v_reset = _array(node.v_reset)  # NIR fills a missing v_reset with zeros
    if neuron.reset == "zero" and np.any(v_reset != 0):  # type: ignore[attr-defined]
        raise UnsupportedNodeError(
            f"NIR node {name!r}: v_reset = {v_reset[v_reset != 0].flat[0]:g} is not 0; snnir's zero reset sets the "
            "membrane to 0 (subtracting v_reset from v_leak, v_threshold and v_reset would express it, but also "
            "shift the initial membrane); import with reset='subtract' if the file was trained that way"
        )


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in np.atleast_1d(np.asarray(value)).ravel())


# -- wiring -------------------------------------------------------------------------------------------
@register(nir.Input)
def _input(name: str, node: nir.Input, record: dict | None, ctx: Context) -> Chain:
    shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if shape is None:
        raise UnsupportedNodeError(f"NIR Input {name!r} declares no shape")
    values = {"encoding": "sequence", **md.node_fields(record, Input, f"NIR node {name!r}")}
    return [(name, Input(_shape(shape), encoding=values["encoding"]))]


@register(nir.Output)
def _output(name: str, node: nir.Output, record: dict | None, ctx: Context) -> Chain:
    return [(name, build(Output, {}, record, ctx, name))]


# -- synapses and layers ------------------------------------------------------------------------------
def _weight(name: str, weight: Any) -> np.ndarray:
    weight = _array(weight)
    if weight.ndim != 2:
        raise UnsupportedNodeError(f"NIR node {name!r}: a {weight.ndim}-D weight {weight.shape}; snnir's Linear takes 2-D weights")
    return weight


@register(nir.Affine)
def _affine(name: str, node: nir.Affine, record: dict | None, ctx: Context) -> Chain:
    carried = {"weight": _weight(name, node.weight), "bias": _array(node.bias)}
    return [(name, build(Linear, carried, record, ctx, name))]


@register(nir.Linear)
def _linear(name: str, node: nir.Linear, record: dict | None, ctx: Context) -> Chain:
    return [(name, build(Linear, {"weight": _weight(name, node.weight), "bias": None}, record, ctx, name))]


@register(nir.Conv1d, nir.Conv2d)
def _conv(name: str, node: nir.Conv1d | nir.Conv2d, record: dict | None, ctx: Context) -> Chain:
    kind = Conv1d if isinstance(node, nir.Conv1d) else Conv2d
    carried = {
        "weight": _array(node.weight),
        "bias": _array(node.bias),
        "stride": _ints(node.stride),
        "padding": _ints(node.padding),
        "dilation": _ints(node.dilation),
        "groups": int(np.asarray(node.groups)),
    }
    return [(name, build(kind, carried, record, ctx, name))]


@register(nir.SumPool2d, nir.AvgPool2d)
def _pool(name: str, node: nir.SumPool2d | nir.AvgPool2d, record: dict | None, ctx: Context) -> Chain:
    kind = SumPool2d if isinstance(node, nir.SumPool2d) else AvgPool2d
    carried = {"kernel_size": _ints(node.kernel_size), "stride": _ints(node.stride), "padding": _ints(node.padding)}
    return [(name, build(kind, carried, record, ctx, name))]


@register(nir.Flatten)
def _flatten(name: str, node: nir.Flatten, record: dict | None, ctx: Context) -> Chain:
    carried = {"start_dim": int(np.asarray(node.start_dim)), "end_dim": int(np.asarray(node.end_dim))}
    return [(name, build(Flatten, carried, record, ctx, name))]


@register(nir.Scale)
def _scale(name: str, node: nir.Scale, record: dict | None, ctx: Context) -> Chain:
    factor = _array(node.scale)
    if record is not None and record.get("kind") == Dropout.kind and np.all(factor == 1):
        return [(name, build(Dropout, {}, record, ctx, name))]  # snnir's Dropout: the identity at inference
    return [(name, build(Scale, {"factor": factor}, record, ctx, name))]


@register(nir.Threshold)
def _threshold(name: str, node: nir.Threshold, record: dict | None, ctx: Context) -> Chain:
    return [(name, build(Threshold, {"threshold": _array(node.threshold)}, record, ctx, name))]


# -- neurons ------------------------------------------------------------------------------------------
@register(nir.LIF)
def _lif(name: str, node: nir.LIF, record: dict | None, ctx: Context) -> Chain:
    where = f"NIR node {name!r}"
    d = discretize.leaky(node.tau, node.r, node.v_leak, ctx.dt, ctx.scheme, where)
    carried = {"beta": d["beta"], "threshold": _array(node.v_threshold), "bias": d["bias"]}
    neuron = build(LIF, carried, record, ctx, name, optional=("bias",))
    _check_reset(name, node, neuron)
    return _with_gain(name, d["gain"], neuron)


@register(nir.CubaLIF)
def _cuba(name: str, node: nir.CubaLIF, record: dict | None, ctx: Context) -> Chain:
    where = f"NIR node {name!r}"
    d = discretize.current_based(node.tau_syn, node.tau_mem, node.r, node.v_leak, node.w_in, ctx.dt, ctx.scheme, where)
    carried = {"alpha": d["alpha"], "beta": d["beta"], "threshold": _array(node.v_threshold), "bias": d["bias"]}
    neuron = build(CubaLIF, carried, record, ctx, name, optional=("bias",))
    _check_reset(name, node, neuron)
    return _with_gain(name, d["gain"], neuron)


@register(nir.IF)
def _if(name: str, node: nir.IF, record: dict | None, ctx: Context) -> Chain:
    neuron = build(IF, {"threshold": _array(node.v_threshold)}, record, ctx, name)
    _check_reset(name, node, neuron)
    return _with_gain(name, discretize.integrator(node.r, ctx.dt, f"NIR node {name!r}"), neuron)


@register(nir.LI)
def _li(name: str, node: nir.LI, record: dict | None, ctx: Context) -> Chain:
    d = discretize.leaky(node.tau, node.r, node.v_leak, ctx.dt, ctx.scheme, f"NIR node {name!r}")
    neuron = build(LI, {"beta": d["beta"], "bias": d["bias"]}, record, ctx, name, optional=("bias",))
    return _with_gain(name, d["gain"], neuron)


@register(nir.I)
def _integrator(name: str, node: nir.I, record: dict | None, ctx: Context) -> Chain:
    gain = discretize.integrator(node.r, ctx.dt, f"NIR node {name!r}")
    neuron = build(LI, {"beta": np.ones_like(gain)}, None, ctx, name)  # dv/dt = R·I: a leak-free LI
    return _with_gain(name, gain, neuron)


__all__ = ["RULES", "Context", "rule_for", "build", "register"]
