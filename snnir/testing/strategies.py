"""Hypothesis strategies for random valid graphs on which every backend must be bit-identical.

:func:`dyadic_graphs` draws layer stacks over flat or image inputs (direct or sequence encoding) from
every primitive, with random reset modes and timings, per-neuron parameters, skip connections and
recurrent delayed edges. Exactness is kept by construction: weights and inputs are multiples of 1/8,
synapses (Linear, Conv, pools) only ever see spikes or a few layers of exact dyadic values, and
non-spike values (LI membranes) only feed element-wise nodes. :func:`trainable_graphs` adds what
training exercises (learnable flags, surrogates with random parameters, broadcast neuron parameters,
per-element Scale factors, extra delays, recorded currents), still exact. Requires ``hypothesis`` (a dev
dependency).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..builder import GraphBuilder
from ..ir.graph import Edge
from ..ir.io import Output
from ..ir.layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from ..ir.neurons import IF, LI, LIF, CubaLIF
from ..ir.surrogate import SURROGATE_DEFAULTS, Surrogate
from .dyadic import dyadic, dyadic_positive, spike_train

_BETAS = [0.0, 0.25, 0.5, 0.75, 0.875, 1.0, 1.25]
_THRESHOLDS = [0.5, 1.0, 1.5]


def _neuron_params(draw, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
    per_neuron = draw(st.booleans())
    pick = lambda values: (rng.choice(values, shape).astype(np.float32) if per_neuron else draw(st.sampled_from(values)))
    params: dict[str, Any] = {"threshold": pick(_THRESHOLDS)}
    if draw(st.booleans()):
        params["bias"] = dyadic(rng, shape, bits=3, scale=0.5) if per_neuron else draw(st.sampled_from([0.125, -0.25]))
    return params, pick


def _spiking_neuron(draw, rng: np.random.Generator, shape: tuple[int, ...]):
    params, pick = _neuron_params(draw, rng, shape)
    params.update(
        reset=draw(st.sampled_from(["subtract", "zero", "none"])),
        reset_timing=draw(st.sampled_from(["next_step", "same_step"])),
        graded_spikes_factor=draw(st.sampled_from([1.0, 1.0, 2.0, 0.5])),
    )
    kind = draw(st.sampled_from(["LIF", "CubaLIF", "IF"]))
    if kind == "LIF":
        return LIF(pick(_BETAS), **params)
    if kind == "CubaLIF":
        return CubaLIF(pick(_BETAS), pick(_BETAS), **params)
    return IF(**params)


def _conv(draw, rng: np.random.Generator, shape: tuple[int, int, int]) -> Conv2d | None:
    channels, height, width = shape
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
    out = groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = draw(st.sampled_from([1, 2]))
    padding = draw(st.integers(0, 1))
    stride = draw(st.integers(1, 2))
    if any(size + 2 * padding < dilation * (k - 1) + 1 for size, k in zip((height, width), kernel)):
        return None
    weight = dyadic(rng, (out, channels // groups, *kernel), bits=3)
    bias = dyadic(rng, out, bits=3, scale=0.5) if draw(st.booleans()) else None
    return Conv2d(weight=weight, bias=bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


@st.composite
def dyadic_graphs(draw, max_layers: int = 6, min_layers: int = 1) -> tuple[Any, Any]:
    """A random valid graph and inputs for it; every backend must match the reference bit for bit.

    ``min_layers``..``max_layers`` layers are drawn (a drawn layer that does not fit the shape is skipped).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps, batch = draw(st.integers(1, 10)), draw(st.integers(1, 3))
    image = draw(st.booleans())
    shape: tuple[int, ...] = (
        (draw(st.integers(1, 3)), draw(st.integers(3, 8)), draw(st.integers(3, 8))) if image else (draw(st.integers(1, 8)),)
    )
    encoding = draw(st.sampled_from(["direct", "sequence"]))
    builder = GraphBuilder("random", num_steps=steps)
    current = builder.input("x", shape, encoding)
    exact_layers = 0  # synapse layers since the last spike; reset by spiking nodes
    arbitrary = False  # True after an LI: only element-wise nodes may follow
    neurons: list[str] = []
    history: list[tuple[str, tuple[int, ...], bool]] = [(current, shape, False)]
    for _ in range(draw(st.integers(min_layers, max_layers))):
        # Weighted choices (repeats), spiking neurons and synapses first: they matter most.
        choices = ["neuron", "neuron", "neuron"]
        if not arbitrary and exact_layers < 2:
            choices += ["conv", "conv", "pool", "flatten"] if len(shape) == 3 else ["linear", "linear", "linear"]
        choices.append("scale")
        if not arbitrary:
            choices.append("li")
        choice = draw(st.sampled_from(choices))
        node: Any = None
        if choice == "conv":
            node = _conv(draw, rng, shape)
        elif choice == "pool":
            pool = draw(st.sampled_from([MaxPool2d, SumPool2d, AvgPool2d]))
            kernel = draw(st.sampled_from([(2, 2), (1, 2), (2, 1)]))  # power-of-two areas keep AvgPool exact
            if shape[1] >= kernel[0] and shape[2] >= kernel[1]:
                node = pool(kernel, stride=draw(st.sampled_from([None, 1])))
        elif choice == "flatten":
            node = Flatten()
        elif choice == "linear":
            out = draw(st.integers(1, 8))
            bias = dyadic(rng, out, bits=3, scale=0.5) if draw(st.booleans()) else None
            node = Linear(weight=dyadic(rng, (out, shape[0]), bits=3), bias=bias)
        elif choice == "scale":
            node = Scale(draw(st.sampled_from([0.5, 2.0, -1.0])))
        elif choice == "li":
            params, pick = _neuron_params(draw, rng, shape)
            params.pop("threshold")
            node = LI(pick(_BETAS), **params)
        elif draw(st.booleans()):
            node = Threshold(draw(st.sampled_from(_THRESHOLDS)))
        else:
            node = _spiking_neuron(draw, rng, shape)
        if node is None:
            continue
        name = builder.add(None, node, current)
        skip = [h for h in history[:-1] if h[1] == shape and not h[2] and not arbitrary]
        if node.stateful and skip and draw(st.booleans()):
            builder.connect(draw(st.sampled_from(skip))[0], name)  # a second, summed input
        current = name
        shape = node.infer_output(shape)
        if node.spiking:
            exact_layers, arbitrary = 0, False
            if node.stateful:
                neurons.append(name)
                if draw(st.booleans()):  # recurrent feedback of its own spikes
                    feedback = (
                        Linear(weight=dyadic(rng, (shape[0], shape[0]), bits=3, scale=0.5))
                        if len(shape) == 1 and draw(st.booleans())
                        else Scale(draw(st.sampled_from([-0.5, 0.25])))
                    )
                    builder.connect(builder.add(None, feedback, name), name, delay=draw(st.integers(1, 3)))
        elif isinstance(node, LI):
            arbitrary = True
            neurons.append(name)
        elif choice in ("conv", "pool", "linear"):
            exact_layers += 1
        history.append((name, shape, arbitrary))
    builder.output("out", current)
    for neuron in neurons:
        builder.output(f"{neuron}_membrane", neuron, "membrane")
    graph = builder.build()
    sample = dyadic_positive if draw(st.booleans()) else (lambda r, s, **k: spike_train(r, s, 0.4))
    lead = (steps, batch) if encoding == "sequence" else (batch,)
    return graph, sample(rng, (*lead, *graph.nodes["x"].shape), bits=3)


#: ranges of the surrogates' parameters (each is drawn in half the examples, snnTorch's default otherwise)
_SURROGATE_RANGES = {
    "atan": {"alpha": (0.5, 4.0)},
    "fast_sigmoid": {"slope": (1.0, 50.0)},
    "sigmoid": {"slope": (1.0, 50.0)},
    "triangular": {"threshold": (0.25, 2.0)},
    "spike_rate_escape": {"beta": (0.25, 2.0), "slope": (1.0, 50.0)},
}


def _surrogate(draw) -> Surrogate:
    """One of the seven surrogates, each parameter drawn from its range or left at snnTorch's default."""
    name = draw(st.sampled_from(sorted(SURROGATE_DEFAULTS)))
    params = {}
    for key, (low, high) in _SURROGATE_RANGES.get(name, {}).items():
        if draw(st.booleans()):
            params[key] = draw(st.floats(low, high, width=32))
    return Surrogate(name, tuple(params.items()))


#: neuron parameters that may be scalars, per-neuron arrays or anything broadcasting to the neuron shape
_NEURON_ARRAYS = ("beta", "alpha", "threshold", "bias")


def _broadcast_some(draw, value: np.ndarray) -> np.ndarray:
    """A per-neuron array reduced along some axes to size 1 (per channel, per row...; its first entries)."""
    axes = [axis for axis in range(value.ndim) if draw(st.booleans())]
    return value[tuple(slice(0, 1) if axis in axes else slice(None) for axis in range(value.ndim))]


def _with_training_attributes(draw, node, shape: tuple[int, ...]):
    """``node`` with a random surrogate and random ``learn_*`` flags (those of its ``training_fields``); in
    half the cases a neuron's per-neuron arrays broadcast along some axes, and a Scale's factor becomes per
    element (times ±1, ½ or 2 each: still dyadic)."""
    changes: dict[str, Any] = {}
    if node.stateful and draw(st.booleans()):
        for field in _NEURON_ARRAYS:
            value = getattr(node, field, None)
            if value is not None and np.ndim(value) > 0:
                changes[field] = _broadcast_some(draw, value)
    for field in node.training_fields:
        if field == "surrogate":
            changes[field] = _surrogate(draw)
        elif field.startswith("learn_"):
            changes[field] = draw(st.booleans())
    if isinstance(node, CubaLIF) and node.bias is not None and draw(st.booleans()):
        changes["bias"] = None  # snnTorch's Synaptic has no bias: keep more CubaLIF graphs comparable with it
    if isinstance(node, Scale) and draw(st.booleans()):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        changes["factor"] = (node.factor * rng.choice([1.0, -1.0, 0.5, 2.0], shape)).astype(np.float32)
    return node.replace(**changes) if changes else node


def _record_currents(graph):
    """``graph`` with an Output recording the synaptic current of every CubaLIF (``<neuron>_current``)."""
    cubas = [name for name, node in graph.nodes.items() if isinstance(node, CubaLIF)]
    nodes = {**graph.nodes, **{f"{name}_current": Output(record="current") for name in cubas}}
    return graph.replace(nodes=nodes, edges=(*graph.edges, *(Edge(name, f"{name}_current") for name in cubas)))


@st.composite
def trainable_graphs(draw, max_layers: int = 6, min_layers: int = 2) -> tuple[Any, Any]:
    """:func:`dyadic_graphs` with training attributes: every spiking node (neurons, Threshold) gets one of
    the seven surrogates, with random parameters in half the cases, every ``learn_beta``/``learn_alpha``/
    ``learn_threshold``/``learn_factor`` flag is drawn (the parameter itself being scalar, per neuron or
    broadcast; a Scale factor scalar or per element), and every CubaLIF's current is recorded too. In half
    the examples, edges that feed no Output get 0 to 2 more steps of delay (values shifted in time stay
    exact), and the inputs are scaled by 1, 2 or 4 (still dyadic): more of the deeper layers spike.
    ``min_layers`` defaults to 2: a single layer rarely trains anything worth comparing."""
    graph, inputs = draw(dyadic_graphs(max_layers, min_layers))
    nodes = {name: _with_training_attributes(draw, node, graph.shapes[name]) for name, node in graph.nodes.items()}
    graph = graph.with_nodes(nodes)
    if draw(st.booleans()):
        extra = st.sampled_from([0, 0, 0, 1, 2])
        delays = [0 if isinstance(graph.nodes[e.dst], Output) else draw(extra) for e in graph.edges]
        graph = graph.replace(edges=[Edge(e.src, e.dst, e.delay + d) for e, d in zip(graph.edges, delays)])
    return _record_currents(graph), inputs * np.float32(draw(st.sampled_from([1, 2, 4])))


__all__ = ["dyadic_graphs", "trainable_graphs"]
