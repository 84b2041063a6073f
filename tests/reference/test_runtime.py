"""The shared run/step/probe convention, exercised on the reference backend."""

import numpy as np
import pytest

import snnir
from snnir import InputError, LIF, Linear
from snnir.testing import CASES, state_probes


@pytest.fixture(scope="module")
def multi():
    return CASES["multi_input_multi_output"].build()


@pytest.mark.parametrize("name", ["recurrent_lif", "self_delay_and_input_delay", "multi_input_multi_output", "seed_cnn"])
def test_streaming_steps_equal_the_whole_sequence(name):
    graph, inputs = CASES[name].build()
    model = snnir.compile(graph)
    probes = state_probes(graph)
    whole = model.run(inputs, probes=probes)
    named = inputs if isinstance(inputs, dict) else {graph.inputs[0]: inputs}
    batch = next(iter(whole.outputs.values())).shape[1]
    model.reset(batch)
    for t in range(graph.time.num_steps):
        step_inputs = {n: (a[t] if graph.nodes[n].encoding == "sequence" else a) for n, a in named.items()}
        step = model.step(step_inputs, probes=probes)
        for key, value in step.outputs.items():
            np.testing.assert_array_equal(value, whole[key][t], err_msg=f"{key} at step {t}")
        for key, value in step.probes.items():
            np.testing.assert_array_equal(value, whole.probes[key][t], err_msg=f"{key} at step {t}")


def test_run_does_not_disturb_the_stream(multi):
    graph, inputs = multi
    model = snnir.compile(graph)
    model.reset(3)
    first = model.step({"static": inputs["static"], "stream": inputs["stream"][0]})
    model.run(inputs)
    second = model.step({"static": inputs["static"], "stream": inputs["stream"][1]})
    reference = model.run(inputs)
    np.testing.assert_array_equal(first["lif_membrane"], reference["lif_membrane"][0])
    np.testing.assert_array_equal(second["lif_membrane"], reference["lif_membrane"][1])


def test_num_steps_overrides_and_sequence_length_defines_time(multi):
    graph, inputs = multi
    model = snnir.compile(graph)
    assert model.run(inputs, num_steps=4)["lif_out"].shape[0] == 4
    direct = snnir.Sequential(Linear(2), LIF(0.5), input_shape=(3,), num_steps=6)
    assert snnir.compile(direct).run(np.ones((2, 3)))["spikes"].shape == (6, 2, 2)
    assert snnir.compile(direct).run(np.ones((2, 3)), num_steps=11)["spikes"].shape == (11, 2, 2)


def test_empty_batch_and_batch_of_one():
    graph, inputs = CASES["seed_cnn"].build()
    model = snnir.compile(graph)
    empty = model.run(inputs[:0])
    assert empty["lif3_out"].shape == (8, 0, 10)
    single = model.run(inputs[:1])
    np.testing.assert_array_equal(single["lif3_out"][:, 0], model.run(inputs)["lif3_out"][:, 0])


@pytest.mark.parametrize(
    "inputs, match",
    [
        (np.ones((3, 5)), "the graph has 2 inputs"),
        ({"static": np.ones((3, 5))}, "missing input 'stream'"),
        ({"static": np.ones((3, 5)), "stream": np.ones((9, 3, 3)), "extra": 1}, "unknown input 'extra'"),
        ({"static": np.ones((3, 4)), "stream": np.ones((9, 3, 3))}, r"input 'static' \(direct\): expected shape \[B, 5\], found \[3, 4\]"),
        ({"static": np.ones((3, 5)), "stream": np.ones((3, 3))}, r"expected shape \[T, B, 3\]"),
        ({"static": np.ones((2, 5)), "stream": np.ones((9, 3, 3))}, "disagree on the batch size"),
        ({"static": np.full((3, 5), np.nan), "stream": np.ones((9, 3, 3))}, r"value nan at index \(0, 0\) is not finite"),
        ({"static": np.full((3, 5), 1e300), "stream": np.ones((9, 3, 3))}, r"value 1e\+300 at index \(0, 0\) is not finite \(NaN, inf or beyond float32\)"),
        ({"static": np.array([["a"] * 5] * 3), "stream": np.ones((9, 3, 3))}, "expected real numbers, found dtype <U1"),
    ],
)
def test_bad_inputs_raise_input_errors(multi, inputs, match):
    with pytest.raises(InputError, match=match):
        snnir.compile(multi[0]).run(inputs)


def test_bad_streams_and_probes(multi):
    graph, inputs = multi
    model = snnir.compile(graph)
    with pytest.raises(InputError, match="call reset"):
        model.step({"static": inputs["static"], "stream": inputs["stream"][0]})
    model.reset(3)
    with pytest.raises(InputError, match=r"expected shape \[3, 3\], found \[2, 3\].*batch size is fixed by reset"):
        model.step({"static": inputs["static"], "stream": inputs["stream"][0][:2]})
    with pytest.raises(InputError, match=r"unknown node 'lff' \(did you mean 'lif'\?\)"):
        model.run(inputs, probes=["lff"])
    with pytest.raises(InputError, match=r"node 'fa' \(Linear\) has no 'membrane'"):
        model.run(inputs, probes=["fa:membrane"])
    with pytest.raises(InputError, match="batch_size must be an integer >= 0"):
        model.reset(-1)
    with pytest.raises(InputError, match="num_steps must be a positive integer"):
        model.run(inputs, num_steps=0)


def test_probes_record_values_and_states(multi):
    graph, inputs = multi
    result = snnir.compile(graph).run(inputs, probes=["lif", "cuba:current", ("cuba", "spikes")])
    assert set(result.probes) == {"lif", "cuba:current", "cuba"}
    np.testing.assert_array_equal(result.probes["lif"], result["lif_out"])
    np.testing.assert_array_equal(result.probes["cuba:current"], result["cuba_current"])


def test_predict_reads_out_classes():
    graph, inputs = CASES["seed_cnn"].build()
    model = snnir.compile(graph)
    counts = model.run(inputs)["lif3_out"].sum(0)
    np.testing.assert_array_equal(model.predict(inputs, output="lif3_out"), counts.argmax(-1))
    membrane = model.run(inputs)["lif3_membrane"]
    np.testing.assert_array_equal(model.predict(inputs, output="lif3_membrane"), membrane.max(0).argmax(-1))
    with pytest.raises(InputError, match="unknown output"):
        model.predict(inputs, output="nope")


def test_run_time_errors_name_the_node_and_step():
    graph, inputs = CASES["lif_subtract_next_step"].build()

    def broken_rule(node, input_shape, output_shape):
        from snnir.reference.rules import Stateless

        def fail(x):
            raise FloatingPointError("boom")

        return Stateless(fail, output_shape)

    model = snnir.compile(graph, overrides={"Linear": broken_rule})
    with pytest.raises(FloatingPointError) as caught:
        model.run(inputs)
    assert "while executing node 'fc' (Linear) at step 0" in caught.value.__notes__


def test_a_scalar_input_reads_alike_in_any_dtype():
    """A 0-d input of a scalar-shaped graph becomes a batch of one, float32 or not (the float32 fast
    path of the input checks must not keep it 0-d)."""
    graph = snnir.Sequential(LIF(0.9), input_shape=(), num_steps=3)
    model = snnir.compile(graph, "reference")
    expected = model.run(np.array(0.7))
    np.testing.assert_array_equal(model.run(np.array(0.7, np.float32))["spikes"], expected["spikes"])
    model.reset(1)
    assert model.step(np.array(0.7, np.float32))["spikes"].shape == (1,)


def test_probing_an_output_names_the_node_it_records():
    graph = snnir.load("examples/quickstart_fc.yaml")
    with pytest.raises(InputError, match="probe 'spikes': 'spikes' is an output, already in the result; to probe what it records, name node 'lif2'"):
        snnir.compile(graph).run(np.zeros((1, 1, 28, 28)), probes=["spikes"])


def test_a_torch_tensor_that_requires_grad_is_read_as_its_values():
    torch = pytest.importorskip("torch")
    graph = snnir.load("examples/quickstart_fc.yaml")
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0), requires_grad=True)
    found = snnir.compile(graph).run(x)["spikes"]
    np.testing.assert_array_equal(found, snnir.compile(graph).run(x.detach().numpy())["spikes"])


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_a_near_miss_of_probes_all_says_how_to_write_it_on_every_runtime(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    graph, inputs = CASES["seed_fc"].build()
    model = snnir.compile(graph, backend)
    assert "lif1:membrane" in model.run(inputs, probes="all").probes
    for spelling in ("ALL", "alll", "every", "*"):
        with pytest.raises(InputError, match=r"write probes=\"all\""):
            model.run(inputs, probes=spelling)
