"""An exported model runs correctly in onnxruntime driven only by its metadata, without any snnir code.

``LOOP`` is the loop docs/formats.md shows; it runs in a fresh interpreter that never imports snnir
(checked), and its outputs must equal the reference interpreter's bit for bit, in both modes.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import snnir  # noqa: E402
from snnir.backends.onnx_export import export_onnx  # noqa: E402
from snnir.testing import CASES  # noqa: E402

LOOP = '''
import json
import numpy as np
import onnxruntime as ort


def run_exported(path, inputs):
    """Run an snnir ONNX export on {input name: array}; returns {output name: [T, B, ...] array}."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["snnir"])
    sequence = {i["name"] for i in meta["inputs"] if i["encoding"] == "sequence"}
    first = meta["inputs"][0]["name"]
    batch = inputs[first].shape[1 if first in sequence else 0]
    steps = inputs[min(sequence)].shape[0] if sequence else meta["time"]["num_steps"]
    states = {s["input"]: np.full([batch] + s["shape"][1:], s["initial_value"], np.float32) for s in meta["states"]}
    outputs = [o["name"] for o in meta["outputs"]]
    if meta["mode"] == "sequence":  # one call: a Scan over time inside the model
        feeds = {**inputs, **states}
        if meta["num_steps_input"]:
            feeds[meta["num_steps_input"]] = np.array(steps, np.int64)
        return dict(zip(outputs, session.run(outputs, feeds)))
    fetch = outputs + [s["output"] for s in meta["states"]]
    recorded = {name: [] for name in outputs}
    for t in range(steps):  # step model: this step's inputs and the states in, outputs and next states out
        feeds = {name: (x[t] if name in sequence else x) for name, x in inputs.items()}
        values = session.run(fetch, {**feeds, **states})
        for name, value in zip(outputs, values):
            recorded[name].append(value)
        states = {s["input"]: value for s, value in zip(meta["states"], values[len(outputs):])}
    return {name: np.stack(values) for name, values in recorded.items()}
'''

DRIVER = '''
import sys
jobs = json.loads(sys.argv[1])
for path, inputs_file, outputs_file in jobs:
    np.savez(outputs_file, **run_exported(path, dict(np.load(inputs_file))))
assert not any(name == "snnir" or name.startswith("snnir.") for name in sys.modules), "snnir was imported"
'''


def test_a_metadata_only_loop_reproduces_the_reference(tmp_path):
    cases = ["seed_cnn", "self_delay_and_input_delay", "multi_input_multi_output", "recurrent_cubalif_zero"]
    jobs, expected = [], {}
    for name in cases:
        graph, inputs = CASES[name].build()
        named = inputs if isinstance(inputs, dict) else {graph.inputs[0]: inputs}
        np.savez(tmp_path / f"{name}_in.npz", **named)
        expected[name] = snnir.compile(graph, "reference").run(inputs)
        for mode in ("step", "sequence"):
            path = export_onnx(graph, tmp_path / f"{name}_{mode}.onnx", mode)
            jobs.append((str(path), str(tmp_path / f"{name}_in.npz"), str(tmp_path / f"{name}_{mode}_out.npz")))
    script = tmp_path / "standalone.py"
    script.write_text(LOOP + DRIVER)
    completed = subprocess.run([sys.executable, "-I", str(script), json.dumps(jobs)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    for name in cases:
        for mode in ("step", "sequence"):
            found = np.load(tmp_path / f"{name}_{mode}_out.npz")
            assert sorted(found.files) == sorted(expected[name].outputs)
            for key, value in expected[name].outputs.items():
                np.testing.assert_array_equal(found[key], value, err_msg=f"{name} ({mode}): {key}")


def test_the_documented_loop_is_the_tested_one():
    """docs/formats.md shows exactly ``LOOP``."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    text = (docs / "formats.md").read_text(encoding="utf-8")
    blocks = [block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "def run_exported" in block]
    assert blocks and all(block.strip() == LOOP.strip() for block in blocks)
