"""assert_graph_equal / graph_differences: what a failing comparison says."""

import numpy as np
import pytest

import snnir
from snnir.testing import assert_graph_equal


def test_graph_differences_describe_array_fields_in_one_line():
    """A weight that differs is summarised (count, first index, values, largest gap), not printed whole."""
    graph = snnir.load("examples/quickstart_cnn.yaml")
    weight = np.array(graph.nodes["conv2"].weight)
    weight[3, 2, 1, 0] += 0.5
    changed = graph.with_nodes({"conv2": graph.nodes["conv2"].replace(weight=weight)})
    with pytest.raises(AssertionError) as caught:
        assert_graph_equal(graph, changed)
    message = str(caught.value)
    assert "node 'conv2'.weight: 1 of 3200 values differ, first at (3, 2, 1, 0)" in message
    assert "largest difference 0.5" in message and len(message) < 300


def test_an_unknown_node_name_is_a_key_error_naming_the_closest():
    graph = snnir.load("examples/quickstart_cnn.yaml")
    with pytest.raises(KeyError) as caught:
        graph.nodes["lif_1"]
    assert isinstance(caught.value, snnir.NodeNotFoundError)
    assert str(caught.value).startswith("unknown node 'lif_1' (did you mean 'lif1'?); the graph's nodes are ['x', 'conv1'")
    assert "lif1" in graph.nodes and "lif_1" not in graph.nodes and graph.nodes.get("lif_1") is None
    assert list(graph.nodes)[:2] == ["x", "conv1"] and len(graph.nodes) == 12
    with pytest.raises(TypeError):
        graph.nodes["x"] = None  # read-only
