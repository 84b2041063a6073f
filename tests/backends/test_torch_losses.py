"""Losses, accuracy and encoders against snnTorch 1.0's own functions (``snntorch.functional``, ``spikegen``)."""

import numpy as np
import pytest

import snnir
import snnir.encoders

from snnir.errors import InputError

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from snntorch import functional as SF  # noqa: E402
from snntorch import spikegen  # noqa: E402

from snnir.backends.pytorch import (  # noqa: E402
    LOSSES,
    accuracy_rate,
    ce_count_loss,
    ce_max_membrane_loss,
    ce_rate_loss,
    encoders,
    mse_count_loss,
    mse_membrane_loss,
)
from snnir.backends.pytorch.losses import make_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")

T, B, C = 12, 9, 5


@pytest.fixture
def recordings():
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(T, B, C, generator=generator) < 0.3).float().requires_grad_()
    membranes = (torch.randn(T, B, C, generator=generator) * 0.7).requires_grad_()
    targets = torch.randint(0, C, (B,), generator=generator)
    return spikes, membranes, targets


def _same(ours, theirs, inputs):
    """Values within 1e-6 and gradients within 1e-6 relative, for the same recording."""
    ours_value, theirs_value = ours(*inputs), theirs(*inputs)
    assert ours_value.shape == theirs_value.reshape(ours_value.shape).shape
    np.testing.assert_allclose(ours_value.detach().numpy(), theirs_value.reshape(ours_value.shape).detach().numpy(), rtol=1e-6, atol=1e-7)
    recording = inputs[0]
    (ours_grad,) = torch.autograd.grad(ours_value.sum(), recording)
    (theirs_grad,) = torch.autograd.grad(theirs_value.sum(), recording)
    np.testing.assert_allclose(ours_grad.numpy(), theirs_grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_count_loss(recordings, reduction):
    spikes, _, targets = recordings
    _same(mse_count_loss(0.8, 0.2, reduction=reduction), SF.mse_count_loss(0.8, 0.2, reduction=reduction), (spikes, targets))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_count_and_rate_losses(recordings, reduction):
    spikes, _, targets = recordings
    _same(ce_count_loss(reduction=reduction), SF.ce_count_loss(reduction=reduction), (spikes, targets))
    _same(ce_rate_loss(reduction=reduction), SF.ce_rate_loss(reduction=reduction), (spikes, targets))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_membrane_losses(recordings, reduction):
    _, membranes, targets = recordings
    _same(ce_max_membrane_loss(reduction=reduction), SF.ce_max_membrane_loss(reduction=reduction), (membranes, targets))
    _same(mse_membrane_loss(on_target=1.2, off_target=0.1, reduction=reduction),
          SF.mse_membrane_loss(on_target=1.2, off_target=0.1, reduction=reduction), (membranes, targets))


def test_class_weights_of_the_cross_entropy_losses(recordings):
    spikes, membranes, targets = recordings
    weight = torch.tensor([0.5, 2.0, 1.0, 0.25, 3.0])
    _same(ce_count_loss(weight=weight), SF.ce_count_loss(weight=weight), (spikes, targets))
    _same(ce_rate_loss(weight=weight), SF.ce_rate_loss(weight=weight), (spikes, targets))
    _same(ce_max_membrane_loss(weight=weight), SF.ce_max_membrane_loss(weight=weight), (membranes, targets))


def test_class_weights_of_the_mse_losses_weigh_each_sample_by_its_class(recordings):
    spikes, membranes, targets = recordings
    weight = torch.tensor([0.5, 2.0, 1.0, 0.25, 3.0])
    counts, target_counts = spikes.sum(0), torch.full((B, C), int(T * 0.2), dtype=torch.float32)
    target_counts[torch.arange(B), targets] = int(T * 0.8)
    expected = (((counts - target_counts) ** 2) * weight[targets][:, None] / T).mean()
    torch.testing.assert_close(mse_count_loss(0.8, 0.2, weight=weight)(spikes, targets), expected)
    on_off = torch.zeros(B, C)
    on_off[torch.arange(B), targets] = 1.0
    expected = (sum(((membranes[t] - on_off) ** 2) for t in range(T)) * weight[targets][:, None] / T).sum()
    torch.testing.assert_close(mse_membrane_loss(weight=weight, reduction="sum")(membranes, targets), expected)


def test_population_codes(recordings):
    generator = torch.Generator().manual_seed(1)
    spikes = (torch.rand(T, B, 2 * C, generator=generator) < 0.3).float().requires_grad_()
    _, _, targets = recordings
    _same(mse_count_loss(0.8, 0.2, population_code=True, num_classes=C),
          SF.mse_count_loss(0.8, 0.2, population_code=True, num_classes=C), (spikes, targets))
    _same(ce_count_loss(population_code=True, num_classes=C), SF.ce_count_loss(population_code=True, num_classes=C), (spikes, targets))
    assert accuracy_rate(spikes, targets, population_code=True, num_classes=C) == pytest.approx(
        SF.accuracy_rate(spikes, targets, population_code=True, num_classes=C))


def test_accuracy_rate_breaks_ties_like_snntorch():
    spikes = torch.zeros(4, 6, 3)
    spikes[:, 0, 1] = 1
    spikes[:, 1, :] = 1  # a three-way tie: the first class wins
    targets = torch.tensor([1, 0, 0, 2, 2, 1])
    assert accuracy_rate(spikes, targets) == pytest.approx(float(SF.accuracy_rate(spikes, targets)))


def test_time_varying_membrane_targets():
    membranes = torch.randn(T, B, C)
    targets = torch.randint(0, C, (T, B), generator=torch.Generator().manual_seed(2))
    expected = sum(((membranes[t] - torch.nn.functional.one_hot(targets[t], C).float()) ** 2).mean() for t in range(T)) / T
    torch.testing.assert_close(mse_membrane_loss(time_var_targets=True)(membranes, targets), expected)


def test_losses_by_name_and_bad_inputs(recordings):
    spikes, _, targets = recordings
    assert set(LOSSES) == {"mse_count_loss", "ce_count_loss", "ce_rate_loss", "ce_max_membrane_loss", "mse_membrane_loss"}
    loss = make_loss({"name": "mse_count_loss", "correct_rate": 0.8, "incorrect_rate": 0.2})
    torch.testing.assert_close(loss(spikes, targets), mse_count_loss(0.8, 0.2)(spikes, targets))
    with pytest.raises(InputError, match="unknown loss"):
        make_loss("mse_loss_typo")
    with pytest.raises(InputError, match="unexpected keyword"):
        make_loss({"name": "ce_rate_loss", "slope": 2})
    with pytest.raises(InputError, match=r"\[T, B, classes\]"):
        ce_rate_loss()(spikes[0], targets)
    with pytest.raises(InputError, match="integer tensor"):
        ce_rate_loss()(spikes, targets.float())
    with pytest.raises(InputError, match=r"lie in \[0, 4\]"):
        ce_rate_loss()(spikes, targets + 5)
    with pytest.raises(InputError, match="reduction"):
        ce_rate_loss(reduction="avg")


# -- encoders ------------------------------------------------------------------------------------------
def test_rate_draws_what_spikegen_draws():
    data = torch.rand(6, 10, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(4)
    theirs = spikegen.rate(data, num_steps=20, gain=0.7, offset=0.1)
    torch.manual_seed(4)
    ours = encoders.rate(data, 20, gain=0.7, offset=0.1)
    assert torch.equal(ours, theirs)
    again = encoders.rate(data, 20, gain=0.7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(encoders.rate(data, 20, gain=0.7, generator=torch.Generator().manual_seed(5)), again)
    probabilities = torch.rand(8, 3, 4)
    torch.manual_seed(6)
    theirs = spikegen.rate(probabilities, time_var_input=True)
    torch.manual_seed(6)
    assert torch.equal(encoders.rate(probabilities), theirs)


LATENCY_OPTIONS = [dict(), dict(linear=True, tau=20), dict(normalize=True, tau=5), dict(linear=True, normalize=True),
                   dict(clip=True, threshold=0.2), dict(first_spike_time=3, tau=0.8)]


@pytest.mark.parametrize("options", LATENCY_OPTIONS)
def test_latency_matches_spikegen_and_the_numpy_encoder(options):
    data = torch.rand(7, 11, generator=torch.Generator().manual_seed(6))
    ours = encoders.latency(data, 25, **options)
    assert torch.equal(ours, spikegen.latency(data, num_steps=25, **options))
    np.testing.assert_array_equal(ours.numpy(), snnir.encoders.latency(data.numpy(), 25, **options))


def test_delta_matches_spikegen_and_the_numpy_encoder():
    data = torch.cumsum(torch.randn(15, 4, 3, generator=torch.Generator().manual_seed(7)) * 0.2, 0)
    for options in (dict(), dict(off_spike=True), dict(padding=True, off_spike=True)):
        ours = encoders.delta(data, threshold=0.1, **options)
        assert torch.equal(ours, spikegen.delta(data, threshold=0.1, **options))
        np.testing.assert_array_equal(ours.numpy(), snnir.encoders.delta(data.numpy(), threshold=0.1, **options))


def test_encoder_errors_match_the_numpy_encoders():
    cases = [(lambda m: m.rate(np.ones(3), 0)), (lambda m: m.latency(np.array([1.5]), 10)),
             (lambda m: m.rate(np.array([np.nan]), 3)), (lambda m: m.latency(np.array([0.011]), 5, tau=50)),
             (lambda m: m.delta(np.float32(1.0)))]
    for make in cases:
        with pytest.raises(InputError) as ours:
            make(encoders)
        with pytest.raises(InputError) as theirs:
            make(snnir.encoders)
        assert str(ours.value).split(",")[0].split(" found")[0] == str(theirs.value).split(",")[0].split(" found")[0]
