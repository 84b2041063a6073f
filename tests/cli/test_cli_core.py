"""The core subcommands: info, convert; help, version, exit codes and one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

import snnir
from snnir.cli import main
from snnir.testing import assert_graph_equal


def test_info_prints_the_summary(capsys):
    assert main(["info", "examples/quickstart_cnn.yaml"]) == 0
    out = capsys.readouterr().out
    assert "Graph 'quickstart_cnn': 25 steps of 1 ms" in out and "6,000 parameters" in out


def test_info_backends_prints_the_support_matrix(capsys):
    assert main(["info", "--backends"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["node", "reference"]


def test_convert_between_formats(tmp_path, capsys):
    target = tmp_path / "fc.snnir"
    assert main(["convert", "examples/quickstart_fc.yaml", str(target)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert_graph_equal(snnir.load("examples/quickstart_fc.yaml"), snnir.load(target))
    assert main(["--quiet", "convert", str(target), str(tmp_path / "fc.yaml")]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "missing.snnir"], "snnir info: error: missing.snnir: no such file"),
        (["info", "README.md"], "snnir info: error: README.md: reading files with extension '.md' is not supported"),
        (["convert", "examples/quickstart_fc.yaml", "out.bin"], "snnir convert: error: out.bin: writing files"),
        (["info"], "snnir info: error: give a model file, or --backends"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)


def test_errors_show_their_notes(tmp_path, capsys):
    """Notes say where an error happened (the file being imported, the node being executed)."""
    import nir

    nodes = {"in": nir.Input(input_type=np.array([2])), "scale": nir.Scale(scale=np.ones(3)),
             "out": nir.Output(output_type=np.array([3]))}
    path = tmp_path / "bad.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=[("in", "scale"), ("scale", "out")], type_check=False))
    assert main(["check", str(path), "--dt", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnir check: error: node 'scale' (Scale)") and f"(while importing {path})" in err


def test_usage_errors_and_help():
    run = lambda *args: subprocess.run([sys.executable, "-m", "snnir.cli", *args], capture_output=True, text=True)
    assert run().returncode == 2
    helped = run("--help")
    assert helped.returncode == 0 and "info" in helped.stdout and "convert" in helped.stdout
    assert run("--version").stdout.startswith("snnir ")
    wrong = run("info", "--bogus")
    assert wrong.returncode == 2 and "unrecognized arguments: --bogus" in wrong.stderr
