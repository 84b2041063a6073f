"""Spike-train inputs listed before the kernel runs (``synapses.spike_masks``): a run whose first input
holds only 0 and 1 hands the kernel bit masks of its rows, and the event-driven Linear layers fed by
that input add the rows of the set bits without reading the input. Everything else reads the input
in place, as before; both ways give the same bits."""

import numpy as np
import pytest

pytest.importorskip("numba")

import snnir  # noqa: E402
from snnir import Flatten, GraphBuilder, LIF, Linear, Scale  # noqa: E402
from snnir.backends.numba_cpu.synapses import spike_masks  # noqa: E402
from snnir.errors import InputError  # noqa: E402
from snnir.testing import dyadic, spike_train  # noqa: E402


def expected_masks(x: np.ndarray) -> np.ndarray:
    """Bit j of word w of a row: x[row, 64 w + j] != 0, from numpy alone."""
    rows, n = x.shape
    words = -(-n // 64)
    padded = np.zeros((rows, words * 64), bool)
    padded[:, :n] = x != 0
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    return (padded.reshape(rows, words, 64).astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64).ravel()


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200, 784])
def test_spike_masks_mark_every_spike_of_every_row(n):
    x = spike_train(np.random.default_rng(n), (9, n), 0.3)
    x[0] = 0.0
    x[1] = 1.0
    masks = np.full(9 * -(-n // 64), 7, np.uint64)
    assert spike_masks(x.ravel(), 9, masks) == 9
    np.testing.assert_array_equal(masks, expected_masks(x))


@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, -0.0, np.nan, np.inf])
def test_spike_masks_stop_at_the_first_row_of_other_values(value):
    x = spike_train(np.random.default_rng(1), (6, 70), 0.3)
    x[4, 69] = value
    words = 2
    masks = np.zeros(6 * words, np.uint64)
    assert spike_masks(x.ravel(), 6, masks) == 4  # the rows listed: those before row 4
    np.testing.assert_array_equal(masks[: 4 * words], expected_masks(x[:4]))  # rows before it: listed
    np.testing.assert_array_equal(masks[4 * words :], 0)  # from it on: untouched


def fc_graph(rng, first=None):
    """x (sequence, 40) -> [first] -> Linear 40->30 -> LIF -> Linear 30->7 -> LIF, general float weights."""
    builder = GraphBuilder("fc", num_steps=12)
    x = builder.input("x", (40,), encoding="sequence")
    if first is not None:
        x = builder.add("first", first, x)
    fc = builder.add("fc", Linear(weight=rng.normal(size=(30, 40)).astype(np.float32), bias=rng.normal(size=30).astype(np.float32)), x)
    hidden = builder.add("lif", LIF(0.8), fc)
    builder.output("out", builder.add("lif2", LIF(0.8), builder.add("fc2", Linear(7), hidden)))
    return builder.build(seed=1)


def watch(model) -> list[bool]:
    """Record, for each run of ``model``, whether its input was listed."""
    seen: list[bool] = []
    listing = model._spike_masks

    def spy(first):
        masks, rows = listing(first)
        seen.append(masks is not None)
        return masks, rows

    model._spike_masks = spy
    return seen


def in_place(model):
    """``model`` with listing switched off: every run reads the input in place."""
    model._spike_masks = lambda first: (None, 0)
    return model


@pytest.mark.parametrize("threads", [1, 2])
def test_a_listed_spike_train_gives_the_bits_of_the_input_read_in_place(threads, numba_cache):
    graph = fc_graph(np.random.default_rng(0))
    data = spike_train(np.random.default_rng(1), (12, 8, 40), 0.2)
    listed = snnir.compile(graph, "numba", threads=threads, cache_dir=numba_cache)
    assert listed.program.lists_spikes
    seen = watch(listed)
    found = listed.run(data, probes=["fc", "lif:membrane"])
    assert seen == [True]
    other = in_place(snnir.compile(graph, "numba", threads=threads, cache_dir=numba_cache)).run(data, probes=["fc", "lif:membrane"])
    for key in ("fc", "lif:membrane"):
        np.testing.assert_array_equal(found.probes[key], other.probes[key], err_msg=key)
    np.testing.assert_array_equal(found["out"], other["out"])
    # golden from the definition: the weight rows of the spiking inputs, in input order, then the bias
    weight, bias = graph.nodes["fc"].weight, graph.nodes["fc"].bias
    expected = np.zeros((12, 8, 30), np.float32)
    for i in range(40):
        expected = expected + data[:, :, i : i + 1] * weight[:, i]
    np.testing.assert_array_equal(found.probes["fc"], expected + bias)


def test_listed_runs_match_the_reference_on_dyadic_weights(numba_cache):
    rng = np.random.default_rng(2)
    builder = GraphBuilder("dyadic", num_steps=10)
    x = builder.input("x", (70,), encoding="sequence")
    hidden = builder.add("lif", LIF(0.75), builder.add("fc", Linear(weight=dyadic(rng, (20, 70)), bias=dyadic(rng, 20)), x))
    builder.output("out", builder.add("lif2", LIF(0.5), builder.add("fc2", Linear(weight=dyadic(rng, (5, 20)), bias=None), hidden)))
    graph = builder.build()
    data = spike_train(rng, (10, 3, 70), 0.3)
    model = snnir.compile(graph, "numba", cache_dir=numba_cache)
    seen = watch(model)
    found = model.run(data, probes=["lif:membrane"])
    expected = snnir.compile(graph, "reference").run(data, probes=["lif:membrane"])
    assert seen == [True]
    np.testing.assert_array_equal(found["out"], expected["out"])
    np.testing.assert_array_equal(found.probes["lif:membrane"], expected.probes["lif:membrane"])


@pytest.mark.parametrize("value", [0.5, -0.0])
@pytest.mark.parametrize("step", [0, -1])
def test_other_values_are_read_in_place(value, step, numba_cache):
    """An input that is not a spike train (one 0.5 or -0.0, in the first or the last step) takes the
    in-place path and matches the reference."""
    graph = fc_graph(np.random.default_rng(3))
    data = spike_train(np.random.default_rng(4), (12, 4, 40), 0.3)
    data[step, -1, 5] = value
    model = snnir.compile(graph, "numba", cache_dir=numba_cache)
    seen = watch(model)
    found = model.run(data, probes=["fc"])
    assert seen == [False]
    expected = snnir.compile(graph, "reference").run(data, probes=["fc"])
    np.testing.assert_allclose(found.probes["fc"], expected.probes["fc"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(found["out"], expected["out"])


def test_a_non_finite_value_in_a_spike_train_is_still_an_input_error(numba_cache):
    model = snnir.compile(fc_graph(np.random.default_rng(5)), "numba", cache_dir=numba_cache)
    data = spike_train(np.random.default_rng(6), (12, 2, 40), 0.3)
    data[7, 1, 39] = np.nan
    with pytest.raises(InputError, match="NaN|finite"):
        model.run(data)
    data[7, 1, 39] = 0.5  # the listing stops here; the rows after it are tested for NaN/inf on their own
    data[9, 0, 3] = np.inf
    with pytest.raises(InputError, match=r"value inf at index \(9, 0, 3\)"):
        model.run(data)


def test_the_checked_path_lists_too(numba_cache):
    """A float64 spike train, or fewer steps than given, is converted and checked first, then listed."""
    graph = fc_graph(np.random.default_rng(7))
    data = spike_train(np.random.default_rng(8), (12, 3, 40), 0.3)
    model = snnir.compile(graph, "numba", cache_dir=numba_cache)
    seen = watch(model)
    found = model.run(data.astype(np.float64), probes=["fc"])
    shorter = model.run(data, num_steps=5, probes=["fc"])  # a copy of the first 5 steps
    assert seen == [True, True]
    expected = in_place(snnir.compile(graph, "numba", cache_dir=numba_cache)).run(data, probes=["fc"])
    np.testing.assert_array_equal(found.probes["fc"], expected.probes["fc"])
    np.testing.assert_array_equal(shorter.probes["fc"], expected.probes["fc"][:5])


def test_a_flattened_image_input_is_listed(numba_cache):
    rng = np.random.default_rng(9)
    builder = GraphBuilder("image", num_steps=6)
    x = builder.add("flat", Flatten(), builder.input("x", (2, 5, 7), encoding="sequence"))
    builder.output("out", builder.add("lif", LIF(0.5), builder.add("fc", Linear(weight=dyadic(rng, (9, 70)), bias=None), x)))
    graph = builder.build()
    data = spike_train(rng, (6, 3, 2, 5, 7), 0.3)
    model = snnir.compile(graph, "numba", cache_dir=numba_cache)
    seen = watch(model)
    found = model.run(data, probes=["fc"])
    expected = snnir.compile(graph, "reference").run(data, probes=["fc"])
    assert model.program.lists_spikes and seen == [True]
    np.testing.assert_array_equal(found.probes["fc"], expected.probes["fc"])


def test_only_event_driven_linears_reading_the_first_sequence_input_list_it(numba_cache):
    """Not a dense Linear, not one behind another node, not one on a direct input (hoisted)."""
    rng = np.random.default_rng(10)
    assert not snnir.compile(fc_graph(rng), "numba", event_driven=False, cache_dir=numba_cache).program.lists_spikes
    assert not snnir.compile(fc_graph(rng, Scale(np.float32(2.0))), "numba", cache_dir=numba_cache).program.lists_spikes
    builder = GraphBuilder("direct", num_steps=4)
    x = builder.input("x", (40,), encoding="direct")
    builder.output("out", builder.add("lif", LIF(0.5), builder.add("fc", Linear(5), x)))
    assert not snnir.compile(builder.build(seed=0), "numba", event_driven=True, cache_dir=numba_cache).program.lists_spikes


def test_streaming_after_a_listed_run_equals_the_run(numba_cache):
    graph = fc_graph(np.random.default_rng(11))
    data = spike_train(np.random.default_rng(12), (12, 2, 40), 0.3)
    model = snnir.compile(graph, "numba", cache_dir=numba_cache)
    seen = watch(model)
    whole = model.run(data)["out"]
    assert seen == [True]
    model.reset(2)
    steps = np.stack([model.step(data[t])["out"] for t in range(12)])
    np.testing.assert_array_equal(steps, whole)
    assert seen == [True]  # steps read their input in place


def test_one_input_feeding_two_linears_of_different_widths_in_parallel(numba_cache):
    """Multi-word masks (130 inputs: three words per row) on the prange driver, read by a Linear of
    13 outputs and one of 64; a batch of 0 runs too."""
    rng = np.random.default_rng(13)
    builder = GraphBuilder("two", num_steps=7)
    x = builder.input("x", (130,), encoding="sequence")
    for name, width in (("a", 13), ("b", 64)):
        fc = builder.add(f"fc_{name}", Linear(weight=dyadic(rng, (width, 130)), bias=dyadic(rng, width)), x)
        builder.output(f"out_{name}", builder.add(f"lif_{name}", LIF(0.75), fc), "membrane")
    graph = builder.build()
    data = spike_train(rng, (7, 8, 130), 0.3)
    model = snnir.compile(graph, "numba", threads=2, cache_dir=numba_cache)
    seen = watch(model)
    found = model.run(data)
    expected = snnir.compile(graph, "reference").run(data)
    assert seen == [True]
    for key in expected:
        np.testing.assert_array_equal(found[key], expected[key], err_msg=key)
    assert model.run(data[:, :0])["out_a"].shape == (7, 0, 13)


def test_only_the_first_input_is_listed(numba_cache):
    """With two sequence inputs, the first (a spike train) is listed and the second (graded) is read
    in place; a graph whose first input is direct lists nothing."""
    rng = np.random.default_rng(14)
    for first, second in (("sequence", "sequence"), ("direct", "sequence")):
        builder = GraphBuilder("two_inputs", num_steps=6)
        a = builder.input("a", (70,), encoding=first)
        b = builder.input("b", (20,), encoding=second)
        fa = builder.add("fa", Linear(weight=dyadic(rng, (9, 70)), bias=None), a)
        fb = builder.add("fb", Linear(weight=dyadic(rng, (9, 20)), bias=None), b)
        lif = builder.add("lif", LIF(0.5), fa)
        builder.connect(fb, lif)
        builder.output("out", lif, "membrane")
        graph = builder.build()
        data = {
            "a": spike_train(rng, (6, 3, 70) if first == "sequence" else (3, 70), 0.3),
            "b": rng.integers(0, 5, size=(6, 3, 20)).astype(np.float32) / 4,
        }
        model = snnir.compile(graph, "numba", event_driven=True, cache_dir=numba_cache)
        seen = watch(model)
        found = model.run(data)
        assert model.program.lists_spikes == (first == "sequence")
        assert seen == ([True] if first == "sequence" else [])
        np.testing.assert_array_equal(found["out"], snnir.compile(graph, "reference").run(data)["out"])
