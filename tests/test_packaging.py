"""Packaging: package discovery, extras, and a core that imports without torch, numba or onnx."""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_package_is_installed_under_the_snnir_namespace():
    sys.path.insert(0, str(ROOT))
    try:
        from setup import DATA, discover_packages
    finally:
        sys.path.remove(str(ROOT))
    import importlib.util

    packages = discover_packages()
    on_disk = {p.parent for p in (ROOT / "snnir").rglob("__init__.py") if "__pycache__" not in p.parts}
    mapped = ("snnir.backends", "snnir.frontends", *DATA)
    assert {ROOT / "snnir" / Path(*p.split(".")[1:]) for p in packages if not p.startswith(mapped)} == on_disk
    assert set(DATA) <= set(packages)
    for name in packages:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin.startswith(str(ROOT)), name
    assert "snnir.backends" in packages and "snnir.frontends" in packages


def test_pyproject_declares_the_extras_and_the_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"torch", "numba", "onnx", "nir", "snntorch", "dev", "all"} <= set(project["optional-dependencies"])
    assert project["scripts"]["snnir"] == "snnir.cli:main"
    assert project["requires-python"] == ">=3.10"
    assert set(project["dependencies"]) == {"numpy>=1.24", "networkx>=3.0", "pyyaml>=6.0", "tqdm>=4.60"}


def test_the_core_runs_without_torch_numba_or_onnx():
    script = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"torch", "numba", "onnx", "onnxruntime", "snntorch", "nir"}:
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)  # as when not installed
        sys.meta_path.insert(0, Block())
        import numpy as np, snnir
        graph = snnir.load("examples/quickstart_cnn.yaml")
        result = snnir.compile(graph, "reference").run(np.ones((2, 1, 28, 28), np.float32))
        assert result["spikes"].shape == (25, 2, 10)
        for backend, extra in (("torch", "torch"), ("numba", "numba"), ("onnx", "onnx")):
            try:
                snnir.compile(graph, backend)
            except snnir.BackendUnavailableError as error:
                assert f"pip install 'snnir[{extra}]'" in str(error), error
            else:
                raise AssertionError(f"{backend} compiled without its dependency")
        for path in ("model.onnx", "model.nir"):
            try:
                snnir.save(graph, path)
            except snnir.FormatError as error:
                assert "pip install 'snnir[" in str(error), error
        packages = {"snnir.backends.pytorch": "torch", "snnir.backends.numba_cpu": "numba", "snnir.backends.onnx_export": "onnx",
                    "snnir.frontends.nir": "nir", "snnir.frontends.snntorch": "snntorch"}
        for package, extra in packages.items():  # imported directly, as the docs do: the error names the extra
            try:
                __import__(package)
            except ModuleNotFoundError as error:
                assert str(error).startswith(f"{package} needs the '") and f"pip install 'snnir[{extra}]'" in str(error), error
            else:
                raise AssertionError(f"{package} imported without its dependency")
        for module in ("torch", "numba", "onnx", "onnxruntime", "nir"):
            assert module not in sys.modules, module
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
