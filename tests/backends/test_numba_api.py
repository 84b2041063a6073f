"""The numba backend's calling convention: streaming, probes, input errors, options, overrides."""

import re

import numpy as np
import pytest

pytest.importorskip("numba")

import numba  # noqa: E402

import snnir  # noqa: E402
from snnir import GraphBuilder, Linear, Scale  # noqa: E402
from snnir.backends.numba_cpu import NumbaModel, kernels  # noqa: E402
from snnir.errors import GraphError, InputError  # noqa: E402
from snnir.testing import CASES, spike_train  # noqa: E402
from snnir.testing.conformance import state_probes  # noqa: E402


def _both(name, numba_cache, **options):
    graph, data = CASES[name].build()
    return graph, data, snnir.compile(graph, "reference"), snnir.compile(graph, "numba", cache_dir=numba_cache, **options)


def _step_all(model, graph, data, probes=()):
    """Stream ``data`` through step(); sequence inputs give one slice per step, direct ones the same tensor."""
    steps = graph.time.num_steps
    arrays = data if isinstance(data, dict) else {graph.inputs[0]: data}
    batch = next(a.shape[1] if graph.nodes[n].encoding == "sequence" else a.shape[0] for n, a in arrays.items())
    model.reset(batch)
    results = []
    for t in range(steps):
        step_inputs = {n: (a[t] if graph.nodes[n].encoding == "sequence" else a) for n, a in arrays.items()}
        results.append(model.step(step_inputs if isinstance(data, dict) else step_inputs[graph.inputs[0]], probes=probes))
    return results


@pytest.mark.parametrize("name", ["self_delay_and_input_delay", "multi_input_multi_output", "seed_cnn"])
def test_streaming_equals_whole_sequence_run(name, numba_cache):
    graph, data, _, model = _both(name, numba_cache)
    probes = state_probes(graph)
    whole = model.run(data, probes=probes)
    streamed = _step_all(model, graph, data, probes)
    for key in whole:
        np.testing.assert_array_equal(np.stack([r[key] for r in streamed]), whole[key], err_msg=key)
    for key in whole.probes:
        np.testing.assert_array_equal(np.stack([r.probes[key] for r in streamed]), whole.probes[key], err_msg=key)


def test_run_leaves_the_stream_alone_and_reset_restarts_it(numba_cache):
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    model.reset(3)
    first = model.step(data[0])["lif_out"].copy()
    model.run(data)  # a whole-sequence run in between
    second = model.step(data[1])["lif_out"]
    reference.reset(3)
    reference.step(data[0])
    np.testing.assert_array_equal(second, reference.step(data[1])["lif_out"])
    model.reset(3)
    np.testing.assert_array_equal(model.step(data[0])["lif_out"], first)


def test_probes_record_rasters_and_rates(numba_cache):
    graph, data, reference, model = _both("seed_fc", numba_cache)
    found = model.run(data, probes=["lif1", ("lif1", "membrane"), "lif2:spikes"])
    expected = reference.run(data, probes=["lif1", ("lif1", "membrane"), "lif2:spikes"])
    assert set(found.probes) == {"lif1", "lif1:membrane", "lif2"}
    for key in expected.probes:
        np.testing.assert_array_equal(found.probes[key], expected.probes[key])
    rates = found.probes["lif1"].mean(axis=0)  # firing rate per sample and neuron
    np.testing.assert_array_equal(rates, expected.probes["lif1"].mean(axis=0))
    # a probe equal to an output is an independent copy
    both = model.run(data, probes=["lif2"])
    both.probes["lif2"][:] = 7
    assert not np.any(both["lif2_out"] == 7)


def test_predict_matches_reference(numba_cache):
    graph, data, reference, model = _both("seed_cnn", numba_cache)
    np.testing.assert_array_equal(model.predict(data, output="lif3_out"), reference.predict(data, output="lif3_out"))
    np.testing.assert_array_equal(model.predict(data, output="lif3_membrane"), reference.predict(data, output="lif3_membrane"))


def test_num_steps_and_empty_batch(numba_cache):
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    np.testing.assert_array_equal(model.run(data, num_steps=5)["lif_out"], reference.run(data, num_steps=5)["lif_out"])
    empty = model.run(data[:, :0])
    assert empty["lif_out"].shape == reference.run(data[:, :0])["lif_out"].shape == (14, 0, 5)
    model.reset(0)
    assert model.step(data[0, :0])["lif_out"].shape == (0, 5)


BAD_RUN_INPUTS = {
    "wrong shape": lambda x: x[:, :, :3],
    "strings": lambda x: np.full(x.shape, "a"),
    "nan": lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x),
    "inf": lambda x: np.full(x.shape, np.inf),
    "unknown name": lambda x: {"y": x},
    "not an array": lambda x: object(),
}


@pytest.mark.parametrize("bad", list(BAD_RUN_INPUTS))
def test_input_errors_are_the_reference_errors(bad, numba_cache):
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    wrong = BAD_RUN_INPUTS[bad](data)
    with pytest.raises(InputError) as expected:
        reference.run(wrong)
    with pytest.raises(InputError) as found:
        model.run(wrong)
    assert str(found.value) == str(expected.value)
    reference.reset(3)
    model.reset(3)
    with pytest.raises(InputError) as expected:
        reference.step(wrong[0] if isinstance(wrong, np.ndarray) else wrong)
    with pytest.raises(InputError) as found:
        model.step(wrong[0] if isinstance(wrong, np.ndarray) else wrong)
    assert str(found.value) == str(expected.value)


def test_stream_errors_are_the_reference_errors(numba_cache):
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    for backend in (reference, model):
        with pytest.raises(InputError, match="call reset"):
            backend.step(data[0])
    cases = [
        lambda m: m.reset(-1),
        lambda m: m.reset(2.5),
        lambda m: (m.reset(3), m.step(data[0, :2])),  # the batch size changed mid-stream
        lambda m: (m.reset(3), m.step(data[0], probes=["nope"])),
        lambda m: m.run(data, probes=["lif:voltage"]),
        lambda m: m.run(data, num_steps=0),
    ]
    for case in cases:
        with pytest.raises(InputError) as expected:
            case(reference)
        with pytest.raises(InputError) as found:
            case(model)
        assert str(found.value) == str(expected.value)


def test_a_failed_step_changes_no_state(numba_cache):
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    model.reset(3)
    model.step(data[0])
    with pytest.raises(InputError, match="not finite"):
        model.step(np.where(data[1] == 0, np.nan, data[1]).astype(np.float32))
    reference.reset(3)
    reference.step(data[0])
    np.testing.assert_array_equal(model.step(data[1])["lif_membrane"], reference.step(data[1])["lif_membrane"])


def test_step_converts_other_dtypes_and_layouts(numba_cache):
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    model.reset(3)
    reference.reset(3)
    for t, x in enumerate([data[0].astype(np.int64), np.asfortranarray(data[1].astype(np.float64)), data[2].tolist()]):
        np.testing.assert_array_equal(model.step(x)["lif_membrane"], reference.step(x)["lif_membrane"], err_msg=str(t))


def test_step_fast_path_falls_back_for_inputs_it_cannot_read_in_place(numba_cache):
    """step() hands a float32 C-contiguous array straight to the kernel; a read-only, byte-swapped or
    strided one is rejected there (no new compilation) and converted by the shared checks instead.
    Each result is the caller's own: the next step does not overwrite it."""
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    model.reset(3)
    reference.reset(3)
    read_only = data[2].copy()
    read_only.flags.writeable = False
    inputs = [data[0], data[1].astype(">f4"), read_only, np.asfortranarray(data[3]), data[4]]
    kept = []
    for t, x in enumerate(inputs):
        kept.append((model.step(x), reference.step(x)))
    for t, (found, expected) in enumerate(kept):
        np.testing.assert_array_equal(found["lif_membrane"], expected["lif_membrane"], err_msg=str(t))
    assert len(model._module.samples.signatures) == 1


def test_fast_steps_across_record_chunks_keep_every_result(numba_cache, monkeypatch):
    """Fast steps record into rows of a chunk and start a new chunk when one is used up: with
    two rows a chunk, five kept results span three chunks and each still holds its own step."""
    from snnir.backends.numba_cpu import model as numba_model

    monkeypatch.setattr(numba_model, "CHUNK_STEPS", 2)
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    model.reset(3)
    reference.reset(3)
    kept = [(model.step(x), reference.step(x)) for x in data[:5]]
    for t, (found, expected) in enumerate(kept):
        for key in expected.outputs:
            np.testing.assert_array_equal(found[key], expected[key], err_msg=f"{key} at step {t}")
    assert len({id(found["lif_membrane"].base) for found, _ in kept}) == 3


def _same_error(reference, model, call):
    with pytest.raises(InputError) as expected:
        call(reference)
    with pytest.raises(InputError) as found:
        call(model)
    assert str(found.value) == str(expected.value)


def test_non_finite_float32_inputs_raise_the_reference_error(numba_cache):
    """run() reads a ready float32 array in place and tests each sample inside the kernel; step()
    tests the whole step first. A NaN anywhere, even in the last sample or in a step beyond num_steps,
    raises the reference's message, and a failed step leaves the stream as it was. (The prange
    driver's test: test_threads_option_is_applied_and_restored.)"""
    graph, data, reference, model = _both("recurrent_lif", numba_cache)
    for position in (0, -1, data.size // 2):
        bad = data.copy()
        bad.flat[position] = np.nan
        _same_error(reference, model, lambda m: m.run(bad))
        _same_error(reference, model, lambda m: m.run(bad, num_steps=2))
    model.reset(3)
    reference.reset(3)
    model.step(data[0])
    reference.step(data[0])
    bad = data[1].copy()
    bad[-1, -1] = np.inf
    _same_error(reference, model, lambda m: m.step(bad))
    np.testing.assert_array_equal(model.step(data[1])["lif_membrane"], reference.step(data[1])["lif_membrane"])


def test_event_driven_synapses_never_read_rows_of_silent_inputs(numba_cache):
    """Poison the weight row of an input that never spikes: event-driven results stay finite, the
    dense loop multiplies it by zero and gets NaN. (The cost-follows-activity claim, as behaviour.)"""
    builder = GraphBuilder("poison", num_steps=6)
    x = builder.input("x", (5,), encoding="sequence")
    unit = builder.add("unit", Scale(np.float32(1.0)), x)
    builder.output("out", builder.add("fc", Linear(weight=np.ones((3, 5), np.float32), bias=None), unit))
    graph = builder.build()
    data = spike_train(np.random.default_rng(0), (6, 2, 5), 0.5)
    data[:, :, 2] = 0  # input 2 never spikes
    for event_driven, finite in ((True, True), (False, False)):
        model = snnir.compile(graph, "numba", event_driven=event_driven, cache_dir=numba_cache)
        assert model.event_driven == {"fc": event_driven}
        start = int(re.search(r"fc_weight = P\[(\d+):", model.source).group(1))
        model.program.params[start + 2 * 3 : start + 3 * 3] = np.nan  # the row of input 2 in Wᵀ
        assert np.isfinite(model.run(data)["out"]).all() == finite


def test_compiler_chooses_event_driven_synapses_from_the_graph(numba_cache):
    graph, _, _, model = _both("multi_input_multi_output", numba_cache)
    # fa reads a direct input (dense: one BLAS product), fb a sequence input, fc the spikes of a LIF
    assert model.event_driven == {"fa": False, "fb": True, "fc": True}
    assert model.batched == ("fa",)
    assert snnir.compile(graph, "numba", event_driven={"fb": False}, cache_dir=numba_cache).event_driven["fb"] is False
    seed = snnir.compile(CASES["seed_cnn"].build()[0], "numba", cache_dir=numba_cache)
    assert seed.hoisted == ("conv1", "pool1")
    assert seed.event_driven == {"conv1": False, "conv2": True, "fc": True}  # fc reads a Flatten of spikes (keeps zeros)
    with pytest.raises(GraphError, match="not a synapse"):
        snnir.compile(graph, "numba", event_driven={"lif": True})
    with pytest.raises(TypeError, match="event_driven"):
        snnir.compile(graph, "numba", event_driven="yes")


def test_options_are_checked():
    graph = CASES["recurrent_lif"].build()[0]
    with pytest.raises(TypeError, match="no option"):
        snnir.compile(graph, "numba", fastmath=True)
    with pytest.raises(InputError, match="threads"):
        snnir.compile(graph, "numba", threads=0)
    with pytest.raises(InputError, match="NUMBA_NUM_THREADS"):
        snnir.compile(graph, "numba", threads=numba.config.NUMBA_NUM_THREADS + 1)
    with pytest.raises(TypeError, match="parallel"):
        snnir.compile(graph, "numba", parallel="auto")


def test_threads_option_is_applied_and_restored(numba_cache):
    graph, data, reference, _ = _both("seed_cnn", numba_cache)
    model = snnir.compile(graph, "numba", threads=1, parallel=True, cache_dir=numba_cache)
    before = numba.get_num_threads()
    np.testing.assert_array_equal(model.run(data)["lif3_out"], reference.run(data)["lif3_out"])
    assert numba.get_num_threads() == before
    bad = data.copy()
    bad.flat[-1] = np.nan  # the last sample: prange tests each sample inside the kernel
    _same_error(reference, model, lambda m: m.run(bad))


def test_overrides_replace_an_emit_rule(numba_cache):
    def doubled_scale(ctx):
        factor = ctx.per_neuron("factor", ctx.node.factor * 2, ctx.x.layout)
        ctx.call(kernels.scale, ctx.x.expr, factor, ctx.output(ctx.x.layout))

    graph, data = CASES["threshold_node"].build()
    model = snnir.compile(graph, "numba", overrides={"Scale": doubled_scale}, cache_dir=numba_cache)
    found = model.run(data, probes=["s"]).probes["s"]
    np.testing.assert_array_equal(found, snnir.compile(graph, "reference").run(data, probes=["s"]).probes["s"] * 2)


def test_the_model_is_a_compiled_model(numba_cache):
    graph, _, _, model = _both("seed_fc", numba_cache)
    assert isinstance(model, NumbaModel) and isinstance(model, snnir.CompiledModel)
    assert model.backend == "numba" and "numba" in repr(model)
    assert snnir.get_backend("numba").rules.missing() == ()
