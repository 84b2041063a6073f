"""`make demo`'s command in a reduced mode: every artefact exists, loads, and the backends agree."""

import json
from pathlib import Path
import subprocess
import sys

import pytest

import snnir
from snnir.testing import assert_graph_equal

pytest.importorskip("torch")
pytest.importorskip("numba")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def test_quick_demo_produces_consistent_artefacts(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "snnir.demo", "--quick", "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy (torch)" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    for path in summary["artefacts"]:
        assert Path(path).exists(), path
    trained = snnir.load(out / "quickstart_cnn.snnir")
    assert trained.metadata["training"]["epochs"] == 1
    assert_graph_equal(snnir.load(out / "quickstart_cnn.onnx"), trained)
    for name in ("training.png", "raster.png", "activity.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert summary["agreement_with_torch"] == {"torch": 1.0, "numba": 1.0, "onnx": 1.0, "reference": 1.0}
    accuracies = set(summary["test_accuracy"].values())
    assert len(accuracies) == 1  # every backend classifies the test samples identically
