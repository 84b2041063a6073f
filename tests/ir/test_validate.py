"""Validation: every structural mistake raises the specific error class, naming the node or edge."""

import numpy as np
import pytest

import snnir
from snnir import (
    LIF, Edge, Flatten, Graph, GraphBuilder, GraphError, Input, Linear, Output, Scale, ShapeError, TimeSpec,
)


def _graph(nodes, edges, **kwargs):
    return Graph(nodes=nodes, edges=edges, **kwargs)


def _chain(*extra_edges, lif=None):
    nodes = {"x": Input((4,)), "fc": Linear(weight=np.ones((3, 4))), "lif": lif or LIF(0.5), "out": Output()}
    return _graph(nodes, [("x", "fc"), ("fc", "lif"), ("lif", "out"), *extra_edges])


def test_a_valid_graph_returns_shapes():
    assert snnir.validate(_chain()) == {"x": (4,), "fc": (3,), "lif": (3,), "out": (3,)}


@pytest.mark.parametrize(
    "graph, error, match",
    [
        (_graph({"fc": Linear(3)}, []), GraphError, "has no Input node"),
        (_graph({"x": Input((4,))}, []), GraphError, "has no Output node"),
        (_chain(("fc", "lif2")), GraphError, r"edge fc -> lif2: unknown node 'lif2' \(did you mean 'lif'\?\)"),
        (_chain(("lif", "x", 1)), GraphError, "input 'x' has incoming edges"),
        (_chain(("out", "fc", 1)), GraphError, "output 'out' has outgoing edges"),
        (_chain(("fc", "out")), GraphError, "output 'out' must record exactly one node, found 2"),
        (
            _graph({"x": Input((4,)), "fc": Linear(weight=np.ones((3, 4))), "out": Output(record="membrane")},
                   [("x", "fc"), ("fc", "out")]),
            GraphError,
            r"output 'out' cannot record 'membrane' of node 'fc' \(Linear\); it can record: value",
        ),
        (
            _graph({"x": Input((4,)), "fc": Linear(weight=np.ones((3, 4))), "lone": LIF(0.5), "out": Output()},
                   [("x", "fc"), ("fc", "out")]),
            GraphError,
            r"node 'lone' \(LIF\) is dangling: it has no incoming edge",
        ),
        (
            _graph({"x": Input((4,)), "fc": Linear(weight=np.ones((3, 4))), "dead": LIF(0.5), "out": Output()},
                   [("x", "fc"), ("fc", "out"), ("fc", "dead")]),
            GraphError,
            r"node 'dead' \(LIF\) is dangling: its value reaches no Output",
        ),
        (_chain(("lif", "fc")), GraphError, "cycle without delay: (fc -> lif -> fc|lif -> fc -> lif)"),
        (_chain(("x", "lif")), ShapeError, r"edge x -> lif: x outputs \(4,\), but lif sums inputs of shape \(3,\)"),
        (_chain(lif=LIF(np.ones(5))), ShapeError, r"node 'lif' \(LIF\): LIF.beta has shape \(5,\)"),
    ],
)
def test_structural_errors(graph, error, match):
    with pytest.raises(error, match=match):
        snnir.validate(graph)


def test_errors_quote_the_printed_graph_around_the_node():
    with pytest.raises(ShapeError) as caught:
        snnir.validate(_chain(lif=LIF(np.ones(5))))
    message = str(caught.value)
    assert "> lif" in message and "node      kind" not in message.splitlines()[0]
    assert "fc" in message and "Linear" in message


def test_a_delayed_cycle_is_legal_and_shapes_resolve():
    graph = _chain(("lif", "rec"), ("rec", "lif", 1))
    graph = graph.replace(nodes={**graph.nodes, "rec": Scale(-1.0)})
    assert snnir.validate(graph)["rec"] == (3,)


def test_a_loop_fed_only_by_delays_cannot_be_inferred():
    nodes = {"x": Input((3,)), "a": Scale(1.0), "b": Scale(1.0), "out": Output(), "out2": Output()}
    graph = _graph(nodes, [("a", "b"), ("b", "a", 1), ("b", "out"), ("x", "out2")])
    with pytest.raises(GraphError, match="cannot infer the shape of 'a'.*feed the loop from an Input"):
        snnir.validate(graph)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: TimeSpec(num_steps=0), r"time.num_steps: expected an integer >= 1, found 0"),
        (lambda: TimeSpec(num_steps=2.5), "time.num_steps"),
        (lambda: TimeSpec(dt=-1e-3), r"time.dt: expected a finite number of seconds > 0"),
        (lambda: TimeSpec(dt=float("nan")), "time.dt"),
        (lambda: Edge("a", "b", delay=-1), r"edge 'a' -> 'b': delay must be an integer >= 0, found -1"),
        (lambda: Edge("a", "b", delay=1.5), "delay must be an integer"),
        (lambda: Edge("", "b"), "src must be a node name"),
        (lambda: Graph(nodes={"x": "not a node"}), "node 'x': expected a snnir node, found str"),
        (lambda: Graph(nodes={"x": Input((1,))}, edges=["x->y"]), "expected an Edge or a"),
    ],
)
def test_bad_time_specs_and_edges(make, match):
    with pytest.raises(GraphError, match=match):
        make()


def test_compile_requires_materialised_parameters():
    graph = snnir.Sequential(Linear(3), LIF(0.9), input_shape=(4,), materialize=False)
    assert graph.is_lazy
    with pytest.raises(GraphError, match=r"still has lazy parameters \['weight', 'bias'\].*snnir.materialize"):
        snnir.compile(graph)
    assert not snnir.materialize(graph, seed=1).is_lazy


def test_materialise_is_deterministic_per_node_name():
    lazy = snnir.Sequential(Linear(3), LIF(0.9), Linear(2), LIF(0.9), input_shape=(4,), materialize=False)
    a, b = snnir.materialize(lazy, 7), snnir.materialize(lazy, 7)
    assert np.array_equal(a.nodes["fc1"].weight, b.nodes["fc1"].weight)
    assert not np.array_equal(a.nodes["fc1"].weight, snnir.materialize(lazy, 8).nodes["fc1"].weight)
    # Another node's presence does not change this node's draw.
    alone = snnir.Sequential(("fc1", Linear(3)), LIF(0.9), input_shape=(4,), materialize=False)
    assert np.array_equal(snnir.materialize(alone, 7).nodes["fc1"].weight, a.nodes["fc1"].weight)


def test_topological_order_ignores_delayed_edges_and_keeps_node_order():
    builder = GraphBuilder()
    x = builder.input("x", 4)
    lif = builder.add("lif", LIF(0.5), builder.add("fc", Linear(weight=np.ones((4, 4))), x))
    builder.connect(builder.add("rec", Scale(0.5), lif), lif, delay=1)
    builder.output("out", builder.add("flat", Flatten(), lif))
    graph = builder.build()
    assert graph.topological_order() == ("x", "fc", "lif", "rec", "flat", "out")
