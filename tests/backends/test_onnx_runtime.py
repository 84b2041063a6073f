"""The onnxruntime runner: streaming, exactness beyond dyadic data, files, errors shared with the reference."""

import os

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import snnir  # noqa: E402
from snnir import IF, LI, LIF, BackendUnavailableError, CubaLIF, GraphBuilder, InputError  # noqa: E402
from snnir.backends.onnx_export import Runtime, export_onnx  # noqa: E402
from snnir.testing import CASES, state_probes  # noqa: E402


def _named(graph, inputs):
    return inputs if isinstance(inputs, dict) else {graph.inputs[0]: inputs}


def _stream(model, graph, inputs, steps, probes=()):
    named = _named(graph, inputs)
    batch = next(iter(named.values())).shape[1 if graph.nodes[next(iter(named))].encoding == "sequence" else 0]
    model.reset(batch)
    for t in range(steps):
        yield t, model.step({n: (a[t] if graph.nodes[n].encoding == "sequence" else a) for n, a in named.items()}, probes=probes)


def _assert_equal_results(found, expected, where):
    for key in expected.outputs:
        np.testing.assert_array_equal(found.outputs[key], expected.outputs[key], err_msg=f"{where}: {key}")
    for key in expected.probes:
        np.testing.assert_array_equal(found.probes[key], expected.probes[key], err_msg=f"{where}: probe {key}")


@pytest.mark.parametrize("case_name", list(CASES))
def test_streaming_matches_the_reference_bit_for_bit(case_name):
    graph, inputs = CASES[case_name].build()
    probes = state_probes(graph)
    expected = snnir.compile(graph, "reference").run(inputs, probes=probes)
    model = snnir.compile(graph, "onnx", threads=1)
    for t, result in _stream(model, graph, inputs, graph.time.num_steps, probes):
        for key in expected.outputs:
            np.testing.assert_array_equal(result[key], expected[key][t], err_msg=f"{key} at step {t}")
        for key in expected.probes:
            np.testing.assert_array_equal(result.probes[key], expected.probes[key][t], err_msg=f"probe {key} at step {t}")


NEURONS = {
    **{
        f"lif_{reset}_{timing}": lambda rng, reset=reset, timing=timing: LIF(
            rng.random(7, np.float32) * 1.2 - 0.1,
            threshold=rng.random(7, np.float32) + 0.3,
            reset=reset,
            reset_timing=timing,
            bias=rng.standard_normal(7, np.float32) * 0.1,
            graded_spikes_factor=1.7,
        )
        for reset in ("subtract", "zero", "none")
        for timing in ("next_step", "same_step")
    },
    **{
        f"cuba_{reset}_{timing}": lambda rng, reset=reset, timing=timing: CubaLIF(
            rng.random(7, np.float32), rng.random(7, np.float32), threshold=0.7, reset=reset, reset_timing=timing, bias=0.013
        )
        for reset in ("subtract", "zero", "none")
        for timing in ("next_step", "same_step")
    },
    "if_zero": lambda rng: IF(threshold=0.9, reset="zero"),
    "li": lambda rng: LI(rng.random(7, np.float32), bias=0.3),
}


@pytest.mark.parametrize("neuron_name", list(NEURONS))
def test_neuron_updates_are_bit_identical_on_general_float_data(neuron_name):
    """Non-dyadic β, θ, bias and inputs: any fused multiply-add or reordering would change the last bits."""
    rng = np.random.default_rng(len(neuron_name))
    neuron = NEURONS[neuron_name](rng)
    builder = GraphBuilder("g", num_steps=40)
    node = builder.add("n", neuron, builder.input("x", (7,), encoding="sequence"))
    builder.output("out", node)
    for variable in neuron.state_variables:
        builder.output(f"out_{variable}", node, variable)
    graph = builder.build()
    data = rng.standard_normal((40, 5, 7), np.float32) * np.float32(0.6)
    expected = snnir.compile(graph, "reference").run(data)
    for optimization in ("all", "disable"):
        _assert_equal_results(snnir.compile(graph, "onnx", optimization=optimization).run(data), expected, optimization)


def test_general_float_networks_meet_the_numerics_contract():
    """docs/semantics.md: on non-dyadic graphs spikes agree on >= 99.9 % and membranes within 1e-4."""
    graph = snnir.Sequential(
        snnir.Conv2d(6, 3, padding=1), snnir.AvgPool2d(2), LIF(0.9, threshold=0.5), snnir.Flatten(), snnir.Linear(20),
        snnir.Recurrent(CubaLIF(0.8, 0.9), snnir.Linear(20)), snnir.Linear(5), LIF(0.85),
        input_shape=(2, 8, 8), num_steps=30, seed=3,
    )
    data = np.random.default_rng(0).random((16, 2, 8, 8), np.float32) * 2
    expected = snnir.compile(graph, "reference").run(data)
    found = snnir.compile(graph, "onnx").run(data)
    assert (found["spikes"] == expected["spikes"]).mean() >= 0.999
    np.testing.assert_allclose(found["membrane"], expected["membrane"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["step", "sequence"])
def test_runtime_runs_exported_files_with_run_and_step(mode, tmp_path):
    graph, inputs = CASES["multi_input_multi_output"].build()
    path = export_onnx(graph, tmp_path / "m.onnx", mode, probes=["fa", "lif"])
    runtime = Runtime(path, threads=1)
    assert runtime.mode == mode and runtime.metadata["mode"] == mode
    expected = snnir.compile(graph, "reference").run(inputs, probes=["fa", "lif"])
    _assert_equal_results(runtime.run(inputs, probes=["fa", "lif"]), expected, f"{mode} file, run")
    state = ["lif:membrane", "cuba:current"]
    expected_states = snnir.compile(graph, "reference").run(inputs, probes=state)
    for t, result in _stream(runtime, graph, inputs, 9, probes=["lif", *state]):  # states: per step, always available
        np.testing.assert_array_equal(result["cuba_out"], expected["cuba_out"][t])
        np.testing.assert_array_equal(result.probes["lif"], expected.probes["lif"][t])
        for key in state:
            np.testing.assert_array_equal(result.probes[key], expected_states.probes[key][t])
    with pytest.raises(InputError, match="probe 'fb' is not recorded by .*m.onnx.*probes=\\[...\\] or probes='all'"):
        runtime.run(inputs, probes=["fb"])
    if mode == "sequence":  # a sequence file records states only at its end
        with pytest.raises(InputError, match="probe 'lif:membrane' is not recorded"):
            runtime.run(inputs, probes=["lif:membrane"])


BAD_CALLS = [
    ("run", lambda x: x[:, :, :2], {}),
    ("run", lambda x: {"x": x, "y": x}, {}),
    ("run", lambda x: {"y": x}, {}),
    ("run", lambda x: np.full_like(x, np.nan), {}),
    ("run", lambda x: x.astype(str), {}),
    ("run", lambda x: x, {"num_steps": 0}),
    ("run", lambda x: x, {"num_steps": 50}),
    ("run", lambda x: x, {"probes": ["lif9"]}),
    ("run", lambda x: x, {"probes": ["fc:membrane"]}),
    ("step", lambda x: x[0, :2], {}),
    ("step", lambda x: x[0], {"probes": [3]}),
]


@pytest.mark.parametrize("method, make, kwargs", BAD_CALLS)
def test_input_errors_are_those_of_the_reference(method, make, kwargs, tmp_path):
    graph, inputs = CASES["recurrent_lif"].build()
    export_onnx(graph, tmp_path / "m.onnx", "sequence")
    models = [snnir.compile(graph, "reference"), snnir.compile(graph, "onnx"), Runtime(tmp_path / "m.onnx")]
    messages = []
    for model in models:
        model.reset(3)
        with pytest.raises(InputError) as error:
            getattr(model, method)(make(inputs), **kwargs)
        messages.append(str(error.value))
    assert messages[1] == messages[0] and messages[2] == messages[0]


def test_step_before_reset_and_bad_batch_sizes():
    graph, inputs = CASES["recurrent_lif"].build()
    model = snnir.compile(graph, "onnx")
    with pytest.raises(InputError, match="call reset\\(batch_size\\) first"):
        model.step(inputs[0])
    for bad in (-1, 1.5, True):
        with pytest.raises(InputError, match="batch_size must be an integer"):
            model.reset(bad)


def _rleaky():
    """An RLeaky layer: lif -> rec (delay 1) -> lif, fed by x -> fc."""
    builder = GraphBuilder("rleaky", num_steps=12)
    x = builder.input("x", (6,), encoding="sequence")
    lif = builder.add("lif", LIF(0.75), builder.add("fc", snnir.Linear(5), x))
    builder.connect(lif, builder.add("rec", snnir.Linear(5)), delay=1)
    builder.connect("rec", lif)
    builder.output("lif_out", lif)
    return builder.build(seed=1), (np.random.default_rng(0).random((12, 3, 6)) < 0.4).astype(np.float32)


def test_state_can_be_read_and_restored_to_continue_a_stream():
    graph, inputs = _rleaky()
    whole = snnir.compile(graph, "reference").run(inputs)
    first = snnir.compile(graph, "onnx")
    first.reset(3)
    for t in range(5):
        first.step(inputs[t])
    states = first.get_state()
    assert sorted(states) == ["lif:membrane", "lif[t-1]"]
    second = snnir.compile(graph, "onnx")
    second.set_state(states)
    for t in range(5, 12):
        np.testing.assert_array_equal(second.step(inputs[t])["lif_out"], whole["lif_out"][t])


def test_mismatched_state_tensors_are_input_errors():
    graph, _ = _rleaky()
    model = snnir.compile(graph, "onnx")
    with pytest.raises(InputError, match="no stream state yet"):
        model.get_state()
    good = {"lif:membrane": np.zeros((2, 5)), "lif[t-1]": np.zeros((2, 5))}
    cases = [
        ({**good, "lif:current": np.zeros((2, 5))}, "unknown state 'lif:current'; the model's states are \\['lif:membrane', 'lif\\[t-1\\]'\\]"),
        ({"lif:membrane": np.zeros((2, 5))}, "missing state 'lif\\[t-1\\]'"),
        ({**good, "lif:membrane": np.zeros((2, 4))}, "state 'lif:membrane': expected shape \\[B, 5\\], found \\[2, 4\\]"),
        ({**good, "lif:membrane": np.zeros((3, 5))}, "states disagree on the batch size"),
        ({**good, "lif[t-1]": np.full((2, 5), np.inf)}, "state 'lif\\[t-1\\]': value inf at index \\(0, 0\\) is not finite"),
        ({**good, "lif[t-1]": np.zeros((2, 5), complex)}, "expected real numbers"),
        ([np.zeros((2, 5))], "states must be a mapping"),
    ]
    for states, match in cases:
        with pytest.raises(InputError, match=match):
            model.set_state(states)
    model.set_state(good)
    assert model.batch_size == 2 and model.step(np.ones((2, 6)))["lif_out"].shape == (2, 5)


def test_empty_batches_and_num_steps():
    graph, inputs = CASES["seed_cnn"].build()
    model = snnir.compile(graph, "onnx")
    assert model.run(inputs[:0])["lif3_out"].shape == (8, 0, 10)
    assert model.run(inputs[:0], probes=["conv2"]).probes["conv2"].shape == (8, 0, 6, 4, 4)
    model.reset(0)
    assert model.step(inputs[:0])["lif3_membrane"].shape == (0, 10)
    expected = snnir.compile(graph, "reference").run(inputs, num_steps=11)
    _assert_equal_results(model.run(inputs, num_steps=11), expected, "num_steps=11")
    stream, data = CASES["recurrent_lif"].build()
    expected = snnir.compile(stream, "reference").run(data, num_steps=5)
    _assert_equal_results(snnir.compile(stream, "onnx").run(data, num_steps=5), expected, "truncated sequence")
    predicted = snnir.compile(graph, "onnx").predict(inputs, output="lif3_out")
    np.testing.assert_array_equal(predicted, snnir.compile(graph, "reference").predict(inputs, output="lif3_out"))


def test_options_are_checked():
    graph, _ = CASES["seed_fc"].build()
    with pytest.raises(TypeError, match="threads, optimization, providers and overrides"):
        snnir.compile(graph, "onnx", thread=2)
    with pytest.raises(InputError, match="threads must be an integer"):
        snnir.compile(graph, "onnx", threads=-1)
    with pytest.raises(InputError, match=r"threads must be an integer from 0 \(onnxruntime's default\) to \d+ \(the CPUs here\), found 1000000"):
        snnir.compile(graph, "onnx", threads=10**6)  # would queue a million threads
    with pytest.raises(InputError, match="optimization must be one of"):
        snnir.compile(graph, "onnx", optimization="max")
    with pytest.raises(BackendUnavailableError, match="'NoSuchExecutionProvider' is not available here"):
        snnir.compile(graph, "onnx", providers=["NoSuchExecutionProvider"])
    threads = min(2, os.cpu_count() or 1)
    model = snnir.compile(graph, "onnx", threads=threads, providers=["CPUExecutionProvider"])
    assert model.threads == threads and repr(model).startswith("<OnnxModel backend='onnx'")
