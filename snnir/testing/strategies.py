"""Hypothesis strategies for random valid graphs on which every backend must be bit-identical.

:func:`dyadic_graphs` draws layer stacks over flat or image inputs (direct or sequence encoding) from
every primitive, with random reset modes and timings, per-neuron parameters, skip connections and
recurrent delayed edges. Exactness is kept by construction: weights and inputs are multiples of 1/8,
synapses (Linear, Conv, pools) only ever see spikes or a few layers of exact dyadic values, and
non-spike values (LI membranes) only feed element-wise nodes. Requires ``hypothesis`` (a dev dependency).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..builder import GraphBuilder
from ..ir.layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from ..ir.neurons import IF, LI, LIF, CubaLIF
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
def dyadic_graphs(draw, max_layers: int = 6) -> tuple[Any, Any]:
    """A random valid graph and inputs for it; every backend must match the reference bit for bit."""
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
    for _ in range(draw(st.integers(1, max_layers))):
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


__all__ = ["dyadic_graphs"]
