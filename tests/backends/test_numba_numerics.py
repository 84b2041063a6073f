"""The numba backend matches the reference bit for bit: dense and parallel paths, layouts, and the
float32 operation order on general (non-dyadic) data.

The default path (compiler-chosen event-driven synapses, serial for the conformance batch of 3) is
run by tests/conformance for every case; here the other code paths run the same cases.
"""

import re

import numpy as np
import pytest

pytest.importorskip("numba")

import snnir  # noqa: E402
from snnir import Conv1d, Conv2d, CubaLIF, Flatten, GraphBuilder, LI, LIF, Linear, Scale, Threshold  # noqa: E402
from snnir.testing import CASES, assert_matches_reference, dyadic, spike_train  # noqa: E402
from snnir.testing.conformance import state_probes  # noqa: E402


# Cases where event_driven=False takes every other code path: dense row-scatter and per-tap
# convolutions, BLAS products of direct and sequence inputs, a dense Linear on a permuted layout and
# on a fan-in buffer with delays.
DENSE_CASES = [
    "seed_cnn",
    "conv2d_dilation_groups",
    "conv1d",
    "flatten_scale_dropout",
    "multi_input_multi_output",
    "self_delay_and_input_delay",
]


@pytest.mark.parametrize("name", DENSE_CASES)
def test_dense_synapses_match_reference(name, numba_cache):
    assert_matches_reference(CASES[name], "numba", event_driven=False, cache_dir=numba_cache)


def test_parallel_driver_matches_reference(numba_cache):
    assert_matches_reference(CASES["seed_cnn"], "numba", parallel=True, threads=2, cache_dir=numba_cache)


def test_event_driven_and_dense_agree_bit_for_bit_on_general_floats(numba_cache):
    """Both paths add weight rows in input order (skipping a zero adds nothing), so they agree
    exactly even where float32 rounding depends on the order."""
    rng = np.random.default_rng(3)
    builder = GraphBuilder("fc", num_steps=20)
    x = builder.input("x", (40,), encoding="sequence")
    x = builder.add("unit", Scale(np.float32(1.0)), x)  # a buffer, so the dense path is the loop, not BLAS
    hidden = builder.add("lif", LIF(0.8), builder.add("fc", Linear(weight=rng.normal(size=(30, 40)).astype(np.float32), bias=None), x))
    builder.output("out", builder.add("lif2", LIF(0.8), builder.add("fc2", Linear(7), hidden)))
    graph = builder.build(seed=1)
    data = spike_train(rng, (20, 5, 40), 0.3) * rng.uniform(0.5, 2.0, size=(20, 5, 40)).astype(np.float32)
    event = snnir.compile(graph, "numba", cache_dir=numba_cache).run(data, probes=["fc", "lif:membrane"])
    dense = snnir.compile(graph, "numba", event_driven=False, cache_dir=numba_cache).run(data, probes=["fc", "lif:membrane"])
    for key in ("fc", "lif:membrane"):
        np.testing.assert_array_equal(event.probes[key], dense.probes[key])
    # golden from the definition: y = sum over inputs, in input order, of x_i * W[:, i] (float32)
    weight = graph.nodes["fc"].weight
    expected = np.zeros((20, 5, 30), np.float32)
    for i in range(40):
        expected = expected + data[:, :, i : i + 1] * weight[:, i]
    np.testing.assert_array_equal(event.probes["fc"], expected)


def test_neuron_updates_are_bit_identical_on_general_floats(numba_cache):
    """Neurons fed straight by a float input: no sum whose order could differ, so every float32
    operation must round exactly as in the reference (a fused multiply-add would break this)."""
    rng = np.random.default_rng(7)
    shape = (24,)

    def uniform(low, high):
        return rng.uniform(low, high, size=shape).astype(np.float32)

    builder = GraphBuilder("neurons", num_steps=30)
    x = builder.input("x", shape, encoding="sequence")
    for k, (reset, timing) in enumerate([("subtract", "next_step"), ("zero", "same_step"), ("none", "next_step"), ("subtract", "same_step")]):
        lif = builder.add(f"lif{k}", LIF(uniform(0.5, 1.0), threshold=uniform(0.3, 1.5), reset=reset, reset_timing=timing, bias=uniform(-0.1, 0.1), graded_spikes_factor=1.7), x)
        cuba = builder.add(f"cuba{k}", CubaLIF(uniform(0.3, 0.9), uniform(0.6, 1.0), threshold=uniform(0.3, 1.5), reset=reset, reset_timing=timing, bias=uniform(-0.1, 0.1)), x)
        builder.output(f"lif{k}_u", lif, "membrane")
        builder.output(f"cuba{k}_u", cuba, "membrane")
    builder.output("li_out", builder.add("li", LI(uniform(0.7, 1.0), bias=uniform(-0.1, 0.1)), x))
    builder.output("thr_out", builder.add("thr", Threshold(uniform(0.0, 0.5)), builder.add("scale", Scale(uniform(0.5, 1.5)), x)))
    graph = builder.build()
    data = rng.normal(0.4, 0.6, size=(30, 4, *shape)).astype(np.float32)
    probes = state_probes(graph)
    expected = snnir.compile(graph, "reference").run(data, probes=probes)
    found = snnir.compile(graph, "numba", cache_dir=numba_cache).run(data, probes=probes)
    for key in expected.probes:
        np.testing.assert_array_equal(found.probes[key], expected.probes[key], err_msg=key)
    for key in expected:
        np.testing.assert_array_equal(found[key], expected[key], err_msg=key)


def _layout_graph(rng):
    """Values stored channels-last (conv outputs) meet canonical ones in a fan-in sum, feed a delayed
    edge, a partial Flatten whose order fits no spatial layout (gathered for a Conv1d), and a Linear."""
    builder = GraphBuilder("layouts", num_steps=10)
    x = builder.input("x", (2, 5, 6), encoding="sequence")
    conv = builder.add("conv", Conv2d(weight=dyadic(rng, (2, 2, 3, 3), bits=3), bias=dyadic(rng, 2, bits=3), padding=1), x)
    lif = builder.add("lif", LIF(0.5, threshold=0.75), conv, x)  # channels-last + canonical
    builder.connect(lif, lif, delay=2)
    flat = builder.add("flat", Flatten(start_dim=0, end_dim=1), lif)  # (10, 6): a permuted order
    conv1d = builder.add("conv1d", Conv1d(weight=dyadic(rng, (3, 10, 2), bits=3), bias=None), flat)
    cuba = builder.add("cuba", CubaLIF(0.5, 0.75), conv1d)
    out = builder.add("fc", Linear(weight=dyadic(rng, (4, 15), bits=3), bias=dyadic(rng, 4, bits=3)), builder.add("flat2", Flatten(), cuba))
    builder.output("out", builder.add("li", LI(0.875), out))
    builder.output("lif_u", lif, "membrane")
    return builder.build(), spike_train(rng, (10, 3, 2, 5, 6), 0.4)


@pytest.mark.parametrize("event_driven", [True, False])
def test_mixed_layouts_match_reference(event_driven, numba_cache):
    graph, data = _layout_graph(np.random.default_rng(11))
    probes = state_probes(graph)
    expected = snnir.compile(graph, "reference").run(data, probes=probes)
    model = snnir.compile(graph, "numba", event_driven=event_driven, cache_dir=numba_cache)
    found = model.run(data, probes=probes)
    assert "K.gather_into" in model.source  # the permuted Flatten output was gathered for the Conv1d
    for key in expected.probes:
        np.testing.assert_array_equal(found.probes[key], expected.probes[key], err_msg=key)


def _conv_graph(rng, channels_last_input):
    """Convolutions that take the band kernel when event-driven and the plane kernel when dense:
    padding, a dilated width, an unpadded canonical input (read in place) and a channels-last one."""
    builder = GraphBuilder("convs", num_steps=8)
    x = builder.input("x", (3, 9, 10), encoding="sequence")
    if channels_last_input:  # a conv output is stored channels-last
        x = builder.add("lif0", LIF(0.5, threshold=0.3), builder.add("conv0", Conv2d(weight=rng.normal(size=(4, 3, 1, 1)).astype(np.float32), bias=None), x))
    c = 4 if channels_last_input else 3
    a = builder.add("conv_a", Conv2d(weight=rng.normal(size=(5, c, 3, 3)).astype(np.float32), bias=None, padding=(1, 2), dilation=(1, 2)), x)
    b = builder.add("conv_b", Conv2d(weight=rng.normal(size=(5, c, 2, 4)).astype(np.float32), bias=rng.normal(size=5).astype(np.float32)), x)
    builder.output("a", builder.add("lif_a", LIF(0.8), a), "membrane")
    builder.output("b", builder.add("lif_b", LIF(0.8), b), "membrane")
    return builder.build(seed=2)


@pytest.mark.parametrize("channels_last_input", [False, True])
def test_band_and_plane_convolutions_agree_bit_for_bit_on_general_floats(channels_last_input, numba_cache):
    """Both sum a convolution's inputs row by row, each row in storage order, so the event-driven band
    kernel (skipping zeros) and the dense plane kernel (adding them) agree exactly on general floats;
    against the reference (BLAS order) they agree to float32 rounding."""
    rng = np.random.default_rng(5)
    graph = _conv_graph(rng, channels_last_input)
    data = spike_train(rng, (8, 3, 3, 9, 10), 0.3) * rng.uniform(0.5, 2.0, size=(8, 3, 3, 9, 10)).astype(np.float32)
    probes = ["conv_a", "conv_b"]
    event = snnir.compile(graph, "numba", event_driven=True, cache_dir=numba_cache)
    dense = snnir.compile(graph, "numba", event_driven=False, cache_dir=numba_cache)
    for model, kernel in ((event, "band"), (dense, "planes")):
        assert re.findall(r"# 'conv_[ab]' \(Conv2d\).*, (\w+)$", model.source, re.M) == [kernel, kernel]
    found, other = event.run(data, probes=probes), dense.run(data, probes=probes)
    expected = snnir.compile(graph, "reference").run(data, probes=probes)
    for key in probes:
        np.testing.assert_array_equal(found.probes[key], other.probes[key], err_msg=key)
        np.testing.assert_allclose(found.probes[key], expected.probes[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 200])
def test_nonzeros_lists_every_nonzero_input_in_order(size):
    """The event lists of the synapses: every nonzero value (a -0.0 counts as zero), in order, at the
    requested position, with row offsets base + stride * index; dense mode lists everything."""
    from snnir.backends.numba_cpu.synapses import nonzeros

    rng = np.random.default_rng(size)
    x = np.where(rng.random(size) < 0.3, rng.normal(size=size), 0.0).astype(np.float32)
    x[rng.random(size) < 0.1] = -0.0
    ev_i, ev_v = np.full(size + 3, -1, np.int64), np.zeros(size + 3, np.float32)
    n = nonzeros(x, ev_i, ev_v, 3, 7, 5, True)
    where = np.flatnonzero(x)
    assert n == 3 + where.size
    np.testing.assert_array_equal(ev_i[3:n], 7 + 5 * where)
    np.testing.assert_array_equal(ev_v[3:n], x[where])
    assert nonzeros(x, ev_i, ev_v, 0, 0, 1, False) == size
    np.testing.assert_array_equal(ev_v[:size], x)
