"""The training loop: learning, history, truncated BPTT, checkpoints and their resumption, data sources."""

import numpy as np
import pytest

import snnir
from snnir import LIF, Linear, Sequential
from snnir.errors import FormatError, InputError

torch = pytest.importorskip("torch")
from snnir.backends.pytorch import History, encoders, evaluate, fit, load_checkpoint, mse_count_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _graph(encoding="direct", steps=8):
    return Sequential(Linear(16), LIF(0.8), Linear(3), LIF(0.8), input_shape=(10,), num_steps=steps, encoding=encoding, seed=1)


def _data(count=48, seed=0):
    """Three classes, each a different bump of input current."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    x = rng.random((count, 10)).astype(np.float32) * 0.3
    for k in range(3):
        x[labels == k, 3 * k : 3 * k + 4] += 0.9
    return x, labels


def _parameters(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_fit_learns_and_reports_a_history():
    model = snnir.compile(_graph(), "torch")
    x, y = _data()
    before = evaluate(model, (x, y), loss="mse_count_loss")
    history = fit(model, (x, y), epochs=6, batch_size=16, loss={"name": "mse_count_loss", "correct_rate": 0.8, "incorrect_rate": 0.2},
                  lr=0.02, validation=(x, y), progress=False)
    assert isinstance(history, History) and len(history.epochs) == 6
    assert history.loss[-1] < history.loss[0]
    assert history.accuracy[-1] > 0.9 and history.val_accuracy[-1] > 0.9
    assert all(t > 0 for t in history.time)
    after = evaluate(model, (x, y), loss="mse_count_loss")
    assert after["samples"] == len(y) and after["loss"] < before["loss"] and after["accuracy"] > before["accuracy"]
    assert model.training  # evaluate restores the mode


def test_truncated_bptt_matches_a_hand_written_loop():
    x, y = _data(12)
    graph = _graph("sequence", steps=9)
    sequence = np.repeat(x[None], 9, axis=0)
    model, manual = snnir.compile(graph, "torch"), snnir.compile(graph, "torch")
    fit(model, (sequence, y), epochs=1, batch_size=12, shuffle=False, tbptt=4, optimizer="sgd", lr=0.1, progress=False,
        loss=mse_count_loss(0.8, 0.2))
    optimizer, loss = torch.optim.SGD(manual.parameters(), lr=0.1), mse_count_loss(0.8, 0.2)
    state, inputs, targets = None, torch.from_numpy(sequence), torch.from_numpy(y)
    for start in (0, 4, 8):
        stop = min(start + 4, 9)
        outputs, state = manual(inputs[start:stop], stop - start, state=state, return_state=True)
        optimizer.zero_grad()
        loss(outputs["spikes"], targets).backward()
        optimizer.step()
        state = {k: {n: {v: t.detach() for v, t in s.items()} for n, s in d.items()} if k == "neurons" else {n: t.detach() for n, t in d.items()}
                 for k, d in state.items()}
    found, expected = _parameters(model), _parameters(manual)
    assert all(torch.equal(found[n], expected[n]) for n in found)


def test_tbptt_with_a_direct_input_reuses_the_image_in_every_chunk():
    model = snnir.compile(_graph(), "torch")
    x, y = _data(12)
    history = fit(model, (x, y), epochs=1, tbptt=3, progress=False)
    assert history.loss[0] > 0


def test_checkpoints_resume_exactly(tmp_path):
    x, y = _data()
    straight = snnir.compile(_graph(), "torch")
    fit(straight, (x, y), epochs=3, batch_size=16, progress=False)
    path = tmp_path / "run.ckpt"
    resumed = snnir.compile(_graph(), "torch")
    first = fit(resumed, (x, y), epochs=1, batch_size=16, checkpoint=path, progress=False)
    again = snnir.compile(_graph(), "torch")  # a fresh process would start from the graph as well
    history = fit(again, (x, y), epochs=3, batch_size=16, checkpoint=path, resume=True, progress=False)
    assert [row["epoch"] for row in history.epochs] == [0, 1, 2]
    assert history.epochs[0]["loss"] == first.epochs[0]["loss"]
    found, expected = _parameters(again), _parameters(straight)
    assert all(torch.equal(found[n], expected[n]) for n in found)
    epoch, saved = load_checkpoint(path, snnir.compile(_graph(), "torch"))
    assert epoch == 2 and len(saved.epochs) == 3


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    x, y = _data(12)
    model = snnir.compile(_graph(), "torch")
    path = tmp_path / "run.ckpt"
    fit(model, (x, y), epochs=1, checkpoint=path, progress=False)
    original = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fit(model, (x, y), epochs=2, checkpoint=path, resume=True, progress=False)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(FormatError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.ckpt", model)


def test_a_checkpoint_that_cannot_be_written_is_refused_before_training(tmp_path, monkeypatch):
    """fit checks the checkpoint's place first: a missing directory is a WriteError before any epoch runs."""
    x, y = _data(12)
    model = snnir.compile(_graph(), "torch")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(snnir.WriteError, match=r"nowhere/run.ckpt: cannot save, the directory .* does not exist"):
        fit(model, (x, y), epochs=1, checkpoint=tmp_path / "nowhere" / "run.ckpt", progress=False)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # not one step was taken


def test_dataloaders_encoders_and_optimizers_by_object():
    x, y = _data(24)
    graph = _graph("sequence", steps=6)
    model = snnir.compile(graph, "torch")
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    history = fit(model, loader, epochs=2, optimizer=optimizer, loss=mse_count_loss(0.8, 0.2),
                  encode=lambda batch: encoders.rate(batch, 6), progress=False)
    assert len(history.loss) == 2
    scores = evaluate(model, loader, encode=lambda batch: encoders.rate(batch, 6))
    assert scores["loss"] is None and scores["samples"] == 24
    fit(model, (x, y), epochs=1, optimizer=torch.optim.SGD, lr=0.01, encode=lambda batch: encoders.rate(batch, 6), progress=False)


def test_progress_bar_can_be_shown(capsys):
    x, y = _data(8)
    fit(snnir.compile(_graph(), "torch"), (x, y), epochs=1, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_membrane_losses_read_the_membrane_output():
    x, y = _data(12)
    model = snnir.compile(_graph(), "torch")
    history = fit(model, (x, y), epochs=1, loss="ce_max_membrane_loss", progress=False)
    assert history.loss[0] > 0


def test_fit_errors():
    model = snnir.compile(_graph(), "torch")
    x, y = _data(6)
    with pytest.raises(InputError, match="unknown optimizer"):
        fit(model, (x, y), optimizer="adamm", progress=False)
    with pytest.raises(InputError, match="epochs"):
        fit(model, (x, y), epochs=-1, progress=False)
    with pytest.raises(InputError, match="tbptt"):
        fit(model, (x, y), tbptt=0, progress=False)
    with pytest.raises(InputError, match="unknown output"):
        fit(model, (x, y), output="spikez", progress=False)
    with pytest.raises(InputError, match="batch_size must be a positive integer, found 0"):
        fit(model, (x, y), batch_size=0, progress=False)
    with pytest.raises(InputError, match=r"optimizer Adam\(lr=-1\): Invalid learning rate"):
        fit(model, (x, y), lr=-1, progress=False)
    with pytest.raises(InputError, match=r"data: 5 labels, but x holds 6 samples: input .x. \(direct\) takes x \[N, 10\], found \[6, 10\]"):
        fit(model, (x, y[:5]), progress=False)
    with pytest.raises(InputError, match="integer class indices, found dtype float64 with the value 0.5"):
        fit(model, (x, y + 0.5), progress=False)
    fit(model, (x, y.astype(np.float64)), progress=False)  # whole numbers in a float array are labels too
    with pytest.raises(InputError, match="expected a pair"):
        evaluate(model, "data.npz")
    with pytest.raises(InputError, match="batch 1 is not a pair"):
        evaluate(model, [(x[:3], y[:3]), x[3:]])


def _bars(count, seed):
    """MNIST-sized images whose class is the row of a bright bar (no download needed)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    images = rng.random((count, 1, 28, 28), dtype=np.float32) * 0.2
    for i, label in enumerate(labels):
        images[i, 0, 2 + 2 * label : 4 + 2 * label, 4:24] = 1.0
    return images, labels


@pytest.mark.parametrize("model_file", ["examples/quickstart_cnn.yaml", "examples/quickstart_fc.yaml"])
def test_the_seed_tutorial_end_to_end(model_file):
    """The quickstart recipe: mse_count_loss(0.8, 0.2), Adam(2e-3), accuracy_rate, a test-set accuracy."""
    graph = snnir.load(model_file)
    model = snnir.compile(graph, "torch")
    train, test = _bars(60, 0), _bars(30, 1)
    beta_before = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("beta")}
    history = fit(model, train, epochs=2, batch_size=30, loss={"name": "mse_count_loss", "correct_rate": 0.8, "incorrect_rate": 0.2},
                  optimizer="adam", lr=2e-3, validation=test, progress=False)
    assert history.loss[1] < history.loss[0]
    scores = evaluate(model, test, loss="mse_count_loss")
    assert 0.0 <= scores["accuracy"] <= 1.0 and scores["samples"] == 30
    assert history.val_accuracy[-1] == pytest.approx(scores["accuracy"])
    for name, before in beta_before.items():  # the FC net's learnable per-neuron beta moves
        assert not torch.equal(dict(model.named_parameters())[name].detach(), before)
    trained = model.to_graph()  # the reference runs it alike (docs/semantics.md: general float32 graphs)
    expected, found = snnir.compile(trained, "reference").run(test[0]), model.run(test[0])
    assert (expected["spikes"] == found["spikes"]).mean() >= 0.999
    np.testing.assert_allclose(found["membrane"], expected["membrane"], atol=1e-4)


def test_fit_refuses_non_finite_data_and_models_of_other_backends():
    """A NaN input would train on silently: its membranes never spike, the loss stays finite, and the
    first layer's weights turn NaN. Found by a user walkthrough."""
    model = snnir.compile(_graph(), "torch")
    x, y = _data(12)
    x[7, 3] = np.nan
    with pytest.raises(InputError, match=r"data: batch 1: value nan at index \(1, 3\) is not finite"):
        fit(model, (x, y), batch_size=6, shuffle=False, progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(InputError, match="data: batch 0: value nan"):
        evaluate(model, (x, y), batch_size=12)
    with pytest.raises(InputError, match="fit and evaluate take a model of the torch backend.*found NumbaModel"):
        fit(snnir.compile(_graph(), "numba"), (x, y), progress=False)
    with torch.no_grad():
        model.layer("fc1").weight[0, 0] = float("nan")  # as after a diverged training
    with pytest.raises(snnir.NodeParameterError, match="node 'fc1': Linear.weight: value nan"):
        model.to_graph()


def _readout_graph(with_spikes: bool):
    """x -> fc1 -> lif -> fc2 -> LI readout ('out', a membrane), and optionally lif's spikes ('hidden')."""
    builder = snnir.GraphBuilder("readout", num_steps=6)
    x = builder.input("x", (10,))
    lif = builder.add("lif", LIF(0.9), builder.add("fc1", Linear(8), x))
    builder.output("out", builder.add("li", snnir.LI(0.9), builder.add("fc2", Linear(3), lif)))
    if with_spikes:
        builder.output("hidden", lif)
    return builder.build(seed=0)


def test_the_loss_and_its_output_must_agree():
    """A spike-count loss on a membrane (or the reverse) is refused instead of fitted."""
    model = snnir.compile(_readout_graph(with_spikes=True), "torch")
    x, y = _data(6)
    with pytest.raises(InputError, match="the loss reads spikes, but output 'out' records membrane"):
        fit(model, (x, y % 3), output="out", progress=False)
    with pytest.raises(InputError, match="the loss reads membrane, but output 'hidden' records spikes"):
        fit(model, (x, y % 3), loss="mse_membrane_loss", output="hidden", progress=False)
    history = fit(model, (x, y % 3), loss="ce_max_membrane_loss", progress=False)  # picks 'out' by itself
    assert len(history.epochs) == 1
    with pytest.raises(InputError, match="no output of the graph records spikes"):
        fit(snnir.compile(_readout_graph(with_spikes=False), "torch"), (x, y % 3), progress=False)
