"""The .snnir archive: lossless round trips, deterministic bytes, no pickle, atomic saves, clear errors."""

import io
import json
import zipfile

import numpy as np
import pytest

import snnir
from snnir import LIF, FormatError, GraphError, Linear, PerNeuron
from snnir.formats.archive import GRAPH_MEMBER
from snnir.testing import CASES, assert_graph_equal


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_of_every_conformance_case(tmp_path, name):
    graph, _ = CASES[name].build()
    path = snnir.save(graph, tmp_path / "g.snnir")
    assert_graph_equal(graph, snnir.load(path))


def test_lazy_graphs_and_metadata_round_trip(tmp_path):
    graph = snnir.Sequential(Linear(5), LIF(PerNeuron(0.9), learn_beta=True, surrogate="sigmoid"),
                             input_shape=(3,), materialize=False)
    graph = graph.replace(metadata={"trained": {"epochs": 3, "accuracy": [0.5, 0.75]}, "note": "ü"})
    path = snnir.save(graph, tmp_path / "lazy.snnir")
    assert_graph_equal(graph, snnir.load(path))


def test_bytes_are_deterministic(tmp_path):
    graph, _ = CASES["seed_cnn"].build()
    a = snnir.save(graph, tmp_path / "a.snnir").read_bytes()
    b = snnir.save(graph, tmp_path / "b.snnir").read_bytes()
    assert a == b


def test_graph_json_is_readable_and_arrays_are_npy(tmp_path):
    graph, _ = CASES["lif_per_neuron"].build()
    path = snnir.save(graph, tmp_path / "g.snnir")
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read(GRAPH_MEMBER))
        names = archive.namelist()
    assert document["format"] == "snnir" and document["version"] == 1
    assert [n["name"] for n in document["nodes"]] == list(graph.nodes)
    assert all(n.endswith(".npy") for n in names if n != GRAPH_MEMBER)


def _rewrite(path, target, mutate):
    """Copy the archive at ``path`` to ``target`` with one member's bytes changed by ``mutate(name, data)``."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            data = mutate(info.filename, source.read(info))
            if data is not None:
                out.writestr(info, data)
    return target


@pytest.fixture
def saved(tmp_path):
    graph, _ = CASES["lif_per_neuron"].build()
    return snnir.save(graph, tmp_path / "good.snnir")


def _json_edit(edit):
    def mutate(name, data):
        if name != GRAPH_MEMBER:
            return data
        document = json.loads(data)
        edit(document)
        return json.dumps(document).encode()

    return mutate


def _bad_npy(name, data):
    if not name.endswith(".npy"):
        return data
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3, dtype=object), allow_pickle=True)  # an object array needs pickle
    return buffer.getvalue()


@pytest.mark.parametrize(
    "mutate, match",
    [
        (_json_edit(lambda d: d.update(version=99)), r"schema version 99 .* is newer than this snnir reads \(up to 1\); upgrade snnir"),
        (_json_edit(lambda d: d.update(version="one")), "the schema version must be a positive integer"),
        (_json_edit(lambda d: d.update(format="other")), "not a snnir graph"),
        (_json_edit(lambda d: d["nodes"][2].update(kind="LIFF")), r"unknown kind 'LIFF' \(did you mean 'LIF'\?\)"),
        (_json_edit(lambda d: d["nodes"][2].update(betta=0.5)), r"unknown key 'betta' \(did you mean 'beta'\?\)"),
        (_json_edit(lambda d: d["nodes"][2].update(reset="soft")), r"graph.json.nodes\[2\].reset: .*LIF.reset"),
        (_json_edit(lambda d: d["edges"].append(["x", 5])), r"edges\[\d\]: .*dst must be a node name"),
        (_json_edit(lambda d: d.update(time={"num_steps": -1})), "time.num_steps"),
        (_json_edit(lambda d: d["nodes"][1].update(weight={"npy": "arrays/999999.npy"})), "has no array member"),
        (_json_edit(lambda d: d["nodes"][1].update(weight=[[1.0]])), "expected an array reference"),
        (lambda name, data: data[:-7] if name == GRAPH_MEMBER else data, "graph.json line"),
        (lambda name, data: None if name == GRAPH_MEMBER else data, "has no graph.json"),
        (lambda name, data: data[:-8] if name.endswith(".npy") else data, "declares shape"),
        (lambda name, data: data[:40] if name.endswith(".npy") else data, "cannot read arrays/.*reading array header"),
        (_bad_npy, "expected C-order float32"),
    ],
)
def test_malformed_archives_raise_format_errors(saved, tmp_path, mutate, match):
    bad = _rewrite(saved, tmp_path / "bad.snnir", mutate)
    with pytest.raises(FormatError, match=match):
        snnir.load(bad)


def test_truncated_and_foreign_files(saved, tmp_path):
    data = saved.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.snnir").write_bytes(data[:cut])
        with pytest.raises(FormatError):
            snnir.load(tmp_path / "cut.snnir")
    (tmp_path / "text.snnir").write_text("hello")
    with pytest.raises(FormatError, match="not a .snnir archive"):
        snnir.load(tmp_path / "text.snnir")
    with pytest.raises(FormatError, match="no such file"):
        snnir.load(tmp_path / "missing.snnir")
    with pytest.raises(FormatError, match="extension '.txt' is not supported"):
        snnir.load(tmp_path / "model.txt")


def test_a_failed_save_leaves_the_earlier_file_intact(saved, tmp_path, monkeypatch):
    before = saved.read_bytes()
    graph, _ = CASES["lif_per_neuron"].build()
    with pytest.raises(GraphError, match="metadata must be JSON-serialisable"):
        snnir.save(graph.replace(metadata={"oops": object()}), saved)
    assert saved.read_bytes() == before

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("snnir.formats.archive._npy_bytes", explode)
    with pytest.raises(OSError, match="disk full"):
        snnir.save(graph, saved)
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.snnir"]  # no temporary files left behind


def test_a_directory_that_takes_no_files_is_named_not_the_temporary_file(tmp_path, monkeypatch):
    graph, _ = CASES["lif_per_neuron"].build()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".g.snnir.abc123.tmp"))

    monkeypatch.setattr("snnir.formats.atomic.tempfile.NamedTemporaryFile", refuse)
    with pytest.raises(FormatError, match=r"g\.snnir: cannot save in .* \(Permission denied\)") as caught:
        snnir.save(graph, tmp_path / "g.snnir")
    assert ".tmp" not in str(caught.value) and not (tmp_path / "g.snnir").exists()


def test_invalid_graphs_are_never_written(tmp_path):
    graph = snnir.Graph(nodes={"x": snnir.Input((2,))})
    with pytest.raises(GraphError):
        snnir.save(graph, tmp_path / "g.snnir")
    assert not (tmp_path / "g.snnir").exists()
