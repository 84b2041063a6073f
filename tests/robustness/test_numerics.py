"""Numerical robustness on every available backend: very long runs, extreme parameters, tiny batches."""

import numpy as np
import pytest

import snnir
from snnir import IF, LI, LIF, CubaLIF, GraphBuilder, Linear
from snnir.errors import BackendNotFoundError, BackendUnavailableError
from snnir.registry import backend_names, get_backend
from snnir.testing import dyadic, spike_train, state_probes

BACKENDS = backend_names()


def _compile(graph, backend):
    try:
        options = getattr(get_backend(backend), "conformance_options", {})
    except (BackendNotFoundError, BackendUnavailableError) as error:
        pytest.skip(str(error))
    return snnir.compile(graph, backend, **options)


def _assert_same(graph, inputs, backend):
    probes = state_probes(graph)
    expected = snnir.compile(graph, "reference").run(inputs, probes=probes)
    found = _compile(graph, backend).run(inputs, probes=probes)
    for key in expected.probes:
        np.testing.assert_array_equal(found.probes[key], expected.probes[key], err_msg=key)
    return expected


def _network(rng, steps, **neuron_overrides):
    builder = GraphBuilder("long", num_steps=steps)
    x = builder.input("x", (6,), encoding="sequence")
    lif = builder.add("lif", LIF(0.875, **neuron_overrides), builder.add("fc", Linear(weight=dyadic(rng, (5, 6), bits=3)), x))
    builder.connect(builder.add("rec", Linear(weight=dyadic(rng, (5, 5), bits=3, scale=0.5)), lif), lif, delay=1)
    cuba = builder.add("cuba", CubaLIF(0.75, 0.9375, reset="zero"), builder.add("fc2", Linear(weight=dyadic(rng, (3, 5), bits=3)), lif))
    builder.add("li", LI(0.96875), builder.add("fc3", Linear(weight=dyadic(rng, (2, 3), bits=3)), cuba))
    builder.output("out", "li")
    return builder.build()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_thousand_steps_without_drift(backend):
    rng = np.random.default_rng(0)
    graph = _network(rng, 10_000)
    inputs = spike_train(rng, (10_000, 2, 6), 0.3)
    expected = _assert_same(graph, inputs, backend)
    assert 0.01 < expected.probes["lif"].mean() < 0.9  # the network stays active the whole time


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "neuron",
    [
        LIF(0.0), LIF(1.0), LIF(1.0, reset="none"), LIF(0.5, threshold=1e30), LIF(0.5, threshold=-1.0),
        LIF(0.5, threshold=1e-30, reset_timing="same_step"), IF(threshold=0.0, reset="zero"),
        CubaLIF(0.0, 1.0), CubaLIF(1.0, 1.0, reset="none"), LI(1.0),
    ],
    ids=lambda n: repr(n),
)
def test_extreme_parameters(backend, neuron):
    rng = np.random.default_rng(1)
    builder = GraphBuilder("extreme", num_steps=200)
    x = builder.input("x", (4,), encoding="sequence")
    n = builder.add("n", neuron, builder.add("fc", Linear(weight=dyadic(rng, (3, 4), bits=3)), x))
    builder.output("out", n)
    _assert_same(builder.build(), spike_train(rng, (200, 2, 4), 0.5), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [0, 1])
def test_empty_batch_and_batch_of_one(backend, batch):
    from snnir.testing import CASES

    graph, inputs = CASES["seed_cnn"].build()
    result = _compile(graph, backend).run(inputs[:batch], probes=state_probes(graph))
    assert result["lif3_out"].shape == (8, batch, 10)
    if batch:
        reference = snnir.compile(graph).run(inputs[:batch])
        np.testing.assert_array_equal(result["lif3_out"], reference["lif3_out"])
