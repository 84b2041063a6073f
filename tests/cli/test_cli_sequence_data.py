"""Models with a sequence input on the command line: an .npz of series x [N, T, *shape], or images
turned into spike trains with --encode; a direct model refuses --encode."""

import numpy as np
import pytest

import snnir
from snnir import LIF, GraphBuilder, Linear
from snnir.cli import main

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def sequence_model(tmp_path_factory):
    """x (sequence, 64) -> Linear 64->10 -> LIF, saved; and an .npz of 30 series of 9 steps."""
    folder = tmp_path_factory.mktemp("sequence")
    builder = GraphBuilder("seq", num_steps=6)
    x = builder.input("x", (64,), encoding="sequence")
    builder.output("spikes", builder.add("lif", LIF(0.8), builder.add("fc", Linear(10), x)))
    model = folder / "seq.snnir"
    snnir.save(builder.build(seed=0), model)
    rng = np.random.default_rng(0)
    series = (rng.random((30, 9, 64)) < 0.3).astype(np.float32)
    data = folder / "series.npz"
    np.savez(data, x=series, y=rng.integers(0, 10, 30))
    return model, data


def test_run_info_and_plot_take_series(sequence_model, tmp_path, capsys):
    model, data = sequence_model
    assert main(["run", str(model), "--data", str(data), "--backend", "reference", "--batch", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "on 6 test samples of " in out and "series.npz;" in out and "9 steps" in out  # the data's T, not the graph's 6
    assert main(["info", str(model), "--data", str(data)]) == 0
    assert "rates measured on 6 samples" in capsys.readouterr().out
    assert main(["plot", str(model), "--data", str(data), "--out", str(tmp_path), "-q"]) == 0
    assert (tmp_path / "raster_lif.png").exists()


@pytest.fixture
def model_inputs(monkeypatch):
    """The inputs every model.predict of the test receives."""
    seen = []
    real = snnir.runtime.CompiledModel.predict

    def predict(self, inputs, **kwargs):
        seen.append(np.array(inputs))
        return real(self, inputs, **kwargs)

    monkeypatch.setattr(snnir.runtime.CompiledModel, "predict", predict)
    return seen


def test_the_cli_feeds_series_as_the_model_runs_them(sequence_model, model_inputs):
    """run's predictions are the model's on [T, B, ...] made from the [B, T, ...] samples."""
    model, data = sequence_model
    seen = model_inputs
    assert main(["run", str(model), "--data", str(data), "--split", "train", "--limit", "3", "-q"]) == 0
    with np.load(data) as archive:
        series = archive["x"]
    train = snnir.data.load_dataset(data, (64,), sequence=True).x_train[:3]
    assert len(seen) == 1 and seen[0].shape == (9, 3, 64)
    np.testing.assert_array_equal(seen[0], np.moveaxis(train, 1, 0))
    assert any(np.array_equal(train[0], s) for s in series)


def test_train_takes_series(sequence_model, tmp_path, capsys):
    model, data = sequence_model
    pytest.importorskip("torch")
    out = tmp_path / "trained.snnir"
    assert main(["train", str(model), "--data", str(data), "--epochs", "1", "--batch", "8", "--out", str(out), "-q"]) == 0
    assert "test accuracy" in capsys.readouterr().out and snnir.load(out).metadata["training"]["epochs"] == 1


@pytest.mark.parametrize("encode", ["rate", "latency"])
def test_images_become_spike_trains_with_encode(sequence_model, encode, capsys, model_inputs):
    model, _ = sequence_model
    seen = model_inputs
    assert main(["run", str(model), "--data", "digits", "--encode", encode, "--limit", "4", "-q"]) == 0
    assert "6 steps" in capsys.readouterr().out  # the graph's num_steps
    (spikes,) = seen
    assert spikes.shape == (6, 4, 64) and set(np.unique(spikes)) <= {0.0, 1.0} and spikes.any()
    if encode == "latency":
        assert spikes.sum(axis=0).max() == 1  # at most one spike per pixel


def test_images_for_a_sequence_model_need_encode_and_direct_models_refuse_it(sequence_model, capsys):
    model, _ = sequence_model
    assert main(["run", str(model), "--data", "digits", "--limit", "4"]) == 2
    assert "--encode rate or --encode latency" in capsys.readouterr().err
    assert main(["run", "examples/quickstart_fc.yaml", "--data", "digits", "--encode", "rate", "--limit", "4"]) == 2
    assert "--encode is for models with a sequence input" in capsys.readouterr().err
