"""Property-based tests over random valid dyadic graphs (snnir.testing.strategies).

* every available backend is bit-identical to the reference (outputs and every neuron's membrane);
* streaming ``step`` equals whole-sequence ``run``;
* ``.snnir`` and YAML round trips are identities.

Runs derandomised (the same examples on every run); raise ``SNNIR_PROPERTY_EXAMPLES`` for a longer search.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import snnir
from snnir.errors import BackendNotFoundError, BackendUnavailableError
from snnir.registry import backend_names, get_backend
from snnir.testing import assert_graph_equal, state_probes
from snnir.testing.strategies import dyadic_graphs

SCALE = int(os.environ.get("SNNIR_PROPERTY_EXAMPLES", "1"))
#: Examples per backend: compiling is cheap for some backends and costly for others (numba).
EXAMPLES = {"reference": 60, "torch": 40, "onnx": 40, "numba": 12}
COMMON = dict(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _available(name):
    try:
        get_backend(name)
    except (BackendNotFoundError, BackendUnavailableError) as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("backend", [b for b in backend_names() if b != "reference"])
def test_backends_match_the_reference_on_random_graphs(backend):
    _available(backend)
    options = getattr(get_backend(backend), "conformance_options", {})

    @settings(max_examples=EXAMPLES.get(backend, 20) * SCALE, **COMMON)
    @given(dyadic_graphs())
    def check(sample):
        graph, inputs = sample
        probes = state_probes(graph)
        expected = snnir.compile(graph, "reference").run(inputs, probes=probes)
        found = snnir.compile(graph, backend, **options).run(inputs, probes=probes)
        for key in expected.outputs:
            np.testing.assert_array_equal(found.outputs[key], expected.outputs[key], err_msg=key)
        for key in expected.probes:
            np.testing.assert_array_equal(found.probes[key], expected.probes[key], err_msg=key)

    check()


@settings(max_examples=EXAMPLES["reference"] * SCALE, **COMMON)
@given(dyadic_graphs())
def test_streaming_equals_whole_sequence(sample):
    graph, inputs = sample
    model = snnir.compile(graph, "reference")
    whole = model.run(inputs)
    sequence = graph.nodes["x"].encoding == "sequence"
    model.reset(inputs.shape[1] if sequence else inputs.shape[0])
    for t in range(graph.time.num_steps):
        step = model.step(inputs[t] if sequence else inputs)
        for key, value in step.outputs.items():
            np.testing.assert_array_equal(value, whole[key][t])


@settings(max_examples=EXAMPLES["reference"] * SCALE, **COMMON)
@given(dyadic_graphs())
def test_file_round_trips_are_identities(tmp_path_factory, sample):
    graph, _ = sample
    folder = tmp_path_factory.mktemp("roundtrip")
    assert_graph_equal(graph, snnir.load(snnir.save(graph, folder / "g.snnir")))
    assert_graph_equal(graph, snnir.load(snnir.save(graph, folder / "g.yaml")))
