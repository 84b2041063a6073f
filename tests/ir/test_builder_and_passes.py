"""Builders (Sequential, GraphBuilder, Recurrent) and the shared passes (hoisting, dead nodes, folding)."""

import numpy as np
import pytest

import snnir
from snnir import (
    IF, LI, LIF, Conv2d, CubaLIF, Dropout, Flatten, GraphBuilder, GraphError, Linear, MaxPool2d, Recurrent, Scale,
)
from snnir.passes import fold_scales, live_nodes, remove_dead_nodes, time_invariant_nodes
from snnir.testing import CASES, assert_graph_equal


def test_sequential_names_outputs_and_sizes():
    graph = snnir.Sequential(Conv2d(8, 5), MaxPool2d(2), LIF(0.9), Flatten(), Linear(10), LIF(0.9), input_shape=(1, 28, 28))
    assert list(graph.nodes) == ["x", "conv1", "pool1", "lif1", "flatten1", "fc1", "lif2", "spikes", "membrane"]
    assert graph.nodes["fc1"].weight.shape == (10, 1152)
    assert graph.nodes["membrane"].record == "membrane"
    readout = snnir.Sequential(Linear(3), LI(0.9), input_shape=(2,))
    assert readout.outputs == ("membrane",)
    plain = snnir.Sequential(Linear(3), input_shape=(2,), outputs={"y": "value"})
    assert plain.outputs == ("y",)


def test_recurrent_macro_builds_the_rleaky_pattern():
    graph = snnir.Sequential(Linear(6), Recurrent(LIF(0.9), Linear(6)), Linear(2), CubaLIF(0.5, 0.9), input_shape=(4,))
    assert [str(e) for e in graph.incoming("lif1")] == ["fc1 -> lif1", "lif1_rec -> lif1"]
    assert [str(e) for e in graph.incoming("lif1_rec")] == ["lif1 -> lif1_rec (delay 1)"]
    assert graph.topological_order().index("lif1_rec") < graph.topological_order().index("lif1")
    assert graph.nodes["lif1_rec"].weight.shape == (6, 6)


def test_builder_errors():
    builder = GraphBuilder()
    x = builder.input("x", 3)
    builder.add("fc", Linear(2), x)
    with pytest.raises(GraphError, match="a node named 'fc' already exists"):
        builder.add("fc", Linear(2), x)
    with pytest.raises(GraphError, match=r"unknown node 'fcc' \(did you mean 'fc'\?\)"):
        builder.add("lif", LIF(0.9), "fcc")
    with pytest.raises(GraphError, match="expected a snnir node"):
        builder.add("bad", object(), x)
    with pytest.raises(GraphError, match="Sequential needs at least one layer"):
        snnir.Sequential(input_shape=(3,))


def test_time_invariant_nodes_stop_at_state_and_delays():
    graph, _ = CASES["seed_cnn"].build()
    assert time_invariant_nodes(graph) == {"x", "conv1", "pool1"}
    builder = GraphBuilder()
    x = builder.input("x", 4)
    fc = builder.add("fc", Linear(weight=np.ones((4, 4))), x)
    drop = builder.add("drop", Dropout(0.5), fc)
    late = builder.add("late", Scale(1.0))
    builder.connect(x, late, delay=2)
    lif = builder.add("lif", LIF(0.5), drop, late)
    builder.output("out", lif)
    graph = builder.build()
    assert time_invariant_nodes(graph) == {"x", "fc", "drop"}
    assert time_invariant_nodes(graph, training=True) == {"x", "fc"}
    sequence = CASES["recurrent_lif"].build()[0]
    assert time_invariant_nodes(sequence) == frozenset()


def test_dead_node_removal_keeps_inputs():
    graph, _ = CASES["recurrent_lif"].build()
    extended = graph.replace(nodes={**graph.nodes, "dead": IF()}, edges=graph.edges + (snnir.Edge("lif", "dead"),))
    assert "dead" not in live_nodes(extended)
    assert_graph_equal(remove_dead_nodes(extended), graph)


def test_fold_scales_is_exact_on_powers_of_two():
    builder = GraphBuilder(num_steps=6)
    x = builder.input("x", (2, 6, 6), encoding="sequence")
    conv = builder.add("conv", Conv2d(weight=np.random.default_rng(0).normal(size=(3, 2, 3, 3)), bias=np.ones(3)), x)
    scaled = builder.add("scale", Scale(np.array([0.5, 2.0, 0.25]).reshape(3, 1, 1)), conv)
    builder.output("spikes", builder.add("lif", LIF(0.5), scaled))
    graph = builder.build()
    folded = fold_scales(graph)
    assert "scale" not in folded.nodes and [str(e) for e in folded.incoming("lif")] == ["conv -> lif"]
    data = np.random.default_rng(1).random((6, 2, 2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(snnir.compile(folded).run(data)["spikes"], snnir.compile(graph).run(data)["spikes"])
    # A factor that varies within a channel cannot fold.
    varied = graph.with_nodes({"scale": Scale(np.linspace(0.5, 1.0, 3 * 4 * 4).reshape(3, 4, 4))})
    assert "scale" in fold_scales(varied).nodes
    # A factor the torch backend trains keeps its own node (folding would drop learn_factor).
    learned = graph.with_nodes({"scale": graph.nodes["scale"].replace(learn_factor=True)})
    assert fold_scales(learned).nodes["scale"].learn_factor


def test_graph_values_are_immutable():
    graph, _ = CASES["lif_per_neuron"].build()
    with pytest.raises(TypeError):
        graph.nodes["x"] = None
    renamed = graph.replace(name="other")
    assert renamed.name == "other" and graph.name == "case"
    with pytest.raises(GraphError, match="cannot replace unknown nodes"):
        graph.with_nodes({"nope": IF()})


def test_summary_lists_nodes_shapes_parameters_and_totals():
    text = snnir.load("examples/quickstart_cnn.yaml").summary()
    assert "conv1     Conv2d     x        (8, 24, 24)" in text
    assert "6,000 parameters, 1,418 neurons" in text
    lazy = snnir.Sequential(Linear(3), LIF(0.9), input_shape=(2,), materialize=False)
    assert "lazy: some parameters are still initialisers" in lazy.summary()
