"""The conformance suite's case table: every backend runs every case against the reference.

Each case builds a small graph with dyadic weights and inputs (see :mod:`snnir.testing.dyadic`), so
that backends must match the reference bit for bit. Cases carry tags (``"recurrent"``, ``"conv"``,
``"same_step"``...) so a backend can declare a gap once, by case name or tag, in its ``known_gaps``
table with a reason. :func:`assert_matches_reference` is the one-line check backend tests use.
Third-party backends can run the same table: ``for case in CASES.values(): assert_matches_reference(case, "mine")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..builder import GraphBuilder
from ..ir.graph import Graph
from ..ir.io import Output
from ..ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from ..ir.neurons import IF, LI, LIF, CubaLIF
from .dyadic import dyadic, dyadic_positive, spike_train

BATCH = 3


@dataclass(frozen=True)
class Case:
    """A named graph plus inputs; ``exact`` means outputs must equal the reference bit for bit."""

    name: str
    make: Callable[[np.random.Generator], tuple[Graph, Any]]
    tags: frozenset[str] = field(default_factory=frozenset)
    exact: bool = True
    seed: int = 0

    def build(self) -> tuple[Graph, Any]:
        return self.make(np.random.default_rng(self.seed))


CASES: dict[str, Case] = {}


def case(name: str, *tags: str, exact: bool = True) -> Callable:
    """Register ``make(rng) -> (graph, inputs)`` as a conformance case."""

    def register(make: Callable) -> Callable:
        if name in CASES:
            raise ValueError(f"duplicate conformance case {name!r}")
        CASES[name] = Case(name, make, frozenset(tags), exact)
        return make

    return register


# -- helpers ----------------------------------------------------------------------------------------
def dense(rng: np.random.Generator, out: int, inp: int, *, bias: bool = True, scale: float = 1.0) -> Linear:
    """A Linear with dyadic weights (multiples of 1/8) and bias."""
    return Linear(weight=dyadic(rng, (out, inp), bits=3, scale=scale), bias=dyadic(rng, out, bits=3, scale=0.5) if bias else None)


def _record_all(builder: GraphBuilder, *neurons: str) -> None:
    for name in neurons:
        node = builder.node(name)
        builder.output(f"{name}_out", name)
        for variable in node.state_variables:
            builder.output(f"{name}_{variable}", name, variable)


def _feedforward(rng: np.random.Generator, neuron: Any, *, steps: int = 12, inputs: int = 6, hidden: int = 5, p: float = 0.4):
    builder = GraphBuilder("case", num_steps=steps)
    x = builder.input("x", (inputs,), encoding="sequence")
    n = builder.add("n", neuron, builder.add("fc", dense(rng, hidden, inputs, scale=1.0), x))
    _record_all(builder, n)
    return builder.build(), spike_train(rng, (steps, BATCH, inputs), p)


# -- single neurons: every reset mode and timing ------------------------------------------------------
for _reset in ("subtract", "zero", "none"):
    for _timing in ("next_step", "same_step"):
        _tags = ("lif", _reset, _timing)

        @case(f"lif_{_reset}_{_timing}", *_tags)
        def _lif_case(rng, reset=_reset, timing=_timing):
            return _feedforward(rng, LIF(0.75, threshold=1.0, reset=reset, reset_timing=timing))

        @case(f"cubalif_{_reset}_{_timing}", "cubalif", _reset, _timing)
        def _cuba_case(rng, reset=_reset, timing=_timing):
            return _feedforward(rng, CubaLIF(0.5, 0.875, threshold=1.0, reset=reset, reset_timing=timing))

    @case(f"if_{_reset}", "if", _reset)
    def _if_case(rng, reset=_reset):
        return _feedforward(rng, IF(threshold=1.5, reset=reset))


@case("lif_per_neuron", "lif", "per_neuron")
def _lif_per_neuron(rng):
    beta = np.array([0.0, 0.25, 0.5, 0.875, 1.0], np.float32)
    threshold = np.array([0.5, 1.0, 1.25, 2.0, 0.75], np.float32)
    return _feedforward(rng, LIF(beta, threshold=threshold))


@case("lif_clamped_beta", "lif", "clamp")
def _lif_clamped(rng):
    return _feedforward(rng, LIF(np.array([1.5, -0.5, 0.5, 2.0, -1.0], np.float32)))


@case("lif_bias_graded", "lif", "bias", "graded")
def _lif_bias(rng):
    return _feedforward(rng, LIF(0.5, bias=dyadic(rng, 5, bits=3, scale=0.5), graded_spikes_factor=2.5))


@case("cubalif_bias_per_neuron", "cubalif", "bias", "per_neuron")
def _cuba_bias(rng):
    alpha = np.array([0.25, 0.5, 0.75, 1.0, 0.0], np.float32)
    return _feedforward(rng, CubaLIF(alpha, 0.75, bias=np.float32(0.125), threshold=np.float32(0.75)))


@case("li_readout", "li")
def _li(rng):
    return _feedforward(rng, LI(np.array([0.5, 0.75, 0.875, 1.0, 0.25], np.float32), bias=np.float32(0.25)))


@case("threshold_node", "threshold")
def _threshold(rng):
    builder = GraphBuilder("case", num_steps=6)
    x = builder.input("x", (4, 3), encoding="sequence")
    t = builder.add("t", Threshold(dyadic(rng, (4, 3), bits=2, scale=0.5)), builder.add("s", Scale(np.float32(2.0)), x))
    builder.output("spikes", t)
    return builder.build(), dyadic(rng, (6, BATCH, 4, 3), bits=3)


# -- layers -------------------------------------------------------------------------------------------
def _conv_stack(rng, conv, pool, in_shape, steps=6):
    builder = GraphBuilder("case", num_steps=steps)
    x = builder.input("x", in_shape, encoding="sequence")
    current = builder.chain(x, conv, ("lif", LIF(0.5, threshold=0.5)))
    if pool is not None:
        current = builder.chain(current, ("pool", pool))
    builder.output("out", current)
    _record_all(builder, "lif")
    return builder.build(), spike_train(rng, (steps, BATCH, *in_shape), 0.4)


@case("conv2d_basic", "conv")
def _conv2d_basic(rng):
    conv = Conv2d(weight=dyadic(rng, (4, 2, 3, 3), bits=3), bias=dyadic(rng, 4, bits=3))
    return _conv_stack(rng, conv, MaxPool2d(2), (2, 8, 8))


@case("conv2d_stride_padding", "conv")
def _conv2d_stride(rng):
    conv = Conv2d(weight=dyadic(rng, (3, 2, 3, 2), bits=3), bias=None, stride=(2, 1), padding=(1, 2))
    return _conv_stack(rng, conv, AvgPool2d(2, stride=1, padding=1), (2, 7, 6))


@case("conv2d_dilation_groups", "conv")
def _conv2d_groups(rng):
    conv = Conv2d(weight=dyadic(rng, (4, 2, 3, 3), bits=3), bias=dyadic(rng, 4, bits=3), dilation=2, groups=2, padding=1)
    return _conv_stack(rng, conv, SumPool2d((2, 3), stride=(2, 2), padding=(1, 1)), (4, 9, 10))


@case("conv1d", "conv", "conv1d")
def _conv1d(rng):
    conv = Conv1d(weight=dyadic(rng, (3, 2, 4), bits=3), bias=dyadic(rng, 3, bits=3), stride=2, padding=1, dilation=2)
    return _conv_stack(rng, conv, None, (2, 15))


@case("maxpool_padding", "pool")
def _maxpool_padding(rng):
    builder = GraphBuilder("case", num_steps=4)
    x = builder.input("x", (2, 5, 6), encoding="sequence")
    builder.output("out", builder.add("pool", MaxPool2d(3, stride=2, padding=1), x))
    return builder.build(), dyadic(rng, (4, BATCH, 2, 5, 6), bits=3)


@case("flatten_scale_dropout", "flatten", "scale", "dropout")
def _flatten_scale(rng):
    builder = GraphBuilder("case", num_steps=5)
    x = builder.input("x", (2, 3, 4), encoding="sequence")
    f = builder.chain(x, ("flat", Flatten(start_dim=1)), ("scale", Scale(dyadic_positive(rng, (2, 12), bits=2, scale=2.0))))
    f = builder.chain(f, ("flat2", Flatten()), ("drop", Dropout(0.5)), ("fc", dense(rng, 4, 24, scale=0.25)))
    builder.add("lif", LIF(0.5), f)
    builder.output("out", "flat2")
    _record_all(builder, "lif")
    return builder.build(), spike_train(rng, (5, BATCH, 2, 3, 4), 0.5)


# -- recurrence and delays ------------------------------------------------------------------------------
@case("recurrent_lif", "recurrent", "lif")
def _rleaky(rng):
    builder = GraphBuilder("case", num_steps=14)
    x = builder.input("x", (6,), encoding="sequence")
    lif = builder.add("lif", LIF(0.75), builder.add("fc", dense(rng, 5, 6), x))
    rec = builder.add("rec", dense(rng, 5, 5))
    builder.connect(lif, rec, delay=1)  # as snnTorch's RLeaky: recurrent(spk[t-1]), bias from step 0
    builder.connect(rec, lif)
    _record_all(builder, lif)
    return builder.build(), spike_train(rng, (14, BATCH, 6), 0.3)


@case("recurrent_cubalif_zero", "recurrent", "cubalif", "zero")
def _rsynaptic(rng):
    builder = GraphBuilder("case", num_steps=14)
    x = builder.input("x", (6,), encoding="sequence")
    cuba = builder.add("cuba", CubaLIF(0.5, 0.75, reset="zero"), builder.add("fc", dense(rng, 5, 6), x))
    builder.connect(builder.add("rec", dense(rng, 5, 5), cuba), cuba, delay=1)  # delay after the synapse
    out = builder.add("li", LI(0.875), builder.add("fc2", dense(rng, 3, 5), cuba))
    _record_all(builder, cuba, out)
    return builder.build(), spike_train(rng, (14, BATCH, 6), 0.3)


@case("self_delay_and_input_delay", "recurrent", "delay")
def _delays(rng):
    builder = GraphBuilder("case", num_steps=12)
    x = builder.input("x", (4,), encoding="sequence")
    fc = builder.add("fc", dense(rng, 4, 4), x)
    builder.connect(x, fc, delay=3)  # the input again, three steps late
    lif = builder.add("lif", LIF(0.5, threshold=0.75), fc)
    builder.connect(lif, lif, delay=2)  # own spikes, two steps late
    _record_all(builder, lif)
    return builder.build(), spike_train(rng, (12, BATCH, 4), 0.4)


# -- graph structure ------------------------------------------------------------------------------------
@case("multi_input_multi_output", "multi_input", "direct")
def _multi(rng):
    builder = GraphBuilder("case", num_steps=9)
    static = builder.input("static", (5,), encoding="direct")
    stream = builder.input("stream", (3,), encoding="sequence")
    a = builder.add("fa", dense(rng, 4, 5, scale=0.5), static)
    b = builder.add("fb", dense(rng, 4, 3), stream)
    lif = builder.add("lif", LIF(0.875), a, b)
    cuba = builder.add("cuba", CubaLIF(0.75, 0.5), builder.add("fc", dense(rng, 2, 4), lif))
    builder.output("fa_value", a)
    _record_all(builder, lif, cuba)
    return builder.build(), {"static": dyadic(rng, (BATCH, 5), bits=3), "stream": spike_train(rng, (9, BATCH, 3))}


@case("seed_cnn", "conv", "seed", "direct")
def _seed_cnn(rng):
    builder = GraphBuilder("quickstart_cnn", num_steps=8)
    x = builder.input("x", (1, 14, 14), encoding="direct")
    last = builder.chain(
        x,
        ("conv1", Conv2d(weight=dyadic(rng, (4, 1, 3, 3), bits=3), bias=dyadic(rng, 4, bits=3))),
        ("pool1", MaxPool2d(2)),
        ("lif1", LIF(0.875, surrogate="fast_sigmoid")),
        ("conv2", Conv2d(weight=dyadic(rng, (6, 4, 3, 3), bits=3, scale=0.5), bias=dyadic(rng, 6, bits=3))),
        ("pool2", MaxPool2d(2)),
        ("lif2", LIF(0.875, surrogate="fast_sigmoid")),
        ("flatten", Flatten()),
        ("fc", dense(rng, 10, 24, scale=0.5)),
        ("lif3", LIF(0.875, surrogate="fast_sigmoid")),
    )
    _record_all(builder, "lif1", "lif2", last)
    return builder.build(), dyadic_positive(rng, (BATCH, 1, 14, 14), bits=3)


@case("seed_fc", "seed", "per_neuron")
def _seed_fc(rng):
    builder = GraphBuilder("quickstart_fc", num_steps=10)
    x = builder.input("x", (20,), encoding="direct")
    lif1 = builder.add("lif1", LIF(dyadic_positive(rng, 16, bits=3), learn_beta=True), builder.add("fc1", dense(rng, 16, 20, scale=0.5), x))
    lif2 = builder.add("lif2", LIF(dyadic_positive(rng, 4, bits=3), learn_beta=True), builder.add("fc2", dense(rng, 4, 16), lif1))
    _record_all(builder, lif1, lif2)
    return builder.build(), dyadic_positive(rng, (BATCH, 20), bits=3)


def state_probes(graph: Graph) -> list[str]:
    """Every neuron's value and state variables (and every non-Output node's value)."""
    probes = []
    for name, node in graph.nodes.items():
        if isinstance(node, Output):
            continue
        probes.append(name)
        probes += [f"{name}:{variable}" for variable in node.state_variables]
    return probes


def _compare(key: str, expected: np.ndarray, found: np.ndarray, exact: bool, where: str) -> None:
    found = np.asarray(found)
    if found.shape != expected.shape:
        raise AssertionError(f"{where}: {key} has shape {found.shape}, the reference {expected.shape}")
    if exact:
        if not np.array_equal(found, expected):
            index = tuple(int(i) for i in np.argwhere(found != expected)[0])
            raise AssertionError(
                f"{where}: {key} differs from the reference at {index} (step {index[0]}): "
                f"{found[index]!r} != {expected[index]!r}; {int((found != expected).sum())} of {found.size} values differ"
            )
    else:
        np.testing.assert_allclose(found, expected, atol=1e-4, rtol=1e-4, err_msg=f"{where}: {key}")


def assert_matches_reference(case: Case, backend: str, **options: Any) -> None:
    """Run ``case`` on ``backend`` and on the reference; outputs and every neuron state must agree."""
    from ..compiler import compile as compile_graph

    graph, inputs = case.build()
    probes = state_probes(graph)
    expected = compile_graph(graph, "reference").run(inputs, probes=probes)
    found = compile_graph(graph, backend, **options).run(inputs, probes=probes)
    where = f"case {case.name!r} on {backend!r}"
    for key in expected.outputs:
        _compare(key, expected.outputs[key], found.outputs[key], case.exact, where)
    for key in expected.probes:
        _compare(f"probe {key}", expected.probes[key], found.probes[key], case.exact, where)


def declared_gap(backend: Any, case: Case) -> str | None:
    """The gap ``backend`` declares for ``case`` in its ``known_gaps`` (by the case's name, else one of its
    tags) as ``"key: reason"``, or None. A conformance suite, snnir's or a plug-in's, runs such a case as
    a strict expected failure, so that a gap that closes fails until its declaration goes."""
    gaps = getattr(backend, "known_gaps", {})
    for key in (case.name, *sorted(case.tags)):
        if key in gaps:
            return f"{key}: {gaps[key]}"
    return None


__all__ = ["Case", "CASES", "case", "dense", "assert_matches_reference", "declared_gap", "state_probes"]
