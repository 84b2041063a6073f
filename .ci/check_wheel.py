"""Run from outside the source tree inside a venv holding only the built wheel (no extras).

Checks that the core imports and runs the reference backend without torch, numba or onnx, and that
every backend and frontend package present in the source tree imports from the wheel.
"""

import importlib
import pathlib
import sys

import numpy as np

source = pathlib.Path(sys.argv[1])
import snnir  # noqa: E402

assert "site-packages" in snnir.__file__, f"snnir imported from {snnir.__file__}, not from the wheel"
for heavy in ("torch", "numba", "onnx"):
    assert heavy not in sys.modules, f"importing snnir imported {heavy}"

graph = snnir.Sequential(snnir.Linear(4), snnir.LIF(0.9), input_shape=(3,), num_steps=5)
result = snnir.compile(graph, "reference").run(np.ones((2, 3), np.float32))
assert result["spikes"].shape == (5, 2, 4)

for folder, package in (("backends", "snnir.backends"), ("frontends", "snnir.frontends")):
    for init in sorted((source / folder).glob("*/__init__.py")):
        name = f"{package}.{init.parent.name}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            # Allowed only when the missing module is an optional dependency, not part of snnir itself.
            if error.name and error.name.startswith("snnir"):
                raise
            print(f"{name}: optional dependency {error.name} missing (fine without extras)")
        else:
            print(f"{name}: imported")
import snnir.demo  # noqa: E402

assert snnir.demo.DEFAULT_MODEL.is_file() and "site-packages" in str(snnir.demo.DEFAULT_MODEL), snnir.demo.DEFAULT_MODEL
assert snnir.load(snnir.demo.DEFAULT_MODEL).name == "quickstart_cnn"  # the example models ship with the wheel
print("wheel OK:", snnir.__file__)
