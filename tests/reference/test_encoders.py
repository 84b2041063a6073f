"""The NumPy encoders against snnTorch's spikegen (deterministic codes exactly, rate statistically)."""

import numpy as np
import pytest

from snnir import InputError
from snnir.encoders import delta, latency, rate

torch = pytest.importorskip("torch")
spikegen = pytest.importorskip("snntorch.spikegen")


def test_rate_probabilities_and_reproducibility():
    data = np.array([[0.0, 0.25, 0.5, 1.0, 1.7]], np.float32)
    spikes = rate(data, 4000, rng=0)
    assert spikes.shape == (4000, 1, 5) and spikes.dtype == np.float32
    np.testing.assert_allclose(spikes.mean(0)[0], [0, 0.25, 0.5, 1, 1], atol=0.03)
    np.testing.assert_array_equal(spikes, rate(data, 4000, rng=0))
    assert rate(np.full((10, 3), 0.5), rng=1).shape == (10, 3)  # already time-varying
    assert rate(data, 3, gain=0.0, offset=1.0, rng=2).min() == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tau": 2, "threshold": 0.01},
        {"tau": 2, "threshold": 0.01, "clip": True},
        {"threshold": 0.01, "normalize": True, "linear": True},
        {"tau": 1.5, "threshold": 0.05, "first_spike_time": 3},
        {"threshold": 0.01, "normalize": True},
    ],
)
def test_latency_matches_snntorch(kwargs):
    data = np.random.default_rng(0).random((6, 20)).astype(np.float32)
    ours = latency(data, 30, **kwargs)
    theirs = spikegen.latency(torch.from_numpy(data), num_steps=30, **kwargs).numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert ours.sum(0).max() == 1


@pytest.mark.parametrize("padding,off_spike", [(False, False), (True, False), (False, True), (True, True)])
def test_delta_matches_snntorch(padding, off_spike):
    signal = np.cumsum(np.random.default_rng(1).normal(0, 0.2, (40, 3, 4)), axis=0).astype(np.float32)
    ours = delta(signal, threshold=0.1, padding=padding, off_spike=off_spike)
    theirs = spikegen.delta(torch.from_numpy(signal), threshold=0.1, padding=padding, off_spike=off_spike).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_encoder_errors():
    with pytest.raises(InputError, match="num_steps must be a positive integer"):
        rate(np.ones(3), 0)
    with pytest.raises(InputError, match=r"data in \[0, 1\]"):
        latency(np.array([1.5]), 10)
    with pytest.raises(InputError, match="exceeds num_steps"):
        latency(np.array([0.02]), 3, tau=10)
    with pytest.raises(InputError, match="NaN"):
        delta(np.array([0.0, np.nan]))
