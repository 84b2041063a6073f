"""The README's tour and command lines run as written (with a smaller training budget)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BRAILLE = ROOT.parent / "shared" / "nir-paper" / "braille_noDelay_noBias_subtract.nir"

pytest.importorskip("torch")
pytest.importorskip("numba")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")


def _block(after: str, language: str) -> str:
    start = README.index(after)
    match = re.search(rf"```{language}\n(.*?)```", README[start:], re.S)
    return match.group(1)


def test_the_first_lines_are_the_two_setup_commands():
    lines = README.splitlines()
    assert lines[0] == "```" and lines[1].startswith("make demo") and lines[2].startswith("make test")


def test_python_tour_runs(tmp_path, monkeypatch):
    code = _block("## A 20-line tour", "python")
    assert len(code.strip().splitlines()) <= 22
    code = code.replace("epochs=12", "epochs=1").replace('"examples/', f'"{ROOT}/examples/')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "cnn.snnir").exists() and (tmp_path / "cnn.onnx").exists()


def _foreign_nir(folder: Path) -> Path:
    """A .nir file without snnir's metadata (no time step), as another tool writes one."""
    nir = pytest.importorskip("nir")
    from snnir.frontends.nir import to_nir
    from snnir.testing import CASES

    exported = to_nir(CASES["lif_subtract_next_step"].build()[0])
    exported.metadata = {}
    nir.write(folder / "foreign.nir", exported)
    return folder / "foreign.nir"


def test_command_line_tour_runs(tmp_path):
    lines = [line.split("#")[0].strip() for line in _block("The same from the command line", "").splitlines()]
    for line in filter(None, lines):
        if "braille.nir" in line:  # a NIR file written by another tool: the NIR paper's, or one like it
            line = line.replace("braille.nir", str(BRAILLE if BRAILLE.exists() else _foreign_nir(tmp_path)))
        args = shlex.split(line.replace("examples/", f"{ROOT}/examples/"))
        assert args[0] == "snnir"
        if args[1] == "train":
            args = [a if a != "12" else "1" for a in args] + ["--limit", "128", "--quiet"]
        if args[1] in ("run", "info", "plot"):
            args += ["--limit", "16"]
        if args[1] == "bench":
            args += ["--repeat", "1", "--batch", "4"]
        done = subprocess.run([sys.executable, "-m", "snnir.cli", *args[1:]], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
