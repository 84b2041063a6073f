"""The YAML form: both document shapes, exact round trips, and errors with file:line:column."""

from pathlib import Path

import numpy as np
import pytest

import snnir
from snnir import LIF, FormatError, GraphError, Linear, NodeParameterError, PerNeuron, ShapeError
from snnir.formats.yaml_format import dumps_yaml, loads_yaml
from snnir.testing import CASES, assert_graph_equal

EXAMPLES = ["examples/quickstart_cnn.yaml", "examples/quickstart_fc.yaml"]


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_of_every_conformance_case(tmp_path, name):
    graph, _ = CASES[name].build()
    path = snnir.save(graph, tmp_path / "g.yaml")
    assert_graph_equal(graph, snnir.load(path))


def test_round_trip_is_exact_for_arbitrary_float32(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((7, 5)).astype(np.float32) * np.float32(1e-3)
    graph = snnir.Sequential(Linear(weight=weight, bias=rng.standard_normal(7)), LIF(rng.random(7)), input_shape=(5,))
    assert_graph_equal(graph, snnir.load(snnir.save(graph, tmp_path / "g.yml")))


@pytest.mark.parametrize("path", EXAMPLES)
def test_examples_load_materialised_and_match_the_builder(path):
    graph = snnir.load(path)
    assert not graph.is_lazy
    assert snnir.load(path).nodes["fc1"].weight.tobytes() == graph.nodes["fc1"].weight.tobytes()  # seeded


def test_the_cnn_example_is_the_seed_tutorial_network():
    graph = snnir.load("examples/quickstart_cnn.yaml")
    shapes = graph.shapes
    assert shapes["conv1"] == (8, 24, 24) and shapes["pool2"] == (16, 4, 4) and shapes["fc1"] == (10,)
    assert graph.nodes["lif1"].surrogate.name == "fast_sigmoid" and float(graph.nodes["lif3"].beta) == np.float32(0.9)
    built = snnir.Sequential(
        ("conv1", snnir.Conv2d(8, 5)), ("pool1", snnir.MaxPool2d(2)), ("lif1", LIF(0.9, surrogate="fast_sigmoid")),
        ("conv2", snnir.Conv2d(16, 5)), ("pool2", snnir.MaxPool2d(2)), ("lif2", LIF(0.9, surrogate="fast_sigmoid")),
        ("flatten", snnir.Flatten()), ("fc1", Linear(10)), ("lif3", LIF(0.9, surrogate="fast_sigmoid")),
        input_shape=(1, 28, 28), num_steps=25, name="quickstart_cnn", seed=0,
    )
    assert_graph_equal(built, graph)


def test_per_neuron_learnable_beta_in_the_fc_example():
    lif2 = snnir.load("examples/quickstart_fc.yaml").nodes["lif2"]
    assert lif2.beta.shape == (10,) and lif2.learn_beta and 0 <= lif2.beta.min() < lif2.beta.max() <= 1


def test_general_form_with_edges_and_delays():
    text = """
name: rleaky
time: {num_steps: 8, dt: 0.0005}
nodes:
  x: {kind: Input, shape: [4], encoding: sequence}
  fc: {kind: Linear, out_features: 3}
  lif: {kind: LIF, beta: 0.9, reset: zero}
  rec: {kind: Linear, weight: [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]}
  spikes: {kind: Output}
edges:
  - [x, fc]
  - [fc, lif]
  - [lif, rec]
  - {src: rec, dst: lif, delay: 1}
  - [lif, spikes]
"""
    graph = loads_yaml(text)
    assert graph.time.dt == 0.0005 and graph.edges[3].delay == 1 and graph.nodes["rec"].bias is None
    assert graph.nodes["fc"].weight.shape == (3, 4)


def test_lazy_graph_yaml_keeps_initialisers():
    graph = snnir.Sequential(Linear(4), LIF(PerNeuron(0.8)), input_shape=(2,), materialize=False)
    text = dumps_yaml(graph)
    assert "init: per_neuron" in text and "init: default" in text
    assert_graph_equal(snnir.materialize(graph, 0), loads_yaml(text))


@pytest.mark.parametrize(
    "text, match",
    [
        ("layers:\n  - {kind: LIF, betta: 0.9}\ninput: {shape: [3]}\n",
         r"<yaml>:2:\d+: node 'layers\[0\]' \(LIF\): unknown key 'betta' \(did you mean 'beta'\?\)"),
        ("input: {shape: [3]}\nlayers:\n  - {kind: Linaer, out_features: 3}\n",
         r"<yaml>:3:\d+: node 'layers\[0\]': unknown kind 'Linaer' \(did you mean 'Linear'\?\)"),
        ("input: {shape: [3]}\nlayer:\n  - {kind: Linear}\n", r"<yaml>:2:1: the document: unknown key 'layer' \(did you mean 'layers'\?\)"),
        ("input: {shape: [3]}\nlayers:\n  - {kind: LIF, beta: .nan}\n", r"<yaml>:3:\d+: node 'layers\[0\]': LIF.beta: value nan"),
        ("input: {shape: [3]}\nlayers:\n  - {kind: Linear}\n", r"<yaml>:3:\d+: node 'layers\[0\]': Linear: give out_features"),
        ("input: {shape: [3]}\nlayers: [{kind: LIF, beta: 0.5}\n", r"<yaml>:\d+:\d+: invalid YAML"),
        ("a: 1\na: 2\n", r"<yaml>:2:1: duplicate key 'a'"),
        ("version: 7\nnodes: {}\n", "schema version 7"),
        ("nodes:\n  x: {kind: Input, shape: [2]}\n  o: {kind: Output}\nedges:\n  - [x, oo]\n",
         r"<yaml>:5:\d+: edge x -> oo: unknown node 'oo' \(did you mean 'o'\?\)"),
        ("- just\n- a list\n", "the document: expected dict"),
        ("", "the file is empty"),
        ("input: {shape: [3]}\nlayers:\n  - {kind: LIF, beta: 0.5, surrogate: {name: fast_sigmoid, slop: 3}}\n",
         r"takes \['slope'\], found \['slop'\]"),
        ("a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
         "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
         "h: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n", "alias bomb"),
    ],
)
def test_errors_name_file_line_and_column(text, match):
    with pytest.raises(FormatError, match=match):
        loads_yaml(text)


def test_graph_level_errors_carry_the_file_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("input: {shape: [3]}\nlayers:\n  - {kind: Conv2d, out_channels: 2, kernel_size: 3}\n")
    with pytest.raises(ShapeError, match=r"bad.yaml:3:5: node 'conv1' \(Conv2d\): Conv2d expects an input"):  # the layer's place
        snnir.load(path)
    path.write_text("nodes:\n  x: {kind: Input, shape: [2]}\n  o: {kind: Output, record: membrane}\nedges: [[x, o]]\n")
    with pytest.raises(GraphError, match="bad.yaml:3:3: output 'o' cannot record 'membrane'"):
        snnir.load(path)


def test_a_repeated_edge_warns_with_both_lines_and_is_still_summed(tmp_path, recwarn):
    """A duplicated edge is legal (fan-in sums it twice) but is usually a slip: loading warns, naming both
    lines, and the graph keeps both edges, so the doubled input is what runs."""
    path = tmp_path / "twice.yaml"
    path.write_text(
        "time: {num_steps: 3}\n"
        "nodes:\n"
        "  x: {kind: Input, shape: [2]}\n"
        "  lif: {kind: LIF, beta: 0.5}\n"
        "  o: {kind: Output}\n"
        "edges:\n"
        "  - [x, lif]\n"
        "  - [lif, o]\n"
        "  - [x, lif]\n"
    )
    with pytest.warns(UserWarning, match=r"twice.yaml:9:5: edge x -> lif repeats the one at .*twice.yaml:7:5; fan-in sums both"):
        graph = snnir.load(path)
    assert [str(edge) for edge in graph.edges].count("x -> lif") == 2
    membrane = snnir.compile(graph, "reference").run(np.full((1, 2), 0.25, np.float32), probes=["lif:membrane"])
    assert membrane.probes["lif:membrane"][0, 0, 0] == 0.5  # 0.25 from each edge


def test_distinct_edges_do_not_warn(tmp_path, recwarn):
    path = tmp_path / "once.yaml"
    path.write_text(
        "nodes:\n  x: {kind: Input, shape: [2]}\n  lif: {kind: LIF, beta: 0.5}\n  o: {kind: Output}\n"
        "edges: [[x, lif], [lif, o], [lif, lif, 1]]\n"
    )
    snnir.load(path)
    assert not [w for w in recwarn if "repeats" in str(w.message)]


@pytest.mark.parametrize(
    "edges, match",
    [
        ("[[x, fc], [fc, lif], [lif, fc], [lif, o]]", r"bad.yaml:7:29: cycle without delay: fc -> lif -> fc"),  # the closing edge
        ("[[x, fc], [fc, lif], [lif, o], [lif, x, 1]]", r"bad.yaml:3:3: input 'x' has incoming edges"),
        ("[[x, fc], [fc, lif], [lif, o], [x, lif]]", r"bad.yaml:7:39: edge x -> lif: x outputs \(3,\), but lif sums inputs of shape \(2,\)"),
        ("[[x, fc], [lif, o]]", r"bad.yaml:5:3: node 'lif' \(LIF\) is dangling"),
    ],
)
def test_wiring_errors_point_at_the_edge_or_node_in_the_file(tmp_path, edges, match):
    """Errors found by validation (cycles, fan-in shapes, dangling nodes...) name the line of the edge
    (general form) or else of the node at fault, like errors in a node's fields do."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "time: {num_steps: 3}\n"
        "nodes:\n"
        "  x: {kind: Input, shape: [3]}\n"
        "  fc: {kind: Linear, out_features: 2}\n"
        "  lif: {kind: LIF, beta: 0.5}\n"
        "  o: {kind: Output}\n"
        f"edges: {edges}\n"
    )
    with pytest.raises(GraphError, match=match):
        snnir.load(path)


def test_yaml_12_numbers_and_boolean_bias():
    """``1e-4`` is a float (YAML 1.1 reads it as text, though docs write dt so); ``bias: false`` and
    ``bias: true`` mean what they mean in Python; text or booleans inside arrays are named."""
    graph = loads_yaml(
        "time: {num_steps: 3, dt: 1e-4}\ninput: {shape: [2]}\nlayers:\n"
        "  - {kind: Linear, out_features: 2, weight: [[1e-3, 2.5], [1, 2E1]], bias: false}\n"
        "  - {kind: LIF, beta: 9e-1}\n"
        "  - {kind: Linear, out_features: 2, bias: true}\n"
    )
    assert graph.time.dt == pytest.approx(1e-4) and graph.nodes["lif1"].beta == np.float32(0.9)
    np.testing.assert_array_equal(graph.nodes["fc1"].weight, np.float32([[1e-3, 2.5], [1, 20]]))
    assert graph.nodes["fc1"].bias is None and graph.nodes["fc2"].bias.shape == (2,)
    for weight, found in (('[[1, "x"], [1, 2]]', r"value 'x' at index \(0, 1\) is not a number"),
                          ("[[1, true], [1, 2]]", r"value True at index \(0, 1\) is not a number"),
                          ("[[1, 2], [1]]", "cannot read as an array: its nested lists differ in length")):
        with pytest.raises(FormatError, match=r"<yaml>:3:\d+: .*Linear.weight: " + found):
            loads_yaml(f"input: {{shape: [2]}}\nlayers:\n  - {{kind: Linear, out_features: 2, weight: {weight}}}\n  - {{kind: LIF, beta: 0.5}}\n")


@pytest.mark.parametrize(
    "old, new, match",
    [
        ("beta: 0.9}", 'beta: "0.9x"}',
         r"bad.yaml:13:29: node 'lif1' \(LIF\)\.beta: expected a number, a nested list of numbers or \{init: \.\.\.\}, "
         r"found '0\.9x'$"),
        ("low: 0.0, high: 1.0", "low: 2, high: 1",
         r"bad.yaml:15:29: node 'lif2' \(LIF\)\.beta: bad arguments for initialiser 'uniform': "
         r"uniform initialiser needs finite low <= high, found 2\.0, 1\.0$"),
        ("membrane: membrane}", "membrane: membrain}",
         r"bad.yaml:16:26: output 'membrane': Output\.record: expected one of \['value', 'spikes', 'membrane', 'current'\], "
         r"found 'membrain'$"),
    ],
)
def test_bad_values_name_file_line_and_column(tmp_path, old, new, match):
    text = Path("examples/quickstart_fc.yaml").read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(FormatError, match=match) as caught:
        snnir.load(path)
    assert str(caught.value).startswith(f"{path}:") and isinstance(caught.value.__cause__, NodeParameterError)


def test_bad_array_value_in_the_general_form_names_line_and_column():
    with pytest.raises(FormatError, match=r"^<yaml>:2:\d+: node 'lif' \(LIF\)\.beta: expected a number, .* found 'x'$"):
        loads_yaml("nodes:\n  lif: {kind: LIF, beta: x}\n")


def test_unreadable_files(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(FormatError, match="not UTF-8"):
        snnir.load(tmp_path / "bin.yaml")
    with pytest.raises(FormatError, match="no such file"):
        snnir.load(tmp_path / "none.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(FormatError, match="is a directory"):
        snnir.load(tmp_path / "dir.yaml")


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(FormatError, match="nested too deeply|invalid YAML"):
        loads_yaml("a: " + "[" * 20000 + "]" * 20000)


def test_a_parameter_of_the_wrong_size_names_the_layer_line(tmp_path):
    """Sizes are only known once the graph's shapes are: the check after building names the layer's place."""
    text = Path("examples/quickstart_fc.yaml").read_text()
    old = "  - {kind: LIF, name: lif1, beta: 0.9}"
    assert old in text
    path = tmp_path / "sized.yaml"
    path.write_text(text.replace(old, "  - {kind: LIF, name: lif1, beta: [0.1, 0.2]}"))
    line = text.splitlines().index(old) + 1
    with pytest.raises(ShapeError, match=rf"^{path}:{line}:5: node 'lif1' \(LIF\): LIF.beta has shape \(2,\)"):
        snnir.load(path)
    general = "nodes:\n  x: {kind: Input, shape: [3]}\n  lif:\n    kind: LIF\n    beta: [0.5, 0.5]\n  out: {kind: Output}\nedges: [[x, lif], [lif, out]]\n"
    with pytest.raises(ShapeError, match=r"^<yaml>:3:3: node 'lif' \(LIF\): LIF.beta has shape \(2,\)"):
        loads_yaml(general)


def test_a_mapping_form_name_that_differs_from_its_key_and_a_missing_required_field_are_refused():
    with pytest.raises(FormatError, match=r"<yaml>:3:8: node 'fc' also says name: 'other'; in the mapping form the key names the node"):
        loads_yaml("nodes:\n  x: {kind: Input, shape: [2]}\n  fc: {name: other, kind: Linear, out_features: 2}\n"
                   "  o: {kind: Output}\nedges: [[x, fc], [fc, o]]\n")
    same = loads_yaml("nodes:\n  x: {kind: Input, shape: [2]}\n  fc: {name: fc, kind: Linear, out_features: 2}\n"
                      "  o: {kind: Output}\nedges: [[x, fc], [fc, o]]\n")
    assert list(same.nodes) == ["x", "fc", "o"]
    with pytest.raises(FormatError, match=r"<yaml>:3:5: node 'layers\[0\]' \(LIF\): missing required field 'beta'$"):
        loads_yaml("input: {shape: [2]}\nlayers:\n  - {kind: LIF}\n")


def test_a_recurrent_layers_synapse_errors_name_its_line_and_odd_scalars_are_format_errors():
    text = ("input: {shape: [3]}\nlayers:\n  - {kind: Linear, out_features: 3}\n"
            "  - {kind: Recurrent, name: rec, neuron: {kind: LIF, beta: 0.5}, synapse: {kind: Linear, out_features: 5}}\n")
    with pytest.raises(snnir.errors.ShapeError, match=r"^<yaml>:4:\d+: edge rec_rec -> rec"):
        loads_yaml(text)
    with pytest.raises(FormatError, match=r"<yaml>:3:\d+: .*beta"):  # '._e1' stays text, refused as a value
        loads_yaml("input: {shape: [2]}\nlayers:\n  - {kind: LIF, beta: ._e1}\n")
