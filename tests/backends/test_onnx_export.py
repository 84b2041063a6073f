"""ONNX export: checker-clean models in both modes, their signature, the neuron op order, errors, CLI."""

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import snnir  # noqa: E402
from snnir import LIF, GraphError, InputError, Linear  # noqa: E402
from snnir.backends.onnx_export import IR_VERSION, METADATA_KEY, OPSET, build_model, export_onnx  # noqa: E402
from snnir.cli import main  # noqa: E402
from snnir.lowering import LoweringTable  # noqa: E402
from snnir.testing import CASES, assert_graph_equal  # noqa: E402


def _body(model):
    scan = next(n for n in model.graph.node if n.op_type == "Scan")
    return next(a.g for a in scan.attribute if a.name == "body")


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("mode", ["step", "sequence"])
@pytest.mark.parametrize("case_name", list(CASES))
def test_every_case_passes_the_full_onnx_check(case_name, mode):
    graph, _ = CASES[case_name].build()
    for probes in ((), "all"):
        model, doc = build_model(graph, mode, probes=probes)
        onnx.checker.check_model(model, full_check=True)
        assert doc["mode"] == mode


def test_models_use_the_fixed_opset_and_symbolic_batch():
    graph, _ = CASES["multi_input_multi_output"].build()
    for mode in ("step", "sequence"):
        model, doc = build_model(graph, mode)
        assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
        assert model.ir_version == IR_VERSION and model.producer_name == "snnir"
        assert [p.key for p in model.metadata_props] == [METADATA_KEY]
        inputs = {v.name: _dims(v) for v in model.graph.input}
        assert inputs["static"] == ["batch", 5]
        assert inputs["stream"] == (["time", "batch", 3] if mode == "sequence" else ["batch", 3])
        for state in doc["states"]:
            assert inputs[state["input"]] == state["shape"] and state["shape"][0] == "batch"
        outputs = {v.name: _dims(v) for v in model.graph.output}
        assert outputs["lif_out"] == (["time", "batch", 4] if mode == "sequence" else ["batch", 4])


def test_sequence_model_of_direct_inputs_takes_num_steps_and_hoists_the_static_part():
    graph, _ = CASES["seed_cnn"].build()
    model, doc = build_model(graph, "sequence")
    assert doc["num_steps_input"] == "num_steps"
    assert _dims(next(v for v in model.graph.input if v.name == "num_steps")) == []
    outside = {n.name for n in model.graph.node}
    inside = {n.name for n in _body(model).node}
    assert {"conv1", "pool1"} <= outside and not {"conv1", "pool1"} & inside  # computed once
    assert "conv2" in inside and "lif1/membrane" in inside
    stream, _ = CASES["recurrent_lif"].build()
    assert build_model(stream, "sequence")[1]["num_steps_input"] is None  # the sequence input sets T


def _delay_graph():
    """x -> fc -> lif, plus x -> fc three steps late and lif -> lif two steps late."""
    builder = snnir.GraphBuilder("delays", num_steps=12)
    x = builder.input("x", (4,), encoding="sequence")
    fc = builder.add("fc", Linear(4), x)
    builder.connect(x, fc, delay=3)
    lif = builder.add("lif", LIF(0.5, threshold=0.75), fc)
    builder.connect(lif, lif, delay=2)
    builder.output("lif_out", lif)
    return builder.build()


def test_delayed_edges_become_one_state_per_lag():
    _, doc = build_model(_delay_graph(), "step")
    states = [(s["name"], s["lag"], s["reset"]) for s in doc["states"]]
    assert states == [
        ("lif:membrane", 0, {"mode": "subtract", "timing": "next_step"}),
        ("x[t-1]", 1, None),
        ("x[t-2]", 2, None),
        ("x[t-3]", 3, None),
        ("lif[t-1]", 1, None),
        ("lif[t-2]", 2, None),
    ]


def _neuron_ops(neuron):
    graph = snnir.Sequential(neuron, input_shape=(4,), num_steps=3, encoding="sequence")
    model, _ = build_model(graph, "step")
    name = next(n for n, node in graph.nodes.items() if node.stateful)
    return [n.op_type for n in model.graph.node if n.output[0].startswith(f"{name}/")]


def test_neuron_updates_are_one_node_per_float_operation_in_design_order():
    """docs/semantics.md's operation order as ONNX ops (golden from the equations, not from our output)."""
    heaviside = ["Sub", "Greater", "Cast"]
    clamp = ["Clip"]
    # R = H(U' − θ); U = (β·U' + I) − R·θ; S = H(U − θ)
    assert _neuron_ops(LIF(0.5)) == heaviside + clamp + ["Mul", "Add", "Mul", "Sub"] + heaviside
    # U = β·((1 − R)·U') + I
    assert _neuron_ops(LIF(0.5, reset="zero")) == heaviside + clamp + ["Sub", "Mul", "Mul", "Add"] + heaviside
    # none: U = β·U' + I (R is never computed)
    assert _neuron_ops(LIF(0.5, reset="none")) == clamp + ["Mul", "Add"] + heaviside
    # same step: U − (S − R)·θ after the spike; graded spikes g·S
    ops = _neuron_ops(LIF(0.5, reset_timing="same_step", graded_spikes_factor=2.0))
    assert ops == heaviside + clamp + ["Mul", "Add", "Mul", "Sub"] + heaviside + ["Sub", "Mul", "Sub", "Mul"]
    # CubaLIF: J = α·J' + I; U = β·U' + (J + b); U − U·R
    ops = _neuron_ops(snnir.CubaLIF(0.5, 0.25, reset="zero", bias=0.5))
    assert ops == heaviside + clamp + clamp + ["Mul", "Add", "Mul", "Add", "Add", "Mul", "Sub"] + heaviside


def test_export_writes_atomically_and_refuses_bad_requests(tmp_path):
    graph, _ = CASES["seed_fc"].build()
    target = tmp_path / "m.onnx"
    assert snnir.export_onnx(graph, target, mode="sequence") == target
    before = target.read_bytes()
    lazy = snnir.Sequential(Linear(3), LIF(0.5), input_shape=(2,), materialize=False)
    with pytest.raises(GraphError, match="materiali"):
        export_onnx(lazy, target)
    with pytest.raises(InputError, match="mode must be one of"):
        export_onnx(graph, target, mode="steps")
    with pytest.raises(InputError, match="unknown node 'lif9'"):
        export_onnx(graph, target, probes=["lif9"])
    with pytest.raises(GraphError, match="JSON"):
        export_onnx(graph.replace(metadata={"bad": object()}), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary files left behind


def test_every_node_kind_has_a_rule_and_a_missing_rule_names_the_node():
    backend = snnir.get_backend("onnx")
    assert backend.rules.missing() == () and backend.known_gaps == {}
    graph, _ = CASES["seed_fc"].build()
    with pytest.raises(snnir.UnsupportedNodeError, match="cannot lower node 'fc1' \\(Linear\\)"):
        build_model(graph, "step", rules=LoweringTable("onnx"))


def test_save_load_and_convert_go_through_onnx(tmp_path):
    graph, _ = CASES["recurrent_cubalif_zero"].build()
    snnir.save(graph, tmp_path / "m.onnx")
    assert_graph_equal(graph, snnir.load(tmp_path / "m.onnx"))
    snnir.save(graph, tmp_path / "m.snnir")
    assert main(["--quiet", "convert", str(tmp_path / "m.snnir"), str(tmp_path / "c.onnx")]) == 0
    assert (tmp_path / "c.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()


def test_cli_export(tmp_path, capsys):
    target = tmp_path / "fc.onnx"
    assert main(["export", "examples/quickstart_fc.yaml", str(target), "--mode", "sequence", "--probes", "lif1,lif1:membrane"]) == 0
    out = capsys.readouterr().out
    assert "sequence model of 'quickstart_fc'" in out and "probe.lif1:membrane" in out and "lif2:membrane" in out
    runtime = snnir.backends.onnx_export.Runtime(target)
    assert runtime.mode == "sequence" and [p["key"] for p in runtime.metadata["probes"]] == ["lif1", "lif1:membrane"]
    assert main(["export", "examples/quickstart_fc.yaml", str(tmp_path / "x.onnx"), "--probes", "nope"]) == 2
    assert "unknown node 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert main(["--quiet", "export", "examples/quickstart_cnn.yaml", str(tmp_path / "cnn.onnx"), "--probes", "all"]) == 0
    assert capsys.readouterr().out == ""
    assert len(snnir.backends.onnx_export.Runtime(tmp_path / "cnn.onnx").metadata["probes"]) == 10 + 3  # values, membranes


def test_a_near_miss_of_probes_all_says_how_to_write_it(tmp_path):
    graph, _ = CASES["seed_fc"].build()
    for spelling in ("al", "ALL", "alll", " all", "every"):
        with pytest.raises(InputError, match=r"write probes=\"all\""):
            export_onnx(graph, tmp_path / "m.onnx", probes=spelling)
    assert not (tmp_path / "m.onnx").exists()
