"""ONNX import: lossless round trips, and clear FormatErrors for damaged, foreign or inconsistent files."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import snnir  # noqa: E402
from onnx import helper  # noqa: E402
from snnir import FormatError  # noqa: E402
from snnir.backends.onnx_export import METADATA_KEY, Runtime, export_onnx, load_onnx  # noqa: E402
from snnir.backends.onnx_export.metadata import digest  # noqa: E402
from snnir.testing import CASES, assert_graph_equal  # noqa: E402


@pytest.mark.parametrize("case_name", list(CASES))
def test_export_import_export_is_lossless(case_name, tmp_path):
    graph, _ = CASES[case_name].build()
    graph = graph.replace(name=f"{case_name} ✓", metadata={"trained": {"epochs": 3, "loss": 0.125}, "tags": ["a", "é"]})
    for mode, probes in (("step", ()), ("sequence", "all")):
        first = export_onnx(graph, tmp_path / f"{mode}.onnx", mode, probes=probes)
        imported = load_onnx(first)
        assert_graph_equal(graph, imported)
        second = export_onnx(imported, tmp_path / f"{mode}_again.onnx", mode, probes=probes)
        assert first.read_bytes() == second.read_bytes()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    graph, _ = CASES["seed_cnn"].build()
    path = export_onnx(graph, tmp_path_factory.mktemp("onnx") / "cnn.onnx", "sequence", probes=["lif1"])
    return graph, path.read_bytes()


def _model_with(data, edit):
    """``data`` parsed, its metadata document edited by ``edit(doc)``, and the checksum recomputed."""
    model = onnx.ModelProto.FromString(data)
    prop = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    doc = json.loads(prop.value)
    edit(doc)
    doc["sha256"] = digest(model.graph, doc)
    prop.value = json.dumps(doc)
    return model.SerializeToString()


def _expect_format_error(tmp_path, data, match):
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=match):
        load_onnx(path)
    with pytest.raises(FormatError, match=match):
        Runtime(path)


def test_truncated_files_are_refused(exported, tmp_path):
    _, data = exported
    for cut in sorted({1, 2, 7, 100, *np.linspace(0, len(data) - 1, 60, dtype=int)[1:]}):
        _expect_format_error(tmp_path, data[:cut], "bad.onnx: ")


def test_corrupted_weights_nodes_or_metadata_fail_the_checksum(exported, tmp_path):
    _, data = exported
    weight = onnx.ModelProto.FromString(data).graph.initializer[0].raw_data
    start = data.index(weight[:64])
    for offset in (0, len(weight) // 2, len(weight) - 1):  # one flipped bit inside conv1.weight
        corrupted = bytearray(data)
        corrupted[start + offset] ^= 0x04
        _expect_format_error(tmp_path, bytes(corrupted), "does not match the checksum")
    stride = data.replace(b"lif1/membrane", b"lif1/membranf", 1)  # a renamed value inside the Scan body
    _expect_format_error(tmp_path, stride, "does not match the checksum")
    dt = data.replace(b'"dt":0.001', b'"dt":0.002', 1)
    _expect_format_error(tmp_path, dt, "does not match the checksum")


def test_garbage_empty_missing_and_directories(tmp_path):
    for data, match in ((b"", "the file is empty"), (b"hello, not protobuf \xff\xfe", "not a readable ONNX file|holds no graph")):
        _expect_format_error(tmp_path, data, match)
    with pytest.raises(FormatError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(FormatError, match="is a directory"):
        load_onnx(tmp_path)


def test_foreign_onnx_files_are_refused_clearly(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, producer_name="pytorch")
    _expect_format_error(tmp_path, model.SerializeToString(), "not a snnir ONNX file.*'pytorch'.*NIR or snnTorch")
    with pytest.raises(FormatError, match="not a snnir ONNX file"):
        snnir.load(tmp_path / "bad.onnx")


def test_metadata_of_another_version_or_not_json(exported, tmp_path):
    _, data = exported

    def set_version(doc):
        doc["version"] = 7
        doc["snnir_version"] = "9.0"

    _expect_format_error(tmp_path, _model_with(data, set_version), "version 7 \\(snnir 9.0\\) is newer.*upgrade snnir")
    model = onnx.ModelProto.FromString(data)
    next(p for p in model.metadata_props if p.key == METADATA_KEY).value = '{"format": "snnir-onnx", "version": 1,'
    _expect_format_error(tmp_path, model.SerializeToString(), "invalid JSON at line 1 column")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.pop("states"), "the key 'states' is missing"),
        (lambda d: d["states"][0].update(lag="1"), r"\.states\[0\]\.lag: expected int"),
        (
            lambda d: d["states"][0].update(shape=["batch", 4, 6, 7]),
            r"\.states\[0\]\.shape: \[.batch., 4, 6, 7\] does not match the embedded graph, which implies \[.batch., 4, 6, 6\]",
        ),
        (lambda d: d["states"].pop(), "lists 2 entries, the embedded graph implies 3"),
        (lambda d: d["inputs"][0].update(encoding="sequence"), r"\.inputs\[0\].*does not match"),
        (lambda d: d["outputs"][0].update(node="lif2"), r"\.outputs\[0\].*does not match"),
        (lambda d: d["probes"][0].update(key="nope"), "unknown node 'nope'"),
        (lambda d: d.update(num_steps_input=None), "needs a num_steps input"),
        (lambda d: d["time"].update(num_steps=9), r"\.time: .* does not match"),
        (lambda d: d["states"][1].update(input=d["states"][0]["input"]), "share one ONNX name"),
        (lambda d: d["outputs"][0].update(name="spikes"), r"\.outputs\[0\].*does not match"),
        (lambda d: d["graph"]["nodes"][1].update(weight={"initializer": "nope"}), "no initializer 'nope'"),
        (lambda d: d["graph"]["nodes"][1].update(kind="Conv3d"), "unknown kind 'Conv3d'"),
        (lambda d: d["graph"]["edges"].pop(), "invalid"),
        (lambda d: d.update(mode="batch"), "expected one of \\['step', 'sequence'\\]"),
    ],
)
def test_inconsistent_metadata_is_refused_even_with_a_valid_checksum(exported, tmp_path, edit, match):
    _, data = exported
    _expect_format_error(tmp_path, _model_with(data, edit), match)


def test_state_tensors_that_disagree_with_the_metadata(exported, tmp_path):
    """A file whose ONNX state input does not have the shape its metadata states."""
    _, data = exported
    model = onnx.ModelProto.FromString(data)
    state_input = next(v for v in model.graph.input if v.name.startswith("state."))
    state_input.type.tensor_type.shape.dim[1].dim_value = 5
    prop = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    doc = json.loads(prop.value)
    doc["sha256"] = digest(model.graph, doc)
    prop.value = json.dumps(doc)
    match = f"input '{state_input.name}' has shape \\['batch', 5, .*\\] in the ONNX graph"
    _expect_format_error(tmp_path, model.SerializeToString(), match)


def test_loader_fuzzing(tmp_path):
    fuzz = pytest.importorskip("snnir.testing.fuzz")
    for name in ("onnx", "onnx_sequence"):
        outcomes = fuzz.run_campaign(name, cases=60, seed=1)
        assert set(outcomes) <= {"loaded", "FormatError"} and outcomes["FormatError"] > 50
