"""``to_snntorch``: every conformance graph becomes an snnTorch model that reproduces the reference bit for bit.

The conformance graphs are dyadic, so snnTorch's float32 arithmetic must give exactly the reference's
values; the golden values are the reference interpreter's, the definition of snnir's semantics.
"""

import copy
import io
import linecache

import numpy as np
import pytest

import snnir
from snnir import LI, LIF, GraphBuilder, Linear, Recurrent, Scale
from snnir.errors import GraphError, UnsupportedNodeError
from snnir.testing import CASES

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from torch import nn  # noqa: E402

from snnir.frontends.snntorch import SnnTorchLoop, from_snntorch, simulate, to_snntorch  # noqa: E402

#: conformance cases snnTorch cannot express, with the reason
GAPS = {"cubalif_bias_per_neuron": "a CubaLIF bias enters after the current decay; Synaptic has no such term"}


def _arguments(graph, inputs):
    return [inputs] if not isinstance(inputs, dict) else [inputs[name] for name in graph.inputs]


def _recurrent_neurons(module):
    return any(type(m) in (snn.RLeaky, snn.RSynaptic) for m in module.modules())


@pytest.mark.parametrize("name", [n for n in CASES if n not in GAPS])
def test_conformance_case_runs_identically_in_snntorch(name):
    graph, inputs = CASES[name].build()
    expected = snnir.compile(graph, "reference").run(inputs)
    module = to_snntorch(graph)
    found = simulate(module, *_arguments(graph, inputs))
    assert set(found) == set(expected.outputs)
    # RLeaky/RSynaptic add the recurrent term after the leak, (β·U + I) + rec, where snnir sums the fan-in
    # first: once decayed membranes need more than float32's 24 bits, the last bit can differ.
    tolerance = 1e-6 if _recurrent_neurons(module) else 0.0
    for key, values in expected.outputs.items():
        np.testing.assert_allclose(found[key].numpy(), values, atol=tolerance, rtol=0, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name", list(GAPS))
def test_declared_gaps_raise(name):
    graph, _ = CASES[name].build()
    with pytest.raises(UnsupportedNodeError, match="CubaLIF"):
        to_snntorch(graph)


@pytest.mark.parametrize("name", [n for n in CASES if n not in GAPS and len(CASES[n].build()[0].inputs) == 1])
def test_conformance_case_survives_the_round_trip(name):
    graph, inputs = CASES[name].build()
    source = graph.nodes[graph.inputs[0]]
    again = from_snntorch(to_snntorch(graph), source.shape, graph.time.num_steps, encoding=source.encoding)
    expected = snnir.compile(graph, "reference").run(inputs)
    found = snnir.compile(again, "reference").run(inputs)
    # A quantity recorded twice (two outputs, or an LI's value and membrane) comes back as one output; the
    # last neuron's spikes and membrane are always recorded, so outputs may also be added.
    def quantity(key):
        source, record = graph.output_source(key), graph.nodes[key].record
        return source, "value" if record == "spikes" or isinstance(graph.nodes[source], snnir.LI) else record

    kept = {quantity(k) for k in expected if k in found}
    assert all(quantity(k) in kept for k in expected if k not in found)
    for key in expected:
        if key in found:
            np.testing.assert_array_equal(found[key], expected[key], err_msg=f"{name}: {key}")


def test_recurrent_macro_becomes_rleaky():
    rng = np.random.default_rng(0)
    synapse = Linear(weight=rng.integers(-4, 4, (5, 5)) / 8, bias=np.full(5, 0.125))
    graph = snnir.Sequential(Linear(5), Recurrent(LIF(0.75), synapse), input_shape=(3,), num_steps=6, encoding="sequence")
    back = to_snntorch(graph)
    assert type(back) is nn.Sequential and type(back[1]) is snn.RLeaky
    np.testing.assert_array_equal(back[1].recurrent.bias.detach().numpy(), synapse.bias)


def test_a_synapse_delayed_after_it_keeps_snnir_timing():
    # synapse -> neuron delayed: its bias arrives from step 1 on, where RLeaky's would arrive at step 0
    builder = GraphBuilder(num_steps=6)
    x = builder.input("x", (3,), encoding="sequence")
    lif = builder.add("lif", LIF(0.75), builder.add("fc", Linear(5), x))
    builder.connect(builder.add("rec", Linear(5, bias=np.full(5, 0.125)), lif), lif, delay=1)
    builder.output("spikes", lif)
    graph = builder.build(seed=0)
    back = to_snntorch(graph)
    assert isinstance(back, SnnTorchLoop) and type(back.lif) is snn.Leaky
    inputs = np.random.default_rng(1).integers(0, 2, (6, 2, 3)).astype(np.float32)
    expected = snnir.compile(graph, "reference").run(inputs)
    np.testing.assert_array_equal(simulate(back, inputs)["spikes"].numpy(), expected["spikes"])


def test_forms():
    graph, _ = CASES["seed_fc"].build()  # a chain, recording inner layers too
    with pytest.raises(GraphError, match="cannot be an nn.Sequential"):
        to_snntorch(graph, form="sequential")
    chain, _ = CASES["lif_subtract_next_step"].build()
    assert type(to_snntorch(chain)) is nn.Sequential
    assert isinstance(to_snntorch(chain, form="loop"), SnnTorchLoop)
    with pytest.raises(GraphError, match="form"):
        to_snntorch(chain, form="unrolled")


def test_lazy_graphs_are_refused():
    lazy = snnir.Sequential(Linear(4), LIF(0.9), input_shape=(3,), materialize=False)
    with pytest.raises(GraphError, match="materialize"):
        to_snntorch(lazy)


def test_loop_module_copies_and_reloads_its_state():
    # snnTorch neurons hold their surrogate as a closure, so whole modules do not pickle; state dicts do
    graph, inputs = CASES["self_delay_and_input_delay"].build()
    module = to_snntorch(graph)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    reloaded = to_snntorch(graph)
    reloaded.load_state_dict(torch.load(buffer))
    expected = simulate(module, inputs)
    for other in (reloaded, copy.deepcopy(module)):
        found = simulate(other, inputs)
        assert all(torch.equal(found[k], expected[k]) for k in expected)


def test_generated_source_is_in_linecache():
    graph, _ = CASES["multi_input_multi_output"].build()
    module = to_snntorch(graph)
    filename = module._forward.__code__.co_filename
    assert linecache.getline(filename, 1).startswith("def forward(self, static, stream_all):")
    assert module.output_names == list(graph.outputs)


def test_simulate_needs_a_converted_module():
    with pytest.raises(snnir.InputError):
        simulate(nn.Sequential(nn.Linear(2, 2)), np.zeros((1, 2), np.float32))


def test_builder_graph_with_every_stateless_layer_round_trips():
    builder = GraphBuilder(num_steps=5)
    x = builder.input("x", (2, 8, 8))
    last = builder.chain(
        x,
        ("conv", snnir.Conv2d(4, 3, padding=1)),
        ("sum", snnir.SumPool2d(2)),
        ("avg", snnir.AvgPool2d(2, padding=1)),
        ("drop", snnir.Dropout(0.25)),
        ("flat", snnir.Flatten()),
        ("gain", snnir.Scale(0.5)),
        ("spike", snnir.Threshold(0.25, surrogate="fast_sigmoid")),
        ("fc", Linear(3)),
        ("lif", LIF(0.5)),
    )
    builder.output("spikes", last)
    graph = builder.build(seed=3)
    back = to_snntorch(graph)
    assert [type(m).__name__ for m in back] == ["Conv2d", "AvgPool2d", "AvgPool2d", "Dropout", "Flatten", "Scale", "Threshold", "Linear", "Leaky"]
    again = from_snntorch(back, (2, 8, 8), 5)
    assert list(again.nodes) == ["x", "conv", "sum", "avg", "drop", "flat", "gain", "spike", "fc", "lif", "spikes", "membrane"]
    for name in list(again.nodes)[1:-2]:
        assert again.nodes[name].equals(graph.nodes[name]), name


class AnyLength(nn.Module):
    """A sequence model whose loop runs as many steps as its input holds."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(10, 6)
        self.lif1 = snn.Leaky(beta=0.8)

    def forward(self, x):
        mem, records = self.lif1.reset_mem(), []
        for step in range(x.shape[0]):
            spk, mem = self.lif1(self.fc1(x[step]), mem)
            records.append(spk)
        return torch.stack(records)


@pytest.mark.parametrize("steps", [5, 20])
def test_exported_loop_runs_as_many_steps_as_the_sequence_holds(steps):
    net = AnyLength()
    back = to_snntorch(from_snntorch(net, (10,), 10, encoding="sequence"))
    x = (torch.rand(steps, 3, 10, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with torch.no_grad():
        expected = net(x)  # snnTorch's own forward
    assert expected.shape[0] == steps
    assert torch.equal(back(x), expected)
    assert torch.equal(simulate(back, x)["spikes"], expected)


def test_an_exported_sequential_runs_as_many_steps_as_the_sequence_holds():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 6), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    back = to_snntorch(from_snntorch(net, (10,), 10, encoding="sequence"))
    x = (torch.rand(20, 3, 10, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with torch.no_grad():
        expected = torch.stack([net(x[t])[0] for t in range(20)])  # snnTorch, stepped over the whole input
    assert torch.equal(simulate(back, x)["spikes"], expected)
    assert torch.equal(simulate(back, x, num_steps=4)["spikes"], expected[:4])
    with pytest.raises(snnir.InputError, match="holds 20 steps"):
        simulate(back, x, num_steps=21)


def test_sequence_inputs_of_different_lengths_are_refused():
    builder = GraphBuilder(num_steps=4)
    a, b = builder.input("a", (3,), encoding="sequence"), builder.input("b", (2,), encoding="sequence")
    lif = builder.add("lif", LIF(0.75), builder.add("fa", Linear(4), a))
    builder.connect(builder.add("fb", Linear(4), b), lif)
    builder.output("spikes", lif)
    back = to_snntorch(builder.build(seed=0))
    ok = back(torch.ones(6, 2, 3), torch.ones(6, 2, 2))
    assert ok[0].shape == (6, 2, 4)
    with pytest.raises(snnir.InputError, match=r"disagree on the number of steps: \{'a': 6, 'b': 5\}"):
        back(torch.ones(6, 2, 3), torch.ones(5, 2, 2))


def test_a_direct_input_keeps_the_graph_steps():
    graph = snnir.Sequential(Linear(4), LIF(0.75), input_shape=(3,), num_steps=6)
    back = to_snntorch(graph, form="loop")
    assert graph.nodes[graph.inputs[0]].encoding == "direct"
    assert "range(self.num_steps)" in back.code
    assert simulate(back, np.ones((2, 3), np.float32))["spikes"].shape == (6, 2, 4)


@pytest.mark.parametrize(
    ("make", "children"),
    [
        (lambda: nn.Sequential(nn.Linear(10, 6), snn.Leaky(beta=0.8, init_hidden=True, output=True)), ["0", "1"]),
        (lambda: nn.Sequential(nn.Linear(10, 6), nn.Identity(), snn.Leaky(beta=0.8, init_hidden=True, output=True)), ["0", "2"]),
        (lambda: nn.Sequential(nn.Linear(10, 6), snn.RLeaky(beta=0.8, linear_features=6, init_hidden=True, output=True)), ["0", "1"]),
    ],
)
def test_round_tripped_sequential_keeps_child_names_and_loads_the_state_dict(make, children):
    torch.manual_seed(0)
    net = make()
    back = to_snntorch(from_snntorch(net, (10,), 5))
    assert [name for name, _ in back.named_children()] == children
    fresh = make()
    fresh.load_state_dict(back.state_dict())  # strict, both ways
    back.load_state_dict(net.state_dict())
    x = torch.rand(3, 10, generator=torch.Generator().manual_seed(1)) * 2
    assert torch.equal(simulate(back, x)["spikes"], simulate(net_as_converted(net), x)["spikes"])


def net_as_converted(net):
    """``net`` with the spec simulate() reads, to step it the same way."""
    net.snnir_spec = {"form": "sequential", "num_steps": 5, "encoding": "direct", "outputs": {"spikes": 0}}
    return net


def test_nested_sequential_children_keep_node_names():
    net = nn.Sequential(nn.Sequential(nn.Linear(10, 6)), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    back = to_snntorch(from_snntorch(net, (10,), 5))
    assert [name for name, _ in back.named_children()] == ["fc1", "lif1"]  # '0.0' is no child name


def _loop_graph(encoding):
    """A direct or sequence graph that to_snntorch turns into a time-loop module (it records an inner layer)."""
    builder = GraphBuilder(num_steps=6)
    x = builder.input("x", (3,), encoding=encoding)
    lif = builder.add("lif", LIF(0.75), builder.add("fc", Linear(weight=np.full((4, 3), 0.5)), x))
    builder.output("spikes", lif)
    builder.output("fc_out", "fc")
    return builder.build()


@pytest.mark.parametrize("encoding", ["direct", "sequence"])
@pytest.mark.parametrize("steps", [2, 6, 9])
def test_simulate_runs_a_loop_module_for_num_steps_as_snnir_runs_do(encoding, steps):
    graph = _loop_graph(encoding)
    back = to_snntorch(graph)
    assert isinstance(back, SnnTorchLoop)
    x = np.random.default_rng(0).integers(0, 3, (9, 2, 3) if encoding == "sequence" else (2, 3)).astype(np.float32)
    expected = snnir.compile(graph, "reference").run(x, num_steps=steps)
    found = simulate(back, x, num_steps=steps)
    for key in expected.outputs:
        np.testing.assert_array_equal(found[key].numpy(), expected[key], err_msg=key)
    assert back.num_steps == 6  # the module's own step count is left as it was


@pytest.mark.parametrize("form", ["sequential", "loop"])
def test_simulate_refuses_num_steps_snnir_runs_refuse(form):
    chain = snnir.Sequential(Linear(4), LIF(0.75), input_shape=(3,), encoding="sequence")
    back = to_snntorch(_loop_graph("sequence") if form == "loop" else chain)
    x = np.ones((5, 2, 3), np.float32)
    assert back.snnir_spec["form"] == form
    with pytest.raises(snnir.InputError, match="sequence input 'x' holds 5 steps"):
        simulate(back, x, num_steps=6)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(snnir.InputError, match="num_steps must be a positive integer"):
            simulate(back, x, num_steps=bad)
    with pytest.raises(snnir.InputError, match="zero steps"):
        simulate(back, np.ones((0, 2, 3), np.float32))


@pytest.mark.parametrize("delay", [1, 2])
def test_a_delayed_direct_input_survives_the_round_trip(delay):
    # The input tensor is the same object at every step: the loop keeps a per-step clone of it for the delayed
    # read, so that from_snntorch's trace sees which step's input each read is.
    builder = GraphBuilder(num_steps=5)
    x = builder.input("x", (3,))
    fc = builder.add("fc", Linear(weight=np.full((2, 3), 0.5)))
    builder.connect(x, fc, delay=delay)
    builder.output("spikes", builder.add("lif", LIF(0.5), fc))
    graph = builder.build()
    again = from_snntorch(to_snntorch(graph), (3,), 5)
    assert [(e.src, e.dst, e.delay) for e in again.edges if e.dst == "fc"] == [("x", "fc", delay)]
    inputs = np.ones((2, 3), np.float32)
    expected = snnir.compile(graph, "reference").run(inputs)["spikes"]
    np.testing.assert_array_equal(snnir.compile(again, "reference").run(inputs)["spikes"], expected)


@pytest.mark.parametrize("into", ["neuron", "layer"])
def test_a_delay_the_trace_cannot_see_is_refused_naming_the_cause(into):
    # a delay of num_steps: the exported loop's history variable stays at its initial zeros for the whole trace
    builder = GraphBuilder(num_steps=2)
    x = builder.input("x", (3,), encoding="sequence")
    lif = builder.add("lif", LIF(0.5), builder.add("fc", Linear(weight=np.full((2, 3), 0.5)), x))
    out = lif if into == "neuron" else builder.add("scale", Scale(2.0))
    builder.connect(builder.add("rec", Scale(-0.5), lif) if into == "neuron" else lif, out, delay=2)
    builder.output("out", out)
    module = to_snntorch(builder.build())
    with pytest.raises(UnsupportedNodeError, match="reaches back num_steps or more steps"):
        from_snntorch(module, (3,), 2, encoding="sequence")
    longer = from_snntorch(module, (3,), 3, encoding="sequence")  # a longer trace sees the delay at work
    assert [e.delay for e in longer.edges if e.delay] == [2]


@pytest.mark.parametrize("last", [False, True])
def test_an_li_feeding_a_layer_round_trips(last):
    """to_snntorch writes an LI as a Leaky without reset whose membrane is the value; from_snntorch reads that
    back as the LI, also when it is the last neuron of the loop (its spikes are then not recorded)."""
    builder = GraphBuilder(num_steps=5)
    x = builder.input("x", (3,), encoding="sequence")
    li = builder.add("li1", LI(0.5, bias=0.25), builder.add("fc1", Linear(weight=np.full((4, 3), 0.5, np.float32)), x))
    fc2 = builder.add("fc2", Linear(weight=np.full((2, 4), 0.75, np.float32)), li)
    builder.output("out", fc2 if last else builder.add("lif", LIF(0.5), fc2))
    graph = builder.build()
    again = from_snntorch(to_snntorch(graph), (3,), 5, encoding="sequence")
    assert again.nodes["li1"].kind == "LI"
    inputs = (np.random.default_rng(1).random((5, 2, 3)) < 0.5).astype(np.float32)
    expected = snnir.compile(graph, "reference").run(inputs)["out"]
    assert np.array_equal(snnir.compile(again, "reference").run(inputs)["out"], expected)
