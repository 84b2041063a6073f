"""snnir → NIR → snnir is lossless for every conformance case NIR can express, in both schemes.

What NIR cannot express is derived from the graph, not listed by case name, so new cases are covered:
MaxPool2d (NIR has no max pooling) raises UnsupportedNodeError; decays outside [0, 1] (every backend
clamps them) are written clamped, because NIR time constants must be positive: the graph read back
differs in those parameters but computes exactly the same outputs.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

import snnir  # noqa: E402
from snnir import LIF, GraphBuilder, Linear, MaxPool2d  # noqa: E402
from snnir.cli import build_parser, main  # noqa: E402
from snnir.errors import FormatError, UnsupportedNodeError  # noqa: E402
from snnir.frontends.nir import from_nir, load_nir, save_nir, to_nir  # noqa: E402
from snnir.testing import CASES, assert_graph_equal, state_probes  # noqa: E402

CNN_YAML = Path(__file__).resolve().parents[2] / "examples" / "quickstart_cnn.yaml"


def _has(graph, kind) -> bool:
    return any(isinstance(node, kind) for node in graph.nodes.values())


def _clamped(graph) -> bool:
    decays = [getattr(n, f) for n in graph.nodes.values() for f in ("alpha", "beta") if hasattr(n, f)]
    return any(np.any((d < 0) | (d > 1)) for d in decays)


@pytest.mark.parametrize("scheme", ["euler", "exact"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_conformance_case_round_trips_through_a_nir_file(name, scheme, tmp_path):
    graph, inputs = CASES[name].build()
    if _has(graph, MaxPool2d):
        with pytest.raises(UnsupportedNodeError, match=r"\(MaxPool2d\) has no NIR equivalent"):
            to_nir(graph, discretization=scheme)
        return
    path = tmp_path / "case.nir"
    nir.write(path, to_nir(graph, discretization=scheme))
    back = from_nir(path)  # dt and scheme come from the file's snnir metadata
    if not _clamped(graph):
        assert_graph_equal(back, graph)
        return
    probes = state_probes(graph)
    expected = snnir.compile(graph, "reference").run(inputs, probes=probes)
    found = snnir.compile(back, "reference").run(inputs, probes=probes)
    for key in expected.outputs:
        np.testing.assert_array_equal(found.outputs[key], expected.outputs[key])
    for key in expected.probes:
        np.testing.assert_array_equal(found.probes[key], expected.probes[key])


def test_recurrence_is_written_as_a_plain_nir_cycle():
    graph, _ = CASES["recurrent_cubalif_zero"].build()  # delay on the synapse -> neuron edge
    exported = to_nir(graph)
    assert not any(isinstance(node, nir.Delay) for node in exported.nodes.values())
    assert ("rec", "cuba") in exported.edges and ("cuba", "rec") in exported.edges


def test_delays_nir_cannot_imply_become_delay_nodes():
    graph, _ = CASES["self_delay_and_input_delay"].build()
    exported = to_nir(graph)
    delays = {name: node for name, node in exported.nodes.items() if isinstance(node, nir.Delay)}
    assert sorted(delays) == ["fc.delay1", "lif.delay1"]
    np.testing.assert_allclose(delays["fc.delay1"].delay, 3 * graph.time.dt)  # seconds, per element
    np.testing.assert_allclose(delays["lif.delay1"].delay, 2 * graph.time.dt)
    # A delay-1 edge that is not the importer's back edge of its cycle must be explicit too.
    builder = GraphBuilder("tree_edge_delay", num_steps=5)
    x = builder.input("x", (3,), encoding="sequence")
    lif = builder.add("lif", LIF(0.5), builder.add("fc", Linear(weight=np.eye(3)), x))
    rec = builder.add("rec", Linear(weight=np.eye(3) * 0.5))
    builder.connect(lif, rec, delay=1)
    builder.connect(rec, lif)
    builder.output("out", lif)
    graph = builder.build()
    exported = to_nir(graph)
    assert [n for n, node in exported.nodes.items() if isinstance(node, nir.Delay)] == ["rec.delay1"]
    assert_graph_equal(from_nir(exported), graph)


def test_duplicate_undelayed_edges_cannot_be_written():
    builder = GraphBuilder("twice", num_steps=3)
    x = builder.input("x", (2,))
    fc = builder.add("fc", Linear(weight=np.eye(2)), x, x)
    builder.output("out", builder.add("lif", LIF(0.5), fc))
    with pytest.raises(UnsupportedNodeError, match=r"edge x -> fc appears twice"):
        to_nir(builder.build())


def test_lazy_graphs_must_be_materialised_first():
    graph = snnir.Sequential(Linear(3), LIF(0.5), input_shape=(2,), materialize=False)
    with pytest.raises(snnir.GraphError, match="materialise them first"):
        to_nir(graph)


def test_snnir_load_save_and_cli_convert_go_through_nir(tmp_path, capsys):
    graph, _ = CASES["recurrent_cubalif_zero"].build()
    path = save_nir(graph, tmp_path / "model.nir")
    assert_graph_equal(load_nir(path), graph)
    snnir.save(graph, tmp_path / "model.snnir")
    assert main(["convert", str(tmp_path / "model.snnir"), str(tmp_path / "converted.nir")]) == 0
    assert main(["convert", str(tmp_path / "converted.nir"), str(tmp_path / "back.snnir")]) == 0
    assert_graph_equal(snnir.load(tmp_path / "back.snnir"), graph)
    capsys.readouterr()
    assert main(["convert", str(CNN_YAML), str(tmp_path / "cnn.nir")]) == 2
    assert "(MaxPool2d) has no NIR equivalent" in capsys.readouterr().err
    assert not (tmp_path / "cnn.nir").exists()


def test_a_failed_save_leaves_the_previous_file_untouched(tmp_path):
    graph, _ = CASES["lif_zero_next_step"].build()
    path = save_nir(graph, tmp_path / "model.nir")
    before = path.read_bytes()
    cnn = snnir.load(CNN_YAML)
    with pytest.raises(UnsupportedNodeError):
        save_nir(cnn, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.nir"]  # no temporary file left behind
    with pytest.raises(FormatError, match="does not exist"):
        save_nir(graph, tmp_path / "missing" / "model.nir")


def test_a_foreign_file_needs_a_time_step(tmp_path):
    graph, _ = CASES["lif_zero_next_step"].build()
    exported = to_nir(graph)
    exported.metadata = {}  # as written by another tool
    path = tmp_path / "foreign.nir"
    nir.write(path, exported)
    with pytest.raises(FormatError, match=r"snnir\.load\(path, dt=1e-4\) in Python, --dt 1e-4 on the command line"):
        snnir.load(path)
    assert from_nir(path, dt=graph.time.dt).name == "foreign"


def _foreign(tmp_path, case="lif_zero_next_step"):
    graph, _ = CASES[case].build()
    exported = to_nir(graph, dt=graph.time.dt, discretization="exact")
    exported.metadata = {}  # as written by another tool
    path = tmp_path / "foreign.nir"
    nir.write(path, exported)
    return graph, path


def test_every_command_reading_a_model_takes_the_nir_import_options(tmp_path, capsys):
    graph, path = _foreign(tmp_path)
    assert main(["check", str(path)]) == 2
    assert "--dt 1e-4 on the command line" in capsys.readouterr().err
    assert main(["check", str(path), "--dt", "1e-3", "-q"]) == 0
    assert "steps of 1 ms" in capsys.readouterr().out
    assert main(["info", str(path), "--dt", "1e-3", "--num-steps", "7"]) == 0
    assert "7 steps of 1 ms" in capsys.readouterr().out
    assert main(["export", str(path), str(tmp_path / "m.onnx"), "--dt", "1e-3", "-q"]) == 0
    assert snnir.load(tmp_path / "m.onnx").time.dt == 1e-3
    assert main(["bench", str(path), "--dt", "1e-3", "--backends", "reference", "--repeat", "1", "--batch", "2"]) == 0
    assert "reference" in capsys.readouterr().out
    for command in ("run", "plot", "train"):  # read the file, then find that digits (images) cannot feed its sequence input
        assert main([command, str(path), "--dt", "1e-3", "--data", "digits", "--out", str(tmp_path / command)]
                    if command != "run" else [command, str(path), "--dt", "1e-3", "--data", "digits"]) == 2
        error = capsys.readouterr().err
        assert "digits holds images, and this model's input is a sequence" in error and "time step" not in error, (command, error)


def test_the_import_options_reach_from_nir(tmp_path, capsys):
    """The scheme chosen on the command line decides β: the file was written with exact decays, so
    reading it back with --discretization exact gives the graph's β again, and euler does not."""
    graph, path = _foreign(tmp_path)
    dt = str(graph.time.dt)
    exact, euler = tmp_path / "exact.snnir", tmp_path / "euler.snnir"
    assert main(["convert", str(path), str(exact), "--dt", dt, "--discretization", "exact", "--reset", "zero", "-q"]) == 0
    assert main(["convert", str(path), str(euler), "--dt", dt, "--discretization", "euler", "--reset", "zero", "-q"]) == 0
    expected = np.asarray(graph.nodes["n"].beta, np.float32)
    np.testing.assert_allclose(np.asarray(snnir.load(exact).nodes["n"].beta), expected, rtol=1e-6)
    assert not np.allclose(np.asarray(snnir.load(euler).nodes["n"].beta), expected, rtol=1e-6)


def test_the_import_options_are_refused_for_other_formats_and_bad_values(tmp_path, capsys):
    assert main(["info", str(CNN_YAML), "--dt", "1e-3", "--reset", "zero"]) == 2
    assert "--dt, --reset are for .nir files only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["info", str(CNN_YAML), "--dt", "-1"])
    assert "expected a positive number, found -1" in capsys.readouterr().err


def test_other_tools_see_nir_semantics_and_run_the_same_spikes(tmp_path):
    """Without snnir's metadata a LIF resets as NIR says (to v_reset, same step): same spikes as snnir's
    zero reset of the next step, whose only difference is the recorded membrane at the spike."""
    graph, inputs = CASES["lif_zero_next_step"].build()
    exported = to_nir(graph)
    for node in exported.nodes.values():
        node.metadata = {}
    exported.metadata = {}
    foreign = from_nir(exported, dt=graph.time.dt)
    assert foreign.nodes["n"].reset == "zero" and foreign.nodes["n"].reset_timing == "same_step"
    ours = snnir.compile(graph, "reference").run(inputs)
    theirs = snnir.compile(foreign, "reference").run(inputs)
    np.testing.assert_array_equal(theirs["n_out"], ours["n_out"])


def test_exporting_rules_nir_cannot_express_warns_naming_the_neurons(tmp_path, capsys):
    """Other tools read NIR's zero, same-step reset and unit spikes; snnir's metadata is ignored there.
    The export says so instead of letting the dynamics change silently (snnir reads it back exactly)."""
    from snnir.cli import main
    from snnir.errors import SemanticsWarning

    graph = snnir.load("examples/quickstart_fc.yaml")
    with pytest.warns(SemanticsWarning, match=r"other tools will read 'lif1' \(reset='subtract', reset_timing='next_step'\); 'lif2'"):
        snnir.save(graph, tmp_path / "fc.nir")
    assert_graph_equal(snnir.load(tmp_path / "fc.nir"), graph)
    zero = graph.with_nodes({n: graph.nodes[n].replace(reset="zero", reset_timing="same_step") for n in ("lif1", "lif2")})
    with warnings.catch_warnings():
        warnings.simplefilter("error", SemanticsWarning)
        snnir.save(zero, tmp_path / "zero.nir")  # NIR's own semantics: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("always", SemanticsWarning)
        assert main(["convert", "examples/quickstart_fc.yaml", str(tmp_path / "cli.nir"), "-q"]) == 0
    assert "snnir convert: warning: NIR expresses a zero reset in the same step" in capsys.readouterr().err
