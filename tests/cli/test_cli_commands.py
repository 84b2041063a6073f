"""The data-driven subcommands: info --data, check, run, plot, bench."""

import pytest

from snnir.cli import main

pytest.importorskip("sklearn")
MODEL = "examples/quickstart_cnn.yaml"


def test_info_with_measured_rates(capsys):
    assert main(["info", MODEL, "--data", "digits", "--limit", "8"]) == 0
    out = capsys.readouterr().out
    assert "rates measured on 8 samples of digits" in out and "SynOps/step" in out


def test_check_lists_backends(capsys):
    assert main(["check", MODEL]) == 0
    out = capsys.readouterr().out
    assert "valid; 12 nodes" in out and "reference  supported" in out


def test_run_reports_accuracy_and_throughput(capsys):
    assert main(["run", MODEL, "--data", "digits", "--limit", "10", "--batch", "4", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("reference: accuracy ") and "on 10 test samples of digits" in out and "samples/s" in out


def test_run_reports_throughput_after_the_first_batch(capsys):
    """The first batch pays one-time costs (numba's kernel load or JIT): it is timed on its own."""
    assert main(["run", MODEL, "--data", "digits", "--limit", "12", "--batch", "4", "-q"]) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "ms/sample, 25 steps, after the first batch, which took" in out and "set-up" in out
    assert main(["run", MODEL, "--data", "digits", "--limit", "4", "--batch", "4", "-q"]) == 0
    assert "(one batch, first-call costs included; 25 steps)" in capsys.readouterr().out


def test_run_checks_the_output_before_running(capsys):
    assert main(["run", MODEL, "--data", "digits", "--limit", "4", "--output", "spikez"]) == 2
    err = capsys.readouterr().err
    assert "unknown output 'spikez' (did you mean 'spikes'?)" in err and "%|" not in err  # no progress bar drawn


def test_export_writes_onnx_files_only(tmp_path, capsys):
    target = tmp_path / "out.nir"
    assert main(["export", "examples/quickstart_fc.yaml", str(target)]) == 2
    assert "export writes ONNX files (.onnx)" in capsys.readouterr().err and not target.exists()


def test_bench_refuses_an_unknown_backend_before_timing(capsys):
    assert main(["bench", "examples/quickstart_fc.yaml", "--backends", "reference,onnxx", "--repeat", "1"]) == 2
    captured = capsys.readouterr()
    assert "unknown backend 'onnxx'" in captured.err and "median" not in captured.out


def test_plot_writes_pngs(tmp_path, capsys):
    assert main(["plot", MODEL, "--data", "digits", "--limit", "4", "--out", str(tmp_path), "--layer", "lif2"]) == 0
    assert (tmp_path / "raster_lif2.png").stat().st_size > 1000 and (tmp_path / "activity.png").exists()


def test_bench_compares_backends(capsys):
    assert main(["bench", "examples/quickstart_fc.yaml", "--backends", "reference", "--repeat", "1", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "median of 1" in out and "spikes equal" in out and "max |diff| other" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("reference"))
    assert row[3:5] == ["100.00%", "0.0e+00"]  # spikes equal; the membrane output's largest difference


def test_bench_agreement_separates_spikes_from_membranes():
    """Spike outputs are compared exactly, other outputs by their largest difference (membranes may
    differ in the last bits on general floats, as docs/semantics.md allows)."""
    import numpy as np

    import snnir
    from snnir.cli.commands.bench import _agreement
    from snnir.runtime import Result

    graph = snnir.load("examples/quickstart_fc.yaml")
    spikes = np.zeros((4, 2, 10), np.float32)
    membrane = np.full((4, 2, 10), 0.5, np.float32)
    reference = Result({"spikes": spikes, "membrane": membrane})
    found = Result({"spikes": spikes.copy(), "membrane": membrane + np.float32(2.5e-7)})
    found["spikes"][0, 0, :4] = 1.0  # 4 of 80 elements differ
    assert _agreement(graph, found, reference) == ("95.00%", "2.4e-07")


def test_bench_rate_is_a_probability(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["bench", "examples/quickstart_fc.yaml", "--rate", "1.5"])
    assert caught.value.code == 2 and "expected a probability between 0 and 1, found 1.5" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", MODEL, "--data", "nowhere.npz"], "nowhere.npz: no such file"),
        (["run", MODEL, "--data", "digits", "--backend", "tpu"], "unknown backend 'tpu'"),
        (["plot", MODEL, "--data", "digits", "--layer", "conv1"], "is not a spiking node"),
        (["plot", MODEL, "--data", "digits", "--limit", "4", "--sample", "4"], "--sample 4: there are 4 samples (0 to 3)"),
        (["info", "examples/quickstart_fc.yaml", "--data", "digits", "--split", "train", "--limit", "2"], None),
    ],
)
def test_data_command_errors(argv, message, capsys):
    status = main(argv)
    if message is None:
        assert status == 0
    else:
        assert status == 2 and message in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as caught:
        main(["run", MODEL])  # --data is required
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["run", MODEL, "--data", "digits", "--batch", "0"])
    assert caught.value.code == 2
