"""The compiled torch model: dtypes, streaming, continued runs, hoisting, write-back, errors."""

import numpy as np
import pytest

import snnir
from snnir import LIF, Conv2d, Flatten, GraphBuilder, Linear, MaxPool2d, Sequential
from snnir.errors import InputError, UnsupportedNodeError
from snnir.testing import CASES, assert_matches_reference, state_probes

torch = pytest.importorskip("torch")
from snnir.backends.pytorch import TorchModel, fit  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")

STREAM_CASES = list(CASES)  # delay-free graphs take execution.single_step, the others the plan


@pytest.mark.parametrize("case_name", list(CASES))
def test_float64_matches_reference(case_name):
    # Products with beta add bits every step, so float64 cannot be bit-identical to the float32 reference.
    graph, inputs = CASES[case_name].build()
    probes = state_probes(graph)
    expected = snnir.compile(graph, "reference").run(inputs, probes=probes)
    found = snnir.compile(graph, "torch", dtype=torch.float64).run(inputs, probes=probes)
    for key in expected:
        np.testing.assert_allclose(found[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    for key in expected.probes:
        np.testing.assert_allclose(found.probes[key], expected.probes[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_float32_conformance_through_the_shared_helper():
    assert_matches_reference(CASES["seed_cnn"], "torch", dtype=torch.float32)


def test_compile_returns_a_module_following_the_inference_convention():
    graph, inputs = CASES["seed_cnn"].build()
    model = snnir.compile(graph, "torch")
    assert isinstance(model, torch.nn.Module) and isinstance(model, snnir.CompiledModel) and isinstance(model, TorchModel)
    outputs = model(torch.from_numpy(inputs))
    assert list(outputs) == list(graph.outputs)
    assert all(isinstance(v, torch.Tensor) and v.shape[:2] == (graph.time.num_steps, 3) for v in outputs.values())
    np.testing.assert_array_equal(model.predict(inputs, output="lif3_out"), snnir.compile(graph, "reference").predict(inputs, output="lif3_out"))


@pytest.mark.parametrize("case_name", STREAM_CASES)
def test_streaming_equals_whole_sequence(case_name):
    graph, inputs = CASES[case_name].build()
    model = snnir.compile(graph, "torch")
    probes = state_probes(graph)
    whole = model.run(inputs, probes=probes)
    named = inputs if isinstance(inputs, dict) else {graph.inputs[0]: inputs}
    batch = next(iter(named.values())).shape[1 if graph.nodes[next(iter(named))].encoding == "sequence" else 0]
    model.reset(batch)
    for t in range(graph.time.num_steps):
        step_inputs = {n: (a[t] if graph.nodes[n].encoding == "sequence" else a) for n, a in named.items()}
        result = model.step(step_inputs, probes=probes)
        for key in whole:
            np.testing.assert_array_equal(result[key], whole[key][t], err_msg=f"{key} at step {t}")
        for key in whole.probes:
            np.testing.assert_array_equal(result.probes[key], whole.probes[key][t], err_msg=f"probe {key} at step {t}")


@pytest.mark.parametrize("case_name", ["recurrent_lif", "self_delay_and_input_delay", "seed_fc", "recurrent_cubalif_zero"])
def test_a_run_continues_from_its_returned_state(case_name):
    graph, inputs = CASES[case_name].build()
    model = snnir.compile(graph, "torch")
    named = {k: torch.from_numpy(v) for k, v in (inputs if isinstance(inputs, dict) else {graph.inputs[0]: inputs}).items()}
    steps = graph.time.num_steps
    whole = model(named, steps)
    cut = steps // 2 - 1

    def part(start, stop):
        return {n: (v[start:stop] if graph.nodes[n].encoding == "sequence" else v) for n, v in named.items()}

    first, state = model(part(0, cut), cut, return_state=True)
    second = model(part(cut, steps), steps - cut, state=state)
    for key in whole:
        assert torch.equal(torch.cat((first[key], second[key])), whole[key]), key


def test_time_invariant_layers_run_once_and_stateless_layers_fold_time():
    graph = snnir.load("examples/quickstart_cnn.yaml")
    model = snnir.compile(graph, "torch")
    calls = {}
    for name in ("conv1", "pool1", "conv2", "fc1"):
        model.layer(name).register_forward_hook(lambda module, args, out, name=name: calls.setdefault(name, []).append(args[0].shape[0]))
    model(torch.rand(4, 1, 28, 28))
    steps = graph.time.num_steps
    assert calls == {"conv1": [4], "pool1": [4], "conv2": [steps * 4], "fc1": [steps * 4]}


def test_dropout_draws_fresh_masks_per_step_while_training_and_is_off_in_run():
    graph = Sequential(Linear(6), snnir.Dropout(0.5), LIF(0.9), input_shape=(4,), num_steps=6, outputs={"drive": "membrane"})
    model = snnir.compile(graph, "torch")
    x = torch.ones(2, 4)
    membranes = model(x)["drive"]
    increments = membranes[1:] - 0.9 * membranes[:-1]
    assert not torch.allclose(increments[0], increments[1])  # masks differ between steps
    np.testing.assert_array_equal(model.run(x.numpy())["drive"], snnir.compile(graph, "reference").run(x.numpy())["drive"])


def test_trained_parameters_are_written_back_and_run_in_the_reference(tmp_path):
    graph, inputs = CASES["seed_fc"].build()
    model = snnir.compile(graph, "torch")
    targets = np.arange(len(inputs)) % 4
    before = np.array(graph.nodes["lif2"].beta)
    fit(model, (inputs, targets), epochs=3, batch_size=3, loss="ce_count_loss", lr=0.05, output="lif2_out", progress=False)
    trained = model.to_graph()
    assert not np.array_equal(trained.nodes["lif2"].beta, before), "the learned beta was not written back"
    np.testing.assert_array_equal(trained.nodes["fc1"].weight, model.layer("fc1").weight.detach().numpy())
    path = snnir.save(trained, tmp_path / "trained.snnir")
    reloaded = snnir.load(path)
    ours = model.run(inputs, probes=state_probes(graph))
    theirs = snnir.compile(reloaded, "reference").run(inputs, probes=state_probes(graph))
    for key in ours:  # the contract for general float32 graphs (docs/semantics.md)
        if key.endswith("_out"):
            assert (ours[key] == theirs[key]).mean() >= 0.999, key
        else:
            np.testing.assert_allclose(ours[key], theirs[key], atol=1e-4, err_msg=key)


def test_float64_model_keeps_float64_parameters_and_outputs():
    graph, inputs = CASES["recurrent_lif"].build()
    model = snnir.compile(graph, "torch", dtype=torch.float64, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert all(v.dtype == torch.float64 for v in model(torch.from_numpy(inputs)).values())
    assert model.run(inputs)["lif_out"].dtype == np.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    graph, inputs = CASES["seed_cnn"].build()
    cpu = snnir.compile(graph, "torch").run(inputs, probes=state_probes(graph))
    gpu = snnir.compile(graph, "torch", device="cuda").run(inputs, probes=state_probes(graph))
    for key in cpu:
        np.testing.assert_array_equal(cpu[key], gpu[key])


def test_input_errors_are_those_of_every_backend():
    graph, inputs = CASES["seed_cnn"].build()
    torch_model, reference = snnir.compile(graph, "torch"), snnir.compile(graph, "reference")
    for bad in (inputs[:, :, :5], np.full_like(inputs, np.nan), {"y": inputs}):
        with pytest.raises(InputError) as ours:
            torch_model.run(bad)
        with pytest.raises(InputError) as theirs:
            reference.run(bad)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(InputError, match="expected shape"):
        torch_model(torch.zeros(3, 1, 14))
    with pytest.raises(InputError, match="call reset"):
        snnir.compile(graph, "torch").step(inputs)
    with pytest.raises(InputError, match="unknown node"):
        torch_model.run(inputs, probes=["lif9"])
    with pytest.raises(UnsupportedNodeError, match="float32 or float64"):
        snnir.compile(graph, "torch", dtype=torch.float16)


def test_override_rules_replace_a_lowering_and_errors_name_the_node():
    graph, inputs = CASES["seed_fc"].build()

    class Broken(torch.nn.Module):
        stateful = False

        def forward(self, x):
            raise RuntimeError("boom")

    model = snnir.compile(graph, "torch", overrides={Linear: lambda node, i, o: Broken()})
    with pytest.raises(RuntimeError, match="boom") as error:
        model.run(inputs)
    assert any("while executing node 'fc1' (Linear)" in note for note in error.value.__notes__)
    with pytest.raises(UnsupportedNodeError, match="not a node kind"):
        snnir.compile(graph, "torch", overrides={"Nope": lambda *a: None})


def test_node_names_that_are_not_identifiers_lower_fine():
    builder = GraphBuilder(num_steps=3)
    x = builder.input("in.put", (3,), encoding="sequence")
    builder.output("out", builder.add("lif 1", LIF(0.5), builder.add("fc.1", Linear(weight=np.eye(3, dtype=np.float32)), x)))
    graph = builder.build()
    data = np.ones((3, 2, 3), np.float32)
    np.testing.assert_array_equal(snnir.compile(graph, "torch").run(data)["out"], snnir.compile(graph, "reference").run(data)["out"])


def test_seed_cnn_layers_keep_snntorch_defaults():
    graph = Sequential(Conv2d(8, 5), MaxPool2d(2), LIF(0.9), Flatten(), Linear(10), LIF(0.9), input_shape=(1, 28, 28), num_steps=3)
    model = snnir.compile(graph, "torch")
    assert model(torch.rand(2, 1, 28, 28))["spikes"].shape == (3, 2, 10)


@pytest.mark.parametrize("case_name", ["seed_cnn", "recurrent_cubalif_zero", "lif_bias_graded", "li_readout", "threshold_node"])
def test_an_untrained_model_writes_back_the_very_same_graph(case_name):
    from snnir.testing import assert_graph_equal

    graph, _ = CASES[case_name].build()
    assert_graph_equal(snnir.compile(graph, "torch").to_graph(), graph)
    assert_graph_equal(snnir.compile(graph, "torch", dtype=torch.float64).to_graph(), graph)


def test_inference_switches_the_training_mode_only_where_a_layer_reads_it():
    """run() and step() infer in eval mode and leave the module's own mode as it was; they switch the
    mode only where it matters (Dropout, or a user rule's module, which may read it)."""
    plain = snnir.compile(Sequential(Linear(6), LIF(0.9), input_shape=(4,), num_steps=3), "torch")
    switched = []
    for layer in plain.layers.values():  # each would be called by any switch of the model or of itself
        layer.train = lambda mode=True: switched.append(mode)  # type: ignore[method-assign]
    plain.run(np.ones((2, 4), np.float32))
    plain.reset(2)
    plain.step(np.ones((2, 4), np.float32))
    assert plain.training and switched == []

    class ModeReader(torch.nn.Module):  # a user's lowering: no uses_training_mode attribute
        stateful = False
        seen: list = []

        def forward(self, x):
            ModeReader.seen.append(self.training)
            return x

    graph = Sequential(Linear(6), snnir.Scale(2.0), LIF(0.9), input_shape=(4,), num_steps=3)
    model = snnir.compile(graph, "torch", overrides={snnir.Scale: lambda node, shape_in, shape_out: ModeReader()})
    model.run(np.ones((2, 4), np.float32))
    model.reset(2)
    model.step(np.ones((2, 4), np.float32))
    assert ModeReader.seen and not any(ModeReader.seen) and model.training
    model(torch.ones(2, 4))
    assert ModeReader.seen[-1] is True


def test_to_graph_keeps_user_modules_without_parameters_and_refuses_to_drop_trained_ones():
    """A user's module need not define to_node when it has nothing to write back; one with trainable
    parameters must, or to_graph would silently return the untrained node."""

    class Doubling(torch.nn.Module):  # a plain module: no to_node at all
        stateful = False

        def forward(self, x):
            return 2 * x

    class Gain(torch.nn.Module):
        stateful = False

        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.ones(6))

        def forward(self, x):
            return x * self.gain

    graph = Sequential(Linear(6), snnir.Scale(2.0), LIF(0.9), input_shape=(4,), num_steps=3)
    plain = snnir.compile(graph, "torch", overrides={snnir.Scale: lambda node, shape_in, shape_out: Doubling()})
    assert plain.to_graph().nodes["scale1"].factor == 2.0
    trained = snnir.compile(graph, "torch", overrides={snnir.Scale: lambda node, shape_in, shape_out: Gain()})
    with pytest.raises(UnsupportedNodeError, match=r"node 'scale1': Gain has trainable parameters \(gain\) but no to_node"):
        trained.to_graph()


def test_inference_turns_off_a_dropout_left_in_training_mode_in_an_eval_model():
    graph = Sequential(Linear(6), snnir.Dropout(0.5), LIF(0.9), input_shape=(4,), num_steps=6, outputs={"drive": "membrane"})
    model = snnir.compile(graph, "torch").eval()
    dropout = next(layer for layer in model.layers.values() if isinstance(layer, torch.nn.Module) and getattr(layer, "p", None) == 0.5)
    dropout.train()
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(model.run(x)["drive"], snnir.compile(graph, "reference").run(x)["drive"])
    assert dropout.training and not model.training


def test_a_device_torch_cannot_use_is_an_input_error_naming_it():
    graph, _ = CASES["seed_fc"].build()
    with pytest.raises(InputError, match=r"device='bogus': torch cannot place the model there \(Expected one of cpu"):
        snnir.compile(graph, "torch", device="bogus")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match=r"device='cuda:0': torch cannot place the model there"):
            snnir.compile(graph, "torch", device="cuda:0")


@pytest.mark.parametrize("name", ["training", "forward", "cuda", "_modules", "layers"])
def test_node_names_that_are_module_attributes(name):
    """Any valid node name lowers (a torch module attribute name used to crash add_module), and
    to_snntorch exports it."""
    from snnir.frontends.snntorch import to_snntorch

    builder = snnir.GraphBuilder("names", num_steps=4)
    builder.output("out", builder.add("lif", snnir.LIF(0.5), builder.add(name, snnir.Linear(3), builder.input("x", (5,)))))
    graph = builder.build(seed=0)
    x = np.random.default_rng(0).random((2, 5)).astype(np.float32)
    model = snnir.compile(graph, "torch")
    np.testing.assert_array_equal(model.run(x)["out"], snnir.compile(graph, "reference").run(x)["out"])
    assert model.to_graph().nodes[name].kind == "Linear"
    to_snntorch(graph)
    with pytest.raises(KeyError, match=r"no layer 'lif1' \(did you mean 'lif'\?\)"):
        model.layer("lif1")


def test_unknown_compile_options_name_the_closest():
    with pytest.raises(TypeError, match=r"the 'torch' backend has no option 'evnt_driven' \(did you mean 'event_driven'\?\)"):
        snnir.compile(snnir.load("examples/quickstart_fc.yaml"), "torch", evnt_driven=True)


def test_a_state_to_continue_from_is_checked():
    """state= must be what return_state=True gave for this batch: a misspelt or missing entry used to
    restart that part from zero, and a recurrent graph broadcast a batch of 5 over an input of 1."""
    graph = CASES["recurrent_lif"].build()[0]
    model = snnir.compile(graph, "torch")
    x = torch.rand(4, 5, *graph.nodes[graph.inputs[0]].shape, generator=torch.Generator().manual_seed(0))
    _, state = model(x, return_state=True)
    model(x, state=state)  # the state as returned: accepted
    neuron = next(iter(state["neurons"]))
    cases = [
        ([1, 2], "expected a dict with 'neurons'"),
        ({**state, "neuron": {}}, "expected a dict with 'neurons'"),
        ({"neurons": {}, "history": state["history"]}, f"neurons holds \\[\\], expected \\['{neuron}'"),
        ({"neurons": {neuron: {"membrain": 0}}, "history": state["history"]}, f"neurons\\['{neuron}'\\] holds \\['membrain'\\]"),
    ]
    for bad, match in cases:
        with pytest.raises(InputError, match=match):
            model(x, state=bad)
    with pytest.raises(InputError, match=r"is \[5, .*\], expected a tensor of shape \[1, "):
        model(x[:, :1], state=state)
