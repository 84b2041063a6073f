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


def test_train_prints_each_epoch_as_it_ends_and_notes_where_it_resumes(tmp_path, capsys, monkeypatch):
    """The epoch lines come from fit's on_epoch callback, before training goes on (not after fit); a
    --resume says whether it continues, starts afresh (no checkpoint yet) or has nothing left to do."""
    from snnir.backends.pytorch import training

    chunks: list[str] = []  # what was printed up to each epoch's end
    real_fit = training.fit

    def fit(*args, on_epoch=None, **kwargs):
        def spy(row):
            on_epoch(row)
            chunks.append(capsys.readouterr().out)
        return real_fit(*args, on_epoch=spy, **kwargs)

    monkeypatch.setattr("snnir.backends.pytorch.fit", fit)
    checkpoint = tmp_path / "ckpt.pt"
    common = ["train", MODEL, "--data", "digits", "--limit", "64", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "a.snnir")]

    def train(epochs):
        chunks.clear()
        assert main([*common, "--epochs", str(epochs), "--resume"]) == 0
        return chunks + [capsys.readouterr().out]

    first, second, rest = train(2)
    assert f"no checkpoint at {checkpoint} yet: starting from epoch 1" in first
    assert "epoch 1: loss" in first and "epoch 2: loss" in second and "test accuracy" in rest  # as they end
    third, rest = train(3)
    assert f"resuming from {checkpoint} after 2 epochs" in third and "epoch 3: loss" in third and "epoch 1:" not in third
    (rest,) = train(1)
    assert "for 1 epoch\n" in rest and f"{checkpoint} holds 3 epochs already, --epochs 1: nothing left to train" in rest


def test_train_limit_must_be_positive(capsys):
    for limit in ("0", "-5"):
        with pytest.raises(SystemExit) as caught:
            main(["train", MODEL, "--data", "digits", "--limit", limit])
        assert caught.value.code == 2 and f"expected a positive integer, found {limit}" in capsys.readouterr().err


def test_a_checkpoint_of_another_model_is_a_short_error(tmp_path, capsys):
    checkpoint = tmp_path / "ckpt.pt"
    assert main(["train", MODEL, "--data", "digits", "--epochs", "1", "--limit", "16", "--checkpoint", str(checkpoint), "-q",
                 "--out", str(tmp_path / "a.snnir")]) == 0
    assert main(["train", "examples/quickstart_cnn.yaml", "--data", "digits", "--epochs", "2", "--limit", "16",
                 "--checkpoint", str(checkpoint), "--resume", "-q", "--out", str(tmp_path / "b.snnir")]) == 2
    err = capsys.readouterr().err
    assert "the checkpoint does not fit this model" in err and len(err) < 600
