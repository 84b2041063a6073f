"""snnir train: trains, saves the trained graph with its history, resumes from a checkpoint, rejects bad options."""

import pytest

import snnir
from snnir.cli import main

pytest.importorskip("torch")
pytest.importorskip("sklearn")
MODEL = "examples/quickstart_fc.yaml"


def test_train_saves_a_trained_graph(tmp_path, capsys):
    out = tmp_path / "fc.snnir"
    assert main(["train", MODEL, "--data", "digits", "--epochs", "1", "--limit", "64", "--out", str(out), "-q"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    trained = snnir.load(out)
    training = trained.metadata["training"]
    assert training["epochs"] == 1 and len(training["history"]) == 1 and 0 <= training["test_accuracy"] <= 1
    before = snnir.load(MODEL)
    assert not (trained.nodes["fc1"].weight == before.nodes["fc1"].weight).all()  # the weights moved


def test_train_resumes_from_a_checkpoint(tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    common = ["train", MODEL, "--data", "digits", "--limit", "64", "--checkpoint", str(checkpoint), "-q"]
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "a.snnir")]) == 0
    assert checkpoint.exists()
    assert main([*common, "--epochs", "2", "--resume", "--out", str(tmp_path / "b.snnir")]) == 0
    history = snnir.load(tmp_path / "b.snnir").metadata["training"]["history"]
    assert [row["epoch"] for row in history] == [0, 1]  # epoch 0 came from the checkpoint


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--loss", "{bad json"], "--loss is not valid JSON"),
        (["--loss", "hinge_loss"], "hinge_loss"),
        (["--resume"], "--resume needs --checkpoint"),
        (["--optimizer", "lbfgs2"], "lbfgs2"),
    ],
)
def test_bad_training_options(extra, message, capsys):
    assert main(["train", MODEL, "--data", "digits", "--epochs", "1", "--limit", "16", *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_model_or_data(capsys):
    assert main(["train", "nope.yaml", "--data", "digits"]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err
    assert main(["train", MODEL, "--data", "missing_dir_or.npz"]) == 2
