"""fit/evaluate against the mistakes and accidents of real training runs (a user walkthrough found each):
a diverging loss, population codes, snnTorch's own loss objects, one-shot iterators, empty batches,
checkpoints of another optimizer or model, optimizer options, and copies of graphs and models."""

import copy
import pickle

import numpy as np
import pytest

import snnir
from snnir import LIF, Linear, Sequential
from snnir.errors import FormatError, InputError
from snnir.testing import assert_graph_equal

torch = pytest.importorskip("torch")
from snnir.backends.pytorch import TrainingDiverged, accuracy_rate, evaluate, fit, mse_count_loss  # noqa: E402
from snnir.backends.pytorch.training import pick_output  # noqa: E402


def _model(outputs=4, learn_beta=False, seed=1):
    graph = Sequential(Linear(16), LIF(0.8, learn_beta=learn_beta), Linear(outputs), LIF(0.85), input_shape=(6,),
                       num_steps=8, seed=seed)
    return snnir.compile(graph, "torch")


def _data(samples=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((samples, 6), dtype=np.float32) * 3, rng.integers(0, classes, samples)


def test_a_loss_that_stops_being_finite_stops_fit_before_its_step():
    model = _model()
    calls = []

    def loss(recording, targets):
        calls.append(1)
        value = mse_count_loss(0.8, 0.2)(recording, targets)
        return value * float("nan") if len(calls) == 3 else value

    before = {}

    def remember(row):
        before.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 0: the loss is nan on this rank .*; training diverged"):
        fit(model, _data(), epochs=3, batch_size=12, loss=loss, progress=False, on_epoch=remember, shuffle=False)
    assert len(calls) == 3
    after = model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert all(torch.equal(before[k], after[k]) for k in after)  # the diverged step was not taken
    assert isinstance(TrainingDiverged("x"), FloatingPointError)


def test_population_codes_score_per_population_and_labels_are_checked_against_the_classes():
    model = _model(outputs=8)
    x, y = _data(classes=4)
    loss = {"name": "mse_count_loss", "population_code": True, "num_classes": 4}
    history = fit(model, (x, y), epochs=1, loss=loss, progress=False)
    recording = model(torch.from_numpy(x))["spikes"]
    expected = accuracy_rate(recording, torch.from_numpy(y), population_code=True, num_classes=4)
    assert evaluate(model, (x, y), loss=loss)["accuracy"] == pytest.approx(expected)
    assert evaluate(model, (x, y), loss=loss)["accuracy"] != pytest.approx(accuracy_rate(recording, torch.from_numpy(y)))
    assert history.accuracy[0] is not None
    with pytest.raises(InputError, match=r"class 5 .* num_classes=4"):
        fit(model, (x, np.full(len(x), 5)), loss=loss, progress=False)


def test_snntorchs_own_membrane_losses_read_the_membrane():
    snntorch_functional = pytest.importorskip("snntorch.functional")
    graph = Sequential(Linear(4), LIF(0.9), input_shape=(3,), num_steps=4, seed=0)
    assert pick_output(graph, snntorch_functional.ce_max_membrane_loss(), None) == "membrane"
    assert pick_output(graph, snntorch_functional.mse_membrane_loss(), None) == "membrane"
    assert pick_output(graph, snntorch_functional.ce_rate_loss(), None) == "spikes"


def test_a_one_shot_iterator_for_several_epochs_is_refused():
    x, y = _data()
    batches = ((x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8))
    with pytest.raises(InputError, match=r"one-shot iterator \(generator\).* first of 2 epochs"):
        fit(_model(), batches, epochs=2, progress=False)
    history = fit(_model(), [(x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8)], epochs=2, progress=False)
    assert None not in history.loss


def test_an_empty_batch_is_skipped_and_does_not_void_the_epoch():
    x, y = _data()
    history = fit(_model(), [(x[:12], y[:12]), (x[:0], y[:0]), (x[12:], y[12:])], epochs=1, progress=False)
    assert history.loss[0] is not None and history.accuracy[0] is not None
    assert evaluate(_model(), [(x[:0], y[:0]), (x, y)])["samples"] == 24


def test_resuming_with_another_optimizer_or_model_variant_loads_nothing(tmp_path):
    checkpoint = tmp_path / "run.pt"
    model = _model(learn_beta=True)
    fit(model, _data(), epochs=1, checkpoint=checkpoint, progress=False)
    fresh = _model(learn_beta=True, seed=2)
    weights = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(FormatError, match=r"holds the state of a Adam optimizer, not of this SGD"):
        fit(fresh, _data(), epochs=2, optimizer="sgd", checkpoint=checkpoint, resume=True, progress=False)
    other = _model(learn_beta=False, seed=2)
    with pytest.raises(FormatError, match=r"parameter groups of sizes \[5\], this optimizer \[4\].* nothing was loaded"):
        fit(other, _data(), epochs=2, checkpoint=checkpoint, resume=True, progress=False)
    assert all(torch.equal(weights[k], v) for k, v in fresh.state_dict().items())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile imports torch.jit
def test_optimizer_options_and_unsupported_setups():
    model = _model()
    fit(model, _data(), epochs=0, progress=False)  # nothing to do
    from snnir.backends.pytorch.training import make_optimizer

    assert make_optimizer("sgd", model.parameters(), 2e-3, {"lr": 0.5}).param_groups[0]["lr"] == 0.5
    with pytest.raises(InputError, match=r"closure \(LBFGS\)"):
        fit(model, _data(), optimizer=torch.optim.LBFGS, progress=False)
    with pytest.raises(InputError, match="reduction='mean' or 'sum', not 'none'"):
        fit(model, _data(), loss={"name": "mse_count_loss", "reduction": "none"}, progress=False)
    with pytest.raises(InputError, match="not a torch.compile wrapper"):
        fit(torch.compile(model), _data(), progress=False)
    frozen = _model().requires_grad_(False)
    with pytest.raises(InputError, match="no parameter of the model requires a gradient"):
        fit(frozen, _data(), progress=False)


def test_graphs_and_models_copy_and_pickle(tmp_path):
    graph = snnir.load("examples/quickstart_fc.yaml").replace(metadata={"run": [1, 2]})
    for copied in (copy.deepcopy(graph), pickle.loads(pickle.dumps(graph))):
        assert_graph_equal(copied, graph)
        assert not copied.nodes["fc1"].weight.flags.writeable  # nodes stay immutable
    model = snnir.compile(graph, "torch")
    x = torch.rand(3, 1, 28, 28)
    twin = copy.deepcopy(model)
    torch.save(model, tmp_path / "model.pt")  # the surrogates are partials of module functions, not closures
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    for other in (twin, loaded):
        assert torch.equal(other(x)["spikes"], model(x)["spikes"])
    averaged = torch.optim.swa_utils.AveragedModel(model)  # needs deepcopy
    assert torch.equal(averaged.module(x)["spikes"], model(x)["spikes"])


def test_argument_forms_and_early_checks():
    x, y = _data()
    history = fit(_model(), (x, y), epochs=np.int64(1), tbptt=np.int64(4), progress=False)
    assert len(history.epochs) == 1
    with pytest.raises(InputError, match="epochs must be a non-negative integer, found True"):
        fit(_model(), (x, y), epochs=True, progress=False)
    with pytest.raises(InputError, match=r"a list is read as a sequence of batches: pass arrays as a tuple \(x, y\)"):
        fit(_model(), [x, y], progress=False)
    with pytest.raises(InputError, match="validation: labels must be a vector"):  # before the first epoch trains
        fit(_model(), (x, y), validation=(x, y[:, None]), progress=False)


def test_chunk_steps_set_after_compiling_is_checked():
    model = _model()
    model.chunk_steps = np.int64(2)
    assert model.chunk_steps == 2
    for bad in (0, -3, 2.5, "4", True):
        with pytest.raises(InputError, match="chunk_steps must be a positive integer or None"):
            model.chunk_steps = bad


def test_a_dataloader_is_iterated_once_per_epoch():
    x, y = _data()

    class Counting(torch.utils.data.DataLoader):
        iterations = 0

        def __iter__(self):
            Counting.iterations += 1
            return super().__iter__()

    loader = Counting(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=8)
    fit(_model(), loader, epochs=2, progress=False)
    assert Counting.iterations == 2
    with pytest.raises(InputError, match="expected a pair"):
        fit(_model(), None, epochs=2, progress=False)
